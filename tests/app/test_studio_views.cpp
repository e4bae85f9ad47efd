// SPDX-License-Identifier: MIT
// The studio's live views end to end (offscreen): open a model, compare schemes, move a budget
// slider and see every view follow, switch heads and views, undo, export, save and reopen a
// session, pin a baseline, use the command palette and the dark theme.
#include "kvs_test.h"
#include "studio_test_support.h"

#include "attention_view.h"
#include "cache_view.h"
#include "command_palette.h"
#include "main_window.h"
#include "profile_view.h"
#include "schemes_panel.h"
#include "session.h"
#include "studio_settings.h"
#include "tradeoff_view.h"

#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/synthetic_model.h"
#include "kvs/threads.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMenu>
#include <QSignalSpy>
#include <QSlider>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableWidget>
#include <QTest>
#include <QToolButton>
#include <QUndoStack>
#include <qcustomplot.h>

using namespace kvs::studio;
namespace fs = std::filesystem;

namespace {

constexpr int kTimeoutMs = kvs::test::kStudioTimeoutMs;
const QString kPrompt = QStringLiteral("The cache keeps keys and values of every token; "
                                       "compression keeps the ones that matter.");

using kvs::test::qpath;

} // namespace

class TestStudioViews : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<kvs::test::TempDir> m_dir;
    fs::path m_model;

    // Waits until the session has results for exactly `settings` and nothing is pending.
    static bool waitAnalysis(MainWindow& w, const QStringList& settings) {
        return kvs::test::waitForAnalysis(
            w, [&](const kvs::views::AnalysisData& a) { return a.provenance.schemes == settings; });
    }

    void openAndWait(MainWindow& w) {
        w.session()->setAnalysisDelay(0);
        w.setPrompt(kPrompt);
        w.openModel(qpath(m_model));
        QVERIFY2(waitAnalysis(w, w.schemesPanel()->settings()),
                 qPrintable(w.session()->lastError()));
    }

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        openSettings()->clear();
        m_dir = std::make_unique<kvs::test::TempDir>();
        m_model =
            kvs::test::writeModel(*m_dir, "tiny-llama-gqa", kvs::syntheticPreset("tiny-llama-gqa"));
    }

    void cleanupTestCase() {
        openSettings()->clear();
        m_dir.reset();
    }

    void schemeControlsComeFromTheSpecs() {
        SchemesPanel panel;
        QCOMPARE(panel.rowCount(), 3);
        const kvs::Scheme* halving = kvs::findScheme("coreset.halving");
        QVERIFY(halving);
        for (const kvs::ParamSpec& spec : halving->info().params) {
            // The budget's three units are one control (its own test: test_studio_first_use).
            const bool budget = !spec.budgetGroup.empty();
            auto* spin = panel.findChild<QDoubleSpinBox*>(QStringLiteral("%1:0:%2").arg(
                budget ? QStringLiteral("budgetSpin") : QStringLiteral("spin"),
                QString::fromStdString(budget ? std::string("keep") : spec.key)));
            QVERIFY2(spin, spec.key.c_str());
            if (budget && spec.key != "keep")
                continue; // shown in the fraction's place when chosen
            QCOMPARE(spin->minimum(), spec.minimum);
            QCOMPARE(spin->maximum(), spec.maximum);
            QVERIFY(spin->toolTip().contains(QString::fromStdString(spec.label).toHtmlEscaped()));
            if (!spec.unit.empty())
                QVERIFY(spin->suffix().contains(QString::fromStdString(spec.unit)));
        }
        QCOMPARE(panel.parameter(0, "keep"), 0.25);
        // A log slider: its middle is the geometric mean of the range.
        auto* slider = panel.findChild<QSlider*>(QStringLiteral("budgetSlider:0:keep"));
        QVERIFY(slider);
        QSignalSpy edited(&panel, &SchemesPanel::edited);
        slider->setValue(500);
        const kvs::ParamSpec* keep = halving->info().findParam("keep");
        QCOMPARE(
            panel.parameter(0, "keep"),
            std::stod(
                QString::number(std::sqrt(keep->minimum * keep->maximum), 'g', 3).toStdString()));
        QCOMPARE(edited.count(), 1);
        QVERIFY(panel.settings()[0].startsWith(QStringLiteral("coreset.halving:keep=0.0316")));
    }

    void stageButtonBuildsAChain() {
        SchemesPanel panel;
        panel.setSettings({QStringLiteral("select.h2o:keep=0.1")});
        auto* plus = panel.findChild<QToolButton*>(QStringLiteral("addStage0"));
        QVERIFY(plus && plus->menu());
        // After a selection: factorizations and codecs, never a second selection or a sharing.
        QStringList offered;
        for (QAction* a : plus->menu()->actions())
            if (!a->isSeparator())
                offered << a->text();
        QVERIFY(offered.filter(QStringLiteral("codec")).size() == 2);
        QVERIFY(offered.filter(QStringLiteral("factored")).size() == 3);
        QVERIFY(offered.filter(QStringLiteral("selection")).isEmpty());
        QVERIFY(offered.filter(QStringLiteral("shared")).isEmpty());

        QSignalSpy edited(&panel, &SchemesPanel::edited);
        QAction* codec = nullptr;
        for (QAction* a : plus->menu()->actions())
            if (a->text().contains(QStringLiteral("Uniform quantization")))
                codec = a;
        QVERIFY(codec);
        codec->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(edited.count(), 1, kTimeoutMs);
        QVERIFY2(
            panel.settings()[0].startsWith(QStringLiteral("select.h2o:keep=0.1+codec.uniform")),
            qPrintable(panel.settings()[0]));
        // The chain's parameters are per stage: the codec's bits do not touch H2O's keep.
        auto* bits =
            panel.findChild<QDoubleSpinBox*>(QStringLiteral("spin:0:codec.uniform.key_bits"));
        QVERIFY(bits);
        bits->setValue(2);
        QCOMPARE(panel.parameter(0, "codec.uniform.key_bits"), 2.0);
        QCOMPARE(panel.parameter(0, "select.h2o.keep"), 0.1);
        // The combo names the chain; the menu can drop the stage again.
        auto* combo = panel.findChild<QComboBox*>(QStringLiteral("schemeCombo0"));
        QVERIFY(combo && combo->currentText().startsWith(QStringLiteral("chain")));
        plus = panel.findChild<QToolButton*>(QStringLiteral("addStage0"));
        QAction* drop = plus->menu()->actions().last();
        QVERIFY(drop->text().contains(QStringLiteral("Remove the last stage")));
        const int before = edited.count();
        drop->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(edited.count(), before + 1, kTimeoutMs);
        QVERIFY2(panel.settings()[0].startsWith(QStringLiteral("select.h2o:")) &&
                     !panel.settings()[0].contains(QLatin1Char('+')),
                 qPrintable(panel.settings()[0]));
        QCOMPARE(panel.parameter(0, "keep"), 0.1);
        // After a K=V tie only a token selection may follow (codecs and factorizations refuse
        // a cache whose values are its keys).
        panel.setSettings({QStringLiteral("share.kv_tie")});
        plus = panel.findChild<QToolButton*>(QStringLiteral("addStage0"));
        QStringList afterTie;
        for (QAction* a : plus->menu()->actions())
            if (!a->isSeparator())
                afterTie << a->text();
        QVERIFY(!afterTie.isEmpty());
        QCOMPARE(afterTie.filter(QStringLiteral("selection")).size() +
                     afterTie.filter(QStringLiteral("coreset")).size(),
                 afterTie.size());
        // A codec ends a chain: nothing can follow it except dropping it.
        panel.setSettings({QStringLiteral("codec.uniform")});
        plus = panel.findChild<QToolButton*>(QStringLiteral("addStage0"));
        QVERIFY(plus && !plus->isEnabled());
    }

    void liveViewsFollowTheSettings() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.resize(1500, 950);
        w.show();
        openAndWait(w);
        const auto a = w.session()->analysis();
        QCOMPARE(static_cast<int>(a->runs.size()), 3);
        QVERIFY(a->contextTokens > 0 && a->probeTokens > 0);
        // The default codec (G = 32) refuses this model's head dim of 12 with the reason; the
        // other schemes run, and the status bar says how many did.
        QVERIFY(a->runs[0].error.isEmpty() && a->runs[1].error.isEmpty());
        QVERIFY2(a->runs[2].error.contains(
                     QStringLiteral("group = 32 does not divide the head dim 12")) &&
                     a->runs[2].error.contains(QStringLiteral("allowed: 4, 6, 12")),
                 qPrintable(a->runs[2].error));
        QCOMPARE(a->contextTokens + a->probeTokens, w.session()->tokens()->count());

        // Attention view: numbers shown are the engine's.
        w.showViewByName(QStringLiteral("attention"));
        kvs::views::AttentionView* att = w.attentionView();
        QTRY_VERIFY(att->gridPlot()->plottableCount() >= a->layers * a->heads);
        const kvs::views::HeadMaps& h0 = a->runs[0].maps->at(0);
        QCOMPARE(att->cellValue(0, 0, 0), static_cast<double>((*h0.exact(0))(0, 0)));
        QVERIFY(att->hoverCell(1, 2));
        QVERIFY2(att->readoutText().contains(QStringLiteral("query %1").arg(a->contextTokens + 1)),
                 qPrintable(att->readoutText()));
        QVERIFY(att->readoutText().contains(QStringLiteral("key 2")));
        QVERIFY(att->evictedMarkCount() > 0); // keep=0.25 evicts keys
        // Next head and next layer by shortcut actions.
        w.findChild<QAction*>(QStringLiteral("nextHeadAction"))->trigger();
        QCOMPARE(att->selectedHead(), 1);
        w.findChild<QAction*>(QStringLiteral("nextLayerAction"))->trigger();
        QCOMPARE(att->selectedLayer(), 1);
        const int g = a->groupSize();
        const auto& h1 = a->runs[0].maps->at(static_cast<std::size_t>(1 * a->kvHeads + 1 / g));
        QCOMPARE(att->cellValue(1, 0, 0), static_cast<double>(h1.compressed[1 % g](0, 0)));

        // Move the budget slider of the first scheme: the cache view follows.
        w.showViewByName(QStringLiteral("cache"));
        const auto before = a->runs[0].eval.bytes.total();
        w.schemesPanel()->setParameter(0, QStringLiteral("keep"), 0.5);
        QCOMPARE(w.undoStack()->count(), 1);
        QVERIFY(waitAnalysis(w, w.schemesPanel()->settings()));
        const auto b = w.session()->analysis();
        QVERIFY(b->runs[0].eval.bytes.total() > before);
        QVERIFY2(w.cacheView()->totalsText().contains(
                     QString::number(100.0 * b->runs[0].eval.memoryFraction, 'f', 1)),
                 qPrintable(w.cacheView()->totalsText()));
        QTableWidget* totals = w.cacheView()->totalsTable();
        QCOMPARE(totals->rowCount(), b->layers + 1);
        QCOMPARE(totals->item(b->layers, 3)->text(),
                 QString::number(static_cast<qulonglong>(b->runs[0].eval.bytes.total())));

        // Undo brings the old setting (and the old bytes) back.
        w.undoStack()->undo();
        QCOMPARE(w.schemesPanel()->parameter(0, "keep"), 0.25);
        QVERIFY(waitAnalysis(w, w.schemesPanel()->settings()));
        QCOMPARE(w.session()->analysis()->runs[0].eval.bytes.total(), before);
        w.undoStack()->redo();
        QCOMPARE(w.schemesPanel()->parameter(0, "keep"), 0.5);
        QVERIFY(waitAnalysis(w, w.schemesPanel()->settings()));

        // On this short context the common exact part (4 sinks + 32) would leave only one
        // budget of the sweep that the coreset chooses itself (the rest are degenerate and left
        // out of the slopes): a window of 8 gives the fit its points.
        w.schemesPanel()->setParameter(0, QStringLiteral("window"), 8);
        QVERIFY(waitAnalysis(w, w.schemesPanel()->settings()));

        // Trade-offs: one curve per scheme once the sweeps are in, a Pareto front, the current
        // points at the shown bytes.
        w.showViewByName(QStringLiteral("tradeoffs"));
        QTRY_VERIFY_WITH_TIMEOUT(w.tradeoffView()->curveCount() == 2, kTimeoutMs); // + 1 refused
        QTRY_VERIFY_WITH_TIMEOUT(
            w.session()->sweeps() && !w.session()->sweeps()->curves.empty() &&
                w.session()->sweeps()->curves[0].baseSetting.contains(QStringLiteral("window=8")),
            kTimeoutMs);
        QVERIFY(w.tradeoffView()->paretoPointCount() > 0);
        // Analyses, undo/redo, the quality pass and the sweeps all read one capture.
        QCOMPARE(w.session()->captureForwardPasses(), 1);
        // A log-log slope against kept tokens per curve and metric: the head output error and
        // the headline KL both fall as more tokens are kept, and the legend fits the metric on
        // the axis (KL by default).
        const auto& curve = w.session()->sweeps()->curves[0];
        for (const kvs::Metric m : {kvs::Metric::HeadOutputError, kvs::Metric::NextTokenKl}) {
            const double slope = curve.slope[static_cast<std::size_t>(m)];
            QVERIFY2(std::isfinite(slope) && slope < 0, qPrintable(QString::number(slope)));
        }
        QCOMPARE(w.tradeoffView()->metric(), kvs::views::Metric::NextTokenKl);
        QVERIFY(w.tradeoffView()->legendText(0).contains(QStringLiteral("kl_nats")));
        const auto c = w.session()->analysis();
        QCOMPARE(w.tradeoffView()->currentPoint(0).x(),
                 static_cast<double>(c->runs[0].eval.bytes.total()));
        w.tradeoffView()->setMetric(kvs::views::Metric::NextTokenKl);
        QVERIFY(c->runs[0].eval.quality.has_value());

        // Profile: honest about the backend. The timing backend starts after the first results
        // and a recompute follows, so compare with the analysis the view shows once that is in.
        w.showViewByName(QStringLiteral("profile"));
        QTRY_VERIFY_WITH_TIMEOUT(
            !w.session()->analysis()->timingsPending && !w.session()->isAnalysisBusy(), kTimeoutMs);
        QCoreApplication::processEvents();
        const auto shown = w.session()->analysis();
        QVERIFY(!w.profileView()->deviceText().isEmpty());
        if (!shown->backendIsGpu)
            QVERIFY(w.profileView()->deviceText().contains(QStringLiteral("CPU reference")));
        else if (shown->cpuEmulation)
            QVERIFY(w.profileView()->deviceText().contains(QStringLiteral("CPU emulation")));
        QVERIFY(w.profileView()->summaryText().contains(QStringLiteral("compressing")));
        // On an emulated device the timed attention follows the results; once in, the shown
        // analysis has both the timings and the quality (neither update drops the other).
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->analysis()->timingsDeferred &&
                                     !w.session()->analysis()->qualityPending,
                                 kTimeoutMs);
        const auto timed = w.session()->analysis();
        for (const auto& run : timed->runs) {
            if (!run.error.isEmpty())
                continue; // the refused codec
            QVERIFY2(!run.dispatches.empty(), qPrintable(run.setting));
            QVERIFY(run.eval.quality.has_value());
        }
    }

    // The Trade-offs chart's "Streaming" box: the sweeps also run in streaming mode for the
    // schemes that can stream (their points are what the core's streaming evaluation gives),
    // the others are named with their reason, the Pareto front stays post-prefill's, and a
    // saved session keeps the choice.
    void streamingCurvesBesidePostPrefill() {
        MainWindow w(kvs::test::quietWindowOptions());
        const QStringList settings = {QStringLiteral("select.uniform:sinks=0,window=0"),
                                      QStringLiteral("select.snapkv:observation=4,sinks=0")};
        w.schemesPanel()->setSettings(settings);
        openAndWait(w);
        w.showViewByName(QStringLiteral("tradeoffs"));
        QTRY_VERIFY_WITH_TIMEOUT(w.tradeoffView()->curveCount() == 2, kTimeoutMs);
        QCOMPARE(w.tradeoffView()->streamingCurveCount(), 0);

        auto* box = w.tradeoffView()->findChild<QCheckBox*>(QStringLiteral("tradeoffStreaming"));
        QVERIFY(box);
        box->click();
        QVERIFY(w.session()->streamingCurves());
        QTRY_VERIFY_WITH_TIMEOUT(w.tradeoffView()->streamingCurveCount() == 1, kTimeoutMs);
        const auto sweeps = w.session()->sweeps();
        QCOMPARE(static_cast<int>(sweeps->curves.size()), 3);
        const kvs::views::TradeoffCurve& streaming = sweeps->curves.back();
        QVERIFY(streaming.streaming);
        QCOMPARE(streaming.schemeId, QStringLiteral("select.uniform"));
        QCOMPARE(sweeps->streamingRefused.size(), 1);
        QVERIFY2(sweeps->streamingRefused[0].contains(QStringLiteral("future")),
                 qPrintable(sweeps->streamingRefused[0]));
        for (const auto& front : sweeps->paretoFront)
            for (const auto& ref : front)
                QVERIFY(!sweeps->curves[static_cast<std::size_t>(ref.curve)].streaming);
        bool legend = false;
        for (int i = 0; i < 16; ++i)
            legend =
                legend || w.tradeoffView()->legendText(i).contains(QStringLiteral("(streaming)"));
        QVERIFY(legend);

        // The chart's CSV says which rows streamed.
        const auto csv = w.tradeoffView()->charts().front().data();
        const int mode = static_cast<int>(csv.header.indexOf(QStringLiteral("mode")));
        QVERIFY(mode >= 0);
        int streamedRows = 0;
        for (const QStringList& row : csv.rows)
            streamedRows += row.value(mode) == QLatin1String("streaming") ? 1 : 0;
        QCOMPARE(streamedRows, static_cast<int>(streaming.points.size()));

        // The first point against the core's own streaming evaluation of that setting.
        const auto& point = streaming.points.front();
        auto setting = kvs::SchemeSetting::parse(point.result.scheme);
        KVS_VERIFY_OK(setting);
        const auto model = w.session()->model()->model;
        const auto capture = model->captureTokens(w.session()->tokens()->ids);
        KVS_VERIFY_OK(capture);
        // Evaluated as the sweep job ran: with half the cores (the session's background jobs).
        const kvs::ScopedThreadLimit threads(std::max(1, kvs::hardwareThreads() / 2));
        auto cpu = kvs::makeCpuBackend();
        kvs::EvalOptions options;
        options.mode = kvs::EvalMode::Streaming;
        options.contextTokens = w.session()->analysis()->contextTokens;
        const auto direct =
            kvs::evaluate(capture.value(), model.get(), setting.value(), *cpu, options);
        KVS_VERIFY_OK(direct);
        QCOMPARE(point.result.outputError, direct->outputError);
        QVERIFY(point.result.quality && direct->quality);
        QVERIFY(std::abs(point.result.quality->klMean - direct->quality->klMean) <=
                1e-6 * direct->quality->klMean);
        options.mode = kvs::EvalMode::PostPrefill;
        const auto postPrefill =
            kvs::evaluate(capture.value(), model.get(), setting.value(), *cpu, options);
        KVS_VERIFY_OK(postPrefill);
        QVERIFY(postPrefill->outputError != direct->outputError); // a different cache

        const QString path = qpath(m_dir->path() / "streaming.kvsession");
        QString error;
        QVERIFY2(w.saveSession(path, &error), qPrintable(error));
        QFile file(path);
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QJsonObject view = QJsonDocument::fromJson(file.readAll())
                                     .object()
                                     .value(QStringLiteral("view"))
                                     .toObject();
        QCOMPARE(view.value(QStringLiteral("streaming_curves")).toBool(), true);
        box->click();
        QVERIFY(!w.session()->streamingCurves());
        QTRY_VERIFY_WITH_TIMEOUT(w.tradeoffView()->streamingCurveCount() == 0, kTimeoutMs);
    }

    void exportsEveryChart() {
        MainWindowOptions options = kvs::test::quietWindowOptions();
        kvs::test::ReplaceQuestions replace;
        kvs::test::answerReplace(options, replace);
        MainWindow w(options);
        w.resize(1400, 900);
        w.show();
        openAndWait(w);
        kvs::test::TempDir out;
        for (const QString& view : {QStringLiteral("attention"), QStringLiteral("cache"),
                                    QStringLiteral("profile"), QStringLiteral("tradeoffs")}) {
            QVERIFY(w.showViewByName(view));
            QTest::qWait(20);
            QString error;
            const QStringList files =
                w.exportCurrentView(qpath(out.path() / view.toStdString()), 150, &error);
            QVERIFY2(error.isEmpty(), qPrintable(error));
            QVERIFY(!files.isEmpty());
            for (const QString& f : files) {
                QVERIFY2(QFileInfo(f).size() > 100, qPrintable(f));
                QVERIFY2(QFileInfo::exists(f + QStringLiteral(".json")), qPrintable(f));
            }
        }
        // PNG at the replace.asked DPI, SVG with text, CSV with provenance and units, sidecar JSON.
        const QString base = qpath(out.path() / "cache" / "cache_bytes");
        QImage png(base + QStringLiteral(".png"));
        QVERIFY(!png.isNull());
        QCOMPARE(qRound(png.dotsPerMeterX() * 0.0254), 150);
        QFile svg(base + QStringLiteral(".svg"));
        QVERIFY(svg.open(QIODevice::ReadOnly));
        const QByteArray svgText = svg.readAll();
        QVERIFY(svgText.contains("<svg"));
        QVERIFY(svgText.contains("keys"));
        QFile pdf(base + QStringLiteral(".pdf"));
        QVERIFY(pdf.open(QIODevice::ReadOnly));
        QVERIFY(pdf.read(5) == "%PDF-");
        QFile csv(base + QStringLiteral(".csv"));
        QVERIFY(csv.open(QIODevice::ReadOnly));
        const QStringList lines = QString::fromUtf8(csv.readAll()).split(QLatin1Char('\n'));
        QVERIFY(lines[0].startsWith(QStringLiteral("# KV Studio")));
        int header = 0;
        while (lines[header].startsWith(QLatin1Char('#')))
            ++header;
        QVERIFY(lines[header].startsWith(QStringLiteral("layer,kv_head,keys_bytes")));
        const auto a = w.session()->analysis();
        QCOMPARE(lines[header + 1].split(QLatin1Char(','))[5],
                 QString::number(static_cast<qulonglong>(a->runs[0].eval.heads[0].bytes.total())));
        QFile sidecar(base + QStringLiteral(".csv.json"));
        QVERIFY(sidecar.open(QIODevice::ReadOnly));
        const QJsonObject prov = QJsonDocument::fromJson(sidecar.readAll())
                                     .object()[QStringLiteral("provenance")]
                                     .toObject();
        QCOMPARE(prov[QStringLiteral("model")].toString(), QStringLiteral("tiny-llama-gqa"));
        QCOMPARE(prov[QStringLiteral("prompt")].toString(), kPrompt);
        QCOMPARE(prov[QStringLiteral("schemes")].toArray().size(), 3);

        // Exporting again replaces the studio's own files without a question...
        QVERIFY(w.showViewByName(QStringLiteral("cache")));
        const QString folder = qpath(out.path() / "cache");
        QString error;
        QVERIFY2(!w.exportCurrentView(folder, 150, &error).isEmpty() && error.isEmpty(),
                 qPrintable(error));
        QVERIFY(replace.asked.isEmpty());
        // ...but not a file it did not write, an export edited since, or a symbolic link: each is
        // replace.asked about, and "no" leaves it as it was.
        const fs::path cacheDir = out.path() / "cache";
        kvs::test::writeBytes(cacheDir / "cache_bytes.csv", "my own table\n");
        w.exportCurrentView(folder, 150, &error);
        QCOMPARE(replace.asked, QStringList{base + QStringLiteral(".csv")});
        QVERIFY2(error.contains(base + QStringLiteral(".csv")) &&
                     error.contains(QStringLiteral("not written by KV Studio")),
                 qPrintable(error));
        QCOMPARE(kvs::test::readBytes(cacheDir / "cache_bytes.csv"), std::string("my own table\n"));
        const std::string svgBytes = kvs::test::readBytes(cacheDir / "cache_bytes.svg");
        kvs::test::writeBytes(cacheDir / "cache_bytes.svg", svgBytes + "<!-- edited -->");
        error.clear();
        w.exportCurrentView(folder, 150, &error);
        QCOMPARE(replace.asked.back(), base + QStringLiteral(".svg"));
        kvs::test::writeBytes(out.path() / "target.txt", "linked");
        fs::remove(cacheDir / "cache_bytes.svg");
        fs::create_symlink(out.path() / "target.txt", cacheDir / "cache_bytes.svg");
        error.clear();
        w.exportCurrentView(folder, 150, &error);
        QCOMPARE(replace.asked.back(), base + QStringLiteral(".svg"));
        QVERIFY(error.contains(QStringLiteral("symbolic link")));
        QCOMPARE(kvs::test::readBytes(out.path() / "target.txt"), std::string("linked"));
        // "Yes" replaces them (the link by a file; its target untouched), and no temporary is left.
        replace.answer = true;
        error.clear();
        QVERIFY2(!w.exportCurrentView(folder, 150, &error).isEmpty() && error.isEmpty(),
                 qPrintable(error));
        QVERIFY(kvs::test::readBytes(cacheDir / "cache_bytes.csv").starts_with("# KV Studio"));
        QVERIFY(!fs::is_symlink(cacheDir / "cache_bytes.svg"));
        QCOMPARE(kvs::test::readBytes(out.path() / "target.txt"), std::string("linked"));
        for (const auto& entry : fs::directory_iterator(cacheDir))
            QVERIFY2(entry.path().filename().string().find(".tmp-") == std::string::npos,
                     entry.path().c_str());
    }

    void sessionsPaletteThemeBaseline() {
        kvs::test::TempDir dir;
        const QString path = qpath(dir.path() / "a.kvsession");
        {
            MainWindow w(kvs::test::quietWindowOptions());
            w.show();
            openAndWait(w);
            w.schemesPanel()->setParameter(1, QStringLiteral("keep"), 0.125);
            w.showViewByName(QStringLiteral("cache"));
            w.tradeoffView()->setColouring(kvs::views::TradeoffView::Colouring::Family);
            w.cacheView()->selectHead(1, 0);
            QString error;
            QVERIFY2(w.saveSession(path, &error), qPrintable(error));
            QVERIFY(w.undoStack()->isClean());

            // Pin, change, compare.
            QVERIFY(waitAnalysis(w, w.schemesPanel()->settings()));
            w.pinBaseline();
            QVERIFY(w.hasBaseline());

            // Command palette lists the actions and filters them.
            CommandPalette palette(w.allActions(), &w);
            const int all = palette.visibleCount();
            QVERIFY(all > 15);
            palette.setFilter(QStringLiteral("next head"));
            QCOMPARE(palette.visibleCount(), 1);
            QVERIFY(palette.triggerCurrent());
            QCOMPARE(w.tabs()->currentIndex(), w.viewIndex(QStringLiteral("attention")));

            w.setDarkTheme(true);
            QVERIFY(w.isDarkTheme());
            QVERIFY(
                w.attentionView()->gridPlot()->axisRect()->backgroundBrush().color().lightness() <
                100);
            w.setDarkTheme(false);
        }
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        w.session()->setAnalysisDelay(0);
        QString error;
        QVERIFY2(w.openSession(path, &error), qPrintable(error));
        QCOMPARE(w.schemesPanel()->parameter(1, "keep"), 0.125);
        QCOMPARE(w.tabs()->currentIndex(), w.viewIndex(QStringLiteral("cache")));
        QCOMPARE(w.tradeoffView()->colouring(), kvs::views::TradeoffView::Colouring::Family);
        QCOMPARE(w.cacheView()->selectedLayer(), 1);
        QCOMPARE(w.cacheView()->selectedKvHead(), 0);
        QVERIFY(waitAnalysis(w, w.schemesPanel()->settings()));
        QCOMPARE(w.session()->analysis()->provenance.prompt, kPrompt);

        // A broken session names the file and the field.
        QFile bad(qpath(dir.path() / "bad.kvsession"));
        QVERIFY(bad.open(QIODevice::WriteOnly));
        bad.write(R"({"kvstudio_session": 1, "schemes": ["nope:x=1"]})");
        bad.close();
        QVERIFY(!w.openSession(bad.fileName(), &error));
        QVERIFY(error.contains(QStringLiteral("bad.kvsession")) &&
                error.contains(QStringLiteral("schemes")));
        QVERIFY(bad.open(QIODevice::WriteOnly | QIODevice::Truncate));
        bad.write(R"({"kvstudio_session": 1, "view": {"colour_by": "rainbow"}})");
        bad.close();
        QVERIFY(!w.openSession(bad.fileName(), &error));
        QVERIFY2(error.contains(QStringLiteral("colour_by")) && error.contains("rainbow"),
                 qPrintable(error));
    }
};

QTEST_MAIN(TestStudioViews)
#include "test_studio_views.moc"
