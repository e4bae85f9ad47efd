// SPDX-License-Identifier: MIT
// The studio's document handling and figure pipeline (offscreen): the context / probe split
// dragged on the token chips (and undone), the session's title, modified mark and recent files,
// the trade-off chart's theory overlay checked against hand-computed guides, the undo history's
// bound, and `kvstudio-cli render` re-drawing a saved session's charts into files.
#include "cli_test_support.h"
#include "kvs/scheme.h"
#include "kvs_test.h"
#include "studio_test_support.h"

#include "analysis.h"
#include "attention_view.h"
#include "cli.h"
#include "main_window.h"
#include "render_command.h"
#include "schemes_panel.h"
#include "session.h"
#include "session_document.h"
#include "setup_panel.h"
#include "studio_settings.h"
#include "token_chips_view.h"
#include "tradeoff_view.h"

#include "kvs/synthetic_model.h"

#include <QAction>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPlainTextEdit>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTest>
#include <QTextCursor>
#include <QUndoStack>
#include <cmath>
#include <sstream>

using namespace kvs::studio;
namespace fs = std::filesystem;

namespace {

constexpr int kTimeoutMs = kvs::test::kStudioTimeoutMs;
const QString kPrompt = QStringLiteral("The cache keeps keys and values of every token; "
                                       "compression keeps the ones that matter.");

using kvs::test::qpath;

// A curve point: `kept` tokens per head (two heads), `bytes` in all, attention error `error`.
kvs::views::CurvePoint point(double value, int kept, std::size_t bytes, double error, double rho) {
    kvs::views::CurvePoint p;
    p.value = value;
    p.result.contextError = error;
    p.result.bytes.keys = bytes;
    for (int h = 0; h < 2; ++h) {
        kvs::HeadMetrics m;
        m.keptTokens = kept;
        m.rhoEff = rho + h; // medians over the two heads: the upper one (nth_element at n/2)
        m.boundTokens = 1000.0 * (h + 1);
        p.result.heads.push_back(m);
    }
    return p;
}

using kvs::test::CliRun;
using kvs::test::run;

} // namespace

class TestStudioSessions : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<kvs::test::TempDir> m_dir;
    fs::path m_model;

    static bool waitFor(MainWindow& w,
                        const std::function<bool(const kvs::views::AnalysisData&)>& ok) {
        return kvs::test::waitForAnalysis(w, ok);
    }

    void openAndWait(MainWindow& w) {
        w.session()->setAnalysisDelay(0);
        w.setPrompt(kPrompt);
        w.openModel(qpath(m_model));
        QVERIFY2(waitFor(w,
                         [&](const kvs::views::AnalysisData& a) {
                             return a.provenance.schemes == w.schemesPanel()->settings();
                         }),
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

    void splitMarkerDrivesTheAnalysisAndUndo() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        w.session()->setSweepsEnabled(false);
        openAndWait(w);
        kvs::views::TokenChipsView* chips = w.setupPanel()->chipsView();
        const int tokens = w.session()->tokens()->count();
        const int initial = w.session()->contextTokens();
        QVERIFY(tokens > 8);
        QCOMPARE(chips->split(), initial);
        QVERIFY(chips->splitMarkerRect().isValid() || initial > 0);

        // What a drag on the chips does: the Schemes dock, the session and the analysis follow.
        chips->moveSplit(5);
        QCOMPARE(w.session()->requestedContextTokens(), 5);
        QCOMPARE(w.schemesPanel()->requestedContextTokens(), 5);
        QVERIFY(waitFor(w, [](const kvs::views::AnalysisData& a) { return a.contextTokens == 5; }));
        QCOMPARE(w.session()->analysis()->probeTokens, tokens - 5);
        QVERIFY(w.isSessionModified());

        // The Schemes dock's spin box moves the marker.
        auto* spin = w.schemesPanel()->findChild<QSpinBox*>(QStringLiteral("splitSpin"));
        QVERIFY(spin);
        spin->setValue(7);
        QCOMPARE(chips->split(), 7);

        // Consecutive moves are one undo step back to where the split started.
        QVERIFY(w.undoStack()->canUndo());
        w.undoStack()->undo();
        QCOMPARE(w.session()->requestedContextTokens(), initial);
        QCOMPARE(chips->split(), initial);
        w.undoStack()->redo();
        QCOMPARE(w.session()->requestedContextTokens(), 7);
        QCOMPARE(chips->split(), 7);
        QVERIFY(waitFor(w, [](const kvs::views::AnalysisData& a) { return a.contextTokens == 7; }));
    }

    // The undo history is bounded: past its limit the oldest step goes (docs/soak.md).
    void undoHistoryIsBounded() {
        MainWindow w(kvs::test::quietWindowOptions());
        QUndoStack* undo = w.undoStack();
        QVERIFY(undo->undoLimit() > 0);
        for (int i = 0; i < undo->undoLimit() + 10; ++i)
            undo->push(new QUndoCommand(QStringLiteral("step %1").arg(i)));
        QCOMPARE(undo->count(), undo->undoLimit());
        QCOMPARE(undo->text(0), QStringLiteral("step 10"));
    }

    // Saving over a file KV Studio did not write asks first; "no" leaves it as it was, "yes"
    // replaces it, and the session written then is the studio's own (no question next time).
    void saveAsksBeforeReplacingAForeignFile() {
        kvs::test::TempDir dir;
        MainWindowOptions options = kvs::test::quietWindowOptions();
        kvs::test::ReplaceQuestions replace;
        kvs::test::answerReplace(options, replace);
        MainWindow w(options);
        const QString path = qpath(dir.path() / "notes.kvsession");
        kvs::test::writeBytes(dir.path() / "notes.kvsession", "my notes");
        QString error;
        QVERIFY(!w.saveSession(path, &error));
        QCOMPARE(replace.asked, QStringList{path});
        QVERIFY2(error.contains(path) && error.contains(QStringLiteral("not written by KV Studio")),
                 qPrintable(error));
        QCOMPARE(kvs::test::readBytes(dir.path() / "notes.kvsession"), std::string("my notes"));
        replace.answer = true;
        QVERIFY2(w.saveSession(path, &error), qPrintable(error));
        QCOMPARE(replace.asked.size(), 2);
        QVERIFY(kvs::test::readBytes(dir.path() / "notes.kvsession").find("kvstudio_session") !=
                std::string::npos);
        replace.answer = false;
        QVERIFY2(w.saveSession(path, &error), qPrintable(error));
        QCOMPARE(replace.asked.size(), 2); // ours now: replaced without a question
        // No temporary is left beside it.
        QCOMPARE(QDir(qpath(dir.path())).entryList(QDir::Files | QDir::Hidden),
                 QStringList{"notes.kvsession"});
    }

    // The view state is stored by name (metric "kl_nats", mode "difference"); a version-1 file's
    // index is still read, and a value that names nothing is refused with the field.
    void viewStateIsStoredByName() {
        kvs::test::TempDir dir;
        const QString path = qpath(dir.path() / "view.kvsession");
        SessionDocument d;
        d.metric = kvs::views::Metric::NextTokenKl;
        d.attentionMode = kvs::views::AttentionView::Mode::Difference;
        d.attentionColourScale = kvs::views::AttentionView::ColourScale::Log;
        const QByteArray json = sessionJson(d, path);
        const QJsonObject view =
            QJsonDocument::fromJson(json).object()[QStringLiteral("view")].toObject();
        QCOMPARE(view[QStringLiteral("metric")].toString(), QStringLiteral("kl_nats"));
        QCOMPARE(view[QStringLiteral("attention_mode")].toString(), QStringLiteral("difference"));
        QCOMPARE(view[QStringLiteral("attention_colour_scale")].toString(), QStringLiteral("log"));
        kvs::test::writeBytes(dir.path() / "view.kvsession", json.toStdString());
        SessionDocument read;
        QString error;
        QVERIFY2(readSessionDocument(path, &read, &error), qPrintable(error));
        QCOMPARE(read.metric, kvs::views::Metric::NextTokenKl);
        QCOMPARE(read.attentionMode, kvs::views::AttentionView::Mode::Difference);
        QCOMPARE(read.attentionColourScale, kvs::views::AttentionView::ColourScale::Log);

        const auto withView = [&](const char* key, const QJsonValue& value) {
            QJsonObject o = QJsonDocument::fromJson(json).object();
            QJsonObject v = o[QStringLiteral("view")].toObject();
            v[QString::fromLatin1(key)] = value;
            o[QStringLiteral("view")] = v;
            kvs::test::writeBytes(dir.path() / "view.kvsession",
                                  QJsonDocument(o).toJson().toStdString());
        };
        withView("metric", 3); // version-1 index: perplexity change
        QVERIFY2(readSessionDocument(path, &read, &error), qPrintable(error));
        QCOMPARE(read.metric, kvs::views::Metric::PerplexityChange);
        withView("metric", QStringLiteral("accuracy"));
        QVERIFY(!readSessionDocument(path, &read, &error));
        QVERIFY2(error.contains(path) && error.contains(QStringLiteral("view.metric")) &&
                     error.contains(QStringLiteral("kl_nats")),
                 qPrintable(error));
        withView("metric", QStringLiteral("kl_nats"));
        withView("attention_mode", 9);
        QVERIFY(!readSessionDocument(path, &read, &error));
        QVERIFY2(error.contains(QStringLiteral("view.attention_mode")), qPrintable(error));
        withView("attention_mode", QStringLiteral("difference"));
        withView("attention_colour_scale", QStringLiteral("cubic"));
        QVERIFY(!readSessionDocument(path, &read, &error));
        QVERIFY2(error.contains(QStringLiteral("view.attention_colour_scale")) &&
                     error.contains(QStringLiteral("linear, sqrt, log")),
                 qPrintable(error));
        withView("attention_colour_scale", QJsonValue()); // older files: linear
        QVERIFY2(readSessionDocument(path, &read, &error), qPrintable(error));
        QCOMPARE(read.attentionColourScale, kvs::views::AttentionView::ColourScale::Linear);
    }

    // Sessions name a setting by the parameters it sets. A file written before the common sinks
    // and window (no "scheme_defaults") keeps its meaning: the parameters whose default changed
    // are read at their earlier values; a file of today's defaults is read as written.
    void earlierSchemeDefaultsKeepTheirMeaning() {
        kvs::test::TempDir dir;
        const QString path = qpath(dir.path() / "old.kvsession");
        SessionDocument d;
        d.schemes = {QStringLiteral("select.tova:keep=0.25"),
                     QStringLiteral("coreset.halving:keep=0.25,window=8"),
                     QStringLiteral("codec.uniform:bits=4")};
        const QByteArray json = sessionJson(d, path);
        QJsonObject o = QJsonDocument::fromJson(json).object();
        QCOMPARE(o[QStringLiteral("scheme_defaults")].toInt(), kvs::kSchemeDefaultsGeneration);
        kvs::test::writeBytes(dir.path() / "old.kvsession", json.toStdString());
        SessionDocument read;
        QString error;
        QVERIFY2(readSessionDocument(path, &read, &error), qPrintable(error));
        QCOMPARE(read.schemes, d.schemes);
        o.remove(QStringLiteral("scheme_defaults"));
        kvs::test::writeBytes(dir.path() / "old.kvsession",
                              QJsonDocument(o).toJson().toStdString());
        QVERIFY2(readSessionDocument(path, &read, &error), qPrintable(error));
        QCOMPARE(read.schemes,
                 (QStringList{QStringLiteral("select.tova:keep=0.25,sinks=0,window=0"),
                              QStringLiteral("coreset.halving:keep=0.25,window=8"),
                              QStringLiteral("codec.uniform:bits=4")}));
    }

    void titleModifiedMarkAndRecentSessions() {
        kvs::test::TempDir dir;
        MainWindowOptions options = kvs::test::quietWindowOptions();
        options.persistSettings = true; // recent sessions live in the (test-mode) settings
        MainWindow w(options);
        w.show();
        w.session()->setSweepsEnabled(false);
        openAndWait(w);
        QVERIFY(w.windowTitle().startsWith(QStringLiteral("Untitled session")));
        QVERIFY(w.windowTitle().contains(QStringLiteral("tiny-llama-gqa")));
        QVERIFY2(!w.isSessionModified(), "a prompt set by the program is not an edit");

        w.setupPanel()->promptEdit()->moveCursor(QTextCursor::End);
        QTest::keyClicks(w.setupPanel()->promptEdit(), QStringLiteral(" More."));
        QVERIFY(w.isSessionModified());

        const QString a = qpath(dir.path() / "a.kvsession");
        QString error;
        QVERIFY2(w.saveSession(a, &error), qPrintable(error));
        QVERIFY(!w.isSessionModified());
        QCOMPARE(w.sessionPath(), QFileInfo(a).absoluteFilePath());
        QVERIFY(w.windowTitle().startsWith(QStringLiteral("a.kvsession")));
        QCOMPARE(w.recentSessions().value(0), QFileInfo(a).absoluteFilePath());

        // A scheme edit marks the session modified again; saving under another name puts that
        // one first in the recent list.
        w.schemesPanel()->setContextTokens(4);
        QVERIFY(w.isSessionModified());
        const QString b = qpath(dir.path() / "b.kvsession");
        QVERIFY2(w.saveSession(b, &error), qPrintable(error));
        QCOMPARE(w.recentSessions(),
                 (QStringList{QFileInfo(b).absoluteFilePath(), QFileInfo(a).absoluteFilePath()}));

        // Opening a session: its name in the title, nothing modified, split restored.
        QVERIFY2(w.openSession(a, &error), qPrintable(error));
        QCOMPARE(w.sessionPath(), QFileInfo(a).absoluteFilePath());
        QVERIFY(!w.isSessionModified());
        QVERIFY(waitFor(w, [](const kvs::views::AnalysisData& analysis) {
            return analysis.provenance.prompt.endsWith(QStringLiteral(" More."));
        }));
        QVERIFY(!w.isSessionModified());
        QCOMPARE(w.recentSessions().value(0), QFileInfo(a).absoluteFilePath());

        // A vanished file drops out of the list.
        QVERIFY(QFile::remove(b));
        QCOMPARE(w.recentSessions(), QStringList{QFileInfo(a).absoluteFilePath()});
        QVERIFY(w.maybeSaveSession()); // askToSaveOnClose off: never blocks
    }

    void cancelStopsLongWorkAndKeepsTheResults() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        w.session()->setAnalysisDelay(0);
        w.setPrompt(kPrompt);

        // A load cancelled before it lands leaves no model and an idle window.
        w.openModel(qpath(m_model));
        QVERIFY(w.session()->hasCancellableWork());
        w.cancelWork();
        QCOMPARE(w.session()->modelState(), ModelState::None);
        QVERIFY(!w.session()->hasCancellableWork());
        QVERIFY(QTest::qWaitFor([&] { return !w.session()->isBusy(); }, kTimeoutMs));
        QTest::qWait(200);
        QCOMPARE(w.session()->modelState(), ModelState::None); // the late result was dropped
        QVERIFY(!w.session()->model());

        openAndWait(w);
        QVERIFY(QTest::qWaitFor([&] { return !w.session()->hasCancellableWork(); }, kTimeoutMs));
        QTRY_VERIFY_WITH_TIMEOUT(!w.isCancelVisible(), 2000); // the indicator re-checks at 10 Hz
        const auto before = w.session()->analysis();

        // A new setting starts work; Esc's action cancels it and nothing new is delivered — not
        // even when the timing backend comes up afterwards (its start-up recompute would redo
        // the cancelled settings; on a loaded machine it lands after the cancel).
        w.schemesPanel()->setContextTokens(6);
        w.session()->recomputeNow();
        QVERIFY(w.session()->hasCancellableWork());
        QAction* cancel = w.findChild<QAction*>(QStringLiteral("cancelWorkAction"));
        QVERIFY(cancel && cancel->isEnabled());
        QCOMPARE(cancel->shortcut(), QKeySequence(Qt::Key_Escape));
        cancel->trigger();
        QVERIFY(!w.session()->hasCancellableWork());
        QVERIFY(QTest::qWaitFor([&] { return !w.session()->isBusy(); }, kTimeoutMs));
        QTest::qWait(200);
        QCOMPARE(w.session()->analysis(), before);
        QTRY_VERIFY_WITH_TIMEOUT(!cancel->isEnabled() && !w.isCancelVisible(), 2000);

        // Recompute starts again from the current settings.
        w.session()->recomputeNow();
        QVERIFY(waitFor(w, [](const kvs::views::AnalysisData& a) { return a.contextTokens == 6; }));
    }

    void pinnedBaselineGivesDifferenceMaps() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        w.session()->setSweepsEnabled(false);
        openAndWait(w);
        w.showViewByName(QStringLiteral("attention"));
        kvs::views::AttentionView* view = w.attentionView();
        QVERIFY(!view->hasBaselineDifference());
        w.pinBaseline();
        const auto baseline = w.session()->analysis();
        QVERIFY(view->hasBaselineDifference());

        // Change the focused scheme's budget; the difference map now shows current − pinned.
        w.schemesPanel()->setParameter(0, QStringLiteral("keep"), 0.5);
        QVERIFY(waitFor(w, [&](const kvs::views::AnalysisData& a) {
            return a.provenance.schemes == w.schemesPanel()->settings() && a.runs.size() > 0 &&
                   a.runs[0].setting.contains(QStringLiteral("keep=0.5"));
        }));
        QVERIFY(view->hasBaselineDifference());
        view->setDifferenceReference(1);
        QCOMPARE(view->differenceReference(), 1);
        view->setSelection(1, 1);
        const auto current = w.session()->analysis();
        const int g = current->groupSize();
        const std::size_t kv = static_cast<std::size_t>(1 * current->kvHeads + 1 / g);
        const std::size_t j = static_cast<std::size_t>(1 % g);
        const kvs::Matrix& now = current->runs[0].maps->at(kv).compressed[j];
        const kvs::Matrix& then = baseline->runs[0].maps->at(kv).compressed[j];
        double largest = 0;
        for (int r = 0; r < now.rows(); ++r)
            for (int c = 0; c < now.cols(); ++c) {
                const double expected = static_cast<double>(now(r, c)) - then(r, c);
                QVERIFY(std::abs(view->cellValue(2, r, c) - expected) < 1e-6);
                largest = std::max(largest, std::abs(expected));
            }
        QVERIFY2(largest > 1e-4, "keep 0.25 → 0.5 should change the compressed attention");
        // Back to the error against the exact attention.
        view->setDifferenceReference(0);
        const kvs::Matrix& exact = *current->runs[0].maps->at(kv).exact(j);
        QVERIFY(std::abs(view->cellValue(2, 0, 0) - (now(0, 0) - exact(0, 0))) < 1e-6);

        // Another split (or prompt, or model) is not comparable: no maps.
        kvs::views::AnalysisData otherSplit = *baseline;
        otherSplit.contextTokens -= 1;
        QVERIFY(baselineDifference(*current, 0, otherSplit, 0) == nullptr);
        QVERIFY(baselineDifference(*current, 0, *baseline, 0) != nullptr);
        QVERIFY(baselineDifference(*current, 0, *baseline, 99) == nullptr);
        // Clearing the pin removes them.
        w.clearBaseline();
        QVERIFY(!view->hasBaselineDifference());
        QCOMPARE(view->differenceReference(), 0);
    }

    void theoryOverlayFollowsTheFamilySlope() {
        kvs::views::TradeoffCurve curve;
        curve.schemeId = QStringLiteral("coreset.halving");
        curve.displayName = QStringLiteral("Discrepancy halving");
        // 100 context tokens; the last point keeps everything and must not anchor the guide.
        curve.points = {point(0.1, 10, 400, 0.08, 12.0), point(0.2, 20, 800, 0.05, 10.0),
                        point(0.4, 40, 1600, 0.02, 9.0), point(1.0, 100, 4000, 0.0, 9.0)};
        addTheoryOverlay(curve, 100);
        // Anchored at the compressing point that keeps the most (1600 B, 0.02), extended back
        // to the most compressed one's bytes: 0.02 · (400/1600)^−1 = 0.08.
        QCOMPARE(curve.theorySlope, -1.0);
        QCOMPARE(curve.guideX1, 1600.0);
        QCOMPARE(curve.guideY1, 0.02);
        QCOMPARE(curve.guideX0, 400.0);
        QVERIFY(std::abs(curve.guideY0 - 0.08) < 1e-12);
        QCOMPARE(curve.boundRho, 10.0); // heads 9 and 10: the upper median
        QCOMPARE(curve.boundTokens, 2000.0);
        QCOMPARE(curve.boundKeptTokens, 40.0);

        kvs::views::TradeoffCurve uniform = curve;
        uniform.schemeId = QStringLiteral("select.uniform");
        addTheoryOverlay(uniform, 100);
        QCOMPARE(uniform.theorySlope, -0.5);
        QVERIFY(std::abs(uniform.guideY0 - 0.04) < 1e-12); // 0.02 · (1/4)^−½

        kvs::views::TradeoffCurve h2o = curve;
        h2o.schemeId = QStringLiteral("select.h2o");
        h2o.theorySlope = std::numeric_limits<double>::quiet_NaN();
        addTheoryOverlay(h2o, 100);
        QVERIFY(std::isnan(h2o.theorySlope)); // no theory for a heuristic
        QCOMPARE(h2o.boundKeptTokens, 40.0);

        // The view draws one dotted guide per family with a theory, on the context-only error
        // only (the error the theory speaks of; the chart opens on the headline KL).
        auto sweeps = std::make_shared<kvs::views::SweepData>();
        sweeps->curves = {curve, uniform, h2o};
        kvs::views::TradeoffView view;
        view.resize(800, 500);
        view.show();
        QCOMPARE(view.metric(), kvs::views::Metric::NextTokenKl);
        view.setCurves(sweeps);
        QCOMPARE(view.theoryGuideCount(), 0);
        view.setMetric(kvs::views::Metric::ContextError);
        view.setCurves(sweeps);
        QCOMPARE(view.theoryGuideCount(), 2);
        // The bound's 2,000 tokens as its order of magnitude (its constants are unknown).
        QVERIFY2(view.summaryText().contains(QStringLiteral("about 10\u00B3 tokens")),
                 qPrintable(view.summaryText()));
        view.setTheoryVisible(false);
        QCOMPARE(view.theoryGuideCount(), 0);
        view.setTheoryVisible(true);
        view.setMetric(kvs::views::Metric::MassLost);
        QCOMPARE(view.theoryGuideCount(), 0);
    }

    void renderRedrawsASavedSession() {
        kvs::test::TempDir dir;
        const QString session = qpath(dir.path() / "figures.kvsession");
        {
            MainWindow w(kvs::test::quietWindowOptions());
            w.show();
            w.session()->setSweepsEnabled(false);
            openAndWait(w);
            QString error;
            QVERIFY2(w.saveSession(session, &error), qPrintable(error));
        }
        kvs::cli::setRenderHandler(&runRenderCommand);
        const fs::path out = dir.path() / "figures";
        // Figures at a physical size: 85 × 60 mm at 150 dpi, text at 8 pt.
        const CliRun r = run({"render", session.toStdString(), "--out", out.string(), "--views",
                              "tradeoffs,cache", "--dpi", "150", "--width-mm", "85", "--height-mm",
                              "60", "--font-pt", "8", "--json"});
        QVERIFY2(r.code == 0, r.err.c_str());
        const QJsonObject report =
            QJsonDocument::fromJson(QByteArray::fromStdString(r.out)).object();
        const QJsonArray files = report.value(QStringLiteral("files")).toArray();
        QVERIFY(files.size() >= 8); // at least one chart per view, four formats each
        QCOMPARE(report.value(QStringLiteral("dpi")).toInt(), 150);
        int pngs = 0;
        for (const QJsonValue& f : files) {
            const QString path = f.toString();
            QVERIFY2(QFileInfo(path).size() > 0, qPrintable(path));
            QVERIFY2(QFileInfo::exists(path + QStringLiteral(".json")),
                     qPrintable(path + " has no provenance sidecar"));
            QVERIFY(path.contains(QStringLiteral("/tradeoffs/")) ||
                    path.contains(QStringLiteral("/cache/")));
            if (path.endsWith(QStringLiteral(".png"))) {
                ++pngs;
                QImage image(path);
                QVERIFY2(!image.isNull() && qAbs(image.width() - qRound(85 / 25.4 * 150)) <= 1 &&
                             qAbs(image.height() - qRound(60 / 25.4 * 150)) <= 1,
                         qPrintable(path));
            }
        }
        QVERIFY(pngs >= 2);
        // The sidecar names the session's model and prompt.
        QFile sidecar(files.at(0).toString() + QStringLiteral(".json"));
        QVERIFY(sidecar.open(QIODevice::ReadOnly));
        const QByteArray provenance = sidecar.readAll();
        QVERIFY(provenance.contains("tiny-llama-gqa"));
        QVERIFY(provenance.contains("compression keeps the ones that matter"));

        // Rendering again replaces the studio's own exports; a file it did not write stops the
        // render (code "exists", the file untouched) unless --force.
        const fs::path csvPath = out / "cache" / "cache_bytes.csv";
        QVERIFY(fs::exists(csvPath));
        const std::vector<std::string> again = {
            "render",  session.toStdString(), "--out", out.string(),
            "--views", "tradeoffs,cache",     "--dpi", "50",
            "--json"};
        CliRun rerun = run(again);
        QVERIFY2(rerun.code == 0, rerun.err.c_str());
        kvs::test::writeBytes(csvPath, "my own table\n");
        CliRun refused = run(again);
        QCOMPARE(refused.code, 1);
        QVERIFY2(refused.out.find("\"exists\"") != std::string::npos, refused.out.c_str());
        QVERIFY2(refused.out.find("cache_bytes.csv") != std::string::npos &&
                     refused.out.find("--force") != std::string::npos,
                 refused.out.c_str());
        QCOMPARE(kvs::test::readBytes(csvPath), std::string("my own table\n"));
        std::vector<std::string> forced = again;
        forced.push_back("--force");
        CliRun replaced = run(forced);
        QVERIFY2(replaced.code == 0, replaced.err.c_str());
        QVERIFY(kvs::test::readBytes(csvPath).starts_with("# KV Studio"));
        for (const auto& entry : fs::recursive_directory_iterator(out))
            QVERIFY2(entry.path().filename().string().find(".tmp-") == std::string::npos,
                     entry.path().c_str());

        // Errors: a missing file, a file that is no session, an unknown view.
        CliRun missing = run(
            {"render", (dir.path() / "none.kvsession").string(), "--out", out.string(), "--json"});
        QCOMPARE(missing.code, 1);
        QVERIFY(missing.out.find("\"io\"") != std::string::npos);
        QFile junk(qpath(dir.path() / "junk.kvsession"));
        QVERIFY(junk.open(QIODevice::WriteOnly));
        junk.write("{ not json");
        junk.close();
        CliRun bad = run({"render", junk.fileName().toStdString(), "--out", out.string()});
        QCOMPARE(bad.code, 1);
        QVERIFY2(bad.err.find("junk.kvsession") != std::string::npos, bad.err.c_str());
        CliRun view =
            run({"render", session.toStdString(), "--out", out.string(), "--views", "heatmap"});
        QCOMPARE(view.code, 2);
        QCOMPARE(
            run({"render", session.toStdString(), "--out", out.string(), "--height-mm", "60"}).code,
            2);
        QCOMPARE(
            run({"render", session.toStdString(), "--out", out.string(), "--font-pt", "200"}).code,
            2);
    }
};

QTEST_MAIN(TestStudioSessions)
#include "test_studio_sessions.moc"
