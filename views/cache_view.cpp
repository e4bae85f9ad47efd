// SPDX-License-Identifier: MIT
// The Cache view.
#include "cache_view.h"

#include "legend_placement.h"
#include "plot_style.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include <cmath>

namespace kvs::views {

namespace {

QString kib(double bytes) {
    return bytes >= 1024.0 * 1024.0 ? QStringLiteral("%1 MiB").arg(bytes / 1048576.0, 0, 'f', 2)
                                    : QStringLiteral("%1 KiB").arg(bytes / 1024.0, 0, 'f', 1);
}

} // namespace

// The bars' x labels ("L3/5": layer / KV head) without overlap, measured when QCustomPlot lays
// the axis out: at the size it draws (the window, or an export's figure) and in the axis's font.
// Every head while one label fits per bar; else every k-th head of each layer, k the smallest
// divisor of the KV heads per layer that leaves a label's width and a gap between labels, so that
// each layer's first head keeps its label; else the first head of every m-th layer. The labels
// stay horizontal; lines between the bars mark the layers.
class HeadTicker : public QCPAxisTicker {
public:
    explicit HeadTicker(QCPAxis* axis) : m_axis(axis) {}

    void setHeads(const std::vector<HeadMetrics>& heads) {
        m_heads.clear();
        m_kvHeads = 1;
        for (const HeadMetrics& h : heads) {
            m_heads.push_back(
                {h.layer, h.kvHead, QStringLiteral("L%1/%2").arg(h.layer).arg(h.kvHead)});
            m_kvHeads = std::max(m_kvHeads, h.kvHead + 1);
        }
    }

protected:
    int getSubTickCount(double) override { return 0; }

    QVector<double> createTickVector(double, const QCPRange& range) override {
        QVector<double> ticks;
        if (m_heads.empty() || range.size() <= 0)
            return ticks;
        const QFontMetricsF metrics(m_axis->tickLabelFont());
        double widest = 0;
        for (const Head& h : m_heads)
            widest = std::max(widest, metrics.horizontalAdvance(h.label));
        const double spacing = widest + 0.5 * metrics.height(); // a label and a gap
        // The axis's length at the size being drawn: the viewport, less the axis rect's margins
        // (the axis rect spans the plot's width: the legend has a row of its own).
        const QCPAxisRect* rect = m_axis->axisRect();
        const int pixels = m_axis->parentPlot()->viewport().width() - rect->margins().left() -
                           rect->margins().right();
        const double length = std::max(1.0, static_cast<double>(pixels));
        const double step = spacing / (length / range.size()); // in heads
        int every = 1;     // label heads whose kvHead % every == 0 ...
        int layerStep = 1; // ... in layers whose layer % layerStep == 0
        if (step > m_kvHeads) {
            every = m_kvHeads;
            layerStep = static_cast<int>(std::ceil(step / m_kvHeads));
        } else if (step > 1) {
            every = m_kvHeads;
            for (int k = static_cast<int>(std::ceil(step)); k < m_kvHeads; ++k)
                if (m_kvHeads % k == 0) {
                    every = k;
                    break;
                }
        }
        for (std::size_t i = 0; i < m_heads.size(); ++i)
            if (m_heads[i].kvHead % every == 0 && m_heads[i].layer % layerStep == 0)
                ticks << static_cast<double>(i);
        return ticks;
    }

    QVector<QString> createLabelVector(const QVector<double>& ticks, const QLocale&, QChar,
                                       int) override {
        QVector<QString> labels;
        for (double t : ticks) {
            const auto i = static_cast<std::size_t>(std::lround(t));
            labels << (i < m_heads.size() ? m_heads[i].label : QString());
        }
        return labels;
    }

private:
    struct Head {
        int layer;
        int kvHead;
        QString label;
    };
    QCPAxis* m_axis;
    std::vector<Head> m_heads;
    int m_kvHeads = 1;
};

CacheView::CacheView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("cacheView"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_totals = new QLabel(this);
    m_totals->setObjectName(QStringLiteral("cacheTotals"));
    m_totals->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_totals->setWordWrap(true);
    m_totals->setTextFormat(Qt::PlainText);
    layout->addWidget(m_totals);

    auto* split = new QSplitter(Qt::Vertical, this);
    m_bars = new QCustomPlot(split);
    m_bars->setObjectName(QStringLiteral("cacheBars"));
    m_bars->setBufferDevicePixelRatio(m_bars->devicePixelRatioF());
    m_bars->xAxis->setLabel(tr("layer / KV head"));
    m_bars->yAxis->setLabel(tr("bytes of the compressed context cache"));
    m_keys = new QCPBars(m_bars->xAxis, m_bars->yAxis);
    m_values = new QCPBars(m_bars->xAxis, m_bars->yAxis);
    m_meta = new QCPBars(m_bars->xAxis, m_bars->yAxis);
    const std::array<QCPBars*, 3> stack = {m_keys, m_values, m_meta};
    const std::array<QString, 3> names = {tr("keys"), tr("values"), tr("metadata")};
    for (std::size_t i = 0; i < 3; ++i) {
        stack[i]->setName(names[i]);
        stack[i]->setPen(Qt::NoPen);
        stack[i]->setBrush(categoricalColor(static_cast<int>(i)));
        stack[i]->setWidth(0.75);
    }
    m_values->moveAbove(m_keys);
    m_meta->moveAbove(m_values);
    m_fp16 = m_bars->addGraph();
    m_fp16->setName(tr("fp16 baseline"));
    m_fp16->setLineStyle(QCPGraph::lsNone);
    m_fp16->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssPeace, 0));
    QPen fp16Pen(QColor(0xD5, 0x5E, 0x00), 2);
    m_fp16->setPen(fp16Pen);
    m_fp16->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssPlus, fp16Pen, Qt::NoBrush, 14));
    m_fp16->setAdaptiveSampling(false); // a marker for every bar, however many share a pixel
    m_headTicker.reset(new HeadTicker(m_bars->xAxis));
    m_bars->xAxis->setTicker(m_headTicker);
    m_bars->xAxis->grid()->setVisible(false); // the layer lines instead
    // The legend in a row of its own above the bars, so that it covers no bar and no fp16 marker.
    m_bars->legend->setVisible(true);
    placeLegendOutside(m_bars, Qt::TopEdge, 4);

    auto* bottom = new QWidget(split);
    auto* bottomLayout = new QHBoxLayout(bottom);
    bottomLayout->setContentsMargins(0, 0, 0, 0);
    m_grid = new QCustomPlot(bottom);
    m_grid->setObjectName(QStringLiteral("cacheErrorGrid"));
    m_heat = makeLayerHeadGrid(m_grid, tr("head output error per layer and KV head"), &m_gridTitle);
    m_table = new QTableWidget(bottom);
    m_table->setObjectName(QStringLiteral("cacheTotalsTable"));
    m_table->setColumnCount(7);
    m_table->setHorizontalHeaderLabels({tr("keys"), tr("values"), tr("metadata"), tr("total"),
                                        tr("fp16"), tr("of fp16"), tr("on GPU")});
    m_table->horizontalHeaderItem(3)->setToolTip(
        tr("Bytes counted: what the compressed heads store, at the stored precision"));
    m_table->horizontalHeaderItem(6)->setToolTip(
        tr("Device memory the Vulkan backend allocated for the layer's keys, values and "
           "metadata (VkMemoryRequirements sizes: kernel layout, alignment and driver padding "
           "included; scratch not included)"));
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_spectrum = new QCustomPlot(bottom);
    m_spectrum->setObjectName(QStringLiteral("cacheKeySpectrum"));
    m_spectrum->setBufferDevicePixelRatio(m_spectrum->devicePixelRatioF());
    m_spectrum->setMinimumWidth(80); // its axis layout would otherwise widen the window's minimum
    m_spectrum->plotLayout()->insertRow(0);
    m_spectrum->plotLayout()->addElement(
        0, 0,
        new QCPTextElement(m_spectrum,
                           tr("key spectra: energy kept at rank r\n(mean, min–max over heads)")));
    m_spectrum->xAxis->setLabel(tr("rank r"));
    m_spectrum->yAxis->setLabel(tr("Σ_{i≤r} σ² / Σ σ²"));
    m_spectrum->yAxis->setRange(0.0, 1.02);
    const std::array<QString, 3> kinds = {tr("W_K (weight SVD)"), tr("context keys"),
                                          tr("scores QKᵀ (data-aware)")};
    for (int i = 0; i < 3; ++i) { // mean, then the band's lower and upper edges
        QCPGraph* mean = m_spectrum->addGraph();
        mean->setName(kinds[static_cast<std::size_t>(i)]);
        mean->setPen(QPen(categoricalColor(i), 2));
        QCPGraph* low = m_spectrum->addGraph();
        QCPGraph* high = m_spectrum->addGraph();
        QColor fill = categoricalColor(i);
        fill.setAlpha(40);
        low->setPen(Qt::NoPen);
        high->setPen(Qt::NoPen);
        high->setBrush(fill);
        high->setChannelFillGraph(low);
        low->removeFromLegend();
        high->removeFromLegend();
    }
    for (int i = 0; i < 3; ++i) { // the selected head: graphs 9, 10, 11
        QCPGraph* head = m_spectrum->addGraph();
        head->setPen(QPen(categoricalColor(i).darker(130), 1.6, Qt::DashDotLine));
        if (i > 0)
            head->removeFromLegend();
    }
    m_rankLine = new QCPItemStraightLine(m_spectrum);
    m_rankLine->setPen(QPen(Qt::gray, 1.5, Qt::DashLine));
    m_rankLine->setVisible(false);
    m_spectrum->legend->setVisible(true);
    m_spectrum->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);
    m_headMark = new QCPItemRect(m_grid);
    m_headMark->setPen(QPen(Qt::white, 2.5));
    m_headMark->setVisible(false);
    m_grid->setToolTip(tr("Click a head to draw its own key spectra on the spectrum chart"));
    connect(m_grid, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) {
        const int head =
            static_cast<int>(std::lround(m_grid->xAxis->pixelToCoord(e->position().x())));
        const int layer =
            static_cast<int>(std::lround(m_grid->yAxis->pixelToCoord(e->position().y())));
        if (m_selectedLayer == layer && m_selectedHead == head)
            selectHead(-1, -1); // a second click clears
        else
            selectHead(layer, head);
    });
    bottomLayout->addWidget(m_grid, 2);
    bottomLayout->addWidget(m_spectrum, 2);
    bottomLayout->addWidget(m_table, 3);
    split->addWidget(m_bars);
    split->addWidget(bottom);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    layout->addWidget(split, 1);
    applyTheme();
    clear(tr("Cache usage appears once a scheme has been evaluated."));
}

void CacheView::applyTheme() {
    retheme({m_bars, m_grid, m_spectrum});
}

void CacheView::clear(const QString& placeholder) {
    m_data.reset();
    for (QCPBars* b : {m_keys, m_values, m_meta})
        b->data()->clear();
    m_fp16->data()->clear();
    m_headTicker->setHeads({});
    for (QCPItemStraightLine* line : m_layerLines)
        m_bars->removeItem(line);
    m_layerLines.clear();
    m_heat->data()->clear();
    for (int g = 0; g < m_spectrum->graphCount(); ++g)
        m_spectrum->graph(g)->data()->clear();
    m_rankLine->setVisible(false);
    m_headMark->setVisible(false);
    m_spectrum->replot();
    m_table->setRowCount(0);
    m_totals->setText(placeholder);
    setPlotPlaceholder(m_bars, placeholder);
    m_bars->replot();
    m_grid->replot();
}

void CacheView::setData(std::shared_ptr<const AnalysisData> analysis, int runIndex) {
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
    setPlotPlaceholder(m_bars, QString());
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    showBytes(run);
    showErrorGrid(run);
    showSpectrum(run);
    showTotalsTable(run);
    showTotalsText(run);
}

// Stacked keys / values / metadata bars per head, with the fp16 baseline as a marker on each, and
// a line between layers.
void CacheView::showBytes(const SchemeRun& run) {
    const auto& heads = run.eval.heads;
    QVector<double> x;
    QVector<double> k;
    QVector<double> v;
    QVector<double> m;
    QVector<double> f;
    double top = 0;
    for (QCPItemStraightLine* line : m_layerLines)
        m_bars->removeItem(line);
    m_layerLines.clear();
    for (std::size_t i = 0; i < heads.size(); ++i) {
        const HeadMetrics& h = heads[i];
        x << static_cast<double>(i);
        k << static_cast<double>(h.bytes.keys);
        v << static_cast<double>(h.bytes.values);
        m << static_cast<double>(h.bytes.metadata);
        f << static_cast<double>(h.fp16Bytes);
        top =
            std::max({top, static_cast<double>(h.bytes.total()), static_cast<double>(h.fp16Bytes)});
        if (i > 0 && h.layer != heads[i - 1].layer) {
            auto* line = new QCPItemStraightLine(m_bars);
            line->setLayer(QStringLiteral("grid"));
            line->setPen(QPen(QColor(128, 128, 128, 110), 1, Qt::DashLine)); // light or dark
            line->point1->setCoords(static_cast<double>(i) - 0.5, 0);
            line->point2->setCoords(static_cast<double>(i) - 0.5, 1);
            m_layerLines.push_back(line);
        }
    }
    m_keys->setData(x, k, true);
    m_values->setData(x, v, true);
    m_meta->setData(x, m, true);
    m_fp16->setData(x, f, true);
    m_headTicker->setHeads(heads);
    m_bars->xAxis->setTickLabelRotation(0);
    m_bars->xAxis->setRange(-0.7, static_cast<double>(heads.size()) - 0.3);
    m_bars->yAxis->setRange(0, top * 1.15);
    m_bars->replot(QCustomPlot::rpQueuedReplot);
}

// Heat grid of the head output error, layer × KV head.
void CacheView::showErrorGrid(const SchemeRun& run) {
    QCPColorMapData* grid = m_heat->data();
    const auto& fit = run.eval.fitR2;
    // A rewritten model (post-hoc sharing): how well its fit reproduces each original head.
    const bool showFit = !fit.empty() && !fit.front().empty();
    const int kvHeads =
        showFit ? static_cast<int>(fit.front().size()) : std::max(1, run.kvHeads(m_data->layers));
    grid->setSize(kvHeads, m_data->layers);
    grid->setRange(QCPRange(0, kvHeads - 1), QCPRange(0, m_data->layers - 1));
    if (showFit) {
        m_gridTitle->setText(tr("held-out R\u00b2 per layer and KV head"));
        double lowest = 0.0;
        for (std::size_t l = 0; l < fit.size(); ++l)
            for (std::size_t h = 0; h < fit[l].size(); ++h) {
                grid->setCell(static_cast<int>(h), static_cast<int>(l), fit[l][h]);
                lowest = std::min(lowest, fit[l][h]);
            }
        m_heat->setDataRange(QCPRange(lowest, 1.0));
    } else {
        m_gridTitle->setText(tr("head output error per layer and KV head"));
        double errMax = 1e-12;
        for (const HeadMetrics& h : run.eval.heads) {
            grid->setCell(h.kvHead, h.layer, h.outputError);
            errMax = std::max(errMax, h.outputError);
        }
        m_heat->setDataRange(QCPRange(0, errMax));
    }
    QSharedPointer<QCPAxisTickerFixed> fixed(new QCPAxisTickerFixed);
    fixed->setTickStep(1.0);
    fixed->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
    m_grid->xAxis->setTicker(fixed);
    m_grid->yAxis->setTicker(fixed);
    m_grid->xAxis->setRange(-0.5, kvHeads - 0.5);
    m_grid->yAxis->setRange(-0.5, m_data->layers - 0.5);
    m_grid->replot(QCustomPlot::rpQueuedReplot);
}

// The run's per-layer GPU allocation is shown only where the GPU allocated every layer.
bool CacheView::hasGpuBytes(const SchemeRun& run) const {
    return m_data->backendIsGpu && static_cast<int>(run.layerAllocation.size()) == m_data->layers;
}

QString CacheView::noGpuBytesReason() const {
    if (m_data->timingsPending)
        return tr("The Vulkan backend is still starting");
    if (!m_data->backendIsGpu)
        return tr("The timing backend is the CPU reference: nothing is allocated on a GPU");
    return tr("The probe attention was not timed on the GPU for this setting");
}

// What the GPU allocated for layer l, or for all layers when l == layers (the model row).
DeviceAllocation CacheView::allocatedFor(const SchemeRun& run, int l) const {
    DeviceAllocation allocated;
    for (int i = 0; i < m_data->layers; ++i)
        if (l == m_data->layers || i == l)
            allocated += run.layerAllocation[static_cast<std::size_t>(i)];
    return allocated;
}

// Totals per layer and for the model, with what the GPU allocated for them.
void CacheView::showTotalsTable(const SchemeRun& run) {
    const auto& heads = run.eval.heads;
    m_table->setRowCount(m_data->layers + 1);
    QStringList rowNames;
    const bool gpuBytes = hasGpuBytes(run);
    const QString noGpu = noGpuBytesReason();
    for (int l = 0; l <= m_data->layers; ++l) {
        CacheBytes b;
        std::size_t fp16 = 0;
        for (const HeadMetrics& h : heads)
            if (l == m_data->layers || h.layer == l) {
                b += h.bytes;
                fp16 += h.fp16Bytes;
            }
        const DeviceAllocation layerAllocated =
            gpuBytes ? allocatedFor(run, l) : DeviceAllocation{};
        rowNames << (l == m_data->layers ? tr("model") : tr("layer %1").arg(l));
        const QStringList cells = {
            QString::number(static_cast<qulonglong>(b.keys)),
            QString::number(static_cast<qulonglong>(b.values)),
            QString::number(static_cast<qulonglong>(b.metadata)),
            QString::number(static_cast<qulonglong>(b.total())),
            QString::number(static_cast<qulonglong>(fp16)),
            QStringLiteral("%1%").arg(
                fp16 ? 100.0 * static_cast<double>(b.total()) / static_cast<double>(fp16) : 0.0, 0,
                'f', 1),
            gpuBytes ? QString::number(static_cast<qulonglong>(layerAllocated.cache()))
                     : QStringLiteral("\u2014")};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            if (c == 6)
                item->setToolTip(
                    gpuBytes ? tr("keys %1, values %2, metadata %3 bytes in %4 buffers; scratch "
                                  "%5 bytes")
                                   .arg(layerAllocated.keys)
                                   .arg(layerAllocated.values)
                                   .arg(layerAllocated.metadata)
                                   .arg(layerAllocated.buffers)
                                   .arg(layerAllocated.scratch)
                             : noGpu);
            m_table->setItem(l, c, item);
        }
    }
    m_table->setVerticalHeaderLabels(rowNames);
}

// The one-paragraph summary above the charts: bytes counted, then what the GPU allocated.
void CacheView::showTotalsText(const SchemeRun& run) {
    const bool gpuBytes = hasGpuBytes(run);
    const DeviceAllocation allocated =
        gpuBytes ? allocatedFor(run, m_data->layers) : DeviceAllocation{};
    const CacheBytes& total = run.eval.bytes;
    m_totals->setText(
        tr("%1: %2 of %3 fp16 (%4%) \u2014 keys %5, values %6, metadata %7 (bytes counted at the "
           "stored precision)")
            .arg(run.displayName, kib(static_cast<double>(total.total())),
                 kib(static_cast<double>(run.eval.fp16Bytes)))
            .arg(100.0 * run.eval.memoryFraction, 0, 'f', 1)
            .arg(kib(static_cast<double>(total.keys)), kib(static_cast<double>(total.values)),
                 kib(static_cast<double>(total.metadata))) +
        QLatin1Char('\n') +
        (gpuBytes
             ? tr("Allocated on the GPU (%1): %2 for the cache in %3 buffers, %4% of the bytes "
                  "counted (kernel layout, alignment and driver padding%5), plus %6 of scratch "
                  "for the probe queries and outputs")
                   .arg(m_data->backendName, kib(static_cast<double>(allocated.cache())))
                   .arg(allocated.buffers)
                   .arg(total.total() ? 100.0 * static_cast<double>(allocated.cache()) /
                                            static_cast<double>(total.total())
                                      : 0.0,
                        0, 'f', 1)
                   .arg(allocated.sharedValueCopy
                            ? tr("; %1 of it a second copy of the K=V values: the kernels read "
                                 "the rotated keys and, as values, the unrotated keys the cache "
                                 "stores once")
                                  .arg(kib(static_cast<double>(allocated.sharedValueCopy)))
                            : QString())
                   .arg(kib(static_cast<double>(allocated.scratch)))
             : noGpuBytesReason() +
                   (m_data->timingsPending || m_data->backendName.isEmpty()
                        ? QString()
                        : QStringLiteral(" (%1)").arg(m_data->backendName)) +
                   QLatin1Char('.')));
}

QString CacheView::totalsText() const {
    return m_totals->text();
}

CsvTable CacheView::barsCsv() const {
    CsvTable t{csvColumns(
        "layer,kv_head,keys_bytes,values_bytes,metadata_bytes,total_bytes,fp16_bytes,kept_tokens")};
    if (!m_data)
        return t;
    for (const HeadMetrics& h : m_data->runs[static_cast<std::size_t>(m_run)].eval.heads)
        t.rows.push_back({QString::number(h.layer), QString::number(h.kvHead),
                          QString::number(static_cast<qulonglong>(h.bytes.keys)),
                          QString::number(static_cast<qulonglong>(h.bytes.values)),
                          QString::number(static_cast<qulonglong>(h.bytes.metadata)),
                          QString::number(static_cast<qulonglong>(h.bytes.total())),
                          QString::number(static_cast<qulonglong>(h.fp16Bytes)),
                          QString::number(h.keptTokens)});
    return t;
}

CsvTable CacheView::gridCsv() const {
    if (m_data) { // what the grid shows: the fit's R² where the scheme rewrote the model
        const auto& fit = m_data->runs[static_cast<std::size_t>(m_run)].eval.fitR2;
        if (!fit.empty() && !fit.front().empty()) {
            CsvTable r{csvColumns("layer,original_kv_head,fit_r2")};
            for (std::size_t l = 0; l < fit.size(); ++l)
                for (std::size_t h = 0; h < fit[l].size(); ++h)
                    r.rows.push_back({QString::number(l), QString::number(h),
                                      QString::number(fit[l][h], 'g', 8)});
            return r;
        }
    }
    CsvTable t{csvColumns("layer,kv_head,head_output_error,context_error")};
    if (!m_data)
        return t;
    for (const HeadMetrics& h : m_data->runs[static_cast<std::size_t>(m_run)].eval.heads)
        t.rows.push_back({QString::number(h.layer), QString::number(h.kvHead),
                          QString::number(h.outputError, 'g', 8),
                          QString::number(h.contextError, 'g', 8)});
    return t;
}

std::vector<ChartHandle> CacheView::charts() const {
    return {{QStringLiteral("cache_bytes"), m_bars, [this] { return barsCsv(); }},
            {QStringLiteral("cache_error_grid"), m_grid, [this] { return gridCsv(); }},
            {QStringLiteral("cache_key_spectrum"), m_spectrum, [this] { return spectrumCsv(); }}};
}

void CacheView::selectHead(int layer, int kvHead) {
    m_selectedLayer = layer;
    m_selectedHead = kvHead;
    if (m_data && m_run >= 0 && m_run < static_cast<int>(m_data->runs.size()))
        showSpectrum(m_data->runs[static_cast<std::size_t>(m_run)]);
}

const HeadSpectrumCurves* CacheView::selectedSpectra() const {
    if (!m_data || !m_data->headSpectra)
        return nullptr;
    for (const HeadSpectrumCurves& h : *m_data->headSpectra)
        if (h.layer == m_selectedLayer && h.kvHead == m_selectedHead)
            return &h;
    return nullptr;
}

void CacheView::showSpectrum(const SchemeRun& run) {
    const auto& summary = m_data->spectrum;
    if (!summary) {
        setPlotPlaceholder(m_spectrum, tr("No key spectra for this analysis."));
        m_spectrum->replot();
        return;
    }
    const std::array<const SpectrumSummary::Band*, 3> bands = {&summary->keyProjection,
                                                               &summary->keys, &summary->scores};
    int ranks = 0;
    for (int i = 0; i < 3; ++i) {
        const SpectrumSummary::Band& b = *bands[static_cast<std::size_t>(i)];
        QVector<double> x, mean, low, high;
        for (std::size_t r = 0; r < b.mean.size(); ++r) {
            x.push_back(static_cast<double>(r + 1));
            mean.push_back(b.mean[r]);
            low.push_back(b.minimum[r]);
            high.push_back(b.maximum[r]);
        }
        ranks = std::max(ranks, static_cast<int>(x.size()));
        m_spectrum->graph(3 * i)->setData(x, mean, true);
        m_spectrum->graph(3 * i + 1)->setData(x, low, true);
        m_spectrum->graph(3 * i + 2)->setData(x, high, true);
        if (i == 0) // W_K needs the model's weights: a capture has none; the legend says so
            m_spectrum->graph(0)->setName(b.mean.empty() ? tr("W_K (needs the model's weights)")
                                                         : tr("W_K (weight SVD)"));
    }
    // The chosen head's own curves over the band, its cell outlined on the grid.
    const HeadSpectrumCurves* head = selectedSpectra();
    m_headMark->setVisible(head != nullptr);
    for (int i = 0; i < 3; ++i) {
        QCPGraph* g = m_spectrum->graph(9 + i);
        g->data()->clear();
        if (!head)
            continue;
        const SpectrumSummary::Band& b = i == 0   ? head->energy.keyProjection
                                         : i == 1 ? head->energy.keys
                                                  : head->energy.scores;
        QVector<double> x, y;
        for (std::size_t r = 0; r < b.mean.size(); ++r) {
            x.push_back(static_cast<double>(r + 1));
            y.push_back(b.mean[r]);
        }
        g->setData(x, y, true);
    }
    if (head) {
        m_spectrum->graph(9)->setName(
            tr("layer %1, KV head %2 (dash-dot)").arg(head->layer).arg(head->kvHead));
        if (!m_spectrum->legend->hasItemWithPlottable(m_spectrum->graph(9)))
            m_spectrum->graph(9)->addToLegend();
        m_headMark->topLeft->setCoords(head->kvHead - 0.5, head->layer - 0.5);
        m_headMark->bottomRight->setCoords(head->kvHead + 0.5, head->layer + 0.5);
    } else {
        m_spectrum->graph(9)->removeFromLegend();
    }
    m_grid->replot(QCustomPlot::rpQueuedReplot);
    m_spectrum->xAxis->setRange(0.5, std::max(1, ranks) + 0.5);
    const int rank = run.eval.heads.empty() ? 0 : run.eval.heads.front().keyRank;
    m_rankLine->setVisible(rank > 0 && rank < m_data->headDim);
    m_rankLine->point1->setCoords(rank, 0.0);
    m_rankLine->point2->setCoords(rank, 1.0);
    setPlotPlaceholder(m_spectrum, QString());
    m_spectrum->replot();
}

CsvTable CacheView::spectrumCsv() const {
    CsvTable t{csvColumns("kind,rank,energy_kept_mean,energy_kept_min,energy_kept_max")};
    if (!m_data || !m_data->spectrum)
        return t;
    const std::array<std::pair<const char*, const SpectrumSummary::Band*>, 3> bands = {
        {{"key_projection", &m_data->spectrum->keyProjection},
         {"keys", &m_data->spectrum->keys},
         {"scores", &m_data->spectrum->scores}}};
    const auto add = [&t](const QString& kind, const SpectrumSummary::Band& band) {
        for (std::size_t r = 0; r < band.mean.size(); ++r)
            t.rows.push_back({kind, QString::number(r + 1), QString::number(band.mean[r], 'g', 8),
                              QString::number(band.minimum[r], 'g', 8),
                              QString::number(band.maximum[r], 'g', 8)});
    };
    for (const auto& [kind, band] : bands)
        add(QString::fromLatin1(kind), *band);
    if (const HeadSpectrumCurves* head = selectedSpectra()) { // one head: mean = min = max
        const QString suffix =
            QStringLiteral(" layer %1 kv_head %2").arg(head->layer).arg(head->kvHead);
        add(QStringLiteral("key_projection") + suffix, head->energy.keyProjection);
        add(QStringLiteral("keys") + suffix, head->energy.keys);
        add(QStringLiteral("scores") + suffix, head->energy.scores);
    }
    return t;
}

} // namespace kvs::views
