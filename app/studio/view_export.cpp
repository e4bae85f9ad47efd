// SPDX-License-Identifier: MIT
// Export of a view's charts to a folder in every format, each with its provenance sidecar.
#include "view_export.h"

#include <QDir>
#include <qcustomplot.h>

namespace kvs::studio {

QStringList exportCharts(const std::vector<views::ChartHandle>& charts, const QString& folder,
                         const views::ExportOptions& options, const views::Provenance& provenance,
                         const views::ExportWriter& write, QString* error) {
    QStringList written;
    QDir().mkpath(folder);
    for (const auto& chart : charts) {
        for (views::ExportFormat f : {views::ExportFormat::Png, views::ExportFormat::Svg,
                                      views::ExportFormat::Pdf, views::ExportFormat::Csv}) {
            if (!chart.plot->isVisible() && f != views::ExportFormat::Csv)
                continue; // a hidden map (toggle mode) exports its data only
            const QString path =
                QDir(folder).filePath(chart.name + QLatin1Char('.') + views::formatSuffix(f));
            const QString e = views::exportChart(chart, path, f, provenance, options, write);
            if (!e.isEmpty()) {
                if (error)
                    *error = e;
                return written;
            }
            written << path;
        }
    }
    return written;
}

} // namespace kvs::studio
