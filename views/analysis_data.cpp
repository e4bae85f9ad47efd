// SPDX-License-Identifier: MIT
// Metric names and lookups for the charts.
#include "analysis_data.h"

#include <QCoreApplication>
#include <limits>

namespace kvs::views {

QString metricName(Metric metric) {
    switch (metric) {
    case Metric::NextTokenKl:
        return QCoreApplication::translate("kvs::views", "Next-token KL (nats/token)");
    case Metric::PerplexityChange:
        return QCoreApplication::translate("kvs::views", "\u0394 perplexity per token (%)");
    case Metric::HeadOutputError:
        return QCoreApplication::translate(
            "kvs::views", "Head output error \u2016\u00D4\u2212O\u2016/\u2016O\u2016");
    case Metric::TotalVariation:
        return QCoreApplication::translate("kvs::views", "Attention shift (total variation)");
    case Metric::MassLost:
        return QCoreApplication::translate("kvs::views", "Attention mass lost");
    case Metric::ContextError:
        return QCoreApplication::translate("kvs::views", "Context-only error (diagnostic)");
    case Metric::LogitError:
        return QCoreApplication::translate("kvs::views",
                                           "Logit error max |s \u2212 \u015d| (diagnostic)");
    }
    return {};
}

QString metricCsvColumn(Metric metric) {
    const std::string_view id = kvs::metricInfo(metric).id;
    return QString::fromLatin1(id.data(), static_cast<qsizetype>(id.size()));
}

namespace {
// Log axes cannot show 0: errors of exactly zero (keep everything) sit at this floor.
constexpr double kFloor = 1e-7;
} // namespace

QString refusedText(const SchemeRun& run) {
    // The engine's message names the setting, the layer and head, and the parameter at fault.
    return QCoreApplication::translate("kvs::views", "Refused: %1").arg(run.error);
}

std::pair<double, double> chartPoint(const kvs::EvalResult& result, Metric metric) {
    const double y = metricValue(result, metric);
    return {static_cast<double>(result.bytes.total()), std::isfinite(y) && y <= 0 ? kFloor : y};
}

bool chartPlottable(double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && x > 0 && y > 0;
}

} // namespace kvs::views
