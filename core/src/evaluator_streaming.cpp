// SPDX-License-Identifier: MIT
// Streaming mode of the evaluation protocol (kvs/evaluator.h, EvalMode::Streaming): the prompt
// streams from token 0 through each KV head's online state, and every probe token attends to the
// summary as it stands after the tokens before it. Per-head metrics stream the capture (the exact
// run's keys and queries); the model-level quality decodes the probe one token at a time, each
// token's own keys and queries streaming into the summary, so errors propagate as in a real
// decode.
#include "evaluator_internal.h"
#include "kvs/finite.h"

#include <algorithm>
#include <optional>

namespace kvs::evaluation {
namespace {

Precision streamPrecision(const ParamValues& params) {
    const auto it = params.find("precision");
    return it != params.end() && it->second <= 16 ? Precision::F16 : Precision::F32;
}

// The cache a query at position `arrived` attends to: the kept tokens of `summary`, read from
// the stream's rows, over a context of the `arrived` tokens streamed so far.
CompressedHead summaryHead(const HeadInput& stream, const StreamSummary& summary, int arrived,
                           Precision precision) {
    CompressedHead head = selectTokens(stream, summary.positions, summary.logWeights, precision);
    head.contextLength = arrived;
    return head;
}

// One KV head's stream over the capture: its rows, the kept tokens each probe row saw, and the
// state at the end of the context, from which the model's own decode continues.
struct HeadStream {
    HeadInput input;
    std::vector<StreamSummary> seen; // per probe row
    std::unique_ptr<StreamingState> atContextEnd;
    std::string degenerate; // StreamingState::degenerate(): the budget left nothing to choose
};

std::vector<std::vector<HeadStream>> streamCapture(const Capture& cap, const Scheme& scheme,
                                                   const SchemeSetting& setting, int ctx,
                                                   std::uint64_t seed) {
    const ParamValues params = setting.resolved();
    const int n = cap.tokenCount(), L = cap.config.layers, Hkv = cap.config.kvHeads;
    std::vector<std::vector<HeadStream>> out(static_cast<std::size_t>(L));
    for (auto& layer : out)
        layer.resize(static_cast<std::size_t>(Hkv));
    std::vector<std::optional<Error>> errors(static_cast<std::size_t>(L * Hkv));
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < L * Hkv; ++i) {
        const int l = i / Hkv, h = i % Hkv;
        try {
            HeadStream& hs = out[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)];
            hs.input = headInput(cap, l, h, n, seed);
            auto state = scheme.startStream(hs.input, StreamStart{ctx}, params);
            hs.degenerate = state->degenerate();
            for (int t = 0; t < n; ++t) {
                if (t >= ctx)
                    hs.seen.push_back(state->summary());
                if (t == ctx)
                    hs.atContextEnd = state->clone();
                state->append(hs.input, t);
            }
        } catch (const Error& e) {
            errors[static_cast<std::size_t>(i)].emplace(e.code(), e.what());
        } catch (const std::bad_alloc&) {
            errors[static_cast<std::size_t>(i)].emplace(ErrorCode::OutOfMemory, "out of memory");
        } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(i)].emplace(ErrorCode::Internal, e.what());
        }
    }
    // A setting the scheme cannot stream fails alike on every head: report it once, plainly.
    if (const auto& first = errors.front(); first && first->code() == ErrorCode::InvalidArgument)
        throw Error(first->code(), first->what());
    for (int i = 0; i < L * Hkv; ++i)
        if (const auto& e = errors[static_cast<std::size_t>(i)])
            throw Error(e->code(), setting.toString() + " (streaming): layer " +
                                       std::to_string(i / Hkv) + ", KV head " +
                                       std::to_string(i % Hkv) + ": " + e->what());
    return out;
}

// Row i of an attention over tokens 0..n−2, cut to the `visible` tokens before its probe token.
AttendResult exactRow(const AttendResult& all, Eigen::Index i, int visible) {
    AttendResult r;
    r.outputs = all.outputs.row(i);
    r.logSumExp = {all.logSumExp[static_cast<std::size_t>(i)]};
    r.probabilities = all.probabilities.row(i).head(visible);
    r.scores = all.scores.row(i).head(visible);
    return r;
}

// Probe token t over itself alone: the one key no summary holds, attended exactly.
AttendResult selfRow(const HeadInput& stream, const Matrix& queries, int t, Eigen::Index row,
                     float scale) {
    AttendResult r;
    r.outputs = stream.values.row(t);
    r.logSumExp = {scale * queries.row(row).dot(stream.keys.row(t))};
    return r;
}

// Sums of one head's per-row metrics, turned into the head's figures by finish().
struct RowSums {
    HeadMetrics peak; // layer, head, kept tokens and bytes of the largest summary, maxima
    double contextError = 0, massLost = 0, totalVariation = 0, meanValueScaledError = 0;
    double outDiff2 = 0, outNorm2 = 0;
    int rows = 0;

    void add(const HeadMetrics& m) {
        if (m.bytes.total() > peak.bytes.total() || rows == 0) {
            peak.bytes = m.bytes;
            peak.keptTokens = m.keptTokens;
        }
        peak.keyRank = m.keyRank;
        peak.weighted = peak.weighted || m.weighted;
        peak.maxContextError = std::max(peak.maxContextError, m.maxContextError);
        peak.logitError = std::max(peak.logitError, m.logitError);
        peak.rhoEff = std::max(peak.rhoEff, m.rhoEff);
        peak.valueScaledError = std::max(peak.valueScaledError, m.valueScaledError);
        contextError += m.contextError;
        massLost += m.massLost;
        totalVariation += m.totalVariation;
        meanValueScaledError += m.meanValueScaledError;
        outDiff2 += m.outputSquares.first;
        outNorm2 += m.outputSquares.second;
        ++rows;
    }
    HeadMetrics finish(int headDim) const {
        HeadMetrics m = peak;
        const double r = std::max(1, rows);
        m.contextError = contextError / r;
        m.massLost = massLost / r;
        m.totalVariation = totalVariation / r;
        m.meanValueScaledError = meanValueScaledError / r;
        m.outputSquares = {outDiff2, outNorm2};
        m.outputError = ratioOfNorms(outDiff2, outNorm2);
        m.boundTokens = coresetBoundTokens(headDim, m.rhoEff, m.valueScaledError);
        return m;
    }
};

// The forward pass's context for one decoded token: each layer's summaries through the backend,
// recording the token's queries (post-RoPE, per query head) for its states.
class StreamingContext final : public ContextAttention {
public:
    StreamingContext(const std::vector<std::vector<CompressedHead>>& heads, int position,
                     int groupSize, AttentionBackend& backend,
                     std::vector<std::vector<Matrix>>& queries)
        : m_inner(heads, nullptr, position, groupSize, backend, -1), m_queries(queries) {}
    int contextLength() const override { return m_inner.contextLength(); }
    bool attend(int layer, const std::vector<Matrix>& queries, float scale,
                std::vector<Matrix>& outputs,
                std::vector<std::vector<float>>& logSumExp) const override {
        m_queries[static_cast<std::size_t>(layer)] = queries;
        return m_inner.attend(layer, queries, scale, outputs, logSumExp);
    }

private:
    BackendContext m_inner;
    std::vector<std::vector<Matrix>>& m_queries;
};

// The probe decoded one token at a time: token t attends to its states' summaries after tokens
// 0..t−1, then its own keys, values and queries (the decode's, not the capture's) stream in.
Matrix streamingProbeLogits(const Model& model, const Capture& cap, int ctx, const KvCache& prefill,
                            std::vector<std::vector<HeadStream>>& streams, Precision precision,
                            AttentionBackend& backend, const EvalOptions& options) {
    const int n = cap.tokenCount(), L = cap.config.layers, Hkv = cap.config.kvHeads,
              g = cap.config.groupSize();
    std::vector<std::vector<std::unique_ptr<StreamingState>>> states(static_cast<std::size_t>(L));
    for (int l = 0; l < L; ++l)
        for (int h = 0; h < Hkv; ++h)
            states[static_cast<std::size_t>(l)].push_back(std::move(
                streams[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)].atContextEnd));
    KvCache cache = prefill;
    Matrix logits;
    std::vector<std::vector<CompressedHead>> heads(static_cast<std::size_t>(L));
    std::vector<std::vector<Matrix>> queries(static_cast<std::size_t>(L));
    for (int t = ctx; t < n; ++t) {
        checkCancel(options);
        for (int l = 0; l < L; ++l) {
            auto& layerHeads = heads[static_cast<std::size_t>(l)];
            layerHeads.clear();
            for (int h = 0; h < Hkv; ++h)
                layerHeads.push_back(summaryHead(
                    streams[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)].input,
                    states[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)]->summary(), t,
                    precision));
        }
        const StreamingContext context(heads, t, g, backend, queries);
        const Matrix row = model.forwardWithContext(
            std::span<const TokenId>(&cap.tokens[static_cast<std::size_t>(t)], 1), cache, context);
        if (logits.rows() == 0)
            logits.resize(n - ctx, row.cols());
        logits.row(t - ctx) = row.row(0);
        for (int l = 0; l < L; ++l)
            for (int h = 0; h < Hkv; ++h) {
                const auto li = static_cast<std::size_t>(l), hi = static_cast<std::size_t>(h);
                HeadInput& in = streams[li][hi].input;
                in.keys.row(t) = cache.layers[li][hi].keys.row(t);
                in.values.row(t) = cache.layers[li][hi].values.row(t);
                for (int j = 0; j < g; ++j)
                    in.queries[static_cast<std::size_t>(j)].row(t) =
                        queries[li][static_cast<std::size_t>(h * g + j)].row(0);
                states[li][hi]->append(in, t);
            }
    }
    return logits;
}

} // namespace

std::vector<std::vector<AttendResult>>
streamingExactAttention(const Capture& cap, int ctx, AttentionBackend& backend,
                        const std::vector<std::vector<Matrix>>& queries,
                        const std::vector<float>& scales) {
    const int n = cap.tokenCount(), g = cap.config.groupSize();
    AttendOptions options;
    options.wantProbabilities = true;
    options.wantScores = true;
    // Probe token t sees tokens 0..t−1 here; its own key is the exact part every mode shares.
    for (int t = ctx; t < n; ++t)
        options.queryPositions.push_back(t - 1);
    std::vector<std::vector<AttendResult>> out(queries.size());
    for (std::size_t l = 0; l < queries.size(); ++l) {
        options.scale = l < scales.size() ? scales[l] : 0.0f;
        const auto heads = exactHeads(cap, static_cast<int>(l), n - 1);
        for (std::size_t q = 0; q < queries[l].size(); ++q)
            out[l].push_back(
                backend.attend(heads[q / static_cast<std::size_t>(g)], queries[l][q], options)
                    .valueOrThrow());
    }
    return out;
}

EvalResult evaluateStreaming(const Capture& cap, const Model* model, const SchemeSetting& setting,
                             AttentionBackend& backend, const EvalOptions& options,
                             const ExactReference& reference) {
    const Scheme& scheme = schemeOf(setting);
    if (!scheme.info().canStream)
        throw Error(ErrorCode::InvalidArgument,
                    setting.id + " cannot stream: " + scheme.info().noStreamReason);
    const int ctx = reference.contextTokens, n = cap.tokenCount();
    const int L = cap.config.layers, Hkv = cap.config.kvHeads, g = cap.config.groupSize();
    const int d = cap.config.headDim;
    const Precision precision = streamPrecision(setting.resolved());
    EvalResult result;
    result.scheme = setting.toString();
    result.mode = EvalMode::Streaming;
    result.contextTokens = ctx;
    result.probeTokens = n - ctx;
    result.backend = backend.name();

    const auto t0 = Clock::now();
    auto streams = streamCapture(cap, scheme, setting, ctx, options.seed);
    result.compressMilliseconds = msSince(t0);
    checkCancel(options);

    const auto queries = probeQueries(cap, ctx);
    const std::vector<float> scales = layerAttentionScales(cap.config);
    const std::size_t baseline = fp16BaselineBytes(ctx, d) / (valuesShared(cap.config) ? 2 : 1);
    std::vector<RowSums> sums(static_cast<std::size_t>(L * Hkv));
    // Probe row i sees tokens 0 … ctx + i − 1: the bound's spreads of every such prefix, per head.
    std::vector<std::vector<double>> keySpreads, valueSpreads;
    for (const LayerCapture& layer : cap.layers)
        for (const KvHeadCapture& hc : layer.kvHeads) {
            keySpreads.push_back(prefixCentredSpreads(hc.keys, ctx, n));
            valueSpreads.push_back(prefixCentredSpreads(hc.values, ctx, n));
        }
    std::vector<std::vector<CompressedHead>> heads(static_cast<std::size_t>(L));
    std::vector<std::vector<Matrix>> rowQueries(static_cast<std::size_t>(L));
    for (int i = 0; i < n - ctx; ++i) {
        checkCancel(options);
        const int t = ctx + i;
        for (int l = 0; l < L; ++l) {
            const auto li = static_cast<std::size_t>(l);
            heads[li].clear();
            for (int h = 0; h < Hkv; ++h) {
                const HeadStream& hs = streams[li][static_cast<std::size_t>(h)];
                heads[li].push_back(
                    summaryHead(hs.input, hs.seen[static_cast<std::size_t>(i)], t, precision));
            }
            rowQueries[li].clear();
            for (const Matrix& q : queries[li])
                rowQueries[li].push_back(q.row(i));
        }
        ProbeRequest probe = probeRequest(cap.config, heads, rowQueries, options.cancel);
        probe.scores = true;
        const auto ta = Clock::now();
        const auto attended = probeAttention(probe, backend).valueOrThrow();
        result.attendMilliseconds += msSince(ta);
        for (int l = 0; l < L; ++l) {
            const auto li = static_cast<std::size_t>(l);
            for (int h = 0; h < Hkv; ++h) {
                const HeadStream& hs = streams[li][static_cast<std::size_t>(h)];
                std::vector<AttendResult> exact, self;
                for (int j = 0; j < g; ++j) {
                    const auto q = static_cast<std::size_t>(h * g + j);
                    exact.push_back(exactRow(reference.streamingAttention[li][q], i, t));
                    self.push_back(selfRow(hs.input, rowQueries[li][q], t, 0, scales[li]));
                }
                const auto group = static_cast<std::size_t>(h * g);
                const HeadProbe in{cap,
                                   l,
                                   h,
                                   t,
                                   heads[li][static_cast<std::size_t>(h)],
                                   exact,
                                   std::span(attended[li]).subspan(group, std::size_t(g)),
                                   self,
                                   self,
                                   std::span(rowQueries[li]).subspan(group, std::size_t(g)),
                                   scales[li],
                                   baseline};
                const auto index = static_cast<std::size_t>(l * Hkv + h);
                HeadProbe withSpreads = in;
                withSpreads.keySpread = keySpreads[index][static_cast<std::size_t>(i)];
                withSpreads.valueSpread = valueSpreads[index][static_cast<std::size_t>(i)];
                sums[index].add(headMetrics(withSpreads, false, false));
            }
        }
        if (options.keepCompressed && t == n - 1)
            result.compressed = heads;
    }

    std::pair<double, double> squares{0, 0};
    for (int l = 0; l < L; ++l)
        for (int h = 0; h < Hkv; ++h) {
            HeadMetrics m = sums[static_cast<std::size_t>(l * Hkv + h)].finish(d);
            m.layer = l;
            m.kvHead = h;
            m.contextTokens = ctx;
            m.fp16Bytes = baseline;
            m.degenerate =
                streams[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)].degenerate;
            addHead(result, std::move(m), squares);
        }
    finishTotals(result, squares);

    if (model && options.modelQuality) {
        const std::vector<TokenId> targets(cap.tokens.begin() + ctx + 1, cap.tokens.end());
        const KvCache prefill = reference.contextCache.length == ctx ? reference.contextCache
                                                                     : contextPrefill(cap, ctx);
        result.quality = compareLogits(
            reference.probeLogits,
            streamingProbeLogits(*model, cap, ctx, prefill, streams, precision, backend, options),
            targets);
    }
    return result;
}

} // namespace kvs::evaluation
