// SPDX-License-Identifier: MIT
// Factored keys (ALGORITHMS.md §2): every token kept, keys cached as r numbers instead of d.
//  - factor.data_aware: the rank-r pair (P, B) fitted on the head's captured context queries and
//    keys that minimizes the score error ‖Q Kᵀ − Q P Bᵀ Kᵀ‖_F; the cache holds c = k B, a query
//    reads q̂ = q P. Calibration is the context's own queries — never the probe's. Under RoPE it
//    is fitted on post-RoPE keys and queries: memory and bandwidth saved, approximately.
//  - factor.weight_svd: the top r right singular vectors V_r of the head's key projection
//    [W_K; b_K] = U Σ Vᵀ; the cache holds c = k_pre V_r, a key is rebuilt as c V_rᵀ (Eckart–Young:
//    the best rank-r map of every input). Under RoPE the latents are pre-RoPE and rotated on load
//    (memory saved, not bandwidth; the kernels rebuild and rotate); needs the model's weights.
//  - factor.rope_pairs: channel selection — whole rotation pairs (channels without RoPE) chosen
//    by the score mass they can carry, post-RoPE and exact on what they keep.
#include "registry_parts.h"
#include "scheme_util.h"
#include "score_svd.h"

#include <Eigen/SVD>
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>

namespace kvs::schemes {
namespace {

using MatrixD = Eigen::MatrixXd;
using VectorD = Eigen::VectorXd;

// s / (s² + λ): the inverse of the singular values with a small ridge, so that directions the
// calibration data never visits are dropped rather than blown up.
VectorD ridgeInverse(const VectorD& s, double lambda) {
    return s.array() / (s.array().square() + lambda);
}

struct Factors {
    MatrixD queryProjection; // P: d × r
    MatrixD keyProjection;   // B: d × r
};

// With Q = U_q S_q V_qᵀ and K = U_k S_k V_kᵀ, the score matrix is U_q A U_kᵀ with
// A = S_q V_qᵀ V_k S_k; its best rank-r approximation U_r Σ_r W_rᵀ (Eckart–Young) is reached by
// P = V_q S_q⁻¹ U_r and B = V_k S_k⁻¹ W_r Σ_r.
Factors fitScoreFactors(const MatrixD& q, const MatrixD& k, int rank) {
    const detail::ScoreCore s = detail::scoreCore(q, k);
    const VectorD& sq = s.queryValues;
    const VectorD& sk = s.keyValues;
    const double top = std::max(sq.size() ? sq(0) : 0.0, sk.size() ? sk(0) : 0.0);
    const double lambda = 1e-10 * top * top + 1e-30;
    Eigen::BDCSVD<MatrixD> svdA(s.core, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const int r = std::min<int>(rank, static_cast<int>(svdA.singularValues().size()));
    Factors f;
    f.queryProjection =
        s.queryRight * ridgeInverse(sq, lambda).asDiagonal() * svdA.matrixU().leftCols(r);
    f.keyProjection = s.keyRight * ridgeInverse(sk, lambda).asDiagonal() *
                      svdA.matrixV().leftCols(r) * svdA.singularValues().head(r).asDiagonal();
    return f;
}

void refuseSharedValues(const HeadInput& h, const std::string& id) {
    if (h.valuesSharedWithKeys)
        throw Error(ErrorCode::Unsupported,
                    id + ": the model caches its keys as its values (K=V); factoring keys that "
                         "are also the values is not supported");
}

int checkedRank(const HeadInput& h, const ParamValues& p, const std::string& id) {
    const int rank = static_cast<int>(param(p, "rank"));
    if (rank > h.headDim())
        throw Error(ErrorCode::InvalidArgument,
                    id + ": rank = " + std::to_string(rank) + " is above the head dim " +
                        std::to_string(h.headDim()) + " (allowed: 1 … " +
                        std::to_string(h.headDim()) + ")");
    return rank;
}

// The low-rank form with coefficients c and basis P (a key is c Pᵀ), rounded as stored.
CompressedHead lowRankHead(const HeadInput& h, Precision precision, const MatrixD& coefficients,
                           const MatrixD& basis) {
    CompressedHead c = allTokens(h, precision);
    c.keyForm = CompressedHead::KeyForm::LowRank;
    c.keys = coefficients.cast<float>();
    c.queryProjection = basis.cast<float>();
    if (precision == Precision::F16) { // what is stored: coefficients and basis in fp16
        roundToHalf(c.keys);
        roundToHalf(c.queryProjection);
    }
    return c;
}

CompressedHead dataAwareFactors(const HeadInput& h, const ParamValues& p) {
    const std::string id = "factor.data_aware";
    refuseSharedValues(h, id);
    const int rank = checkedRank(h, p, id);
    if (h.queries.empty())
        throw Error(ErrorCode::InvalidArgument,
                    "factor.data_aware: no context queries to fit the projection on");
    // Calibration: the context queries of every query head that reads this KV head.
    const Factors f = fitScoreFactors(detail::stackQueries(h.queries), h.keys.cast<double>(), rank);
    return lowRankHead(h, precisionOf(p), h.keys.cast<double>() * f.keyProjection,
                       f.queryProjection);
}

CompressedHead weightSvdFactors(const HeadInput& h, const ParamValues& p) {
    const std::string id = "factor.weight_svd";
    refuseSharedValues(h, id);
    const int d = h.headDim();
    const int rank = checkedRank(h, p, id);
    if (h.keyProjection.size() == 0)
        throw Error(ErrorCode::Unsupported,
                    id + " factors the model's key projection: it needs the model's weights, and "
                         "a capture alone has none");
    if (h.keyProjection.cols() != d)
        throw Error(ErrorCode::Internal, id + ": the key projection has " +
                                             std::to_string(h.keyProjection.cols()) +
                                             " columns, the head dim is " + std::to_string(d));
    const bool rope = !h.keyRotation.empty();
    if (rope && h.keysPreRope.rows() != h.tokens())
        throw Error(ErrorCode::Unsupported,
                    id + ": the capture holds no pre-RoPE keys for this RoPE model (capture it "
                         "again with this version)");
    Eigen::BDCSVD<MatrixD> svd(h.keyProjection.cast<double>(), Eigen::ComputeThinV);
    const int r = std::min<int>(rank, static_cast<int>(svd.matrixV().cols()));
    const MatrixD basis = svd.matrixV().leftCols(r);
    const Matrix& preRope = rope ? h.keysPreRope : h.keys; // learned positions: the same keys
    CompressedHead c = lowRankHead(h, precisionOf(p), preRope.cast<double>() * basis, basis);
    if (rope)
        c.keyRotation = h.keyRotation; // latents are pre-RoPE: rebuilt and rotated on load
    return c;
}

// Channel selection: rotation pairs (i, i + d/2) or (2i, 2i + 1) under RoPE, single channels
// without, ranked by ‖Q_pair‖_F · ‖K_pair‖_F over the context — the Cauchy–Schwarz bound on the
// score mass the pair can carry. Post-RoPE, so nothing is rotated on load.
CompressedHead ropePairs(const HeadInput& h, const ParamValues& p) {
    const std::string id = "factor.rope_pairs";
    refuseSharedValues(h, id);
    const int d = h.headDim();
    const int rank = checkedRank(h, p, id);
    const bool rope = !h.keyRotation.empty();
    if (rope && rank % 2 != 0)
        throw Error(ErrorCode::InvalidArgument,
                    id + ": rank = " + std::to_string(rank) +
                        " must be even under RoPE (whole rotation pairs are kept)");
    const int width = rope ? 2 : 1;
    const int units = d / width;
    std::vector<std::array<int, 2>> channels(static_cast<std::size_t>(units));
    for (int i = 0; i < units; ++i)
        channels[static_cast<std::size_t>(i)] = !rope ? std::array<int, 2>{i, i}
                                                : h.keyRotation.interleaved
                                                    ? std::array<int, 2>{2 * i, 2 * i + 1}
                                                    : std::array<int, 2>{i, i + d / 2};
    const auto energy = [&](const Matrix& x, int unit) {
        const auto& ch = channels[static_cast<std::size_t>(unit)];
        double e = x.col(ch[0]).cast<double>().squaredNorm();
        if (width == 2)
            e += x.col(ch[1]).cast<double>().squaredNorm();
        return e;
    };
    std::vector<double> importance(static_cast<std::size_t>(units), 0.0);
    for (int i = 0; i < units; ++i) {
        double queryEnergy = 0.0;
        for (const Matrix& q : h.queries)
            queryEnergy += energy(q, i);
        importance[static_cast<std::size_t>(i)] =
            std::sqrt((h.queries.empty() ? 1.0 : queryEnergy) * energy(h.keys, i));
    }
    std::vector<int> order(static_cast<std::size_t>(units));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return importance[static_cast<std::size_t>(a)] > importance[static_cast<std::size_t>(b)];
    });
    const int keptUnits = rank / width;
    std::vector<int> kept;
    for (int i = 0; i < keptUnits; ++i)
        for (int w = 0; w < width; ++w)
            kept.push_back(channels[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])]
                                   [static_cast<std::size_t>(w)]);
    std::sort(kept.begin(), kept.end());
    MatrixD basis = MatrixD::Zero(d, static_cast<Eigen::Index>(kept.size()));
    for (std::size_t j = 0; j < kept.size(); ++j)
        basis(kept[j], static_cast<Eigen::Index>(j)) = 1.0;
    return lowRankHead(h, precisionOf(p), h.keys.cast<double>() * basis, basis);
}

} // namespace

void addFactoredSchemes(std::vector<std::unique_ptr<Scheme>>& out) {
    out.push_back(makeScheme(
        {"factor.data_aware",
         "factored",
         "Factored keys (data-aware rank r)",
         "Keeps every token but caches each key as r numbers: a rank-r projection fitted on the "
         "context's own queries and keys so that the attention scores change least (whitened by "
         "both, then the best rank-r approximation). Queries absorb the other factor and are "
         "never cached. Under RoPE it is fitted on the rotated keys and queries: it saves memory "
         "and bandwidth, approximately. Values stay dense. Keys shrink from d to r numbers per "
         "token.",
         {{"rank", "Rank r", 1, 256, 8, true, true, "", "numbers cached per key; at most d"},
          precisionParam(16)},
         "rank"},
        dataAwareFactors));
    SchemeInfo svd{
        "factor.weight_svd",
        "factored",
        "Factored keys (weight SVD, rank r)",
        "Keeps every token but caches each key as r numbers: the projection onto the top r right "
        "singular vectors of the head's key projection W_K (with its bias), the best rank-r map "
        "of every input (Eckart–Young); queries absorb the other factor. Needs the model's "
        "weights. Under RoPE the r numbers are taken before rotation and the key is rebuilt and "
        "rotated on load: it saves memory, not bandwidth. Values stay dense.",
        {{"rank", "Rank r", 1, 256, 8, true, true, "", "numbers cached per key; at most d"},
         precisionParam(16)},
        "rank"};
    svd.needsWeights = true;
    out.push_back(makeScheme(std::move(svd), weightSvdFactors));
    out.push_back(makeScheme(
        {"factor.rope_pairs",
         "factored",
         "Factored keys (whole rotation pairs)",
         "Keeps every token but caches only r of each key's d channels: whole RoPE rotation "
         "pairs (single channels without RoPE), those whose queries and keys carry the most "
         "score energy on the context. What is kept is exact and already rotated, so it saves "
         "memory and bandwidth; under RoPE r must be even.",
         {{"rank", "Rank r", 1, 256, 8, true, true, "", "channels cached per key; at most d"},
          precisionParam(16)},
         "rank"},
        ropePairs));
}

} // namespace kvs::schemes
