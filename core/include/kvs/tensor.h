// SPDX-License-Identifier: MIT
// The project's matrix types: row-major, like the tensors in checkpoints and captures.
#pragma once

#include <Eigen/Core>

namespace kvs {

template <class Scalar>
using MatrixT = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar> using VectorT = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
template <class Scalar> using RowVectorT = Eigen::Matrix<Scalar, 1, Eigen::Dynamic>;

using Matrix = MatrixT<float>;
using Vector = VectorT<float>;
using RowVector = RowVectorT<float>;

} // namespace kvs
