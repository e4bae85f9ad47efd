// SPDX-License-Identifier: MIT
// The studio's analysis work on the session's workers.
#include "analysis.h"

#include "kvs/gpu/renderdoc.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/probe_attention.h"
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

QString displayNameOf(const std::string& id) {
    const Scheme* scheme = findScheme(id);
    return scheme ? qs(scheme->info().displayName) : qs(id);
}

// The scheme is a codec, or a chain with a codec stage: the Rate view draws it.
bool quantizesOf(const std::string& id) {
    for (const std::string& stage : splitSchemeChain(id))
        if (const Scheme* scheme = findScheme(stage); scheme && scheme->info().family == "codec")
            return true;
    return false;
}

SchemeSetting parseSetting(const QString& text) {
    return SchemeSetting::parse(text.toStdString()).valueOrThrow();
}

bool trace() {
    return qEnvironmentVariableIsSet("KVS_STUDIO_TRACE");
}

// "−1", "−½": a theory's exponent as the chart's guide label writes it.
QString exponentText(double exponent) {
    if (exponent == -0.5)
        return QStringLiteral("\u2212\u00bd");
    return QString::number(exponent).replace(QLatin1Char('-'), QChar(0x2212));
}

// A follow-up job's evaluation options: the request's split, no maps.
EvalOptions jobOptions(const AnalysisRequest& request, bool modelQuality,
                       const std::atomic<bool>& cancel) {
    EvalOptions options;
    options.contextTokens = request.contextTokens;
    options.modelQuality = modelQuality;
    options.attentionMaps = false;
    options.cancel = &cancel;
    return options;
}

double msOf(const QElapsedTimer& t) {
    return static_cast<double>(t.nsecsElapsed()) * 1e-6;
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

// The curve's theory overlay from its sweep (points in increasing bytes) and the scheme's theory.
void setTheoryOverlay(views::TradeoffCurve& curve, const Sweep& sweep, int contextTokens) {
    const Scheme* scheme = findScheme(curve.schemeId.toStdString());
    const TheoryOverlay overlay =
        theoryOverlay(sweep, scheme ? scheme->info().theory : ScalingTheory{}, contextTokens);
    curve.boundRho = overlay.boundRho;
    curve.boundTokens = overlay.boundTokens;
    curve.boundKeptTokens = overlay.boundKeptTokens;
    curve.showCoresetBound = overlay.coresetBound;
    if (!std::isfinite(overlay.slope))
        return;
    curve.theorySlope = overlay.slope;
    curve.theoryLabel = QStringLiteral("%1: %2, error \u221d m^%3")
                            .arg(curve.displayName, qs(overlay.name), exponentText(overlay.slope));
    curve.guideX0 = overlay.guideX0;
    curve.guideY0 = overlay.guideY0;
    curve.guideX1 = overlay.guideX1;
    curve.guideY1 = overlay.guideY1;
}

} // namespace

void addTheoryOverlay(views::TradeoffCurve& curve, int contextTokens) {
    Sweep sweep;
    for (const views::CurvePoint& p : curve.points)
        sweep.points.push_back({p.value, p.result, meanKeptTokens(p.result)});
    setTheoryOverlay(curve, sweep, contextTokens);
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
    const auto& mapsA = current.runs[static_cast<std::size_t>(run)].maps;
    const auto& mapsB = baseline.runs[static_cast<std::size_t>(baselineRun)].maps;
    if (!mapsA || !mapsB || mapsA->size() != mapsB->size())
        return nullptr;
    const auto& a = *mapsA;
    const auto& b = *mapsB;
    auto out = std::make_shared<std::vector<views::HeadMaps>>(a.size());
    for (std::size_t h = 0; h < a.size(); ++h) {
        const auto& ca = a[h].compressed;
        const auto& cb = b[h].compressed;
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

QString sweepKey(const QString& setting) {
    auto parsed = SchemeSetting::parse(setting.toStdString());
    if (!parsed.ok())
        return setting;
    const SchemeSetting& s = parsed.value();
    const auto plan = sweepPlan(s, 100);
    return plan ? qs(sweepBase(s, plan->parameter).toString()) : qs(s.toString());
}

std::shared_ptr<const Capture> CaptureStore::get(const std::shared_ptr<const Model>& model,
                                                 const std::vector<TokenId>& tokens,
                                                 const std::atomic<bool>* cancel) {
    std::lock_guard lock(m_mutex);
    if (m_capture && m_model.lock() == model && m_tokens == tokens)
        return m_capture;
    m_capture.reset(); // the old capture goes before the new one is made
    CaptureOptions options;
    options.cancel = cancel;
    options.progress = m_progress;
    auto capture = model->captureTokens(tokens, options);
    if (!capture.ok())
        throw capture.error();
    m_forwardPasses.fetch_add(1);
    m_capture = std::make_shared<const Capture>(std::move(capture).value());
    m_model = model;
    m_tokens = tokens;
    return m_capture;
}

std::shared_ptr<const ExactReference>
CaptureStore::reference(const std::shared_ptr<const Capture>& capture, const Model* model,
                        AttentionBackend& backend, const EvalOptions& options) {
    std::lock_guard lock(m_referenceMutex);
    const bool quality = model && options.modelQuality;
    const int ctx = resolveContextTokens(options.contextTokens, capture->tokenCount());
    if (m_reference && m_referenceCapture.lock() == capture && m_reference->contextTokens == ctx &&
        m_referenceBackend == backend.name() && (m_referenceQuality || !quality))
        return m_reference;
    m_reference.reset(); // the old one goes before the new one is made
    m_reference = std::make_shared<const ExactReference>(
        computeExactReference(*capture, model, backend, options).valueOrThrow());
    m_referencesComputed.fetch_add(1);
    m_referenceCapture = capture;
    m_referenceBackend = backend.name();
    m_referenceQuality = quality;
    return m_reference;
}

Engine::Engine(bool cpuOnly, std::shared_ptr<CaptureStore> captures)
    : m_cpuOnly(cpuOnly),
      m_captures(captures ? std::move(captures) : std::make_shared<CaptureStore>()) {}
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

const Capture& Engine::captureFor(const AnalysisRequest& request, const std::atomic<bool>& cancel) {
    if (!m_capture || m_model != request.model.get() || m_tokens != request.tokens) {
        m_reference.reset();
        m_referenceContext = -1;
        m_runCache.clear();
        m_untimedHeads.clear();
        m_qualityCache.clear();
        m_spectrum.reset();
        m_headSpectra.reset();
        m_streamingReference.reset();
        m_capture.reset();
        m_capture = m_captures->get(request.model, request.tokens, &cancel);
        m_model = request.model.get();
        m_tokens = request.tokens;
    }
    return *m_capture;
}

const ExactReference& Engine::referenceFor(const AnalysisRequest& request,
                                           const EvalOptions& options) {
    // Shared with the session's other engines. A reference of the same capture and split (one
    // that also has the probe logits) has the same numbers: the caches made from the old one stay.
    auto reference = m_captures->reference(m_capture, request.model.get(), *m_backend, options);
    if (m_referenceContext != reference->contextTokens) {
        m_runCache.clear();
        m_untimedHeads.clear();
        m_qualityCache.clear();
        m_referenceContext = reference->contextTokens;
    }
    m_reference = std::move(reference);
    return *m_reference;
}

namespace {

// What the charts need of each compressed head: kept positions and their weights e^{log-weight}.
std::vector<views::KeptTokens> keptTokens(const std::vector<std::vector<CompressedHead>>& heads) {
    std::vector<views::KeptTokens> out;
    for (const auto& layer : heads)
        for (const CompressedHead& h : layer) {
            views::KeptTokens kept;
            kept.positions = h.positions;
            kept.weights.reserve(h.positions.size());
            for (std::size_t i = 0; i < h.positions.size(); ++i)
                kept.weights.push_back(i < h.logWeights.size() ? std::exp(h.logWeights[i]) : 1.0f);
            out.push_back(std::move(kept));
        }
    return out;
}

// The evaluator's difference maps and per-row mass lost (total variation for weighted schemes,
// which move mass rather than lose it), moved into the views' per-head maps.
// The run's maps, moved out of its metrics; the exact ones point into the reference (every run
// of a reference shows the same exact attention, and the reference holds it already). KV head k
// of a run with `kvHeads` per layer reads query heads k·g … k·g + g − 1 of its layer (a
// rewritten model's fewer KV heads group the same query heads differently).
std::shared_ptr<const std::vector<views::HeadMaps>>
headMaps(std::vector<HeadMetrics>& heads, const std::shared_ptr<const ExactReference>& reference,
         int layers, int queryHeads) {
    auto maps = std::make_shared<std::vector<views::HeadMaps>>(heads.size());
    const int kvHeads = layers > 0 ? static_cast<int>(heads.size()) / layers : 0;
    const int group = kvHeads > 0 ? queryHeads / kvHeads : 0;
    for (std::size_t k = 0; k < heads.size(); ++k) {
        views::HeadMaps& m = (*maps)[k];
        m.reference = reference;
        m.layer = kvHeads > 0 ? static_cast<int>(k) / kvHeads : 0;
        m.firstQueryHead = kvHeads > 0 ? static_cast<int>(k) % kvHeads * group : 0;
        m.groupSize = group;
        m.compressed = std::move(heads[k].compressedMap);
        m.difference = std::move(heads[k].differenceMap);
        m.rowMass =
            std::move(heads[k].weighted ? heads[k].rowTotalVariation : heads[k].rowMassLost);
        heads[k].exactMap.clear();
        heads[k].compressedMap.clear();
        heads[k].differenceMap.clear();
        heads[k].rowMassLost.clear();
        heads[k].rowTotalVariation.clear();
    }
    return maps;
}

// The probe queries against each layer's compressed context on the timing backend, one layer
// call each: the Profile's dispatches and the device allocation per layer.
void timeRun(views::SchemeRun& run, const std::vector<std::vector<CompressedHead>>& compressed,
             const Capture& capture, AttentionBackend& timing, const std::atomic<bool>& cancel) {
    const int nctx = run.eval.contextTokens;
    const auto queries = probeQueries(capture, nctx);
    // A rewritten model's cache (post-hoc sharing) has fewer KV heads: the timing reads it with
    // the capture's queries, grouped as that cache is.
    ModelConfig config = capture.config;
    if (!compressed.empty() && !compressed.front().empty())
        config.kvHeads = static_cast<int>(compressed.front().size());
    const ProbeRequest probe = probeRequest(config, compressed, queries, &cancel);
    QElapsedTimer wall;
    wall.start();
    const auto layers = probeAttention(probe, timing).valueOrThrow();
    run.attendWallMicroseconds = static_cast<double>(wall.nsecsElapsed()) * 1e-3;
    for (std::size_t l = 0; l < layers.size(); ++l) {
        run.layerAllocation.push_back(layers[l].empty() ? DeviceAllocation{}
                                                        : layers[l].front().allocation);
        for (const AttendResult& r : layers[l])
            for (const DispatchTiming& t : r.timings) {
                run.dispatches.push_back(t);
                run.dispatchLayer.push_back(static_cast<int>(l));
            }
    }
}

} // namespace

std::shared_ptr<views::AnalysisData> Engine::newAnalysis(const AnalysisRequest& request,
                                                         const Capture& capture,
                                                         const AttentionBackend* timing) const {
    const ModelConfig& config = capture.config;
    const int n = capture.tokenCount();
    const int nctx = request.contextTokens;
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
    data->backendName = timing ? m_backendName : QStringLiteral("(starting)");
    data->evaluationBackend = qs(m_backend->name());
    data->backendIsGpu = timing && m_vulkan;
    data->cpuEmulation = !timing || m_emulation;
    data->deviceBandwidthGBs = timing && m_vulkan ? m_copyGBs : 0.0;
    data->timingsPending = request.timings && !timing;
    data->provenance.backend += QStringLiteral("; timings: %1").arg(data->backendName);
    return data;
}

views::SchemeRun Engine::evaluateRun(const QString& text, const AnalysisRequest& request,
                                     const EvalOptions& options, const ExactReference& reference,
                                     AttentionBackend* timing, bool keepHeads,
                                     const std::atomic<bool>& cancel) {
    const SchemeSetting setting = parseSetting(text);
    const Capture& capture = *m_capture;
    QElapsedTimer step;
    step.start();
    views::SchemeRun run;
    run.setting = text;
    run.schemeId = qs(setting.id);
    run.displayName = displayNameOf(setting.id);
    if (const kvs::Scheme* scheme = kvs::findScheme(setting.id))
        run.family = qs(scheme->info().family);
    run.quantizes = quantizesOf(setting.id);
    EvalOptions runOptions = options;
    runOptions.exactMaps = false; // the maps point into the reference instead
    auto evaluated =
        evaluate(capture, request.model.get(), setting, *m_backend, runOptions, &reference);
    if (!evaluated.ok() && isRefusal(evaluated.error().code())) {
        run.error = qs(evaluated.message());
        return run;
    }
    run.eval = std::move(evaluated).valueOrThrow();
    const double evalMs = msOf(step);
    step.restart();
    // The heads evaluate() measured (options.keepCompressed): no second compression.
    const auto compressed = std::move(run.eval.compressed);
    run.eval.compressed.clear();
    run.kept = keptTokens(compressed);
    if (request.maps)
        run.maps =
            headMaps(run.eval.heads, m_reference, capture.config.layers, capture.config.heads);
    const double mapsMs = msOf(step);
    step.restart();
    if (request.timings && timing)
        timeRun(run, compressed, capture, *timing, cancel);
    else if (keepHeads)
        m_untimedHeads[text] =
            std::make_shared<const std::vector<std::vector<CompressedHead>>>(std::move(compressed));
    if (trace())
        std::fprintf(stderr,
                     "analysis %s: evaluate %.1f ms (compress %.1f, attend %.1f), kept + maps %.1f "
                     "ms, timed attention %.1f ms\n",
                     qPrintable(text), evalMs, run.eval.compressMilliseconds,
                     run.eval.attendMilliseconds, mapsMs, msOf(step));
    return run;
}

Result<std::shared_ptr<const views::AnalysisData>>
Engine::analyze(const AnalysisRequest& request, const std::atomic<bool>& cancel) {
    return lockedJob<views::AnalysisData>(
        request, cancel,
        [&](const Capture& capture,
            const QElapsedTimer& timer) -> std::shared_ptr<const views::AnalysisData> {
            const int nctx = request.contextTokens;
            if (nctx < 1 || nctx >= capture.tokenCount())
                throw Error(ErrorCode::InvalidArgument,
                            "the prompt needs at least two tokens (a context and a probe)");

            EvalOptions options;
            options.contextTokens = nctx;
            // A deferred quality pass makes its own probe logits (on the quality engine): the
            // reference here skips the exact model's probe decode, a forward pass of the probe.
            options.modelQuality = request.modelQuality && !request.deferQuality;
            options.attentionMaps = request.maps;
            options.keepCompressed = true;
            options.cancel = &cancel;
            const ExactReference& reference = referenceFor(request, options);
            if (trace())
                std::fprintf(stderr, "analysis: capture + reference %.1f ms\n", msOf(timer));

            // The timing backend when it is ready (it may still be starting on another worker).
            std::unique_lock timingLock(m_timingMutex, std::try_to_lock);
            AttentionBackend* timing = timingLock.owns_lock() ? m_timing.get() : nullptr;
            auto data = newAnalysis(request, capture, timing);
            const bool deferTimings =
                timing && request.timings && request.deferEmulatedTimings && m_emulation;
            AttentionBackend* timeNow = deferTimings ? nullptr : timing;
            if (!m_spectrum || m_spectrumCapture != &capture || m_spectrumContext != nctx) {
                const std::vector<HeadSpectrum> spectra =
                    keySpectra(capture, request.model.get(), nctx).valueOrThrow();
                m_spectrum = std::make_shared<const SpectrumSummary>(summarizeSpectra(spectra));
                auto perHead = std::make_shared<std::vector<views::HeadSpectrumCurves>>();
                for (const HeadSpectrum& s : spectra)
                    perHead->push_back({s.layer, s.kvHead, summarizeSpectra({s})});
                m_headSpectra = std::move(perHead);
                m_spectrumCapture = &capture;
                m_spectrumContext = nctx;
            }
            data->spectrum = m_spectrum;
            data->headSpectra = m_headSpectra;

            // Results of settings that did not change are reused: a slider move re-evaluates one
            // scheme.
            const QString flags = QStringLiteral("|%1%2%3")
                                      .arg(request.maps ? 'm' : '-')
                                      .arg(options.modelQuality ? 'q' : '-')
                                      .arg(request.timings && timeNow ? 't'
                                           : deferTimings             ? 'd'
                                                                      : '-');
            // A RenderDoc capture brackets the timing passes below (cached runs are timed again).
            std::optional<gpu::RenderDocCapture> renderDoc;
            if (request.renderDocCapture) {
                if (!timing)
                    data->renderDocError = QStringLiteral("the Vulkan backend is still starting");
                else if (!m_vulkanBackend)
                    data->renderDocError = QStringLiteral(
                        "the timing backend is the CPU reference: no GPU work to capture");
                else if (renderDoc.emplace(m_vulkanBackend->nativeInstance()); !renderDoc->active())
                    data->renderDocError = qs(renderDoc->error());
            }
            const bool capturing = renderDoc && renderDoc->active();
            int index = 0;
            for (const QString& text : request.settings) {
                if (cancel.load())
                    return nullptr;
                views::SchemeRun run;
                if (const auto hit = m_runCache.find(text + flags);
                    hit != m_runCache.end() && !capturing) {
                    run = hit->second;
                } else {
                    run = evaluateRun(text, request, options, reference, timeNow, deferTimings,
                                      cancel);
                    if (cancel.load())
                        return nullptr;
                    m_runCache[text + flags] = run;
                }
                run.colorIndex = index++;
                data->timingsDeferred =
                    data->timingsDeferred ||
                    (deferTimings && run.dispatches.empty() && m_untimedHeads.contains(text));
                data->runs.push_back(std::move(run));
            }
            std::erase_if(m_untimedHeads, [&](const auto& entry) {
                return !request.settings.contains(entry.first);
            });
            // Keep only the settings shown: a run's maps are 3 × probe × context floats per
            // query head (hundreds of MB at a thousand tokens), and a slider leaves a trail of
            // settings nobody returns to.
            std::erase_if(m_runCache, [&](const auto& entry) {
                return !request.settings.contains(
                           entry.first.left(entry.first.size() - flags.size())) ||
                       !entry.first.endsWith(flags);
            });
            for (views::SchemeRun& run : data->runs) {
                if (!run.error.isEmpty())
                    continue;
                if (!run.eval.quality)
                    if (const auto known = request.knownQuality.find(run.setting);
                        known != request.knownQuality.end())
                        run.eval.quality = known->second;
                data->qualityPending =
                    data->qualityPending || (request.modelQuality && !run.eval.quality);
            }
            if (capturing) {
                auto path = renderDoc->finish();
                if (path.ok())
                    data->renderDocCapture = qs(path.value());
                else
                    data->renderDocError = qs(path.message());
            }
            data->computeMilliseconds = msOf(timer);
            return data;
        });
}

Result<std::shared_ptr<const views::AnalysisData>>
Engine::addTimings(const std::shared_ptr<const views::AnalysisData>& analysis,
                   const AnalysisRequest& request, const std::atomic<bool>& cancel) {
    return lockedJob<views::AnalysisData>(
        request, cancel,
        [&](const Capture& capture,
            const QElapsedTimer& timer) -> std::shared_ptr<const views::AnalysisData> {
            std::unique_lock timingLock(m_timingMutex, std::try_to_lock);
            AttentionBackend* timing = timingLock.owns_lock() ? m_timing.get() : nullptr;
            if (!timing)
                return nullptr;
            auto data = std::make_shared<views::AnalysisData>(*analysis);
            for (views::SchemeRun& run : data->runs) {
                const auto heads = m_untimedHeads.find(run.setting);
                if (!run.dispatches.empty() || heads == m_untimedHeads.end())
                    continue;
                timeRun(run, *heads->second, capture, *timing, cancel);
                if (cancel.load())
                    return nullptr;
                for (auto& [key, cached] : m_runCache)
                    if (key.startsWith(run.setting + QLatin1Char('|'))) {
                        cached.dispatches = run.dispatches;
                        cached.dispatchLayer = run.dispatchLayer;
                        cached.attendWallMicroseconds = run.attendWallMicroseconds;
                        cached.layerAllocation = run.layerAllocation;
                    }
                m_untimedHeads.erase(heads);
            }
            data->timingsDeferred = false;
            data->computeMilliseconds += msOf(timer);
            return data;
        });
}

Result<std::shared_ptr<const views::AnalysisData>>
Engine::addQuality(const std::shared_ptr<const views::AnalysisData>& analysis,
                   const AnalysisRequest& request, const std::atomic<bool>& cancel) {
    return lockedJob<views::AnalysisData>(
        request, cancel,
        [&](const Capture& capture,
            const QElapsedTimer& timer) -> std::shared_ptr<const views::AnalysisData> {
            const EvalOptions options = jobOptions(request, true, cancel);
            const ExactReference& reference = referenceFor(request, options);
            auto data = std::make_shared<views::AnalysisData>(*analysis);
            for (views::SchemeRun& run : data->runs) {
                if (run.eval.quality || !run.error.isEmpty())
                    continue;
                if (const auto hit = m_qualityCache.find(run.setting);
                    hit != m_qualityCache.end()) {
                    run.eval.quality = hit->second;
                    continue;
                }
                const SchemeSetting setting = parseSetting(run.setting);
                auto r = evaluate(capture, request.model.get(), setting, *m_backend, options,
                                  &reference);
                if (cancel.load())
                    return nullptr;
                if (!r.ok())
                    throw Error(r.error().code(), run.setting.toStdString() + ": " + r.message());
                run.eval.quality = r.value().quality;
                if (run.eval.quality)
                    m_qualityCache[run.setting] = *run.eval.quality;
            }
            data->qualityPending = false;
            data->computeMilliseconds += msOf(timer);
            return data;
        });
}

namespace {

// One scheme's trade-off curve from its sweep (points in increasing bytes).
views::TradeoffCurve tradeoffCurve(const QString& text, const SchemeSetting& base,
                                   const std::string& parameter, Sweep&& sweep, int contextTokens) {
    views::TradeoffCurve curve;
    curve.baseSetting = text;
    curve.schemeId = qs(base.id);
    curve.displayName = displayNameOf(base.id);
    if (const Scheme* scheme = findScheme(base.id))
        curve.family = qs(scheme->info().family);
    curve.quantizes = quantizesOf(base.id);
    curve.parameter = qs(parameter);
    for (int m = 0; m < views::kMetricCount; ++m) {
        const SlopeFit fit = sweepSlope(sweep, contextTokens, static_cast<Metric>(m));
        if (fit.points >= 2) {
            curve.slope[static_cast<std::size_t>(m)] = fit.slope;
            curve.slopeR2[static_cast<std::size_t>(m)] = fit.r2;
        }
    }
    std::sort(sweep.points.begin(), sweep.points.end(), [](const auto& a, const auto& b) {
        return a.result.bytes.total() < b.result.bytes.total();
    });
    setTheoryOverlay(curve, sweep, contextTokens); // before the results move into the curve
    for (SweepPoint& p : sweep.points)
        curve.points.push_back({p.value, std::move(p.result)});
    return curve;
}

// The lower-left Pareto front over every curve's points, per metric the chart can show.
void addParetoFronts(views::SweepData& data) {
    for (int m = 0; m < views::kMetricCount; ++m) {
        const auto metric = static_cast<views::Metric>(m);
        std::vector<double> x;
        std::vector<double> y;
        std::vector<views::CurvePointRef> refs;
        for (std::size_t c = 0; c < data.curves.size(); ++c)
            for (std::size_t i = 0; i < data.curves[c].points.size(); ++i) {
                if (data.curves[c].streaming)
                    break; // a front of one mode: streaming points answer another question
                const auto [px, py] = views::chartPoint(data.curves[c].points[i].result, metric);
                if (!views::chartPlottable(px, py))
                    continue;
                x.push_back(px);
                y.push_back(py);
                refs.push_back({static_cast<int>(c), static_cast<int>(i)});
            }
        for (const std::size_t i : paretoFront(x, y))
            data.paretoFront[static_cast<std::size_t>(m)].push_back(refs[i]);
    }
}

} // namespace

void Engine::addStreamingCurves(views::SweepData& data, const AnalysisRequest& request,
                                const Capture& capture, const EvalOptions& postPrefill,
                                const std::atomic<bool>& cancel) {
    EvalOptions options = postPrefill;
    options.mode = EvalMode::Streaming;
    options.attentionMaps = false;
    options.perLayerQuality = false;
    const bool quality = request.model && options.modelQuality;
    if (!m_streamingReference || m_streamingCapture.lock() != m_capture ||
        m_capture.get() != &capture ||
        m_streamingReference->contextTokens != request.contextTokens ||
        m_streamingQuality != quality) {
        m_streamingReference = std::make_shared<const ExactReference>(
            computeExactReference(capture, request.model.get(), *m_backend, options)
                .valueOrThrow());
        m_streamingCapture = m_capture;
        m_streamingQuality = quality;
    }
    int index = 0;
    for (const QString& text : request.settings) {
        const int color = index++;
        if (cancel.load())
            return;
        const SchemeSetting setting = parseSetting(text);
        const Scheme* scheme = findScheme(setting.id);
        if (!scheme) {
            data.streamingRefused << QStringLiteral("%1: unknown scheme").arg(text);
            continue;
        }
        if (!scheme->info().canStream) {
            data.streamingRefused << QStringLiteral("%1: %2").arg(
                displayNameOf(setting.id), qs(scheme->info().noStreamReason));
            continue;
        }
        const auto plan = sweepPlan(setting, request.contextTokens, 7, capture.config.kvHeads);
        if (!plan)
            continue;
        const SchemeSetting base = sweepBase(setting, plan->parameter);
        auto swept = runSweep(capture, request.model.get(), base, plan->parameter, plan->values,
                              *m_backend, options, m_streamingReference.get());
        if (cancel.load())
            return;
        if (!swept.ok()) {
            if (!isRefusal(swept.error().code()))
                throw Error(swept.error().code(),
                            text.toStdString() + " (streaming): " + swept.message());
            data.streamingRefused << QStringLiteral("%1: %2").arg(displayNameOf(setting.id),
                                                                  qs(swept.message()));
            continue;
        }
        Sweep sweep = std::move(swept).valueOrThrow();
        if (sweep.points.empty())
            continue;
        views::TradeoffCurve curve =
            tradeoffCurve(text, base, plan->parameter, std::move(sweep), request.contextTokens);
        curve.colorIndex = color;
        curve.streaming = true;
        curve.theorySlope =
            std::numeric_limits<double>::quiet_NaN(); // the guides are post-prefill's
        curve.showCoresetBound = false;
        data.curves.push_back(std::move(curve));
    }
}

Result<std::shared_ptr<const views::SweepData>> Engine::sweep(const AnalysisRequest& request,
                                                              const std::atomic<bool>& cancel) {
    return lockedJob<views::SweepData>(
        request, cancel,
        [&](const Capture& capture,
            const QElapsedTimer& timer) -> std::shared_ptr<const views::SweepData> {
            const EvalOptions options = jobOptions(request, request.modelQuality, cancel);
            const ExactReference& reference = referenceFor(request, options);
            auto data = std::make_shared<views::SweepData>();
            data->generation = request.generation;
            int index = 0;
            for (const QString& text : request.settings) {
                const int color = index++;
                const SchemeSetting setting = parseSetting(text);
                const auto plan =
                    sweepPlan(setting, request.contextTokens, 7, capture.config.kvHeads);
                if (!plan)
                    continue; // nothing to sweep (the exact scheme at 32 bits has one point)
                const SchemeSetting base = sweepBase(setting, plan->parameter);
                auto swept = runSweep(capture, request.model.get(), base, plan->parameter,
                                      plan->values, *m_backend, options, &reference);
                if (cancel.load())
                    return nullptr;
                // A scheme that refuses its current setting too (the analysis's run says why)
                // has no curve; one that fails only elsewhere on the sweep fails the job.
                // (Rewritten models have no compressAll: their sweep errors are the job's.)
                const Scheme* scheme = findScheme(setting.id);
                if (!swept.ok() && isRefusal(swept.error().code()) && scheme &&
                    !scheme->info().transformsWeights) {
                    const auto current = compressAll(capture, setting, request.contextTokens, 0,
                                                     request.model.get());
                    if (!current.ok() && isRefusal(current.error().code()))
                        continue;
                }
                Sweep sweep = std::move(swept).valueOrThrow();
                if (sweep.points.empty())
                    continue; // every point refused (a group size the head dim refuses, ...)
                views::TradeoffCurve curve = tradeoffCurve(text, base, plan->parameter,
                                                           std::move(sweep), request.contextTokens);
                curve.colorIndex = color;
                data->curves.push_back(std::move(curve));
            }
            if (request.streamingCurves)
                addStreamingCurves(*data, request, capture, options, cancel);
            if (cancel.load())
                return nullptr;
            addParetoFronts(*data);
            data->computeMilliseconds = msOf(timer);
            return data;
        });
}

} // namespace kvs::studio
