// SPDX-License-Identifier: MIT
// Finiteness checks of scalars and per-head metrics (matrices: the template in the header).
#include "kvs/finite.h"

#include "kvs/evaluator.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace kvs {

bool allFinite(const float* data, std::size_t count) {
    // A float is NaN or ±inf exactly when its exponent bits are all ones: x & 0x7f800000 then
    // equals the mask and the XOR below is 0, so the minimum over the block is 0.
    constexpr std::uint32_t kExponent = 0x7f800000u;
    constexpr std::size_t kBlock = 4096; // exit early on a bad block, stay vectorized inside one
    for (std::size_t start = 0; start < count; start += kBlock) {
        const std::size_t end = std::min(count, start + kBlock);
        std::uint32_t smallest = ~0u;
        for (std::size_t i = start; i < end; ++i) {
            std::uint32_t bits;
            std::memcpy(&bits, data + i, sizeof bits);
            smallest = std::min(smallest, (bits & kExponent) ^ kExponent);
        }
        if (smallest == 0)
            return false;
    }
    return true;
}

void checkFinite(double value, std::string_view what) {
    if (!std::isfinite(value))
        throw Error(ErrorCode::NotFinite, std::string(what) + " is " + describeNonFinite(value));
}

void checkFinite(const HeadMetrics& m) {
    const std::string where =
        "layer " + std::to_string(m.layer) + ", KV head " + std::to_string(m.kvHead) + ": ";
    checkFinite(m.outputError, where + "head output error");
    checkFinite(m.contextError, where + "context-only error");
    checkFinite(m.maxContextError, where + "max context-only error");
    checkFinite(m.massLost, where + "attention mass lost");
    checkFinite(m.totalVariation, where + "total variation");
    checkFinite(m.logitError, where + "logit error");
    checkFinite(m.rhoEff, where + "rho_eff");
    checkFinite(m.valueScaledError, where + "value-scaled error");
}

} // namespace kvs
