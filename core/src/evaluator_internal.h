// SPDX-License-Identifier: MIT
// The evaluator's internals that its two modes share (evaluator.cpp: post-prefill;
// evaluator_streaming.cpp: streaming): inputs from a capture, the context attention the forward
// pass merges, the per-head metrics and the model-level comparison.
#pragma once

#include "kvs/evaluator.h"
#include "kvs/probe_attention.h"

#include <chrono>
#include <span>
#include <vector>

namespace kvs::evaluation {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t);

bool valuesShared(const ModelConfig& config);
// One KV head's first `ctx` tokens as a scheme sees them.
HeadInput headInput(const Capture& capture, int layer, int kvHead, int ctx, std::uint64_t seed);
// Every KV head of a layer over the first `ctx` tokens, uncompressed (fp32).
std::vector<CompressedHead> exactHeads(const Capture& capture, int layer, int ctx);
// The exact prefill of the first `ctx` tokens, from the capture.
KvCache contextPrefill(const Capture& capture, int ctx);
ModelQuality compareLogits(const Matrix& exact, const Matrix& compressed,
                           const std::vector<TokenId>& targets);
void checkCancel(const EvalOptions& options);
const Scheme& schemeOf(const SchemeSetting& setting);
// ‖Δ‖ / ‖O‖ from the sums of squares (‖Δ‖ itself when O is zero).
double ratioOfNorms(double diffSquares, double normSquares);
// The run's totals, in both modes: addHead sums a head's figures into `result` (and its output
// error's sums of squares into `squares`); finishTotals turns the sums into the means, the
// head output error and the memory fraction.
void addHead(EvalResult& result, HeadMetrics m, std::pair<double, double>& squares);
void finishTotals(EvalResult& result, const std::pair<double, double>& squares);

// Context attention from per-layer heads through a backend (the forward pass merges it with
// the exact attention over the probe tokens so far).
class BackendContext final : public ContextAttention {
public:
    // With onlyLayer ≥ 0 the other layers attend to `exact` through the same path, so that the
    // identity scheme reproduces the reference bit for bit.
    BackendContext(const std::vector<std::vector<CompressedHead>>& heads,
                   const std::vector<std::vector<CompressedHead>>* exact, int ctx, int groupSize,
                   AttentionBackend& backend, int onlyLayer)
        : m_heads(heads), m_exact(exact), m_ctx(ctx), m_group(groupSize), m_backend(backend),
          m_onlyLayer(onlyLayer) {}
    int contextLength() const override { return m_ctx; }
    bool attend(int layer, const std::vector<Matrix>& queries, float scale,
                std::vector<Matrix>& outputs,
                std::vector<std::vector<float>>& logSumExp) const override {
        const bool compressed = m_onlyLayer < 0 || layer == m_onlyLayer;
        const auto& heads = (compressed ? m_heads : *m_exact)[static_cast<std::size_t>(layer)];
        ProbeRequest r;
        r.heads = std::span<const std::vector<CompressedHead>>(&heads, 1);
        r.queries = std::span<const std::vector<Matrix>>(&queries, 1);
        r.groupSize = m_group;
        r.scales = {scale};
        auto results = std::move(probeAttention(r, m_backend).valueOrThrow().front());
        outputs.clear();
        logSumExp.clear();
        for (auto& res : results) {
            outputs.push_back(std::move(res.outputs));
            logSumExp.push_back(std::move(res.logSumExp));
        }
        return true;
    }

private:
    const std::vector<std::vector<CompressedHead>>& m_heads;
    const std::vector<std::vector<CompressedHead>>* m_exact;
    int m_ctx;
    int m_group;
    AttentionBackend& m_backend;
    int m_onlyLayer;
};

// What one KV head's metrics are computed from: its compressed cache and, per query head of its
// group, the exact and the compressed probe attention and the probe queries.
// For a weight-transforming scheme the compressed side is the rewritten model's: its capture,
// its probe's own attention, its queries; the exact side stays the original model's.
struct HeadProbe {
    const Capture& capture; // whose cache was compressed
    int layer = 0;
    int kvHead = 0;
    int contextTokens = 0;
    const CompressedHead& compressed;
    std::span<const AttendResult> exact;               // per query head of the group
    std::span<const AttendResult> attended;            // per query head of the group
    std::span<const AttendResult> probeSelf;           // per query head of the group (exact)
    std::span<const AttendResult> compressedProbeSelf; // likewise, the compressed side's model
    std::span<const Matrix> queries;                   // per query head of the group
    float scale = 0.0f;
    std::size_t fp16Bytes = 0; // the original model's fp16 cache that this head stands for
    // Per query head of the group, the output projection's rows (d × D) of each side: when a
    // rewrite folds factors into W_o, the heads' outputs live in different bases and are
    // compared after projection, as the residual stream reads them. Empty: compared as they are.
    std::span<const Matrix> exactReadout = {};
    std::span<const Matrix> compressedReadout = {};
    std::span<const RowVector> compressedOffset = {}; // WeightRewrite::outputOffsets, or empty
    // Per query head of the group, W_o's rows (d × D) for HeadMetrics::projectedSquares; empty:
    // not asked.
    std::span<const Matrix> errorReadout = {};
    // centredSpread of the context's keys and values when the caller has it (streaming asks for
    // every prefix); negative: headMetrics computes it.
    double keySpread = -1.0;
    double valueSpread = -1.0;
};

// max_i ‖x_i − x̄‖ over the rows of x (the coreset bound's spread: HeadMetrics::rhoEff and
// valueScaledError).
double centredSpread(const Eigen::Ref<const Matrix>& x);
// The same for every prefix x[0, t) with t = first … last − 1, in one product.
std::vector<double> prefixCentredSpreads(const Matrix& x, int first, int last);

// The per-head metrics of DESIGN.md "Metrics" (and, with maps, the exact, compressed and
// difference maps and the mass lost per probe row).
HeadMetrics headMetrics(const HeadProbe& in, bool maps, bool exactMaps);

// Streaming mode (evaluator_streaming.cpp): the exact reference's per-row attention over the
// tokens before each probe token, and the evaluation itself.
std::vector<std::vector<AttendResult>>
streamingExactAttention(const Capture& capture, int ctx, AttentionBackend& backend,
                        const std::vector<std::vector<Matrix>>& queries,
                        const std::vector<float>& scales);
EvalResult evaluateStreaming(const Capture& capture, const Model* model,
                             const SchemeSetting& setting, AttentionBackend& backend,
                             const EvalOptions& options, const ExactReference& reference);

} // namespace kvs::evaluation
