// SPDX-License-Identifier: MIT
// The decoder forward pass (GPT-2 and Llama families) with per-head capture, in Eigen.
// Large products go through Eigen's threaded GEMM; attention is parallel over heads because its
// per-head products are too small to thread well.
#include "forward.h"

#include "rope.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <type_traits>

namespace kvs {
namespace {

template <class S> void addBias(MatrixT<S>& x, const RowVectorT<S>& b) {
    if (b.size())
        x.rowwise() += b;
}

template <class S, class Rows>
void normalize(const ModelConfig& c, const Eigen::MatrixBase<Rows>& x, const RowVectorT<S>& weight,
               const RowVectorT<S>& bias, MatrixT<S>& y) {
    y.resize(x.rows(), x.cols());
    const S eps = static_cast<S>(c.normEps);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
        const auto row = x.row(r);
        if (c.norm == NormKind::LayerNorm) {
            const S mean = row.mean();
            const S var = (row.array() - mean).square().mean();
            y.row(r) = ((row.array() - mean) / std::sqrt(var + eps)).matrix().cwiseProduct(weight);
            if (bias.size())
                y.row(r) += bias;
        } else {
            const S ms = row.squaredNorm() / static_cast<S>(row.size());
            y.row(r) = (row / std::sqrt(ms + eps)).cwiseProduct(weight);
        }
    }
}

// The MLP's nonlinearity, in place, rows in parallel (the transcendental functions cost as much
// as a small product).
template <class S> void activate(MlpKind kind, MatrixT<S>& x) {
    const Eigen::Index rows = x.rows();
#pragma omp parallel for schedule(static) if (rows >= 16)
    for (Eigen::Index r = 0; r < rows; ++r) {
        auto a = x.row(r).array();
        switch (kind) {
        case MlpKind::GeluTanh: {
            const S k = static_cast<S>(std::sqrt(2.0 / std::numbers::pi));
            a = S(0.5) * a * (S(1) + (k * (a + S(0.044715) * a.cube())).tanh());
            break;
        }
        case MlpKind::Gelu:
            a = a.unaryExpr(
                [](S v) { return S(0.5) * v * (S(1) + std::erf(v / std::sqrt(S(2)))); });
            break;
        case MlpKind::SwiGlu:
            a = a / (S(1) + (-a).exp()); // SiLU; the gate product happens in the caller
            break;
        }
    }
}

// The MLP of the normalized input x into `out`; `up` and `gate` are the caller's buffers.
template <class S>
void mlp(const ModelConfig& c, const LayerWeights<S>& w, const MatrixT<S>& x, MatrixT<S>& up,
         MatrixT<S>& gate, MatrixT<S>& out) {
    up.noalias() = x * w.wUp.view();
    addBias(up, w.bUp);
    if (c.mlp == MlpKind::SwiGlu) {
        gate.noalias() = x * w.wGate.view();
        addBias(gate, w.bGate);
        activate(c.mlp, gate);
        up.array() *= gate.array();
    } else {
        activate(c.mlp, up);
    }
    out.noalias() = up * w.wDown.view();
    addBias(out, w.bDown);
}

Matrix toFloat(const auto& m) {
    return m.template cast<float>();
}

void checkTokens(const ModelConfig& c, std::span<const TokenId> tokens, int total) {
    if (tokens.empty())
        throw Error(ErrorCode::InvalidArgument, "no tokens to run");
    if (total > c.contextLimit())
        throw Error(ErrorCode::InvalidArgument,
                    std::to_string(total) + " tokens exceed the model's " +
                        std::to_string(c.contextLimit()) + " positions");
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= c.vocab)
            throw Error(ErrorCode::InvalidArgument,
                        "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                            " is outside the vocabulary of " + std::to_string(c.vocab));
}

// The token embeddings, plus learned positions past..past+n-1 where the model has them.
template <class S>
MatrixT<S> embed(const ModelConfig& c, const GlobalWeights<S>& gw, std::span<const TokenId> tokens,
                 int past) {
    const int n = static_cast<int>(tokens.size());
    MatrixT<S> x(n, c.width);
    for (int i = 0; i < n; ++i)
        x.row(i) = gw.embed.view().row(tokens[static_cast<std::size_t>(i)]);
    if (c.positions == PositionKind::Learned)
        x += gw.positions.view().middleRows(past, n);
    return x;
}

// One layer's queries, keys and values for the new tokens (rotated where the model uses RoPE),
// with the pre-rotation queries and keys when a capture wants them.
template <class S> struct Projections {
    MatrixT<S> q, k, v;
    MatrixT<S> qPre, kPre;
};

template <class S>
void project(const ModelConfig& c, const LayerWeights<S>& w, const MatrixT<S>& xn,
             const RopeTable* rope, bool keepPreRope, Projections<S>& p) {
    const bool queryIsKey =
        c.sharing == ProjectionSharing::QEqK || c.sharing == ProjectionSharing::QEqKEqV;
    const bool valueIsKey =
        c.sharing == ProjectionSharing::KEqV || c.sharing == ProjectionSharing::QEqKEqV;
    // Products go into the buffers of the previous layer (same shapes): no allocation, no page
    // faults after the first layer.
    p.k.noalias() = xn * w.wk.view();
    addBias(p.k, w.bk);
    if (queryIsKey) {
        p.q = p.k;
    } else {
        p.q.noalias() = xn * w.wq.view();
        addBias(p.q, w.bq);
    }
    if (valueIsKey) {
        p.v = p.k; // the shared cache keeps keys before rotation; they double as values
    } else {
        p.v.noalias() = xn * w.wv.view();
        addBias(p.v, w.bv);
    }
    if (rope) {
        if (keepPreRope) {
            p.qPre = p.q;
            p.kPre = p.k;
        }
        applyRope(p.q, *rope, c.ropeLayout);
        applyRope(p.k, *rope, c.ropeLayout);
    }
}

// The keys and values attention sees, per KV head: cached ones followed by these tokens'. Without
// a cache prefix they are column blocks of the projections themselves (no copy).
template <class S> using ConstBlockRef = Eigen::Ref<const MatrixT<S>, 0, Eigen::OuterStride<>>;

template <class S> struct HeadKeysValues {
    std::vector<MatrixT<S>> keys, values; // cache + new rows per KV head; empty when past == 0
    const Projections<S>* fresh = nullptr;
    int headDim = 0;
    ConstBlockRef<S> key(int h) const {
        if (keys.empty())
            return fresh->k.middleCols(static_cast<Eigen::Index>(h) * headDim, headDim);
        return keys[static_cast<std::size_t>(h)];
    }
    ConstBlockRef<S> value(int h) const {
        if (values.empty())
            return fresh->v.middleCols(static_cast<Eigen::Index>(h) * headDim, headDim);
        return values[static_cast<std::size_t>(h)];
    }
};

template <class S>
HeadKeysValues<S> gatherKeysValues(const ModelConfig& c, const KvCacheT<S>* cache, int layer,
                                   int past, const Projections<S>& p) {
    const int n = static_cast<int>(p.k.rows());
    const int total = past + n;
    const int d = c.headDim;
    HeadKeysValues<S> kv;
    kv.fresh = &p;
    kv.headDim = d;
    if (past == 0)
        return kv;
    kv.keys.resize(static_cast<std::size_t>(c.kvHeads));
    kv.values.resize(static_cast<std::size_t>(c.kvHeads));
    for (int h = 0; h < c.kvHeads; ++h) {
        auto& kk = kv.keys[static_cast<std::size_t>(h)];
        auto& vv = kv.values[static_cast<std::size_t>(h)];
        kk.resize(total, d);
        vv.resize(total, d);
        const auto& head =
            cache->layers[static_cast<std::size_t>(layer)][static_cast<std::size_t>(h)];
        kk.topRows(past) = head.keys;
        vv.topRows(past) = head.values;
        kk.bottomRows(n) = p.k.middleCols(static_cast<Eigen::Index>(h) * d, d);
        vv.bottomRows(n) = p.v.middleCols(static_cast<Eigen::Index>(h) * d, d);
    }
    return kv;
}

template <class S> S attentionScale(const ModelConfig& c, int layer) {
    S scale = c.family == Family::Gpt2 && !c.scaleAttnWeights
                  ? S(1)
                  : S(1) / std::sqrt(static_cast<S>(c.headDim));
    if (c.family == Family::Gpt2 && c.scaleAttnByInverseLayerIdx)
        scale /= static_cast<S>(layer + 1);
    return scale;
}

// Attention over the replaced context (computed elsewhere, e.g. compressed), per query head:
// its outputs and log-sum-exps, merged with the exact part in attendHeads. Only the fp32 pass
// takes a replaced context.
struct ContextPart {
    bool used = false;
    int firstKey = 0; // keys before this are the context's, masked in the exact part
    std::vector<Matrix> outputs;
    std::vector<std::vector<float>> lse;
};

template <class S>
ContextPart attendContext(const ModelConfig& c, const ContextAttention* context, int layer,
                          int past, const MatrixT<S>& q, S scale, bool windowed) {
    ContextPart part;
    if constexpr (std::is_same_v<S, float>) {
        if (context) {
            const int ctxLen = context->contextLength();
            if (windowed)
                throw Error(ErrorCode::Unsupported,
                            "a replaced context with sliding-window attention (layer " +
                                std::to_string(layer) + ")");
            if (past < ctxLen)
                throw Error(ErrorCode::InvalidArgument,
                            "the replaced context must precede the tokens run");
            const int d = c.headDim;
            std::vector<Matrix> qs(static_cast<std::size_t>(c.heads));
            for (int h = 0; h < c.heads; ++h)
                qs[static_cast<std::size_t>(h)] = q.middleCols(static_cast<Eigen::Index>(h) * d, d);
            part.used = context->attend(layer, qs, scale, part.outputs, part.lse);
            part.firstKey = part.used ? ctxLen : 0;
        }
    }
    return part;
}

// Causal softmax attention of every query head over its KV head's keys (within the sliding
// window where the layer has one: window), merged with the context part through the log-sum-exp.
// Work items are (query head, block of query rows): a block reads only the keys its rows can see,
// which halves the causal work, and items run largest first so that threads finish together.
template <class S>
void attendHeads(const ModelConfig& c, const MatrixT<S>& q, const HeadKeysValues<S>& kv, S scale,
                 int past, std::optional<int> window, const ContextPart& ctx, MatrixT<S>& attn) {
    constexpr int kBlockRows = 64;
    const int n = static_cast<int>(q.rows());
    const int total = past + n;
    const int d = c.headDim, H = c.heads, g = c.groupSize();
    const int blocks = (n + kBlockRows - 1) / kBlockRows;
    const int items = H * blocks;
    attn.resize(n, static_cast<Eigen::Index>(H) * d);
    const S negInf = -std::numeric_limits<S>::infinity();
    // Threads only for work worth waking them: a one-token decode step (streaming evaluation,
    // generation) is a few hundred thousand multiply-adds, less than the barrier costs.
    const bool parallel = items > 1 && static_cast<double>(n) * total * d * H > 2e5;
#pragma omp parallel if (parallel)
    {
        // Eigen-aligned: small products vectorize by the destination's alignment, so a
        // malloc'ed buffer would round differently from run to run.
        Eigen::Matrix<S, Eigen::Dynamic, 1> scratch(
            static_cast<Eigen::Index>(std::min(kBlockRows, n)) * total);
#pragma omp for schedule(dynamic)
        for (int item = 0; item < items; ++item) {
            const int block = blocks - 1 - item / H, h = item % H;
            const int i0 = block * kBlockRows, rows = std::min(kBlockRows, n - i0);
            // Keys [keyBegin, keyEnd) are visible to at least one row of the block.
            const int keyEnd = past + i0 + rows;
            const int keyBegin =
                std::max(window ? std::max(0, past + i0 - *window + 1) : 0, ctx.firstKey);
            const int span = keyEnd - keyBegin;
            const ConstBlockRef<S> headKeys = kv.key(h / g), headValues = kv.value(h / g);
            const auto keys = headKeys.middleRows(keyBegin, span);
            const auto values = headValues.middleRows(keyBegin, span);
            Eigen::Map<MatrixT<S>> scores(scratch.data(), rows, span);
            scores.noalias() =
                q.block(i0, static_cast<Eigen::Index>(h) * d, rows, d) * keys.transpose();
            scores *= scale;
            for (int i = 0; i < rows; ++i) {
                const int pos = past + i0 + i;
                auto row = scores.row(i);
                // Causal: key j is visible to query position pos when j <= pos (and within the
                // window).
                const int first = std::max(window ? std::max(0, pos - *window + 1) : 0, keyBegin);
                row.head(first - keyBegin).setConstant(negInf);
                row.tail(keyEnd - 1 - pos).setConstant(negInf);
                const S mx = row.maxCoeff();
                row = (row.array() - mx).exp();
                const S z = row.sum();
                row /= z;
                if (ctx.used) {
                    // Weights of the exact part and of the context part: e^{lse} each.
                    const S lseExact = mx + std::log(z);
                    const S lseCtx = static_cast<S>(
                        ctx.lse[static_cast<std::size_t>(h)][static_cast<std::size_t>(i0 + i)]);
                    const S top = std::max(lseExact, lseCtx);
                    const S wExact = std::exp(lseExact - top), wCtx = std::exp(lseCtx - top);
                    row *= wExact / (wExact + wCtx);
                }
            }
            auto out = attn.block(i0, static_cast<Eigen::Index>(h) * d, rows, d);
            out.noalias() = scores * values;
            if (ctx.used) {
                for (int i = 0; i < rows; ++i) {
                    const S share = scores.row(i).sum(); // the exact part's share of the total
                    out.row(i) +=
                        (S(1) - share) *
                        ctx.outputs[static_cast<std::size_t>(h)].row(i0 + i).template cast<S>();
                }
            }
        }
    }
}

template <class S>
void captureLayer(const ModelConfig& c, const MatrixT<S>& xn, const Projections<S>& p,
                  const MatrixT<S>& attn, bool rope, LayerCapture& lc) {
    const int d = c.headDim, g = c.groupSize();
    lc.hiddenNormed = toFloat(xn);
    lc.kvHeads.resize(static_cast<std::size_t>(c.kvHeads));
    for (int h = 0; h < c.kvHeads; ++h) {
        auto& hc = lc.kvHeads[static_cast<std::size_t>(h)];
        const Eigen::Index col = static_cast<Eigen::Index>(h) * d;
        hc.keys = toFloat(p.k.middleCols(col, d));
        hc.values = toFloat(p.v.middleCols(col, d));
        if (rope)
            hc.keysPreRope = toFloat(p.kPre.middleCols(col, d));
        for (int j = 0; j < g; ++j) {
            const Eigen::Index qcol = static_cast<Eigen::Index>(h * g + j) * d;
            hc.queries.push_back(toFloat(p.q.middleCols(qcol, d)));
            if (rope)
                hc.queriesPreRope.push_back(toFloat(p.qPre.middleCols(qcol, d)));
            hc.outputs.push_back(toFloat(attn.middleCols(qcol, d)));
        }
    }
}

template <class S> void storeInCache(KvCacheT<S>& cache, int layer, HeadKeysValues<S>&& kv) {
    auto& heads = cache.layers[static_cast<std::size_t>(layer)];
    for (std::size_t h = 0; h < heads.size(); ++h) {
        if (kv.keys.empty()) { // the first tokens: copy the blocks out of the projections
            heads[h].keys = kv.key(static_cast<int>(h));
            heads[h].values = kv.value(static_cast<int>(h));
        } else {
            heads[h].keys = std::move(kv.keys[h]);
            heads[h].values = std::move(kv.values[h]);
        }
    }
}

} // namespace

template <class S>
MatrixT<S> runForward(const ModelConfig& c, const WeightStore<S>& weights,
                      std::span<const TokenId> tokens, KvCacheT<S>* cache, Capture* capture,
                      const ContextAttention* context, LogitRows rows,
                      const ForwardControl& control) {
    const int n = static_cast<int>(tokens.size());
    const int past = cache ? cache->length : 0;
    const int total = past + n;
    checkTokens(c, tokens, total);
    if (cache && cache->layers.empty())
        cache->layers.assign(
            static_cast<std::size_t>(c.layers),
            std::vector<typename KvCacheT<S>::Head>(static_cast<std::size_t>(c.kvHeads)));
    if (capture)
        capture->layers.assign(static_cast<std::size_t>(c.layers), {});

    const auto& gw = weights.global();
    MatrixT<S> x = embed(c, gw, tokens, past);
    const bool rope = c.positions == PositionKind::Rope;
    const RopeTable ropeTable = rope ? makeRopeTable(c, past, n, total) : RopeTable{};

    // Every layer writes into the same buffers (same shapes), so only the first layer allocates.
    MatrixT<S> xn, attn, projected, up, gate;
    Projections<S> p;
    for (int l = 0; l < c.layers; ++l) {
        if (control.cancel && control.cancel->load())
            throw Error(ErrorCode::Cancelled, "the forward pass was cancelled before layer " +
                                                  std::to_string(l) + " of " +
                                                  std::to_string(c.layers));
        const auto wPtr = weights.layer(l);
        const LayerWeights<S>& w = *wPtr;
        normalize(c, x, w.norm1, w.norm1Bias, xn);
        project(c, w, xn, rope ? &ropeTable : nullptr, capture != nullptr, p);
        HeadKeysValues<S> kv = gatherKeysValues(c, cache, l, past, p);
        const S scale = attentionScale<S>(c, l);
        const bool windowed = c.windowApplies(l);
        const ContextPart ctx = attendContext(c, context, l, past, p.q, scale, windowed);
        attendHeads(c, p.q, kv, scale, past, windowed ? c.slidingWindow : std::nullopt, ctx, attn);
        if (capture)
            captureLayer(c, xn, p, attn, rope, capture->layers[static_cast<std::size_t>(l)]);
        if (cache)
            storeInCache(*cache, l, std::move(kv));

        projected.noalias() = attn * w.wo.view();
        addBias(projected, w.bo);
        x += projected;
        normalize(c, x, w.norm2, w.norm2Bias, xn);
        mlp(c, w, xn, up, gate, projected);
        x += projected;
        if (control.progress && *control.progress)
            (*control.progress)(l + 1, c.layers);
    }
    if (cache)
        cache->length = total;

    // Only the rows asked for go through the output head (V columns each: the largest product).
    const Eigen::Index logitRows = rows == LogitRows::All ? n : rows == LogitRows::Last ? 1 : 0;
    if (logitRows == 0)
        return {};
    normalize(c, x.bottomRows(logitRows), gw.finalNorm, gw.finalNormBias, xn);
    MatrixT<S> logits(logitRows, gw.outputMatrix().rows());
    logits.noalias() = xn * gw.outputMatrix().view().transpose();
    return logits;
}

template MatrixT<float> runForward<float>(const ModelConfig&, const WeightStore<float>&,
                                          std::span<const TokenId>, KvCacheT<float>*, Capture*,
                                          const ContextAttention*, LogitRows,
                                          const ForwardControl&);
template MatrixT<double> runForward<double>(const ModelConfig&, const WeightStore<double>&,
                                            std::span<const TokenId>, KvCacheT<double>*, Capture*,
                                            const ContextAttention*, LogitRows,
                                            const ForwardControl&);

} // namespace kvs
