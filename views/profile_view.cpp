// SPDX-License-Identifier: MIT
// The Profile view.
#include "profile_view.h"

#include "plot_style.h"

#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <qcustomplot.h>

namespace kvs::views {

namespace {

// A table item that sorts by number.
class NumberItem : public QTableWidgetItem {
public:
    NumberItem(double value, const QString& text) : QTableWidgetItem(text), m_value(value) {
        setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    }
    bool operator<(const QTableWidgetItem& other) const override {
        if (const auto* n = dynamic_cast<const NumberItem*>(&other))
            return m_value < n->m_value;
        return QTableWidgetItem::operator<(other);
    }

private:
    double m_value;
};

double gbPerSecond(const DispatchTiming& t) {
    return t.microseconds > 0
               ? static_cast<double>(t.bytesRead + t.bytesWritten) / (t.microseconds * 1e3)
               : 0.0;
}

} // namespace

ProfileView::ProfileView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("profileView"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_device = new QLabel(this);
    m_device->setObjectName(QStringLiteral("profileDevice"));
    m_device->setWordWrap(true);
    m_summary = new QLabel(this);
    m_summary->setObjectName(QStringLiteral("profileSummary"));
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_device);
    layout->addWidget(m_summary);
    auto* split = new QSplitter(Qt::Vertical, this);
    m_table = new QTableWidget(split);
    m_table->setObjectName(QStringLiteral("profileTable"));
    m_table->setColumnCount(6);
    m_table->setHorizontalHeaderLabels({tr("layer"), tr("kernel"), tr("time (\u00b5s)"),
                                        tr("read (bytes)"), tr("written (bytes)"), tr("GB/s")});
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSortingEnabled(true);
    m_table->verticalHeader()->setVisible(false);
    m_plot = new QCustomPlot(split);
    m_plot->setObjectName(QStringLiteral("profileBars"));
    m_plot->setBufferDevicePixelRatio(m_plot->devicePixelRatioF());
    m_plot->yAxis->setLabel(tr("time per dispatch (\u00b5s)"));
    m_plot->xAxis->setLabel(tr("dispatch (layer: kernel)"));
    m_bars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
    m_bars->setName(tr("current"));
    m_bars->setPen(Qt::NoPen);
    m_bars->setBrush(categoricalColor(0));
    m_bars->setWidth(0.4);
    m_baselineBars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
    m_baselineBars->setName(tr("pinned baseline"));
    m_baselineBars->setPen(Qt::NoPen);
    m_baselineBars->setBrush(QColor(0x99, 0x99, 0x99));
    m_baselineBars->setWidth(0.4);
    m_plot->legend->setVisible(true);

    m_scalingPlot = new QCustomPlot(split);
    m_scalingPlot->setObjectName(QStringLiteral("profileScaling"));
    m_scalingPlot->setBufferDevicePixelRatio(m_scalingPlot->devicePixelRatioF());
    m_scalingPlot->plotLayout()->insertRow(0);
    m_scalingTitle = new QCPTextElement(m_scalingPlot, tr("time against context length"));
    m_scalingPlot->plotLayout()->addElement(0, 0, m_scalingTitle);
    m_scalingPlot->xAxis->setLabel(tr("context tokens"));
    m_scalingPlot->yAxis->setLabel(tr("probe attention, all layers (\u00b5s)"));
    for (QCPAxis* axis : {m_scalingPlot->xAxis, m_scalingPlot->yAxis}) {
        axis->setScaleType(QCPAxis::stLogarithmic);
        axis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    }
    // The legend below the axes, one row per setting (device | wall): the curves rise from
    // bottom left to top right, where an inset legend would hide them.
    QCPLegend* legend = m_scalingPlot->legend;
    legend->setVisible(true);
    m_scalingPlot->axisRect()->insetLayout()->take(legend);
    m_scalingPlot->plotLayout()->addElement(2, 0, legend);
    m_scalingPlot->plotLayout()->setRowStretchFactor(2, 0.001);
    legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    legend->setWrap(2);
    legend->setMargins(QMargins(4, 2, 4, 2));

    split->addWidget(m_table);
    split->addWidget(m_plot);
    split->addWidget(m_scalingPlot);
    split->setSizes({200, 220, 380});
    layout->addWidget(split, 1);
    applyTheme();
    clear(tr("Timings appear once attention has run on the backend."));
}

void ProfileView::applyTheme() {
    retheme({m_plot, m_scalingPlot});
}

void ProfileView::clear(const QString& placeholder) {
    m_data.reset();
    m_table->setRowCount(0);
    m_bars->data()->clear();
    m_baselineBars->data()->clear();
    m_device->setText(placeholder);
    m_summary->clear();
    setPlotPlaceholder(m_plot, placeholder);
    m_plot->replot();
    m_scalingStatus.clear();
    setScaling(nullptr);
}

void ProfileView::setScaling(std::shared_ptr<const ScalingData> scaling) {
    m_scaling = std::move(scaling);
    rebuildScaling();
}

void ProfileView::setScalingStatus(const QString& text) {
    m_scalingStatus = text;
    rebuildScaling();
}

QString ProfileView::scalingTitle() const {
    return m_scalingTitle->text();
}

void ProfileView::rebuildScaling() {
    m_scalingPlot->clearGraphs();
    QString title = tr("time against context length");
    if (!m_scaling) {
        setPlotPlaceholder(m_scalingPlot,
                           m_scalingStatus.isEmpty()
                               ? tr("Time against context length appears once attention has run "
                                    "on the backend.")
                               : m_scalingStatus);
        m_scalingTitle->setText(title);
        m_scalingPlot->replot(QCustomPlot::rpQueuedReplot);
        return;
    }
    const ScalingData& d = *m_scaling;
    title += QStringLiteral(" \u2014 ") + d.backendName;
    if (d.backendIsGpu && d.cpuEmulation)
        title += tr(" (a CPU emulation of a GPU)");
    else if (!d.backendIsGpu)
        title += tr(" (the CPU reference: no GPU)");
    if (!m_scalingStatus.isEmpty())
        title += QStringLiteral(" \u2014 ") + m_scalingStatus;
    title += QLatin1Char('\n') +
             (d.backendIsGpu
                  ? tr("probe attention of every layer, %1 probe queries per head, median of %2 "
                       "runs; solid: device timestamps, dashed: wall clock")
                  : tr("probe attention of every layer, %1 probe queries per head, median of %2 "
                       "runs; wall clock only"))
                 .arg(d.probeTokens)
                 .arg(d.repeats);
    m_scalingTitle->setText(title);
    // Names: the scheme's name, or the whole setting where two settings share a scheme.
    const auto nameOf = [&](const ScalingSeries& series) {
        for (const ScalingSeries& other : d.series)
            if (&other != &series && other.displayName == series.displayName)
                return series.setting;
        return series.displayName;
    };
    double lo = 0, hi = 0, xlo = 0, xhi = 0;
    const auto extend = [](double& a, double& b, double v) {
        a = a > 0 ? std::min(a, v) : v;
        b = std::max(b, v);
    };
    for (const ScalingSeries& series : d.series) {
        const QColor color = categoricalColor(series.colorIndex);
        const auto shape = categoricalShape(series.colorIndex);
        QVector<double> x, device, wx, wall;
        for (const ScalingPoint& p : series.points) {
            if (p.contextTokens <= 0)
                continue;
            if (d.backendIsGpu && p.deviceMicroseconds > 0) {
                x << p.contextTokens;
                device << p.deviceMicroseconds;
                extend(lo, hi, p.deviceMicroseconds);
                extend(xlo, xhi, p.contextTokens);
            }
            if (p.wallMicroseconds > 0) {
                wx << p.contextTokens;
                wall << p.wallMicroseconds;
                extend(lo, hi, p.wallMicroseconds);
                extend(xlo, xhi, p.contextTokens);
            }
        }
        const QString name = nameOf(series);
        if (!x.isEmpty()) {
            QCPGraph* g = m_scalingPlot->addGraph();
            g->setName(tr("%1, device").arg(name));
            g->setPen(QPen(color, 2));
            g->setScatterStyle(QCPScatterStyle(shape, color, color, 7));
            g->setData(x, device, true);
        }
        if (!wx.isEmpty()) {
            QCPGraph* g = m_scalingPlot->addGraph();
            g->setName(tr("%1, wall").arg(name));
            g->setPen(QPen(color, 1.5, Qt::DashLine));
            g->setScatterStyle(QCPScatterStyle(shape, color, Qt::NoBrush, 7));
            g->setData(wx, wall, true);
        }
    }
    if (hi <= 0) {
        setPlotPlaceholder(m_scalingPlot, m_scalingStatus.isEmpty()
                                              ? tr("No timings at any context length.")
                                              : m_scalingStatus);
    } else {
        setPlotPlaceholder(m_scalingPlot, QString());
        m_scalingPlot->xAxis->setRange(xlo / 1.3, xhi * 1.3);
        m_scalingPlot->yAxis->setRange(lo / 1.6, hi * 1.6);
    }
    m_scalingPlot->replot(QCustomPlot::rpQueuedReplot);
}

void ProfileView::setData(std::shared_ptr<const AnalysisData> analysis, int runIndex) {
    if (!analysis || runIndex < 0 || runIndex >= static_cast<int>(analysis->runs.size())) {
        clear(tr("No results yet."));
        return;
    }
    if (const SchemeRun& run = analysis->runs[static_cast<std::size_t>(runIndex)];
        !run.error.isEmpty()) {
        clear(refusedText(run));
        return;
    }
    m_data = std::move(analysis);
    m_run = runIndex;
    rebuild();
}

void ProfileView::setBaseline(std::shared_ptr<const AnalysisData> baseline, int runIndex) {
    m_baseline = std::move(baseline);
    m_baselineRun = runIndex;
    if (m_data)
        rebuild();
}

void ProfileView::rebuild() {
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    QString device;
    if (m_data->timingsPending)
        device = tr("<b>The attention backend is still starting</b> (Vulkan device discovery "
                    "and shader compilation); timings appear with the next update.");
    else if (!m_data->backendIsGpu)
        device = tr("<b>CPU reference backend</b> (%1): no GPU dispatches; the times below are "
                    "wall-clock times of the CPU attention.")
                     .arg(m_data->backendName.toHtmlEscaped());
    else if (m_data->cpuEmulation)
        device = tr("<b>%1 is a CPU emulation of a GPU</b> (Vulkan on the CPU). Dispatch times "
                    "and GB/s are real measurements of this emulation and say nothing about a "
                    "real GPU.")
                     .arg(m_data->backendName.toHtmlEscaped());
    else
        device = tr("<b>%1</b>: Vulkan timestamp queries around each dispatch.")
                     .arg(m_data->backendName.toHtmlEscaped());
    device += tr(" The per-dispatch table times the probe queries attending to each layer's "
                 "compressed context; the metrics and maps come from %1.")
                  .arg(m_data->evaluationBackend.toHtmlEscaped());
    m_device->setText(device);

    m_table->setSortingEnabled(false);
    m_table->setRowCount(static_cast<int>(run.dispatches.size()));
    QVector<double> x;
    QVector<double> y;
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    double totalUs = 0;
    std::size_t totalBytes = 0;
    for (std::size_t i = 0; i < run.dispatches.size(); ++i) {
        const DispatchTiming& t = run.dispatches[i];
        const int layer = i < run.dispatchLayer.size() ? run.dispatchLayer[i] : -1;
        const int row = static_cast<int>(i);
        m_table->setItem(row, 0, new NumberItem(layer, QString::number(layer)));
        m_table->setItem(row, 1, new QTableWidgetItem(QString::fromStdString(t.kernel)));
        m_table->setItem(row, 2,
                         new NumberItem(t.microseconds, QString::number(t.microseconds, 'f', 1)));
        m_table->setItem(row, 3,
                         new NumberItem(static_cast<double>(t.bytesRead),
                                        QString::number(static_cast<qulonglong>(t.bytesRead))));
        m_table->setItem(row, 4,
                         new NumberItem(static_cast<double>(t.bytesWritten),
                                        QString::number(static_cast<qulonglong>(t.bytesWritten))));
        const double gbs = gbPerSecond(t);
        m_table->setItem(row, 5, new NumberItem(gbs, QString::number(gbs, 'f', 2)));
        x << static_cast<double>(i) - 0.2;
        y << t.microseconds;
        ticker->addTick(static_cast<double>(i),
                        QStringLiteral("L%1: %2").arg(layer).arg(QString::fromStdString(t.kernel)));
        totalUs += t.microseconds;
        totalBytes += t.bytesRead + t.bytesWritten;
    }
    m_table->setSortingEnabled(true);
    m_bars->setData(x, y, true);
    QVector<double> bx;
    QVector<double> by;
    if (m_baseline && m_baselineRun >= 0 &&
        m_baselineRun < static_cast<int>(m_baseline->runs.size())) {
        const SchemeRun& b = m_baseline->runs[static_cast<std::size_t>(m_baselineRun)];
        for (std::size_t i = 0; i < b.dispatches.size(); ++i) {
            bx << static_cast<double>(i) + 0.2;
            by << b.dispatches[i].microseconds;
        }
    }
    m_baselineBars->setData(bx, by, true);
    m_baselineBars->setVisible(!bx.isEmpty());
    if (bx.isEmpty())
        m_baselineBars->removeFromLegend();
    else
        m_baselineBars->addToLegend();
    m_plot->xAxis->setTicker(ticker);
    m_plot->xAxis->setTickLabelRotation(run.dispatches.size() > 6 ? 50 : 0);
    double top = 1;
    for (double v : y)
        top = std::max(top, v);
    for (double v : by)
        top = std::max(top, v);
    m_plot->xAxis->setRange(-0.8,
                            std::max<double>(1, static_cast<double>(run.dispatches.size())) - 0.2);
    m_plot->yAxis->setRange(0, top * 1.15);
    setPlotPlaceholder(m_plot,
                       run.dispatches.empty()
                           ? tr("No per-dispatch timings: the backend is the CPU reference.")
                           : QString());
    m_plot->replot(QCustomPlot::rpQueuedReplot);

    const double achieved = totalUs > 0 ? static_cast<double>(totalBytes) / (totalUs * 1e3) : 0.0;
    QString summary =
        tr("%1: %2 dispatches, %3 \u00b5s on the device (wall %4 \u00b5s), %5 GB/s achieved")
            .arg(run.displayName)
            .arg(run.dispatches.size())
            .arg(totalUs, 0, 'f', 1)
            .arg(run.attendWallMicroseconds, 0, 'f', 0)
            .arg(achieved, 0, 'f', 2);
    if (m_data->deviceBandwidthGBs > 0)
        summary += tr(" = %1% of the %2 GB/s the copy kernel reaches on this device")
                       .arg(100.0 * achieved / m_data->deviceBandwidthGBs, 0, 'f', 0)
                       .arg(m_data->deviceBandwidthGBs, 0, 'f', 1);
    summary += tr("; CPU time of compressing every head: %1 ms")
                   .arg(run.eval.compressMilliseconds, 0, 'f', 2);
    m_summary->setText(summary);
}

QString ProfileView::deviceText() const {
    return m_device->text();
}

QString ProfileView::summaryText() const {
    return m_summary->text();
}

CsvTable ProfileView::csv() const {
    CsvTable t{csvColumns("layer,kernel,microseconds,bytes_read,bytes_written,gb_per_s")};
    if (!m_data)
        return t;
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    for (std::size_t i = 0; i < run.dispatches.size(); ++i) {
        const DispatchTiming& d = run.dispatches[i];
        t.rows.push_back({QString::number(i < run.dispatchLayer.size() ? run.dispatchLayer[i] : -1),
                          QString::fromStdString(d.kernel), QString::number(d.microseconds, 'f', 3),
                          QString::number(static_cast<qulonglong>(d.bytesRead)),
                          QString::number(static_cast<qulonglong>(d.bytesWritten)),
                          QString::number(gbPerSecond(d), 'f', 3)});
    }
    return t;
}

CsvTable ProfileView::scalingCsv() const {
    CsvTable t{csvColumns("setting,scheme,context_tokens,device_microseconds,wall_microseconds,"
                          "cache_bytes,bytes_read")};
    if (!m_scaling)
        return t;
    for (const ScalingSeries& series : m_scaling->series)
        for (const ScalingPoint& p : series.points)
            t.rows.push_back({series.setting, series.displayName, QString::number(p.contextTokens),
                              QString::number(p.deviceMicroseconds, 'f', 3),
                              QString::number(p.wallMicroseconds, 'f', 3),
                              QString::number(static_cast<qulonglong>(p.cacheBytes)),
                              QString::number(static_cast<qulonglong>(p.bytesRead))});
    return t;
}

std::vector<ChartHandle> ProfileView::charts() const {
    return {{QStringLiteral("profile_dispatches"), m_plot, [this] { return csv(); }},
            {QStringLiteral("profile_scaling"), m_scalingPlot, [this] { return scalingCsv(); }}};
}

} // namespace kvs::views

namespace kvs::views {

void ProfileView::scalingChanged(const std::shared_ptr<const ScalingData>& scaling) {
    m_scalingStatus.clear();
    setScaling(scaling);
}

void ProfileView::jobStarted(StudioJob job) {
    if (job == StudioJob::Scaling)
        setScalingStatus(tr("measuring\u2026"));
}

void ProfileView::jobFailed(StudioJob job, const QString& message) {
    // Without the timing backend or the scaling job there is no time-against-length chart: say
    // why in its place.
    if (job != StudioJob::Scaling && job != StudioJob::Timing)
        return;
    m_scaling.reset();
    setScalingStatus(message);
}

} // namespace kvs::views
