// SPDX-License-Identifier: MIT
// Chart export to PNG, SVG, PDF and CSV with a provenance sidecar.
#include "chart_export.h"

#include "plot_style.h"

#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMenu>
#include <QSaveFile>
#include <QSettings>
#include <QSvgGenerator>
#include <QTextStream>
#include <qcustomplot.h>

namespace kvs::views {

namespace {

QJsonObject provenanceJson(const Provenance& p) {
    QJsonObject o;
    o[QStringLiteral("model")] = p.modelName;
    o[QStringLiteral("model_folder")] = p.modelFolder;
    o[QStringLiteral("model_hash")] = p.modelHash;
    o[QStringLiteral("prompt")] = p.prompt;
    o[QStringLiteral("context_tokens")] = p.contextTokens;
    o[QStringLiteral("probe_tokens")] = p.probeTokens;
    o[QStringLiteral("schemes")] = QJsonArray::fromStringList(p.schemes);
    o[QStringLiteral("backend")] = p.backend;
    o[QStringLiteral("version")] = p.version;
    return o;
}

QString csvField(const QString& s) {
    if (s.contains(QLatin1Char(',')) || s.contains(QLatin1Char('"')) ||
        s.contains(QLatin1Char('\n')))
        return QLatin1Char('"') + QString(s).replace(QLatin1String("\""), QLatin1String("\"\"")) +
               QLatin1Char('"');
    return s;
}

QString commentLine(QString s) {
    return QStringLiteral("# ") + s.replace(QLatin1Char('\n'), QLatin1Char(' ')) +
           QLatin1Char('\n');
}

} // namespace

QString formatSuffix(ExportFormat format) {
    switch (format) {
    case ExportFormat::Png:
        return QStringLiteral("png");
    case ExportFormat::Svg:
        return QStringLiteral("svg");
    case ExportFormat::Pdf:
        return QStringLiteral("pdf");
    case ExportFormat::Csv:
        return QStringLiteral("csv");
    }
    return {};
}

QString writeSidecar(const QString& path, const QString& chartName, ExportFormat format,
                     const Provenance& provenance) {
    QJsonObject o;
    o[QStringLiteral("file")] = QFileInfo(path).fileName();
    o[QStringLiteral("chart")] = chartName;
    o[QStringLiteral("format")] = formatSuffix(format);
    o[QStringLiteral("created")] = QDateTime::currentDateTimeUtc().toString(Qt::ISODate);
    o[QStringLiteral("provenance")] = provenanceJson(provenance);
    QSaveFile file(path + QStringLiteral(".json"));
    if (!file.open(QIODevice::WriteOnly))
        return QObject::tr("Cannot write %1: %2").arg(file.fileName(), file.errorString());
    file.write(QJsonDocument(o).toJson(QJsonDocument::Indented));
    if (!file.commit())
        return QObject::tr("Cannot write %1: %2").arg(file.fileName(), file.errorString());
    return {};
}

QString writeCsv(const CsvTable& table, const QString& path, const Provenance& provenance) {
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Text))
        return QObject::tr("Cannot write %1: %2").arg(path, file.errorString());
    QString text;
    text += commentLine(QStringLiteral("KV Studio %1").arg(provenance.version));
    text += commentLine(
        QStringLiteral("model: %1 (%2)").arg(provenance.modelName, provenance.modelHash));
    text += commentLine(QStringLiteral("context_tokens: %1, probe_tokens: %2")
                            .arg(provenance.contextTokens)
                            .arg(provenance.probeTokens));
    text += commentLine(
        QStringLiteral("schemes: %1").arg(provenance.schemes.join(QLatin1String("; "))));
    text += commentLine(QStringLiteral("backend: %1").arg(provenance.backend));
    QStringList header;
    for (const QString& h : table.header)
        header << csvField(h);
    text += header.join(QLatin1Char(',')) + QLatin1Char('\n');
    for (const QStringList& row : table.rows) {
        QStringList fields;
        for (const QString& f : row)
            fields << csvField(f);
        text += fields.join(QLatin1Char(',')) + QLatin1Char('\n');
    }
    file.write(text.toUtf8());
    if (!file.commit())
        return QObject::tr("Cannot write %1: %2").arg(path, file.errorString());
    return {};
}

QString exportChart(const ChartHandle& chart, const QString& path, ExportFormat format,
                    const Provenance& provenance, const ExportOptions& options) {
    if (format == ExportFormat::Csv) {
        if (!chart.data)
            return QObject::tr("The chart %1 has no data to export").arg(chart.name);
        QString error = writeCsv(chart.data(), path, provenance);
        if (error.isEmpty())
            error = writeSidecar(path, chart.name, format, provenance);
        return error;
    }
    QCustomPlot* plot = chart.plot;
    if (!plot)
        return QObject::tr("The chart %1 is not shown").arg(chart.name);

    // Size at the final print width when asked, else the on-screen size (96 dpi points).
    int width = plot->width() > 50 ? plot->width() : 800;
    int height = plot->height() > 50 ? plot->height() : 500;
    if (options.widthMm > 0) {
        const int w = qRound(options.widthMm / 25.4 * 96.0);
        height = options.heightMm > 0 ? qRound(options.heightMm / 25.4 * 96.0)
                                      : qRound(static_cast<double>(height) * w / width);
        width = w;
    }

    applyPlotTheme(plot, /*forceLight=*/true);
    plot->replot(QCustomPlot::rpImmediateRefresh);
    bool ok = false;
    QString error;
    switch (format) {
    case ExportFormat::Png: {
        const double scale = std::max(1, options.dpi) / 96.0;
        ok = plot->savePng(path, width, height, scale, -1, options.dpi, QCP::ruDotsPerInch);
        break;
    }
    case ExportFormat::Pdf:
        ok = plot->savePdf(path, width, height, QCP::epNoCosmetic,
                           QStringLiteral("KV Studio %1").arg(provenance.version), chart.name);
        break;
    case ExportFormat::Svg: {
        QSvgGenerator generator;
        generator.setFileName(path);
        generator.setSize(QSize(width, height));
        generator.setViewBox(QRect(0, 0, width, height));
        generator.setTitle(chart.name);
        generator.setDescription(
            QStringLiteral("KV Studio %1; model %2").arg(provenance.version, provenance.modelName));
        QCPPainter painter;
        if (painter.begin(&generator)) {
            painter.setMode(QCPPainter::pmVectorized);
            painter.setMode(QCPPainter::pmNoCaching);
            painter.setMode(QCPPainter::pmNonCosmetic);
            plot->toPainter(&painter, width, height);
            ok = painter.end();
        }
        break;
    }
    case ExportFormat::Csv:
        break;
    }
    applyPlotTheme(plot);
    plot->replot();
    if (!ok || !QFileInfo::exists(path))
        return QObject::tr("Cannot write %1").arg(QDir::toNativeSeparators(path));
    error = writeSidecar(path, chart.name, format, provenance);
    return error;
}

void addExportActions(QMenu* menu, QWidget* parent, const ChartHandle& chart,
                      const std::function<Provenance()>& provenance) {
    const std::vector<std::pair<ExportFormat, QString>> formats = {
        {ExportFormat::Png, QObject::tr("Export %1 as PNG (300 dpi)\u2026")},
        {ExportFormat::Svg, QObject::tr("Export %1 as SVG\u2026")},
        {ExportFormat::Pdf, QObject::tr("Export %1 as PDF\u2026")},
        {ExportFormat::Csv, QObject::tr("Export %1 data as CSV\u2026")}};
    for (const auto& [format, text] : formats) {
        const ExportFormat f = format;
        menu->addAction(text.arg(chart.name), parent, [parent, chart, provenance, f] {
            QSettings settings;
            const QString dir =
                settings.value(QStringLiteral("export/lastDir"), QDir::homePath()).toString();
            const QString suffix = formatSuffix(f);
            const QString path = QFileDialog::getSaveFileName(
                parent, QObject::tr("Export %1").arg(chart.name),
                QDir(dir).filePath(chart.name + QLatin1Char('.') + suffix),
                QStringLiteral("%1 (*.%2)").arg(suffix.toUpper(), suffix));
            if (path.isEmpty())
                return;
            settings.setValue(QStringLiteral("export/lastDir"), QFileInfo(path).absolutePath());
            const QString error = exportChart(chart, path, f, provenance());
            if (!error.isEmpty())
                QMessageBox::warning(parent, QObject::tr("Export failed"), error);
        });
    }
}

void installExportMenu(const ChartHandle& chart, const std::function<Provenance()>& provenance) {
    QCustomPlot* plot = chart.plot;
    plot->setContextMenuPolicy(Qt::CustomContextMenu);
    QObject::connect(plot, &QWidget::customContextMenuRequested, plot,
                     [plot, chart, provenance](const QPoint& pos) {
                         QMenu menu(plot);
                         addExportActions(&menu, plot, chart, provenance);
                         menu.exec(plot->mapToGlobal(pos));
                     });
}

} // namespace kvs::views
