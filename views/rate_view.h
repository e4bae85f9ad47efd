// SPDX-License-Identifier: MIT
// The Rate view: rate–distortion of the codecs. Next-token KL against the bits each cached element
// costs (per element of the fp16 cache: 16 is no compression), one curve per codec or chain
// with a codec stage as its budget is swept; an entropy-coded curve beside its twin at the
// symbols' empirical entropy, so the coder's gap is the horizontal distance. Below, the focused
// run's gap per layer and KV head (coded bits − entropy, per coded element) and its breakdown.
#pragma once

#include "analysis_data.h"
#include "chart_export.h"
#include "studio_view.h"

#include <QWidget>
#include <memory>

class QCustomPlot;
class QCPColorMap;
class QCPTextElement;
class QLabel;

namespace kvs::views {

class RateView : public QWidget, public StudioView {
    Q_OBJECT

public:
    explicit RateView(QWidget* parent = nullptr);

    QString viewName() const override { return QStringLiteral("rate"); }
    QString viewTitle() const override { return tr("Rate"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int run) override;
    void sweepsChanged(const std::shared_ptr<const SweepData>& sweeps) override;
    void jobFailed(StudioJob job, const QString& message) override;
    void clear(const QString& message) override;
    std::vector<ChartHandle> charts() const override;
    void applyTheme() override;

    // What the charts hold, for tests: the curves drawn (rate curves and their entropy twins),
    // the focused run's gap grid cells, and the summary text.
    int curveCount() const;
    QString curveName(int index) const;
    int gapCellCount() const { return m_gapCells; }
    QString summaryText() const;
    QCustomPlot* curvePlot() const { return m_curves; }
    QCustomPlot* gapPlot() const { return m_grid; }

private:
    void rebuildCurves();
    void showGap();
    CsvTable curvesCsv() const;
    CsvTable gapCsv() const;
    // KL where the result has the model's quality, else the head output error (a capture).
    Metric metricFor(const kvs::EvalResult& result) const;

    std::shared_ptr<const AnalysisData> m_analysis;
    std::shared_ptr<const SweepData> m_sweeps;
    int m_run = 0;
    int m_gapCells = 0;
    QLabel* m_summary = nullptr;
    QCustomPlot* m_curves = nullptr;
    QCustomPlot* m_grid = nullptr;
    QCPColorMap* m_heat = nullptr;
    QCPTextElement* m_gridTitle = nullptr;
};

} // namespace kvs::views
