// SPDX-License-Identifier: MIT
// The studio's time-against-context-length measurement (Engine::scaling): every compared
// setting compresses the first L tokens of the prompt for a few context lengths L, and the probe
// queries attend to each layer's compressed context on the timing backend.
#include "analysis.h"

#include "kvs/probe_attention.h"
#include "kvs/scheme.h"
#include "kvs/status.h"
#include "kvs/sweep.h"

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

namespace {

// The probe attention of every layer at one context length, timed: warm-up, then the median of
// the repeats (device time summed over each pass's dispatches, and host wall time).
views::ScalingPoint timeLength(const ProbeRequest& probe, int length, AttentionBackend& timing) {
    views::ScalingPoint point;
    point.contextTokens = length;
    for (const auto& layer : probe.heads)
        for (const CompressedHead& h : layer)
            point.cacheBytes += h.bytes().total();
    std::vector<double> device;
    std::vector<double> wall;
    for (int r = 0; r < kWarmup + kRepeats; ++r) {
        QElapsedTimer clock;
        clock.start();
        const auto layers = probeAttention(probe, timing).valueOrThrow();
        const double wallUs = static_cast<double>(clock.nsecsElapsed()) * 1e-3;
        double deviceUs = 0;
        std::size_t bytesRead = 0;
        for (const auto& layer : layers)
            for (const AttendResult& a : layer)
                for (const DispatchTiming& t : a.timings) {
                    deviceUs += t.microseconds;
                    bytesRead += t.bytesRead;
                }
        if (r < kWarmup)
            continue;
        wall.push_back(wallUs);
        device.push_back(deviceUs);
        point.bytesRead = bytesRead;
    }
    point.deviceMicroseconds = median(device);
    point.wallMicroseconds = median(wall);
    return point;
}

} // namespace

Result<std::shared_ptr<const views::ScalingData>> Engine::scaling(const AnalysisRequest& request,
                                                                  const std::atomic<bool>& cancel) {
    return runEngineJob<views::ScalingData>(
        cancel, [&]() -> std::shared_ptr<const views::ScalingData> {
            std::lock_guard scalingLock(m_scalingMutex);
            if (cancel.load() || !m_timingReady.load())
                return nullptr;
            QElapsedTimer timer;
            timer.start();
            std::shared_ptr<const Capture> capture;
            {
                // The live analysis made the capture: fetch it under the job lock, never recompute
                // it (a request for another prompt is stale).
                std::lock_guard lock(m_mutex);
                if (!m_capture || m_model != request.model.get() || m_tokens != request.tokens)
                    return nullptr;
                capture = m_capture;
            }
            // Set once before m_timingReady and never changed: no lock needed to use it.
            AttentionBackend* timing = m_timing.get();
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
            const auto queries = probeQueries(*capture, nctx);
            ProbeRequest probe = probeRequest(capture->config, {}, queries, &cancel);
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
                const SchemeSetting setting =
                    SchemeSetting::parse(text.toStdString()).valueOrThrow();
                const Scheme* scheme = findScheme(setting.id);
                // A scheme that rewrites the model has a cache only through a prefill of the
                // rewritten model, once per length: not timed here (its cost is that of a dense
                // cache with its KV-head count).
                if (scheme && scheme->info().transformsWeights)
                    continue;
                views::ScalingSeries series;
                series.setting = text;
                series.displayName =
                    scheme ? QString::fromStdString(scheme->info().displayName) : text;
                series.colorIndex = color;
                for (const int length : lengths) {
                    if (cancel.load())
                        return nullptr;
                    auto compressed =
                        compressAll(*capture, setting, length, 0, request.model.get());
                    // A budget the scheme cannot meet at this length, or a model it refuses
                    // (the analysis's run says why): no point.
                    if (!compressed.ok() && isRefusal(compressed.error().code()))
                        continue;
                    probe.heads = compressed.valueOrThrow();
                    series.points.push_back(timeLength(probe, length, *timing));
                }
                m_scalingCache[text] = series;
                if (!series.points.empty())
                    data->series.push_back(std::move(series));
            }
            data->computeMilliseconds = static_cast<double>(timer.nsecsElapsed()) * 1e-6;
            return data;
        });
}

} // namespace kvs::studio
