// SPDX-License-Identifier: MIT
// First use: the start page's "try this" actions and model list, the model line, and the guided
// tour walked step by step on the bundled models — each step must set up the views it talks about
// (model, prompt, schemes that all run, the tab, the selection) and read without a placeholder.
// KVS_SCREENSHOT_DIR set: every step and the start page are saved there as PNGs.
#include "capacity_page.h"
#include "elided_label.h"
#include "lesson_panel.h"
#include "lessons.h"
#include "overview_page.h"
#include "schemes_panel.h"
#include "setup_panel.h"
#include "startup.h"
#include "studio_test_support.h"
#include "tradeoff_view.h"

#include "kvs/scheme.h"

#include <QApplication>
#include <QCommandLinkButton>
#include <QDir>
#include <QDockWidget>
#include <QLabel>
#include <QMenu>
#include <QTabWidget>

using namespace kvs;
using namespace kvs::studio;
namespace fs = std::filesystem;

namespace {

fs::path bundledRoot() {
    return kvs::test::sourceTestsDir().parent_path() / "assets" / "models";
}

bool waitLoaded(MainWindow& w) {
    return QTest::qWaitFor([&] { return w.session()->modelState() != ModelState::Loading; },
                           kvs::test::kStudioTimeoutMs) &&
           w.session()->modelState() == ModelState::Loaded;
}

QString currentViewName(const MainWindow& w) {
    const QStringList names = MainWindow::viewNames();
    const int i = w.tabs()->currentIndex();
    return i >= 0 && i < names.size() ? names[i] : QString();
}

QString modelFolderName(const MainWindow& w) {
    const auto m = w.session()->model();
    return m ? QFileInfo(m->facts.folder).fileName() : QString();
}

// Waits until the analysis answers the schemes now in the dock, on the model now loaded.
bool waitForCurrentSchemes(MainWindow& w) {
    const bool ok = QTest::qWaitFor(
        [&] {
            if (w.session()->modelState() != ModelState::Loaded || w.session()->isAnalysisBusy())
                return false;
            const auto a = w.session()->analysis();
            if (!a ||
                a->runs.size() != static_cast<std::size_t>(w.schemesPanel()->settings().size()))
                return false;
            for (int i = 0; i < w.schemesPanel()->settings().size(); ++i)
                if (a->runs[static_cast<std::size_t>(i)].setting != w.schemesPanel()->settings()[i])
                    return false;
            return true;
        },
        kvs::test::kStudioTimeoutMs);
    if (!ok) {
        const auto a = w.session()->analysis();
        QStringList runs;
        for (const views::SchemeRun& r : a ? a->runs : std::vector<views::SchemeRun>{})
            runs << r.setting;
        qWarning("waiting for [%s]; busy %d, analysis [%s], last error '%s'",
                 qPrintable(w.schemesPanel()->settings().join(' ')), w.session()->isAnalysisBusy(),
                 qPrintable(runs.join(' ')), qPrintable(w.session()->lastError()));
    }
    return ok;
}

// The Schemes dock writes a setting without the parameters at their defaults: "id:keep=0.25"
// may read "id". Same scheme, and every parameter given either shown or at its default.
bool sameSetting(const QString& expected, const QString& shown) {
    const QString id = expected.section(':', 0, 0);
    if (shown.section(':', 0, 0) != id)
        return false;
    const Scheme* scheme = findScheme(id.toStdString());
    if (!scheme)
        return false;
    const QStringList shownParams = shown.section(':', 1).split(',', Qt::SkipEmptyParts);
    for (const QString& kv : expected.section(':', 1).split(',', Qt::SkipEmptyParts)) {
        if (shownParams.contains(kv))
            continue;
        bool isDefault = false;
        for (const ParamSpec& p : scheme->info().params)
            if (QString::fromStdString(p.key) == kv.section('=', 0, 0))
                isDefault = p.defaultValue == kv.section('=', 1).toDouble();
        if (!isDefault)
            return false;
    }
    return true;
}

bool sameSettings(const QStringList& expected, const QStringList& shown) {
    if (expected.size() != shown.size())
        return false;
    for (int i = 0; i < expected.size(); ++i)
        if (!sameSetting(expected[i], shown[i]))
            return false;
    return true;
}

} // namespace

class TestStudioTour : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        if (!fs::is_directory(bundledRoot() / "default") ||
            !fs::is_directory(bundledRoot() / "variants" / "gqa2"))
            QFAIL("the bundled models assets/models/default and variants/gqa2 are missing");
    }

    void tourFileIsWholeAndTrue() {
        QString error;
        const Lesson tour = builtInTour(&error);
        QVERIFY2(error.isEmpty(), qPrintable(error));
        QVERIFY(tour.steps.size() >= 8);
        const QStringList views = MainWindow::viewNames();
        QStringList bundled;
        for (const BundledModel& m : bundledModels(QCoreApplication::applicationDirPath()))
            bundled << m.name;
        for (const LessonStep& step : tour.steps) {
            const QString where = step.id;
            QVERIFY2(!step.tryThis.isEmpty(), qPrintable(where + ": nothing to try"));
            QVERIFY2(step.setup.view.isEmpty() || views.contains(step.setup.view),
                     qPrintable(where + ": unknown view " + step.setup.view));
            if (step.setup.model.startsWith("bundled:"))
                QVERIFY2(bundled.contains(step.setup.model.mid(8)),
                         qPrintable(where + ": no bundled model " + step.setup.model));
            for (const QString& s : step.setup.schemes)
                QVERIFY2(findScheme(s.section(':', 0, 0).toStdString()) != nullptr,
                         qPrintable(where + ": unknown scheme " + s));
            if (!step.setup.capacityPreset.isEmpty() && step.setup.capacityPreset != "loaded")
                QVERIFY2(findCapacityPreset(step.setup.capacityPreset.toStdString()),
                         qPrintable(where + ": unknown preset " + step.setup.capacityPreset));
        }
        // A broken lesson is refused with the step named.
        Lesson broken;
        QVERIFY(!parseLesson(R"({"title": "t", "steps": [{"id": "a", "title": "A", "text": "x",
                              "setup": {"attention_mode": "sideways"}}]})",
                             "x.json", &broken, &error));
        QVERIFY2(error.contains("x.json") && error.contains("step 1 (a)"), qPrintable(error));
        QCOMPARE(fillLessonText("{tokens} tokens", {}), QStringLiteral("\u2026 tokens"));
    }

    void modelLineNamesTheModel() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.openModel(kvs::test::qpath(bundledRoot() / "default"));
        QVERIFY(waitLoaded(w));
        auto* line = w.setupPanel()->findChild<views::ElidedLabel*>("modelPathLabel");
        QVERIFY(line);
        QCOMPARE(line->fullText(), QStringLiteral("default (bundled)"));
        QVERIFY(line->toolTip().endsWith(QDir::toNativeSeparators("models/default")));
        QCOMPARE(modelDisplayName("/somewhere/else/my-model", QString()),
                 QStringLiteral("my-model"));
    }

    void startPageActionsSetUpTheViews() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.resize(1600, 1000);
        w.show();
        w.openModel(kvs::test::qpath(bundledRoot() / "default"));
        QVERIFY(waitLoaded(w));
        OverviewPage* start = w.overviewPage();
        QVERIFY(start);
        QCOMPARE(w.tabs()->tabText(0), QStringLiteral("Start"));
        // The bundled models are listed, and a click opens one.
        QVERIFY(start->listedModelFolders().size() >= 2);
        kvs::test::saveScreenshot(&w, "start-page.png");

        QVERIFY(start->trigger("lost-mass"));
        QCOMPARE(currentViewName(w), QStringLiteral("attention"));
        QVERIFY(sameSettings({"select.snapkv:keep=0.25"}, w.schemesPanel()->settings()));
        QVERIFY(waitForCurrentSchemes(w));
        QCOMPARE(w.attentionView()->selectedLayer(), 0);
        QCOMPARE(w.attentionView()->selectedHead(), 2);

        QVERIFY(start->trigger("families"));
        QCOMPARE(currentViewName(w), QStringLiteral("tradeoffs"));
        QCOMPARE(w.schemesPanel()->settings().size(), 3);
        QCOMPARE(w.tradeoffView()->colouring(), views::TradeoffView::Colouring::Family);
        QVERIFY(waitForCurrentSchemes(w));
        for (const views::SchemeRun& run : w.session()->analysis()->runs)
            QVERIFY2(run.error.isEmpty(), qPrintable(run.error));

        QVERIFY(start->trigger("capacity"));
        QCOMPARE(currentViewName(w), QStringLiteral("capacity"));
        QCOMPARE(w.capacityPage()->report()->modelName, std::string("Llama-2-7B"));
        QCOMPARE(w.capacityPage()->report()->context, 131072LL);

        // The trained GQA-2 variant, its 256-token context: the prompt is cut to fit.
        QVERIFY(start->trigger("sharing-variant"));
        QTRY_VERIFY_WITH_TIMEOUT(modelFolderName(w) == "gqa2", kvs::test::kStudioTimeoutMs);
        QVERIFY(waitLoaded(w));
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->tokens() && w.session()->tokens()->count() <= 256 &&
                                     QFileInfo(w.session()->tokens()->modelFolder).fileName() ==
                                         "gqa2",
                                 kvs::test::kStudioTimeoutMs);
        QVERIFY(waitForCurrentSchemes(w));
        QCOMPARE(w.session()->model()->facts.config.kvHeads, 2);
        QCOMPARE(currentViewName(w), QStringLiteral("cache"));
    }

    void tourWalksEveryStep() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.resize(1600, 1000);
        w.show();
        w.openModel(kvs::test::qpath(bundledRoot() / "default"));
        QVERIFY(waitLoaded(w));
        auto* tourAction = w.findChild<QAction*>("tourAction");
        QVERIFY(tourAction);
        tourAction->trigger();
        LessonPanel* lesson = w.lessonPanel();
        QVERIFY(w.lessonDock()->isVisible());
        QCOMPARE(lesson->currentStep(), 0);
        const int steps = lesson->stepCount();
        auto* next = lesson->findChild<QPushButton*>("lessonNext");
        QVERIFY(next);
        for (int i = 0; i < steps; ++i) {
            const LessonStep& step = lesson->lesson().steps[i];
            const StudioSetup& setup = step.setup;
            if (i > 0)
                next->click();
            QCOMPARE(lesson->currentStep(), i);
            QVERIFY(lesson->progressText().contains(
                QStringLiteral("step %1 of %2").arg(i + 1).arg(steps)));
            if (setup.model.startsWith("bundled:")) {
                QTRY_COMPARE_WITH_TIMEOUT(modelFolderName(w), setup.model.mid(8),
                                          kvs::test::kStudioTimeoutMs);
                QVERIFY(waitLoaded(w));
            }
            if (!setup.schemes.isEmpty()) {
                QVERIFY2(sameSettings(setup.schemes, w.schemesPanel()->settings()),
                         qPrintable(w.schemesPanel()->settings().join(' ')));
                QVERIFY2(waitForCurrentSchemes(w), qPrintable(step.id));
                // Every scheme a step sets up runs on its model (none refused).
                for (const views::SchemeRun& run : w.session()->analysis()->runs)
                    QVERIFY2(run.error.isEmpty(), qPrintable(step.id + ": " + run.error));
            }
            if (setup.fitPrompt) {
                QTRY_VERIFY_WITH_TIMEOUT(w.session()->tokens() &&
                                             w.session()->tokens()->count() <=
                                                 w.session()->tokens()->contextLimit,
                                         kvs::test::kStudioTimeoutMs);
            }
            if (setup.prompt == "default")
                QCOMPARE(w.session()->prompt(), defaultPrompt());
            if (!setup.view.isEmpty())
                QTRY_COMPARE(currentViewName(w), setup.view);
            if (setup.layer >= 0) {
                QTRY_COMPARE(w.attentionView()->selectedLayer(), setup.layer);
                QTRY_COMPARE(w.attentionView()->selectedHead(), setup.head);
            }
            if (setup.attentionMode)
                QCOMPARE(w.attentionView()->mode(), *setup.attentionMode);
            if (!setup.capacityPreset.isEmpty())
                QCOMPARE(QString::fromStdString(w.capacityPage()->report()->modelName),
                         QString::fromStdString(
                             findCapacityPreset(setup.capacityPreset.toStdString())->name));
            // Filled in: no placeholder left, the model and its numbers named.
            const QString text = lesson->text();
            QVERIFY2(!text.contains('{') && !text.contains('}'), qPrintable(step.id + ": " + text));
            QVERIFY2(!text.contains(QStringLiteral("\u2026 per token")), qPrintable(text));
            if (!qEnvironmentVariable("KVS_SCREENSHOT_DIR").isEmpty()) {
                // A picture for the docs shows the curves too: wait for the sweeps.
                QTest::qWaitFor(
                    [&] {
                        const JobState s = w.session()->jobState(JobKind::Sweep);
                        return s != JobState::Running && s != JobState::Queued;
                    },
                    180000);
                QTest::qWait(300);
            }
            kvs::test::saveScreenshot(&w, QStringLiteral("tour-%1-%2.png").arg(i + 1).arg(step.id));
        }
        // The last step's button finishes; Restart goes back to the first step and its set-up.
        QCOMPARE(next->text(), QStringLiteral("Finish"));
        lesson->findChild<QPushButton*>("lessonRestart")->click();
        QCOMPARE(lesson->currentStep(), 0);
        QTRY_COMPARE_WITH_TIMEOUT(modelFolderName(w), QStringLiteral("default"),
                                  kvs::test::kStudioTimeoutMs);
        QTRY_COMPARE(currentViewName(w), lesson->lesson().steps[0].setup.view);
        QVERIFY(!lesson->findChild<QPushButton*>("lessonBack")->isEnabled());
        next->click();
        QCOMPARE(lesson->currentStep(), 1);
        lesson->findChild<QPushButton*>("lessonBack")->click();
        QCOMPARE(lesson->currentStep(), 0);
    }
};

QTEST_MAIN(TestStudioTour)
#include "test_studio_tour.moc"
