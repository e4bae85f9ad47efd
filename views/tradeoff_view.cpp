// SPDX-License-Identifier: MIT
// The Trade-offs view.
#include "tradeoff_view.h"

#include "elided_label.h"
#include "legend_placement.h"
#include "plot_style.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QToolTip>
#include <QVBoxLayout>
#include <cmath>
#include <limits>
#include <qcustomplot.h>
#include <utility>

namespace kvs::views {

namespace {

bool plottable(double x, double y) {
    return chartPlottable(x, y);
}

// The metrics a prompt-set study reports with intervals (kvs/study.h) that a log axis can show.
constexpr std::array<Metric, 2> kStudyMetrics = {Metric::NextTokenKl, Metric::HeadOutputError};

} // namespace

TradeoffView::TradeoffView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("tradeoffView"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* bar = new QHBoxLayout;
    m_metric = new QComboBox(this);
    m_metric->setObjectName(QStringLiteral("tradeoffMetric"));
    // The headline (next-token KL) first and selected: it ranks schemes of every family.
    for (int m = 0; m < kMetricCount; ++m)
        m_metric->addItem(metricName(static_cast<Metric>(m)), m);
    m_metric->setToolTip(tr("What to plot against the bytes of the compressed cache"));
    // Long metric names elide rather than widen the window (the popup shows them whole).
    m_metric->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_metric->setMinimumContentsLength(14);
    m_summary = new QLabel(this);
    m_summary->setObjectName(QStringLiteral("tradeoffSummary"));
    m_summary->setWordWrap(true);
    m_status = new ElidedLabel(this); // long sweep notes must not widen the window
    m_status->setObjectName(QStringLiteral("tradeoffStatus"));
    m_colouring = new QComboBox(this);
    m_colouring->setObjectName(QStringLiteral("tradeoffColouring"));
    m_colouring->addItem(tr("Colour by scheme"), static_cast<int>(Colouring::Scheme));
    m_colouring->addItem(tr("Colour by family"), static_cast<int>(Colouring::Family));
    // Like the metric menu: elided rather than widening the window (it must fit 1000 px wide).
    m_colouring->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_colouring->setMinimumContentsLength(10);
    m_colouring->setToolTip(tr("One colour per scheme, as in the Schemes dock, or one per "
                               "family (selection, coreset, factored, shared, codec, chain); "
                               "markers and dashes stay per scheme"));
    m_theory = new QCheckBox(tr("Theory"), this);
    m_theory->setObjectName(QStringLiteral("tradeoffTheory"));
    m_theory->setChecked(true);
    m_theory->setToolTip(tr("On the context-only error chart: the slope each family's theory "
                            "predicts (dotted: −1 for discrepancy coresets, −½ for uniform "
                            "sampling) and what the coreset bound √d·e^ρ/ε asks for"));
    bar->addWidget(new QLabel(tr("Metric"), this)); // the y axis names it in full
    // The menus shrink (elided) to fit a 1000-pixel window and grow to their longest item when
    // there is room.
    for (QComboBox* box : {m_metric, m_colouring}) {
        int widest = 0;
        for (int i = 0; i < box->count(); ++i)
            widest = std::max(widest, box->fontMetrics().horizontalAdvance(box->itemText(i)));
        box->setMaximumWidth(widest + 48); // the arrow and the frame
        bar->addWidget(box, 1);
    }
    m_streaming = new QCheckBox(tr("Streaming"), this);
    m_streaming->setObjectName(QStringLiteral("tradeoffStreaming"));
    m_streaming->setToolTip(tr("Also sweep each scheme that can stream in streaming mode: the "
                               "whole prompt streams through the scheme's online form, and each "
                               "probe token attends to the summary as it stands (dotted curves, "
                               "hollow markers). Slower: the probe is decoded a token at a time"));
    bar->addWidget(m_theory);
    bar->addWidget(m_streaming);
    bar->addStretch(1);
    layout->addLayout(bar);
    // The sweep's status on a line of its own: the controls above must fit a 1000-pixel window.
    layout->addWidget(m_status);

    m_plot = new QCustomPlot(this);
    m_plot->setObjectName(QStringLiteral("tradeoffPlot"));
    m_plot->setBufferDevicePixelRatio(m_plot->devicePixelRatioF());
    m_plot->xAxis->setScaleType(QCPAxis::stLogarithmic);
    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_plot->xAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_plot->xAxis->setLabel(tr("compressed cache (bytes, all layers and heads)"));
    // The legend below the axes in a row of its own, in the window and in every export: inside,
    // it covered part of the curves.
    m_plot->legend->setVisible(true);
    placeLegendOutside(m_plot, Qt::BottomEdge, 2);
    m_plot->setToolTip(tr("Click or drag along a curve to move that scheme's current setting"));
    m_plot->installEventFilter(this); // a point's own tooltip (pointToolTip)
    connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) {
        m_dragging = e->button() == Qt::LeftButton;
        if (m_dragging)
            pickAt(e);
    });
    connect(m_plot, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
        if (m_dragging && (e->buttons() & Qt::LeftButton))
            pickAt(e);
    });
    connect(m_plot, &QCustomPlot::mouseRelease, this, [this](QMouseEvent*) { m_dragging = false; });
    layout->addWidget(m_plot, 1);
    layout->addWidget(m_summary);
    connect(m_metric, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] { rebuild(); });
    connect(m_colouring, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this] { rebuild(); });
    connect(m_theory, &QCheckBox::toggled, this, [this] { rebuild(); });
    connect(m_streaming, &QCheckBox::toggled, this, &TradeoffView::streamingToggled);
    applyTheme();
    clear(tr("Trade-off curves appear once a scheme has been swept."));
}

void TradeoffView::applyTheme() {
    retheme({m_plot});
}

void TradeoffView::setTheoryVisible(bool visible) {
    m_theory->setChecked(visible);
}

bool TradeoffView::isTheoryVisible() const {
    return m_theory->isChecked();
}

void TradeoffView::setStreamingChecked(bool checked) {
    const QSignalBlocker quiet(m_streaming); // the session's own state: nothing to ask for
    m_streaming->setChecked(checked);
}

bool TradeoffView::isStreamingChecked() const {
    return m_streaming->isChecked();
}

int TradeoffView::streamingCurveCount() const {
    int count = 0;
    if (m_sweeps)
        for (const TradeoffCurve& curve : m_sweeps->curves)
            count += curve.streaming ? 1 : 0;
    return count;
}

void TradeoffView::setStatusText(const QString& text) {
    m_status->setFullText(text);
}

void TradeoffView::clear(const QString& placeholder) {
    m_sweeps.reset();
    m_current.reset();
    m_plot->clearGraphs();
    m_plot->clearPlottables();
    m_currentPoints.clear();
    m_paretoCount = 0;
    setPlotPlaceholder(m_plot, placeholder);
    m_plot->replot();
    m_summary->clear();
}

void TradeoffView::setCurves(std::shared_ptr<const SweepData> sweeps) {
    m_sweeps = std::move(sweeps);
    rebuild();
}

void TradeoffView::setCurrent(std::shared_ptr<const AnalysisData> current) {
    m_current = std::move(current);
    rebuild();
}

void TradeoffView::setStudy(std::shared_ptr<const StudyData> study) {
    m_study = std::move(study);
    rebuild();
}

void TradeoffView::setBaseline(std::shared_ptr<const SweepData> baseline) {
    m_baseline = std::move(baseline);
    rebuild();
}

void TradeoffView::setMetric(Metric metric) {
    const int i = m_metric->findData(static_cast<int>(metric));
    if (i >= 0)
        m_metric->setCurrentIndex(i);
}

Metric TradeoffView::metric() const {
    return static_cast<Metric>(m_metric->currentData().toInt());
}

void TradeoffView::setColouring(Colouring colouring) {
    m_colouring->setCurrentIndex(m_colouring->findData(static_cast<int>(colouring)));
}

TradeoffView::Colouring TradeoffView::colouring() const {
    return static_cast<Colouring>(m_colouring->currentData().toInt());
}

QColor TradeoffView::colourOf(int colorIndex, const QString& family) const {
    return categoricalColor(colouring() == Colouring::Family ? familyColorIndex(family)
                                                             : colorIndex);
}

QString TradeoffView::legendText(int index) const {
    QCPGraph* graph = index >= 0 && index < m_plot->graphCount() ? m_plot->graph(index) : nullptr;
    return graph ? graph->name() : QString();
}

int TradeoffView::curveCount() const {
    return m_sweeps ? static_cast<int>(m_sweeps->curves.size()) : 0;
}

QPointF TradeoffView::currentPoint(int index) const {
    if (index < 0 || index >= static_cast<int>(m_currentPoints.size()))
        return {std::nan(""), std::nan("")};
    return m_currentPoints[static_cast<std::size_t>(index)];
}

QString TradeoffView::summaryText() const {
    return m_summary->text();
}

// The data range drawn so far (plain numbers: QCPRange would reorder an empty (max, 0) start).
struct TradeoffView::Bounds {
    double xLo = std::numeric_limits<double>::max();
    double xHi = 0;
    double yLo = std::numeric_limits<double>::max();
    double yHi = 0;
    void extend(double x, double y) {
        xLo = std::min(xLo, x);
        xHi = std::max(xHi, x);
        yLo = std::min(yLo, y);
        yHi = std::max(yHi, y);
    }
};

void TradeoffView::rebuild() {
    m_plot->clearPlottables();
    m_currentPoints.clear();
    m_paretoCount = 0;
    m_guideCount = 0;
    m_whiskerCount = 0;
    m_degenerateCount = 0;
    const Metric metric = this->metric();
    m_plot->yAxis->setLabel(metricName(metric));
    const bool haveCurves = m_sweeps && !m_sweeps->curves.empty();
    const bool haveCurrent = m_current && !m_current->runs.empty();
    const bool haveStudy = m_study && !m_study->curves.empty();
    setPlotPlaceholder(m_plot, haveCurves || haveCurrent || haveStudy
                                   ? QString()
                                   : tr("Trade-off curves appear once a scheme has been swept."));
    Bounds bounds;
    if (m_baseline)
        drawCurves(*m_baseline, metric, true, bounds);
    QStringList boundNotes;
    if (haveCurves) {
        drawCurves(*m_sweeps, metric, false, bounds);
        m_theory->setEnabled(metric == Metric::ContextError); // the theory speaks of that error
        if (metric == Metric::ContextError && m_theory->isChecked())
            boundNotes = drawTheory(bounds);
        drawParetoFront(metric);
    }
    const QStringList studyNotes = haveStudy ? drawStudy(metric, bounds) : QStringList();
    // After every curve and the study: the rings sit over the markers they flag.
    const QStringList degenerateNotes = drawDegenerate(metric);
    QStringList summary = haveCurrent ? drawCurrent(metric, bounds) : QStringList();
    summary << studyNotes << degenerateNotes;
    if (bounds.xHi > 0) {
        m_plot->xAxis->setRange(bounds.xLo / 1.6, bounds.xHi * 1.6);
        m_plot->yAxis->setRange(bounds.yLo / 2.0, bounds.yHi * 2.0);
    }
    summary << boundNotes;
    if (haveCurves && m_streaming->isChecked() && !m_sweeps->streamingRefused.isEmpty())
        summary
            << tr("Cannot stream: %1").arg(m_sweeps->streamingRefused.join(QStringLiteral("; ")));
    m_summary->setText(summary.join(QStringLiteral("  \u00b7  ")));
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void TradeoffView::drawCurves(const SweepData& sweeps, Metric metric, bool baseline,
                              Bounds& bounds) {
    for (const TradeoffCurve& curve : sweeps.curves) {
        QCPGraph* g = m_plot->addGraph();
        QColor color = colourOf(curve.colorIndex, curve.family);
        if (baseline)
            color.setAlpha(110);
        QPen pen(color, baseline ? 1.2 : curve.streaming ? 1.5 : 1.8);
        // Streaming curves dotted with hollow markers beside their post-prefill twin (same
        // colour and marker shape); pinned ones dashed and faded.
        pen.setStyle(baseline          ? Qt::DashLine
                     : curve.streaming ? Qt::DotLine
                                       : categoricalDash(curve.colorIndex));
        g->setPen(pen);
        g->setScatterStyle(QCPScatterStyle(categoricalShape(curve.colorIndex), color,
                                           baseline || curve.streaming ? Qt::white : color, 6));
        // The family first, as the Schemes dock labels it: families meet on this chart.
        // A chain's name joins its stages' names: elided in the middle so the legend stays
        // inside the plot (the summary line and the exported CSV keep it whole).
        constexpr int kLegendNameChars = 64;
        QString shown = curve.displayName;
        if (shown.size() > kLegendNameChars)
            shown = shown.left(kLegendNameChars / 2 - 1) + QStringLiteral("\u2026") +
                    shown.right(kLegendNameChars / 2 - 1);
        const QString label =
            curve.family.isEmpty() ? shown : tr("%1 \u00B7 %2").arg(curve.family, shown);
        QString name = baseline ? tr("%1 (pinned)").arg(label) : label;
        if (curve.streaming)
            name = tr("%1 (streaming)").arg(name);
        const auto m = static_cast<std::size_t>(metric);
        if (!baseline && std::isfinite(curve.slope[m]))
            name += tr("  — %1 ∝ tokens^%2 (R² %3)")
                        .arg(metricCsvColumn(metric))
                        .arg(curve.slope[m], 0, 'f', 2)
                        .arg(curve.slopeR2[m], 0, 'f', 2);
        g->setName(name);
        QVector<double> xs;
        QVector<double> ys;
        for (const CurvePoint& p : curve.points) {
            const auto [x, y] = chartPoint(p.result, metric);
            if (!plottable(x, y))
                continue;
            xs << x;
            ys << y;
            bounds.extend(x, y);
        }
        g->setData(xs, ys); // sorted by bytes
    }
}

QStringList TradeoffView::drawStudy(Metric metric, Bounds& bounds) {
    const auto m = static_cast<std::size_t>(metric);
    int drawn = 0;
    for (const StudyCurveData& curve : m_study->curves) {
        QVector<double> xs, ys, below, above;
        for (const StudyPointData& p : curve.points) {
            const double y = p.mean[m];
            if (!plottable(p.bytes, y))
                continue;
            xs << p.bytes;
            ys << y;
            // Log axes cannot show a bound at or below zero: such a whisker reaches down to a
            // tenth of the mean (the CSV keeps the true bound).
            const double lo = std::isfinite(p.lower[m]) && p.lower[m] > 0 ? p.lower[m] : y / 10;
            const double hi = std::isfinite(p.upper[m]) ? p.upper[m] : y;
            below << y - lo;
            above << hi - y;
            bounds.extend(p.bytes, lo);
            bounds.extend(p.bytes, hi);
        }
        if (xs.isEmpty())
            continue;
        // A scheme the live analysis also shows keeps its colour; the others take colours after
        // the live curves', so that one colour never names two schemes.
        int colorIndex =
            curve.colorIndex + (m_sweeps ? static_cast<int>(m_sweeps->curves.size()) : 0);
        if (m_sweeps)
            for (const TradeoffCurve& live : m_sweeps->curves)
                if (live.schemeId == curve.schemeId)
                    colorIndex = live.colorIndex;
        const QColor color = colourOf(colorIndex, curve.family);
        QCPGraph* g = m_plot->addGraph();
        g->setPen(QPen(color, 1.4, Qt::DashDotLine));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDiamond, color, color, 7));
        const QString label = curve.family.isEmpty()
                                  ? curve.displayName
                                  : tr("%1 \u00B7 %2").arg(curve.family, curve.displayName);
        // The legend stays short; the summary line names the prompts and seeds in full.
        g->setName(
            tr("%1 \u2014 mean of %2 prompts, 95% interval").arg(label).arg(m_study->prompts));
        g->setData(xs, ys);
        auto* whiskers = new QCPErrorBars(m_plot->xAxis, m_plot->yAxis);
        whiskers->removeFromLegend();
        whiskers->setDataPlottable(g);
        whiskers->setErrorType(QCPErrorBars::etValueError);
        whiskers->setPen(QPen(color, 1.2));
        whiskers->setWhiskerWidth(7);
        whiskers->setData(below, above);
        m_whiskerCount += static_cast<int>(xs.size());
        ++drawn;
    }
    if (drawn == 0)
        return {tr("The prompt-set study (%1) reports next-token KL and the head output error "
                   "with intervals: choose one of them to see it")
                    .arg(m_study->title)};
    return {tr("Prompt-set study: %1, whiskers = 95% Student-t interval over prompts")
                .arg(m_study->title)};
}

QStringList TradeoffView::drawTheory(Bounds& bounds) {
    QStringList boundNotes;
    for (const TradeoffCurve& curve : m_sweeps->curves) {
        if (std::isfinite(curve.theorySlope) && plottable(curve.guideX0, curve.guideY0) &&
            plottable(curve.guideX1, curve.guideY1)) {
            QCPGraph* g = m_plot->addGraph();
            g->setName(curve.theoryLabel);
            QColor color = colourOf(curve.colorIndex, curve.family);
            g->setPen(QPen(color, 1.4, Qt::DotLine));
            g->setData(QVector<double>{curve.guideX0, curve.guideX1},
                       QVector<double>{curve.guideY0, curve.guideY1});
            bounds.extend(curve.guideX1, curve.guideY1);
            ++m_guideCount;
        }
        if (curve.showCoresetBound && std::isfinite(curve.boundTokens))
            boundNotes
                << tr("%1: the coreset bound asks for about %2 tokens (an order of "
                      "magnitude) at ρ_eff %3 for the worst probe query's error with %4 kept")
                       .arg(curve.displayName)
                       .arg(orderOfMagnitude(curve.boundTokens))
                       .arg(curve.boundRho, 0, 'f', 1)
                       .arg(curve.boundKeptTokens, 0, 'f', 0);
    }
    return boundNotes;
}

void TradeoffView::drawParetoFront(Metric metric) {
    const auto& front = m_sweeps->paretoFront[static_cast<std::size_t>(metric)];
    if (front.empty())
        return;
    QCPGraph* g = m_plot->addGraph();
    g->setName(tr("Pareto front"));
    QPen pen(isDarkPalette() ? QColor(0xDD, 0xDD, 0xDD) : QColor(0x33, 0x33, 0x33), 1.2,
             Qt::DashLine);
    g->setPen(pen);
    g->setLineStyle(QCPGraph::lsStepLeft);
    QVector<double> xs;
    QVector<double> ys;
    for (const CurvePointRef& ref : front) {
        const TradeoffCurve& curve = m_sweeps->curves.at(static_cast<std::size_t>(ref.curve));
        const auto [x, y] =
            chartPoint(curve.points.at(static_cast<std::size_t>(ref.point)).result, metric);
        xs << x;
        ys << y;
    }
    g->setData(xs, ys);
    m_paretoCount = static_cast<int>(xs.size());
}

// A degenerate budget left the scheme nothing to choose: the point measures sinks + window, not
// the scheme. It stays on its curve (it is what that setting runs) but is drawn as a hollow grey
// ring over the curve's marker, named once in the legend, and explained in the summary and the
// point's tooltip; core leaves it out of the fitted slope.
QStringList TradeoffView::drawDegenerate(Metric metric) {
    QVector<double> xs, ys;
    QString example;
    for (const SweepData* sweeps : {m_sweeps.get(), m_baseline.get()}) {
        if (!sweeps)
            continue;
        for (const TradeoffCurve& curve : sweeps->curves)
            for (const CurvePoint& p : curve.points) {
                if (p.result.degenerateHeads == 0)
                    continue;
                const auto [x, y] = chartPoint(p.result, metric);
                if (!plottable(x, y))
                    continue;
                xs << x;
                ys << y;
                if (example.isEmpty())
                    example = tr("%1 at %2 = %3: %4")
                                  .arg(curve.displayName, curve.parameter)
                                  .arg(p.value, 0, 'g', 3)
                                  .arg(QString::fromStdString(p.result.degenerate));
            }
    }
    // A study's points where the budget was degenerate on any prompt, at the study's means.
    if (m_study)
        for (const StudyCurveData& curve : m_study->curves)
            for (const StudyPointData& p : curve.points) {
                const double y = p.mean[static_cast<std::size_t>(metric)];
                if (p.degeneratePrompts == 0 || !plottable(p.bytes, y))
                    continue;
                xs << p.bytes;
                ys << y;
                if (example.isEmpty())
                    example = tr("%1 at %2 = %3 (study, %4 of %5 prompts): %6")
                                  .arg(curve.displayName, curve.parameter)
                                  .arg(p.value, 0, 'g', 3)
                                  .arg(p.degeneratePrompts)
                                  .arg(p.prompts)
                                  .arg(p.degenerateReason);
            }
    if (xs.isEmpty())
        return {};
    const QColor ring = isDarkPalette() ? QColor(0xB0, 0xB0, 0xB0) : QColor(0x80, 0x80, 0x80);
    const QBrush inside = m_plot->axisRect()->backgroundBrush().style() != Qt::NoBrush
                              ? m_plot->axisRect()->backgroundBrush()
                              : QBrush(Qt::white);
    QCPGraph* g = m_plot->addGraph();
    g->setProperty("kvsDegenerate", true);
    g->setName(tr("degenerate budget: the scheme chooses nothing (sinks + window run)"));
    g->setLineStyle(QCPGraph::lsNone);
    g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(ring, 1.6), inside, 10));
    g->setData(xs, ys);
    m_degenerateCount = static_cast<int>(xs.size());
    const QString count =
        m_degenerateCount == 1
            ? tr("hollow grey: 1 point at a degenerate budget, left out of the slopes")
            : tr("hollow grey: %1 points at a degenerate budget, left out of the slopes")
                  .arg(m_degenerateCount);
    return {count + QStringLiteral(" \u2014 ") + example};
}

QString TradeoffView::pointToolTip(const QPointF& pixel) const {
    const Metric metric = this->metric();
    double best = 8.0 * 8.0; // pixels²
    const TradeoffCurve* bestCurve = nullptr;
    const CurvePoint* bestPoint = nullptr;
    for (const SweepData* sweeps : {m_sweeps.get(), m_baseline.get()}) {
        if (!sweeps)
            continue;
        for (const TradeoffCurve& curve : sweeps->curves)
            for (const CurvePoint& p : curve.points) {
                const auto [x, y] = chartPoint(p.result, metric);
                if (!plottable(x, y))
                    continue;
                const double dx = m_plot->xAxis->coordToPixel(x) - pixel.x();
                const double dy = m_plot->yAxis->coordToPixel(y) - pixel.y();
                if (dx * dx + dy * dy < best) {
                    best = dx * dx + dy * dy;
                    bestCurve = &curve;
                    bestPoint = &p;
                }
            }
    }
    if (!bestPoint)
        return {};
    const auto [x, y] = chartPoint(bestPoint->result, metric);
    QString text = tr("%1 at %2 = %3\n%4 B (%5% of fp16), %6 %7")
                       .arg(bestCurve->displayName, bestCurve->parameter)
                       .arg(bestPoint->value, 0, 'g', 4)
                       .arg(x, 0, 'f', 0)
                       .arg(100.0 * bestPoint->result.memoryFraction, 0, 'f', 1)
                       .arg(metricCsvColumn(metric))
                       .arg(y, 0, 'g', 3);
    if (bestPoint->result.degenerateHeads > 0)
        text += tr("\nDegenerate budget on %1 of %2 heads: %3. What runs is sinks + window, not "
                   "the scheme's own choice.")
                    .arg(bestPoint->result.degenerateHeads)
                    .arg(bestPoint->result.heads.size())
                    .arg(QString::fromStdString(bestPoint->result.degenerate));
    return text;
}

bool TradeoffView::eventFilter(QObject* watched, QEvent* event) {
    if (watched == m_plot && event->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(event);
        const QString text = pointToolTip(help->pos());
        if (!text.isEmpty()) {
            QToolTip::showText(help->globalPos(), text, m_plot);
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}

QStringList TradeoffView::drawCurrent(Metric metric, Bounds& bounds) {
    QStringList summary;
    for (const SchemeRun& run : m_current->runs) {
        if (!run.error.isEmpty()) { // no point, but its slot keeps the runs' indices
            m_currentPoints.emplace_back(std::numeric_limits<double>::quiet_NaN(),
                                         std::numeric_limits<double>::quiet_NaN());
            summary << refusedText(run);
            continue;
        }
        const auto [x, y] = chartPoint(run.eval, metric);
        m_currentPoints.emplace_back(x, y);
        summary << QStringLiteral("%1: %2 B (%3% of fp16), %4")
                           .arg(run.displayName)
                           .arg(x, 0, 'f', 0)
                           .arg(100.0 * run.eval.memoryFraction, 0, 'f', 1)
                           .arg(metricValue(run.eval, metric), 0, 'g', 3) +
                       (run.eval.degenerateHeads > 0
                            ? tr(" (degenerate budget: %1)")
                                  .arg(QString::fromStdString(run.eval.degenerate))
                            : QString());
        if (!plottable(x, y))
            continue;
        QCPGraph* g = m_plot->addGraph();
        g->setName(tr("%1 (current)").arg(run.displayName));
        g->setLineStyle(QCPGraph::lsNone);
        const QColor color = colourOf(run.colorIndex, run.family);
        // Filled marker with a contrasting outline (a "disc" would take the pen's colour).
        QCPScatterStyle::ScatterShape shape = categoricalShape(run.colorIndex);
        if (shape == QCPScatterStyle::ssDisc)
            shape = QCPScatterStyle::ssCircle;
        // A cross has no inside to fill: it is drawn in the scheme's colour, thicker.
        const bool outlineOnly = shape == QCPScatterStyle::ssCross;
        g->setScatterStyle(QCPScatterStyle(
            shape,
            outlineOnly ? QPen(color, 3.0) : QPen(isDarkPalette() ? Qt::white : Qt::black, 1.5),
            QBrush(color), 15));
        g->setData(QVector<double>{x}, QVector<double>{y});
        g->removeFromLegend();
        bounds.extend(x, y);
    }
    return summary;
}

void TradeoffView::pickAt(QMouseEvent* event) {
    if (!m_sweeps)
        return;
    const Metric metric = this->metric();
    const QPointF pos = event->position();
    double best = 24.0 * 24.0; // pixels²
    const TradeoffCurve* bestCurve = nullptr;
    double bestValue = 0.0;
    for (const TradeoffCurve& curve : m_sweeps->curves) {
        for (const CurvePoint& p : curve.points) {
            const auto [x, y] = chartPoint(p.result, metric);
            if (!plottable(x, y))
                continue;
            const double dx = m_plot->xAxis->coordToPixel(x) - pos.x();
            const double dy = m_plot->yAxis->coordToPixel(y) - pos.y();
            if (dx * dx + dy * dy < best) {
                best = dx * dx + dy * dy;
                bestCurve = &curve;
                bestValue = p.value;
            }
        }
    }
    if (bestCurve)
        emit pointPicked(bestCurve->baseSetting, bestCurve->parameter, bestValue);
}

CsvTable TradeoffView::csv() const {
    // Every metric, the headline first (kvs/metrics.h order), whatever the chart shows.
    CsvTable t{csvColumns("scheme,parameter,value,bytes,memory_fraction")};
    for (int m = 0; m < kMetricCount; ++m)
        t.header << metricCsvColumn(static_cast<Metric>(m));
    t.header << QStringLiteral("pinned") << QStringLiteral("degenerate") << QStringLiteral("mode");
    const auto add = [&](const SweepData& s, bool pinned) {
        for (const TradeoffCurve& c : s.curves)
            for (const CurvePoint& p : c.points) {
                QStringList row = {QString::fromStdString(p.result.scheme), c.parameter,
                                   QString::number(p.value, 'g', 8),
                                   QString::number(static_cast<qulonglong>(p.result.bytes.total())),
                                   QString::number(p.result.memoryFraction, 'g', 8)};
                for (int m = 0; m < kMetricCount; ++m)
                    row << QString::number(metricValue(p.result, static_cast<Metric>(m)), 'g', 8);
                row << (pinned ? QStringLiteral("1") : QStringLiteral("0"))
                    << QString::fromStdString(p.result.degenerate)
                    << (p.result.mode == kvs::EvalMode::Streaming
                            ? QStringLiteral("streaming")
                            : QStringLiteral("post-prefill")); // kvs::evalModeName's words
                t.rows.push_back(std::move(row));
            }
    };
    if (m_sweeps)
        add(*m_sweeps, false);
    if (m_baseline)
        add(*m_baseline, true);
    if (m_study) {
        // The study's points: the means in the metric columns, and each reported metric's
        // interval bounds in columns of their own.
        for (const Metric m : kStudyMetrics)
            t.header << metricCsvColumn(m) + QStringLiteral("_lower")
                     << metricCsvColumn(m) + QStringLiteral("_upper");
        t.header << QStringLiteral("prompts");
        for (QStringList& row : t.rows)
            for (int i = 0; i < 5; ++i)
                row << QString();
        for (const StudyCurveData& c : m_study->curves)
            for (const StudyPointData& p : c.points) {
                QStringList row = {c.setting, c.parameter, QString::number(p.value, 'g', 8),
                                   QString::number(p.bytes, 'g', 8), QString()};
                for (int m = 0; m < kMetricCount; ++m)
                    row << (std::isfinite(p.mean[static_cast<std::size_t>(m)])
                                ? QString::number(p.mean[static_cast<std::size_t>(m)], 'g', 8)
                                : QString());
                row << QStringLiteral("0") // not pinned; the prompts column marks study rows
                    << (p.degeneratePrompts > 0 ? QStringLiteral("%1 of %2 prompts: %3")
                                                      .arg(p.degeneratePrompts)
                                                      .arg(p.prompts)
                                                      .arg(p.degenerateReason)
                                                : QString())
                    << QString();
                for (const Metric m : kStudyMetrics)
                    row << QString::number(p.lower[static_cast<std::size_t>(m)], 'g', 8)
                        << QString::number(p.upper[static_cast<std::size_t>(m)], 'g', 8);
                row << QString::number(p.prompts);
                t.rows.push_back(std::move(row));
            }
    }
    return t;
}

std::vector<ChartHandle> TradeoffView::charts() const {
    return {{QStringLiteral("tradeoff"), m_plot, [this] { return csv(); }}};
}

} // namespace kvs::views

namespace kvs::views {

QString TradeoffView::statusText() const {
    return m_status->fullText();
}

void TradeoffView::sweepsChanged(const std::shared_ptr<const SweepData>& sweeps) {
    setStatusText(tr("%1 curves, swept in %2 ms (CPU reference backend)")
                      .arg(sweeps->curves.size())
                      .arg(sweeps->computeMilliseconds, 0, 'f', 0));
    setCurves(sweeps);
}

void TradeoffView::jobStarted(StudioJob job) {
    if (job == StudioJob::Sweep)
        setStatusText(tr("sweeping budgets\u2026"));
}

void TradeoffView::jobFailed(StudioJob job, const QString& message) {
    // The curves belong to the sweep (the model-level metrics to the quality pass): the message
    // stands where they would be.
    if (job == StudioJob::Sweep)
        setCurves(nullptr);
    if (job == StudioJob::Sweep || job == StudioJob::Quality)
        setStatusText(message);
}

} // namespace kvs::views
