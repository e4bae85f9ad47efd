// SPDX-License-Identifier: MIT
// The studio's time-against-context-length measurement (Engine::scaling): every compared
// setting compresses the first L tokens of the prompt for a few context lengths L, and the probe
// queries attend to each layer's compressed context on the timing backend.
#include "analysis.h"

#include "kvs/scheme.h"
#include "kvs/status.h"

#include <QElapsedTimer>
#include <algorithm>
#include <cmath>

namespace kvs::studio {

namespace {

// One warm-up (pipelines of a new storage form are created on first use), then the median of
// five: lavapipe's timings vary by 2x between runs on a loaded machine (GPU.md), and three
// still left single outliers in the studio's chart on the 2-core CI-class machine.
constexpr int kWarmup = 1;
constexpr int kRepeats = 5;

double medianOf(std::vector<double> values) {
    if (values.empty())
        return 0.0;
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

} // namespace

std::vector<int> scalingLengths(int contextTokens, int points) {
    std::vector<int> lengths;
    if (contextTokens < 1 || points < 1)
        return lengths;
    const double n = contextTokens;
    const double lo = std::min(n, std::max(8.0, n / 32.0));
    for (int i = 0; i < points; ++i) {
        const double t = points == 1 ? 1.0 : static_cast<double>(i) / (points - 1);
        const int v =
            std::clamp(static_cast<int>(std::lround(lo * std::pow(n / lo, t))), 1, contextTokens);
        if (lengths.empty() || v > lengths.back())
            lengths.push_back(v);
    }
    return lengths;
}

std::shared_ptr<const views::ScalingData> Engine::scaling(const AnalysisRequest& request,
                                                          const std::atomic<bool>& cancel) {
    std::lock_guard scalingLock(m_scalingMutex);
    if (cancel.load() || !m_timingReady.load())
        return nullptr;
    QElapsedTimer timer;
    timer.start();
    std::shared_ptr<const Capture> capture;
    {
        // The live analysis made the capture: fetch it under the job lock, never recompute it
        // (a request for another prompt is stale).
        std::lock_guard lock(m_mutex);
        if (!m_capture || m_model != request.model.get() || m_tokens != request.tokens)
            return nullptr;
        capture = m_capture;
    }
    // Set once before m_timingReady and never changed: no lock needed to use it.
    AttentionBackend* timing = m_timing.get();
    const ModelConfig& config = capture->config;
    const int n = capture->tokenCount();
    const int nctx = request.contextTokens;
    if (nctx < 1 || nctx >= n)
        throw Error(ErrorCode::InvalidArgument,
                    "the prompt needs at least two tokens (a context and a probe)");

    const QString cacheKey =
        QStringLiteral("%1|%2").arg(reinterpret_cast<quintptr>(capture.get())).arg(nctx);
    if (cacheKey != m_scalingCacheKey || m_scalingCache.size() > 64) {
        m_scalingCache.clear();
        m_scalingCacheKey = cacheKey;
    }

    auto data = std::make_shared<views::ScalingData>();
    data->generation = request.generation;
    data->backendName = m_backendName;
    data->backendIsGpu = m_vulkan;
    data->cpuEmulation = m_emulation;
    data->probeTokens = n - nctx;
    data->repeats = kRepeats;

    // The probe queries of every layer, the same at every context length.
    const int g = config.groupSize();
    std::vector<std::vector<Matrix>> queries(static_cast<std::size_t>(config.layers));
    for (int l = 0; l < config.layers; ++l)
        for (const KvHeadCapture& kv : capture->layers[static_cast<std::size_t>(l)].kvHeads)
            for (const Matrix& q : kv.queries)
                queries[static_cast<std::size_t>(l)].push_back(q.bottomRows(n - nctx));
    const std::vector<int> lengths = scalingLengths(nctx);

    int index = 0;
    for (const QString& text : request.settings) {
        const int color = index++;
        if (const auto hit = m_scalingCache.find(text); hit != m_scalingCache.end()) {
            views::ScalingSeries series = hit->second;
            series.colorIndex = color;
            data->series.push_back(std::move(series));
            continue;
        }
        auto parsed = SchemeSetting::parse(text.toStdString());
        if (!parsed.ok())
            continue;
        const SchemeSetting setting = std::move(parsed).value();
        views::ScalingSeries series;
        series.setting = text;
        const Scheme* scheme = findScheme(setting.id);
        series.displayName = scheme ? QString::fromStdString(scheme->info().displayName) : text;
        series.colorIndex = color;
        for (const int length : lengths) {
            if (cancel.load())
                return nullptr;
            auto compressed = compressAll(*capture, setting, length);
            if (!compressed.ok())
                continue; // a budget the scheme cannot meet at this length: no point
            views::ScalingPoint point;
            point.contextTokens = length;
            for (const auto& layer : compressed.value())
                for (const CompressedHead& h : layer)
                    point.cacheBytes += h.bytes().total();
            std::vector<double> device;
            std::vector<double> wall;
            for (int r = 0; r < kWarmup + kRepeats; ++r) {
                double deviceUs = 0;
                std::size_t bytesRead = 0;
                QElapsedTimer clock;
                clock.start();
                for (int l = 0; l < config.layers; ++l) {
                    if (cancel.load())
                        return nullptr;
                    LayerAttendRequest req;
                    req.heads = std::span<const CompressedHead>(
                        compressed.value()[static_cast<std::size_t>(l)]);
                    req.queries = std::span<const Matrix>(queries[static_cast<std::size_t>(l)]);
                    req.groupSize = g;
                    req.options.scale = layerAttentionScale(config, l);
                    auto out = timing->attendLayer(req);
                    if (!out.ok())
                        throw Error(ErrorCode::Internal, out.message());
                    for (const AttendResult& a : out.value())
                        for (const DispatchTiming& t : a.timings) {
                            deviceUs += t.microseconds;
                            bytesRead += t.bytesRead;
                        }
                }
                if (r < kWarmup)
                    continue;
                wall.push_back(static_cast<double>(clock.nsecsElapsed()) * 1e-3);
                device.push_back(deviceUs);
                point.bytesRead = bytesRead;
            }
            point.deviceMicroseconds = medianOf(device);
            point.wallMicroseconds = medianOf(wall);
            series.points.push_back(point);
        }
        m_scalingCache[text] = series;
        data->series.push_back(std::move(series));
    }
    data->computeMilliseconds = static_cast<double>(timer.nsecsElapsed()) * 1e-6;
    return data;
}

} // namespace kvs::studio
