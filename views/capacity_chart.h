// SPDX-License-Identifier: MIT
// The capacity planner's chart: how many whole users fit on one GPU against context length, one
// line per way of storing the cache, with the chosen context, the model's maximum (beyond it the
// figures are hypothetical) and a sliding window marked. The planner computes (kvs/capacity.h);
// this draws what it is given.
#pragma once

#include "chart_export.h"

#include <QString>
#include <QVector>

class QCustomPlot;

namespace kvs::views {

struct CapacitySeries {
    QString name;            // "exact", "SnapKV keep=0.25 (0.27 of the cache)"
    QVector<double> context; // tokens, increasing
    QVector<double> users;   // whole users; 0 where none fits
    int colorIndex = 0;
};

struct CapacityChartData {
    QString title; // "Llama-2-7B on 80 GiB (fp16 weights, fp16 cache)"
    QVector<CapacitySeries> series;
    double context = 0;      // the planned context, marked
    double contextLimit = 0; // the model's maximum; 0 = unknown
    double window = 0;       // a sliding window on every layer; 0 = none
};

// Draws `data` on `plot` (cleared first): log-log axes, users ≥ 1 (a context where no user fits
// leaves a gap), the markers, a legend.
void drawCapacityChart(QCustomPlot* plot, const CapacityChartData& data);
// The chart's data: one row per (series, context).
CsvTable capacityCsv(const CapacityChartData& data);

} // namespace kvs::views
