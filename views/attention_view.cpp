// SPDX-License-Identifier: MIT
// The Attention view: thumbnails of every head and the exact / compressed / difference maps.
#include "attention_view.h"

#include "plot_style.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QResizeEvent>
#include <QSignalBlocker>
#include <QSplitter>
#include <QTimer>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <qcustomplot.h>
#include <utility>

namespace kvs::views {

namespace {

constexpr int kMaxAxisLabels = 40;

QCustomPlot* makePlot(QWidget* parent, const QString& name) {
    auto* plot = new QCustomPlot(parent);
    plot->setObjectName(name);
    plot->setMinimumSize(90, 90);
    plot->setNotAntialiasedElements(QCP::aePlottables | QCP::aeItems);
    plot->setBufferDevicePixelRatio(plot->devicePixelRatioF());
    return plot;
}

// Labels every `stride`-th token so that about one label fits per `pixelsPerLabel` of the axis.
QSharedPointer<QCPAxisTickerText> tokenTicker(const QStringList& texts, int first, int count,
                                              int axisPixels, int pixelsPerLabel) {
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    const int fit = std::clamp(axisPixels / std::max(1, pixelsPerLabel), 2, kMaxAxisLabels);
    const int stride = std::max(1, (count + fit - 1) / fit);
    for (int i = 0; i < count; i += stride) {
        const int token = first + i;
        const QString text = token < texts.size() ? tokenLabel(texts[token]) : QString();
        ticker->addTick(i, QStringLiteral("%1 %2").arg(text).arg(token));
    }
    return ticker;
}

double matrixMax(const Matrix& m) {
    return m.size() > 0 ? static_cast<double>(m.maxCoeff()) : 0.0;
}

double matrixAbsMax(const Matrix& m) {
    return m.size() > 0 ? static_cast<double>(m.cwiseAbs().maxCoeff()) : 0.0;
}

} // namespace

QString tokenLabel(const QString& text) {
    QString t = text;
    t.replace(QLatin1Char(' '), QChar(0x2423));
    t.replace(QLatin1Char('\n'), QChar(0x21B5));
    t.replace(QLatin1Char('\t'), QChar(0x21E5));
    if (t.size() > 10)
        t = t.left(9) + QChar(0x2026);
    return t;
}

AttentionView::AttentionView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("attentionView"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);

    auto* bar = new QHBoxLayout;
    m_title = new QLabel(this);
    m_title->setObjectName(QStringLiteral("attentionTitle"));
    QFont bold = m_title->font();
    bold.setBold(true);
    m_title->setFont(bold);
    m_title->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    m_title->setTextInteractionFlags(Qt::TextSelectableByMouse);
    // Wraps rather than cutting off the head's numbers beside the pooling choice.
    m_title->setWordWrap(true);
    m_modeBox = new QComboBox(this);
    m_modeBox->setObjectName(QStringLiteral("attentionMode"));
    m_modeBox->addItems({tr("Side by side"), tr("Exact"), tr("Compressed"), tr("Difference")});
    m_modeBox->setToolTip(
        tr("Which maps to show: exact, compressed (evicted keys hatched), their "
           "difference (compressed \u2212 exact, diverging colours centred at 0)"));
    m_paletteBox = new QComboBox(this);
    m_paletteBox->setObjectName(QStringLiteral("attentionPalette"));
    m_paletteBox->addItems({tr("viridis"), tr("cividis")});
    m_paletteBox->setToolTip(tr("Sequential colour map for attention weights (perceptually "
                                "uniform, colour-blind safe)"));
    m_scaleBox = new QComboBox(this);
    m_scaleBox->setObjectName(QStringLiteral("attentionColourScale"));
    m_scaleBox->addItems({tr("linear"), tr("square root"), tr("log")});
    m_scaleBox->setToolTip(
        tr("How weights map to colours. Diffuse heads spread small weights over many keys: the "
           "square-root and log scales give those weights more of the colours (log: four "
           "decades below the largest weight). Hover values and exports stay the weights."));
    m_poolingBox = new QComboBox(this);
    m_poolingBox->setObjectName(QStringLiteral("attentionPooling"));
    m_poolingBox->addItems({tr("max per pixel"), tr("mean per pixel")});

    m_poolingBox->setToolTip(
        tr("When a map has more keys than the screen has pixels, each pixel shows its keys' "
           "largest weight (a lone strong key stays visible; differences keep their sign) or "
           "their mean. Zoom in until every key has a pixel to see the weights cell for cell; "
           "the legend says when a map is pooled. Hover and CSV export use every key."));
    // The title (scheme, head and its numbers) gets a line of its own: beside the controls it
    // was cut off before the numbers.
    bar->addWidget(new QLabel(tr("Show"), this));
    bar->addWidget(m_modeBox);
    m_referenceBox = new QComboBox(this);
    m_referenceBox->setObjectName(QStringLiteral("attentionDifferenceReference"));
    m_referenceBox->addItems({tr("against exact"), tr("against pinned baseline")});
    m_referenceBox->setToolTip(tr("What the difference map subtracts from the compressed "
                                  "attention: the exact attention, or the pinned baseline's "
                                  "compressed attention (Compare > Pin)"));
    m_referenceBox->setEnabled(false);
    // Narrow enough that the bar fits a 1000-pixel window (the full text is in the popup).
    m_referenceBox->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_referenceBox->setMinimumContentsLength(8);
    bar->addWidget(m_referenceBox);
    bar->addWidget(new QLabel(tr("Colours"), this));
    bar->addWidget(m_paletteBox);
    bar->addWidget(m_scaleBox);
    bar->addStretch(1);
    // The pooling choice sits on the title's line: the bar below must fit a 1000-pixel window.
    auto* titleRow = new QHBoxLayout;
    titleRow->addWidget(m_title, 1);
    titleRow->addWidget(m_poolingBox);
    layout->addLayout(titleRow);
    layout->addLayout(bar);

    auto* splitter = new QSplitter(Qt::Vertical, this);
    m_grid = makePlot(splitter, QStringLiteral("attentionGrid"));
    m_grid->yAxis->setRangeReversed(true);
    m_grid->xAxis->setLabel(tr("query head"));
    m_grid->yAxis->setLabel(tr("layer"));
    m_grid->xAxis->grid()->setVisible(false);
    m_grid->yAxis->grid()->setVisible(false);
    m_grid->setToolTip(tr("Every head of every layer; click one to open it below"));
    m_gridMark = new QCPItemRect(m_grid);
    m_gridMark->setPen(QPen(QColor(0xD5, 0x5E, 0x00), 2));
    m_gridMark->setBrush(Qt::NoBrush);
    connect(m_grid, &QCustomPlot::mousePress, this, &AttentionView::onGridClick);
    connect(m_grid->xAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
            [this] { schedulePooling(true, false); });

    auto* mapsRow = new QWidget(splitter);
    auto* mapsLayout = new QHBoxLayout(mapsRow);
    mapsLayout->setContentsMargins(0, 0, 0, 0);
    mapsLayout->setSpacing(2);
    const std::array<QString, 3> names = {QStringLiteral("exactMap"),
                                          QStringLiteral("compressedMap"),
                                          QStringLiteral("differenceMap")};
    const std::array<QString, 3> titles = {tr("Exact"), tr("Compressed"),
                                           tr("Difference (compressed \u2212 exact)")};
    for (std::size_t i = 0; i < 3; ++i) {
        QCustomPlot* plot = makePlot(mapsRow, names[i]);
        plot->plotLayout()->insertRow(0);
        auto* title = new QCPTextElement(plot, titles[i]);
        plot->plotLayout()->addElement(0, 0, title);
        if (i == 2)
            m_differenceTitle = title;
        plot->yAxis->setRangeReversed(true);
        plot->xAxis->setLabel(tr("context key"));
        plot->yAxis->setLabel(i == 0 ? tr("probe query") : QString());
        plot->xAxis->setTickLabelRotation(60);
        plot->xAxis->grid()->setVisible(false);
        plot->yAxis->grid()->setVisible(false);
        plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
        auto* map = new QCPColorMap(plot->xAxis, plot->yAxis);
        map->setInterpolate(false);
        map->setTightBoundary(false);
        auto* scale = new QCPColorScale(plot);
        plot->plotLayout()->addElement(1, 1, scale);
        scale->setType(QCPAxis::atRight);
        scale->setBarWidth(10);
        map->setColorScale(scale);
        auto* group = new QCPMarginGroup(plot);
        plot->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, group);
        scale->setMarginGroup(QCP::msBottom | QCP::msTop, group);
        auto* cursor = new QCPItemRect(plot);
        cursor->setPen(QPen(QColor(0xD5, 0x5E, 0x00), 1.5));
        cursor->setBrush(Qt::NoBrush);
        cursor->setVisible(false);
        m_maps[i] = plot;
        m_colorMaps[i] = map;
        m_scales[i] = scale;
        m_cursor[i] = cursor;
        connect(plot->xAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
                [this, plot] {
                    syncRanges(plot);
                    schedulePooling(false, true);
                });
        connect(plot->yAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
                [this, plot] {
                    syncRanges(plot);
                    schedulePooling(false, true);
                });
        connect(plot, &QCustomPlot::mouseMove, this,
                [this, plot](QMouseEvent* e) { onHover(plot, e); });
        mapsLayout->addWidget(plot, 1);
        if (i == 1) {
            m_mass = makePlot(mapsRow, QStringLiteral("massLostPlot"));
            m_mass->setMaximumWidth(110);
            m_mass->setMinimumWidth(60);
            m_mass->plotLayout()->insertRow(0);
            m_massTitle = new QCPTextElement(m_mass, tr("mass lost"));
            m_mass->plotLayout()->addElement(0, 0, m_massTitle);
            m_mass->yAxis->setRangeReversed(true);
            m_mass->yAxis->setTickLabels(false);
            m_mass->xAxis->setTicker(QSharedPointer<QCPAxisTickerFixed>(new QCPAxisTickerFixed));
            m_mass->xAxis->setLabel(QString());
            m_massBars = new QCPBars(m_mass->yAxis, m_mass->xAxis);
            m_massBars->setWidth(0.9);
            m_massBars->setPen(Qt::NoPen);
            m_massBars->setBrush(QColor(0xD5, 0x5E, 0x00));
            auto* massGroup = new QCPMarginGroup(m_mass);
            m_mass->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, massGroup);
            m_mass->setToolTip(tr("Attention mass of the exact distribution on evicted keys, per "
                                  "probe query"));
            mapsLayout->addWidget(m_mass);
        }
    }
    splitter->addWidget(m_grid);
    splitter->addWidget(mapsRow);
    splitter->setStretchFactor(0, 2);
    splitter->setStretchFactor(1, 3);
    layout->addWidget(splitter, 1);

    m_readout = new QLabel(this);
    m_readout->setObjectName(QStringLiteral("attentionReadout"));
    m_readout->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_readout->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    m_readout->setText(tr("Hover a map for the query, key and weight."));
    layout->addWidget(m_readout);

    connect(m_modeBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setMode(static_cast<Mode>(i)); });
    connect(m_paletteBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setPalette(static_cast<Palette>(i)); });
    connect(m_scaleBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setColourScale(static_cast<ColourScale>(i)); });
    connect(m_poolingBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setPooling(static_cast<kvs::MapPooling>(i)); });
    connect(m_referenceBox, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] {
        if (m_data && !m_data->runs.empty()) {
            rebuildGrid();
            rebuildMaps();
            m_grid->replot(QCustomPlot::rpQueuedReplot);
        }
    });
    applyTheme();
    clear(tr("Load a model and pick a scheme to see attention maps."));
}

void AttentionView::applyTheme() {
    retheme({m_grid, m_mass});
    retheme(m_maps);
}

void AttentionView::clear(const QString& placeholder) {
    m_data.reset();
    for (QCPColorMap* t : m_thumbs)
        m_grid->removePlottable(t);
    m_thumbs.clear();
    m_gridMark->setVisible(false);
    setPlotPlaceholder(m_grid, placeholder);
    m_shown = {};
    for (std::size_t i = 0; i < 3; ++i) {
        m_colorMaps[i]->data()->clear();
        m_cursor[i]->setVisible(false);
        m_maps[i]->replot();
    }
    m_massBars->data()->clear();
    m_mass->replot();
    m_grid->replot();
    m_title->setText(tr("Attention"));
}

void AttentionView::setData(std::shared_ptr<const AnalysisData> analysis, int runIndex) {
    if (!analysis || analysis->runs.empty() || runIndex < 0 ||
        runIndex >= static_cast<int>(analysis->runs.size())) {
        clear(tr("No results yet."));
        return;
    }
    if (const SchemeRun& run = analysis->runs[static_cast<std::size_t>(runIndex)];
        !run.error.isEmpty()) {
        clear(refusedText(run));
        return;
    }
    const bool shapeChanged = !m_data || m_data->layers != analysis->layers ||
                              m_data->heads != analysis->heads ||
                              m_data->contextTokens != analysis->contextTokens ||
                              m_data->probeTokens != analysis->probeTokens;
    m_data = std::move(analysis);
    m_run = runIndex;
    m_layer = std::clamp(m_layer, 0, m_data->layers - 1);
    m_head = std::clamp(m_head, 0, m_data->heads - 1);
    setPlotPlaceholder(m_grid, QString());
    if (shapeChanged) {
        // Before the maps are filled: they are pooled for the window these ranges show.
        for (QCustomPlot* p : m_maps) {
            p->xAxis->setRange(-0.5, m_data->contextTokens - 0.5);
            p->yAxis->setRange(-0.5, m_data->probeTokens - 0.5);
        }
        m_mass->yAxis->setRange(-0.5, m_data->probeTokens - 0.5);
    }
    rebuildGrid(true);
    rebuildMaps();
    updateVisibility();
}

namespace {

// Fills `cells` with `pooled`, the pooling of `window` of a map whose cell (0, 0) sits at (x0, y0):
// each drawn cell is centred on the keys (rows) it stands for.
void setPooledCells(QCPColorMapData* cells, const Matrix& pooled, const kvs::MapWindow& window,
                    double x0, double y0) {
    const int cols = static_cast<int>(pooled.cols());
    const int rows = static_cast<int>(pooled.rows());
    const auto centre = [](int c, int width, int n) {
        return (kvs::blockStart(c, width, n) + kvs::blockStart(c + 1, width, n) - 1) / 2.0;
    };
    cells->setSize(cols, rows);
    cells->setRange(QCPRange(x0 + window.colBegin + centre(0, window.cols(), cols),
                             x0 + window.colBegin + centre(cols - 1, window.cols(), cols)),
                    QCPRange(y0 + window.rowBegin + centre(0, window.rows(), rows),
                             y0 + window.rowBegin + centre(rows - 1, window.rows(), rows)));
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            cells->setCell(c, r, static_cast<double>(pooled(r, c)));
}

int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
}

} // namespace

void AttentionView::rebuildGrid(bool resetRange) {
    const int nctx = m_data->contextTokens;
    const int nprobe = m_data->probeTokens;
    const int g = m_data->groupSize();
    const double gapX = std::max(2.0, 0.12 * nctx);
    const double gapY = std::max(2.0, 0.25 * nprobe);
    const int total = m_data->layers * m_data->heads;
    while (static_cast<int>(m_thumbs.size()) < total) {
        auto* map = new QCPColorMap(m_grid->xAxis, m_grid->yAxis);
        map->setInterpolate(false);
        map->setTightBoundary(false);
        m_thumbs.push_back(map);
    }
    while (static_cast<int>(m_thumbs.size()) > total) {
        m_grid->removePlottable(m_thumbs.back());
        m_thumbs.pop_back();
    }
    QSharedPointer<QCPAxisTickerText> xt(new QCPAxisTickerText);
    QSharedPointer<QCPAxisTickerText> yt(new QCPAxisTickerText);
    for (int l = 0; l < m_data->layers; ++l)
        yt->addTick(l * (nprobe + gapY) + nprobe / 2.0, QStringLiteral("L%1").arg(l));
    for (int h = 0; h < m_data->heads; ++h)
        xt->addTick(h * (nctx + gapX) + nctx / 2.0,
                    g > 1 ? QStringLiteral("H%1 (kv %2)").arg(h).arg(h / g)
                          : QStringLiteral("H%1").arg(h));
    m_grid->xAxis->setTicker(xt);
    m_grid->yAxis->setTicker(yt);
    if (resetRange) {
        const QSignalBlocker blockX(m_grid->xAxis);
        m_grid->xAxis->setRange(-gapX / 2, m_data->heads * (nctx + gapX) - gapX / 2);
        m_grid->yAxis->setRange(-gapY / 2, m_data->layers * (nprobe + gapY) - gapY / 2);
    }
    fillThumbs();
    markGridSelection();
}

void AttentionView::fillThumbs() {
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    const int nctx = m_data->contextTokens;
    const int nprobe = m_data->probeTokens;
    const double gapX = std::max(2.0, 0.12 * nctx);
    const double gapY = std::max(2.0, 0.25 * nprobe);
    // A thumbnail gets as many cells as it has pixels at the grid's current zoom (a 32 × 32 grid
    // of 2,000-key maps is a few hundred thousand cells, not a hundred million). The widget's size,
    // not the axis rectangle's: that one is laid out only at the next replot.
    const double pxPerKey = std::max(1, m_grid->width()) / m_grid->xAxis->range().size();
    const double pxPerRow = std::max(1, m_grid->height()) / m_grid->yAxis->range().size();
    const int outCols =
        std::clamp(static_cast<int>(std::ceil(nctx * pxPerKey)), 1, std::max(1, nctx));
    const int outRows =
        std::clamp(static_cast<int>(std::ceil(nprobe * pxPerRow)), 1, std::max(1, nprobe));
    m_gridKeysPerCell = nctx > 0 ? ceilDiv(nctx, outCols) : 1;
    const QCPColorGradient sequential =
        m_palette == Palette::Viridis ? viridisGradient() : cividisGradient();
    for (int l = 0; l < m_data->layers; ++l) {
        for (int h = 0; h < m_data->heads; ++h) {
            QCPColorMap* map = m_thumbs[static_cast<std::size_t>(l * m_data->heads + h)];
            const std::size_t kv = run.headIndex(l, h, m_data->layers, m_data->heads);
            const std::size_t j = run.groupMember(h, m_data->layers, m_data->heads);
            const Matrix* m = nullptr;
            bool diverging = false;
            if (const HeadMaps* hm = run.headMaps(kv)) {
                if (m_mode == Mode::Exact && run.exactMap(kv, j))
                    m = run.exactMap(kv, j);
                else if (m_mode == Mode::Difference && differenceMatrix(kv, j)) {
                    m = differenceMatrix(kv, j);
                    diverging = true;
                } else if (j < hm->compressed.size())
                    m = &hm->compressed[j];
            }
            QCPColorMapData* cells = map->data();
            if (!m || m->size() == 0) {
                cells->clear();
                continue;
            }
            const kvs::MapWindow all{0, static_cast<int>(m->rows()), 0,
                                     static_cast<int>(m->cols())};
            setPooledCells(cells, kvs::poolMap(*m, all, outRows, outCols, m_pooling), all,
                           h * (nctx + gapX), l * (nprobe + gapY));
            if (diverging) {
                const double a = std::max(matrixAbsMax(*m), 1e-12);
                map->setGradient(divergingGradient());
                map->setDataRange(QCPRange(-a, a));
            } else {
                applySequentialScale(map, sequential, std::max(matrixMax(*m), 1e-12));
            }
        }
    }
}

void AttentionView::fillMap(std::size_t i) {
    QCPColorMapData* cells = m_colorMaps[i]->data();
    const Matrix* m = m_shown[i];
    m_keysPerCell[i] = 1;
    if (!m || m->size() == 0) {
        cells->clear();
        return;
    }
    // The visible window of whole cells, pooled to the axis rectangle's pixels.
    const QCPRange xr = m_maps[i]->xAxis->range();
    const QCPRange yr = m_maps[i]->yAxis->range();
    kvs::MapWindow window = kvs::clampWindow(*m, {static_cast<int>(std::floor(yr.lower + 0.5)),
                                                  static_cast<int>(std::ceil(yr.upper + 0.5)),
                                                  static_cast<int>(std::floor(xr.lower + 0.5)),
                                                  static_cast<int>(std::ceil(xr.upper + 0.5))});
    if (window.rows() <= 0 || window.cols() <= 0) // panned off the map: draw all of it
        window = {0, static_cast<int>(m->rows()), 0, static_cast<int>(m->cols())};
    // The plot widget's size bounds its axis rectangle's (laid out only at the next replot).
    const int px = std::max(16, m_maps[i]->width());
    const int py = std::max(8, m_maps[i]->height());
    const Matrix pooled = kvs::poolMap(*m, window, py, px, m_pooling);
    m_keysPerCell[i] = ceilDiv(window.cols(), static_cast<int>(pooled.cols()));
    setPooledCells(cells, pooled, window, 0, 0);
    m_scales[i]->axis()->setLabel(legendLabel(i));
}

QString AttentionView::legendLabel(std::size_t i) const {
    QString label = i == 2                                     ? tr("difference (linear)")
                    : m_colourScale == ColourScale::Linear     ? tr("weight")
                    : m_colourScale == ColourScale::SquareRoot ? tr("weight (\u221a colour scale)")
                                                               : tr("weight (log colour scale)");
    if (m_keysPerCell[i] > 1)
        label += (m_pooling == kvs::MapPooling::Max ? tr(" \u00b7 max of \u2264%1 keys/pixel")
                                                    : tr(" \u00b7 mean of \u2264%1 keys/pixel"))
                     .arg(m_keysPerCell[i]);
    return label;
}

void AttentionView::schedulePooling(bool grid, bool maps) {
    if (!m_data)
        return;
    const bool scheduled = m_poolGridPending || m_poolMapsPending;
    m_poolGridPending = m_poolGridPending || grid;
    m_poolMapsPending = m_poolMapsPending || maps;
    if (scheduled)
        return;
    QTimer::singleShot(0, this, [this] {
        const bool gridToo = std::exchange(m_poolGridPending, false);
        const bool mapsToo = std::exchange(m_poolMapsPending, false);
        if (!m_data || m_data->runs.empty())
            return;
        if (gridToo) { // a thousand thumbnails: only when the grid's zoom or size changed
            fillThumbs();
            m_grid->replot(QCustomPlot::rpQueuedReplot);
        }
        if (mapsToo)
            for (std::size_t i = 0; i < 3; ++i) {
                fillMap(i);
                m_maps[i]->replot(QCustomPlot::rpQueuedReplot);
            }
    });
}

void AttentionView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    schedulePooling(true, true);
}

void AttentionView::setPooling(kvs::MapPooling pooling) {
    m_pooling = pooling;
    if (m_poolingBox->currentIndex() != static_cast<int>(pooling))
        m_poolingBox->setCurrentIndex(static_cast<int>(pooling));
    redrawColours();
}

void AttentionView::markGridSelection() {
    if (!m_data)
        return;
    const int nctx = m_data->contextTokens;
    const int nprobe = m_data->probeTokens;
    const double gapX = std::max(2.0, 0.12 * nctx);
    const double gapY = std::max(2.0, 0.25 * nprobe);
    const double x0 = m_head * (nctx + gapX);
    const double y0 = m_layer * (nprobe + gapY);
    m_gridMark->topLeft->setCoords(x0 - gapX / 3, y0 - gapY / 3);
    m_gridMark->bottomRight->setCoords(x0 + nctx - 1 + gapX / 3, y0 + nprobe - 1 + gapY / 3);
    m_gridMark->setVisible(true);
    m_grid->replot(QCustomPlot::rpQueuedReplot);
}

void AttentionView::setBaselineDifference(std::shared_ptr<const std::vector<HeadMaps>> maps,
                                          const QString& baselineLabel, bool redraw) {
    m_baselineDiff = std::move(maps);
    m_baselineLabel = baselineLabel;
    m_referenceBox->setEnabled(m_baselineDiff != nullptr);
    if (!m_baselineDiff && m_referenceBox->currentIndex() != 0) {
        const QSignalBlocker block(m_referenceBox);
        m_referenceBox->setCurrentIndex(0);
    }
    if (redraw && m_data && !m_data->runs.empty()) {
        rebuildGrid();
        rebuildMaps();
        m_grid->replot(QCustomPlot::rpQueuedReplot);
    }
}

void AttentionView::setDifferenceReference(int reference) {
    m_referenceBox->setCurrentIndex(std::clamp(reference, 0, 1));
}

int AttentionView::differenceReference() const {
    return m_baselineDiff ? m_referenceBox->currentIndex() : 0;
}

const Matrix* AttentionView::differenceMatrix(std::size_t kv, std::size_t j) const {
    if (differenceReference() == 1) {
        if (kv < m_baselineDiff->size() && j < (*m_baselineDiff)[kv].difference.size())
            return &(*m_baselineDiff)[kv].difference[j];
        return nullptr;
    }
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    if (const HeadMaps* hm = run.headMaps(kv); hm && j < hm->difference.size())
        return &hm->difference[j];
    return nullptr;
}

void AttentionView::rebuildMaps() {
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    const std::size_t kv = run.headIndex(m_layer, m_head, m_data->layers, m_data->heads);
    const std::size_t j = run.groupMember(m_head, m_data->layers, m_data->heads);
    const HeadMetrics* hm = kv < run.eval.heads.size() ? &run.eval.heads[kv] : nullptr;
    const HeadMaps* maps = run.headMaps(kv);
    const Matrix* mats[3] = {nullptr, nullptr, nullptr};
    mats[0] = run.exactMap(kv, j);
    if (maps && j < maps->compressed.size())
        mats[1] = &maps->compressed[j];
    mats[2] = differenceMatrix(kv, j);
    m_differenceTitle->setText(
        differenceReference() == 1
            ? tr("Difference (compressed \u2212 pinned: %1)").arg(m_baselineLabel)
            : tr("Difference (compressed \u2212 exact)"));

    const double top =
        std::max({mats[0] ? matrixMax(*mats[0]) : 0.0, mats[1] ? matrixMax(*mats[1]) : 0.0, 1e-12});
    const double diff = std::max(mats[2] ? matrixAbsMax(*mats[2]) : 0.0, 1e-12);
    const QCPColorGradient sequential =
        m_palette == Palette::Viridis ? viridisGradient() : cividisGradient();
    const int axisWidth = std::max(100, m_maps[0]->width() - 120);
    const int axisHeight = std::max(100, m_maps[0]->height() - 110);
    const auto xTicker = tokenTicker(m_data->tokenTexts, 0, m_data->contextTokens, axisWidth, 16);
    const auto yTicker =
        tokenTicker(m_data->tokenTexts, m_data->contextTokens, m_data->probeTokens, axisHeight, 15);
    // The y ticker labels rows 0.. with the probe tokens' absolute positions.
    for (std::size_t i = 0; i < 3; ++i) {
        m_shown[i] = mats[i] && mats[i]->size() ? mats[i] : nullptr;
        m_maps[i]->xAxis->setTicker(xTicker);
        m_maps[i]->yAxis->setTicker(yTicker);
        if (i == 2) {
            m_colorMaps[i]->setDataScaleType(QCPAxis::stLinear);
            m_colorMaps[i]->setGradient(divergingGradient());
            m_colorMaps[i]->setDataRange(QCPRange(-diff, diff));
            m_scales[i]->axis()->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
        } else {
            applySequentialScale(m_colorMaps[i], sequential, top);
            m_scales[i]->axis()->setTicker(m_colourScale == ColourScale::Log
                                               ? QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog)
                                               : QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
        }
        fillMap(i);
        m_scales[i]->axis()->setLabel(legendLabel(i));
    }

    // Evicted keys: hatched columns over the compressed map, one rectangle per run of evicted
    // positions.
    QCustomPlot* cmp = m_maps[1];
    for (int i = cmp->itemCount() - 1; i >= 0; --i)
        if (cmp->item(i)->property("kvsEvicted").toBool())
            cmp->removeItem(i);
    m_evictedMarks = 0;
    if (kv < run.kept.size() && m_data->contextTokens > 0) {
        std::vector<char> kept(static_cast<std::size_t>(m_data->contextTokens), 0);
        for (std::int32_t p : run.kept[kv].positions)
            if (p >= 0 && p < m_data->contextTokens)
                kept[static_cast<std::size_t>(p)] = 1;
        int start = -1;
        for (int c = 0; c <= m_data->contextTokens; ++c) {
            const bool evicted = c < m_data->contextTokens && !kept[static_cast<std::size_t>(c)];
            if (evicted && start < 0)
                start = c;
            if (!evicted && start >= 0) {
                auto* rect = new QCPItemRect(cmp);
                rect->setProperty("kvsEvicted", true);
                rect->topLeft->setCoords(start - 0.5, -0.5);
                rect->bottomRight->setCoords(c - 0.5, m_data->probeTokens - 0.5);
                rect->setPen(Qt::NoPen);
                rect->setBrush(QBrush(QColor(0x80, 0x80, 0x80, 150), Qt::BDiagPattern));
                rect->setLayer(QStringLiteral("main"));
                ++m_evictedMarks;
                start = -1;
            }
        }
    }

    QVector<double> keys;
    QVector<double> values;
    if (maps && j < maps->rowMass.size()) {
        const auto& mass = maps->rowMass[j];
        for (std::size_t r = 0; r < mass.size(); ++r) {
            keys << static_cast<double>(r);
            values << mass[r];
        }
    }
    m_massBars->setData(keys, values, true);
    const double massMax = values.isEmpty() ? 1.0 : *std::max_element(values.begin(), values.end());
    m_mass->xAxis->setRange(0, std::max(0.05, massMax * 1.1));

    QString title = tr("%1 \u2014 layer %2, head %3").arg(run.displayName).arg(m_layer).arg(m_head);
    if (hm && run.kvHeads(m_data->layers) < m_data->heads)
        title += tr(" (KV head %1)").arg(hm->kvHead);
    // Weighted schemes move attention rather than lose it: their honest number is the shift.
    const bool weighted = hm && hm->weighted;
    m_massTitle->setText(weighted ? tr("shift (TV)") : tr("mass lost"));
    if (hm)
        title += tr(": kept %1 of %2 keys, head output error %3, %4 %5")
                     .arg(hm->keptTokens)
                     .arg(hm->contextTokens)
                     .arg(hm->outputError, 0, 'g', 3)
                     .arg(weighted ? tr("attention shift (TV)") : tr("mass lost"))
                     .arg(weighted ? hm->totalVariation : hm->massLost, 0, 'g', 3);
    m_title->setText(title);
    for (QCustomPlot* p : m_maps)
        p->replot(QCustomPlot::rpQueuedReplot);
    m_mass->replot(QCustomPlot::rpQueuedReplot);
}

void AttentionView::updateVisibility() {
    m_maps[0]->setVisible(m_mode == Mode::SideBySide || m_mode == Mode::Exact);
    m_maps[1]->setVisible(m_mode == Mode::SideBySide || m_mode == Mode::Compressed);
    m_mass->setVisible(m_mode == Mode::SideBySide || m_mode == Mode::Compressed);
    m_maps[2]->setVisible(m_mode == Mode::SideBySide || m_mode == Mode::Difference);
}

void AttentionView::setSelection(int layer, int queryHead) {
    if (!m_data) {
        m_layer = std::max(0, layer);
        m_head = std::max(0, queryHead);
        return;
    }
    layer = std::clamp(layer, 0, m_data->layers - 1);
    queryHead = std::clamp(queryHead, 0, m_data->heads - 1);
    if (layer == m_layer && queryHead == m_head)
        return;
    m_layer = layer;
    m_head = queryHead;
    markGridSelection();
    rebuildMaps();
    emit selectionChanged(m_layer, m_head);
}

void AttentionView::setMode(Mode mode) {
    m_mode = mode;
    if (m_modeBox->currentIndex() != static_cast<int>(mode))
        m_modeBox->setCurrentIndex(static_cast<int>(mode));
    updateVisibility();
    if (m_data) {
        rebuildGrid();
        m_grid->replot(QCustomPlot::rpQueuedReplot);
    }
}

void AttentionView::applySequentialScale(QCPColorMap* map, const QCPColorGradient& base,
                                         double top) const {
    switch (m_colourScale) {
    case ColourScale::Linear:
        map->setDataScaleType(QCPAxis::stLinear);
        map->setGradient(base);
        map->setDataRange(QCPRange(0.0, top));
        break;
    case ColourScale::SquareRoot:
        map->setDataScaleType(QCPAxis::stLinear);
        map->setGradient(squareRootGradient(base));
        map->setDataRange(QCPRange(0.0, top));
        break;
    case ColourScale::Log:
        map->setDataScaleType(QCPAxis::stLogarithmic);
        map->setGradient(base);
        map->setDataRange(QCPRange(top * std::pow(10.0, -kLogDecades), top));
        break;
    }
}

void AttentionView::setColourScale(ColourScale scale) {
    m_colourScale = scale;
    if (m_scaleBox->currentIndex() != static_cast<int>(scale))
        m_scaleBox->setCurrentIndex(static_cast<int>(scale));
    redrawColours();
}

void AttentionView::redrawColours() {
    if (!m_data)
        return;
    rebuildGrid();
    rebuildMaps();
    m_grid->replot(QCustomPlot::rpQueuedReplot);
    for (QCustomPlot* plot : m_maps)
        plot->replot(QCustomPlot::rpQueuedReplot);
}

void AttentionView::setPalette(Palette palette) {
    m_palette = palette;
    if (m_paletteBox->currentIndex() != static_cast<int>(palette))
        m_paletteBox->setCurrentIndex(static_cast<int>(palette));
    redrawColours();
}

void AttentionView::syncRanges(QCustomPlot* source) {
    if (m_syncing)
        return;
    m_syncing = true;
    for (QCustomPlot* p : m_maps) {
        if (p == source)
            continue;
        p->xAxis->setRange(source->xAxis->range());
        p->yAxis->setRange(source->yAxis->range());
        p->replot(QCustomPlot::rpQueuedReplot);
    }
    m_mass->yAxis->setRange(source->yAxis->range());
    m_mass->replot(QCustomPlot::rpQueuedReplot);
    m_syncing = false;
}

void AttentionView::onGridClick(QMouseEvent* event) {
    if (!m_data)
        return;
    const double x = m_grid->xAxis->pixelToCoord(event->position().x());
    const double y = m_grid->yAxis->pixelToCoord(event->position().y());
    const int nctx = m_data->contextTokens;
    const int nprobe = m_data->probeTokens;
    const double gapX = std::max(2.0, 0.12 * nctx);
    const double gapY = std::max(2.0, 0.25 * nprobe);
    const int h = static_cast<int>(std::floor((x + gapX / 2) / (nctx + gapX)));
    const int l = static_cast<int>(std::floor((y + gapY / 2) / (nprobe + gapY)));
    if (h >= 0 && h < m_data->heads && l >= 0 && l < m_data->layers)
        setSelection(l, h);
}

double AttentionView::cellValue(int which, int row, int key) const {
    const Matrix* m = m_shown[static_cast<std::size_t>(which)];
    if (!m || row < 0 || key < 0 || key >= m->cols() || row >= m->rows())
        return std::nan("");
    return static_cast<double>((*m)(row, key));
}

bool AttentionView::hoverCell(int row, int key) {
    if (!m_data || row < 0 || key < 0 || row >= m_data->probeTokens ||
        key >= m_data->contextTokens) {
        for (QCPItemRect* c : m_cursor)
            c->setVisible(false);
        return false;
    }
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    const std::size_t kv = run.headIndex(m_layer, m_head, m_data->layers, m_data->heads);
    const int query = m_data->contextTokens + row;
    QString keptText = tr("evicted");
    if (kv < run.kept.size()) {
        const auto& positions = run.kept[kv].positions;
        const auto it = std::lower_bound(positions.begin(), positions.end(), key);
        if (it != positions.end() && *it == key) {
            const auto i = static_cast<std::size_t>(it - positions.begin());
            const double w = i < run.kept[kv].weights.size() ? run.kept[kv].weights[i] : 1.0;
            keptText = tr("kept, weight %1").arg(w, 0, 'g', 3);
        }
    }
    const double e = cellValue(0, row, key);
    const double c = cellValue(1, row, key);
    const double d = cellValue(2, row, key);
    const auto tokenText = [this](int t) {
        return t < m_data->tokenTexts.size() ? tokenLabel(m_data->tokenTexts[t]) : QString();
    };
    m_readout->setText(tr("query %1 \u201c%2\u201d \u2192 key %3 \u201c%4\u201d: exact %5, "
                          "compressed %6, difference %7 (%8)")
                           .arg(query)
                           .arg(tokenText(query))
                           .arg(key)
                           .arg(tokenText(key))
                           .arg(e, 0, 'f', 4)
                           .arg(c, 0, 'f', 4)
                           .arg(d, 0, 'f', 4)
                           .arg(keptText));
    for (std::size_t i = 0; i < 3; ++i) {
        m_cursor[i]->topLeft->setCoords(key - 0.5, row - 0.5);
        m_cursor[i]->bottomRight->setCoords(key + 0.5, row + 0.5);
        m_cursor[i]->setVisible(true);
        m_maps[i]->replot(QCustomPlot::rpQueuedReplot);
    }
    return true;
}

void AttentionView::onHover(QCustomPlot* plot, QMouseEvent* event) {
    const int key = static_cast<int>(std::lround(plot->xAxis->pixelToCoord(event->position().x())));
    const int row = static_cast<int>(std::lround(plot->yAxis->pixelToCoord(event->position().y())));
    hoverCell(row, key);
}

QString AttentionView::readoutText() const {
    return m_readout->text();
}

CsvTable AttentionView::mapCsv(int which) const {
    CsvTable t;
    t.header = {QStringLiteral("layer"), QStringLiteral("query_head"),
                QStringLiteral("query_position"), QStringLiteral("key_position"),
                which == 2 ? QStringLiteral("probability_difference")
                           : QStringLiteral("probability")};
    // Every key, whatever the map's pooling on screen.
    const Matrix* m = m_shown[static_cast<std::size_t>(which)];
    if (!m_data || !m)
        return t;
    for (int r = 0; r < m->rows(); ++r)
        for (int c = 0; c < m->cols(); ++c)
            t.rows.push_back({QString::number(m_layer), QString::number(m_head),
                              QString::number(m_data->contextTokens + r), QString::number(c),
                              QString::number((*m)(r, c), 'g', 8)});
    return t;
}

CsvTable AttentionView::gridCsv() const {
    CsvTable t{csvColumns("layer,query_head,kv_head,head_output_error,total_variation,mass_lost,"
                          "context_error,kept_tokens")};
    if (!m_data)
        return t;
    const SchemeRun& run = m_data->runs[static_cast<std::size_t>(m_run)];
    for (int l = 0; l < m_data->layers; ++l)
        for (int h = 0; h < m_data->heads; ++h) {
            const std::size_t kv = run.headIndex(l, h, m_data->layers, m_data->heads);
            if (kv >= run.eval.heads.size())
                continue;
            const HeadMetrics& hm = run.eval.heads[kv];
            t.rows.push_back(
                {QString::number(l), QString::number(h), QString::number(hm.kvHead),
                 QString::number(hm.outputError, 'g', 8),
                 QString::number(hm.totalVariation, 'g', 8), QString::number(hm.massLost, 'g', 8),
                 QString::number(hm.contextError, 'g', 8), QString::number(hm.keptTokens)});
        }
    return t;
}

CsvTable AttentionView::massCsv() const {
    CsvTable t{csvColumns("query_position,mass_lost")};
    if (!m_data)
        return t;
    for (auto it = m_massBars->data()->constBegin(); it != m_massBars->data()->constEnd(); ++it)
        t.rows.push_back({QString::number(m_data->contextTokens + static_cast<int>(it->key)),
                          QString::number(it->value, 'g', 8)});
    return t;
}

std::vector<ChartHandle> AttentionView::charts() const {
    return {{QStringLiteral("attention_grid"), m_grid, [this] { return gridCsv(); }},
            {QStringLiteral("attention_exact"), m_maps[0], [this] { return mapCsv(0); }},
            {QStringLiteral("attention_compressed"), m_maps[1], [this] { return mapCsv(1); }},
            {QStringLiteral("attention_difference"), m_maps[2], [this] { return mapCsv(2); }},
            {QStringLiteral("attention_mass_lost"), m_mass, [this] { return massCsv(); }}};
}

} // namespace kvs::views
