// SPDX-License-Identifier: MIT
// A chart's legend in a row of its own above or below the axis rect, so that it never covers the
// data, with as many entries per row as the width drawn allows (the window's or an export's).
#pragma once

#include <Qt>

class QCustomPlot;

namespace kvs::views {

// Moves `plot`'s legend out of its axis rect into a row of its own at `edge` (Qt::TopEdge or
// Qt::BottomEdge) spanning the plot's width. After each layout (a replot, or an export drawing at
// its own size and fonts) the legend gets the most entries per row, up to `maxColumns`, that fit
// that width, and the layout is redone when that changed.
void placeLegendOutside(QCustomPlot* plot, Qt::Edge edge, int maxColumns);

} // namespace kvs::views
