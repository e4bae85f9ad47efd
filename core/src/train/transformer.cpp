// SPDX-License-Identifier: MIT
// The trainer's transformer: forward pass that keeps its activations and the hand-written backward
// pass. Large products (all B·T rows at once) go through Eigen's threaded GEMM; attention runs in
// parallel over (batch row, KV head) pairs because its per-head products are too small to thread.
#include "kvs/train.h"

#include "../config_presets.h"
#include "../rope.h"

#include <cmath>
#include <numbers>
#include <random>

namespace kvs {
namespace {

template <class S> using Map = Eigen::Map<MatrixT<S>>;

// Below this many elements a loop runs on one thread: waking the team costs more than it saves,
// and tiny models (the gradient checks) would spend their time in barriers on a busy machine.
constexpr long kParallelMin = 1 << 16;

bool ownsQuery(const ModelConfig& c) {
    return c.sharing == ProjectionSharing::Qkv || c.sharing == ProjectionSharing::KEqV;
}
bool ownsValue(const ModelConfig& c) {
    return c.sharing == ProjectionSharing::Qkv || c.sharing == ProjectionSharing::QEqK;
}

// Normalizes every row of x into y with gain w (and bias b for LayerNorm); keeps 1/σ (and μ).
template <class S>
void normForward(const ModelConfig& c, const MatrixT<S>& x, const S* w, const S* b, MatrixT<S>& y,
                 VectorT<S>& rstd, VectorT<S>& mean) {
    const auto n = x.rows();
    const int D = static_cast<int>(x.cols());
    y.resize(n, D);
    rstd.resize(n);
    mean.resize(n);
    const bool layer = c.norm == NormKind::LayerNorm;
    const S eps = static_cast<S>(c.normEps);
#pragma omp parallel for schedule(static) if (n * D >= kParallelMin)
    for (Eigen::Index r = 0; r < n; ++r) {
        const S* xr = x.row(r).data();
        S* yr = y.row(r).data();
        S mu = 0;
        if (layer) {
            for (int i = 0; i < D; ++i)
                mu += xr[i];
            mu /= static_cast<S>(D);
        }
        S ss = 0;
        for (int i = 0; i < D; ++i)
            ss += (xr[i] - mu) * (xr[i] - mu);
        const S rs = S(1) / std::sqrt(ss / static_cast<S>(D) + eps);
        for (int i = 0; i < D; ++i)
            yr[i] = (xr[i] - mu) * rs * w[i] + (b ? b[i] : S(0));
        rstd(r) = rs;
        mean(r) = mu;
    }
}

// Backward of normForward: adds to dx, dw (and db). dy is the gradient of y.
template <class S>
void normBackward(const ModelConfig& c, const MatrixT<S>& x, const VectorT<S>& rstd,
                  const VectorT<S>& mean, const S* w, const MatrixT<S>& dy, MatrixT<S>& dx, S* dw,
                  S* db) {
    const auto n = x.rows();
    const int D = static_cast<int>(x.cols());
    const bool layer = c.norm == NormKind::LayerNorm;
    // Gain and bias gradients: column sums, reduced per thread.
    MatrixT<S> gw = MatrixT<S>::Zero(2, D);
#pragma omp parallel if (n * D >= kParallelMin)
    {
        MatrixT<S> local = MatrixT<S>::Zero(2, D);
#pragma omp for schedule(static)
        for (Eigen::Index r = 0; r < n; ++r) {
            const S* xr = x.row(r).data();
            const S* g = dy.row(r).data();
            S* dxr = dx.row(r).data();
            const S rs = rstd(r), mu = mean(r);
            S dotGx = 0, sumG = 0;
            for (int i = 0; i < D; ++i) {
                const S xh = (xr[i] - mu) * rs;
                const S gi = g[i] * w[i];
                local(0, i) += g[i] * xh;
                local(1, i) += g[i];
                dotGx += gi * xh;
                sumG += gi;
            }
            const S invD = S(1) / static_cast<S>(D);
            for (int i = 0; i < D; ++i) {
                const S xh = (xr[i] - mu) * rs;
                const S gi = g[i] * w[i];
                dxr[i] += rs * (gi - (layer ? sumG * invD : S(0)) - xh * dotGx * invD);
            }
        }
#pragma omp critical
        gw += local;
    }
    for (int i = 0; i < D; ++i) {
        dw[i] += gw(0, i);
        if (db)
            db[i] += gw(1, i);
    }
}

template <class S> S sigmoid(S a) {
    return S(1) / (S(1) + std::exp(-a));
}

// Activation value and derivative for the non-gated MLPs.
template <class S> void gelu(MlpKind kind, S a, S& value, S& deriv) {
    if (kind == MlpKind::GeluTanh) {
        const S k = static_cast<S>(std::sqrt(2.0 / std::numbers::pi));
        const S u = k * (a + S(0.044715) * a * a * a);
        const S t = std::tanh(u);
        value = S(0.5) * a * (S(1) + t);
        deriv = S(0.5) * (S(1) + t) +
                S(0.5) * a * (S(1) - t * t) * k * (S(1) + S(3) * S(0.044715) * a * a);
    } else {
        const S phi = std::exp(-S(0.5) * a * a) / static_cast<S>(std::sqrt(2.0 * std::numbers::pi));
        const S cdf = S(0.5) * (S(1) + std::erf(a / std::sqrt(S(2))));
        value = a * cdf;
        deriv = cdf + a * phi;
    }
}

// Rotates (or, with inverse, applies the transpose of the rotation to) every head block of rows
// whose position is row % length; HF half-split or interleaved pairs as in rope.cpp.
template <class S>
void rotate(MatrixT<S>& x, const RopeTable& t, RopeLayout layout, int length, bool inverse) {
    const int d = t.headDim, half = d / 2;
    const int heads = static_cast<int>(x.cols()) / d;
#pragma omp parallel for schedule(static) if (x.size() >= kParallelMin)
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
        const int p = static_cast<int>(r % length);
        for (int h = 0; h < heads; ++h) {
            S* v = x.row(r).data() + static_cast<std::ptrdiff_t>(h) * d;
            for (int i = 0; i < half; ++i) {
                const S cs = static_cast<S>(t.cos(p, i));
                const S sn = inverse ? -static_cast<S>(t.sin(p, i)) : static_cast<S>(t.sin(p, i));
                const int a = layout == RopeLayout::HalfSplit ? i : 2 * i;
                const int b = layout == RopeLayout::HalfSplit ? i + half : 2 * i + 1;
                const S x0 = v[a], x1 = v[b];
                v[a] = x0 * cs - x1 * sn;
                v[b] = x1 * cs + x0 * sn;
            }
        }
    }
}

} // namespace

void checkTrainable(const ModelConfig& c) {
    auto fail = [](const std::string& what) {
        throw Error(ErrorCode::Unsupported, "the trainer does not support " + what);
    };
    if (c.family != Family::Llama)
        fail("the GPT-2 family (use positions/norm/mlp options of the Llama spelling)");
    if (c.layers <= 0 || c.heads <= 0 || c.kvHeads <= 0 || c.headDim <= 0 || c.width <= 0 ||
        c.vocab <= 0 || c.intermediate <= 0 || c.maxPositions <= 0)
        throw Error(ErrorCode::InvalidArgument, "trainer: every size must be positive");
    if (c.heads % c.kvHeads != 0)
        throw Error(ErrorCode::InvalidArgument, std::to_string(c.heads) +
                                                    " heads cannot be grouped over " +
                                                    std::to_string(c.kvHeads) + " KV heads");
    if ((c.sharing == ProjectionSharing::QEqK || c.sharing == ProjectionSharing::QEqKEqV) &&
        c.kvHeads != c.heads)
        throw Error(ErrorCode::InvalidArgument,
                    "shared query-key projections need as many KV heads as heads");
    if (c.positions == PositionKind::Rope && c.headDim % 2 != 0)
        throw Error(ErrorCode::InvalidArgument, "RoPE needs an even head dimension");
    if (c.qkvBias || c.outputBias || c.mlpBias)
        fail("projection biases");
    if (c.slidingWindow)
        fail("sliding-window attention");
    if (c.ropeScaling.kind != RopeScaling::Kind::None)
        fail("RoPE scaling");
}

ModelConfig defaultTrainConfig(int vocab) {
    ModelConfig c = llamaBlocks("llama", "LlamaForCausalLM");
    setShape(c, 6, 6, 6, 192, 32, 512); // multi-head; a variant sets its own KV heads
    c.vocab = vocab;
    c.normEps = 1e-5;
    c.tiedEmbeddings = true;
    return c;
}

// Everything the forward pass keeps for the backward pass, per layer.
template <class S> struct TransformerT<S>::Workspace {
    struct Layer {
        MatrixT<S> xin, xn1, q, k, v, att, xmid, xn2, a, u, hmid;
        VectorT<S> r1, m1, r2, m2;
        std::vector<MatrixT<S>> probs; // [b · H + h]: T × T
    };
    int batch = 0, length = 0;
    std::vector<TokenId> inputs;
    std::vector<Layer> layers;
    MatrixT<S> xlast, xf;
    VectorT<S> rf, mf;
    RopeTable rope;
};

template <class S>
TransformerT<S>::TransformerT(const ModelConfig& config)
    : m_config(config), m_ws(std::make_unique<Workspace>()) {
    checkTrainable(m_config);
    const auto& c = m_config;
    const int D = c.width, Hd = c.heads * c.headDim, KVd = c.kvHeads * c.headDim;
    std::size_t offset = 0;
    auto add = [&](const std::string& name, int rows, int cols, bool decay) {
        m_layout.push_back({name, offset, rows, cols, decay});
        offset += static_cast<std::size_t>(rows) * cols;
    };
    const bool ln = c.norm == NormKind::LayerNorm;
    add("embed", c.vocab, D, true);
    if (c.positions == PositionKind::Learned)
        add("positions", c.maxPositions, D, true);
    for (int l = 0; l < c.layers; ++l) {
        const std::string p = "layers." + std::to_string(l) + ".";
        add(p + "norm1", 1, D, false);
        if (ln)
            add(p + "norm1_bias", 1, D, false);
        if (ownsQuery(c))
            add(p + "wq", D, Hd, true);
        add(p + "wk", D, KVd, true);
        if (ownsValue(c))
            add(p + "wv", D, KVd, true);
        add(p + "wo", Hd, D, true);
        add(p + "norm2", 1, D, false);
        if (ln)
            add(p + "norm2_bias", 1, D, false);
        if (c.mlp == MlpKind::SwiGlu)
            add(p + "w_gate", D, c.intermediate, true);
        add(p + "w_up", D, c.intermediate, true);
        add(p + "w_down", c.intermediate, D, true);
    }
    add("final_norm", 1, D, false);
    if (ln)
        add("final_norm_bias", 1, D, false);
    if (!c.tiedEmbeddings)
        add("lm_head", c.vocab, D, true);
    m_params.assign(offset, S(0));
    initialize(1);
}

template <class S> TransformerT<S>::~TransformerT() = default;
template <class S> TransformerT<S>::TransformerT(TransformerT&&) noexcept = default;
template <class S> TransformerT<S>& TransformerT<S>::operator=(TransformerT&&) noexcept = default;

template <class S> const ParamInfo& TransformerT<S>::param(const std::string& name) const {
    for (const auto& p : m_layout)
        if (p.name == name)
            return p;
    throw Error(ErrorCode::Missing, "trainer: no parameter '" + name + "'");
}

template <class S> void TransformerT<S>::initialize(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    const double residualScale = 1.0 / std::sqrt(2.0 * m_config.layers);
    for (const auto& p : m_layout) {
        S* data = m_params.data() + p.offset;
        const bool isNorm = p.name.find("norm") != std::string::npos;
        const bool isBias = p.name.find("bias") != std::string::npos;
        const bool isResidualOut =
            p.name.find(".wo") != std::string::npos || p.name.find("w_down") != std::string::npos;
        // A tied embedding of std σ gives each token a self-logit of about width·σ through the
        // residual stream (3.8 for σ = 0.02, width 192): start it small so the initial loss is
        // ln(vocab); Adam's step sizes do not depend on the scale.
        const double stddev = p.name == "embed" && m_config.tiedEmbeddings ? 0.002 : 0.02;
        for (std::size_t i = 0; i < p.size(); ++i) {
            if (isNorm)
                data[i] = isBias ? S(0) : S(1);
            else
                data[i] =
                    static_cast<S>(stddev * normal(rng) * (isResidualOut ? residualScale : 1));
        }
    }
}

template <class S>
MatrixT<S> TransformerT<S>::run(std::span<const TokenId> inputs, int batch, bool keep) {
    const auto& c = m_config;
    auto& ws = *m_ws;
    const int N = static_cast<int>(inputs.size());
    if (batch <= 0 || N % batch != 0)
        throw Error(ErrorCode::InvalidArgument, "trainer: " + std::to_string(N) +
                                                    " tokens do not split into " +
                                                    std::to_string(batch) + " rows");
    const int T = N / batch;
    if (T > c.maxPositions)
        throw Error(ErrorCode::InvalidArgument, "trainer: rows of " + std::to_string(T) +
                                                    " tokens exceed the context of " +
                                                    std::to_string(c.maxPositions));
    for (int i = 0; i < N; ++i)
        if (inputs[static_cast<std::size_t>(i)] < 0 ||
            inputs[static_cast<std::size_t>(i)] >= c.vocab)
            throw Error(ErrorCode::InvalidArgument,
                        "trainer: token id " + std::to_string(inputs[static_cast<std::size_t>(i)]) +
                            " is outside the vocabulary of " + std::to_string(c.vocab));
    const int D = c.width, H = c.heads, Hkv = c.kvHeads, d = c.headDim, g = c.groupSize();
    const int Hd = H * d;
    const bool rope = c.positions == PositionKind::Rope;
    const bool ln = c.norm == NormKind::LayerNorm;
    const bool queryIsKey = !ownsQuery(c);
    const bool valueIsKey = !ownsValue(c);
    const S scale = S(1) / std::sqrt(static_cast<S>(d));
    S* P = m_params.data();
    auto W = [&](const std::string& name) {
        const auto& p = param(name);
        return Map<S>(P + p.offset, p.rows, p.cols);
    };
    auto vec = [&](const std::string& name) -> const S* { return P + param(name).offset; };

    ws.batch = batch;
    ws.length = T;
    ws.inputs.assign(inputs.begin(), inputs.end());
    if (rope && (ws.rope.cos.rows() < T || ws.rope.headDim != d))
        ws.rope = makeRopeTable(c, 0, c.maxPositions, c.maxPositions);
    ws.layers.resize(static_cast<std::size_t>(c.layers));

    const auto embed = W("embed");
    MatrixT<S> x(N, D);
    for (int i = 0; i < N; ++i)
        x.row(i) = embed.row(inputs[static_cast<std::size_t>(i)]);
    if (c.positions == PositionKind::Learned) {
        const auto pos = W("positions");
        for (int i = 0; i < N; ++i)
            x.row(i) += pos.row(i % T);
    }

    typename Workspace::Layer scratch;
    for (int l = 0; l < c.layers; ++l) {
        auto& L = keep ? ws.layers[static_cast<std::size_t>(l)] : scratch;
        const std::string p = "layers." + std::to_string(l) + ".";
        L.xin = x;
        normForward(c, L.xin, vec(p + "norm1"), ln ? vec(p + "norm1_bias") : nullptr, L.xn1, L.r1,
                    L.m1);
        L.k.noalias() = L.xn1 * W(p + "wk");
        if (valueIsKey)
            L.v = L.k; // the shared cache keeps keys before rotation; they double as values
        else
            L.v.noalias() = L.xn1 * W(p + "wv");
        if (queryIsKey)
            L.q = L.k;
        else
            L.q.noalias() = L.xn1 * W(p + "wq");
        if (rope) {
            rotate(L.q, ws.rope, c.ropeLayout, T, false);
            rotate(L.k, ws.rope, c.ropeLayout, T, false);
        }
        L.att.resize(N, Hd);
        L.probs.resize(static_cast<std::size_t>(batch) * H);
#pragma omp parallel for schedule(dynamic) if (static_cast <long>(N) * T * H * d >= kParallelMin)
        for (int task = 0; task < batch * Hkv; ++task) {
            const int b = task / Hkv, kv = task % Hkv;
            const auto K = L.k.block(static_cast<Eigen::Index>(b) * T, kv * d, T, d);
            const auto V = L.v.block(static_cast<Eigen::Index>(b) * T, kv * d, T, d);
            for (int j = 0; j < g; ++j) {
                const int h = kv * g + j;
                auto& Pm = L.probs[static_cast<std::size_t>(b) * H + h];
                Pm.noalias() =
                    L.q.block(static_cast<Eigen::Index>(b) * T, h * d, T, d) * K.transpose();
                for (int i = 0; i < T; ++i) {
                    // Causal softmax of the visible part (Eigen's vectorized exp), zeros after.
                    auto seen = Pm.row(i).head(i + 1).array();
                    const S mx = seen.maxCoeff();
                    seen = ((seen - mx) * scale).exp();
                    seen /= seen.sum();
                    Pm.row(i).tail(T - i - 1).setZero();
                }
                L.att.block(static_cast<Eigen::Index>(b) * T, h * d, T, d).noalias() = Pm * V;
            }
        }
        x.noalias() += L.att * W(p + "wo");
        L.xmid = x;
        normForward(c, L.xmid, vec(p + "norm2"), ln ? vec(p + "norm2_bias") : nullptr, L.xn2, L.r2,
                    L.m2);
        if (c.mlp == MlpKind::SwiGlu) {
            L.a.noalias() = L.xn2 * W(p + "w_gate");
            L.u.noalias() = L.xn2 * W(p + "w_up");
            L.hmid.resize(N, c.intermediate);
            L.hmid.array() = L.a.array() / (S(1) + (-L.a.array()).exp()) * L.u.array();
        } else {
            L.a.noalias() = L.xn2 * W(p + "w_up");
            L.hmid.resize(N, c.intermediate);
            const MlpKind kind = c.mlp;
            L.hmid = L.a.unaryExpr([kind](S v) {
                S value, deriv;
                gelu(kind, v, value, deriv);
                return value;
            });
        }
        x.noalias() += L.hmid * W(p + "w_down");
    }
    ws.xlast = x;
    normForward(c, ws.xlast, vec("final_norm"), ln ? vec("final_norm_bias") : nullptr, ws.xf, ws.rf,
                ws.mf);
    const auto out = c.tiedEmbeddings ? W("embed") : W("lm_head");
    MatrixT<S> logits(N, c.vocab);
    logits.noalias() = ws.xf * out.transpose();
    return logits;
}

template <class S> MatrixT<S> TransformerT<S>::logits(std::span<const TokenId> tokens) {
    return run(tokens, 1, false);
}

template <class S>
S TransformerT<S>::loss(std::span<const TokenId> inputs, std::span<const TokenId> targets,
                        int batch, std::vector<S>* grad, std::vector<S>* tokenLosses) {
    if (targets.size() != inputs.size())
        throw Error(ErrorCode::InvalidArgument, "trainer: " + std::to_string(targets.size()) +
                                                    " targets for " +
                                                    std::to_string(inputs.size()) + " inputs");
    const auto& c = m_config;
    const bool backward = grad != nullptr;
    MatrixT<S> logits = run(inputs, batch, backward);
    const int N = static_cast<int>(inputs.size());
    for (int i = 0; i < N; ++i)
        if (targets[static_cast<std::size_t>(i)] < 0 ||
            targets[static_cast<std::size_t>(i)] >= c.vocab)
            throw Error(ErrorCode::InvalidArgument,
                        "trainer: target id " +
                            std::to_string(targets[static_cast<std::size_t>(i)]) +
                            " is outside the vocabulary");
    // Softmax in place; logits become the gradient of the mean loss.
    std::vector<S> losses(static_cast<std::size_t>(N));
#pragma omp parallel for schedule(static) if (logits.size() >= kParallelMin)
    for (int i = 0; i < N; ++i) {
        auto row = logits.row(i);
        const S mx = row.maxCoeff();
        row.array() = (row.array() - mx).exp();
        const S sum = row.sum();
        row /= sum;
        const TokenId t = targets[static_cast<std::size_t>(i)];
        losses[static_cast<std::size_t>(i)] = -std::log(std::max(row(t), S(1e-30)));
        row(t) -= S(1);
    }
    S total = 0;
    for (S v : losses)
        total += v;
    if (tokenLosses)
        *tokenLosses = losses;
    const S mean = total / static_cast<S>(N);
    if (!backward)
        return mean;

    auto& ws = *m_ws;
    const int T = ws.length, B = ws.batch;
    const int D = c.width, H = c.heads, Hkv = c.kvHeads, d = c.headDim, g = c.groupSize();
    const int Hd = H * d, KVd = Hkv * d;
    const bool rope = c.positions == PositionKind::Rope;
    const bool ln = c.norm == NormKind::LayerNorm;
    const bool queryIsKey = !ownsQuery(c);
    const bool valueIsKey = !ownsValue(c);
    const S scale = S(1) / std::sqrt(static_cast<S>(d));
    grad->assign(m_params.size(), S(0));
    S* P = m_params.data();
    S* G = grad->data();
    auto W = [&](const std::string& name) {
        const auto& p = param(name);
        return Map<S>(P + p.offset, p.rows, p.cols);
    };
    auto dW = [&](const std::string& name) {
        const auto& p = param(name);
        return Map<S>(G + p.offset, p.rows, p.cols);
    };
    auto vec = [&](const std::string& name) -> S* { return P + param(name).offset; };
    auto dvec = [&](const std::string& name) -> S* { return G + param(name).offset; };

    logits /= static_cast<S>(N); // d mean / d logits
    const std::string outName = c.tiedEmbeddings ? "embed" : "lm_head";
    dW(outName).noalias() += logits.transpose() * ws.xf;
    MatrixT<S> dxf(N, D);
    dxf.noalias() = logits * W(outName);
    logits.resize(0, 0);
    MatrixT<S> dx = MatrixT<S>::Zero(N, D);
    normBackward(c, ws.xlast, ws.rf, ws.mf, vec("final_norm"), dxf, dx, dvec("final_norm"),
                 ln ? dvec("final_norm_bias") : nullptr);

    MatrixT<S> dh, da, du, dn, datt, dq, dk, dv;
    for (int l = c.layers - 1; l >= 0; --l) {
        auto& L = ws.layers[static_cast<std::size_t>(l)];
        const std::string p = "layers." + std::to_string(l) + ".";
        // MLP: x = xmid + hmid · w_down
        dW(p + "w_down").noalias() += L.hmid.transpose() * dx;
        dh.noalias() = dx * W(p + "w_down").transpose();
        dn.resize(N, D);
        if (c.mlp == MlpKind::SwiGlu) {
            const auto a = L.a.array();
            const auto sig = (S(1) / (S(1) + (-a).exp())).eval();
            du = (dh.array() * a * sig).matrix();
            da = (dh.array() * L.u.array() * sig * (S(1) + a * (S(1) - sig))).matrix();
            dW(p + "w_up").noalias() += L.xn2.transpose() * du;
            dW(p + "w_gate").noalias() += L.xn2.transpose() * da;
            dn.noalias() = du * W(p + "w_up").transpose();
            dn.noalias() += da * W(p + "w_gate").transpose();
        } else {
            const MlpKind kind = c.mlp;
            da = L.a.unaryExpr([kind](S v) {
                S value, deriv;
                gelu(kind, v, value, deriv);
                return deriv;
            });
            da.array() *= dh.array();
            dW(p + "w_up").noalias() += L.xn2.transpose() * da;
            dn.noalias() = da * W(p + "w_up").transpose();
        }
        normBackward(c, L.xmid, L.r2, L.m2, vec(p + "norm2"), dn, dx, dvec(p + "norm2"),
                     ln ? dvec(p + "norm2_bias") : nullptr);

        // Attention: xmid = xin + att · wo
        dW(p + "wo").noalias() += L.att.transpose() * dx;
        datt.noalias() = dx * W(p + "wo").transpose();
        dq.resize(N, Hd);
        dk.setZero(N, KVd);
        dv.setZero(N, KVd);
#pragma omp parallel for schedule(dynamic) if (static_cast <long>(N) * T * H * d >= kParallelMin)
        for (int task = 0; task < B * Hkv; ++task) {
            const int b = task / Hkv, kv = task % Hkv;
            const Eigen::Index r0 = static_cast<Eigen::Index>(b) * T;
            const auto K = L.k.block(r0, kv * d, T, d);
            const auto V = L.v.block(r0, kv * d, T, d);
            auto dK = dk.block(r0, kv * d, T, d);
            auto dV = dv.block(r0, kv * d, T, d);
            MatrixT<S> dP(T, T);
            for (int j = 0; j < g; ++j) {
                const int h = kv * g + j;
                const auto& Pm = L.probs[static_cast<std::size_t>(b) * H + h];
                const auto dO = datt.block(r0, h * d, T, d);
                dV.noalias() += Pm.transpose() * dO;
                dP.noalias() = dO * V.transpose();
                for (int i = 0; i < T; ++i) {
                    auto dpr = dP.row(i).head(i + 1).array();
                    const auto pr = Pm.row(i).head(i + 1).array();
                    const S dot = (dpr * pr).sum();
                    dpr = pr * (dpr - dot) * scale;
                    dP.row(i).tail(T - i - 1).setZero();
                }
                dq.block(r0, h * d, T, d).noalias() = dP * K;
                dK.noalias() += dP.transpose() * L.q.block(r0, h * d, T, d);
            }
        }
        if (queryIsKey)
            dk += dq; // the queries are the keys (same rotation, same heads)
        if (rope) {
            rotate(dk, ws.rope, c.ropeLayout, T, true);
            if (!queryIsKey)
                rotate(dq, ws.rope, c.ropeLayout, T, true);
        }
        if (valueIsKey)
            dk += dv; // the values are the keys before rotation
        dW(p + "wk").noalias() += L.xn1.transpose() * dk;
        dn.noalias() = dk * W(p + "wk").transpose();
        if (!queryIsKey) {
            dW(p + "wq").noalias() += L.xn1.transpose() * dq;
            dn.noalias() += dq * W(p + "wq").transpose();
        }
        if (!valueIsKey) {
            dW(p + "wv").noalias() += L.xn1.transpose() * dv;
            dn.noalias() += dv * W(p + "wv").transpose();
        }
        normBackward(c, L.xin, L.r1, L.m1, vec(p + "norm1"), dn, dx, dvec(p + "norm1"),
                     ln ? dvec(p + "norm1_bias") : nullptr);
    }
    auto dEmbed = dW("embed");
    for (int i = 0; i < N; ++i)
        dEmbed.row(ws.inputs[static_cast<std::size_t>(i)]) += dx.row(i);
    if (c.positions == PositionKind::Learned) {
        auto dPos = dW("positions");
        for (int i = 0; i < N; ++i)
            dPos.row(i % T) += dx.row(i);
    }
    return mean;
}

template class TransformerT<float>;
template class TransformerT<double>;

} // namespace kvs
