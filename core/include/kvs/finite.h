// SPDX-License-Identifier: MIT
// The one finiteness check: a NaN or infinity in weights, a capture or a result is an error that
// names where it first appears (file and tensor, or layer, head and quantity), never a score.
#pragma once

#include "kvs/status.h"

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

namespace kvs {

struct HeadMetrics;

// "NaN", "inf" or "-inf".
inline std::string describeNonFinite(double value) {
    return std::isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf";
}

// Whether n contiguous floats are all finite: one branch-free pass over the exponent bits that
// the compiler vectorizes (Eigen's allFinite() computes x − x and compares, several times
// slower; weights and captures are hundreds of megabytes).
bool allFinite(const float* data, std::size_t count);

// Throws Error(NotFinite) "WHAT holds NaN at [row, col]" for the first (row-major) non-finite
// element; `what` names the place ("model.safetensors: tensor 'lm_head.weight'"). One pass.
template <class Derived>
void checkFinite(const Eigen::DenseBase<Derived>& m, std::string_view what) {
    if constexpr (std::is_same_v<typename Derived::Scalar, float> &&
                  std::is_base_of_v<Eigen::PlainObjectBase<Derived>, Derived>) {
        if (allFinite(m.derived().data(), static_cast<std::size_t>(m.size())))
            return;
    } else if (m.allFinite()) {
        return;
    }
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
