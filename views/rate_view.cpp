// SPDX-License-Identifier: MIT
// The Rate view.
#include "rate_view.h"

#include "plot_style.h"

#include "kvs/metrics.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QSplitter>
#include <QVBoxLayout>
#include <cmath>
#include <qcustomplot.h>

namespace kvs::views {

namespace {

constexpr double kFp16Bits = 16.0;

// A chain's name joins its stages' names: elided in the middle to keep the legend in the plot.
QString shortName(const QString& name) {
    constexpr int kChars = 48;
    return name.size() <= kChars
               ? name
               : name.left(kChars / 2 - 1) + QStringLiteral("\u2026") + name.right(kChars / 2 - 1);
}

QString bitsText(double bits) {
    return QString::number(bits, 'f', bits < 10 ? 3 : 2);
}

} // namespace

RateView::RateView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("rateView"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_summary = new QLabel(this);
    m_summary->setObjectName(QStringLiteral("rateSummary"));
    m_summary->setWordWrap(true);
    m_summary->setTextFormat(Qt::PlainText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_summary);

    auto* split = new QSplitter(Qt::Horizontal, this);
    m_curves = new QCustomPlot(split);
    m_curves->setObjectName(QStringLiteral("rateCurves"));
    m_curves->setBufferDevicePixelRatio(m_curves->devicePixelRatioF());
    m_curves->setMinimumWidth(120);
    m_curves->xAxis->setLabel(tr("bits per element of the fp16 cache (16 = no compression)"));
    m_curves->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_curves->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_curves->legend->setVisible(true);
    // Low rates and low errors do not meet: the lower left stays free for the legend.
    m_curves->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignLeft);
    m_curves->setToolTip(
        tr("Each codec (or chain ending in one) swept over its budget: solid, the bits the cache "
           "really takes, side information included; dotted, the same points if the coded "
           "symbols cost exactly their empirical entropy. The horizontal distance is the "
           "coder's gap."));

    m_grid = new QCustomPlot(split);
    m_grid->setObjectName(QStringLiteral("rateGapGrid"));
    m_grid->setMinimumWidth(120);
    m_heat = makeLayerHeadGrid(
        m_grid, tr("gap to the entropy per head\n(bits per element, side info included)"),
        &m_gridTitle);
    split->addWidget(m_curves);
    split->addWidget(m_grid);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    split->setSizes({600, 400}); // the proportions, before the first resize applies them
    layout->addWidget(split, 1);
    applyTheme();
    clear(tr("Rate–distortion curves appear once a codec has been swept."));
}

void RateView::applyTheme() {
    retheme({m_curves, m_grid});
}

void RateView::clear(const QString& message) {
    m_analysis.reset();
    m_sweeps.reset();
    m_gapCells = 0;
    m_curves->clearPlottables();
    m_heat->data()->clear();
    m_summary->setText(message);
    setPlotPlaceholder(m_curves, message);
    setPlotPlaceholder(m_grid, QString());
    m_curves->replot();
    m_grid->replot();
}

void RateView::setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int run) {
    m_analysis = analysis;
    m_run = run;
    rebuildCurves();
    showGap();
}

void RateView::sweepsChanged(const std::shared_ptr<const SweepData>& sweeps) {
    m_sweeps = sweeps;
    rebuildCurves();
}

void RateView::jobFailed(StudioJob job, const QString& message) {
    if (job == StudioJob::Sweep)
        setPlotPlaceholder(m_curves, message);
    m_curves->replot();
}

Metric RateView::metricFor(const kvs::EvalResult& result) const {
    return result.quality ? Metric::NextTokenKl : Metric::HeadOutputError;
}

void RateView::rebuildCurves() {
    m_curves->clearPlottables();
    double yLo = std::numeric_limits<double>::max();
    double yHi = 0;
    const auto extend = [&](double y) {
        yLo = std::min(yLo, y);
        yHi = std::max(yHi, y);
    };
    std::optional<Metric> axisMetric;
    if (m_sweeps)
        for (const TradeoffCurve& curve : m_sweeps->curves) {
            if (!curve.quantizes || curve.points.empty())
                continue;
            const Metric metric = axisMetric.value_or(metricFor(curve.points.front().result));
            axisMetric = metric;
            const QColor color = categoricalColor(curve.colorIndex);
            QVector<double> xs, ys, entropyXs, entropyYs;
            for (const CurvePoint& p : curve.points) {
                const CacheRate rate = cacheRate(p.result);
                const double y = chartPoint(p.result, metric).second;
                if (!chartPlottable(1.0, y) || !std::isfinite(rate.bitsPerElement))
                    continue;
                xs << rate.bitsPerElement;
                ys << y;
                extend(y);
                if (rate.entropyCoded() && std::isfinite(rate.atEntropyBitsPerElement)) {
                    entropyXs << rate.atEntropyBitsPerElement;
                    entropyYs << y;
                }
            }
            QCPGraph* g = m_curves->addGraph();
            g->setName(tr("%1 \u00B7 %2").arg(curve.family, shortName(curve.displayName)));
            g->setPen(QPen(color, 1.8, categoricalDash(curve.colorIndex)));
            g->setScatterStyle(
                QCPScatterStyle(categoricalShape(curve.colorIndex), color, color, 6));
            g->setData(xs, ys);
            if (!entropyXs.isEmpty()) {
                QCPGraph* e = m_curves->addGraph();
                e->setName(tr("%1 at its entropy").arg(shortName(curve.displayName)));
                e->setPen(QPen(color, 1.2, Qt::DotLine));
                e->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, color, Qt::white, 5));
                e->setData(entropyXs, entropyYs);
            }
        }
    // The current settings of the quantizing runs, as on the Trade-offs chart.
    if (m_analysis)
        for (const SchemeRun& run : m_analysis->runs) {
            if (!run.quantizes || !run.error.isEmpty())
                continue;
            const Metric metric = axisMetric.value_or(metricFor(run.eval));
            axisMetric = metric;
            const CacheRate rate = cacheRate(run.eval);
            const double y = chartPoint(run.eval, metric).second;
            if (!chartPlottable(1.0, y) || !std::isfinite(rate.bitsPerElement))
                continue;
            QCPGraph* g = m_curves->addGraph();
            g->setLineStyle(QCPGraph::lsNone);
            QCPScatterStyle::ScatterShape shape = categoricalShape(run.colorIndex);
            if (shape == QCPScatterStyle::ssDisc)
                shape = QCPScatterStyle::ssCircle;
            const QColor color = categoricalColor(run.colorIndex);
            g->setScatterStyle(
                QCPScatterStyle(shape,
                                shape == QCPScatterStyle::ssCross
                                    ? QPen(color, 3.0)
                                    : QPen(isDarkPalette() ? Qt::white : Qt::black, 1.5),
                                QBrush(color), 15));
            g->setData(QVector<double>{rate.bitsPerElement}, QVector<double>{y});
            g->removeFromLegend();
            extend(y);
        }
    const bool any = m_curves->graphCount() > 0;
    setPlotPlaceholder(m_curves,
                       any ? QString()
                           : tr("Add a codec (codec.uniform, codec.entropy) or a chain ending in "
                                "one to the Schemes dock to see its rate–distortion curve."));
    m_curves->yAxis->setLabel(metricName(axisMetric.value_or(Metric::NextTokenKl)));
    m_curves->xAxis->setRange(0.0, kFp16Bits);
    if (any && yHi > 0)
        m_curves->yAxis->setRange(yLo / 2.0, yHi * 2.0);
    m_curves->replot(QCustomPlot::rpQueuedReplot);
}

void RateView::showGap() {
    m_heat->data()->clear();
    m_gapCells = 0;
    if (!m_analysis || m_run < 0 || m_run >= static_cast<int>(m_analysis->runs.size())) {
        m_summary->setText(tr("No results yet."));
        m_grid->replot();
        return;
    }
    const SchemeRun& run = m_analysis->runs[static_cast<std::size_t>(m_run)];
    if (!run.error.isEmpty()) {
        m_summary->setText(refusedText(run).toHtmlEscaped());
        m_grid->replot();
        return;
    }
    const CacheRate total = cacheRate(run.eval);
    QString text = tr("%1: %2 bits per element of the fp16 cache (%3% of fp16)")
                       .arg(run.displayName, bitsText(total.bitsPerElement))
                       .arg(100.0 * total.bitsPerElement / kFp16Bits, 0, 'f', 1);
    if (total.entropyCoded()) {
        const double gap = total.gapBitsPerElement();
        const double coder = total.streamBitsPerElement - total.entropyBitsPerElement;
        text +=
            tr(". Entropy coded, %1 elements: %2 bits per coded element = stream %3 + side "
               "information %4 (frequency tables, a step and a centre per channel). The "
               "symbols' empirical entropy is %5: of the gap of %6 bits, %7 is the coder's "
               "own (%8 above the entropy) and %4 the side information. The GPU holds the "
               "decoded fixed-width codes (the Cache view's \u201con GPU\u201d).")
                .arg(total.codedElements)
                .arg(bitsText(total.codedBitsPerElement), bitsText(total.streamBitsPerElement),
                     bitsText(total.sideBitsPerElement), bitsText(total.entropyBitsPerElement),
                     bitsText(gap), bitsText(coder))
                .arg(total.entropyBitsPerElement > 0
                         ? QString::number(100.0 * coder / total.entropyBitsPerElement, 'f', 1) +
                               QLatin1Char('%')
                         : QStringLiteral("n/a"));
    } else if (run.quantizes) {
        text += tr(". A fixed-width codec: it spends exactly its bits and scales, no coder gap.");
    } else {
        text += tr(". Not a codec: focus a codec or a chain ending in one for its coder's gap.");
    }
    m_summary->setText(text);
    if (!total.entropyCoded()) {
        setPlotPlaceholder(m_grid, tr("The focused scheme is not entropy coded."));
        m_grid->replot();
        return;
    }
    setPlotPlaceholder(m_grid, QString());
    const int layers = std::max(1, m_analysis->layers);
    const int kvHeads = std::max(1, run.kvHeads(layers));
    QCPColorMapData* grid = m_heat->data();
    grid->setSize(kvHeads, layers);
    grid->setRange(QCPRange(0, kvHeads - 1), QCPRange(0, layers - 1));
    double lo = std::numeric_limits<double>::max();
    double hi = 0;
    for (const HeadMetrics& h : run.eval.heads) {
        const CacheRate rate = cacheRate(h);
        if (!rate.entropyCoded())
            continue;
        const double gap = rate.gapBitsPerElement();
        grid->setCell(h.kvHead, h.layer, gap);
        lo = std::min(lo, gap);
        hi = std::max(hi, gap);
        ++m_gapCells;
    }
    m_heat->setDataRange(QCPRange(std::min(lo, hi), hi > lo ? hi : lo + 1e-9));
    m_grid->xAxis->setRange(-0.5, kvHeads - 0.5);
    m_grid->yAxis->setRange(-0.5, layers - 0.5);
    m_grid->replot(QCustomPlot::rpQueuedReplot);
}

int RateView::curveCount() const {
    int n = 0;
    for (int i = 0; i < m_curves->graphCount(); ++i)
        if (m_curves->graph(i)->lineStyle() != QCPGraph::lsNone)
            ++n;
    return n;
}

QString RateView::curveName(int index) const {
    return index >= 0 && index < m_curves->graphCount() ? m_curves->graph(index)->name()
                                                        : QString();
}

QString RateView::summaryText() const {
    return m_summary->text();
}

std::vector<ChartHandle> RateView::charts() const {
    return {{QStringLiteral("rate_distortion"), m_curves, [this] { return curvesCsv(); }},
            {QStringLiteral("rate_gap_grid"), m_grid, [this] { return gapCsv(); }}};
}

CsvTable RateView::curvesCsv() const {
    CsvTable t{csvColumns("scheme,family,parameter,value,bits_per_element,"
                          "coded_bits_per_element,entropy_bits_per_element,"
                          "at_entropy_bits_per_element,kl_nats,head_output_error")};
    if (!m_sweeps)
        return t;
    const auto number = [](double v) {
        return std::isfinite(v) ? QString::number(v, 'g', 8) : QString();
    };
    for (const TradeoffCurve& curve : m_sweeps->curves) {
        if (!curve.quantizes)
            continue;
        for (const CurvePoint& p : curve.points) {
            const CacheRate r = cacheRate(p.result);
            t.rows.push_back({curve.baseSetting, curve.family, curve.parameter, number(p.value),
                              number(r.bitsPerElement), number(r.codedBitsPerElement),
                              number(r.entropyBitsPerElement), number(r.atEntropyBitsPerElement),
                              number(metricValue(p.result, Metric::NextTokenKl)),
                              number(p.result.outputError)});
        }
    }
    return t;
}

CsvTable RateView::gapCsv() const {
    CsvTable t{csvColumns("layer,kv_head,coded_bits_per_element,stream_bits_per_element,"
                          "side_bits_per_element,entropy_bits_per_element,gap_bits_per_element")};
    if (!m_analysis || m_run < 0 || m_run >= static_cast<int>(m_analysis->runs.size()))
        return t;
    for (const HeadMetrics& h : m_analysis->runs[static_cast<std::size_t>(m_run)].eval.heads) {
        const CacheRate r = cacheRate(h);
        if (!r.entropyCoded())
            continue;
        t.rows.push_back({QString::number(h.layer), QString::number(h.kvHead),
                          QString::number(r.codedBitsPerElement, 'g', 8),
                          QString::number(r.streamBitsPerElement, 'g', 8),
                          QString::number(r.sideBitsPerElement, 'g', 8),
                          QString::number(r.entropyBitsPerElement, 'g', 8),
                          QString::number(r.gapBitsPerElement(), 'g', 8)});
    }
    return t;
}

} // namespace kvs::views
