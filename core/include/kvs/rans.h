// SPDX-License-Identifier: MIT
// A static-model range asymmetric numeral system (rANS) coder: the entropy coder of the
// entropy-coded codec (ALGORITHMS.md §4). Symbols are small non-negative integers; the model is
// their frequency table quantized to a power-of-two total, sent as side information. 32-bit state,
// byte-wise renormalization; the stream is decoded in the order it was encoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kvs::rans {

inline constexpr int kPrecisionBits = 14; // frequencies sum to 2^14

struct Model {
    std::vector<std::uint32_t> frequency; // per symbol 0..alphabet−1, summing to 2^kPrecisionBits
    std::vector<std::uint32_t> cumulative; // per symbol: the sum of the frequencies before it
    std::size_t alphabet() const { return frequency.size(); }
    // What the model costs to send: the count of symbols that occur (2 bytes), then for each
    // its value (1 byte: alphabets up to 256) and frequency (2 bytes).
    std::size_t sideBytes() const {
        std::size_t present = 0;
        for (const std::uint32_t f : frequency)
            present += f > 0 ? 1 : 0;
        return 2 + 3 * present;
    }
};

// The model of `symbols` (each < alphabet): counts scaled to 2^kPrecisionBits, every symbol that
// occurs at least 1. Throws kvs::Error(InvalidArgument) for an empty input, a symbol out of the
// alphabet, or more distinct symbols than 2^kPrecisionBits.
Model buildModel(std::span<const std::uint32_t> symbols, std::size_t alphabet);

// The coded bytes of `symbols` under `model`.
std::vector<std::uint8_t> encode(std::span<const std::uint32_t> symbols, const Model& model);
// The `count` symbols of `stream`; throws kvs::Error(Format) for a stream that is cut short or
// does not end where it should.
std::vector<std::uint32_t> decode(std::span<const std::uint8_t> stream, const Model& model,
                                  std::size_t count);

// Σ −log2(count/N) over the symbols: the empirical entropy in bits, the bound a coder of this
// model can approach.
double entropyBits(std::span<const std::uint32_t> symbols, std::size_t alphabet);

} // namespace kvs::rans
