// SPDX-License-Identifier: MIT
// First use (#16): one budget control per scheme with a unit selector (carried over between
// units, through sessions, undo and trade-off picks), a tooltip on every control and a status
// tip on every command, and Help › Keyboard Shortcuts read from the window's actions.
#include "kvs_test.h"
#include "main_window.h"
#include "schemes_panel.h"
#include "session.h"
#include "shortcuts_dialog.h"
#include "studio_settings.h"
#include "studio_test_support.h"
#include "tradeoff_view.h"

#include "kvs/model_config.h"
#include "kvs/scheme.h"

#include <QAbstractButton>
#include <QAbstractSpinBox>
#include <QAction>
#include <QApplication>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QRegularExpression>
#include <QScrollBar>
#include <QSignalSpy>
#include <QSlider>
#include <QTabBar>
#include <QTest>
#include <QUndoStack>
#include <cmath>
#include <memory>
#include <set>

using namespace kvs::studio;
namespace fs = std::filesystem;

namespace {

constexpr int kTimeoutMs = kvs::test::kStudioTimeoutMs;
using kvs::test::qpath;

// A prompt long enough that a quarter of its context is several tokens.
const QString kPrompt = QStringLiteral(
    "The cache keeps the keys and values of every token of the context; compression keeps the "
    "ones that matter and drops the rest, so that attention reads less memory per new token.");

QDoubleSpinBox* budgetSpin(QWidget& w, int row, const QString& key = QStringLiteral("keep")) {
    return w.findChild<QDoubleSpinBox*>(QStringLiteral("budgetSpin:%1:%2").arg(row).arg(key));
}

QComboBox* budgetMode(QWidget& w, int row, const QString& key = QStringLiteral("keep")) {
    return w.findChild<QComboBox*>(QStringLiteral("budgetMode:%1:%2").arg(row).arg(key));
}

// A control inside another input control (a spin box's line edit, a combo box's popup), or
// part of Qt's own chrome (tab bar scroll arrows, dock title buttons, scroll bars).
bool isInternal(const QWidget* w) {
    if (w->objectName().startsWith(QStringLiteral("qt_")))
        return true;
    for (const QWidget* p = w->parentWidget(); p; p = p->parentWidget())
        if (qobject_cast<const QAbstractSpinBox*>(p) || qobject_cast<const QComboBox*>(p) ||
            qobject_cast<const QTabBar*>(p) || qobject_cast<const QScrollBar*>(p) ||
            p->objectName().startsWith(QStringLiteral("qt_")))
            return true;
    return false;
}

bool acceptsInput(const QWidget* w) {
    return qobject_cast<const QAbstractButton*>(w) || qobject_cast<const QComboBox*>(w) ||
           qobject_cast<const QAbstractSpinBox*>(w) || qobject_cast<const QSlider*>(w) ||
           qobject_cast<const QLineEdit*>(w);
}

// "schemesPanel/schemeRow0/spin:0:sinks (QDoubleSpinBox)": where a control sits.
QString describe(const QWidget* w) {
    QStringList path;
    for (const QWidget* p = w; p; p = p->parentWidget())
        if (!p->objectName().isEmpty())
            path.prepend(p->objectName());
    QString text;
    if (const auto* b = qobject_cast<const QAbstractButton*>(w))
        text = QStringLiteral(" \"%1\"").arg(b->text());
    return path.join(QLatin1Char('/')) + text +
           QStringLiteral(" (%1)").arg(QString::fromLatin1(w->metaObject()->className()));
}

void collectMenuActions(const QMenu* menu, QList<QAction*>& out) {
    for (QAction* a : menu->actions()) {
        if (a->isSeparator())
            continue;
        if (a->menu())
            collectMenuActions(a->menu(), out);
        else
            out << a;
    }
}

} // namespace

class TestStudioFirstUse : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<kvs::test::TempDir> m_dir;
    fs::path m_model;

    static bool waitAnalysis(MainWindow& w) {
        return kvs::test::waitForAnalysis(w, [&](const kvs::views::AnalysisData& a) {
            return a.provenance.schemes == w.schemesPanel()->settings();
        });
    }

    void openAndWait(MainWindow& w) {
        w.session()->setAnalysisDelay(0);
        w.setPrompt(kPrompt);
        w.openModel(qpath(m_model));
        QVERIFY2(waitAnalysis(w), qPrintable(w.session()->lastError()));
    }

    static int keptTokens(const kvs::views::AnalysisData& a, int run) {
        int kept = 0;
        for (const kvs::HeadMetrics& h : a.runs[static_cast<std::size_t>(run)].eval.heads)
            kept += h.keptTokens;
        return kept;
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

    void theThreeBudgetsAreOneControl() {
        // Core marks them; the dock shows one control per group, none for the members.
        const kvs::Scheme* halving = kvs::findScheme("coreset.halving");
        QVERIFY(halving);
        for (const char* key : {"keep", "tokens", "bytes"})
            QCOMPARE(halving->info().findParam(key)->budgetGroup, std::string("budget"));
        SchemesPanel panel;
        QCOMPARE(panel.settings()[0], QStringLiteral("coreset.halving")); // keep=0.25, the default
        QComboBox* mode = budgetMode(panel, 0);
        QVERIFY(mode && budgetSpin(panel, 0));
        QCOMPARE(mode->count(), 3);
        QCOMPARE(mode->currentIndex(), 0);
        QCOMPARE(panel.budgetMode(0), QStringLiteral("keep"));
        for (const char* key : {"keep", "tokens", "bytes"}) {
            QVERIFY(!panel.findChild<QWidget*>(QStringLiteral("spin:0:%1").arg(key)));
            QVERIFY(!panel.findChild<QWidget*>(QStringLiteral("slider:0:%1").arg(key)));
        }
        QCOMPARE(
            panel.findChildren<QComboBox*>(QRegularExpression(QStringLiteral("^budgetMode:0:")))
                .size(),
            1);
        // The codec has no budget group: its parameters stay one control each.
        QVERIFY(panel.budgetMode(2).isEmpty());
        QVERIFY(panel.findChild<QDoubleSpinBox*>(QStringLiteral("spin:2:key_bits")));

        // A quarter of a 706-token context carried into tokens: as the scheme rounds it.
        panel.setTokenCount(942, 706);
        QSignalSpy edited(&panel, &SchemesPanel::edited);
        panel.setBudgetMode(0, QStringLiteral("tokens"));
        QCOMPARE(edited.count(), 1);
        QCOMPARE(panel.budgetMode(0), QStringLiteral("tokens"));
        QCOMPARE(panel.parameter(0, "tokens"), std::round(0.25 * 706));
        QCOMPARE(panel.settings()[0], QStringLiteral("coreset.halving:tokens=177"));
        QDoubleSpinBox* spin = budgetSpin(panel, 0);
        QCOMPARE(spin->value(), 177.0);
        QVERIFY(spin->suffix().contains(QStringLiteral("tokens")));
        QCOMPARE(spin->minimum(), 1.0); // 0 would mean "unused"
        // The slider spans the context in tokens.
        auto* slider = panel.findChild<QSlider*>(QStringLiteral("budgetSlider:0:keep"));
        QVERIFY(slider);
        slider->setValue(slider->maximum());
        QCOMPARE(panel.parameter(0, "tokens"), 706.0);
        slider->setValue(slider->minimum());
        QCOMPARE(panel.parameter(0, "tokens"), 1.0);
        spin->setValue(353);
        QCOMPARE(panel.settings()[0], QStringLiteral("coreset.halving:tokens=353"));
        // Back to the fraction: 353 of 706.
        panel.setBudgetMode(0, QStringLiteral("keep"));
        QCOMPARE(panel.parameter(0, "keep"), 0.5);
        QCOMPARE(panel.parameter(0, "tokens"), 0.0);
        QCOMPARE(panel.settings()[0], QStringLiteral("coreset.halving:keep=0.5"));
        // Bytes without a measured cost per token: the control still states a used budget.
        panel.setBudgetMode(0, QStringLiteral("bytes"));
        QCOMPARE(panel.budgetMode(0), QStringLiteral("bytes"));
        QVERIFY(panel.parameter(0, "bytes") >= 1);
        QVERIFY(panel.settings()[0].startsWith(QStringLiteral("coreset.halving:bytes=")));
        QVERIFY(!panel.settings()[0].contains(QStringLiteral("keep")));

        // Settings written before the control (both a fraction and tokens) open in the unit
        // that is used, and are tidied only by an edit.
        panel.setSettings({QStringLiteral("select.h2o:keep=0.5,tokens=100")});
        QCOMPARE(panel.budgetMode(0), QStringLiteral("tokens"));
        QCOMPARE(budgetSpin(panel, 0)->value(), 100.0);
        QCOMPARE(panel.settings()[0], QStringLiteral("select.h2o:keep=0.5,tokens=100"));
        budgetSpin(panel, 0)->setValue(120);
        QCOMPARE(panel.settings()[0], QStringLiteral("select.h2o:tokens=120"));

        // A kept fraction set while tokens are shown (a trade-off pick) switches the unit.
        panel.setParameter(0, QStringLiteral("keep"), 0.3);
        QCOMPARE(panel.budgetMode(0), QStringLiteral("keep"));
        QCOMPARE(panel.settings()[0], QStringLiteral("select.h2o:keep=0.3"));

        // A chain: the selection stage's budget, under its prefix.
        panel.setSettings({QStringLiteral("select.h2o:tokens=50+codec.uniform")});
        QCOMPARE(panel.budgetMode(0, QStringLiteral("select.h2o.")),
                 QStringLiteral("select.h2o.tokens"));
        QVERIFY(budgetSpin(panel, 0, QStringLiteral("select.h2o.keep")));
        QCOMPARE(budgetSpin(panel, 0, QStringLiteral("select.h2o.keep"))->value(), 50.0);

        // Another scheme of the row keeps the budget in its unit.
        panel.setSettings({QStringLiteral("select.h2o:tokens=64")});
        QComboBox* scheme = panel.findChild<QComboBox*>(QStringLiteral("schemeCombo0"));
        const int uniform = scheme->findData(QStringLiteral("select.uniform"));
        QVERIFY(uniform >= 0);
        scheme->setCurrentIndex(uniform);
        emit scheme->activated(uniform);
        QTRY_COMPARE_WITH_TIMEOUT(panel.settings()[0], QStringLiteral("select.uniform:tokens=64"),
                                  kTimeoutMs);
        QCOMPARE(panel.budgetMode(0), QStringLiteral("tokens"));
    }

    void budgetUnitsKeepWhatIsKeptAndRoundTrip() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        openAndWait(w);
        SchemesPanel* panel = w.schemesPanel();
        // A quarter of this 132-token context is 33 tokens, less than the common exact part
        // (4 + 32): a degenerate budget, where the coreset stores no log-weights and a token
        // costs 2 B less than its budget counts. A window of 8 leaves it tokens to choose.
        panel->setParameter(0, QStringLiteral("window"), 8);
        QVERIFY(waitAnalysis(w));
        w.undoStack()->clear();
        const auto a = w.session()->analysis();
        const int n = a->contextTokens;
        QVERIFY(n >= 8);
        QVERIFY(a->runs[0].eval.degenerateHeads == 0);
        const int keptAtQuarter = keptTokens(*a, 0);
        const QStringList atQuarter = panel->settings();

        // Fraction → tokens: the same tokens kept, the same bytes.
        panel->setBudgetMode(0, QStringLiteral("tokens"));
        QCOMPARE(panel->parameter(0, "tokens"), std::round(0.25 * n));
        QCOMPARE(w.undoStack()->count(), 1);
        QVERIFY(waitAnalysis(w));
        QCOMPARE(keptTokens(*w.session()->analysis(), 0), keptAtQuarter);
        // Tokens → bytes at what a kept token measured: still the same tokens.
        panel->setBudgetMode(0, QStringLiteral("bytes"));
        QVERIFY(panel->parameter(0, "bytes") > panel->parameter(0, "keep"));
        QVERIFY(waitAnalysis(w));
        QCOMPARE(keptTokens(*w.session()->analysis(), 0), keptAtQuarter);
        QCOMPARE(w.undoStack()->count(), 2);

        // Undo and redo step through the units.
        w.undoStack()->undo();
        QCOMPARE(panel->budgetMode(0), QStringLiteral("tokens"));
        w.undoStack()->undo();
        QCOMPARE(panel->budgetMode(0), QStringLiteral("keep"));
        QCOMPARE(panel->settings(), atQuarter);
        w.undoStack()->redo();
        QCOMPARE(panel->budgetMode(0), QStringLiteral("tokens"));

        // A session with 200 tokens reopens in tokens at 200.
        budgetSpin(*panel, 0)->setValue(200);
        QCOMPARE(panel->settings()[0], QStringLiteral("coreset.halving:tokens=200,window=8"));
        QVERIFY(waitAnalysis(w));
        const QString file = qpath(m_dir->path() / "tokens.kvsession");
        QString error;
        QVERIFY2(w.saveSession(file, &error), qPrintable(error));
        MainWindow again(kvs::test::quietWindowOptions());
        again.session()->setAnalysisDelay(0);
        QVERIFY2(again.openSession(file, &error), qPrintable(error));
        QCOMPARE(again.schemesPanel()->budgetMode(0), QStringLiteral("tokens"));
        QCOMPARE(again.schemesPanel()->parameter(0, "tokens"), 200.0);
        QCOMPARE(budgetSpin(*again.schemesPanel(), 0)->value(), 200.0);
        QCOMPARE(budgetMode(*again.schemesPanel(), 0)->currentIndex(), 1);
    }

    void tradeoffSweepsAndPicksWorkInAnyUnit() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        w.showViewByName(QStringLiteral("tradeoffs"));
        // A row counted in tokens from the start (a budget change alone reuses the sweep).
        SchemesPanel* panel = w.schemesPanel();
        const QString tokensSetting = QStringLiteral("coreset.halving:tokens=20");
        panel->setSettings({tokensSetting, QStringLiteral("select.uniform")});
        QCOMPARE(panel->budgetMode(0), QStringLiteral("tokens"));
        openAndWait(w);
        // The curve still sweeps the kept fraction, from the row in tokens.
        QVERIFY(QTest::qWaitFor(
            [&] {
                const auto s = w.session()->sweeps();
                return s && !s->curves.empty() && s->curves[0].baseSetting == tokensSetting &&
                       s->curves[0].points.size() > 2;
            },
            kTimeoutMs));
        const auto sweeps = w.session()->sweeps();
        QCOMPARE(sweeps->curves[0].parameter, QStringLiteral("keep"));
        std::set<double> bytes;
        for (const auto& p : sweeps->curves[0].points)
            bytes.insert(static_cast<double>(p.result.bytes.total()));
        QVERIFY(bytes.size() > 2); // the tokens budget does not pin every point
        // A pick on the curve moves the row to that fraction.
        emit w.tradeoffView()->pointPicked(tokensSetting, QStringLiteral("keep"), 0.25);
        QCOMPARE(panel->budgetMode(0), QStringLiteral("keep"));
        QCOMPARE(panel->settings()[0], QStringLiteral("coreset.halving"));
    }

    void everyControlSaysWhatItChanges() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        openAndWait(w);
        // Every view built once, so that its controls exist as a user meets them.
        for (const QString& name : MainWindow::viewNames())
            w.showViewByName(name);
        QApplication::processEvents();
        QStringList missing;
        for (const QWidget* widget : w.findChildren<QWidget*>())
            if (acceptsInput(widget) && !isInternal(widget) &&
                widget->toolTip().trimmed().isEmpty())
                missing << describe(widget);
        missing.removeDuplicates();
        QVERIFY2(missing.isEmpty(), qPrintable(QStringLiteral("no tooltip:\n  ") +
                                               missing.join(QStringLiteral("\n  "))));

        // Every command of the menus says what it does in the status bar.
        QList<QAction*> actions;
        for (QAction* top : w.menuBar()->actions())
            if (top->menu())
                collectMenuActions(top->menu(), actions);
        QVERIFY(actions.size() > 20);
        QStringList silent;
        for (const QAction* a : actions)
            if (a->isEnabled() && a->statusTip().trimmed().isEmpty())
                silent << a->text();
        QVERIFY2(silent.isEmpty(),
                 qPrintable(QStringLiteral("no status tip: ") + silent.join(QStringLiteral(", "))));
    }

    void keyboardShortcutsAreListedFromTheActions() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        auto* action = w.findChild<QAction*>(QStringLiteral("keyboardShortcutsAction"));
        QVERIFY(action);
        QCOMPARE(action->shortcut(), QKeySequence(QKeySequence::HelpContents));
        QList<QAction*> help;
        for (QAction* top : w.menuBar()->actions())
            if (top->menu() && top->menu()->objectName() == QLatin1String("helpMenu"))
                help = top->menu()->actions();
        QVERIFY(help.contains(action));
        action->trigger();
        auto* dialog = w.findChild<ShortcutsDialog*>();
        QVERIFY(dialog && dialog->isVisible());

        const auto has = [&](const QString& menu, const QString& text, const QKeySequence& key) {
            for (const ShortcutsDialog::Entry& e : dialog->entries())
                if (e.menu == menu && e.action == text &&
                    e.keys.contains(key.toString(QKeySequence::NativeText)))
                    return true;
            return false;
        };
        QVERIFY(has(QStringLiteral("File"), QStringLiteral("Open Model\u2026"),
                    QKeySequence(QKeySequence::Open)));
        const QStringList titles = MainWindow::viewNames();
        for (int i = 0; i < titles.size() && i < 9; ++i) {
            const auto* show = w.findChild<QAction*>(QStringLiteral("showView%1Action").arg(i));
            QVERIFY(show);
            QVERIFY2(has(QStringLiteral("View"), show->text(),
                         QKeySequence(Qt::CTRL | static_cast<Qt::Key>(Qt::Key_1 + i))),
                     qPrintable(show->text()));
        }
        QVERIFY(has(QStringLiteral("Help"), QStringLiteral("Keyboard Shortcuts\u2026"),
                    QKeySequence(QKeySequence::HelpContents)));
        // Nothing the window binds is left out.
        for (const QAction* a : w.findChildren<QAction*>()) {
            if (a->shortcut().isEmpty() || a->text().isEmpty())
                continue;
            const QString key = a->shortcut().toString(QKeySequence::NativeText);
            bool listed = false;
            for (const ShortcutsDialog::Entry& e : dialog->entries())
                listed = listed || e.keys.split(QStringLiteral(", ")).contains(key);
            QVERIFY2(listed, qPrintable(a->text() + QStringLiteral(" ") + key));
        }
        // Searchable by command or key.
        dialog->setFilter(QStringLiteral("open model"));
        QCOMPARE(dialog->visibleCount(), 1);
        dialog->setFilter(QKeySequence(Qt::CTRL | Qt::Key_1).toString(QKeySequence::NativeText));
        QVERIFY(dialog->visibleCount() >= 1);
        dialog->setFilter({});
        QCOMPARE(dialog->visibleCount(), dialog->entries().size());
    }
};

QTEST_MAIN(TestStudioFirstUse)
#include "test_studio_first_use.moc"
