// SPDX-License-Identifier: MIT
// The studio's chart style: perceptual, colour-blind-safe colour maps (viridis, cividis and a
// diverging blue-white-red map centred at zero; QCustomPlot 2.1 has none of them), the Okabe-Ito
// categorical palette with a marker and dash per series, and light/dark plot themes that follow
// the application palette while data colours stay fixed.
#pragma once

#include <QColor>
#include <qcustomplot.h>

#include <initializer_list>
#include <span>

namespace kvs::views {

QCPColorGradient viridisGradient();
QCPColorGradient cividisGradient();
// Blue (negative) → near-white (0) → red (positive); use with symmetric data ranges.
QCPColorGradient divergingGradient();
// `base` with its colours moved so that the value at fraction f of a linear data range gets the
// colour `base` has at √f: a square-root colour scale whose data and legend stay in the values'
// own units (diffuse heads' small weights get more of the colours).
QCPColorGradient squareRootGradient(const QCPColorGradient& base);

// Okabe-Ito, black moved last; never interpolated.
QColor categoricalColor(int index);
// The palette index of a scheme family ("selection", "coreset", "factored", "shared", "codec",
// "composed", "identity"), so that one family has one colour on every chart that colours by it.
int familyColorIndex(const QString& family);
QCPScatterStyle::ScatterShape categoricalShape(int index);
Qt::PenStyle categoricalDash(int index);

// Plot colours for the current application theme (dark when the window background is dark), or
// the light theme when `forceLight` (exports: papers are white).
void applyPlotTheme(QCustomPlot* plot, bool forceLight = false);
// A view's theme change: the current theme on each of its plots, redrawn.
void retheme(std::span<QCustomPlot* const> plots);
inline void retheme(std::initializer_list<QCustomPlot*> plots) {
    retheme(std::span(plots.begin(), plots.size()));
}
bool isDarkPalette();

// A layer × KV head heat grid on `plot`: a title row, the axes labelled (layers downwards, no
// grid lines), a viridis colour map with its colour scale beside it. Returns the colour map;
// `title` receives the title element, so that its text can change.
QCPColorMap* makeLayerHeadGrid(QCustomPlot* plot, const QString& titleText, QCPTextElement** title);

// A message drawn in the middle of an empty plot ("Load a model…").
void setPlotPlaceholder(QCustomPlot* plot, const QString& text);

// A positive number as its power of ten, for bounds whose constants are unknown: "10¹⁵" (the
// nearest power, on log scale), "≥ 10³⁰⁰" at the cap, "∞" for infinity, "" when not positive.
QString orderOfMagnitude(double value);

} // namespace kvs::views
