// SPDX-License-Identifier: MIT
// The report PDF: settings and results first, then the charts two to a page with their captions.
#include "report_document.h"

#include "main_window.h"
#include "schemes_panel.h"
#include "session.h"
#include "view_host.h"

#include "kvs/scheme.h"
#include "kvs/status.h"

#include <QAbstractTextDocumentLayout>
#include <QBuffer>
#include <QCoreApplication>
#include <QCryptographicHash>
#include <QFileInfo>
#include <QJsonArray>
#include <QPdfWriter>
#include <QTextDocument>
#include <qcustomplot.h>

#include <cmath>

namespace kvs::studio {

namespace {

// Device units per inch of the PDF. At 96 a point-sized font measures as it does on screen, where
// the charts lay out their text, so labels fill the boxes QCustomPlot reserved for them.
constexpr int kResolution = 96;
constexpr double kMarginMm = 15.0;
constexpr int kChartsPerPage = 2;
const QString kDash = QStringLiteral("\u2014");

QString esc(const QString& s) {
    return s.toHtmlEscaped();
}

QString fixed(double v, int decimals) {
    return std::isfinite(v) ? QString::number(v, 'f', decimals) : kDash;
}

QString significant(double v, int digits) {
    return std::isfinite(v) ? QString::number(v, 'g', digits) : kDash;
}

// The prompt on one line, cut at about `chars` characters.
QString excerpt(const QString& prompt, int chars) {
    const QString line = prompt.simplified();
    return line.size() <= chars ? line : line.left(chars).trimmed() + QStringLiteral("\u2026");
}

// "id: key=value, ..." with every parameter, the defaults included (SchemeSetting::resolved).
QString fullSetting(const QString& setting) {
    const auto parsed = SchemeSetting::parse(setting.toStdString());
    if (!parsed.ok())
        return setting;
    QStringList params;
    for (const auto& [key, value] : parsed.value().resolved())
        params << QStringLiteral("%1=%2").arg(QString::fromStdString(key),
                                              QString::number(value, 'g', 10));
    return QString::fromStdString(parsed.value().id) +
           (params.isEmpty() ? QString()
                             : QStringLiteral(": ") + params.join(QStringLiteral(", ")));
}

QString row(const QString& label, const QString& html) {
    return QStringLiteral("<tr><td style=\"color:#555555; padding-right:12px\">%1</td><td>%2</td>"
                          "</tr>")
        .arg(esc(label), html);
}

QString mono(const QString& text) {
    return QStringLiteral("<span style=\"font-family:'DejaVu Sans Mono',monospace\">%1</span>")
        .arg(esc(text));
}

QString createdText(const ReportOptions& options) {
    return options.created.toUTC().toString(QStringLiteral("yyyy-MM-dd HH:mm 'UTC'"));
}

// The window's model hash when the analysis was made before the content hash was done ("sha256
// pending"): the same weights, now named by their content.
views::Provenance provenanceOf(const MainWindow& window, const views::AnalysisData& analysis) {
    views::Provenance p = analysis.provenance;
    const QString hash = window.session()->modelContentHash();
    if (!p.modelHash.startsWith(QLatin1String("sha256:")) && !hash.isEmpty())
        p.modelHash = hash;
    return p;
}

// The export sidecars' provenance, with the prompt's hash the report's captions cite.
QJsonObject reportProvenanceJson(const views::Provenance& p) {
    QJsonObject o = views::provenanceJson(p);
    o[QStringLiteral("prompt_hash")] = promptHash(p.prompt);
    return o;
}

// A document laid out for the PDF (its fonts measured at the PDF's resolution), `width` wide.
void prepare(QTextDocument* doc, QPaintDevice* device, const QString& html, double width,
             double pointSize) {
    doc->documentLayout()->setPaintDevice(device);
    QFont font = doc->defaultFont();
    font.setPointSizeF(pointSize);
    // No ligatures: "ff" in a hash or "tradeoff" must read back (and copy) as two letters.
    font.setStyleStrategy(QFont::PreferNoShaping);
    doc->setDefaultFont(font);
    doc->setDocumentMargin(0);
    doc->setHtml(html);
    doc->setTextWidth(width);
}

struct Figure {
    QString view;
    QString title; // the view's tab title
    QString chart;
};

} // namespace

QString promptHash(const QString& prompt) {
    return QStringLiteral("sha256:") +
           QString::fromLatin1(
               QCryptographicHash::hash(prompt.toUtf8(), QCryptographicHash::Sha256).toHex());
}

QString reportSummaryHtml(const views::AnalysisData& analysis, const ReportOptions& options) {
    const views::Provenance& p = analysis.provenance;
    QString html;
    html += QStringLiteral("<h1 style=\"font-size:18pt; margin-bottom:2px\">KV-cache compression "
                           "report</h1>");
    html += QStringLiteral("<p style=\"color:#555555; margin-top:0\">%1 \u00b7 KV Studio %2 "
                           "\u00b7 %3</p>")
                .arg(esc(options.sessionName), esc(p.version), esc(createdText(options)));

    html += QStringLiteral("<h2 style=\"font-size:11pt\">Settings</h2><table cellspacing=\"0\" "
                           "cellpadding=\"2\">");
    const QString folder = QFileInfo(p.modelFolder).fileName();
    QString model = esc(p.modelName);
    if (!folder.isEmpty() && folder != p.modelName)
        model += QStringLiteral(" (folder %1)").arg(esc(folder));
    model += QStringLiteral(": %1 layers, %2 query heads, %3 KV heads, head dim %4")
                 .arg(analysis.layers)
                 .arg(analysis.heads)
                 .arg(analysis.kvHeads)
                 .arg(analysis.headDim);
    html += row(QStringLiteral("Model"), model);
    html += row(QStringLiteral("Model hash"), mono(p.modelHash));
    html += row(QStringLiteral("Prompt"),
                QStringLiteral("\u201c%1\u201d").arg(esc(excerpt(p.prompt, 260))));
    html += row(QStringLiteral("Prompt hash"), mono(promptHash(p.prompt)));
    const int tokens = analysis.contextTokens + analysis.probeTokens;
    html += row(QStringLiteral("Tokens"),
                QStringLiteral("%1 in all: %2 context (compressed) + %3 probe (attend to it)")
                    .arg(tokens)
                    .arg(analysis.contextTokens)
                    .arg(analysis.probeTokens));
    QString backend =
        esc(analysis.evaluationBackend.isEmpty() ? p.backend : analysis.evaluationBackend);
    if (!analysis.backendName.isEmpty() && analysis.backendName != analysis.evaluationBackend)
        backend += QStringLiteral("; timings: %1").arg(esc(analysis.backendName));
    html += row(QStringLiteral("Backend"), backend);
    QStringList schemes;
    for (const views::SchemeRun& run : analysis.runs)
        schemes << QStringLiteral("%1 <span style=\"color:#555555\">(%2)</span>")
                       .arg(mono(fullSetting(run.setting)), esc(run.displayName));
    html += row(QStringLiteral("Schemes"), schemes.join(QStringLiteral("<br>")));
    html += row(QStringLiteral("Created"), esc(createdText(options)));
    html += row(QStringLiteral("KV Studio"), esc(p.version));
    html += QStringLiteral("</table>");

    html += QStringLiteral("<h2 style=\"font-size:11pt\">Results</h2>");
    html += QStringLiteral("<table width=\"100%\" cellspacing=\"0\" cellpadding=\"3\" border=\"1\" "
                           "style=\"border-collapse:collapse; border-color:#999999\">"
                           "<thead><tr style=\"background-color:#eeeeee\">");
    // Headers of two or three short lines, units last, so that no word is broken.
    const QStringList headers = {
        QStringLiteral("Memory<br>(% of fp16)"),     QStringLiteral("Cache<br>(bytes)"),
        QStringLiteral("KL<br>(nats/token)"),        QStringLiteral("\u0394 perplexity<br>(%)"),
        QStringLiteral("Top-1<br>agreement<br>(%)"), QStringLiteral("Head<br>output<br>error")};
    html += QStringLiteral("<th align=\"left\" width=\"28%\" style=\"font-size:8pt\">Scheme "
                           "setting</th>");
    for (const QString& h : headers)
        html += QStringLiteral("<th width=\"12%\" style=\"font-size:8pt\">%1</th>").arg(h);
    html += QStringLiteral("</tr></thead>");
    std::size_t fp16Bytes = 0;
    for (const views::SchemeRun& run : analysis.runs) {
        // A degenerate budget measures sinks + window, not the scheme: marked, with the reason.
        const QString degenerate =
            run.error.isEmpty() && run.eval.degenerateHeads > 0
                ? QStringLiteral("<br><span style=\"color:#8a4b00\">* degenerate on %1 heads: "
                                 "%2</span>")
                      .arg(run.eval.degenerateHeads)
                      .arg(esc(QString::fromStdString(run.eval.degenerate)))
                : QString();
        html += QStringLiteral("<tr><td>%1<br><span style=\"color:#555555\">%2</span>%3</td>")
                    .arg(mono(run.setting), esc(run.displayName), degenerate);
        if (!run.error.isEmpty()) {
            html += QStringLiteral("<td colspan=\"6\">refused: %1</td></tr>").arg(esc(run.error));
            continue;
        }
        const kvs::EvalResult& e = run.eval;
        fp16Bytes = std::max(fp16Bytes, e.fp16Bytes);
        const auto& q = e.quality;
        const double nan = std::nan("");
        const auto cell = [](const QString& v) {
            return QStringLiteral("<td align=\"right\">%1</td>").arg(v);
        };
        html += cell(fixed(100.0 * e.memoryFraction, 1));
        html += cell(QString::number(static_cast<qulonglong>(e.bytes.total())));
        html += cell(significant(q ? q->klMean : nan, 4));
        const double ppl = q ? q->perplexityChangePercent : nan;
        html +=
            cell((std::isfinite(ppl) && ppl > 0 ? QStringLiteral("+") : QString()) + fixed(ppl, 2));
        html += cell(fixed(q ? 100.0 * q->top1Agreement : nan, 1));
        html += cell(significant(e.outputError, 4));
        html += QStringLiteral("</tr>");
    }
    html += QStringLiteral("</table>");
    html += QStringLiteral(
                "<p style=\"font-size:7.5pt; color:#444444\">Cache bytes are what each scheme "
                "keeps for the context, all layers and KV heads (keys, values and metadata); the "
                "fp16 cache they are measured against holds %1 bytes. KL: mean KL(p<sub>exact"
                "</sub> \u2016 p<sub>compressed</sub>) of the next-token distribution over the "
                "probe positions. \u0394 perplexity of the probe tokens, compressed against "
                "exact. Top-1 agreement: probe positions whose most likely next token is the "
                "same. Head output error: \u2016\u00d4 \u2212 O\u2016<sub>F</sub> / "
                "\u2016O\u2016<sub>F</sub> over every head and probe row. \u2014: not measured "
                "(no model weights).</p>")
                .arg(fp16Bytes);
    return html;
}

QString chartCaption(const views::Provenance& p, const QString& viewName, const QString& chartName,
                     const QString& focused, const ReportOptions& options) {
    QString text = QStringLiteral("view %1 \u00b7 chart %2").arg(viewName, chartName);
    if (!focused.isEmpty())
        text += QStringLiteral(" \u00b7 drawn for %1").arg(focused);
    return text + QStringLiteral(" \u00b7 model %1 %2 \u00b7 prompt %3 (%4 context + %5 probe "
                                 "tokens) \u00b7 schemes %6 \u00b7 %7 \u00b7 KV Studio %8")
                      .arg(p.modelName, p.modelHash, promptHash(p.prompt))
                      .arg(p.contextTokens)
                      .arg(p.probeTokens)
                      .arg(p.schemes.join(QStringLiteral("; ")), createdText(options), p.version);
}

ReportDocument drawReport(MainWindow& window, const ReportOptions& options) {
    const auto analysis = window.session()->analysis();
    if (!analysis)
        throw Error(ErrorCode::Internal, "there are no results to report");
    ReportOptions opts = options;
    views::AnalysisData data = *analysis;
    data.provenance = provenanceOf(window, *analysis);
    const views::Provenance& provenance = data.provenance;

    // The charts: those each view shows (a map toggled off is not drawn).
    std::vector<Figure> figures;
    for (const QString& view : options.views) {
        if (!window.showViewByName(view))
            throw Error(ErrorCode::InvalidArgument, "there is no view named " + view.toStdString());
        QCoreApplication::processEvents(); // lay out the newly shown tab before drawing it
        const views::StudioView* shown = window.viewHost()->view(view);
        for (const views::ChartHandle& chart : window.currentCharts())
            if (chart.plot && chart.plot->isVisible())
                figures.push_back({view, shown ? shown->viewTitle() : view, chart.name});
    }

    ReportDocument report;
    QBuffer buffer(&report.pdf);
    buffer.open(QIODevice::WriteOnly);
    QPdfWriter pdf(&buffer);
    pdf.setResolution(kResolution);
    pdf.setPageLayout(QPageLayout(QPageSize(options.page), QPageLayout::Portrait,
                                  QMarginsF(kMarginMm, kMarginMm, kMarginMm, kMarginMm),
                                  QPageLayout::Millimeter));
    pdf.setCreator(QStringLiteral("KV Studio %1").arg(provenance.version));
    pdf.setTitle(QStringLiteral("KV Studio report: %1").arg(options.sessionName));

    const double width = pdf.width();
    const double footer = 0.3 * kResolution; // 0.3 in
    const double bodyHeight = pdf.height() - footer;

    QTextDocument summary;
    prepare(&summary, &pdf, reportSummaryHtml(data, opts), width, 9.0);
    summary.setPageSize(QSizeF(width, bodyHeight));
    const int summaryPages = std::max(1, summary.pageCount());
    const int chartPages = static_cast<int>((figures.size() + kChartsPerPage - 1) / kChartsPerPage);
    report.pages = summaryPages + chartPages;

    QCPPainter painter;
    if (!painter.begin(&pdf))
        throw Error(ErrorCode::Internal, "cannot start drawing the report's PDF");
    int page = 0;
    const auto footerLine = [&] {
        ++page;
        painter.save();
        QFont font = painter.font();
        font.setPointSizeF(7);
        font.setStyleStrategy(QFont::PreferNoShaping);
        painter.setFont(font);
        painter.setPen(QColor(0x66, 0x66, 0x66));
        painter.drawText(
            QRectF(0, bodyHeight, width, footer), Qt::AlignBottom | Qt::AlignLeft,
            QStringLiteral("KV Studio %1 \u00b7 %2").arg(provenance.version, options.sessionName));
        painter.drawText(QRectF(0, bodyHeight, width, footer), Qt::AlignBottom | Qt::AlignRight,
                         QStringLiteral("page %1 of %2").arg(page).arg(report.pages));
        painter.restore();
    };

    for (int i = 0; i < summaryPages; ++i) {
        if (i > 0)
            pdf.newPage();
        painter.save();
        painter.translate(0, -i * bodyHeight);
        summary.drawContents(&painter, QRectF(0, i * bodyHeight, width, bodyHeight));
        painter.restore();
        footerLine();
    }

    // The scheme setting the views draw (the Schemes dock's focused row).
    const int focusedRow = window.schemesPanel()->focusedRow();
    const QString focused = focusedRow >= 0 && focusedRow < static_cast<int>(data.runs.size())
                                ? data.runs[static_cast<std::size_t>(focusedRow)].setting
                                : QString();

    // Two charts to a page: each figure is the chart over its caption.
    const double gap = 0.25 * kResolution;
    const double slotHeight = (bodyHeight - gap) / kChartsPerPage;
    views::ExportOptions exportOptions;
    exportOptions.fontPt = options.fontPt;
    for (std::size_t i = 0; i < figures.size(); ++i) {
        const Figure& figure = figures[i];
        const int place = static_cast<int>(i % kChartsPerPage);
        if (place == 0) {
            pdf.newPage();
        }
        const double top = place * (slotHeight + gap);
        QTextDocument caption;
        prepare(&caption, &pdf,
                QStringLiteral("<b>Figure %1.</b> %2: %3<br><span style=\"font-size:7pt; "
                               "color:#444444\">%4</span>")
                    .arg(i + 1)
                    .arg(esc(figure.title), esc(figure.chart),
                         esc(chartCaption(provenance, figure.view, figure.chart, focused, opts))),
                width, 8.0);
        const double captionHeight = caption.size().height();
        const int chartHeight = static_cast<int>(slotHeight - captionHeight - 6);

        window.showViewByName(figure.view);
        QCoreApplication::processEvents();
        const std::vector<views::ChartHandle> charts = window.currentCharts();
        const auto chart = std::find_if(charts.begin(), charts.end(),
                                        [&](const auto& c) { return c.name == figure.chart; });
        if (chart == charts.end())
            throw Error(ErrorCode::Internal, "the chart " + figure.chart.toStdString() +
                                                 " of the " + figure.view.toStdString() +
                                                 " view is gone");
        const QString error = views::paintChart(
            *chart, &painter, QRect(0, static_cast<int>(top), static_cast<int>(width), chartHeight),
            exportOptions);
        if (!error.isEmpty())
            throw Error(ErrorCode::Internal, error.toStdString());
        painter.save();
        painter.translate(0, top + chartHeight + 6);
        caption.drawContents(&painter);
        painter.restore();
        report.charts << figure.view + QLatin1Char('/') + figure.chart;
        if (place == kChartsPerPage - 1 || i + 1 == figures.size())
            footerLine();
    }
    if (!painter.end())
        throw Error(ErrorCode::Internal, "cannot finish the report's PDF");

    QJsonObject sidecar;
    sidecar[QStringLiteral("chart")] = QStringLiteral("report");
    sidecar[QStringLiteral("format")] = QStringLiteral("pdf");
    sidecar[QStringLiteral("created")] = options.created.toUTC().toString(Qt::ISODate);
    sidecar[QStringLiteral("provenance")] = reportProvenanceJson(provenance);
    sidecar[QStringLiteral("pages")] = report.pages;
    sidecar[QStringLiteral("charts")] = QJsonArray::fromStringList(report.charts);
    sidecar[QStringLiteral("page_size")] = QPageSize(options.page).name();
    sidecar[QStringLiteral("font_pt")] = options.fontPt;
    report.sidecar = sidecar;
    return report;
}

} // namespace kvs::studio
