// SPDX-License-Identifier: MIT
#include "score_svd.h"

#include <Eigen/SVD>

namespace kvs::detail {

MatrixD stackQueries(const std::vector<Matrix>& queries, Eigen::Index rowsEach) {
    Eigen::Index rows = 0;
    for (const Matrix& q : queries)
        rows += rowsEach < 0 ? q.rows() : rowsEach;
    const Eigen::Index cols = queries.empty() ? 0 : queries.front().cols();
    MatrixD out(rows, cols);
    Eigen::Index at = 0;
    for (const Matrix& q : queries) {
        const Eigen::Index n = rowsEach < 0 ? q.rows() : rowsEach;
        out.middleRows(at, n) = q.topRows(n).cast<double>();
        at += n;
    }
    return out;
}

ScoreCore scoreCore(const MatrixD& queries, const MatrixD& keys) {
    Eigen::BDCSVD<MatrixD> svdQ(queries, Eigen::ComputeThinV);
    Eigen::BDCSVD<MatrixD> svdK(keys, Eigen::ComputeThinV);
    ScoreCore s;
    s.queryValues = svdQ.singularValues();
    s.queryRight = svdQ.matrixV();
    s.keyValues = svdK.singularValues();
    s.keyRight = svdK.matrixV();
    s.core = s.queryValues.asDiagonal() * s.queryRight.transpose() * s.keyRight *
             s.keyValues.asDiagonal();
    return s;
}

} // namespace kvs::detail
