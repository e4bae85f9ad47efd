// SPDX-License-Identifier: MIT
// The Trade-offs view: error against memory for every scheme (one curve per budget sweep, log
// axes), a metric selector, the Pareto front over all points, the current settings marked (click
// or drag near a curve to move the current point along it), and a pinned baseline overlaid.
#pragma once

#include "analysis_data.h"
#include "chart_export.h"
#include "studio_view.h"

#include <QWidget>
#include <memory>

class QComboBox;
class QCustomPlot;
class QCheckBox;
class QLabel;

namespace kvs::views {
class ElidedLabel;
}
class QMouseEvent;

namespace kvs::views {

class TradeoffView : public QWidget, public StudioView {
    Q_OBJECT
public:
    explicit TradeoffView(QWidget* parent = nullptr);
    // StudioView: the current settings from the analysis; the sweeps' curves, progress and
    // failure (and a failed quality pass) in the status line.
    QString viewName() const override { return QStringLiteral("tradeoffs"); }
    QString viewTitle() const override { return tr("Trade-offs"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int) override {
        setCurrent(analysis);
    }
    void sweepsChanged(const std::shared_ptr<const SweepData>& sweeps) override;
    void jobStarted(StudioJob job) override;
    void jobFailed(StudioJob job, const QString& message) override;

    void setCurves(std::shared_ptr<const SweepData> sweeps);
    void setCurrent(std::shared_ptr<const AnalysisData> current);
    void setBaseline(std::shared_ptr<const SweepData> baseline);
    // A study over a prompt set, overlaid with its 95% intervals as whiskers (nullptr removes
    // it); drawn for the metrics it reports (KL, head output error), noted for the others.
    void setStudy(std::shared_ptr<const StudyData> study);
    const StudyData* study() const { return m_study.get(); }
    int studyWhiskerCount() const { return m_whiskerCount; }
    void setMetric(Metric metric);
    Metric metric() const;
    // Curves coloured per scheme (as the Schemes dock's swatches) or per family (every coreset
    // one colour, every codec another: the families meet on this chart); dashes and markers
    // stay per scheme either way.
    enum class Colouring { Scheme, Family };
    void setColouring(Colouring colouring);
    Colouring colouring() const;
    void clear(const QString& placeholder) override;

    int curveCount() const;
    // The legend entry of the chart's graph `index` (curves first, in drawing order).
    QString legendText(int index) const;
    int paretoPointCount() const { return m_paretoCount; }
    // The current point of run `index` as drawn: (bytes, metric value).
    QPointF currentPoint(int index) const;
    QString summaryText() const;
    std::vector<ChartHandle> charts() const override;
    QCustomPlot* plot() const { return m_plot; }
    void applyTheme() override;
    void setStatusText(const QString& text);
    QString statusText() const;
    // Theory overlays on the attention-error chart: each family's predicted slope as a dotted
    // guide and the coreset bound's demand in the summary.
    void setTheoryVisible(bool visible);
    bool isTheoryVisible() const;
    int theoryGuideCount() const { return m_guideCount; }
    // Points at a degenerate budget (EvalResult::degenerateHeads > 0: the scheme chose nothing,
    // sinks + window ran) drawn as hollow grey rings over their curves' markers; the rings'
    // graphs carry the property "kvsDegenerate" = true.
    int degenerateMarkCount() const { return m_degenerateCount; }
    // What the chart says of the curve point nearest to `pixel` (within a few pixels): the
    // scheme, the setting, bytes and the metric, and a degenerate budget's reason; "" for none.
    QString pointToolTip(const QPointF& pixel) const;

    // The "Streaming" box: whether the sweeps also run in streaming mode. Setting it does not
    // emit streamingToggled (it mirrors the session's state).
    void setStreamingChecked(bool checked);
    bool isStreamingChecked() const;
    int streamingCurveCount() const; // streaming curves in the sweeps shown

signals:
    // The user turned the "Streaming" box on or off: sweep in streaming mode too, or not.
    void streamingToggled(bool checked);
    // The user picked (clicked or dragged to) a point of a curve: set `parameter` of the scheme
    // whose sweep started from `baseSetting` to `value`.
    void pointPicked(const QString& baseSetting, const QString& parameter, double value);

private:
    struct Bounds;
    void rebuild();
    // The steps of rebuild(): sweep curves (pinned ones dashed), the theory guides (returning
    // the coreset-bound notes), the Pareto front the analysis computed, the current settings'
    // markers (returning their summary lines).
    void drawCurves(const SweepData& sweeps, Metric metric, bool baseline, Bounds& bounds);
    QStringList drawTheory(Bounds& bounds);
    void drawParetoFront(Metric metric);
    QStringList drawCurrent(Metric metric, Bounds& bounds);
    QStringList drawStudy(Metric metric, Bounds& bounds);
    QStringList drawDegenerate(Metric metric);
    bool eventFilter(QObject* watched, QEvent* event) override;
    void pickAt(QMouseEvent* event);
    CsvTable csv() const;

    std::shared_ptr<const SweepData> m_sweeps;
    std::shared_ptr<const SweepData> m_baseline;
    std::shared_ptr<const AnalysisData> m_current;
    std::shared_ptr<const StudyData> m_study;
    int m_whiskerCount = 0;
    QColor colourOf(int colorIndex, const QString& family) const;
    QComboBox* m_metric = nullptr;
    QComboBox* m_colouring = nullptr;
    QCheckBox* m_theory = nullptr;
    QCheckBox* m_streaming = nullptr;
    int m_guideCount = 0;
    QLabel* m_summary = nullptr;
    ElidedLabel* m_status = nullptr;
    QCustomPlot* m_plot = nullptr;
    int m_paretoCount = 0;
    int m_degenerateCount = 0;
    std::vector<QPointF> m_currentPoints;
    bool m_dragging = false;
};

} // namespace kvs::views
