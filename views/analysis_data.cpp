// SPDX-License-Identifier: MIT
// Metric names and lookups for the charts.
#include "analysis_data.h"

#include <QCoreApplication>
#include <limits>

namespace kvs::views {

QString metricName(Metric metric) {
    switch (metric) {
    case Metric::AttentionError:
        return QCoreApplication::translate("kvs::views", "Attention output error (relative)");
    case Metric::LogitError:
        return QCoreApplication::translate("kvs::views", "Logit error (max |s \u2212 \u015d|)");
    case Metric::NextTokenKl:
        return QCoreApplication::translate("kvs::views", "Next-token KL (nats)");
    case Metric::PerplexityChange:
        return QCoreApplication::translate("kvs::views", "\u0394 perplexity (%)");
    case Metric::MassLost:
        return QCoreApplication::translate("kvs::views", "Attention mass lost");
    }
    return {};
}

QString metricCsvColumn(Metric metric) {
    switch (metric) {
    case Metric::AttentionError:
        return QStringLiteral("attention_error");
    case Metric::LogitError:
        return QStringLiteral("logit_error");
    case Metric::NextTokenKl:
        return QStringLiteral("kl_nats");
    case Metric::PerplexityChange:
        return QStringLiteral("perplexity_change_percent");
    case Metric::MassLost:
        return QStringLiteral("mass_lost");
    }
    return {};
}

double metricValue(const kvs::EvalResult& result, Metric metric) {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    switch (metric) {
    case Metric::AttentionError:
        return result.attentionError;
    case Metric::LogitError:
        return result.logitError;
    case Metric::NextTokenKl:
        return result.quality ? result.quality->klMean : nan;
    case Metric::PerplexityChange:
        return result.quality ? result.quality->perplexityChangePercent : nan;
    case Metric::MassLost:
        return result.massLost;
    }
    return nan;
}

namespace {
// Log axes cannot show 0: errors of exactly zero (keep everything) sit at this floor.
constexpr double kFloor = 1e-7;
} // namespace

std::pair<double, double> chartPoint(const kvs::EvalResult& result, Metric metric) {
    const double y = metricValue(result, metric);
    return {static_cast<double>(result.bytes.total()), std::isfinite(y) && y <= 0 ? kFloor : y};
}

bool chartPlottable(double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && x > 0 && y > 0;
}

} // namespace kvs::views
