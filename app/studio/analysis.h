// SPDX-License-Identifier: MIT
// The studio's analysis work, run on the session's workers: capture the prompt, compute the exact
// reference once per (prompt, split), evaluate each scheme setting with its attention maps, time
// the probe attention per dispatch, and sweep each scheme's budget for the trade-off curves. Each
// Engine keeps its backend and caches between jobs; one job uses an engine at a time.
#pragma once

#include "analysis_data.h"

#include "kvs/attention_backend.h"
#include "kvs/capture.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"

#include <QElapsedTimer>
#include <QStringList>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace kvs::gpu {
class VulkanBackend;
}

namespace kvs::studio {

struct AnalysisRequest {
    quint64 generation = 0;
    std::shared_ptr<const kvs::Model> model;
    std::vector<kvs::TokenId> tokens;
    QStringList tokenTexts;
    views::Provenance provenance;
    int contextTokens = 0; // resolved: 1 ≤ n_ctx < tokens
    QStringList settings;
    bool maps = true;         // attention maps + difference + per-row mass
    bool modelQuality = true; // next-token KL, Δ perplexity
    // Leave the model-level quality (a teacher-forced decode per scheme, the slow part) to
    // addQuality(), so that the maps and per-head metrics arrive first.
    bool deferQuality = true;
    // Model-level quality already known for settings of the same prompt and split (from the
    // previous results), so that a deferred pass does not blank it meanwhile.
    std::map<QString, kvs::ModelQuality> knownQuality;
    bool timings = true; // per-dispatch probe attention timings
    // Where the timing device is an emulation (lavapipe, or the CPU), leave the timed probe
    // attention to addTimings(): its times say nothing about a GPU's speed, and at a thousand
    // tokens it costs more than the analysis itself, so the maps and metrics come first.
    bool deferEmulatedTimings = false;
    // Bracket this analysis's GPU work (the timed probe attention of every setting, cached
    // settings included) in a RenderDoc capture; AnalysisData says where it went.
    bool renderDocCapture = false;
    // The sweeps also run each scheme that can stream in streaming mode (EvalMode::Streaming),
    // for the Trade-offs chart's second set of curves.
    bool streamingCurves = false;
};

// A scheme's refusal of a model or setting (bad parameter, unsupported combination): reported on
// its run while the other schemes still run. Anything else fails the whole job.
inline bool isRefusal(kvs::ErrorCode code) {
    return code == kvs::ErrorCode::InvalidArgument || code == kvs::ErrorCode::Unsupported;
}

// The context split actually used: `requested` when it leaves at least one probe token, else
// three quarters of the prompt.
int resolveContextTokens(int requested, int tokens);

// Fills the curve's theory overlay (TradeoffCurve::theorySlope, guide, coreset-bound medians)
// from its points (kvs::theoryOverlay with the scheme's theory); `contextTokens` tells
// compressing points from keep-everything ones.
void addTheoryOverlay(views::TradeoffCurve& curve, int contextTokens);

// Compare mode's difference maps: compressed attention of `current.runs[run]` minus that of
// `baseline.runs[baselineRun]`, per KV head (layer-major) and query head of its group. Null when
// the two analyses are not of the same model, prompt, split and head layout, or lack maps.
std::shared_ptr<const std::vector<views::HeadMaps>>
baselineDifference(const views::AnalysisData& current, int run, const views::AnalysisData& baseline,
                   int baselineRun);

// The setting without the swept parameter: settings that differ only in it share a curve.
QString sweepKey(const QString& setting);

// The context lengths the time-against-context chart measures: about `points` lengths spaced
// geometrically from max(8, n/32) (at most n) up to n = contextTokens, ascending, no repeats.
std::vector<int> scalingLengths(int contextTokens, int points = 5);

// Runs an engine job's work as a Result: a cancelled job yields a null snapshot, not an error;
// every other error keeps its code (out of memory included).
template <class T, class Fn>
Result<std::shared_ptr<const T>> runEngineJob(const std::atomic<bool>& cancel, Fn&& work) {
    auto result = catchErrors([&]() -> std::shared_ptr<const T> { return work(); });
    if (!result.ok() && (cancel.load() || result.error().code() == ErrorCode::Cancelled))
        return std::shared_ptr<const T>();
    return result;
}

// The session's capture: one forward pass per (model, prompt), shared by every engine (the live
// analysis, the quality pass, the sweeps), so that the captured tensors are held once and the
// model runs once. Only the newest capture is kept; engines hold theirs until they move on.
class CaptureStore {
public:
    // The capture of `tokens` by `model`: the one held when it matches, else a new forward pass
    // (callers asking meanwhile wait for it rather than run their own), which stops with
    // ErrorCode::Cancelled at the next layer once `cancel` is set.
    std::shared_ptr<const kvs::Capture> get(const std::shared_ptr<const kvs::Model>& model,
                                            const std::vector<kvs::TokenId>& tokens,
                                            const std::atomic<bool>* cancel = nullptr);
    // Told (layers done, layers) after every layer of a forward pass, on the worker running it.
    void setProgress(std::function<void(int, int)> progress) { m_progress = std::move(progress); }
    // Forward passes run so far (what the reuse tests count).
    int forwardPasses() const { return m_forwardPasses.load(); }

    // The exact reference of `capture` for options.contextTokens on `backend`: the one held when
    // it matches (one with the model's probe logits also serves a request without), else a new
    // one, which replaces it. Engines evaluating on the same backend share it.
    std::shared_ptr<const kvs::ExactReference>
    reference(const std::shared_ptr<const kvs::Capture>& capture, const kvs::Model* model,
              kvs::AttentionBackend& backend, const kvs::EvalOptions& options);
    int referencesComputed() const { return m_referencesComputed.load(); }

private:
    std::mutex m_referenceMutex; // apart from m_mutex: a capture request need not wait for it
    std::weak_ptr<const kvs::Capture> m_referenceCapture;
    std::string m_referenceBackend;
    bool m_referenceQuality = false;
    std::shared_ptr<const kvs::ExactReference> m_reference;
    std::atomic<int> m_referencesComputed{0};
    std::mutex m_mutex;
    std::weak_ptr<const kvs::Model> m_model;
    std::vector<kvs::TokenId> m_tokens;
    std::shared_ptr<const kvs::Capture> m_capture;
    std::atomic<int> m_forwardPasses{0};
    std::function<void(int, int)> m_progress;
};

class Engine {
public:
    // `cpuOnly`: the CPU reference backend; else Vulkan when it works (the CPU otherwise).
    // Engines given the same store share its captures (a store of its own otherwise).
    explicit Engine(bool cpuOnly, std::shared_ptr<CaptureStore> captures = nullptr);
    ~Engine();

    // Each job returns its snapshot, a null one when cancelled, or the error that stopped it
    // with its original code (a scheme's InvalidArgument, OutOfMemory, a backend's Io, ...).
    Result<std::shared_ptr<const views::AnalysisData>> analyze(const AnalysisRequest& request,
                                                               const std::atomic<bool>& cancel);
    // The analysis with the model-level quality of every run that lacks it.
    Result<std::shared_ptr<const views::AnalysisData>>
    addQuality(const std::shared_ptr<const views::AnalysisData>& analysis,
               const AnalysisRequest& request, const std::atomic<bool>& cancel);
    // The analysis with the timed probe attention of every run that was left without it
    // (AnalysisData::timingsDeferred). The timings also go to the cached runs, so that the next
    // analysis of the same settings has them at once. Null when cancelled.
    Result<std::shared_ptr<const views::AnalysisData>>
    addTimings(const std::shared_ptr<const views::AnalysisData>& analysis,
               const AnalysisRequest& request, const std::atomic<bool>& cancel);
    // Each scheme swept over its budget (kvs::sweepPlan): a budget the scheme cannot meet is no
    // point on its curve; any other error fails the job.
    Result<std::shared_ptr<const views::SweepData>> sweep(const AnalysisRequest& request,
                                                          const std::atomic<bool>& cancel);
    // Times the probe attention of every layer on the timing backend against the context
    // lengths of scalingLengths(), each setting compressing the first tokens at each length
    // (analysis_scaling.cpp). Null when cancelled or while the timing backend is starting. It
    // takes the engine's job lock only to fetch the capture, so analyses do not wait for it.
    Result<std::shared_ptr<const views::ScalingData>> scaling(const AnalysisRequest& request,
                                                              const std::atomic<bool>& cancel);
    // Creates the attention backend that times the probe attention (Vulkan start-up and, on
    // lavapipe, shader compilation take a while): call it on a worker early. Until it is done,
    // analyses come without timings.
    void startTimingBackend();
    bool timingReady() const { return m_timingReady.load(); }

private:
    // An engine job: one at a time (the job lock), nothing when already cancelled, on the
    // request's capture (made once per prompt), with a timer started for its compute time.
    template <class T, class Fn>
    Result<std::shared_ptr<const T>> lockedJob(const AnalysisRequest& request,
                                               const std::atomic<bool>& cancel, Fn&& work) {
        return runEngineJob<T>(cancel, [&]() -> std::shared_ptr<const T> {
            std::lock_guard lock(m_mutex);
            if (cancel.load())
                return nullptr;
            QElapsedTimer timer;
            timer.start();
            ensureBackend();
            return work(captureFor(request, cancel), timer);
        });
    }
    void ensureBackend();
    // The analysis snapshot's header: prompt, split, shapes, backends, provenance.
    std::shared_ptr<views::AnalysisData> newAnalysis(const AnalysisRequest& request,
                                                     const kvs::Capture& capture,
                                                     const kvs::AttentionBackend* timing) const;
    // One setting: evaluated with maps, kept tokens, and (with a timing backend) timed.
    // With keepHeads, its compressed heads are kept for a deferred timing pass.
    views::SchemeRun evaluateRun(const QString& text, const AnalysisRequest& request,
                                 const kvs::EvalOptions& options,
                                 const kvs::ExactReference& reference,
                                 kvs::AttentionBackend* timing, bool keepHeads,
                                 const std::atomic<bool>& cancel);
    const kvs::Capture& captureFor(const AnalysisRequest& request, const std::atomic<bool>& cancel);
    const kvs::ExactReference& referenceFor(const AnalysisRequest& request,
                                            const kvs::EvalOptions& options);
    // The sweeps' streaming curves (AnalysisRequest::streamingCurves), after the post-prefill
    // ones: each scheme that can stream, in the same colour; the others listed with the reason.
    void addStreamingCurves(views::SweepData& data, const AnalysisRequest& request,
                            const kvs::Capture& capture, const kvs::EvalOptions& postPrefill,
                            const std::atomic<bool>& cancel);

    std::mutex m_mutex;       // one job at a time
    std::mutex m_timingMutex; // guards m_timing while it is created
    std::atomic<bool> m_timingReady{false};
    bool m_cpuOnly;
    std::unique_ptr<kvs::AttentionBackend> m_backend; // evaluation: the CPU reference
    std::unique_ptr<kvs::AttentionBackend> m_timing;  // timed probe attention (Vulkan or CPU)
    gpu::VulkanBackend* m_vulkanBackend = nullptr;    // inside m_timing, when it is Vulkan
    double m_copyGBs = 0.0;                           // the device's copy-kernel bandwidth
    bool m_vulkan = false;
    bool m_emulation = true;
    QString m_backendName;
    std::shared_ptr<CaptureStore> m_captures;
    const kvs::Model* m_model = nullptr;
    std::vector<kvs::TokenId> m_tokens;
    std::shared_ptr<const kvs::Capture> m_capture;
    std::shared_ptr<const kvs::ExactReference> m_reference; // from m_captures
    int m_referenceContext = -1;
    // The streaming reference of the sweeps' streaming curves: its capture, split and quality.
    std::shared_ptr<const kvs::ExactReference> m_streamingReference;
    std::weak_ptr<const kvs::Capture> m_streamingCapture; // identity, not an address reused
    bool m_streamingQuality = false;
    // The key spectra of the current capture's context (for the Cache view), made once per
    // capture and split: a settings change does not recompute them.
    std::shared_ptr<const kvs::SpectrumSummary> m_spectrum;
    std::shared_ptr<const std::vector<views::HeadSpectrumCurves>> m_headSpectra;
    const kvs::Capture* m_spectrumCapture = nullptr;
    int m_spectrumContext = 0;
    std::map<QString, views::SchemeRun> m_runCache; // setting + flags → run, for this reference
    // setting → its compressed heads, while its timings are deferred (addTimings)
    std::map<QString, std::shared_ptr<const std::vector<std::vector<kvs::CompressedHead>>>>
        m_untimedHeads;
    std::map<QString, kvs::ModelQuality> m_qualityCache; // setting → quality, for this reference
    std::mutex m_scalingMutex; // one scaling job at a time; guards the two members below
    QString m_scalingCacheKey; // the capture and split m_scalingCache belongs to
    std::map<QString, views::ScalingSeries> m_scalingCache; // setting → series
};

} // namespace kvs::studio
