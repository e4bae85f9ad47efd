// SPDX-License-Identifier: MIT
// The device-facing parts of the Cache and Profile views on hand-made results (no engine): the
// bytes allocated on the GPU beside the bytes counted, per layer and for the model (and the
// plain statement where the timing backend is the CPU); time against context length per scheme
// on log axes, device and wall series, its CSV export; achieved GB/s against the copy kernel.
#include "kvs_test.h"

#include "cache_view.h"
#include "chart_export.h"
#include "plot_style.h"
#include "profile_view.h"

#include <QFile>
#include <QImage>
#include <QTableWidget>
#include <QTest>
#include <qcustomplot.h>

using namespace kvs::views;

namespace {

// Two layers of one KV head each; the counted bytes per head are 100 + 60 + 16 = 176.
std::shared_ptr<AnalysisData> makeAnalysis(bool gpu) {
    auto a = std::make_shared<AnalysisData>();
    a->layers = 2;
    a->heads = 1;
    a->kvHeads = 1;
    a->headDim = 4;
    a->contextTokens = 6;
    a->probeTokens = 3;
    a->backendName = gpu ? QStringLiteral("llvmpipe (LLVM 15)") : QStringLiteral("CPU (Eigen)");
    a->evaluationBackend = QStringLiteral("CPU (Eigen)");
    a->backendIsGpu = gpu;
    a->cpuEmulation = true;
    a->deviceBandwidthGBs = gpu ? 1.3 : 0.0;
    SchemeRun run;
    run.displayName = QStringLiteral("Test scheme");
    run.setting = QStringLiteral("select.uniform:keep=0.5");
    for (int l = 0; l < 2; ++l) {
        kvs::HeadMetrics h;
        h.layer = l;
        h.kvHead = 0;
        h.contextTokens = 6;
        h.keptTokens = 4;
        h.bytes.keys = 100;
        h.bytes.values = 60;
        h.bytes.metadata = 16;
        h.fp16Bytes = 96;
        run.eval.heads.push_back(h);
        run.eval.bytes += h.bytes;
        run.eval.fp16Bytes += h.fp16Bytes;
    }
    run.eval.memoryFraction = 352.0 / 192.0;
    if (gpu) {
        run.layerAllocation.push_back({128, 96, 64, 1000, 12}); // 288 of 176 counted
        run.layerAllocation.push_back({144, 96, 80, 1040, 12}); // 320
    }
    run.dispatches.push_back({"probe_split_sg", 120.0, 4000, 1000});
    run.dispatches.push_back({"combine", 30.0, 1000, 500});
    run.dispatchLayer = {0, 0};
    a->runs.push_back(run);
    return a;
}

std::shared_ptr<ScalingData> makeScaling(bool gpu) {
    auto s = std::make_shared<ScalingData>();
    s->backendName = gpu ? QStringLiteral("llvmpipe (LLVM 15)") : QStringLiteral("CPU (Eigen)");
    s->backendIsGpu = gpu;
    s->cpuEmulation = true;
    s->probeTokens = 10;
    s->repeats = 3;
    for (int k = 0; k < 2; ++k) {
        ScalingSeries series;
        series.setting = k == 0 ? QStringLiteral("identity") : QStringLiteral("select.uniform");
        series.displayName = k == 0 ? QStringLiteral("Exact") : QStringLiteral("Uniform");
        series.colorIndex = k;
        for (int n : {8, 16, 32}) {
            ScalingPoint p;
            p.contextTokens = n;
            p.deviceMicroseconds = gpu ? 10.0 * n * (k + 1) : 0.0;
            p.wallMicroseconds = 100.0 + 20.0 * n;
            p.cacheBytes = static_cast<std::size_t>(64 * n);
            p.bytesRead = static_cast<std::size_t>(70 * n);
            series.points.push_back(p);
        }
        s->series.push_back(series);
    }
    return s;
}

QCPGraph* graphNamed(QCustomPlot* plot, const QString& name) {
    for (int i = 0; i < plot->graphCount(); ++i)
        if (plot->graph(i)->name() == name)
            return plot->graph(i);
    return nullptr;
}

} // namespace

class TestDeviceViews : public QObject {
    Q_OBJECT

private slots:
    void cacheShowsAllocatedBesideCounted() {
        CacheView cache;
        cache.setData(makeAnalysis(true), 0);
        QTableWidget* t = cache.totalsTable();
        QCOMPARE(t->columnCount(), 7);
        QCOMPARE(t->rowCount(), 3);
        QCOMPARE(t->item(0, 3)->text(), QStringLiteral("176")); // counted, layer 0
        QCOMPARE(t->item(0, 6)->text(), QStringLiteral("288")); // 128 + 96 + 64
        QCOMPARE(t->item(1, 6)->text(), QStringLiteral("320")); // 144 + 96 + 80
        QCOMPARE(t->item(2, 3)->text(), QStringLiteral("352"));
        QCOMPARE(t->item(2, 6)->text(), QStringLiteral("608"));
        QVERIFY(t->item(2, 6)->toolTip().contains(QStringLiteral("scratch 2040 bytes")));
        QVERIFY(t->item(2, 6)->toolTip().contains(QStringLiteral("in 24 buffers")));
        const QString text = cache.totalsText();
        // 608 / 352 = 172.7 %; scratch 2040 B = 2.0 KiB.
        QVERIFY2(text.contains(QStringLiteral("Allocated on the GPU (llvmpipe (LLVM 15)): 0.6 KiB "
                                              "for the cache in 24 buffers, 172.7% of the bytes "
                                              "counted")),
                 qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("plus 2.0 KiB of scratch")), qPrintable(text));
    }

    void cacheSaysWhenKEqVValuesAreCopied() {
        auto a = makeAnalysis(true);
        for (auto& layer : a->runs.front().layerAllocation)
            layer.sharedValueCopy = layer.values; // 96 + 96 bytes
        CacheView cache;
        cache.setData(a, 0);
        const QString text = cache.totalsText();
        QVERIFY2(text.contains(QStringLiteral("driver padding; 0.2 KiB of it a second copy of the "
                                              "K=V values")),
                 qPrintable(text));
        // Without K=V heads the sentence stays out.
        cache.setData(makeAnalysis(true), 0);
        QVERIFY(!cache.totalsText().contains(QStringLiteral("K=V")));
    }

    void cacheSaysWhenTheCpuTimedIt() {
        CacheView cache;
        cache.setData(makeAnalysis(false), 0);
        QTableWidget* t = cache.totalsTable();
        QCOMPARE(t->item(2, 6)->text(), QStringLiteral("\u2014"));
        QVERIFY(t->item(0, 6)->toolTip().contains(QStringLiteral("CPU reference")));
        const QString text = cache.totalsText();
        QVERIFY2(text.contains(QStringLiteral("The timing backend is the CPU reference: nothing is "
                                              "allocated on a GPU (CPU (Eigen)).")),
                 qPrintable(text));
        QVERIFY(!text.contains(QStringLiteral("Allocated on the GPU")));
    }

    void profileAchievedAgainstCopyBandwidth() {
        ProfileView profile;
        profile.setData(makeAnalysis(true), 0);
        // 6500 bytes in 150 µs = 0.0433 GB/s = 3 % of 1.3 GB/s.
        QVERIFY2(profile.summaryText().contains(
                     QStringLiteral("= 3% of the 1.3 GB/s the copy kernel reaches")),
                 qPrintable(profile.summaryText()));
    }

    void profileScalingPerScheme() {
        ProfileView profile;
        profile.resize(900, 900);
        profile.show();
        QCustomPlot* plot = profile.scalingPlot();
        QCOMPARE(plot->graphCount(), 0);
        profile.setScalingStatus(QStringLiteral("measuring\u2026"));
        profile.setScaling(makeScaling(true));
        QCOMPARE(plot->graphCount(), 4); // device + wall per setting
        QCOMPARE(plot->xAxis->scaleType(), QCPAxis::stLogarithmic);
        QCOMPARE(plot->yAxis->scaleType(), QCPAxis::stLogarithmic);
        QCPGraph* device = graphNamed(plot, QStringLiteral("Uniform, device"));
        QCPGraph* wall = graphNamed(plot, QStringLiteral("Uniform, wall"));
        QVERIFY(device && wall);
        QCOMPARE(device->data()->size(), 3);
        QCOMPARE(device->data()->at(2)->key, 32.0);
        QCOMPARE(device->data()->at(2)->value, 640.0);
        QCOMPARE(wall->data()->at(0)->value, 260.0);
        QCOMPARE(device->pen().color(), categoricalColor(1));
        QCOMPARE(wall->pen().color(), categoricalColor(1));
        QCOMPARE(wall->pen().style(), Qt::DashLine);
        QCOMPARE(graphNamed(plot, QStringLiteral("Exact, device"))->pen().color(),
                 categoricalColor(0));
        QVERIFY(profile.scalingTitle().contains(QStringLiteral("measuring")));
        profile.setScalingStatus(QString());
        QVERIFY(profile.scalingTitle().contains(QStringLiteral("median of 3")));
        QVERIFY(!profile.scalingTitle().contains(QStringLiteral("measuring")));
        // The axes hold every point.
        QVERIFY(plot->xAxis->range().contains(8) && plot->xAxis->range().contains(32));
        QVERIFY(plot->yAxis->range().contains(80) && plot->yAxis->range().contains(740));

        // Exported with its data, like every chart.
        std::vector<ChartHandle> charts = profile.charts();
        QCOMPARE(static_cast<int>(charts.size()), 2);
        QCOMPARE(charts[1].name, QStringLiteral("profile_scaling"));
        Provenance provenance;
        provenance.modelName = QStringLiteral("unit");
        ExportFile png;
        ExportFile csv;
        QVERIFY(renderChart(charts[1], QStringLiteral("scaling.png"), ExportFormat::Png, provenance,
                            {}, &png)
                    .isEmpty());
        QVERIFY(!QImage::fromData(png.bytes, "PNG").isNull());
        QVERIFY(renderChart(charts[1], QStringLiteral("scaling.csv"), ExportFormat::Csv, provenance,
                            {}, &csv)
                    .isEmpty());
        const QString text = QString::fromUtf8(csv.bytes);
        QVERIFY2(text.contains(QStringLiteral(
                     "setting,scheme,context_tokens,device_microseconds,wall_microseconds,cache_"
                     "bytes,bytes_read\nidentity,Exact,8,80.000,260.000,512,560\n")),
                 qPrintable(text));
        QVERIFY(
            text.contains(QStringLiteral("select.uniform,Uniform,32,640.000,740.000,2048,2240")));

        // The CPU reference: wall clock only, said so.
        profile.setScaling(makeScaling(false));
        QCOMPARE(plot->graphCount(), 2);
        QVERIFY(graphNamed(plot, QStringLiteral("Exact, wall")));
        QVERIFY(!graphNamed(plot, QStringLiteral("Exact, device")));
        QVERIFY(profile.scalingTitle().contains(QStringLiteral("CPU reference")));

        profile.clear(QStringLiteral("No model."));
        QCOMPARE(plot->graphCount(), 0);
    }
};

QTEST_MAIN(TestDeviceViews)
#include "test_device_views.moc"
