// SPDX-License-Identifier: MIT
#include "capacity_chart.h"

#include "plot_style.h"

#include <cmath>
#include <limits>
#include <qcustomplot.h>

namespace kvs::views {

namespace {

QCPItemStraightLine* verticalLine(QCustomPlot* plot, double x, const QPen& pen) {
    auto* line = new QCPItemStraightLine(plot);
    line->point1->setCoords(x, 1);
    line->point2->setCoords(x, 2);
    line->setPen(pen);
    line->setSelectable(false);
    return line;
}

QCPItemText* label(QCustomPlot* plot, double x, const QString& text, Qt::Alignment align,
                   double yFraction) {
    auto* item = new QCPItemText(plot);
    item->position->setTypeX(QCPItemPosition::ptPlotCoords);
    item->position->setTypeY(QCPItemPosition::ptAxisRectRatio);
    item->position->setCoords(x, yFraction);
    item->setPositionAlignment(align);
    item->setText(text);
    item->setPadding(QMargins(4, 2, 4, 2));
    item->setSelectable(false);
    return item;
}

} // namespace

void drawCapacityChart(QCustomPlot* plot, const CapacityChartData& data) {
    plot->clearGraphs();
    plot->clearItems();
    for (QCPAxis* axis : {plot->xAxis, plot->yAxis}) {
        axis->setScaleType(QCPAxis::stLogarithmic);
        axis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
        axis->setNumberFormat(QStringLiteral("gb"));
        axis->setNumberPrecision(6);
    }
    plot->xAxis->setLabel(QObject::tr("context per user (tokens)"));
    plot->yAxis->setLabel(QObject::tr("whole users on one GPU"));

    double xMin = std::numeric_limits<double>::max(), xMax = 0, yMax = 1;
    for (const CapacitySeries& s : data.series) {
        QCPGraph* g = plot->addGraph();
        g->setName(s.name);
        QPen pen(categoricalColor(s.colorIndex), 2.0);
        pen.setStyle(categoricalDash(s.colorIndex));
        g->setPen(pen);
        g->setLineStyle(QCPGraph::lsStepLeft);
        QVector<double> users(s.users.size());
        for (int i = 0; i < s.users.size(); ++i) {
            // A log axis cannot show 0: no user is a gap in the line.
            users[i] = s.users[i] >= 1 ? s.users[i] : std::numeric_limits<double>::quiet_NaN();
            if (s.users[i] >= 1)
                yMax = std::max(yMax, s.users[i]);
        }
        g->setData(s.context, users, true);
        if (!s.context.isEmpty()) {
            xMin = std::min(xMin, s.context.front());
            xMax = std::max(xMax, s.context.back());
        }
    }
    if (xMax <= 0) {
        xMin = 1;
        xMax = 10;
    }
    plot->xAxis->setRange(xMin, xMax);
    plot->yAxis->setRange(0.8, yMax * 1.5);

    const QColor ink = plot->xAxis->labelColor();
    if (data.contextLimit > 0 && data.contextLimit < xMax) {
        // Beyond the model's maximum every figure is hypothetical: shade it.
        auto* shade = new QCPItemRect(plot);
        shade->topLeft->setTypeY(QCPItemPosition::ptAxisRectRatio);
        shade->bottomRight->setTypeY(QCPItemPosition::ptAxisRectRatio);
        shade->topLeft->setCoords(data.contextLimit, 0);
        shade->bottomRight->setCoords(xMax, 1);
        QColor fill = ink;
        fill.setAlpha(28);
        shade->setBrush(fill);
        shade->setPen(Qt::NoPen);
        shade->setSelectable(false);
        shade->setLayer(QStringLiteral("background"));
        QPen pen(ink, 1.0, Qt::DashLine);
        verticalLine(plot, data.contextLimit, pen);
        label(plot, data.contextLimit,
              QObject::tr("model maximum %L1\nbeyond: hypothetical")
                  .arg(data.contextLimit, 0, 'f', 0),
              Qt::AlignLeft | Qt::AlignTop, 0.02);
    }
    if (data.window > 0 && data.window < xMax && data.window > xMin) {
        verticalLine(plot, data.window, QPen(ink, 1.0, Qt::DotLine));
        label(plot, data.window, QObject::tr("window %L1").arg(data.window, 0, 'f', 0),
              Qt::AlignRight | Qt::AlignBottom, 0.98);
    }
    if (data.context > 0) {
        verticalLine(plot, data.context, QPen(ink, 1.5));
        label(plot, data.context, QObject::tr("%L1 tokens").arg(data.context, 0, 'f', 0),
              Qt::AlignRight | Qt::AlignTop, 0.02);
    }
    plot->legend->setVisible(!data.series.isEmpty());
    plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignLeft);
    plot->legend->setFont(QFont(plot->font().family(), std::max(7, plot->font().pointSize() - 1)));
    if (!data.title.isEmpty()) {
        if (!qobject_cast<QCPTextElement*>(plot->plotLayout()->element(0, 0))) {
            plot->plotLayout()->insertRow(0);
            plot->plotLayout()->addElement(0, 0, new QCPTextElement(plot, data.title));
        } else {
            qobject_cast<QCPTextElement*>(plot->plotLayout()->element(0, 0))->setText(data.title);
        }
    }
    applyPlotTheme(plot);
    plot->replot();
}

CsvTable capacityCsv(const CapacityChartData& data) {
    CsvTable t;
    t.header = csvColumns("setting,context_tokens,whole_users");
    for (const CapacitySeries& s : data.series)
        for (int i = 0; i < s.context.size() && i < s.users.size(); ++i)
            t.rows.push_back({s.name, QString::number(s.context[i], 'f', 0),
                              QString::number(s.users[i], 'f', 0)});
    return t;
}

} // namespace kvs::views
