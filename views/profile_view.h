// SPDX-License-Identifier: MIT
// The Profile view: the probe attention's per-dispatch timings (a sortable table and bars),
// achieved GB/s against the device's measured bandwidth, the CPU time of compression, time
// against context length per scheme (log-log), and a plain statement of what the device is (a
// CPU emulation such as lavapipe is labelled as one).
#pragma once

#include "analysis_data.h"
#include "chart_export.h"
#include "studio_view.h"

#include <QWidget>
#include <memory>

class QCustomPlot;
class QCPBars;
class QCPTextElement;
class QLabel;
class QTableWidget;

namespace kvs::views {

class ProfileView : public QWidget, public StudioView {
    Q_OBJECT
public:
    explicit ProfileView(QWidget* parent = nullptr);
    void setData(std::shared_ptr<const AnalysisData> data, int runIndex);
    void setBaseline(std::shared_ptr<const AnalysisData> baseline, int runIndex);
    // Time against context length: one colour per setting, device µs solid, wall µs dashed (wall
    // only where the timing backend is the CPU). Null clears the chart.
    void setScaling(std::shared_ptr<const ScalingData> scaling);
    // A note on the scaling chart while it is measured ("measuring…").
    void setScalingStatus(const QString& text);
    void clear(const QString& placeholder) override;
    QString deviceText() const;
    QString summaryText() const;
    QTableWidget* table() const { return m_table; }
    QCustomPlot* scalingPlot() const { return m_scalingPlot; }
    QString scalingTitle() const;
    // The note on the scaling chart ("measuring…", or why there is no chart).
    QString scalingStatus() const { return m_scalingStatus; }
    std::vector<ChartHandle> charts() const override;
    void applyTheme() override;

    // StudioView: the scaling job's results, progress and failure go to the scaling chart.
    QString viewName() const override { return QStringLiteral("profile"); }
    QString viewTitle() const override { return tr("Profile"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int run) override {
        setData(analysis, run);
    }
    void scalingChanged(const std::shared_ptr<const ScalingData>& scaling) override;
    void jobStarted(StudioJob job) override;
    void jobFailed(StudioJob job, const QString& message) override;

private:
    void rebuild();
    void rebuildScaling();
    CsvTable csv() const;
    CsvTable scalingCsv() const;

    std::shared_ptr<const AnalysisData> m_data;
    int m_run = 0;
    std::shared_ptr<const AnalysisData> m_baseline;
    int m_baselineRun = 0;
    QLabel* m_device = nullptr;
    QLabel* m_summary = nullptr;
    QTableWidget* m_table = nullptr;
    QCustomPlot* m_plot = nullptr;
    QCPBars* m_bars = nullptr;
    QCPBars* m_baselineBars = nullptr;
    std::shared_ptr<const ScalingData> m_scaling;
    QString m_scalingStatus;
    QCustomPlot* m_scalingPlot = nullptr;
    QCPTextElement* m_scalingTitle = nullptr;
};

} // namespace kvs::views
