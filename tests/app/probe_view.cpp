// SPDX-License-Identifier: MIT
// A view that only a test registers: one chart of every run's cache fraction.
#include "probe_view.h"

#include <QVBoxLayout>
#include <qcustomplot.h>

namespace kvs::test {

ProbeView::ProbeView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    m_plot = new QCustomPlot(this);
    m_plot->setObjectName(QStringLiteral("probePlot"));
    m_plot->addGraph();
    layout->addWidget(m_plot);
}

void ProbeView::setAnalysis(const std::shared_ptr<const views::AnalysisData>& analysis, int) {
    m_analysis = analysis;
    QVector<double> x;
    QVector<double> y;
    for (std::size_t i = 0; i < analysis->runs.size(); ++i) {
        x << static_cast<double>(i);
        y << analysis->runs[i].eval.memoryFraction;
    }
    m_plot->graph(0)->setData(x, y);
    m_plot->rescaleAxes();
    m_plot->replot();
    ++m_drawn;
}

void ProbeView::clear(const QString& message) {
    m_analysis.reset();
    m_plot->graph(0)->data()->clear();
    m_plot->replot();
    m_message = message;
}

std::vector<views::ChartHandle> ProbeView::charts() const {
    return {{QStringLiteral("probe_runs"), m_plot, [this] { return csv(); }}};
}

void ProbeView::jobFailed(views::StudioJob, const QString& message) {
    m_message = message;
}

views::CsvTable ProbeView::csv() const {
    views::CsvTable t;
    t.header = {QStringLiteral("run"), QStringLiteral("setting"),
                QStringLiteral("memory_fraction")};
    if (m_analysis)
        for (std::size_t i = 0; i < m_analysis->runs.size(); ++i)
            t.rows.push_back({QString::number(i), m_analysis->runs[i].setting,
                              QString::number(m_analysis->runs[i].eval.memoryFraction, 'g', 17)});
    return t;
}

} // namespace kvs::test
