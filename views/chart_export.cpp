// SPDX-License-Identifier: MIT
// Chart export to PNG, SVG, PDF and CSV, drawn into memory with what its sidecar says.
#include "chart_export.h"

#include "plot_style.h"

#include <QBuffer>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMenu>
#include <QMessageBox>
#include <QPdfWriter>
#include <QRegularExpression>
#include <QSettings>
#include <QSvgGenerator>
#include <qcustomplot.h>

namespace kvs::views {

namespace {

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

QStringList csvColumns(const char* commaSeparated) {
    return QString::fromLatin1(commaSeparated).split(QLatin1Char(','));
}

QByteArray csvBytes(const CsvTable& table, const Provenance& provenance) {
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
    return text.toUtf8();
}

namespace {

// QCustomPlot lays a chart out in logical pixels: its pens, margins, tick lengths and marker sizes
// are given in them and the screen draws them at 96 per inch. Every export keeps that layout (so
// the export looks like the screen) and maps it onto the physical size asked for.
constexpr double kLayoutDpi = 96.0;

// A figure's size: in millimetres (the page of a PDF, the width/height of an SVG, the pixels of a
// PNG at its dpi) and the layout in 96-dpi logical pixels drawn into it.
struct FigureSize {
    QSizeF mm;
    QSize layout;
};

// The size asked for, else the on-screen size at 96 dpi; without a height the on-screen aspect
// ratio.
FigureSize figureSize(const QCustomPlot* plot, const ExportOptions& options) {
    const double width = plot->width() > 50 ? plot->width() : 800;
    const double height = plot->height() > 50 ? plot->height() : 500;
    QSizeF mm(width / kLayoutDpi * 25.4, height / kLayoutDpi * 25.4);
    if (options.widthMm > 0)
        mm = QSizeF(options.widthMm,
                    options.heightMm > 0 ? options.heightMm : options.widthMm * height / width);
    const QSize layout(std::max(1, qRound(mm.width() / 25.4 * kLayoutDpi)),
                       std::max(1, qRound(mm.height() / 25.4 * kLayoutDpi)));
    return {mm, layout};
}

// Vector output (SVG, PDF) through QCustomPlot's painter, without cosmetic pens. The device has
// 96 units per inch, so texts of n points come out n points tall.
bool drawVector(QCustomPlot* plot, QPaintDevice* device, QSize layout) {
    QCPPainter painter;
    if (!painter.begin(device))
        return false;
    painter.setMode(QCPPainter::pmVectorized);
    painter.setMode(QCPPainter::pmNoCaching);
    painter.setMode(QCPPainter::pmNonCosmetic);
    plot->toPainter(&painter, layout.width(), layout.height());
    return painter.end();
}

// A PNG of W mm at D dpi is round(W / 25.4 · D) pixels: the 96-dpi layout scaled onto them. The
// image claims 96 dpi while it is drawn, so point-sized texts are laid out as on the screen.
QImage drawRaster(QCustomPlot* plot, const FigureSize& size, int dpi) {
    const QSize pixels(std::max(1, qRound(size.mm.width() / 25.4 * dpi)),
                       std::max(1, qRound(size.mm.height() / 25.4 * dpi)));
    QImage image(pixels, QImage::Format_ARGB32_Premultiplied);
    if (image.isNull())
        return image;
    const int layoutDotsPerMeter = qRound(kLayoutDpi / 0.0254);
    image.setDotsPerMeterX(layoutDotsPerMeter);
    image.setDotsPerMeterY(layoutDotsPerMeter);
    image.fill(Qt::transparent);
    QCPPainter painter;
    if (!painter.begin(&image))
        return {};
    painter.setMode(QCPPainter::pmNoCaching);
    const double sx = static_cast<double>(pixels.width()) / size.layout.width();
    const double sy = static_cast<double>(pixels.height()) / size.layout.height();
    if (sx > 1.0 || sy > 1.0) // as QCustomPlot::toPixmap: hairlines would vanish when enlarged
        painter.setMode(QCPPainter::pmNonCosmetic);
    painter.scale(sx, sy);
    plot->toPainter(&painter, size.layout.width(), size.layout.height());
    painter.end();
    const int dotsPerMeter = qRound(dpi / 0.0254);
    image.setDotsPerMeterX(dotsPerMeter);
    image.setDotsPerMeterY(dotsPerMeter);
    return image;
}

// QSvgGenerator writes its width and height as its integer size over its resolution; the figure
// is exactly the millimetres asked for, so the <svg> element's attributes are set to them.
QByteArray withSvgSizeMm(QByteArray svg, QSizeF mm) {
    const int start = svg.indexOf("<svg");
    const int end = start < 0 ? -1 : svg.indexOf('>', start);
    if (end < 0)
        return svg;
    QByteArray element = svg.mid(start, end - start);
    static const QRegularExpression size(QStringLiteral("\\s(width|height)=\"[^\"]*\""));
    QString text = QString::fromUtf8(element);
    text.remove(size);
    text.insert(
        4, QStringLiteral(" width=\"%1mm\" height=\"%2mm\"")
               .arg(QString::number(mm.width(), 'g', 8), QString::number(mm.height(), 'g', 8)));
    return svg.replace(start, end - start, text.toUtf8());
}

bool drawChart(QCustomPlot* plot, const QString& name, ExportFormat format,
               const Provenance& provenance, const ExportOptions& options, QBuffer* buffer) {
    const FigureSize size = figureSize(plot, options);
    switch (format) {
    case ExportFormat::Png: {
        const QImage image = drawRaster(plot, size, std::max(1, options.dpi));
        return !image.isNull() && image.save(buffer, "PNG");
    }
    case ExportFormat::Pdf: {
        // The page is the figure's size in millimetres (whole points in the MediaBox); the device
        // has 96 units per inch, as the layout.
        QPdfWriter pdf(buffer);
        pdf.setResolution(static_cast<int>(kLayoutDpi));
        pdf.setPageLayout(
            QPageLayout(QPageSize(size.mm, QPageSize::Millimeter, QString(), QPageSize::ExactMatch),
                        QPageLayout::Portrait, QMarginsF(0, 0, 0, 0), QPageLayout::Millimeter));
        pdf.setCreator(QStringLiteral("KV Studio %1").arg(provenance.version));
        pdf.setTitle(name);
        return drawVector(plot, &pdf, size.layout);
    }
    case ExportFormat::Svg: {
        // User units are 96-dpi pixels: the viewBox is the exact size in them.
        QByteArray svg;
        QBuffer out(&svg);
        out.open(QIODevice::WriteOnly);
        QSvgGenerator generator;
        generator.setOutputDevice(&out);
        generator.setResolution(static_cast<int>(kLayoutDpi));
        generator.setSize(size.layout);
        generator.setViewBox(QRectF(0, 0, size.mm.width() / 25.4 * kLayoutDpi,
                                    size.mm.height() / 25.4 * kLayoutDpi));
        generator.setTitle(name);
        generator.setDescription(
            QStringLiteral("KV Studio %1; model %2").arg(provenance.version, provenance.modelName));
        if (!drawVector(plot, &generator, size.layout))
            return false;
        out.close();
        return buffer->write(withSvgSizeMm(svg, size.mm)) > 0;
    }
    case ExportFormat::Csv:
        break;
    }
    return false;
}

// Sets every text of `plot` to `pt` points (titles 1.2×) for an export and puts the screen's
// fonts back when it goes out of scope.
class ScopedChartFonts {
public:
    ScopedChartFonts(QCustomPlot* plot, double pt) {
        if (pt <= 0)
            return;
        const auto sized = [pt](QFont f, double factor = 1.0) {
            f.setPointSizeF(pt * factor);
            return f;
        };
        const auto axis = [&](QCPAxis* a) {
            m_restore.push_back([a, tick = a->tickLabelFont(), label = a->labelFont()] {
                a->setTickLabelFont(tick);
                a->setLabelFont(label);
            });
            a->setTickLabelFont(sized(a->tickLabelFont()));
            a->setLabelFont(sized(a->labelFont()));
        };
        for (QCPLayoutElement* e : plot->plotLayout()->elements(true)) {
            if (auto* rect = qobject_cast<QCPAxisRect*>(e)) {
                for (QCPAxis* a : rect->axes())
                    axis(a);
            } else if (auto* scale = qobject_cast<QCPColorScale*>(e)) {
                axis(scale->axis());
            } else if (auto* text = qobject_cast<QCPTextElement*>(e)) {
                m_restore.push_back([text, font = text->font()] { text->setFont(font); });
                text->setFont(sized(text->font(), 1.2));
            } else if (auto* legend = qobject_cast<QCPLegend*>(e)) {
                m_restore.push_back([legend, font = legend->font()] { legend->setFont(font); });
                legend->setFont(sized(legend->font()));
                for (int i = 0; i < legend->itemCount(); ++i) {
                    QCPAbstractLegendItem* item = legend->item(i);
                    if (!item) // an empty cell of a legend of several columns
                        continue;
                    m_restore.push_back([item, font = item->font()] { item->setFont(font); });
                    item->setFont(sized(item->font()));
                }
            }
        }
        for (int i = 0; i < plot->itemCount(); ++i)
            if (auto* text = qobject_cast<QCPItemText*>(plot->item(i))) {
                m_restore.push_back([text, font = text->font()] { text->setFont(font); });
                text->setFont(sized(text->font()));
            }
    }
    ~ScopedChartFonts() {
        for (auto& restore : m_restore)
            restore();
    }
    ScopedChartFonts(const ScopedChartFonts&) = delete;
    ScopedChartFonts& operator=(const ScopedChartFonts&) = delete;

private:
    std::vector<std::function<void()>> m_restore;
};

} // namespace

QString renderChart(const ChartHandle& chart, const QString& fileName, ExportFormat format,
                    const Provenance& provenance, const ExportOptions& options, ExportFile* out) {
    QJsonObject sidecar;
    sidecar[QStringLiteral("file")] = fileName;
    sidecar[QStringLiteral("chart")] = chart.name;
    sidecar[QStringLiteral("format")] = formatSuffix(format);
    sidecar[QStringLiteral("created")] = QDateTime::currentDateTimeUtc().toString(Qt::ISODate);
    sidecar[QStringLiteral("provenance")] = provenanceJson(provenance);
    out->sidecar = sidecar;
    if (format == ExportFormat::Csv) {
        if (!chart.data)
            return QObject::tr("The chart %1 has no data to export").arg(chart.name);
        out->bytes = csvBytes(chart.data(), provenance);
        return {};
    }
    QCustomPlot* plot = chart.plot;
    if (!plot)
        return QObject::tr("The chart %1 is not shown").arg(chart.name);
    if (options.widthMm > 0)
        sidecar[QStringLiteral("width_mm")] = options.widthMm;
    if (options.heightMm > 0)
        sidecar[QStringLiteral("height_mm")] = options.heightMm;
    if (options.fontPt > 0)
        sidecar[QStringLiteral("font_pt")] = options.fontPt;
    if (format == ExportFormat::Png)
        sidecar[QStringLiteral("dpi")] = options.dpi;
    out->sidecar = sidecar;
    applyPlotTheme(plot, /*forceLight=*/true);
    bool ok = false;
    {
        const ScopedChartFonts fonts(plot, options.fontPt);
        plot->replot(QCustomPlot::rpImmediateRefresh);
        QBuffer buffer(&out->bytes);
        buffer.open(QIODevice::WriteOnly);
        ok = drawChart(plot, chart.name, format, provenance, options, &buffer);
    }
    applyPlotTheme(plot);
    plot->replot();
    if (!ok || out->bytes.isEmpty())
        return QObject::tr("Cannot draw %1 as %2").arg(chart.name, formatSuffix(format).toUpper());
    return {};
}

QString paintChart(const ChartHandle& chart, QCPPainter* painter, const QRect& target,
                   const ExportOptions& options) {
    QCustomPlot* plot = chart.plot;
    if (!plot)
        return QObject::tr("The chart %1 is not shown").arg(chart.name);
    if (!painter || !painter->isActive() || target.width() < 10 || target.height() < 10)
        return QObject::tr("Cannot draw %1: nothing to draw on").arg(chart.name);
    applyPlotTheme(plot, /*forceLight=*/true);
    {
        const ScopedChartFonts fonts(plot, options.fontPt);
        plot->replot(QCustomPlot::rpImmediateRefresh);
        painter->save();
        const QCPPainter::PainterModes modes = painter->modes();
        painter->translate(target.topLeft());
        painter->setClipRect(QRect(QPoint(0, 0), target.size()));
        painter->setMode(QCPPainter::pmVectorized);
        painter->setMode(QCPPainter::pmNoCaching);
        painter->setMode(QCPPainter::pmNonCosmetic);
        plot->toPainter(painter, target.width(), target.height());
        painter->setModes(modes);
        painter->restore();
    }
    applyPlotTheme(plot);
    plot->replot();
    return {};
}

QString exportChart(const ChartHandle& chart, const QString& path, ExportFormat format,
                    const Provenance& provenance, const ExportOptions& options,
                    const ExportWriter& write) {
    ExportFile file;
    const QString error =
        renderChart(chart, QFileInfo(path).fileName(), format, provenance, options, &file);
    if (!error.isEmpty())
        return error;
    return write(path, file);
}

void addExportActions(QMenu* menu, QWidget* parent, const ChartHandle& chart,
                      const std::function<Provenance()>& provenance, const ExportWriter& write) {
    const std::vector<std::pair<ExportFormat, QString>> formats = {
        {ExportFormat::Png, QObject::tr("Export %1 as PNG (300 dpi)\u2026")},
        {ExportFormat::Svg, QObject::tr("Export %1 as SVG\u2026")},
        {ExportFormat::Pdf, QObject::tr("Export %1 as PDF\u2026")},
        {ExportFormat::Csv, QObject::tr("Export %1 data as CSV\u2026")}};
    for (const auto& [format, text] : formats) {
        const ExportFormat f = format;
        menu->addAction(text.arg(chart.name), parent, [parent, chart, provenance, write, f] {
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
            const QString error = exportChart(chart, path, f, provenance(), {}, write);
            if (!error.isEmpty())
                QMessageBox::warning(parent, QObject::tr("Export failed"), error);
        });
    }
}

void installExportMenu(const ChartHandle& chart, const std::function<Provenance()>& provenance,
                       const ExportWriter& write) {
    QCustomPlot* plot = chart.plot;
    plot->setContextMenuPolicy(Qt::CustomContextMenu);
    QObject::connect(plot, &QWidget::customContextMenuRequested, plot,
                     [plot, chart, provenance, write](const QPoint& pos) {
                         QMenu menu(plot);
                         addExportActions(&menu, plot, chart, provenance, write);
                         menu.exec(plot->mapToGlobal(pos));
                     });
}

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

} // namespace kvs::views
