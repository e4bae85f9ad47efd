// SPDX-License-Identifier: MIT
// A chart's legend in a row of its own, as many entries per row as fit.
#include "legend_placement.h"

#include <qcustomplot.h>

#include <algorithm>
#include <vector>

namespace kvs::views {

void placeLegendOutside(QCustomPlot* plot, Qt::Edge edge, int maxColumns) {
    QCPLegend* legend = plot->legend;
    if (QCPLayout* owner = legend->layout())
        owner->take(legend);
    QCPLayoutGrid* layout = plot->plotLayout();
    const int row = edge == Qt::TopEdge ? 0 : layout->rowCount();
    layout->insertRow(row);
    layout->addElement(row, 0, legend);
    layout->setRowStretchFactor(row, 0.001); // as tall as its entries
    legend->setWrap(std::max(1, maxColumns));
    legend->setFillOrder(QCPLegend::foColumnsFirst, true);
    QObject::connect(plot, &QCustomPlot::afterLayout, legend, [plot, legend, maxColumns] {
        // Its entries in order (a grid not filled to the last row has empty cells).
        std::vector<const QCPAbstractLegendItem*> items;
        bool gaps = false; // an empty cell before an entry: an entry was removed
        for (int i = 0; i < legend->itemCount(); ++i) {
            if (const QCPAbstractLegendItem* item = legend->item(i)) {
                gaps = gaps || static_cast<int>(items.size()) < i;
                items.push_back(item);
            }
        }
        const int entries = static_cast<int>(items.size());
        if (!legend->visible() || entries == 0)
            return;
        // The legend's width with `columns` entries per row, filled row by row.
        const auto widthFor = [legend, &items](int columns) {
            std::vector<int> widths(static_cast<std::size_t>(columns), 0);
            for (std::size_t i = 0; i < items.size(); ++i) {
                int& w = widths[i % static_cast<std::size_t>(columns)];
                w = std::max(w, items[i]->minimumOuterSizeHint().width());
            }
            int total = legend->margins().left() + legend->margins().right() +
                        (columns - 1) * legend->columnSpacing();
            for (int w : widths)
                total += w;
            return total;
        };
        const int width = plot->plotLayout()->rect().width();
        int columns = std::clamp(maxColumns, 1, entries);
        while (columns > 1 && widthFor(columns) > width)
            --columns;
        // As few rows, then as even ones, as that allows: four entries in two rows of two.
        const int rows = (entries + columns - 1) / columns;
        columns = (entries + rows - 1) / rows;
        if (!gaps && columns == legend->wrap() && legend->columnCount() == columns)
            return;
        legend->setWrap(columns);
        legend->setFillOrder(QCPLegend::foColumnsFirst, true);
        // The layout once more with the legend's new rows (updateLayout, without the signal).
        QCPLayoutGrid* grid = plot->plotLayout();
        grid->update(QCPLayoutElement::upPreparation);
        grid->update(QCPLayoutElement::upMargins);
        grid->update(QCPLayoutElement::upLayout);
    });
}

} // namespace kvs::views
