// SPDX-License-Identifier: MIT
// Shared projections post hoc (ALGORITHMS.md §3): schemes that rewrite the model's attention
// projections rather than its cache, so every metric includes what follows downstream.
//  - share.pool / share.lsq: grouped-query attention with k KV heads (1 = MQA) from a model
//    with more, each group's key and value projections mean-pooled, or replaced by the
//    least-squares shared head whose per-head factors fold into the queries (keys) and the output
//    projection (values).
//  - share.kv_tie / share.kv_regress: values shared with the keys (K=V): naive tying, or the
//    values regressed on the keys per head with the map folded into the output projection.
// Fits use the context's hidden inputs only (the probe is never calibration).
#include "registry_parts.h"
#include "scheme_util.h"

#include <Eigen/Eigenvalues>
#include <complex>
#include <string>

namespace kvs::schemes {
namespace {

using MatrixD = Eigen::MatrixXd;
using RowVectorD = Eigen::RowVectorXd;

// [W; b]: the bias as one more input row, so that x̃ = [x, 1] fits weight and bias together.
MatrixD augmented(const Matrix& w, const RowVector& b, bool bias) {
    MatrixD a(w.rows() + (bias ? 1 : 0), w.cols());
    a.topRows(w.rows()) = w.cast<double>();
    if (bias)
        a.row(w.rows()) = b.size() ? RowVectorD(b.cast<double>()) : RowVectorD::Zero(w.cols());
    return a;
}

void split(const MatrixD& a, bool bias, Matrix& w, RowVector& b) {
    w = a.topRows(a.rows() - (bias ? 1 : 0)).cast<float>();
    if (bias)
        b = a.bottomRows(1).cast<float>();
}

// Rows [first, first + count) of layer l's attention input (normalized), with a column of ones
// where the projections have biases. The context rows calibrate the fits; the probe rows, which
// no fit sees, measure them (R² in-sample would flatter a fit with few context tokens).
MatrixD layerInputs(const Capture& cap, int layer, int first, int count, bool bias) {
    const Matrix& h = cap.layers[static_cast<std::size_t>(layer)].hiddenNormed;
    MatrixD x(count, h.cols() + (bias ? 1 : 0));
    x.leftCols(h.cols()) = h.middleRows(first, count).cast<double>();
    if (bias)
        x.col(h.cols()).setOnes();
    return x;
}
MatrixD calibration(const Capture& cap, int layer, int ctx, bool bias) {
    return layerInputs(cap, layer, 0, ctx, bias);
}
MatrixD heldOut(const Capture& cap, int layer, int ctx, bool bias) {
    return layerInputs(cap, layer, ctx, cap.tokenCount() - ctx, bias);
}

double rSquared(double residual, double centred) {
    return centred > 0 ? 1.0 - residual / centred : (residual > 0 ? -1.0 : 1.0);
}

double centredSquares(const MatrixD& y) {
    return (y.rowwise() - y.colwise().mean()).squaredNorm();
}

void checkRewritable(const ModelConfig& c, const std::string& id) {
    if (c.sharing == ProjectionSharing::QEqK || c.sharing == ProjectionSharing::QEqKEqV)
        throw Error(ErrorCode::Unsupported,
                    id + ": the model's queries are its keys (Q=K); sharing keys post hoc would "
                         "change its queries too");
}

// The rotation pairs of RoPE (channels a, b turned together as a + i·b).
std::vector<std::pair<int, int>> ropePairs(const ModelConfig& c) {
    std::vector<std::pair<int, int>> pairs;
    const int half = c.headDim / 2;
    for (int i = 0; i < half; ++i)
        pairs.push_back(c.ropeLayout == RopeLayout::Interleaved ? std::pair{2 * i, 2 * i + 1}
                                                                : std::pair{i, i + half});
    return pairs;
}

// One group's shared head: its projection and, per member head j, what the rewritten model
// effectively computes for j (`effective[j]`, to measure the fit) and how j's readers change.
struct SharedFit {
    MatrixD shared;                 // (D[+1]) × d
    std::vector<MatrixD> effective; // per member
    // Per member: the real d × d factor M_j with head j ≈ shared · M_j (least squares without
    // RoPE), or per RoPE pair the complex factor conj(v_j) (with RoPE); empty for mean pooling.
    std::vector<MatrixD> factor;
    std::vector<Eigen::VectorXcd> pairFactor;
};

SharedFit meanPool(const std::vector<MatrixD>& members) {
    SharedFit f;
    f.shared = MatrixD::Zero(members[0].rows(), members[0].cols());
    for (const MatrixD& w : members)
        f.shared += w;
    f.shared /= static_cast<double>(members.size());
    f.effective.assign(members.size(), f.shared);
    return f;
}

// The best rank-d approximation of the members' outputs [X W_1 … X W_g] on the calibration
// Gram G = X̃ᵀX̃: with V_d the top d eigenvectors of Wᵀ G W, the shared head is W V_d and
// member j ≈ shared · M_j with M_j = (rows j of V_d)ᵀ.
SharedFit leastSquares(const std::vector<MatrixD>& members, const MatrixD& gram) {
    const Eigen::Index d = members[0].cols(), g = static_cast<Eigen::Index>(members.size());
    MatrixD w(members[0].rows(), g * d);
    for (Eigen::Index j = 0; j < g; ++j)
        w.middleCols(j * d, d) = members[static_cast<std::size_t>(j)];
    Eigen::SelfAdjointEigenSolver<MatrixD> eig(w.transpose() * gram * w);
    const MatrixD top = eig.eigenvectors().rightCols(d); // eigenvalues ascend
    SharedFit f;
    f.shared = w * top;
    for (Eigen::Index j = 0; j < g; ++j) {
        f.factor.push_back(top.middleRows(j * d, d).transpose());
        f.effective.push_back(f.shared * f.factor.back());
    }
    return f;
}

// Least squares that commutes with RoPE: per rotation pair the members' complex outputs
// X̃(w_a + i·w_b) are approximated by rank one, z_j ≈ conj(v_j)·z_s with z_s = X̃ W v (v the top
// eigenvector of Wᴴ G W). A complex scalar per pair commutes with the rotation, so it folds into
// the queries exactly.
SharedFit leastSquaresPairs(const std::vector<MatrixD>& members, const MatrixD& gram,
                            const std::vector<std::pair<int, int>>& pairs) {
    using MatrixC = Eigen::MatrixXcd;
    const Eigen::Index g = static_cast<Eigen::Index>(members.size()), rows = members[0].rows();
    SharedFit f;
    f.shared = MatrixD::Zero(rows, members[0].cols());
    f.effective.assign(members.size(), f.shared);
    f.pairFactor.assign(members.size(), Eigen::VectorXcd(static_cast<Eigen::Index>(pairs.size())));
    const MatrixC gramC = gram.cast<std::complex<double>>();
    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const auto [a, b] = pairs[p];
        MatrixC w(rows, g);
        for (Eigen::Index j = 0; j < g; ++j) {
            const MatrixD& m = members[static_cast<std::size_t>(j)];
            w.col(j).real() = m.col(a);
            w.col(j).imag() = m.col(b);
        }
        Eigen::SelfAdjointEigenSolver<MatrixC> eig(w.adjoint() * gramC * w);
        const Eigen::VectorXcd v = eig.eigenvectors().rightCols(1);
        const Eigen::VectorXcd shared = w * v;
        f.shared.col(a) = shared.real();
        f.shared.col(b) = shared.imag();
        for (Eigen::Index j = 0; j < g; ++j) {
            const std::complex<double> c = std::conj(v(j));
            const Eigen::VectorXcd approx = c * shared;
            f.effective[static_cast<std::size_t>(j)].col(a) = approx.real();
            f.effective[static_cast<std::size_t>(j)].col(b) = approx.imag();
            f.pairFactor[static_cast<std::size_t>(j)](static_cast<Eigen::Index>(p)) = c;
        }
    }
    return f;
}

// Makes query head block `q` (columns of W̃_q) read the shared key as it read member j:
// q' = q·M_jᵀ, or per pair q'_c = q_c·conj(c_j) for the complex factor c_j.
void foldIntoQuery(MatrixD& wq, int queryHead, int d, const SharedFit& fit, std::size_t member,
                   const std::vector<std::pair<int, int>>& pairs) {
    auto block = wq.middleCols(static_cast<Eigen::Index>(queryHead) * d, d);
    if (!fit.factor.empty()) {
        block = MatrixD(block * fit.factor[member].transpose());
        return;
    }
    if (fit.pairFactor.empty())
        return;
    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const auto [a, b] = pairs[p];
        const std::complex<double> v =
            std::conj(fit.pairFactor[member](static_cast<Eigen::Index>(p)));
        const Eigen::VectorXd ca = block.col(a), cb = block.col(b);
        block.col(a) = v.real() * ca - v.imag() * cb;
        block.col(b) = v.imag() * ca + v.real() * cb;
    }
}

WeightRewrite shareAcrossHeads(const Model& model, const Capture& cap, int ctx,
                               const ParamValues& p, bool fitted, const std::string& id) {
    const ModelConfig& c = model.config();
    checkRewritable(c, id);
    const int k = static_cast<int>(param(p, "kv_heads"));
    if (k > c.kvHeads || c.kvHeads % k != 0) {
        std::string allowed;
        for (int i = 1; i <= c.kvHeads; ++i)
            if (c.kvHeads % i == 0)
                allowed += (allowed.empty() ? "" : ", ") + std::to_string(i);
        throw Error(ErrorCode::InvalidArgument,
                    id + ": kv_heads = " + std::to_string(k) + " does not divide the model's " +
                        std::to_string(c.kvHeads) + " KV heads (allowed: " + allowed + ")");
    }
    const bool rope = c.positions == PositionKind::Rope;
    const bool sharedValues =
        c.sharing == ProjectionSharing::KEqV || c.sharing == ProjectionSharing::QEqKEqV;
    if (fitted && sharedValues)
        throw Error(ErrorCode::Unsupported,
                    id + ": the model's values are its keys (K=V); the least-squares shared head "
                         "would need the keys' RoPE-commuting factor in the output projection "
                         "(use share.pool)");
    const int d = c.headDim, r = c.kvHeads / k, g = c.groupSize();
    const auto pairs = ropePairs(c);
    WeightRewrite out;
    out.config = c;
    out.config.kvHeads = k;
    for (int l = 0; l < c.layers; ++l) {
        AttentionProjections a = model.attentionProjections(l);
        const MatrixD x = calibration(cap, l, ctx, c.qkvBias);
        const MatrixD probe = heldOut(cap, l, ctx, c.qkvBias);
        const MatrixD gram = x.transpose() * x;
        const MatrixD wk = augmented(a.wk, a.bk, c.qkvBias);
        const MatrixD wv = sharedValues ? MatrixD() : augmented(a.wv, a.bv, c.qkvBias);
        MatrixD wq = augmented(a.wq, a.bq, c.qkvBias);
        MatrixD wo = a.wo.cast<double>();
        MatrixD newK(wk.rows(), Eigen::Index(k) * d), newV(wv.rows(), Eigen::Index(k) * d);
        std::vector<double> r2(static_cast<std::size_t>(c.kvHeads));
        for (int s = 0; s < k; ++s) {
            std::vector<MatrixD> keys, values;
            for (int j = 0; j < r; ++j) {
                keys.push_back(wk.middleCols(Eigen::Index(s * r + j) * d, d));
                if (!sharedValues)
                    values.push_back(wv.middleCols(Eigen::Index(s * r + j) * d, d));
            }
            const SharedFit kf = !fitted ? meanPool(keys)
                                 : rope  ? leastSquaresPairs(keys, gram, pairs)
                                         : leastSquares(keys, gram);
            newK.middleCols(Eigen::Index(s) * d, d) = kf.shared;
            SharedFit vf;
            if (!sharedValues) {
                vf = fitted ? leastSquares(values, gram) : meanPool(values);
                newV.middleCols(Eigen::Index(s) * d, d) = vf.shared;
            }
            for (int j = 0; j < r; ++j) {
                const int original = s * r + j;
                const auto m = static_cast<std::size_t>(j);
                double residual = (probe * (keys[m] - kf.effective[m])).squaredNorm();
                double centred = centredSquares(probe * keys[m]);
                if (!sharedValues) {
                    residual += (probe * (values[m] - vf.effective[m])).squaredNorm();
                    centred += centredSquares(probe * values[m]);
                }
                r2[static_cast<std::size_t>(original)] = rSquared(residual, centred);
                for (int q = original * g; q < (original + 1) * g; ++q) {
                    foldIntoQuery(wq, q, d, kf, m, pairs);
                    if (!vf.factor.empty()) // o = P·v_j ≈ (P·v_s)·M_j: M_j moves into W_o
                        wo.middleRows(Eigen::Index(q) * d, d) =
                            MatrixD(vf.factor[m] * wo.middleRows(Eigen::Index(q) * d, d));
                }
            }
        }
        split(newK, c.qkvBias, a.wk, a.bk);
        if (!sharedValues)
            split(newV, c.qkvBias, a.wv, a.bv);
        if (a.wq.size())
            split(wq, c.qkvBias, a.wq, a.bq);
        a.wo = wo.cast<float>();
        out.layers.push_back(std::move(a));
        out.fitR2.push_back(std::move(r2));
    }
    return out;
}

WeightRewrite shareValuesWithKeys(const Model& model, const Capture& cap, int ctx, bool regression,
                                  const std::string& id) {
    const ModelConfig& c = model.config();
    checkRewritable(c, id);
    if (c.sharing != ProjectionSharing::Qkv)
        throw Error(ErrorCode::Unsupported, id + ": the model already caches its keys as values");
    const int d = c.headDim, g = c.groupSize();
    WeightRewrite out;
    out.config = c;
    out.config.sharing = ProjectionSharing::KEqV;
    for (int l = 0; l < c.layers; ++l) {
        AttentionProjections a = model.attentionProjections(l);
        const MatrixD x = calibration(cap, l, ctx, c.qkvBias);
        const MatrixD probe = heldOut(cap, l, ctx, c.qkvBias);
        const MatrixD wk = augmented(a.wk, a.bk, c.qkvBias), wv = augmented(a.wv, a.bv, c.qkvBias);
        const MatrixD keys = x * wk, values = x * wv; // pre-RoPE keys; what K=V replaces
        const MatrixD probeKeys = probe * wk, probeValues = probe * wv;
        MatrixD wo = a.wo.cast<double>();
        RowVectorD bo = a.bo.size() ? RowVectorD(a.bo.cast<double>()) : RowVectorD::Zero(c.width);
        std::vector<double> r2;
        std::vector<RowVector> offsets(static_cast<std::size_t>(c.heads));
        for (int h = 0; h < c.kvHeads; ++h) {
            const MatrixD kh = keys.middleCols(Eigen::Index(h) * d, d);
            const MatrixD vh = values.middleCols(Eigen::Index(h) * d, d);
            const MatrixD probeK = probeKeys.middleCols(Eigen::Index(h) * d, d);
            const MatrixD probeV = probeValues.middleCols(Eigen::Index(h) * d, d);
            MatrixD approx = probeK; // what the rewritten model uses as the probe's values
            if (regression) {
                // v ≈ [k, 1]·B̃ by ridge least squares; o = Σ p·v folds B into W_o's rows of
                // every query head of the group and its offset into the output bias (Σ p = 1).
                MatrixD design(kh.rows(), d + 1);
                design << kh, Eigen::VectorXd::Ones(kh.rows());
                MatrixD normal = design.transpose() * design;
                const double ridge = 1e-9 * normal.trace() / static_cast<double>(d + 1) + 1e-30;
                normal.diagonal().array() += ridge;
                const MatrixD map = normal.ldlt().solve(design.transpose() * vh);
                approx = (probeK * map.topRows(d)).rowwise() + map.row(d);
                for (int q = h * g; q < (h + 1) * g; ++q) {
                    auto rows = wo.middleRows(Eigen::Index(q) * d, d);
                    const RowVectorD offset = map.row(d) * rows;
                    bo += offset;
                    offsets[static_cast<std::size_t>(q)] = offset.cast<float>();
                    rows = MatrixD(map.topRows(d) * rows);
                }
            }
            r2.push_back(rSquared((probeV - approx).squaredNorm(), centredSquares(probeV)));
        }
        a.wv.resize(0, 0);
        a.bv.resize(0);
        a.wo = wo.cast<float>();
        if (regression && !bo.isZero(0.0)) {
            a.bo = bo.cast<float>();
            out.config.outputBias = true;
        }
        out.layers.push_back(std::move(a));
        out.fitR2.push_back(std::move(r2));
        if (regression)
            out.outputOffsets.push_back(std::move(offsets));
    }
    return out;
}

// The rewritten model's own cache, every token kept, dense at the stored precision.
CompressedHead rewrittenCache(const HeadInput& h, const ParamValues& p) {
    return allTokens(h, precisionOf(p));
}

ParamSpec kvHeadsParam() {
    ParamSpec spec{"kv_heads",
                   "KV heads",
                   1,
                   256,
                   2,
                   false,
                   true,
                   "heads",
                   "KV heads after sharing (1 = MQA); must divide the model's KV heads"};
    spec.dividesKvHeads = true;
    return spec;
}

// The K=V rewrites: their model caches its keys as its values.
SchemeInfo keysAsValues(SchemeInfo info) {
    info.valuesBecomeKeys = true;
    return info;
}

} // namespace

void addSharingSchemes(std::vector<std::unique_ptr<Scheme>>& out) {
    out.push_back(makeWeightScheme(
        {"share.pool",
         "shared",
         "Shared heads post hoc (mean pooling)",
         "Turns the model into grouped-query attention with fewer KV heads (1 = multi-query) "
         "without training: each group of KV heads is replaced by one whose key and value "
         "projections are the group's mean. The prompt is prefilled again by the rewritten "
         "model, so the quality numbers include every downstream effect. Cache: k of the "
         "model's KV heads.",
         {kvHeadsParam(), precisionParam(16)},
         "kv_heads"},
        [](const Model& m, const Capture& cap, int ctx, const ParamValues& p) {
            return shareAcrossHeads(m, cap, ctx, p, false, "share.pool");
        },
        rewrittenCache));
    out.push_back(makeWeightScheme(
        {"share.lsq",
         "shared",
         "Shared heads post hoc (least squares)",
         "Grouped-query attention with fewer KV heads, fitted: each group's shared key and value "
         "projection reproduces the members' keys and values on the context as closely as one "
         "head can (least squares), and the per-head factors that remain fold into the query "
         "projection (keys; one complex factor per RoPE pair, so rotation is untouched) and the "
         "output projection (values). Fitted on the context only.",
         {kvHeadsParam(), precisionParam(16)},
         "kv_heads"},
        [](const Model& m, const Capture& cap, int ctx, const ParamValues& p) {
            return shareAcrossHeads(m, cap, ctx, p, true, "share.lsq");
        },
        rewrittenCache));
    out.push_back(makeWeightScheme(
        keysAsValues(
            {"share.kv_tie",
             "shared",
             "Keys as values (naive tying)",
             "Drops the value projection and lets attention read its own (pre-RoPE) keys as "
             "values: the cache halves. Without training this usually breaks the model — that "
             "collapse is the point of the comparison with the regression fit and the trained "
             "K=V variant.",
             {precisionParam(16)},
             "precision"}),
        [](const Model& m, const Capture& cap, int ctx, const ParamValues&) {
            return shareValuesWithKeys(m, cap, ctx, false, "share.kv_tie");
        },
        rewrittenCache));
    out.push_back(makeWeightScheme(
        keysAsValues(
            {"share.kv_regress",
             "shared",
             "Keys as values (regression)",
             "Caches only the keys: per head the values are regressed on the (pre-RoPE) keys over "
             "the context, v ≈ k·B + b, and B moves into the output projection, b into its bias. "
             "R² per head says how much of the values the keys explain (how shareable the head "
             "is). The cache halves.",
             {precisionParam(16)},
             "precision"}),
        [](const Model& m, const Capture& cap, int ctx, const ParamValues&) {
            return shareValuesWithKeys(m, cap, ctx, true, "share.kv_regress");
        },
        rewrittenCache));
}

} // namespace kvs::schemes
