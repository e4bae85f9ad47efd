// SPDX-License-Identifier: MIT
// Chart export: PNG at a chosen DPI, SVG (QSvgGenerator + QCPPainter), PDF, and the chart's data
// as CSV, each with a provenance sidecar JSON. The exporter draws the same plot object the
// screen shows, in the light theme, without hover decorations.
#pragma once

#include "analysis_data.h"

#include <QString>
#include <QStringList>
#include <functional>
#include <vector>

class QCustomPlot;
class QMenu;
class QWidget;

namespace kvs::views {

enum class ExportFormat { Png, Svg, Pdf, Csv };
QString formatSuffix(ExportFormat format);

// A table to write as CSV: a header row with units in the column names, then one row per
// plotted point.
struct CsvTable {
    QStringList header;
    std::vector<QStringList> rows;
};

// One exportable chart of a view.
struct ChartHandle {
    QString name; // file-name friendly: "attention_map", "tradeoff"
    QCustomPlot* plot = nullptr;
    std::function<CsvTable()> data;
};

struct ExportOptions {
    int dpi = 300;
    double widthMm = 0;  // 0: the on-screen size at 96 dpi
    double heightMm = 0; // 0: keep the on-screen aspect ratio
};

// Writes `path` (format from `format`) and `path`.json beside it (provenance + what was drawn).
// Returns an empty string or the error, naming the file.
QString exportChart(const ChartHandle& chart, const QString& path, ExportFormat format,
                    const Provenance& provenance, const ExportOptions& options = {});
QString writeCsv(const CsvTable& table, const QString& path, const Provenance& provenance);
QString writeSidecar(const QString& path, const QString& chartName, ExportFormat format,
                     const Provenance& provenance);

// Adds "Export PNG/SVG/PDF/CSV…" to `menu` for `chart`; the dialogs start in the last folder.
void addExportActions(QMenu* menu, QWidget* parent, const ChartHandle& chart,
                      const std::function<Provenance()>& provenance);
// Installs a context menu with those actions on the chart's plot.
void installExportMenu(const ChartHandle& chart, const std::function<Provenance()>& provenance);

} // namespace kvs::views
