// SPDX-License-Identifier: MIT
// rANS, written from the construction (Duda 2013): the state x carries the message; a symbol s
// of frequency f and cumulative start c maps x to (x / f)·M + c + (x mod f), and the decoder
// inverts it from the low bits (x mod M picks s). The state stays in [L, 256·L) by moving bytes
// out (encoder) and in (decoder).
#include "kvs/rans.h"

#include "kvs/status.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace kvs::rans {

namespace {

constexpr std::uint32_t kTotal = 1u << kPrecisionBits;
constexpr std::uint32_t kLow = 1u << 23; // L: the state's lower bound

} // namespace

Model buildModel(std::span<const std::uint32_t> symbols, std::size_t alphabet) {
    if (symbols.empty())
        throw Error(ErrorCode::InvalidArgument, "rANS: no symbols to model");
    std::vector<std::uint64_t> counts(alphabet, 0);
    for (const std::uint32_t s : symbols) {
        if (s >= alphabet)
            throw Error(ErrorCode::InvalidArgument, "rANS: symbol " + std::to_string(s) +
                                                        " outside the alphabet of " +
                                                        std::to_string(alphabet));
        ++counts[s];
    }
    const auto present = static_cast<std::size_t>(
        std::count_if(counts.begin(), counts.end(), [](std::uint64_t c) { return c > 0; }));
    if (present > kTotal)
        throw Error(ErrorCode::InvalidArgument, "rANS: " + std::to_string(present) +
                                                    " distinct symbols, at most " +
                                                    std::to_string(kTotal));
    // Scale to the total, every present symbol at least 1; the rounding's surplus or deficit is
    // settled on the most frequent symbols, where it costs the least.
    Model m;
    m.frequency.assign(alphabet, 0);
    const double n = static_cast<double>(symbols.size());
    std::int64_t sum = 0;
    for (std::size_t s = 0; s < alphabet; ++s)
        if (counts[s] > 0) {
            const auto f = std::max<std::int64_t>(
                1, std::llround(static_cast<double>(counts[s]) * kTotal / n));
            m.frequency[s] = static_cast<std::uint32_t>(f);
            sum += f;
        }
    std::vector<std::size_t> order(alphabet);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return counts[a] > counts[b]; });
    for (std::size_t i = 0; sum != kTotal; i = (i + 1) % present) {
        auto& f = m.frequency[order[i]];
        if (sum > kTotal && f > 1) {
            --f;
            --sum;
        } else if (sum < kTotal) {
            ++f;
            ++sum;
        }
    }
    m.cumulative.assign(alphabet, 0);
    for (std::size_t s = 1; s < alphabet; ++s)
        m.cumulative[s] = m.cumulative[s - 1] + m.frequency[s - 1];
    return m;
}

std::vector<std::uint8_t> encode(std::span<const std::uint32_t> symbols, const Model& model) {
    // Encoded last symbol first, so that the decoder yields them in order; bytes are pushed in
    // reverse and turned around at the end.
    std::vector<std::uint8_t> reversed;
    reversed.reserve(symbols.size() / 2 + 8);
    std::uint32_t x = kLow;
    for (auto it = symbols.rbegin(); it != symbols.rend(); ++it) {
        const std::uint32_t f = model.frequency.at(*it);
        if (f == 0)
            throw Error(ErrorCode::InvalidArgument,
                        "rANS: symbol " + std::to_string(*it) + " has no frequency in the model");
        const std::uint32_t xMax = ((kLow >> kPrecisionBits) << 8) * f;
        while (x >= xMax) {
            reversed.push_back(static_cast<std::uint8_t>(x & 0xffu));
            x >>= 8;
        }
        x = ((x / f) << kPrecisionBits) + (x % f) + model.cumulative[*it];
    }
    for (int i = 0; i < 4; ++i) {
        reversed.push_back(static_cast<std::uint8_t>(x & 0xffu));
        x >>= 8;
    }
    return {reversed.rbegin(), reversed.rend()};
}

std::vector<std::uint32_t> decode(std::span<const std::uint8_t> stream, const Model& model,
                                  std::size_t count) {
    if (stream.size() < 4)
        throw Error(ErrorCode::Format, "rANS: the stream is shorter than its 4-byte state");
    // Which symbol owns each slot of [0, 2^precision).
    std::vector<std::uint32_t> slotSymbol(kTotal);
    for (std::size_t s = 0; s < model.alphabet(); ++s)
        for (std::uint32_t k = 0; k < model.frequency[s]; ++k)
            slotSymbol[model.cumulative[s] + k] = static_cast<std::uint32_t>(s);
    std::size_t at = 0;
    std::uint32_t x = 0;
    for (int i = 0; i < 4; ++i)
        x = (x << 8) | stream[at++];
    std::vector<std::uint32_t> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t slot = x & (kTotal - 1);
        const std::uint32_t s = slotSymbol[slot];
        out.push_back(s);
        x = model.frequency[s] * (x >> kPrecisionBits) + slot - model.cumulative[s];
        while (x < kLow) {
            if (at >= stream.size())
                throw Error(ErrorCode::Format, "rANS: the stream ends after " +
                                                   std::to_string(i + 1) + " of " +
                                                   std::to_string(count) + " symbols");
            x = (x << 8) | stream[at++];
        }
    }
    if (at != stream.size() || x != kLow)
        throw Error(ErrorCode::Format, "rANS: the stream does not end where its " +
                                           std::to_string(count) + " symbols do");
    return out;
}

double entropyBits(std::span<const std::uint32_t> symbols, std::size_t alphabet) {
    std::vector<std::uint64_t> counts(alphabet, 0);
    for (const std::uint32_t s : symbols)
        ++counts.at(s);
    const double n = static_cast<double>(symbols.size());
    double bits = 0;
    for (const std::uint64_t c : counts)
        if (c > 0)
            bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / n);
    return bits;
}

} // namespace kvs::rans
