// SPDX-License-Identifier: MIT
// The report `kvstudio-cli report` writes: one PDF (QPdfWriter, vector) whose first page holds the
// settings and the results table, then the charts of the chosen views two to a page, each drawn
// by its view's own export code and captioned with its provenance.
#pragma once

#include "analysis_data.h"

#include <QByteArray>
#include <QDateTime>
#include <QJsonObject>
#include <QPageSize>
#include <QString>
#include <QStringList>

namespace kvs::studio {

class MainWindow;

struct ReportOptions {
    QPageSize::PageSizeId page = QPageSize::A4;
    QStringList views;   // chart views, in the order their charts appear
    double fontPt = 8;   // every text of the charts (titles 1.2×)
    QString sessionName; // the session's file name, as the report names it (never a full path)
    QDateTime created = QDateTime::currentDateTimeUtc();
};

struct ReportDocument {
    QByteArray pdf;
    int pages = 0;
    QStringList charts;  // "view/chart" in the order drawn
    QJsonObject sidecar; // what the report's provenance sidecar says (kvs/output_writer.h)
};

// "sha256:<hex>" of the prompt's UTF-8 bytes: how reports and captions name a prompt.
QString promptHash(const QString& prompt);

// The first page(s) as HTML: title, settings (model and its content hash, prompt excerpt and
// hash, token counts, split, backends, every scheme with every parameter, date, version) and the
// results table, one row per scheme setting with its units in the headers.
QString reportSummaryHtml(const views::AnalysisData& analysis, const ReportOptions& options);

// A chart's caption: its view and chart, the scheme setting it is drawn for ("" for none), the
// model and prompt hashes, the schemes, the date and the version (what its export sidecar
// records, condensed).
QString chartCaption(const views::Provenance& provenance, const QString& viewName,
                     const QString& chartName, const QString& focused,
                     const ReportOptions& options);

// Draws the report of the window's current results (its session must have an analysis): shows
// each chosen view in turn and paints its visible charts. Throws kvs::Error when there is nothing
// to report or a chart cannot be drawn.
ReportDocument drawReport(MainWindow& window, const ReportOptions& options);

} // namespace kvs::studio
