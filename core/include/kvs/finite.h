// SPDX-License-Identifier: MIT
// The one finiteness check: a NaN or infinity in weights, a capture or a result is an error that
// names where it first appears (file and tensor, or layer, head and quantity), never a score.
#pragma once

#include "kvs/status.h"

#include <Eigen/Core>

#include <cmath>
#include <string>
#include <string_view>

namespace kvs {

struct HeadMetrics;

// "NaN", "inf" or "-inf".
inline std::string describeNonFinite(double value) {
    return std::isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf";
}

// Throws Error(NotFinite) "WHAT holds NaN at [row, col]" for the first (row-major) non-finite
// element; `what` names the place ("model.safetensors: tensor 'lm_head.weight'"). One pass.
template <class Derived>
void checkFinite(const Eigen::DenseBase<Derived>& m, std::string_view what) {
    if (m.allFinite())
        return;
    for (Eigen::Index r = 0; r < m.rows(); ++r)
        for (Eigen::Index c = 0; c < m.cols(); ++c)
            if (!std::isfinite(static_cast<double>(m(r, c))))
                throw Error(ErrorCode::NotFinite,
                            std::string(what) + " holds " +
                                describeNonFinite(static_cast<double>(m(r, c))) + " at [" +
                                std::to_string(r) + ", " + std::to_string(c) + "]");
}

// Throws Error(NotFinite) "WHAT is NaN".
void checkFinite(double value, std::string_view what);

// The measured quantities of one head ("layer 2, KV head 1: attention error is NaN"); the coreset
// bound (+inf when the error is 0) is not a measurement and is not checked.
void checkFinite(const HeadMetrics& metrics);

} // namespace kvs
