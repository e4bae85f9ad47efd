// SPDX-License-Identifier: MIT
// The evaluation protocol of DESIGN.md: exact prefill; the first contextTokens form the context
// whose cache each scheme compresses per layer and KV head; the remaining tokens are probes,
// whose queries attend to the compressed context. Per-head metrics come from the capture; the
// model-level ones (next-token KL, Δ perplexity, top-1 agreement) decode the probe tokens
// teacher-forced with the compressed context in every layer, so errors propagate as in a real
// decode.
//
// Streaming mode (EvalMode::Streaming) runs the same metrics over a cache built online: the whole
// prompt streams from token 0 through the scheme's online form (Scheme::startStream) within a
// budget fixed at the start, and probe token t attends to the summary as it stands after tokens
// 0..t−1 (and to itself, exactly); the summary keeps updating through the probe.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/capture.h"
#include "kvs/compressed_head.h"
#include "kvs/model.h"
#include "kvs/scheme.h"

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvs {

// How the cache under test is made. PostPrefill: the first contextTokens are compressed once,
// after the prefill, and the probe attends to that summary and to its own tokens exactly.
// Streaming: every token from 0 on streams through the scheme's online form and each probe
// token sees the summary of everything before it (the budget's fraction is still of
// contextTokens, so both modes compare at one memory budget). Schemes without an online form
// (SchemeInfo::canStream) are refused with their reason.
enum class EvalMode { PostPrefill, Streaming };

// "post-prefill" / "streaming", and back (nullopt for anything else).
const char* evalModeName(EvalMode mode);
std::optional<EvalMode> parseEvalMode(const std::string& text);

struct EvalOptions {
    EvalMode mode = EvalMode::PostPrefill;
    int contextTokens = 0;        // n_ctx; 0 = three quarters of the prompt
    bool modelQuality = true;     // needs a Model (ignored for capture-only evaluation)
    bool perLayerQuality = false; // also the quality with only one layer compressed, per layer
                                  // (post-prefill only)
    bool attentionMaps = false;   // fill HeadMetrics' maps and rowMassLost (post-prefill only)
    // With attentionMaps: also the exact map (a copy of the reference's probabilities; the
    // studio reads the reference's own instead and skips it).
    bool exactMaps = true;
    // Return the compressed heads in EvalResult::compressed (streaming: the summary the last
    // probe token saw).
    bool keepCompressed = false;
    // With the model: also each head's squared output error through the output projection,
    // HeadMetrics::projectedSquares (post-prefill, schemes that keep the model's weights).
    bool projectedError = false;
    // Per-head settings, layer-major (layers × KV heads): head (l, h) is compressed with
    // headSettings[l·kvHeads + h], and the setting given to evaluate() only names the run (the
    // budget allocator's plans, kvs/budget_allocator.h). Empty: that setting for every head.
    // Post-prefill only; a scheme that rewrites the weights is refused.
    std::vector<SchemeSetting> headSettings;
    std::uint64_t seed = 0;
    const std::atomic<bool>* cancel = nullptr; // checked between layers
};

// In streaming mode every probe row has its own summary: the per-head figures below are over all
// probe rows as in post-prefill (ratios of sums, means, maxima), each row measured against the
// exact attention over the tokens before it; keptTokens and bytes are the largest summary any
// probe row saw (the memory a stream must provision), fp16Bytes still the context's.
struct HeadMetrics {
    int layer = 0;
    int kvHead = 0;
    int contextTokens = 0;
    int keptTokens = 0;
    int keyRank = 0; // numbers cached per key: d, or r for factored keys
    CacheBytes bytes;
    std::size_t fp16Bytes = 0; // 4·d·n_ctx: the fp16 baseline of this head
    // Head output error (DESIGN.md "Metrics"): ‖Ô − O‖_F / ‖O‖_F over the probe rows and the
    // query heads of the group, where O is the head's output as the model reads it — attention
    // over the context merged with the exact attention over the probe's own keys — and Ô the
    // same with the compressed context. A ratio of sums.
    double outputError = 0.0;
    // Context-only error (a diagnostic): mean over probe queries and query heads of ‖o − ô‖/‖o‖
    // with attention over the context alone; large where ‖o‖ is small (diffuse heads).
    double contextError = 0.0;
    double maxContextError = 0.0;
    double massLost = 0.0; // mean of 1 − Σ_kept p_i of the exact distribution
    // Mean total variation ½ Σ_i |p_i − p̂_i| between the exact and the compressed distribution
    // over the context (p̂ = 0 where evicted). Equals the mass lost for plain eviction; the
    // honest number for weighted schemes, which move mass instead of losing it.
    double totalVariation = 0.0;
    bool weighted = false; // the scheme weights its kept tokens (log-weights): show TV, not mass
    // CompressedHead::degenerate: why the budget left the scheme's own rule nothing to do on this
    // head ("" when it chose what is kept).
    std::string degenerate;
    // Entropy-coded codecs: the streams' bits, their side information's bits (tables, steps),
    // the symbols' empirical entropy in bits, and how many elements were coded; 0 for the
    // fixed-width forms.
    double streamBits = 0.0;
    double sideBits = 0.0;
    double entropyBits = 0.0;
    std::size_t codedElements = 0;
    // Σ‖Ô − O‖² and Σ‖O‖² behind outputError, so that a result's error is a ratio of sums too.
    std::pair<double, double> outputSquares{0.0, 0.0};
    // With EvalOptions::projectedError: Σ over probe rows and the group's query heads of
    // ‖(Ô − O)·W_O,h‖², W_O,h the output projection's rows of query head h — the error as the
    // residual stream reads it, what the budget allocator minimizes; 0 otherwise.
    double projectedSquares = 0.0;
    double logitError = 0.0; // max |s_i − ŝ_i| over kept tokens, without the log-weight bias
    double compressMilliseconds = 0.0;
    // Theory (ALGORITHMS.md §1c), in the bound's own terms (docs/scaling-check.md):
    // ρ_eff = max‖q‖·max‖k − k̄‖·scale over probe queries and centred context keys (softmax
    // ignores the shift q·k̄ that every key shares); the error of the worst probe query over the
    // context, max ‖o − ô‖ / max‖v − v̄‖, values centred and scaled by their spread (the bound
    // holds for every query and unit-norm values; attention's outputs move with a shared value
    // shift, so the error does not); and the coreset size √d·e^ρ/ε the bound asks for at that ε
    // (+∞ when ε = 0). Its constants are unknown: quote it as an order of magnitude.
    double rhoEff = 0.0;
    double valueScaledError = 0.0;     // worst probe query, as the theorem bounds
    double meanValueScaledError = 0.0; // the same, averaged over probe queries (a diagnostic)
    double boundTokens = 0.0;
    // Per query head of the group, when asked (EvalOptions::attentionMaps): probe × context,
    // exact and compressed probabilities (0 where evicted), compressed − exact, and the mass lost
    // per probe row (1 − Σ_kept p_i of the exact distribution).
    std::vector<Matrix> exactMap;
    std::vector<Matrix> compressedMap;
    std::vector<Matrix> differenceMap;
    std::vector<std::vector<double>> rowMassLost;
    std::vector<std::vector<double>> rowTotalVariation; // likewise, ½ Σ|p − p̂| per probe row
};

struct ModelQuality {
    double klMean = 0.0;          // mean over probe positions of KL(p_exact ‖ p_compressed), nats
    double perplexityExact = 0.0; // over the probe tokens that have a target
    double perplexityCompressed = 0.0;
    double perplexityChangePercent = 0.0;
    double top1Agreement = 1.0; // fraction of probe positions whose argmax agrees
    int positions = 0;
};

struct EvalResult {
    std::string scheme; // the setting, "id:key=value,..."
    EvalMode mode = EvalMode::PostPrefill;
    int contextTokens = 0;
    int probeTokens = 0;
    std::vector<HeadMetrics> heads; // layer-major
    CacheBytes bytes;               // all heads
    std::size_t fp16Bytes = 0;
    double memoryFraction = 0.0; // bytes / fp16Bytes
    double outputError = 0.0;    // ‖Ô − O‖_F / ‖O‖_F over every head and probe row
    double contextError = 0.0;   // diagnostic: mean over heads
    double massLost = 0.0;
    double totalVariation = 0.0; // mean over heads
    double streamBits = 0.0;     // entropy-coded codecs: sums over heads (HeadMetrics)
    double sideBits = 0.0;
    double entropyBits = 0.0;
    std::size_t codedElements = 0;
    double logitError = 0.0; // max over heads
    // Heads whose budget was degenerate for the scheme (HeadMetrics::degenerate) and the reason
    // of the first of them in layer/head order: a point with degenerateHeads > 0 measures another
    // method (sinks + window), and tables and charts mark it.
    int degenerateHeads = 0;
    std::string degenerate;
    double compressMilliseconds = 0.0; // wall time of compressing every head
    double attendMilliseconds = 0.0;   // wall time of the probe attention on the backend
    std::string backend;
    std::optional<ModelQuality> quality;
    // With EvalOptions::keepCompressed: what was measured, [layer][kv head] (kept positions,
    // weights), so that callers need not compress again. A weight-transforming scheme's heads
    // are the rewritten model's (as many KV heads as it has).
    std::vector<std::vector<CompressedHead>> compressed;
    std::vector<ModelQuality> perLayerQuality; // empty for weight-transforming schemes
    // Weight-transforming schemes: WeightRewrite::fitR2, [layer][KV head of the original model].
    std::vector<std::vector<double>> fitR2;
};

// √d·e^ρ/ε, the coreset size of ALGORITHMS.md §1c (capped at 1e300; +∞ for ε = 0).
double coresetBoundTokens(int headDim, double rhoEff, double epsilon);

// The attention scale a layer uses (1/√d, GPT-2's options included).
float layerAttentionScale(const ModelConfig& config, int layer);

// What every scheme is compared with, for one (capture, context split, backend): the exact
// probe attention per layer (through the same backend, so that the identity scheme gives exactly
// zero error) and the exact model's probe logits through the same merged-context forward path.
// It does not depend on the scheme: compute it once per prompt and split.
struct ExactReference {
    int contextTokens = 0;
    EvalMode mode = EvalMode::PostPrefill;
    std::vector<std::vector<AttendResult>> attention; // [layer][query head]
    // [layer][query head]: the exact causal attention of the probe over the probe's own keys (on
    // the CPU), the part of each probe position's attention that no scheme touches.
    std::vector<std::vector<AttendResult>> probeSelf;
    // Streaming mode, [layer][query head]: probe row t's exact attention over tokens 0..t−1
    // (causally masked, probe × (n − 1)), what each row's summary is compared with.
    std::vector<std::vector<AttendResult>> streamingAttention;
    Matrix probeLogits;   // probe × vocab; empty without a model
    KvCache contextCache; // the exact prefill of the context, reused by every evaluation
};
Result<ExactReference> computeExactReference(const Capture& capture, const Model* model,
                                             AttentionBackend& backend, const EvalOptions& options);

// Evaluates one scheme setting over a capture (and, for model-level quality, its model). Pass
// the reference when it is at hand; otherwise it is computed.
Result<EvalResult> evaluate(const Capture& capture, const Model* model, const SchemeSetting& scheme,
                            AttentionBackend& backend, const EvalOptions& options,
                            const ExactReference* reference = nullptr);

// The compressed heads of every layer and KV head (what evaluate() measures), for the views.
// Weight-transforming schemes are refused (their cache comes from the rewritten model: evaluate
// with keepCompressed). Schemes that need the weights (SchemeInfo::needsWeights) need `model`,
// the capture's own.
Result<std::vector<std::vector<CompressedHead>>>
compressAll(const Capture& capture, const SchemeSetting& scheme, int contextTokens,
            std::uint64_t seed = 0, const Model* model = nullptr);

} // namespace kvs
