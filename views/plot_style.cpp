// SPDX-License-Identifier: MIT
// Colour maps, categorical styles and plot themes.
#include "plot_style.h"

#include <QFontMetrics>

#include <QApplication>
#include <QPalette>
#include <array>
#include <cmath>

namespace kvs::views {

namespace {

QCPColorGradient gradientFrom(std::initializer_list<const char*> stops) {
    QCPColorGradient g;
    g.clearColorStops();
    const int n = static_cast<int>(stops.size());
    int i = 0;
    for (const char* hex : stops)
        g.setColorStopAt(static_cast<double>(i++) / (n - 1), QColor(QLatin1String(hex)));
    g.setColorInterpolation(QCPColorGradient::ciRGB);
    g.setLevelCount(256);
    return g;
}

void themeAxis(QCPAxis* axis, const QColor& text, const QColor& line, const QColor& grid) {
    axis->setBasePen(QPen(line));
    axis->setTickPen(QPen(line));
    axis->setSubTickPen(QPen(line));
    axis->setTickLabelColor(text);
    axis->setLabelColor(text);
    axis->grid()->setPen(QPen(grid, 0, Qt::DotLine));
    axis->grid()->setSubGridPen(Qt::NoPen);
    axis->grid()->setZeroLinePen(Qt::NoPen);
}

} // namespace

QCPColorGradient viridisGradient() {
    // Nine samples of matplotlib's viridis (perceptually uniform; BIDS, CC0).
    return gradientFrom({"#440154", "#472D7B", "#3B528B", "#2C728E", "#21918C", "#28AE80",
                         "#5EC962", "#ADDC30", "#FDE725"});
}

QCPColorGradient cividisGradient() {
    // Samples of cividis (Nuñez, Anderton & Renslow 2018), safe for all common colour-vision
    // deficiencies.
    return gradientFrom({"#00204D", "#00336F", "#39486B", "#575C6D", "#707173", "#8A8779",
                         "#A69D75", "#C4B56C", "#E4CF5B", "#FFEA46"});
}

QCPColorGradient divergingGradient() {
    // ColorBrewer RdBu (reversed: blue negative, red positive) with a light centre.
    return gradientFrom({"#053061", "#2166AC", "#4393C3", "#92C5DE", "#D1E5F0", "#F7F7F7",
                         "#FDDBC7", "#F4A582", "#D6604D", "#B2182B", "#67001F"});
}

QCPColorGradient squareRootGradient(const QCPColorGradient& base) {
    QCPColorGradient source = base; // color() updates its lookup table, so it is not const
    QCPColorGradient g;
    g.clearColorStops();
    g.setColorInterpolation(QCPColorGradient::ciRGB);
    g.setLevelCount(512);
    constexpr int kStops = 96; // piecewise-linear in f between stops: well within a colour level
    for (int k = 0; k <= kStops; ++k) {
        const double s = static_cast<double>(k) / kStops;
        g.setColorStopAt(s * s, QColor::fromRgb(source.color(s, QCPRange(0.0, 1.0))));
    }
    return g;
}

QColor categoricalColor(int index) {
    static const std::array<const char*, 8> okabeIto = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                                        "#CC79A7", "#56B4E9", "#F0E442", "#000000"};
    const auto n = static_cast<int>(okabeIto.size());
    return QColor(QLatin1String(okabeIto[static_cast<std::size_t>(((index % n) + n) % n)]));
}

QCPColorMap* makeLayerHeadGrid(QCustomPlot* plot, const QString& titleText,
                               QCPTextElement** title) {
    plot->setBufferDevicePixelRatio(plot->devicePixelRatioF());
    plot->plotLayout()->insertRow(0);
    *title = new QCPTextElement(plot, titleText);
    plot->plotLayout()->addElement(0, 0, *title);
    plot->xAxis->setLabel(QObject::tr("KV head"));
    plot->yAxis->setLabel(QObject::tr("layer"));
    plot->yAxis->setRangeReversed(true);
    plot->xAxis->grid()->setVisible(false);
    plot->yAxis->grid()->setVisible(false);
    auto* heat = new QCPColorMap(plot->xAxis, plot->yAxis);
    heat->setInterpolate(false);
    heat->setTightBoundary(false);
    auto* scale = new QCPColorScale(plot);
    plot->plotLayout()->addElement(1, 1, scale);
    scale->setBarWidth(10);
    heat->setColorScale(scale);
    heat->setGradient(viridisGradient()); // after setColorScale, which imposes the scale's
    return heat;
}

int familyColorIndex(const QString& family) {
    static const std::array<const char*, 7> families = {
        "selection", "coreset", "factored", "shared", "codec", "composed", "identity"};
    for (std::size_t i = 0; i < families.size(); ++i)
        if (family == QLatin1String(families[i]))
            return static_cast<int>(i);
    return static_cast<int>(families.size());
}

QCPScatterStyle::ScatterShape categoricalShape(int index) {
    static const std::array<QCPScatterStyle::ScatterShape, 7> shapes = {
        QCPScatterStyle::ssDisc,      QCPScatterStyle::ssSquare,
        QCPScatterStyle::ssTriangle,  QCPScatterStyle::ssDiamond,
        QCPScatterStyle::ssCross,     QCPScatterStyle::ssTriangleInverted,
        QCPScatterStyle::ssPlusCircle};
    const auto n = static_cast<int>(shapes.size());
    return shapes[static_cast<std::size_t>(((index % n) + n) % n)];
}

Qt::PenStyle categoricalDash(int index) {
    static const std::array<Qt::PenStyle, 4> dashes = {Qt::SolidLine, Qt::DashLine, Qt::DotLine,
                                                       Qt::DashDotLine};
    return dashes[static_cast<std::size_t>(((index % 4) + 4) % 4)];
}

bool isDarkPalette() {
    return QApplication::palette().color(QPalette::Window).lightness() < 128;
}

void retheme(std::span<QCustomPlot* const> plots) {
    for (QCustomPlot* plot : plots) {
        applyPlotTheme(plot);
        plot->replot();
    }
}

void applyPlotTheme(QCustomPlot* plot, bool forceLight) {
    const bool dark = !forceLight && isDarkPalette();
    const QColor background = dark ? QColor(0x23, 0x25, 0x29) : QColor(Qt::white);
    const QColor text = dark ? QColor(0xE0, 0xE0, 0xE0) : QColor(0x20, 0x20, 0x20);
    const QColor line = dark ? QColor(0xA0, 0xA0, 0xA0) : QColor(0x50, 0x50, 0x50);
    const QColor grid = dark ? QColor(0x48, 0x4B, 0x50) : QColor(0xDD, 0xDD, 0xDD);
    plot->setBackground(background);
    for (QCPAxisRect* rect : plot->axisRects()) {
        rect->setBackground(background);
        for (QCPAxis* axis : rect->axes())
            themeAxis(axis, text, line, grid);
    }
    for (int i = 0; i < plot->plotLayout()->elementCount(); ++i) {
        if (auto* title = qobject_cast<QCPTextElement*>(plot->plotLayout()->elementAt(i)))
            title->setTextColor(text);
    }
    plot->legend->setBrush(QBrush(background));
    plot->legend->setTextColor(text);
    plot->legend->setBorderPen(QPen(grid));
    const auto elements = plot->findChildren<QCPColorScale*>();
    for (QCPLayoutElement* e : plot->plotLayout()->elements(true)) {
        if (auto* scale = qobject_cast<QCPColorScale*>(e))
            themeAxis(scale->axis(), text, line, grid);
    }
    Q_UNUSED(elements);
    for (int i = 0; i < plot->itemCount(); ++i) {
        if (auto* label = qobject_cast<QCPItemText*>(plot->item(i)))
            if (label->property("kvsThemed").toBool())
                label->setColor(text);
    }
}

void setPlotPlaceholder(QCustomPlot* plot, const QString& text) {
    QCPItemText* label = nullptr;
    for (int i = 0; i < plot->itemCount(); ++i) {
        auto* item = qobject_cast<QCPItemText*>(plot->item(i));
        if (item && item->property("kvsPlaceholder").toBool())
            label = item;
    }
    if (text.isEmpty()) {
        if (label)
            plot->removeItem(label);
        return;
    }
    if (!label) {
        label = new QCPItemText(plot);
        label->setProperty("kvsPlaceholder", true);
        label->setProperty("kvsThemed", true);
        label->position->setType(QCPItemPosition::ptAxisRectRatio);
        label->position->setCoords(0.5, 0.5);
        label->setPositionAlignment(Qt::AlignCenter);
        label->setClipToAxisRect(false);
    }
    // Wrapped to lines that fit the plot (an item text does not wrap itself): a refusal
    // message names the setting, the head and the allowed values, and runs long.
    const QFontMetrics metrics(label->font());
    const int width = std::max(200, plot->width() - 40);
    QStringList lines;
    for (const QString& paragraph : text.split(QLatin1Char('\n'))) {
        QString line;
        for (const QString& word : paragraph.split(QLatin1Char(' '))) {
            const QString longer = line.isEmpty() ? word : line + QLatin1Char(' ') + word;
            if (!line.isEmpty() && metrics.horizontalAdvance(longer) > width) {
                lines << line;
                line = word;
            } else {
                line = longer;
            }
        }
        lines << line;
    }
    label->setText(lines.join(QLatin1Char('\n')));
    label->setColor(isDarkPalette() ? QColor(0xB0, 0xB0, 0xB0) : QColor(0x70, 0x70, 0x70));
}

QString orderOfMagnitude(double value) {
    if (std::isinf(value) && value > 0)
        return QStringLiteral("\u221E");
    if (!(value > 0) || !std::isfinite(value))
        return {};
    static const char16_t* const superscripts[] = {u"\u2070", u"\u00B9", u"\u00B2", u"\u00B3",
                                                   u"\u2074", u"\u2075", u"\u2076", u"\u2077",
                                                   u"\u2078", u"\u2079"};
    const int exponent = static_cast<int>(std::lround(std::log10(value)));
    QString digits;
    for (const QChar c : QString::number(std::abs(exponent)))
        digits += QString::fromUtf16(superscripts[c.digitValue()]);
    const QString power =
        QStringLiteral("10") + (exponent < 0 ? QStringLiteral("\u207B") : QString()) + digits;
    return value >= 1e300 ? QStringLiteral("\u2265 ") + power : power;
}

} // namespace kvs::views
