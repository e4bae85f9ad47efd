// SPDX-License-Identifier: MIT
// The Capacity tab: the worked example of ALGORITHMS.md §5 row 6 through its controls, the
// loaded model and the current analysis's measured fractions as rows, the window and the
// hypothetical region on the chart. KVS_SCREENSHOT_DIR set: the tab is saved there as a PNG.
#include "capacity_page.h"
#include "studio_test_support.h"

#include <QApplication>
#include <QDir>
#include <QTest>
#include <qcustomplot.h>

using namespace kvs;
using namespace kvs::studio;

namespace {

std::shared_ptr<const ModelSnapshot> loadedModel() {
    auto snapshot = std::make_shared<ModelSnapshot>();
    ModelConfig& c = snapshot->facts.config;
    c.architecture = "LlamaForCausalLM";
    c.modelType = "llama";
    c.layers = 6;
    c.heads = 6;
    c.kvHeads = 6;
    c.width = 192;
    c.headDim = 32;
    c.intermediate = 512;
    c.vocab = 63;
    c.maxPositions = 1024;
    snapshot->facts.name = QStringLiteral("default");
    snapshot->facts.contextLimit = 1024;
    return snapshot;
}

std::shared_ptr<const views::AnalysisData> analysisWith(double fraction, const QString& error) {
    auto a = std::make_shared<views::AnalysisData>();
    a->contextTokens = 706;
    views::SchemeRun ok;
    ok.setting = QStringLiteral("selection.snapkv:keep=0.25");
    ok.displayName = QStringLiteral("SnapKV");
    ok.eval.memoryFraction = fraction;
    views::SchemeRun refused = ok;
    refused.displayName = QStringLiteral("Refused");
    refused.error = error;
    a->runs = {ok, refused};
    return a;
}

} // namespace

class TestStudioCapacity : public QObject {
    Q_OBJECT

private slots:
    void workedExampleThroughTheControls() {
        CapacityPage page(nullptr);
        page.resize(1400, 900);
        page.show();
        QVERIFY(page.selectModel(QStringLiteral("llama-2-7b")));
        page.setGpuGiB(80);
        page.setContext(128 * 1024);
        page.setTypedRatio(0.25, true);
        QVERIFY(page.report().has_value());
        const CapacityReport& r = *page.report();
        QCOMPARE(r.rows.size(), std::size_t(2));
        QCOMPARE(r.rows[0].bytesPerUser, 64.0 * 1024 * 1024 * 1024);
        QCOMPARE(page.tableRows(), 2);
        QCOMPARE(page.tableCell(0, 2), QLocale().toString(512.0, 'f', 1) + " KiB");
        QCOMPARE(page.tableCell(0, 3), QLocale().toString(64.0, 'f', 1) + " GiB");
        QCOMPARE(page.tableCell(1, 4), QLocale().toString(24.0, 'f', 1) + " GiB");
        QCOMPARE(page.tableCell(0, 5), QStringLiteral("0"));
        QCOMPARE(page.tableCell(1, 5), QStringLiteral("1"));
        QCOMPARE(page.tableCell(1, 6), QLocale().toString(1.6, 'f', 2) + "×");
        QVERIFY(page.notesText().contains("hypothetical"));
        QVERIFY(page.notesText().contains("no whole user fits with the exact cache"));
        // The chart: one line per row, and the model's maximum marked beyond which it is shaded.
        QCOMPARE(page.chart()->graphCount(), 2);
        bool limitLabel = false;
        for (int i = 0; i < page.chart()->itemCount(); ++i)
            if (auto* t = qobject_cast<QCPItemText*>(page.chart()->item(i)))
                limitLabel = limitLabel || t->text().contains("hypothetical");
        QVERIFY(limitLabel);
        QCOMPARE(page.charts().size(), std::size_t(1));
        QCOMPARE(page.charts().front().data().rows.size(), std::size_t(2 * 160));
        kvs::test::saveScreenshot(&page, "capacity.png");

        // The reserve follows the GPU (10%) until it is set by hand.
        page.setGpuGiB(141);
        QCOMPARE(page.report()->reserveBytes, 14.1 * 1024 * 1024 * 1024);
        page.setReserveGiB(0);
        page.setGpuGiB(80);
        QCOMPARE(page.report()->reserveBytes, 0.0);
        QCOMPARE(page.tableCell(0, 5), QStringLiteral("1")); // 67.4 GiB free now
    }

    void windowCapsTheChart() {
        CapacityPage page(nullptr);
        QVERIFY(page.selectModel(QStringLiteral("mistral-7b-v0.1")));
        page.setContext(32768);
        QVERIFY(page.report()->windowCaps);
        QCOMPARE(page.tableCell(0, 7), QStringLiteral("any (window)"));
        bool windowLabel = false;
        for (int i = 0; i < page.chart()->itemCount(); ++i)
            if (auto* t = qobject_cast<QCPItemText*>(page.chart()->item(i)))
                windowLabel = windowLabel || t->text().startsWith("window");
        QVERIFY(windowLabel);
    }

    void loadedModelAndMeasuredFractions() {
        CapacityPage page(nullptr);
        page.onModelLoaded(loadedModel());
        // The loaded model is chosen, at its own context limit.
        QCOMPARE(page.report()->modelName, std::string("default"));
        QCOMPARE(page.report()->context, 1024LL);
        QCOMPARE(page.report()->rows[0].bytesPerToken, 2.0 * 6 * 6 * 32 * 2);
        // The analysis's runs become rows at their measured memory fraction; a refused run does
        // not.
        page.setAnalysis(analysisWith(0.3, QStringLiteral("refused: group size")), 0);
        QCOMPARE(page.tableRows(), 3);
        QCOMPARE(page.tableCell(2, 0), QStringLiteral("SnapKV keep=0.25"));
        QCOMPARE(page.tableCell(2, 1), QLocale().toString(0.3, 'f', 3));
        QVERIFY(std::abs(page.report()->rows[2].usersVsExact - 1 / 0.3) < 1e-9);
        // On a preset the bundled model's fractions say nothing: only exact and typed rows.
        QVERIFY(page.selectModel(QStringLiteral("llama-3-8b")));
        QCOMPARE(page.tableRows(), 2);
        // Back on the loaded model, then it is closed: the presets stay.
        QVERIFY(page.selectModel(QString()));
        QCOMPARE(page.tableRows(), 3);
        page.onModelCleared();
        QVERIFY(page.report().has_value());
        QVERIFY(page.report()->modelName != "default");
    }
};

QTEST_MAIN(TestStudioCapacity)
#include "test_studio_capacity.moc"
