// SPDX-License-Identifier: MIT
// The studio's analysis work on the session's workers.
#include "analysis.h"

#include "kvs/gpu/renderdoc.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/scheme.h"
#include "kvs/status.h"
#include "kvs/sweep.h"

#include <QElapsedTimer>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace kvs::studio {

namespace {

QString qs(const std::string& s) {
    return QString::fromStdString(s);
}

} // namespace

int resolveContextTokens(int requested, int tokens) {
    if (tokens < 2)
        return 0;
    if (requested >= 1 && requested < tokens)
        return requested;
    return std::clamp(tokens * 3 / 4, 1, tokens - 1);
}

namespace {

double median(std::vector<double> values) {
    if (values.empty())
        return std::numeric_limits<double>::quiet_NaN();
    const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
    std::nth_element(values.begin(), mid, values.end());
    return *mid;
}

double meanKeptTokens(const EvalResult& result) {
    double tokens = 0;
    for (const HeadMetrics& h : result.heads)
        tokens += h.keptTokens;
    return tokens / static_cast<double>(std::max<std::size_t>(1, result.heads.size()));
}

} // namespace

void addTheoryOverlay(views::TradeoffCurve& curve, int contextTokens) {
    // The points that compress (keep-everything points have no error to extrapolate from),
    // in increasing bytes.
    std::vector<const views::CurvePoint*> compressed;
    for (const views::CurvePoint& p : curve.points)
        if (meanKeptTokens(p.result) < contextTokens && p.result.attentionError > 0 &&
            p.result.bytes.total() > 0)
            compressed.push_back(&p);
    if (compressed.empty())
        return;
    // The theory is asymptotic in the kept tokens: anchor at the compressing point that keeps
    // the most, where it should hold best, and extend the guide to the most compressed point.
    const views::CurvePoint& anchor = *compressed.back();
    std::vector<double> rho;
    std::vector<double> bound;
    for (const HeadMetrics& h : anchor.result.heads) {
        rho.push_back(h.rhoEff);
        bound.push_back(h.boundTokens);
    }
    curve.boundRho = median(rho);
    curve.boundTokens = median(bound);
    curve.boundKeptTokens = meanKeptTokens(anchor.result);

    const std::string id = curve.schemeId.toStdString();
    if (id.rfind("coreset.", 0) == 0) {
        curve.theorySlope = -1.0;
        curve.theoryLabel =
            QStringLiteral("%1: coreset theory, error \u221d m^\u22121").arg(curve.displayName);
    } else if (id == "select.uniform") {
        curve.theorySlope = -0.5;
        curve.theoryLabel = QStringLiteral("%1: sampling theory, error \u221d m^\u2212\u00bd")
                                .arg(curve.displayName);
    } else {
        return;
    }
    // Kept tokens are proportional to bytes within one scheme, so the slope carries over to the
    // bytes axis; the guide spans the compressed points.
    const double xa = static_cast<double>(anchor.result.bytes.total());
    const double ya = anchor.result.attentionError;
    const double x0 = static_cast<double>(compressed.front()->result.bytes.total());
    curve.guideX1 = xa;
    curve.guideY1 = ya;
    curve.guideX0 = x0 < xa ? x0 : 0.5 * xa;
    curve.guideY0 = ya * std::pow(curve.guideX0 / xa, curve.theorySlope);
}

std::shared_ptr<const std::vector<views::HeadMaps>>
baselineDifference(const views::AnalysisData& current, int run, const views::AnalysisData& baseline,
                   int baselineRun) {
    if (run < 0 || baselineRun < 0 || run >= static_cast<int>(current.runs.size()) ||
        baselineRun >= static_cast<int>(baseline.runs.size()) ||
        current.provenance.modelFolder != baseline.provenance.modelFolder ||
        current.provenance.modelHash != baseline.provenance.modelHash ||
        current.tokenTexts != baseline.tokenTexts ||
        current.contextTokens != baseline.contextTokens || current.layers != baseline.layers ||
        current.heads != baseline.heads || current.kvHeads != baseline.kvHeads)
        return nullptr;
    const auto& a = current.runs[static_cast<std::size_t>(run)].eval.heads;
    const auto& b = baseline.runs[static_cast<std::size_t>(baselineRun)].eval.heads;
    if (a.size() != b.size())
        return nullptr;
    auto out = std::make_shared<std::vector<views::HeadMaps>>(a.size());
    for (std::size_t h = 0; h < a.size(); ++h) {
        const auto& ca = a[h].compressedMap;
        const auto& cb = b[h].compressedMap;
        if (ca.size() != cb.size() || ca.empty())
            return nullptr;
        for (std::size_t j = 0; j < ca.size(); ++j) {
            if (ca[j].rows() != cb[j].rows() || ca[j].cols() != cb[j].cols())
                return nullptr;
            (*out)[h].difference.push_back(ca[j] - cb[j]);
        }
    }
    return out;
}

std::optional<SweepPlan> sweepPlan(const SchemeSetting& setting, int contextTokens, int points) {
    const Scheme* scheme = findScheme(setting.id);
    if (!scheme)
        return std::nullopt;
    const SchemeInfo& info = scheme->info();
    const ParamSpec* spec = info.findParam("keep");
    if (!spec) {
        for (const ParamSpec& p : info.params)
            if (p.key != "seed") {
                spec = &p;
                break;
            }
    }
    if (!spec)
        return std::nullopt;
    SweepPlan plan;
    plan.parameter = spec->key;
    if (spec->key == "keep") {
        // From about two tokens to the whole context.
        const double lo = std::clamp(2.0 / std::max(1, contextTokens), spec->minimum, 0.5);
        plan.values = geometricValues(lo, 1.0, points, false);
    } else if (spec->logScale && spec->minimum > 0) {
        plan.values = geometricValues(spec->minimum, spec->maximum, points, spec->integer);
    } else {
        for (int i = 0; i < points; ++i) {
            double v = spec->minimum + (spec->maximum - spec->minimum) * i / (points - 1);
            plan.values.push_back(spec->integer ? std::round(v) : v);
        }
        plan.values.erase(std::unique(plan.values.begin(), plan.values.end()), plan.values.end());
    }
    return plan;
}

QString sweepKey(const QString& setting) {
    auto parsed = SchemeSetting::parse(setting.toStdString());
    if (!parsed.ok())
        return setting;
    SchemeSetting s = std::move(parsed).value();
    if (auto plan = sweepPlan(s, 100)) {
        s.params.erase(plan->parameter);
        if (plan->parameter == "keep") { // the other budget forms would override keep
            s.params.erase("tokens");
            s.params.erase("bytes");
        }
    }
    return qs(s.toString());
}

Engine::Engine(bool cpuOnly) : m_cpuOnly(cpuOnly) {}
Engine::~Engine() = default;

void Engine::ensureBackend() {
    if (m_backend)
        return;
    // Metrics and maps come from the CPU reference: exact, and on small models far quicker than
    // a CPU-emulated GPU's many small dispatches (the teacher-forced probe decode makes hundreds).
    // The attention backend (Vulkan where it works) times the probe attention.
    m_backend = makeCpuBackend();
}

void Engine::startTimingBackend() {
    std::lock_guard lock(m_timingMutex);
    if (m_timing)
        return;
    if (m_cpuOnly) {
        m_timing = makeCpuBackend();
        m_vulkan = false;
    } else {
        gpu::BackendChoice choice = gpu::makeAttentionBackend();
        m_timing = std::move(choice.backend);
        m_vulkan = choice.vulkan;
        m_vulkanBackend = choice.vulkanBackend;
        // The copy kernel's bandwidth, what the Profile view sets achieved GB/s against
        // (GPU.md "Timing"): the median of 3 repeats after a warm-up, over 16 MiB on CPU
        // emulations (about 10-25 ms a copy on lavapipe), 256 MiB (past any L2) on GPUs.
        if (m_vulkanBackend) {
            const std::size_t bytes =
                m_vulkanBackend->isCpuEmulation() ? std::size_t{16} << 20 : std::size_t{256} << 20;
            if (auto gbs = m_vulkanBackend->measureCopyBandwidth(bytes, 4);
                gbs.ok() && gbs->size() == 4) {
                std::vector<double> measured(gbs->begin() + 1, gbs->end());
                std::sort(measured.begin(), measured.end());
                m_copyGBs = measured[1];
            }
        }
    }
    m_emulation = m_timing->isCpuEmulation();
    m_backendName = qs(m_timing->name());
    m_timingReady = true;
}

const Capture& Engine::captureFor(const AnalysisRequest& request) {
    if (!m_capture || m_model != request.model.get() || m_tokens != request.tokens) {
        m_reference.reset();
        m_runCache.clear();
        m_qualityCache.clear();
        m_capture.reset();
        auto capture = request.model->captureTokens(request.tokens);
        if (!capture.ok())
            throw Error(ErrorCode::InvalidArgument, capture.message());
        m_capture = std::make_shared<const Capture>(std::move(capture).value());
        m_model = request.model.get();
        m_tokens = request.tokens;
    }
    return *m_capture;
}

const ExactReference& Engine::referenceFor(const AnalysisRequest& request,
                                           const EvalOptions& options) {
    if (!m_reference || m_referenceContext != request.contextTokens ||
        (options.modelQuality && !m_referenceQuality)) {
        m_reference.reset();
        m_runCache.clear();
        m_qualityCache.clear();
        auto ref = computeExactReference(*m_capture, request.model.get(), *m_backend, options);
        if (!ref.ok())
            throw Error(ErrorCode::Internal, ref.message());
        m_reference = std::move(ref).value();
        m_referenceContext = request.contextTokens;
        m_referenceQuality = options.modelQuality;
    }
    return *m_reference;
}

std::shared_ptr<const views::AnalysisData> Engine::analyze(const AnalysisRequest& request,
                                                           const std::atomic<bool>& cancel) {
    std::lock_guard lock(m_mutex);
    if (cancel.load())
        return nullptr;
    QElapsedTimer timer;
    timer.start();
    ensureBackend();
    const Capture& capture = captureFor(request);
    const ModelConfig& config = capture.config;
    const int n = capture.tokenCount();
    const int nctx = request.contextTokens;
    if (nctx < 1 || nctx >= n)
        throw Error(ErrorCode::InvalidArgument,
                    "the prompt needs at least two tokens (a context and a probe)");

    EvalOptions options;
    options.contextTokens = nctx;
    options.modelQuality = request.modelQuality;
    options.attentionMaps = request.maps;
    options.keepCompressed = true;
    options.cancel = &cancel;
    QElapsedTimer prep;
    prep.start();
    EvalOptions referenceOptions = options;
    referenceOptions.modelQuality = request.modelQuality;
    const ExactReference& reference = referenceFor(request, referenceOptions);
    options.modelQuality = request.modelQuality && !request.deferQuality;
    if (qEnvironmentVariableIsSet("KVS_STUDIO_TRACE"))
        std::fprintf(stderr, "analysis: capture + reference %.1f ms (total so far %.1f ms)\n",
                     static_cast<double>(prep.nsecsElapsed()) * 1e-6,
                     static_cast<double>(timer.nsecsElapsed()) * 1e-6);

    auto data = std::make_shared<views::AnalysisData>();
    data->generation = request.generation;
    data->provenance = request.provenance;
    data->provenance.contextTokens = nctx;
    data->provenance.probeTokens = n - nctx;
    data->provenance.schemes = request.settings;
    data->provenance.backend = QStringLiteral("metrics: %1").arg(qs(m_backend->name()));
    data->tokenTexts = request.tokenTexts;
    data->contextTokens = nctx;
    data->probeTokens = n - nctx;
    data->layers = config.layers;
    data->heads = config.heads;
    data->kvHeads = config.kvHeads;
    data->headDim = config.headDim;
    // The timing backend when it is ready (it may still be starting on another worker).
    std::unique_lock timingLock(m_timingMutex, std::try_to_lock);
    AttentionBackend* timing = timingLock.owns_lock() ? m_timing.get() : nullptr;
    data->backendName = timing ? m_backendName : QStringLiteral("(starting)");
    data->evaluationBackend = qs(m_backend->name());
    data->backendIsGpu = timing && m_vulkan;
    data->cpuEmulation = !timing || m_emulation;
    data->deviceBandwidthGBs = timing && m_vulkan ? m_copyGBs : 0.0;
    data->timingsPending = request.timings && !timing;
    data->provenance.backend += QStringLiteral("; timings: %1").arg(data->backendName);

    int index = 0;
    // Results of settings that did not change are reused: a slider move re-evaluates one scheme.
    const QString flags = QStringLiteral("|%1%2%3")
                              .arg(request.maps ? 'm' : '-')
                              .arg(options.modelQuality ? 'q' : '-')
                              .arg(request.timings && timing ? 't' : '-');
    if (m_runCache.size() > 64)
        m_runCache.clear();
    // A RenderDoc capture brackets the timing passes below (cached runs are timed again).
    std::optional<gpu::RenderDocCapture> renderDoc;
    if (request.renderDocCapture) {
        if (!timing)
            data->renderDocError = QStringLiteral("the Vulkan backend is still starting");
        else if (!m_vulkanBackend)
            data->renderDocError =
                QStringLiteral("the timing backend is the CPU reference: no GPU work to capture");
        else if (renderDoc.emplace(m_vulkanBackend->nativeInstance()); !renderDoc->active())
            data->renderDocError = qs(renderDoc->error());
    }
    for (const QString& text : request.settings) {
        if (cancel.load())
            return nullptr;
        if (const auto hit = m_runCache.find(text + flags);
            hit != m_runCache.end() && !(renderDoc && renderDoc->active())) {
            views::SchemeRun run = hit->second;
            run.colorIndex = index++;
            data->runs.push_back(std::move(run));
            continue;
        }
        auto parsed = SchemeSetting::parse(text.toStdString());
        if (!parsed.ok())
            throw Error(ErrorCode::InvalidArgument, parsed.message());
        const SchemeSetting setting = std::move(parsed).value();
        QElapsedTimer step;
        step.start();
        auto result =
            evaluate(capture, request.model.get(), setting, *m_backend, options, &reference);
        const double evalMs = static_cast<double>(step.nsecsElapsed()) * 1e-6;
        step.restart();
        if (cancel.load())
            return nullptr;
        if (!result.ok())
            throw Error(ErrorCode::Internal, text.toStdString() + ": " + result.message());
        views::SchemeRun run;
        run.setting = text;
        run.schemeId = qs(setting.id);
        const Scheme* scheme = findScheme(setting.id);
        run.displayName = scheme ? qs(scheme->info().displayName) : run.schemeId;
        run.colorIndex = index++;
        run.eval = std::move(result).value();

        // The heads evaluate() measured (options.keepCompressed): no second compression.
        const auto compressed = std::move(run.eval.compressed);
        run.eval.compressed.clear();
        for (const auto& layer : compressed)
            for (const CompressedHead& h : layer) {
                views::KeptTokens kept;
                kept.positions = h.positions;
                kept.weights.reserve(h.positions.size());
                for (std::size_t i = 0; i < h.positions.size(); ++i)
                    kept.weights.push_back(i < h.logWeights.size() ? std::exp(h.logWeights[i])
                                                                   : 1.0f);
                run.kept.push_back(std::move(kept));
            }
        const double compressMs = static_cast<double>(step.nsecsElapsed()) * 1e-6;
        step.restart();
        if (request.maps) {
            run.maps.resize(run.eval.heads.size());
            for (std::size_t k = 0; k < run.eval.heads.size(); ++k) {
                const HeadMetrics& hm = run.eval.heads[k];
                views::HeadMaps& maps = run.maps[k];
                const auto& keptPositions =
                    k < run.kept.size() ? run.kept[k].positions : std::vector<std::int32_t>{};
                for (std::size_t j = 0; j < hm.exactMap.size() && j < hm.compressedMap.size();
                     ++j) {
                    const Matrix& e = hm.exactMap[j];
                    maps.difference.push_back(hm.compressedMap[j] - e);
                    std::vector<double> mass(static_cast<std::size_t>(e.rows()), 1.0);
                    for (Eigen::Index r = 0; r < e.rows(); ++r) {
                        double sum = 0;
                        for (std::int32_t p : keptPositions)
                            if (p >= 0 && p < e.cols())
                                sum += static_cast<double>(e(r, p));
                        mass[static_cast<std::size_t>(r)] = std::max(0.0, 1.0 - sum);
                    }
                    maps.rowMass.push_back(std::move(mass));
                }
            }
        }
        const double mapsMs = static_cast<double>(step.nsecsElapsed()) * 1e-6;
        step.restart();
        if (request.timings && timing) {
            // The probe queries against each layer's compressed context, as one layer call.
            const int g = config.groupSize();
            QElapsedTimer wall;
            wall.start();
            for (int l = 0; l < config.layers && !cancel.load(); ++l) {
                const auto& layer = compressed[static_cast<std::size_t>(l)];
                std::vector<Matrix> queries;
                for (const KvHeadCapture& kv : capture.layers[static_cast<std::size_t>(l)].kvHeads)
                    for (const Matrix& q : kv.queries)
                        queries.push_back(q.bottomRows(n - nctx));
                LayerAttendRequest req;
                req.heads = std::span<const CompressedHead>(layer);
                req.queries = std::span<const Matrix>(queries);
                req.groupSize = g;
                req.options.scale = layerAttentionScale(config, l);
                auto out = timing->attendLayer(req);
                if (!out.ok())
                    throw Error(ErrorCode::Internal, out.message());
                run.layerAllocation.push_back(out->empty() ? DeviceAllocation{}
                                                           : out->front().allocation);
                for (const AttendResult& r : out.value())
                    for (const DispatchTiming& t : r.timings) {
                        run.dispatches.push_back(t);
                        run.dispatchLayer.push_back(l);
                    }
            }
            run.attendWallMicroseconds = static_cast<double>(wall.nsecsElapsed()) * 1e-3;
        }
        if (qEnvironmentVariableIsSet("KVS_STUDIO_TRACE"))
            std::fprintf(stderr,
                         "analysis %s: evaluate %.1f ms, compressAll %.1f ms, maps %.1f ms, "
                         "timed attention %.1f ms\n",
                         qPrintable(text), evalMs, compressMs, mapsMs,
                         static_cast<double>(step.nsecsElapsed()) * 1e-6);
        m_runCache[text + flags] = run;
        data->runs.push_back(std::move(run));
    }
    for (views::SchemeRun& run : data->runs) {
        if (!run.eval.quality)
            if (const auto known = request.knownQuality.find(run.setting);
                known != request.knownQuality.end())
                run.eval.quality = known->second;
        data->qualityPending = data->qualityPending || (request.modelQuality && !run.eval.quality);
    }
    if (renderDoc && renderDoc->active()) {
        auto path = renderDoc->finish();
        if (path.ok())
            data->renderDocCapture = qs(path.value());
        else
            data->renderDocError = qs(path.message());
    }
    data->computeMilliseconds = static_cast<double>(timer.nsecsElapsed()) * 1e-6;
    return data;
}

std::shared_ptr<const views::AnalysisData>
Engine::addQuality(const std::shared_ptr<const views::AnalysisData>& analysis,
                   const AnalysisRequest& request, const std::atomic<bool>& cancel) {
    std::lock_guard lock(m_mutex);
    if (cancel.load())
        return nullptr;
    QElapsedTimer timer;
    timer.start();
    ensureBackend();
    const Capture& capture = captureFor(request);
    EvalOptions options;
    options.contextTokens = request.contextTokens;
    options.modelQuality = true;
    options.attentionMaps = false;
    options.cancel = &cancel;
    const ExactReference& reference = referenceFor(request, options);
    auto data = std::make_shared<views::AnalysisData>(*analysis);
    for (views::SchemeRun& run : data->runs) {
        if (run.eval.quality)
            continue;
        if (const auto hit = m_qualityCache.find(run.setting); hit != m_qualityCache.end()) {
            run.eval.quality = hit->second;
            continue;
        }
        auto parsed = SchemeSetting::parse(run.setting.toStdString());
        if (!parsed.ok())
            continue;
        auto r =
            evaluate(capture, request.model.get(), parsed.value(), *m_backend, options, &reference);
        if (cancel.load())
            return nullptr;
        if (!r.ok())
            throw Error(ErrorCode::Internal, run.setting.toStdString() + ": " + r.message());
        run.eval.quality = r.value().quality;
        if (run.eval.quality)
            m_qualityCache[run.setting] = *run.eval.quality;
    }
    data->qualityPending = false;
    data->computeMilliseconds += static_cast<double>(timer.nsecsElapsed()) * 1e-6;
    return data;
}

std::shared_ptr<const views::SweepData> Engine::sweep(const AnalysisRequest& request,
                                                      const std::atomic<bool>& cancel) {
    std::lock_guard lock(m_mutex);
    if (cancel.load())
        return nullptr;
    QElapsedTimer timer;
    timer.start();
    ensureBackend();
    const Capture& capture = captureFor(request);
    EvalOptions options;
    options.contextTokens = request.contextTokens;
    options.modelQuality = request.modelQuality;
    options.attentionMaps = false;
    options.cancel = &cancel;
    const ExactReference& reference = referenceFor(request, options);
    auto data = std::make_shared<views::SweepData>();
    data->generation = request.generation;
    int index = 0;
    for (const QString& text : request.settings) {
        const int color = index++;
        auto parsed = SchemeSetting::parse(text.toStdString());
        if (!parsed.ok())
            continue;
        SchemeSetting base = std::move(parsed).value();
        const auto plan = sweepPlan(base, request.contextTokens);
        if (!plan)
            continue;
        if (plan->parameter == "keep") {
            base.params.erase("tokens");
            base.params.erase("bytes");
        }
        views::TradeoffCurve curve;
        curve.baseSetting = text;
        curve.schemeId = qs(base.id);
        const Scheme* scheme = findScheme(base.id);
        curve.displayName = scheme ? qs(scheme->info().displayName) : curve.schemeId;
        curve.parameter = qs(plan->parameter);
        curve.colorIndex = color;
        for (double v : plan->values) {
            if (cancel.load())
                return nullptr;
            SchemeSetting s = base;
            s.params[plan->parameter] = v;
            auto r = evaluate(capture, request.model.get(), s, *m_backend, options, &reference);
            if (!r.ok())
                continue; // a budget the scheme cannot meet: no point
            curve.points.push_back({v, std::move(r).value()});
        }
        std::vector<double> kept;
        std::vector<double> error;
        for (const views::CurvePoint& p : curve.points) {
            const double tokens = meanKeptTokens(p.result);
            if (tokens < request.contextTokens) { // keep-everything points have no error to fit
                kept.push_back(tokens);
                error.push_back(p.result.attentionError);
            }
        }
        const SlopeFit fit = fitLogLog(kept, error);
        if (fit.points >= 2) {
            curve.slope = fit.slope;
            curve.slopeR2 = fit.r2;
        }
        std::sort(curve.points.begin(), curve.points.end(), [](const auto& a, const auto& b) {
            return a.result.bytes.total() < b.result.bytes.total();
        });
        addTheoryOverlay(curve, request.contextTokens);
        data->curves.push_back(std::move(curve));
    }
    data->computeMilliseconds = static_cast<double>(timer.nsecsElapsed()) * 1e-6;
    return data;
}

} // namespace kvs::studio
