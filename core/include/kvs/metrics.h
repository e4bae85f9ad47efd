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

} // namespace kvs
