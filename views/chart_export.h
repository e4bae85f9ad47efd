// SPDX-License-Identifier: MIT
// Chart export: PNG at a chosen DPI, SVG (QSvgGenerator + QCPPainter), PDF (QPdfWriter), and the
// chart's data as CSV, each with a provenance sidecar JSON. The exporter draws the same plot object
// the screen shows, in the light theme, without hover decorations, into memory; the app's writer
// puts the bytes on disk.
#pragma once

#include "analysis_data.h"

#include <QByteArray>
#include <QJsonObject>
#include <QRect>
#include <QString>
#include <QStringList>
#include <functional>
#include <vector>

class QCPPainter;
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

// The header of a CSV table from "name,name,...": snake_case names with their units in them.
QStringList csvColumns(const char* commaSeparated);

// One exportable chart of a view.
struct ChartHandle {
    QString name; // file-name friendly: "attention_map", "tradeoff"
    QCustomPlot* plot = nullptr;
    std::function<CsvTable()> data;
};

// A figure's size and type as a plotting library's figure size: physical units, not the widget's
// pixels. A PNG of width W mm at D dpi is round(W / 25.4 · D) pixels wide; a PDF's page is W mm
// (W / 25.4 · 72 points, whole points in its MediaBox); an SVG says width="W mm" with a viewBox in
// 96-dpi pixels. Every format draws the chart's 96-dpi layout (as on the screen) scaled to that
// size. Texts are fontPt points in each; Qt rounds a font to whole pixels of its device, so the PNG
// and PDF draw 8 pt as 11/96 in (8.25 pt), as the screen does.
struct ExportOptions {
    int dpi = 300;
    double widthMm = 0;  // 0: the on-screen size at 96 dpi
    double heightMm = 0; // 0: keep the on-screen aspect ratio
    double fontPt = 0;   // every text of the chart at this size (titles 1.2×); 0: as on screen
};

// An export drawn into memory: the file's bytes and what its sidecar says about it (file name,
// chart, format, time, provenance). The views draw; they never touch the disk.
struct ExportFile {
    QByteArray bytes;
    QJsonObject sidecar;
};

// Writes an export and its sidecar `path`.json; returns "" or the error, naming the file. The app
// supplies it (core's output writer: atomic, and it never replaces a file the studio did not
// write without asking), so the views need not see core's library.
using ExportWriter = std::function<QString(const QString& path, const ExportFile& file)>;

// Draws `chart` in `format` into `out` (the CSV is the chart's data); returns "" or the error.
QString renderChart(const ChartHandle& chart, const QString& fileName, ExportFormat format,
                    const Provenance& provenance, const ExportOptions& options, ExportFile* out);
// The provenance as the export sidecars write it (model, hashes, split, schemes, backend,
// version).
QJsonObject provenanceJson(const Provenance& provenance);
// The chart data as CSV: provenance as "# " comment lines, the header, the rows.
QByteArray csvBytes(const CsvTable& table, const Provenance& provenance);

// Draws `chart` as its vector exports are drawn (light theme, every text at options.fontPt when
// set, no cosmetic pens) into `target` of `painter`, in the painter's units, then restores the
// plot: a document that holds several charts (kvstudio-cli report's PDF). The painter must be
// active on a vector device. Returns "" or the error.
QString paintChart(const ChartHandle& chart, QCPPainter* painter, const QRect& target,
                   const ExportOptions& options);

// Draws `chart` and hands it to `write` for `path` (and `path`.json). Returns "" or the error.
QString exportChart(const ChartHandle& chart, const QString& path, ExportFormat format,
                    const Provenance& provenance, const ExportOptions& options,
                    const ExportWriter& write);

// Adds "Export PNG/SVG/PDF/CSV…" to `menu` for `chart`; the dialogs start in the last folder.
void addExportActions(QMenu* menu, QWidget* parent, const ChartHandle& chart,
                      const std::function<Provenance()>& provenance, const ExportWriter& write);
// Installs a context menu with those actions on the chart's plot.
void installExportMenu(const ChartHandle& chart, const std::function<Provenance()>& provenance,
                       const ExportWriter& write);

} // namespace kvs::views
