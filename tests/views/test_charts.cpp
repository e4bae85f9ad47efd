// SPDX-License-Identifier: MIT
// The chart views on hand-made results (no engine): colour maps, the attention maps with hover
// readout and evicted keys, the trade-off chart's Pareto front and current points, the cache
// bars and totals, the profile's honest device label, and chart export to PNG/SVG/PDF/CSV.
#include "kvs_test.h"

#include "kvs/sweep.h"

#include "attention_view.h"
#include "cache_view.h"
#include "chart_export.h"
#include "legend_placement.h"
#include "plot_style.h"
#include "profile_view.h"
#include "rate_view.h"
#include "tradeoff_view.h"

#include <QFile>
#include <QImage>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QSet>
#include <QTableWidget>
#include <QTest>
#include <qcustomplot.h>

#include <map>

using namespace kvs::views;

namespace {

constexpr int kCtx = 6;
constexpr int kProbe = 3;

// One layer, two query heads sharing one KV head; keys 1 and 4 evicted.
std::shared_ptr<AnalysisData> makeAnalysis() {
    auto a = std::make_shared<AnalysisData>();
    a->layers = 1;
    a->heads = 2;
    a->kvHeads = 1;
    a->headDim = 4;
    a->contextTokens = kCtx;
    a->probeTokens = kProbe;
    for (int i = 0; i < kCtx + kProbe; ++i)
        a->tokenTexts << QString(QChar('a' + i));
    a->backendName = QStringLiteral("llvmpipe (LLVM 15)");
    a->evaluationBackend = QStringLiteral("CPU (Eigen)");
    a->backendIsGpu = true;
    a->cpuEmulation = true;
    a->provenance.modelName = QStringLiteral("unit");
    a->provenance.version = QStringLiteral("test");
    SchemeRun run;
    run.displayName = QStringLiteral("Test scheme");
    run.setting = QStringLiteral("select.uniform:keep=0.5");
    kvs::HeadMetrics h;
    h.layer = 0;
    h.kvHead = 0;
    h.contextTokens = kCtx;
    h.keptTokens = 4;
    h.bytes.keys = 100;
    h.bytes.values = 60;
    h.bytes.metadata = 16;
    h.fp16Bytes = 4 * 4 * kCtx;
    h.contextError = 0.25;
    HeadMaps maps;
    std::vector<kvs::Matrix> exact;
    for (int j = 0; j < 2; ++j) {
        kvs::Matrix e(kProbe, kCtx);
        kvs::Matrix c(kProbe, kCtx);
        for (int r = 0; r < kProbe; ++r)
            for (int k = 0; k < kCtx; ++k) {
                e(r, k) = static_cast<float>(0.01 * (r * kCtx + k + 1) + j);
                c(r, k) = (k == 1 || k == 4) ? 0.0f : e(r, k) * 1.5f;
            }
        exact.push_back(e);
        maps.compressed.push_back(c);
        maps.difference.push_back(c - e);
        maps.rowMass.push_back({0.1, 0.2, 0.3});
    }
    // The exact maps live in the reference (layer 0, query heads 0 and 1).
    auto reference = std::make_shared<kvs::ExactReference>();
    reference->attention.resize(1);
    for (kvs::Matrix& e : exact) {
        kvs::AttendResult r;
        r.probabilities = std::move(e);
        reference->attention[0].push_back(std::move(r));
    }
    maps.reference = reference;
    maps.groupSize = 2;
    run.eval.heads.push_back(h);
    run.eval.bytes = h.bytes;
    run.eval.fp16Bytes = h.fp16Bytes;
    run.eval.memoryFraction =
        static_cast<double>(h.bytes.total()) / static_cast<double>(h.fp16Bytes);
    run.eval.contextError = 0.25;
    run.maps = std::make_shared<const std::vector<HeadMaps>>(std::vector<HeadMaps>{maps});
    run.kept.push_back({{0, 2, 3, 5}, {1.0f, 2.0f, 1.0f, 1.0f}});
    run.dispatches.push_back({"probe_split_sg", 120.0, 4000, 1000});
    run.dispatches.push_back({"combine", 30.0, 1000, 500});
    run.dispatchLayer = {0, 0};
    a->runs.push_back(run);
    return a;
}

// One layer, one head, `ctx` context keys and 4 probe rows: smooth weights with one strong key
// (row 2, key `spike`) that pooling must not hide.
std::shared_ptr<AnalysisData> makeLongAnalysis(int ctx, int spike) {
    auto a = std::make_shared<AnalysisData>();
    a->layers = 1;
    a->heads = 1;
    a->kvHeads = 1;
    a->headDim = 4;
    a->contextTokens = ctx;
    a->probeTokens = 4;
    for (int i = 0; i < ctx + 4; ++i)
        a->tokenTexts << QStringLiteral("t%1").arg(i);
    SchemeRun run;
    run.displayName = QStringLiteral("Long");
    run.setting = QStringLiteral("select.uniform:keep=1");
    kvs::HeadMetrics h;
    h.contextTokens = ctx;
    h.keptTokens = ctx;
    kvs::Matrix e(4, ctx);
    for (int r = 0; r < 4; ++r)
        for (int k = 0; k < ctx; ++k)
            e(r, k) = static_cast<float>(1e-4 * (1.0 + std::sin(0.01 * k + r)));
    e(2, spike) = 0.5f;
    HeadMaps maps;
    maps.compressed.push_back(e * 0.9f);
    maps.difference.push_back(e * -0.1f);
    maps.rowMass.push_back({0, 0, 0, 0});
    auto reference = std::make_shared<kvs::ExactReference>();
    reference->attention.resize(1);
    kvs::AttendResult exact;
    exact.probabilities = e;
    reference->attention[0].push_back(std::move(exact));
    maps.reference = reference;
    maps.groupSize = 1;
    run.eval.heads.push_back(h);
    run.maps = std::make_shared<const std::vector<HeadMaps>>(std::vector<HeadMaps>{maps});
    KeptTokens all;
    for (int k = 0; k < ctx; ++k) {
        all.positions.push_back(k);
        all.weights.push_back(1.0f);
    }
    run.kept.push_back(all);
    a->runs.push_back(run);
    return a;
}

// The drawn cell of colour map `map` at plot coordinates (key, row).
double drawnAt(QCPColorMap* map, double key, double row) {
    int k = 0, r = 0;
    map->data()->coordToCell(key, row, &k, &r);
    return map->data()->cell(k, r);
}

} // namespace

class TestCharts : public QObject {
    Q_OBJECT

private slots:
    void colourMapsArePerceptualAndCentred() {
        QCPColorGradient v = viridisGradient();
        QCOMPARE(QColor(v.color(0.0, QCPRange(0, 1))).name(), QStringLiteral("#440154"));
        QCOMPARE(QColor(v.color(1.0, QCPRange(0, 1))).name(), QStringLiteral("#fde725"));
        // Luminance rises monotonically along viridis and cividis.
        for (QCPColorGradient g : {viridisGradient(), cividisGradient()}) {
            double last = -1;
            for (int i = 0; i <= 10; ++i) {
                const QColor c(g.color(i / 10.0, QCPRange(0, 1)));
                const double l = 0.2126 * c.redF() + 0.7152 * c.greenF() + 0.0722 * c.blueF();
                QVERIFY(l >= last - 0.02);
                last = l;
            }
        }
        // The diverging map is light at zero of a symmetric range.
        QCPColorGradient diverging = divergingGradient();
        const QColor centre(diverging.color(0.0, QCPRange(-1, 1)));
        QVERIFY(centre.lightness() > 230);
        QVERIFY(categoricalColor(0) != categoricalColor(1));
    }

    // Bounds whose constants are unknown are shown as the nearest power of ten.
    void orderOfMagnitudeLabels_data() {
        QTest::addColumn<double>("value");
        QTest::addColumn<QString>("label");
        QTest::addRow("one") << 1.0 << QStringLiteral("10\u2070");
        QTest::addRow("rounds down on log scale") << 3.0e14 << QStringLiteral("10\u00B9\u2074");
        QTest::addRow("rounds up on log scale") << 4.0e14 << QStringLiteral("10\u00B9\u2075");
        QTest::addRow("small") << 0.002 << QStringLiteral("10\u207B\u00B3");
        QTest::addRow("cap") << 1e300 << QStringLiteral("\u2265 10\u00B3\u2070\u2070");
        QTest::addRow("infinite") << std::numeric_limits<double>::infinity()
                                  << QStringLiteral("\u221E");
        QTest::addRow("zero") << 0.0 << QString();
        QTest::addRow("nan") << std::numeric_limits<double>::quiet_NaN() << QString();
    }
    void orderOfMagnitudeLabels() {
        QFETCH(double, value);
        QFETCH(QString, label);
        QCOMPARE(orderOfMagnitude(value), label);
    }

    // The colour scales: the cells keep the weights, the colours follow √ or log of them, the
    // legend names the scale, the difference map stays linear.
    void attentionColourScales() {
        AttentionView view;
        view.resize(1000, 700);
        view.show();
        const auto a = makeAnalysis();
        view.setData(a, 0);
        const double weight = view.cellValue(0, 2, 3);
        QCPColorMap* exact = view.colourMap(0);
        const double top = exact->dataRange().upper;
        QVERIFY(weight > 0 && weight < top);
        QCPColorGradient viridis = viridisGradient();
        const auto colourOf = [](QCPColorMap* map, double v) {
            QCPColorGradient g = map->gradient();
            return QColor::fromRgb(
                g.color(v, map->dataRange(), map->dataScaleType() == QCPAxis::stLogarithmic));
        };
        const auto close = [](QColor x, QColor y) {
            return std::abs(x.red() - y.red()) <= 3 && std::abs(x.green() - y.green()) <= 3 &&
                   std::abs(x.blue() - y.blue()) <= 3;
        };
        QCOMPARE(view.colourLegend(0)->axis()->label(), QStringLiteral("weight"));

        view.setColourScale(AttentionView::ColourScale::SquareRoot);
        QCOMPARE(view.cellValue(0, 2, 3), weight); // the data is untouched
        QCOMPARE(exact->dataRange().upper, top);
        const QColor sqrtColour = colourOf(exact, weight);
        const QColor expected = QColor::fromRgb(viridis.color(std::sqrt(weight / top), {0, 1}));
        QVERIFY2(close(sqrtColour, expected),
                 qPrintable(sqrtColour.name() + " vs " + expected.name()));
        QVERIFY(!close(sqrtColour, QColor::fromRgb(viridis.color(weight / top, {0, 1}))));
        QVERIFY(view.colourLegend(0)->axis()->label().contains(QStringLiteral("\u221a")));

        view.setColourScale(AttentionView::ColourScale::Log);
        QCOMPARE(exact->dataScaleType(), QCPAxis::stLogarithmic);
        QCOMPARE(view.colourLegend(0)->axis()->scaleType(), QCPAxis::stLogarithmic);
        QCOMPARE(exact->dataRange().lower, top * 1e-4);
        // Two decades below the top sit half-way up four decades.
        const QColor half = colourOf(exact, top * 1e-2);
        QVERIFY(close(half, QColor::fromRgb(viridis.color(0.5, {0, 1}))));
        QVERIFY(view.colourLegend(0)->axis()->label().contains(QStringLiteral("log")));
        QCOMPARE(view.colourMap(2)->dataScaleType(), QCPAxis::stLinear);
        QCOMPARE(view.colourLegend(2)->axis()->label(), QStringLiteral("difference (linear)"));

        view.setColourScale(AttentionView::ColourScale::Linear);
        QCOMPARE(exact->dataScaleType(), QCPAxis::stLinear);
        QVERIFY(
            close(colourOf(exact, weight), QColor::fromRgb(viridis.color(weight / top, {0, 1}))));
    }

    // Thousands of keys are drawn pooled to the pixels: no more cells than the plot has pixels,
    // the strong key still visible under max pooling, block means under mean pooling, and cell
    // for cell once zoomed to fewer keys than pixels. Hover and export keep every key.
    void attentionMapsPooledToPixels() {
        constexpr int ctx = 6000, spike = 4321;
        AttentionView view;
        view.resize(1000, 700);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        const auto a = makeLongAnalysis(ctx, spike);
        const kvs::Matrix& exact = a->runs[0].maps->at(0).reference->attention[0][0].probabilities;
        view.setData(a, 0);
        QCPColorMap* map = view.colourMap(0);
        QVERIFY2(map->data()->keySize() <= view.mapPlot(0)->width(),
                 qPrintable(QString::number(map->data()->keySize())));
        QVERIFY(view.keysPerCell(0) > 1);
        QVERIFY(view.colourLegend(0)->axis()->label().contains(QStringLiteral("max of")));
        QCOMPARE(drawnAt(map, spike, 2), 0.5);
        QCOMPARE(drawnAt(view.colourMap(2), spike, 2), -0.05f); // the difference keeps its sign
        QCOMPARE(view.cellValue(0, 2, spike), 0.5);
        QCOMPARE(view.cellValue(0, 1, 17), static_cast<double>(exact(1, 17)));
        // The grid's thumbnail is pooled too.
        QVERIFY(view.gridKeysPerCell() > 1);

        view.setPooling(kvs::MapPooling::Mean);
        QVERIFY(view.colourLegend(0)->axis()->label().contains(QStringLiteral("mean of")));
        {
            const int cells = map->data()->keySize();
            int c = 0, r = 0;
            map->data()->coordToCell(spike, 2, &c, &r);
            const int k0 = kvs::blockStart(c, ctx, cells), k1 = kvs::blockStart(c + 1, ctx, cells);
            QVERIFY(k0 <= spike && spike < k1);
            const double mean = exact.block(2, k0, 1, k1 - k0).cast<double>().mean();
            QVERIFY2(std::abs(map->data()->cell(c, r) - mean) < 1e-6,
                     qPrintable(QString("%1 vs %2").arg(map->data()->cell(c, r)).arg(mean)));
        }

        // Zoomed in to 60 keys: the weights themselves, for every key of the window.
        view.mapPlot(0)->xAxis->setRange(spike - 30.5, spike + 29.5);
        QTRY_COMPARE(view.keysPerCell(0), 1);
        QVERIFY(!view.colourLegend(0)->axis()->label().contains(QStringLiteral("of")));
        for (int k = spike - 30; k < spike + 30; ++k)
            for (int r = 0; r < 4; ++r)
                QCOMPARE(drawnAt(map, k, r), static_cast<double>(exact(r, k)));
        QCOMPARE(drawnAt(view.colourMap(1), spike, 2), static_cast<double>(exact(2, spike) * 0.9f));
        // Zoomed back out: pooled again.
        view.mapPlot(0)->xAxis->setRange(-0.5, ctx - 0.5);
        QTRY_VERIFY(view.keysPerCell(0) > 1);
    }

    void attentionMapsHoverAndEvictedKeys() {
        AttentionView view;
        view.resize(1000, 700);
        view.show();
        const auto a = makeAnalysis();
        view.setData(a, 0);
        QCOMPARE(view.gridPlot()->plottableCount(), 2); // one thumbnail per query head
        QCOMPARE(view.cellValue(0, 2, 3),
                 static_cast<double>((*a->runs[0].maps->at(0).exact(0))(2, 3)));
        QCOMPARE(view.cellValue(1, 0, 1), 0.0);
        QCOMPARE(view.evictedMarkCount(), 2); // keys 1 and 4: two runs
        QVERIFY(view.hoverCell(1, 2));
        const QString text = view.readoutText();
        QVERIFY2(text.contains(QStringLiteral("query 7")), qPrintable(text));
        QVERIFY(text.contains(QStringLiteral("key 2")));
        QVERIFY(text.contains(QStringLiteral("kept, weight 2")));
        QVERIFY(view.hoverCell(0, 4));
        QVERIFY(view.readoutText().contains(QStringLiteral("evicted")));
        QVERIFY(!view.hoverCell(5, 0));
        // Difference map: symmetric colour range around 0.
        QCPColorMap* diff = nullptr;
        for (int i = 0; i < view.mapPlot(2)->plottableCount(); ++i)
            diff = qobject_cast<QCPColorMap*>(view.mapPlot(2)->plottable(i));
        QVERIFY(diff);
        QCOMPARE(diff->dataRange().lower, -diff->dataRange().upper);
        // Second head of the group, and synced zoom.
        view.setSelection(0, 1);
        QCOMPARE(view.cellValue(0, 0, 0),
                 static_cast<double>((*a->runs[0].maps->at(0).exact(1))(0, 0)));
        view.mapPlot(0)->xAxis->setRange(1, 3);
        QCOMPARE(view.mapPlot(1)->xAxis->range().lower, 1.0);
        QCOMPARE(view.mapPlot(2)->xAxis->range().upper, 3.0);
        view.setMode(AttentionView::Mode::Difference);
        QVERIFY(view.mapPlot(0)->isHidden());
        QVERIFY(!view.mapPlot(2)->isHidden());
    }

    void tradeoffParetoAndCurrent() {
        TradeoffView view;
        view.resize(800, 600);
        auto sweeps = std::make_shared<SweepData>();
        TradeoffCurve c;
        c.displayName = QStringLiteral("A");
        c.parameter = QStringLiteral("keep");
        const std::vector<std::pair<std::size_t, double>> pts = {
            {100, 0.5}, {200, 0.2}, {400, 0.3}, {800, 0.01}};
        for (const auto& [bytes, err] : pts) {
            CurvePoint p;
            p.value = static_cast<double>(bytes) / 800.0;
            p.result.bytes.keys = bytes;
            p.result.contextError = err;
            c.points.push_back(p);
        }
        sweeps->curves.push_back(c);
        // The analysis hands the view its front (core's paretoFront over the chart points).
        std::vector<double> bytes, error;
        for (const auto& [b, e] : pts) {
            bytes.push_back(static_cast<double>(b));
            error.push_back(e);
        }
        for (std::size_t i : kvs::paretoFront(bytes, error))
            sweeps->paretoFront[static_cast<std::size_t>(Metric::ContextError)].push_back(
                {0, static_cast<int>(i)});
        view.setMetric(Metric::ContextError); // the chart opens on KL, which these points lack
        view.setCurves(sweeps);
        QCOMPARE(view.curveCount(), 1);
        QCOMPARE(view.paretoPointCount(), 3); // (400, 0.3) is dominated by (200, 0.2)
        view.setCurrent(makeAnalysis());
        QCOMPARE(view.currentPoint(0).x(), 176.0);
        QCOMPARE(view.currentPoint(0).y(), 0.25);
        QVERIFY(view.summaryText().contains(QStringLiteral("176 B")));
        QCOMPARE(view.plot()->xAxis->scaleType(), QCPAxis::stLogarithmic);
        QCOMPARE(view.plot()->yAxis->scaleType(), QCPAxis::stLogarithmic);

        // The legend sits below the axes and their labels in a row of its own (#15: inside the
        // axis rect it covered part of the curves), in the window and at an export's size.
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QCustomPlot* plot = view.plot();
        plot->replot(QCustomPlot::rpImmediateRefresh);
        for (const QSize size : {plot->size(), QSize(321, 300)}) {
            plot->toPixmap(size.width(), size.height()); // its layout stays until the next replot
            QVERIFY(plot->legend->visible());
            QCOMPARE(plot->legend->layout(), static_cast<QCPLayout*>(plot->plotLayout()));
            QVERIFY(plot->legend->outerRect().top() >= plot->axisRect()->outerRect().bottom());
            QVERIFY(plot->legend->outerRect().bottom() <= size.height());
        }
    }

    // A point at a degenerate budget is drawn differently — a hollow grey ring over its curve's
    // marker, in a graph marked "kvsDegenerate" — explained in the legend, the summary and its
    // tooltip; the other points are not marked.
    void tradeoffMarksDegenerateBudgets() {
        TradeoffView view;
        view.resize(800, 600);
        auto sweeps = std::make_shared<SweepData>();
        TradeoffCurve c;
        c.displayName = QStringLiteral("TOVA");
        c.parameter = QStringLiteral("keep");
        const std::string reason =
            "budget 20 tokens < sinks 4 + window 32: cut to 4 + 16, nothing chosen";
        for (int i = 1; i <= 4; ++i) {
            CurvePoint p;
            p.value = 0.1 * i;
            p.result.bytes.keys = static_cast<std::size_t>(100 * i);
            p.result.contextError = 0.4 / i;
            p.result.heads.resize(2);
            if (i == 1) {
                p.result.degenerateHeads = 2;
                p.result.degenerate = reason;
            }
            c.points.push_back(p);
        }
        sweeps->curves.push_back(c);
        view.setMetric(Metric::ContextError);
        view.setCurves(sweeps);
        view.plot()->replot();
        QCOMPARE(view.degenerateMarkCount(), 1);
        QCPGraph* rings = nullptr;
        for (int i = 0; i < view.plot()->graphCount(); ++i)
            if (view.plot()->graph(i)->property("kvsDegenerate").toBool())
                rings = view.plot()->graph(i);
        QVERIFY(rings);
        QCOMPARE(rings->data()->size(), 1);
        QCOMPARE(rings->data()->begin()->key, 100.0);
        QCOMPARE(rings->data()->begin()->value, 0.4);
        QCOMPARE(rings->lineStyle(), QCPGraph::lsNone);
        const QCPScatterStyle ring = rings->scatterStyle();
        QCOMPARE(ring.shape(), QCPScatterStyle::ssCircle);
        QVERIFY(ring.size() > view.plot()->graph(0)->scatterStyle().size()); // covers the marker
        QVERIFY(ring.pen().color() !=
                view.plot()->graph(0)->pen().color()); // grey, not the curve's
        QCOMPARE(ring.brush().color(),
                 view.plot()->axisRect()->backgroundBrush().color()); // hollow
        QVERIFY(rings->name().contains(QStringLiteral("degenerate")));
        QVERIFY2(view.summaryText().contains(QStringLiteral("degenerate")) &&
                     view.summaryText().contains(QString::fromStdString(reason)),
                 qPrintable(view.summaryText()));
        // The tooltip of the flagged point gives the reason; a normal point's does not.
        const auto pixel = [&](double x, double y) {
            return QPointF(view.plot()->xAxis->coordToPixel(x),
                           view.plot()->yAxis->coordToPixel(y));
        };
        const QString tip = view.pointToolTip(pixel(100, 0.4));
        QVERIFY2(tip.contains(QString::fromStdString(reason)) &&
                     tip.contains(QStringLiteral("2 of 2")),
                 qPrintable(tip));
        const QString normal = view.pointToolTip(pixel(200, 0.2));
        QVERIFY2(normal.contains(QStringLiteral("TOVA")) &&
                     !normal.contains(QStringLiteral("egenerate")),
                 qPrintable(normal));
        // Without degenerate points there is no ring graph.
        sweeps->curves[0].points[0].result.degenerateHeads = 0;
        view.setCurves(sweeps);
        QCOMPARE(view.degenerateMarkCount(), 0);
        for (int i = 0; i < view.plot()->graphCount(); ++i)
            QVERIFY(!view.plot()->graph(i)->property("kvsDegenerate").toBool());
    }

    void tradeoffColoursBySchemeOrFamily() {
        TradeoffView view;
        view.resize(800, 600);
        auto sweeps = std::make_shared<SweepData>();
        const std::vector<std::pair<QString, int>> curves = {{QStringLiteral("selection"), 0},
                                                             {QStringLiteral("selection"), 1},
                                                             {QStringLiteral("codec"), 2}};
        for (const auto& [family, index] : curves) {
            TradeoffCurve c;
            c.family = family;
            c.displayName = QStringLiteral("S%1").arg(index);
            c.colorIndex = index;
            for (int i = 1; i <= 3; ++i) {
                CurvePoint p;
                p.result.bytes.keys = static_cast<std::size_t>(100 * i);
                p.result.contextError = 0.1 / i;
                c.points.push_back(p);
            }
            sweeps->curves.push_back(c);
        }
        view.setMetric(Metric::ContextError);
        view.setCurves(sweeps);
        const auto pen = [&](int i) { return view.plot()->graph(i)->pen().color(); };
        QCOMPARE(view.colouring(), TradeoffView::Colouring::Scheme);
        QVERIFY(pen(0) != pen(1));
        QCOMPARE(pen(2), categoricalColor(2));
        view.setColouring(TradeoffView::Colouring::Family);
        QCOMPARE(pen(0), pen(1)); // one family, one colour
        QVERIFY(pen(0) != pen(2));
        QCOMPARE(pen(2), categoricalColor(familyColorIndex(QStringLiteral("codec"))));
        // Dashes still tell the two selections apart.
        QVERIFY(view.plot()->graph(0)->pen().style() != view.plot()->graph(1)->pen().style());
        QVERIFY(view.legendText(2).startsWith(QStringLiteral("codec")));
    }

    // Rate–distortion: only quantizing curves, an entropy twin where coded, and the focused
    // run's gap per head with its breakdown (hand-computed bits).
    void rateViewDrawsCodecsAndTheGap() {
        RateView view;
        view.resize(900, 600);
        auto sweeps = std::make_shared<SweepData>();
        const auto point = [](double value, std::size_t bytes, double kl, bool coded) {
            CurvePoint p;
            p.value = value;
            p.result.bytes.values = bytes;
            p.result.fp16Bytes = 2000; // 1000 fp16 elements
            kvs::ModelQuality q;
            q.klMean = kl;
            p.result.quality = q;
            if (coded) { // every element coded; 10% of the bits are side information
                p.result.codedElements = 1000;
                p.result.streamBits = 0.9 * 8.0 * static_cast<double>(bytes);
                p.result.sideBits = 0.1 * 8.0 * static_cast<double>(bytes);
                p.result.entropyBits = 0.8 * 8.0 * static_cast<double>(bytes);
            }
            return p;
        };
        TradeoffCurve selection;
        selection.displayName = QStringLiteral("Selection");
        selection.points = {point(0.25, 500, 0.1, false)};
        TradeoffCurve uniform;
        uniform.displayName = QStringLiteral("Uniform");
        uniform.family = QStringLiteral("codec");
        uniform.quantizes = true;
        uniform.points = {point(2, 250, 0.2, false), point(4, 500, 0.01, false)};
        TradeoffCurve entropy;
        entropy.displayName = QStringLiteral("Entropy");
        entropy.family = QStringLiteral("codec");
        entropy.quantizes = true;
        entropy.points = {point(1, 300, 0.05, true), point(0.5, 600, 0.005, true)};
        sweeps->curves = {selection, uniform, entropy};
        view.sweepsChanged(sweeps);
        QCOMPARE(view.curveCount(), 3); // uniform, entropy and its twin; not the selection
        QVERIFY(view.curveName(0).contains(QStringLiteral("Uniform")));
        QVERIFY(view.curveName(2).contains(QStringLiteral("at its entropy")));
        const auto* rate = view.curvePlot()->graph(0)->data().data();
        QCOMPARE(rate->at(0)->key, 2.0); // 8·250 / 1000 bits per element
        QCOMPARE(rate->at(1)->key, 4.0);
        QCOMPARE(view.curvePlot()->graph(2)->data()->at(0)->key, 0.8 * 2.4); // 2.4 at entropy

        auto analysis = makeAnalysis();
        auto data = std::make_shared<AnalysisData>(*analysis);
        SchemeRun& run = data->runs.front();
        run.quantizes = true;
        run.eval.heads.front().codedElements = 100;
        run.eval.heads.front().streamBits = 300;
        run.eval.heads.front().sideBits = 50;
        run.eval.heads.front().entropyBits = 280;
        run.eval.codedElements = 100;
        run.eval.streamBits = 300;
        run.eval.sideBits = 50;
        run.eval.entropyBits = 280;
        view.setAnalysis(data, 0);
        QCOMPARE(view.gapCellCount(), 1);
        // 3.5 coded = 3.0 stream + 0.5 side; entropy 2.8; gap 0.7 of which 0.2 the coder's.
        const QString summary = view.summaryText();
        QVERIFY2(summary.contains(QStringLiteral("3.500 bits per coded element")) &&
                     summary.contains(QStringLiteral("entropy is 2.800")) &&
                     summary.contains(QStringLiteral("gap of 0.700 bits, 0.200")),
                 qPrintable(summary));
        const auto charts = view.charts();
        QCOMPARE(charts.size(), std::size_t{2});
        const CsvTable gap = charts[1].data();
        QCOMPARE(gap.rows.size(), std::size_t{1});
        QCOMPARE(gap.rows[0].last().toDouble(), 0.7);
        QCOMPARE(charts[0].data().rows.size(), std::size_t{4}); // the quantizing curves' points

        // A fixed-width codec: no gap grid, and the summary says why.
        run.eval = kvs::EvalResult{};
        run.eval.fp16Bytes = 2000;
        run.eval.bytes.values = 500;
        view.setAnalysis(data, 0);
        QCOMPARE(view.gapCellCount(), 0);
        QVERIFY(view.summaryText().contains(QStringLiteral("fixed-width")));
    }

    void cacheAndProfile() {
        CacheView cache;
        cache.setData(makeAnalysis(), 0);
        QTableWidget* t = cache.totalsTable();
        QCOMPARE(t->rowCount(), 2);
        QCOMPARE(t->item(1, 3)->text(), QStringLiteral("176"));
        QCOMPARE(t->item(1, 4)->text(), QStringLiteral("96"));
        QVERIFY(cache.totalsText().contains(QStringLiteral("183.3%")));

        ProfileView profile;
        profile.setData(makeAnalysis(), 0);
        QVERIFY(profile.deviceText().contains(QStringLiteral("CPU emulation")));
        QCOMPARE(profile.table()->rowCount(), 2);
        QVERIFY(profile.summaryText().contains(QStringLiteral("150.0")));
        // 6500 bytes in 150 µs = 0.04 GB/s
        QVERIFY2(profile.summaryText().contains(QStringLiteral("0.04 GB/s")),
                 qPrintable(profile.summaryText()));
        profile.table()->sortItems(2);
        QCOMPARE(profile.table()->item(0, 1)->text(), QStringLiteral("combine"));
    }

    // The cache bars of 6 layers × 6 KV heads (#15: 36 labels crowded together, and the legend
    // hid some bars' fp16 markers). The x labels never overlap at the width drawn: every head
    // when wide; narrower, every k-th head of each layer (k divides the KV heads, so each
    // layer's first head keeps its label) at least a label's width and a gap apart; a line
    // between layers. One fp16 marker per bar, none hidden: the legend has a row of its own.
    void cacheBarsLabelsAndMarkers() {
        auto a = makeAnalysis();
        a->layers = 6;
        a->heads = 6;
        a->kvHeads = 6;
        SchemeRun& run = a->runs.front();
        const kvs::HeadMetrics one = run.eval.heads.front();
        run.eval.heads.clear();
        for (int l = 0; l < 6; ++l)
            for (int h = 0; h < 6; ++h) {
                kvs::HeadMetrics head = one;
                head.layer = l;
                head.kvHead = h;
                head.fp16Bytes = 96 + 10 * h; // markers at different heights
                run.eval.heads.push_back(head);
            }
        CacheView cache;
        cache.show();
        QVERIFY(QTest::qWaitForWindowExposed(&cache));
        cache.setData(a, 0);
        QCustomPlot* bars = cache.charts().front().plot;
        QCOMPARE(cache.charts().front().name, QStringLiteral("cache_bytes"));

        const auto labelled = [&](int width) {
            cache.resize(width, 700);
            QCoreApplication::processEvents();
            bars->replot(QCustomPlot::rpImmediateRefresh);
            bars->replot(QCustomPlot::rpImmediateRefresh); // the margins of this width
            return bars->xAxis->tickVector();
        };
        const QFontMetricsF metrics(bars->xAxis->tickLabelFont());
        const double labelWidth = metrics.horizontalAdvance(QStringLiteral("L5/5"));
        QSet<int> counts;
        for (int width : {3000, 1200, 700, 420, 300}) {
            const QVector<double> ticks = labelled(width);
            const QVector<QString> labels = bars->xAxis->tickVectorLabels();
            const QString at = QStringLiteral("at %1 px: %2 labels")
                                   .arg(bars->axisRect()->width())
                                   .arg(QStringList(labels.begin(), labels.end()).join(' '));
            QVERIFY2(!ticks.isEmpty() && ticks.size() == labels.size(), qPrintable(at));
            counts << static_cast<int>(ticks.size());
            QCOMPARE(labels.front(), QStringLiteral("L0/0"));
            // Evenly every k-th head, k a divisor of 6, or the first head of every m-th layer.
            const int k = ticks.size() > 1 ? qRound(ticks[1] - ticks[0]) : 36;
            QVERIFY2(k == 1 || k == 2 || k == 3 || k % 6 == 0, qPrintable(at));
            for (int i = 0; i < ticks.size(); ++i) {
                QCOMPARE(ticks[i], double(i * k));
                const int head = i * k;
                QCOMPARE(labels[i], QStringLiteral("L%1/%2").arg(head / 6).arg(head % 6));
                if (i > 0) { // no overlap: a label's width and a gap apart
                    const double apart = bars->xAxis->coordToPixel(ticks[i]) -
                                         bars->xAxis->coordToPixel(ticks[i - 1]);
                    QVERIFY2(apart >= labelWidth + 0.5 * metrics.height() - 1.0,
                             qPrintable(at + QStringLiteral(": %1 px apart").arg(apart)));
                }
            }
            // The smallest k that fits: half as many heads apart would overlap.
            if (k > 1 && k <= 6) {
                const double pxPerHead =
                    bars->xAxis->coordToPixel(1) - bars->xAxis->coordToPixel(0);
                int smaller = k - 1;
                while (smaller > 1 && 6 % smaller != 0)
                    --smaller;
                QVERIFY2(smaller * pxPerHead < labelWidth + 0.5 * metrics.height() + 1.0,
                         qPrintable(at));
            }
            QCOMPARE(bars->xAxis->tickLabelRotation(), 0.0);
            // The legend's entries fit its row: fewer per row when narrow, none cut off.
            QVERIFY2(bars->legend->minimumOuterSizeHint().width() <=
                         bars->legend->outerRect().width(),
                     qPrintable(at));
            QVERIFY(!bars->legend->outerRect().intersects(bars->axisRect()->rect()));
        }
        QVERIFY2(counts.contains(36) && counts.size() >= 3,
                 qPrintable(QStringLiteral("label counts %1").arg(counts.size())));
        // A line between each two layers, at x = 5.5, 11.5, ...
        QList<double> lines;
        for (int i = 0; i < bars->itemCount(); ++i)
            if (auto* line = qobject_cast<QCPItemStraightLine*>(bars->item(i)))
                lines << line->point1->coords().x();
        std::sort(lines.begin(), lines.end());
        QCOMPARE(lines, (QList<double>{5.5, 11.5, 17.5, 23.5, 29.5}));

        // One fp16 marker per bar, at the bar's fp16 bytes, none dropped by sampling.
        QCPGraph* fp16 = bars->graph(0);
        QCOMPARE(fp16->name(), QStringLiteral("fp16 baseline"));
        QCPBars* keys = qobject_cast<QCPBars*>(bars->plottable(0));
        QVERIFY(keys);
        QCOMPARE(keys->data()->size(), 36);
        QCOMPARE(fp16->data()->size(), 36);
        for (int i = 0; i < 36; ++i) {
            QCOMPARE(fp16->data()->at(i)->key, keys->data()->at(i)->key);
            QCOMPARE(fp16->data()->at(i)->value, double(96 + 10 * (i % 6)));
        }
        QVERIFY(!fp16->adaptiveSampling());
        QCOMPARE(fp16->scatterSkip(), 0);
        QVERIFY(fp16->scatterStyle().shape() != QCPScatterStyle::ssNone);
        // The legend is outside the axis rect, so it covers no marker.
        QVERIFY(bars->legend->visible());
        QVERIFY(bars->legend->layout() != bars->axisRect()->insetLayout());
        QVERIFY(!bars->legend->outerRect().intersects(bars->axisRect()->rect()));
        QVERIFY(bars->yAxis->range().upper > 96 + 50);
    }

    // A legend in a row of its own (views/legend_placement.h): as many entries per row as fit,
    // rows even, and a grid with an empty cell (three entries in rows of two) exports with its
    // texts at the asked size (the font scoping once read the empty cell and crashed).
    void legendRowsFitAndExport() {
        QCustomPlot plot;
        plot.resize(900, 500);
        for (const char* name : {"first", "second", "a third, longer entry"}) {
            QCPGraph* g = plot.addGraph();
            g->setName(QString::fromLatin1(name));
            g->setData({1, 2, 3}, {1, 4, 9});
        }
        plot.legend->setVisible(true);
        placeLegendOutside(&plot, Qt::BottomEdge, 2);
        plot.replot(QCustomPlot::rpImmediateRefresh);
        QCOMPARE(plot.legend->columnCount(), 2);
        QCOMPARE(plot.legend->rowCount(), 2);
        QVERIFY(!plot.legend->item(3)); // the empty cell
        QVERIFY(plot.legend->outerRect().top() >= plot.axisRect()->outerRect().bottom());
        plot.toPixmap(150, 300); // too narrow for two: one per row
        QCOMPARE(plot.legend->columnCount(), 1);
        QCOMPARE(plot.legend->rowCount(), 3);
        plot.replot(QCustomPlot::rpImmediateRefresh);
        QCOMPARE(plot.legend->columnCount(), 2);
        plot.removeGraph(0); // two left: one row of two, no gap
        plot.replot(QCustomPlot::rpImmediateRefresh);
        QCOMPARE(plot.legend->rowCount(), 1);
        QVERIFY(plot.legend->item(0) && plot.legend->item(1));

        plot.addGraph()->setName(QStringLiteral("third again"));
        plot.replot(QCustomPlot::rpImmediateRefresh);
        const ChartHandle chart{QStringLiteral("legend"), &plot, {}};
        ExportOptions options;
        options.widthMm = 120;
        options.fontPt = 8;
        for (ExportFormat f : {ExportFormat::Png, ExportFormat::Svg, ExportFormat::Pdf}) {
            ExportFile file;
            QVERIFY(renderChart(chart, QStringLiteral("legend.") + formatSuffix(f), f,
                                kvs::views::Provenance{}, options, &file)
                        .isEmpty());
            QVERIFY(file.bytes.size() > 100);
        }
    }

    // The key-spectrum chart draws core's summary as it is (no computing in views): a band per
    // kind it has, the W_K legend saying why it is missing, and the CSV row for row.
    void cacheKeySpectrum() {
        auto a = makeAnalysis();
        auto summary = std::make_shared<kvs::SpectrumSummary>();
        summary->keys = {{0.5, 1.0}, {0.25, 1.0}, {0.75, 1.0}};
        summary->scores = {{0.9, 1.0}, {0.8, 1.0}, {1.0, 1.0}};
        summary->heads = 2;
        a->spectrum = summary;
        CacheView cache;
        cache.setData(a, 0);
        const auto charts = cache.charts();
        QCOMPARE(charts.size(), std::size_t(3));
        QCOMPARE(charts[2].name, QStringLiteral("cache_key_spectrum"));
        QCustomPlot* plot = charts[2].plot;
        QCOMPARE(plot->graph(0)->name(), QStringLiteral("W_K (needs the model's weights)"));
        QCOMPARE(plot->graph(0)->data()->size(), 0);
        QCOMPARE(plot->graph(3)->data()->size(), 2); // keys: mean
        QCOMPARE(plot->graph(3)->data()->at(0)->value, 0.5);
        QCOMPARE(plot->graph(5)->data()->at(0)->value, 0.75); // keys: band's upper edge
        const CsvTable csv = charts[2].data();
        QCOMPARE(csv.rows.size(), std::size_t(4));
        QCOMPARE(csv.rows[0], (QStringList{"keys", "1", "0.5", "0.25", "0.75"}));
        QCOMPARE(csv.rows[2], (QStringList{"scores", "1", "0.9", "0.8", "1"}));

        // One head's own spectra over the band: chosen by a click on the error grid's cell.
        auto perHead = std::make_shared<std::vector<HeadSpectrumCurves>>();
        HeadSpectrumCurves h;
        h.layer = 0;
        h.kvHead = 0;
        h.energy.keys = {{0.6, 1.0}, {0.6, 1.0}, {0.6, 1.0}};
        perHead->push_back(h);
        a->headSpectra = perHead;
        cache.resize(900, 700);
        cache.show();
        QVERIFY(QTest::qWaitForWindowExposed(&cache));
        cache.setData(a, 0);
        QCOMPARE(plot->graph(10)->data()->size(), 0); // nothing chosen yet
        QCustomPlot* grid = cache.gridPlot();
        grid->replot();
        const QPoint cell(static_cast<int>(grid->xAxis->coordToPixel(0.0)),
                          static_cast<int>(grid->yAxis->coordToPixel(0.0)));
        QTest::mouseClick(grid, Qt::LeftButton, {}, cell);
        QCOMPARE(cache.selectedLayer(), 0);
        QCOMPARE(cache.selectedKvHead(), 0);
        QCOMPARE(plot->graph(10)->data()->size(), 2); // the head's keys curve
        QCOMPARE(plot->graph(10)->data()->at(1)->value, 1.0);
        QVERIFY(plot->graph(9)->name().contains(QStringLiteral("layer 0, KV head 0")));
        const CsvTable withHead = charts[2].data();
        QCOMPARE(withHead.rows.size(), std::size_t(6));
        QCOMPARE(withHead.rows[4],
                 (QStringList{"keys layer 0 kv_head 0", "1", "0.6", "0.6", "0.6"}));
        QTest::mouseClick(grid, Qt::LeftButton, {}, cell); // a second click clears
        QCOMPARE(cache.selectedLayer(), -1);
        QCOMPARE(plot->graph(10)->data()->size(), 0);
    }

    // A figure asked for in millimetres is that size in every format (#15: the PDF and SVG took
    // the 96-dpi layout's pixels for points, so 85 mm came out 113 mm wide): the PDF's page is
    // mm / 25.4 · 72 points (± 0.5: its MediaBox holds whole points), the SVG says width="85mm"
    // with a viewBox of the same aspect in 96-dpi pixels and its texts at the asked points in
    // them, and the PNG is round(mm / 25.4 · dpi) pixels. Without a size: the on-screen size at
    // 96 dpi.
    void exportSizesArePhysical() {
        CacheView cache;
        cache.resize(900, 600);
        cache.show();
        const auto a = makeAnalysis();
        cache.setData(a, 0);
        const ChartHandle chart = cache.charts().front();
        const auto render = [&](ExportFormat format, const ExportOptions& options) {
            ExportFile file;
            const QString error = renderChart(chart, QStringLiteral("bars.") + formatSuffix(format),
                                              format, a->provenance, options, &file);
            if (!error.isEmpty())
                qWarning("%s", qPrintable(error));
            return file.bytes;
        };
        const auto mediaBox = [](const QByteArray& pdf) {
            static const QRegularExpression box(
                QStringLiteral("/MediaBox\\s*\\[\\s*0\\s+0\\s+([0-9.]+)\\s+([0-9.]+)\\s*\\]"));
            const QRegularExpressionMatch m = box.match(QString::fromLatin1(pdf));
            return m.hasMatch() ? QSizeF(m.captured(1).toDouble(), m.captured(2).toDouble())
                                : QSizeF();
        };
        const auto svgAttribute = [](const QByteArray& svg, const QString& name) {
            const QRegularExpression attribute(
                QStringLiteral("<svg[^>]*\\s%1=\"([^\"]*)\"").arg(name));
            return attribute.match(QString::fromUtf8(svg)).captured(1);
        };
        const auto points = [](double mm) { return mm / 25.4 * 72.0; };

        for (const auto& [widthMm, heightMm] :
             std::vector<std::pair<double, double>>{{85, 60}, {178, 90}, {42.5, 30.3}}) {
            ExportOptions options;
            options.widthMm = widthMm;
            options.heightMm = heightMm;
            options.fontPt = 8;
            options.dpi = 300;
            const QString size = QStringLiteral("%1 x %2 mm").arg(widthMm).arg(heightMm);

            const QSizeF page = mediaBox(render(ExportFormat::Pdf, options));
            QVERIFY2(page.isValid(), qPrintable(size));
            QVERIFY2(qAbs(page.width() - points(widthMm)) <= 0.5 &&
                         qAbs(page.height() - points(heightMm)) <= 0.5,
                     qPrintable(QStringLiteral("%1: the PDF page is %2 x %3 pt, not %4 x %5")
                                    .arg(size)
                                    .arg(page.width())
                                    .arg(page.height())
                                    .arg(points(widthMm))
                                    .arg(points(heightMm))));

            const QByteArray svg = render(ExportFormat::Svg, options);
            const QString width = svgAttribute(svg, QStringLiteral("width"));
            const QString height = svgAttribute(svg, QStringLiteral("height"));
            QVERIFY2(width.endsWith(QStringLiteral("mm")) && height.endsWith(QStringLiteral("mm")),
                     qPrintable(width + QLatin1Char(' ') + height));
            QCOMPARE(width.chopped(2).toDouble(), widthMm);
            QCOMPARE(height.chopped(2).toDouble(), heightMm);
            const QStringList viewBox =
                svgAttribute(svg, QStringLiteral("viewBox")).split(QLatin1Char(' '));
            QCOMPARE(viewBox.size(), 4);
            // The user unit is a 96-dpi pixel: the viewBox is the size in them.
            QVERIFY(qAbs(viewBox[2].toDouble() - widthMm / 25.4 * 96) < 0.01);
            QVERIFY(qAbs(viewBox[3].toDouble() - heightMm / 25.4 * 96) < 0.01);
            // Texts at 8 pt = 8 / 72 · 96 user units (QCustomPlot draws tick labels 0.05 pt
            // larger, and power-of-ten exponents at 0.75 of the whole points).
            static const QRegularExpression fontSize(QStringLiteral("font-size=\"([0-9.]+)\""));
            QSet<QString> sizes;
            for (const QRegularExpressionMatch& m : fontSize.globalMatch(QString::fromUtf8(svg)))
                sizes << m.captured(1);
            QVERIFY2(sizes.contains(QString::number(8.0 / 72 * 96)),
                     qPrintable(QStringList(sizes.values()).join(QLatin1Char(' '))));

            const QImage png = QImage::fromData(render(ExportFormat::Png, options), "PNG");
            QCOMPARE(png.width(), qRound(widthMm / 25.4 * 300));
            QCOMPARE(png.height(), qRound(heightMm / 25.4 * 300));
            QCOMPARE(qRound(png.dotsPerMeterX() * 0.0254), 300);
        }

        // Without a size: the chart's on-screen size at 96 dpi, in every format.
        chart.plot->replot();
        const QSize screen = chart.plot->size();
        ExportOptions onScreen;
        onScreen.dpi = 96;
        const QSizeF page = mediaBox(render(ExportFormat::Pdf, onScreen));
        QVERIFY(qAbs(page.width() - screen.width() * 0.75) <= 0.5);
        QVERIFY(qAbs(page.height() - screen.height() * 0.75) <= 0.5);
        const QImage png = QImage::fromData(render(ExportFormat::Png, onScreen), "PNG");
        QCOMPARE(png.size(), screen);
        // Width only: the on-screen aspect ratio.
        ExportOptions widthOnly;
        widthOnly.widthMm = 85;
        const QSizeF column = mediaBox(render(ExportFormat::Pdf, widthOnly));
        QVERIFY(qAbs(column.width() - points(85)) <= 0.5);
        QVERIFY(qAbs(column.height() - points(85) * screen.height() / screen.width()) <= 0.5);
    }

    // Every format is drawn into memory with what its sidecar says; the writer gets those bytes.
    void exportDrawsEveryFormat() {
        CacheView cache;
        cache.resize(900, 600);
        cache.show();
        const auto a = makeAnalysis();
        cache.setData(a, 0);
        const ChartHandle chart = cache.charts().front();
        ExportOptions options;
        options.dpi = 200;
        options.widthMm = 85;
        std::map<ExportFormat, ExportFile> files;
        for (ExportFormat f :
             {ExportFormat::Png, ExportFormat::Svg, ExportFormat::Pdf, ExportFormat::Csv}) {
            ExportFile& file = files[f];
            const QString name = QStringLiteral("bars.") + formatSuffix(f);
            const QString error = renderChart(chart, name, f, a->provenance, options, &file);
            QVERIFY2(error.isEmpty(), qPrintable(error));
            QVERIFY(file.bytes.size() > 50);
            QCOMPARE(file.sidecar[QStringLiteral("file")].toString(), name);
            QCOMPARE(file.sidecar[QStringLiteral("format")].toString(), formatSuffix(f));
            QCOMPARE(file.sidecar[QStringLiteral("provenance")]
                         .toObject()[QStringLiteral("model")]
                         .toString(),
                     QStringLiteral("unit"));
        }
        // 85 mm at 200 dpi.
        const QImage png = QImage::fromData(files[ExportFormat::Png].bytes, "PNG");
        QCOMPARE(png.width(), qRound(85 / 25.4 * 200));
        QCOMPARE(qRound(png.dotsPerMeterX() * 0.0254), 200);
        // Export is drawn in the light theme whatever the screen shows.
        QVERIFY(png.pixelColor(2, 2).lightness() > 240);
        QVERIFY(files[ExportFormat::Svg].bytes.contains("metadata"));
        QVERIFY(files[ExportFormat::Pdf].bytes.startsWith("%PDF-"));
        const QString text = QString::fromUtf8(files[ExportFormat::Csv].bytes);
        QVERIFY(text.contains(
            QStringLiteral("layer,kv_head,keys_bytes,values_bytes,metadata_bytes,total_bytes,fp16_"
                           "bytes,kept_tokens\n0,0,100,60,16,176,96,4\n")));

        // A figure size in physical units and a font size, as a plotting library's figure:
        // 85 × 60 mm at 300 dpi is 1004 × 709 pixels
        // whatever the widget's size; the text is
        // drawn at the asked size (8 pt and 14 pt give different images of the same size), the
        // sidecar says so, and the screen's fonts come back afterwards.
        const QFont screenTick = chart.plot->xAxis->tickLabelFont();
        std::map<int, QImage> byFont;
        for (int pt : {8, 14}) {
            ExportOptions sized;
            sized.dpi = 300;
            sized.widthMm = 85;
            sized.heightMm = 60;
            sized.fontPt = pt;
            ExportFile file;
            QVERIFY(renderChart(chart, QStringLiteral("bars.png"), ExportFormat::Png, a->provenance,
                                sized, &file)
                        .isEmpty());
            byFont[pt] = QImage::fromData(file.bytes, "PNG");
            QCOMPARE(byFont[pt].width(), qRound(85 / 25.4 * 300));
            QCOMPARE(byFont[pt].height(), qRound(60 / 25.4 * 300));
            QCOMPARE(file.sidecar[QStringLiteral("font_pt")].toDouble(), double(pt));
            QCOMPARE(file.sidecar[QStringLiteral("width_mm")].toDouble(), 85.0);
            QCOMPARE(file.sidecar[QStringLiteral("dpi")].toInt(), 300);
        }
        QVERIFY(byFont[8] != byFont[14]);
        QCOMPARE(chart.plot->xAxis->tickLabelFont(), screenTick);

        // exportChart hands exactly those bytes to the writer, for the path it was given.
        QString writtenPath;
        ExportFile written;
        const QString path = QStringLiteral("out/bars.csv");
        QVERIFY(exportChart(chart, path, ExportFormat::Csv, a->provenance, options,
                            [&](const QString& p, const ExportFile& f) {
                                writtenPath = p;
                                written = f;
                                return QString();
                            })
                    .isEmpty());
        QCOMPARE(writtenPath, path);
        QCOMPARE(written.bytes, files[ExportFormat::Csv].bytes);
        QCOMPARE(written.sidecar[QStringLiteral("file")].toString(), QStringLiteral("bars.csv"));
        // ...and passes the writer's refusal on.
        const QString refused = exportChart(
            chart, path, ExportFormat::Csv, a->provenance, options,
            [](const QString& p, const ExportFile&) { return QStringLiteral("refusing ") + p; });
        QCOMPARE(refused, QStringLiteral("refusing out/bars.csv"));

        CsvTable quoted;
        quoted.header = {QStringLiteral("scheme")};
        quoted.rows.push_back({QStringLiteral("a:keep=1,seed=2")});
        QVERIFY(csvBytes(quoted, a->provenance).contains("\"a:keep=1,seed=2\""));
    }
};

QTEST_MAIN(TestCharts)
#include "test_charts.moc"
