// SPDX-License-Identifier: MIT
// The result types the studio's charts draw: one analysis (a prompt, a context split and the
// scheme settings being compared) and the trade-off curves of budget sweeps. The session fills
// them on its workers; views only read them.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/metrics.h"
#include "kvs/spectrum.h"

#include <QString>
#include <QStringList>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace kvs::views {

// What a chart export writes into its provenance sidecar.
struct Provenance {
    QString modelName;
    QString modelFolder;
    QString modelHash; // "sha256:<hex>" of config.json and the checkpoint files (Session)
    QString prompt;
    int contextTokens = 0;
    int probeTokens = 0;
    QStringList schemes; // "id:key=value,..."
    QString backend;
    QString version;
};

// The compressed cache of one KV head as the charts need it.
struct KeptTokens {
    std::vector<std::int32_t> positions; // sorted context positions that were kept
    std::vector<float> weights;          // e^{log-weight} per kept token (1 for plain eviction)
};

// Per KV head (layer-major like EvalResult::heads) and query head of its group: the probe ×
// context maps (moved out of EvalResult::heads, so that the per-head metrics stay small).
struct HeadMaps {
    // The exact attention is the reference's own (no copy): query head j of this KV head is
    // reference->attention[layer][firstQueryHead + j].probabilities, probe × context.
    std::shared_ptr<const kvs::ExactReference> reference;
    int layer = 0;
    int firstQueryHead = 0;
    int groupSize = 0;
    const Matrix* exact(std::size_t j) const {
        if (!reference || j >= static_cast<std::size_t>(groupSize) || layer < 0 ||
            static_cast<std::size_t>(layer) >= reference->attention.size())
            return nullptr;
        const auto& heads = reference->attention[static_cast<std::size_t>(layer)];
        const std::size_t q = static_cast<std::size_t>(firstQueryHead) + j;
        return q < heads.size() && heads[q].probabilities.size() ? &heads[q].probabilities
                                                                 : nullptr;
    }
    std::vector<Matrix> compressed;           // attention over the compressed cache
    std::vector<Matrix> difference;           // compressed − exact
    std::vector<std::vector<double>> rowMass; // per query head: mass lost per probe row
};

// One scheme setting evaluated on the current analysis.
// One KV head's energy kept against rank (a SpectrumSummary of that head alone).
struct HeadSpectrumCurves {
    int layer = 0;
    int kvHead = 0;
    kvs::SpectrumSummary energy;
};

struct SchemeRun {
    QString setting;        // "coreset.halving:keep=0.25"
    QString schemeId;       // "coreset.halving"
    QString displayName;    // "Discrepancy halving"
    QString family;         // "coreset", as the Schemes dock names it
    bool quantizes = false; // a codec, or a chain with a codec stage (the Rate view's)
    int colorIndex = 0;     // into the categorical palette
    // Why the scheme refused this model or setting (a group size that does not divide the head
    // dim, a codec on a K=V cache, ...); empty when it ran. A refused run has no results: the
    // views show this instead, and the other schemes of the analysis are unaffected.
    QString error;
    kvs::EvalResult eval;
    std::vector<KeptTokens> kept; // per KV head, layer-major
    // Per KV head, layer-major (when maps were asked for). Shared and never changed once made:
    // they are most of a run's bytes (3 × probe × context floats per query head), and runs are
    // copied between the engine's cache, snapshots and the quality pass.
    std::shared_ptr<const std::vector<HeadMaps>> maps;
    // The probe attention of every layer on the backend, one entry per dispatch.
    std::vector<kvs::DispatchTiming> dispatches;
    std::vector<int> dispatchLayer;
    double attendWallMicroseconds = 0.0;
    // What the timing backend allocated on the device for each layer's probe attention (empty
    // when the timing pass did not run; all zero where the timing backend is the CPU).
    std::vector<kvs::DeviceAllocation> layerAllocation;

    // KV heads per layer of this run's cache: the model's, or fewer where the scheme rewrote
    // the model (post-hoc sharing).
    int kvHeads(int layers) const {
        return layers > 0 ? static_cast<int>(eval.heads.size()) / layers : 0;
    }
    // Index into eval.heads / kept / maps of the KV head that query head `head` of `layer`
    // reads, and that query head's place in its group.
    std::size_t headIndex(int layer, int head, int layers, int heads) const {
        const int kv = std::max(1, kvHeads(layers));
        return static_cast<std::size_t>(layer * kv + head / std::max(1, heads / kv));
    }
    std::size_t groupMember(int head, int layers, int heads) const {
        const int kv = std::max(1, kvHeads(layers));
        return static_cast<std::size_t>(head % std::max(1, heads / kv));
    }
    // The maps of KV head `kv` (an index into eval.heads), or null without maps.
    const HeadMaps* headMaps(std::size_t kv) const {
        return maps && kv < maps->size() ? &(*maps)[kv] : nullptr;
    }
    // Query head j's exact map of KV head kv, or null.
    const Matrix* exactMap(std::size_t kv, std::size_t j) const {
        const HeadMaps* m = headMaps(kv);
        return m ? m->exact(j) : nullptr;
    }
};

struct AnalysisData {
    quint64 generation = 0;
    Provenance provenance;
    QStringList tokenTexts; // every prompt token, context first
    int contextTokens = 0;
    int probeTokens = 0;
    int layers = 0;
    int heads = 0;
    int kvHeads = 0;
    int headDim = 0;
    int groupSize() const { return kvHeads > 0 ? heads / kvHeads : 1; }
    QString backendName;            // what ran the timed probe attention
    QString evaluationBackend;      // what computed the metrics and maps (the CPU reference)
    bool backendIsGpu = false;      // a Vulkan device
    bool cpuEmulation = false;      // the device is a CPU emulation (lavapipe) or the CPU backend
    double deviceBandwidthGBs = 0;  // measured copy bandwidth; 0 = unknown
    bool timingsPending = false;    // the timing backend was still starting
    bool timingsDeferred = false;   // the timed probe attention follows in a later update
    bool qualityPending = false;    // next-token KL and Δ perplexity follow in a later update
    double computeMilliseconds = 0; // wall time of the job that made this
    std::vector<SchemeRun> runs;
    // Energy kept against rank over every KV head (core's summarizeSpectra of the context): the
    // Cache view's spectrum chart; empty bands when it was not computed.
    std::shared_ptr<const kvs::SpectrumSummary> spectrum;
    // The same per layer and KV head (each a summary of one head: mean = min = max), layer-major,
    // for the Cache view's chosen head; empty when not computed.
    std::shared_ptr<const std::vector<HeadSpectrumCurves>> headSpectra;
    // When a RenderDoc capture of this analysis's GPU work was asked for: the file RenderDoc
    // wrote, or why there is none.
    QString renderDocCapture;
    QString renderDocError;
};

inline std::array<double, kMetricCount> filledArray(double value) {
    std::array<double, kMetricCount> a{};
    a.fill(value);
    return a;
}

// The metrics a trade-off chart can plot against memory: core's (kvs/metrics.h), KL first.
using kvs::kMetricCount;
using kvs::Metric;
using kvs::metricValue;
// The metric's name on an axis or a menu, with its unit; diagnostics say so.
QString metricName(Metric metric);
QString metricCsvColumn(Metric metric);
// Where a result sits on a trade-off chart: (cache bytes, metric value), an error of exactly 0
// (keep everything) raised to a floor that log axes can show.
std::pair<double, double> chartPoint(const kvs::EvalResult& result, Metric metric);
// What the views show for a run its scheme refused: "Refused: codec.uniform:bits=2: …".
QString refusedText(const SchemeRun& run);
// Whether a chart point can be drawn on log axes (finite and positive).
bool chartPlottable(double x, double y);

struct CurvePoint {
    double value = 0.0; // the swept parameter
    kvs::EvalResult result;
};

// One scheme swept over its budget parameter.
struct TradeoffCurve {
    QString baseSetting; // the setting the sweep started from
    QString schemeId;
    QString family; // the scheme's family ("coreset", "codec", ...), as the Schemes dock names it
    bool quantizes = false; // a codec, or a chain with a codec stage (the Rate view's)
    QString displayName;
    QString parameter; // "keep", "bits", ...
    int colorIndex = 0;
    std::vector<CurvePoint> points;
    // Per Metric: the least-squares slope of log metric against log mean kept tokens (points
    // that keep the whole context left out), so that the legend fits what the axis shows; NaN
    // when fewer than two points remain.
    std::array<double, kMetricCount> slope = filledArray(std::numeric_limits<double>::quiet_NaN());
    std::array<double, kMetricCount> slopeR2 = filledArray(0.0);
    // Theory guide for the attention-error chart (ALGORITHMS.md §1c): the slope the family's
    // theory predicts for error against kept tokens (−1 discrepancy coresets, −½ uniform
    // sampling; NaN where the family has none), as a segment through the compressing point that
    // keeps the most (guideX1, guideY1) back to the most compressed one's bytes (guideX0).
    double theorySlope = std::numeric_limits<double>::quiet_NaN();
    QString theoryLabel;
    double guideX0 = 0, guideY0 = 0, guideX1 = 0, guideY1 = 0;
    // The coreset bound √d·e^ρ/ε at that anchor point, medians over heads: the
    // ρ_eff of the heads and the tokens the bound asks for to reach the error measured there,
    // next to the tokens actually kept (NaN when there is no compressed point).
    double boundRho = std::numeric_limits<double>::quiet_NaN();
    double boundTokens = std::numeric_limits<double>::quiet_NaN();
    double boundKeptTokens = std::numeric_limits<double>::quiet_NaN();
    bool showCoresetBound = false; // the scheme's theory has the coreset size bound
    // The sweep ran in streaming mode (kvs::EvalMode::Streaming): the whole prompt streamed
    // through the scheme's online form; otherwise post-prefill.
    bool streaming = false;
};

// A point of a curve: curves[curve].points[point].
struct CurvePointRef {
    int curve = 0;
    int point = 0;
};

struct SweepData {
    quint64 generation = 0;
    std::vector<TradeoffCurve> curves;
    // Per Metric: the lower-left Pareto front of (bytes, metric) over every curve's drawable
    // points (chartPoint), in increasing bytes.
    std::array<std::vector<CurvePointRef>, kMetricCount> paretoFront;
    double computeMilliseconds = 0;
    // Asked for streaming curves: the schemes that cannot stream, "Name: why" each.
    QStringList streamingRefused;
};

// A study over a prompt set (kvs/study.h: `kvstudio-cli sweep --prompt-set`, its journals) as
// the Trade-offs view overlays it: per point the mean over prompts and the bounds of its 95%
// Student-t interval over prompts, for the metrics a study reports (NaN for the others).
struct StudyPointData {
    double value = 0.0; // the swept parameter
    double bytes = 0.0; // cache bytes, mean over prompts
    int prompts = 0;    // prompts that ran the setting
    // Prompts on which the budget left the scheme nothing to choose (kvs::StudyPoint), and the
    // first reason: drawn like a live degenerate point.
    int degeneratePrompts = 0;
    QString degenerateReason;
    std::array<double, kMetricCount> mean = filledArray(std::numeric_limits<double>::quiet_NaN());
    std::array<double, kMetricCount> lower = filledArray(std::numeric_limits<double>::quiet_NaN());
    std::array<double, kMetricCount> upper = filledArray(std::numeric_limits<double>::quiet_NaN());
};

struct StudyCurveData {
    QString setting; // the base setting, as the study names it
    QString schemeId;
    QString family;
    QString displayName;
    QString parameter;
    int colorIndex = 0;
    std::vector<StudyPointData> points; // in increasing bytes
};

struct StudyData {
    QString title;  // "13 prompts of held-out, seeds 1–3"
    QString source; // the journals it was read from (file names)
    int prompts = 0;
    std::vector<StudyCurveData> curves;
};

// The probe attention of every layer timed against a context of `contextTokens` tokens (the
// first tokens of the prompt, compressed by the scheme setting at that length).
struct ScalingPoint {
    int contextTokens = 0;
    double deviceMicroseconds = 0.0; // Σ dispatch timestamps over the layers; 0 on the CPU
    double wallMicroseconds = 0.0;   // host wall time of the layer calls
    std::size_t cacheBytes = 0;      // bytes counted for the compressed context, all heads
    std::size_t bytesRead = 0;       // Σ bytes the dispatches must read
};

// Time against context length for one scheme setting (medians over the repeats).
struct ScalingSeries {
    QString setting;
    QString displayName;
    int colorIndex = 0;
    std::vector<ScalingPoint> points; // ascending context length
};

struct ScalingData {
    quint64 generation = 0;
    QString backendName;
    bool backendIsGpu = false; // a Vulkan device timed it (else the CPU reference: wall only)
    bool cpuEmulation = true;
    int probeTokens = 0;
    int repeats = 0;
    std::vector<ScalingSeries> series;
    double computeMilliseconds = 0;
};

} // namespace kvs::views
