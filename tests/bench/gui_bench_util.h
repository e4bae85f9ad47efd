// SPDX-License-Identifier: MIT
// What the GUI benchmarks print beside their figures: percentiles of repeated timings and the
// machine's load average (the machine is shared; a figure without its load says little).
#pragma once

#include <QFile>
#include <QString>
#include <algorithm>
#include <vector>

namespace kvs::bench {

// The p-quantile (0…1) of `v`, linearly interpolated between order statistics.
inline double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const double idx = p * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(idx);
    const auto hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

// The 1-, 5- and 15-minute load averages of /proc/loadavg, or "unknown".
inline QString loadAverage() {
    QFile f(QStringLiteral("/proc/loadavg"));
    if (!f.open(QIODevice::ReadOnly))
        return QStringLiteral("unknown");
    return QString::fromUtf8(f.readAll()).section(QLatin1Char(' '), 0, 2);
}

} // namespace kvs::bench
