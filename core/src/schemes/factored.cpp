// SPDX-License-Identifier: MIT
// Factored keys (ALGORITHMS.md §2): every token kept, keys cached as r numbers instead of d.
//  - factor.data_aware: the rank-r pair (P, B) fitted on the head's captured context queries and
//    keys that minimizes the score error ‖Q Kᵀ − Q P Bᵀ Kᵀ‖_F; the cache holds c = k B, a query
//    reads q̂ = q P. Calibration is the context's own queries — never the probe's.
#include "registry_parts.h"
#include "scheme_util.h"

#include <Eigen/SVD>
#include <algorithm>
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
    Eigen::BDCSVD<MatrixD> svdQ(q, Eigen::ComputeThinV);
    Eigen::BDCSVD<MatrixD> svdK(k, Eigen::ComputeThinV);
    const VectorD sq = svdQ.singularValues(), sk = svdK.singularValues();
    const double top = std::max(sq.size() ? sq(0) : 0.0, sk.size() ? sk(0) : 0.0);
    const double lambda = 1e-10 * top * top + 1e-30;
    const MatrixD a =
        sq.asDiagonal() * svdQ.matrixV().transpose() * svdK.matrixV() * sk.asDiagonal();
    Eigen::BDCSVD<MatrixD> svdA(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const int r = std::min<int>(rank, static_cast<int>(svdA.singularValues().size()));
    Factors f;
    f.queryProjection =
        svdQ.matrixV() * ridgeInverse(sq, lambda).asDiagonal() * svdA.matrixU().leftCols(r);
    f.keyProjection = svdK.matrixV() * ridgeInverse(sk, lambda).asDiagonal() *
                      svdA.matrixV().leftCols(r) * svdA.singularValues().head(r).asDiagonal();
    return f;
}

CompressedHead dataAwareFactors(const HeadInput& h, const ParamValues& p) {
    if (h.valuesSharedWithKeys)
        throw Error(ErrorCode::Unsupported,
                    "factor.data_aware: the model caches its keys as its values (K=V); factoring "
                    "keys that are also the values is not supported");
    const int d = h.headDim();
    const int rank = static_cast<int>(param(p, "rank"));
    if (rank > d)
        throw Error(ErrorCode::InvalidArgument,
                    "factor.data_aware: rank = " + std::to_string(rank) +
                        " is above the head dim " + std::to_string(d));
    if (h.queries.empty())
        throw Error(ErrorCode::InvalidArgument,
                    "factor.data_aware: no context queries to fit the projection on");
    // Calibration: the context queries of every query head that reads this KV head.
    Eigen::Index rows = 0;
    for (const Matrix& q : h.queries)
        rows += q.rows();
    MatrixD queries(rows, d);
    Eigen::Index at = 0;
    for (const Matrix& q : h.queries) {
        queries.middleRows(at, q.rows()) = q.cast<double>();
        at += q.rows();
    }
    const Factors f = fitScoreFactors(queries, h.keys.cast<double>(), rank);

    const Precision precision = precisionOf(p);
    CompressedHead c = allTokens(h, precision);
    c.keyForm = CompressedHead::KeyForm::LowRank;
    c.keys = (h.keys.cast<double>() * f.keyProjection).cast<float>();
    c.queryProjection = f.queryProjection.cast<float>();
    if (precision == Precision::F16) { // what is stored: coefficients and projection in fp16
        roundToHalf(c.keys);
        roundToHalf(c.queryProjection);
    }
    return c;
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
         "never cached. Values stay dense. Keys shrink from d to r numbers per token.",
         {{"rank", "Rank r", 1, 256, 8, true, true, "", "numbers cached per key; at most d"},
          precisionParam(16)},
         "rank"},
        dataAwareFactors));
}

} // namespace kvs::schemes
