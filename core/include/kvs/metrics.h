// SPDX-License-Identifier: MIT
// The metrics a result is judged by (DESIGN.md "Metrics", docs/schemes.md), in the order tables
// and the Trade-offs chart list them: next-token KL first, the headline that ranks schemes of
// every family; the context-only error and the logit error are diagnostics.
#pragma once

#include "kvs/evaluator.h"

#include <array>
#include <cstddef>
#include <limits>
#include <string_view>

namespace kvs {

enum class Metric {
    NextTokenKl,      // mean KL(p_exact ‖ p_compressed) over probe positions, nats per token
    PerplexityChange, // of the probe tokens, percent
    HeadOutputError,  // ‖Ô − O‖_F / ‖O‖_F, the output as the model reads it
    TotalVariation,   // ½ Σ|p − p̂| over the context, mean over probe rows and heads
    MassLost,         // 1 − Σ_kept p (eviction; TV is the honest number for weighted schemes)
    ContextError,     // diagnostic: mean ‖o − ô‖ / ‖o‖ over the context alone
    LogitError,       // diagnostic: max |s − ŝ| over kept tokens
};
inline constexpr int kMetricCount = 7;

struct MetricInfo {
    Metric metric;
    std::string_view id;   // CSV column and JSON key: "kl_nats", "head_output_error", ...
    std::string_view unit; // "nats/token", "%", "" for ratios
    bool diagnostic;       // never a headline (DESIGN.md)
    bool needsModel;       // model-level: absent on a capture without its model
};
// Header-only, so that the views (which see core's headers, not its library) share the table.
inline constexpr std::array<MetricInfo, kMetricCount> kMetricInfos = {{
    {Metric::NextTokenKl, "kl_nats", "nats/token", false, true},
    {Metric::PerplexityChange, "perplexity_change_percent", "%", false, true},
    {Metric::HeadOutputError, "head_output_error", "", false, false},
    {Metric::TotalVariation, "total_variation", "", false, false},
    {Metric::MassLost, "mass_lost", "", false, false},
    {Metric::ContextError, "context_error", "", true, false},
    {Metric::LogitError, "logit_error", "", true, false},
}};
inline constexpr const MetricInfo& metricInfo(Metric metric) {
    return kMetricInfos[static_cast<std::size_t>(metric)];
}

// The value of `metric` in a result; NaN where the result does not have it (no model quality).
inline double metricValue(const EvalResult& result, Metric metric) {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    switch (metric) {
    case Metric::NextTokenKl:
        return result.quality ? result.quality->klMean : nan;
    case Metric::PerplexityChange:
        return result.quality ? result.quality->perplexityChangePercent : nan;
    case Metric::HeadOutputError:
        return result.outputError;
    case Metric::TotalVariation:
        return result.totalVariation;
    case Metric::MassLost:
        return result.massLost;
    case Metric::ContextError:
        return result.contextError;
    case Metric::LogitError:
        return result.logitError;
    }
    return nan;
}

// A cache's rate (docs/schemes.md "Rate–distortion"). Every scheme has bitsPerElement: the bits
// its cache spends per element of the fp16 cache it replaces (16 · bytes / fp16 bytes; a codec
// that keeps every token: its bits per element with side information). Entropy-coded codecs add
// the coded part per coded element — the streams, the side information (tables, steps) — and
// the symbols' empirical entropy, whose difference is the coder's gap; NaN where nothing was
// entropy coded. `atEntropyBitsPerElement` is bitsPerElement with the coded part at its entropy
// and no side information: the rate an ideal coder of these symbols would reach.
struct CacheRate {
    double bitsPerElement = 0.0;
    double codedBitsPerElement = std::numeric_limits<double>::quiet_NaN();
    double streamBitsPerElement = std::numeric_limits<double>::quiet_NaN();
    double sideBitsPerElement = std::numeric_limits<double>::quiet_NaN();
    double entropyBitsPerElement = std::numeric_limits<double>::quiet_NaN();
    double atEntropyBitsPerElement = std::numeric_limits<double>::quiet_NaN();
    std::size_t codedElements = 0;
    bool entropyCoded() const { return codedElements > 0; }
    double gapBitsPerElement() const { return codedBitsPerElement - entropyBitsPerElement; }
};

// Of an EvalResult or one head's HeadMetrics (both carry bytes, fp16Bytes and the coded bits).
template <class Measured> CacheRate cacheRate(const Measured& m) {
    CacheRate r;
    const double fp16Elements = static_cast<double>(m.fp16Bytes) / 2.0;
    const double bits = 8.0 * static_cast<double>(m.bytes.total());
    r.bitsPerElement =
        fp16Elements > 0 ? bits / fp16Elements : std::numeric_limits<double>::quiet_NaN();
    r.codedElements = m.codedElements;
    if (m.codedElements == 0)
        return r;
    const double n = static_cast<double>(m.codedElements);
    r.streamBitsPerElement = m.streamBits / n;
    r.sideBitsPerElement = m.sideBits / n;
    r.codedBitsPerElement = (m.streamBits + m.sideBits) / n;
    r.entropyBitsPerElement = m.entropyBits / n;
    if (fp16Elements > 0)
        r.atEntropyBitsPerElement =
            (bits - m.streamBits - m.sideBits + m.entropyBits) / fp16Elements;
    return r;
}

} // namespace kvs
