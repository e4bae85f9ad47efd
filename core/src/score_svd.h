// SPDX-License-Identifier: MIT
// The score matrix Q Kᵀ through the thin SVDs of Q and K, shared by the data-aware key
// factorization (its fit) and the key spectra (its singular values): one copy of the algebra.
#pragma once

#include "kvs/tensor.h"

#include <Eigen/Core>
#include <vector>

namespace kvs::detail {

using MatrixD = Eigen::MatrixXd;
using VectorD = Eigen::VectorXd;

// The first `rowsEach` rows of every query head's queries (all rows when negative), one head
// under the other: the calibration set of a KV head read by several query heads.
MatrixD stackQueries(const std::vector<Matrix>& queries, Eigen::Index rowsEach = -1);

// With Q = U_q S_q V_qᵀ and K = U_k S_k V_kᵀ, Q Kᵀ = U_q A U_kᵀ with A = S_q V_qᵀ V_k S_k, so
// σ(Q Kᵀ) = σ(A), and A is only (rank Q) × (rank K).
struct ScoreCore {
    VectorD queryValues; // S_q
    MatrixD queryRight;  // V_q
    VectorD keyValues;   // S_k
    MatrixD keyRight;    // V_k
    MatrixD core;        // A
};
ScoreCore scoreCore(const MatrixD& queries, const MatrixD& keys);

} // namespace kvs::detail
