// SPDX-License-Identifier: MIT
// The Explain dock on the bundled model (offscreen): its text follows the tab, the focused scheme
// and the chosen head, its numbers are the analysis's own, every view and scheme family has a
// text that reads without a bare placeholder, glossary links open their entry, and the dock is
// in the View menu and the saved layout. KVS_SCREENSHOT_DIR set: the window is saved there.
#include "attention_view.h"
#include "explain_panel.h"
#include "explain_texts.h"
#include "kvs_test.h"
#include "main_window.h"
#include "schemes_panel.h"
#include "session.h"
#include "startup.h"
#include "studio_settings.h"
#include "studio_test_support.h"

#include "kvs/scheme.h"

#include <QAction>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QMenu>
#include <QRegularExpression>
#include <QTabWidget>
#include <QTest>
#include <QTextBlock>
#include <QTextBrowser>
#include <QTextCursor>
#include <QTextDocument>
#include <memory>
#include <set>

using namespace kvs::studio;
namespace fs = std::filesystem;
namespace explain = kvs::studio::explain;

namespace {

fs::path bundledModel() {
    return kvs::test::sourceTestsDir().parent_path() / "assets" / "models" / "default";
}

fs::path sourceExplainDir() {
    return kvs::test::sourceTestsDir().parent_path() / "assets" / "explain";
}

// What must never show: a placeholder or condition left in, or a number that is not one.
QString leftovers(const QString& text) {
    static const QRegularExpression bad(QStringLiteral(R"(\{[?!]?[a-z0-9_]+\}|\bnan\b|\binf\b)"),
                                        QRegularExpression::CaseInsensitiveOption);
    const auto m = bad.match(text);
    return m.hasMatch() ? m.captured() : QString();
}

// One setting per family (and a chain): what the Explain panel has a text for.
const QStringList kFamilies = {
    QStringLiteral("identity"),
    QStringLiteral("select.snapkv:keep=0.25"),
    QStringLiteral("coreset.halving:keep=0.25"),
    QStringLiteral("factor.weight_svd:rank=8"),
    QStringLiteral("share.lsq:kv_heads=2"),
    QStringLiteral("codec.entropy:alpha=1"),
    QStringLiteral("select.h2o:keep=0.25+codec.uniform:bits=4"),
};

// With KVS_SCREENSHOT_DIR: every text the panel showed, to read them as a user would.
void dump(const QString& text) {
    const QString dir = qEnvironmentVariable("KVS_SCREENSHOT_DIR");
    if (dir.isEmpty())
        return;
    QDir().mkpath(dir);
    QFile file(dir + QStringLiteral("/explain-texts.txt"));
    if (file.open(QIODevice::Append))
        file.write((text + QStringLiteral("\n\n----\n\n")).toUtf8());
}

// The first link to `href` in the panel's document, clicked on screen as a user would.
bool clickLink(ExplainPanel* panel, const QString& href) {
    QTextDocument* doc = panel->browser()->document();
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next())
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextFragment f = it.fragment();
            if (f.charFormat().anchorHref() != href)
                continue;
            QTextCursor cursor(doc);
            cursor.setPosition(f.position() + f.length() / 2);
            panel->browser()->ensureCursorVisible();
            panel->browser()->setTextCursor(cursor);
            panel->browser()->ensureCursorVisible();
            const QPoint at = panel->browser()->cursorRect(cursor).center();
            QTest::mouseClick(panel->browser()->viewport(), Qt::LeftButton, {}, at);
            return true;
        }
    return false;
}

} // namespace

class TestStudioExplain : public QObject {
    Q_OBJECT

private:
    static bool waitFor(MainWindow& w, const QStringList& settings) {
        return kvs::test::waitForAnalysis(w, [&](const kvs::views::AnalysisData& a) {
            if (a.provenance.schemes != settings)
                return false;
            for (const auto& run : a.runs)
                if (run.error.isEmpty() && !run.eval.quality)
                    return false;
            return true;
        });
    }

    // A window on the bundled model and its start-up prompt, comparing `settings`.
    static void open(MainWindow& w, const QStringList& settings) {
        w.session()->setAnalysisDelay(0);
        w.schemesPanel()->setSettings(settings);
        const QStringList shown = w.schemesPanel()->settings(); // defaults left out
        QCOMPARE(shown.size(), settings.size());
        w.setPrompt(defaultPrompt());
        w.openModel(kvs::test::qpath(bundledModel()));
        if (!waitFor(w, shown)) {
            const auto a = w.session()->analysis();
            QString state = QStringLiteral("busy %1; ").arg(w.session()->isAnalysisBusy());
            if (a) {
                state += a->provenance.schemes.join(' ') +
                         QStringLiteral("; quality pending %1;").arg(a->qualityPending);
                for (const auto& run : a->runs)
                    state += QStringLiteral(" %1").arg(run.eval.quality.has_value());
            }
            QFAIL(qPrintable(state + " " + w.session()->lastError()));
        }
    }

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        openSettings()->clear();
        qunsetenv("KVS_EXPLAIN_DIR");
        if (!fs::is_directory(bundledModel()))
            QFAIL("the bundled model assets/models/default is missing");
    }

    void cleanupTestCase() { openSettings()->clear(); }

    // Every view and every family has a text, compiled in and equal to the source tree's; every
    // glossary link of every text has its entry.
    void everyViewAndFamilyHasAText() {
        QStringList files = {explain::kGlossaryFile, explain::kStatusFile};
        for (const QString& view : MainWindow::viewNames())
            files << explain::viewFile(view);
        std::set<std::string> families = {"composed"};
        for (const auto& scheme : kvs::schemeRegistry())
            families.insert(scheme->info().family);
        for (const std::string& family : families)
            files << explain::familyFile(QString::fromStdString(family));
        QVERIFY(families.size() >= 7);

        const auto glossary = explain::parseGlossary(explain::resourceText(explain::kGlossaryFile));
        QVERIFY(glossary.size() >= 20);
        QSet<QString> ids{QStringLiteral("all")};
        for (const auto& entry : glossary) {
            QVERIFY2(!entry.markdown.isEmpty(), qPrintable(entry.term));
            ids.insert(entry.id);
        }
        for (const QString& file : files) {
            const QString text = explain::resourceText(file);
            QVERIFY2(!text.trimmed().isEmpty(), qPrintable(file + " is missing or empty"));
            QFile source(
                QString::fromStdString((sourceExplainDir() / file.toStdString()).string()));
            QVERIFY2(source.open(QIODevice::ReadOnly), qPrintable(source.fileName()));
            QCOMPARE(text, QString::fromUtf8(source.readAll()));
            for (const QString& id : explain::glossaryLinks(text))
                QVERIFY2(ids.contains(id), qPrintable(file + ": no glossary entry " + id));
        }
    }

    void fillKeepsOrDropsWholeParagraphs() {
        explain::Values v;
        v.set(QStringLiteral("kept"), QStringLiteral("28"));
        v.flag(QStringLiteral("weighted"), true);
        const QString md =
            QStringLiteral("<!-- a note -->\nKeeps {kept}\nof the keys.\n\nCarries {mass}.\n\n"
                           "{?weighted} Weighted.\n\n{!weighted} Not weighted.\n\n"
                           "- {kept} kept\n- {mass} mass\n- {?weighted}{!numbers} item");
        QCOMPARE(explain::fill(md, v),
                 QStringLiteral("Keeps 28\nof the keys.\n\nWeighted.\n\n- 28 kept\n- item"));
        QCOMPARE(explain::percent(0.2999), QStringLiteral("30%"));
        QCOMPARE(explain::percent(0.9996), QStringLiteral("99.96%"));
        QCOMPARE(explain::percent(0.0042), QStringLiteral("0.42%"));
        QVERIFY(explain::percent(std::nan("")).isEmpty());
        QCOMPARE(explain::glossaryId(QStringLiteral("Next-token KL")),
                 QStringLiteral("next-token-kl"));
    }

    // The text follows the tab, the focused scheme and the chosen head, and its numbers are the
    // analysis's: kept keys and the exact attention they carry, computed here from the maps.
    void followsTheViewTheSchemeAndTheHead() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        ExplainPanel* panel = w.explainPanel();
        QVERIFY(panel);
        QVERIFY2(panel->text().contains(QStringLiteral("No model is loaded")),
                 qPrintable(panel->text()));
        const QStringList settings = {QStringLiteral("select.snapkv:keep=0.25"),
                                      QStringLiteral("coreset.halving:keep=0.25"),
                                      QStringLiteral("codec.uniform:key_bits=4,value_bits=2")};
        open(w, settings);
        QVERIFY(w.showViewByName(QStringLiteral("attention")));
        auto* attention = w.attentionView();
        attention->setSelection(2, 3);
        w.schemesPanel()->setFocusedRow(0);
        const QString attentionText = panel->text();
        QVERIFY2(attentionText.contains(QStringLiteral("Attention: what each head looks at")),
                 qPrintable(attentionText));
        QVERIFY(attentionText.contains(QStringLiteral("keeping some tokens")));

        // The numbers of layer 2, head 3 from the analysis itself.
        const auto a = w.session()->analysis();
        const kvs::views::SchemeRun& run = a->runs[0];
        const std::size_t kv = run.headIndex(2, 3, a->layers, a->heads);
        const std::size_t member = run.groupMember(3, a->layers, a->heads);
        const auto& kept = run.kept[kv].positions;
        const kvs::Matrix* exact = run.exactMap(kv, member);
        QVERIFY(exact && exact->rows() == a->probeTokens && exact->cols() == a->contextTokens);
        double mass = 0;
        for (Eigen::Index r = 0; r < exact->rows(); ++r)
            for (const std::int32_t i : kept)
                mass += (*exact)(r, i);
        mass /= static_cast<double>(exact->rows());
        QVERIFY(kept.size() > 0 && kept.size() < static_cast<std::size_t>(a->contextTokens));
        const kvs::HeadMetrics& h = run.eval.heads[kv];
        QCOMPARE(h.keptTokens, static_cast<int>(kept.size()));
        QVERIFY(std::abs((1.0 - h.massLost) - mass) < 1e-4);
        const auto& values = panel->values().text;
        QCOMPARE(values.value(QStringLiteral("kept")),
                 explain::count(static_cast<long long>(kept.size())));
        QCOMPARE(values.value(QStringLiteral("mass_kept")), explain::percent(mass));
        QCOMPARE(values.value(QStringLiteral("layer")), QStringLiteral("2"));
        QCOMPARE(values.value(QStringLiteral("head")), QStringLiteral("3"));
        const QString sentence = QStringLiteral("Layer 2, head 3 keeps %1 of %2 keys")
                                     .arg(explain::count(static_cast<long long>(kept.size())),
                                          explain::count(a->contextTokens));
        QVERIFY2(attentionText.contains(sentence), qPrintable(attentionText));
        QVERIFY2(
            attentionText.contains(
                QStringLiteral("kept keys carry %1 of what the probe").arg(explain::percent(mass))),
            qPrintable(attentionText));
        QVERIFY(leftovers(attentionText).isEmpty());
        QTest::qWait(300); // the views draw on the next turns of the event loop
        kvs::test::saveScreenshot(&w, "explain-panel.png");

        // Another head: its own numbers.
        attention->setSelection(0, 0);
        const std::size_t kv0 = run.headIndex(0, 0, a->layers, a->heads);
        QCOMPARE(panel->values().text.value(QStringLiteral("kept")),
                 explain::count(run.eval.heads[kv0].keptTokens));
        QVERIFY(panel->text().contains(QStringLiteral("Layer 0, head 0 keeps")));

        // The focused scheme: a coreset says total variation, a codec bits per element.
        w.schemesPanel()->setFocusedRow(1);
        QVERIFY2(panel->text().contains(QStringLiteral("a weighted coreset")),
                 qPrintable(panel->text()));
        QVERIFY(!panel->text().contains(QStringLiteral("keeping some tokens")));
        QCOMPARE(panel->values().text.value(QStringLiteral("tv")),
                 explain::percent(a->runs[1].eval.heads[kv0].totalVariation));
        w.schemesPanel()->setFocusedRow(2);
        const kvs::HeadMetrics& c = a->runs[2].eval.heads[kv0];
        QVERIFY(panel->text().contains(QStringLiteral("fewer bits per number")));
        QCOMPARE(panel->values().text.value(QStringLiteral("bits")),
                 explain::number(16.0 * c.bytes.total() / c.fp16Bytes, 3));
        QVERIFY(panel->text().contains(
            QStringLiteral("%1 bits per element")
                .arg(explain::number(16.0 * c.bytes.total() / c.fp16Bytes, 3))));

        // The tab: each view's own text, the scheme's after it.
        QVERIFY(w.showViewByName(QStringLiteral("tradeoffs")));
        QVERIFY2(panel->text().contains(QStringLiteral("Trade-offs: error against memory")),
                 qPrintable(panel->text()));
        QVERIFY(panel->text().contains(QStringLiteral("fewer bits per number")));
        QVERIFY(w.showViewByName(QStringLiteral("capacity")));
        QVERIFY(panel->text().contains(QStringLiteral("what a saving means for serving")));

        // A setting changes: no numbers until its analysis arrives, then the new ones.
        QVERIFY(w.showViewByName(QStringLiteral("attention")));
        w.schemesPanel()->setFocusedRow(0);
        w.schemesPanel()->setParameter(0, QStringLiteral("keep"), 0.5);
        QVERIFY2(panel->text().contains(QStringLiteral("Computing")), qPrintable(panel->text()));
        QVERIFY(!panel->values().text.contains(QStringLiteral("kept")));
        QVERIFY(waitFor(w, w.schemesPanel()->settings()));
        const auto b = w.session()->analysis();
        QCOMPARE(panel->values().text.value(QStringLiteral("kept")),
                 explain::count(b->runs[0].eval.heads[kv0].keptTokens));
        QVERIFY(b->runs[0].eval.heads[kv0].keptTokens > h.keptTokens);
    }

    // Every view with every family (and before any model): no placeholder, no NaN; a refused
    // setting says why.
    void everyViewAndFamilyReads() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        for (const QString& view : MainWindow::viewNames()) {
            QVERIFY(w.showViewByName(view));
            const QString text = w.explainPanel()->text();
            QVERIFY2(leftovers(text).isEmpty(), qPrintable(view + ": " + text));
            QVERIFY(text.contains(QStringLiteral("No model is loaded")));
        }
        QStringList settings = kFamilies;
        settings << QStringLiteral("codec.uniform:bits=4,group=48"); // 48 does not divide d = 32
        open(w, settings);
        const auto a = w.session()->analysis();
        for (int row = 0; row < settings.size(); ++row) {
            w.schemesPanel()->setFocusedRow(row);
            const QString family = w.explainPanel()->values().text.value("family_id");
            QVERIFY2(!family.isEmpty(), qPrintable(settings[row]));
            const bool refused = !a->runs[static_cast<std::size_t>(row)].error.isEmpty();
            QCOMPARE(refused, row == settings.size() - 1);
            for (const QString& view : MainWindow::viewNames()) {
                QVERIFY(w.showViewByName(view));
                const QString text = w.explainPanel()->text();
                const QString where = settings[row] + " on " + view + ":\n" + text;
                dump(where);
                QVERIFY2(leftovers(text).isEmpty(), qPrintable(where));
                QVERIFY2(!text.contains(QStringLiteral("No model")), qPrintable(where));
                QVERIFY2(!text.contains(QStringLiteral("Computing")), qPrintable(where));
                QVERIFY2(text.contains(QStringLiteral("refused")) == refused, qPrintable(where));
                if (!refused && (view == QLatin1String("attention") || view == "cache"))
                    QVERIFY2(text.contains(QStringLiteral("Layer 0")), qPrintable(where));
            }
        }
        // The chain names its stages; sharing its KV heads; factored keys their rank.
        w.schemesPanel()->setFocusedRow(6);
        QVERIFY(w.explainPanel()->text().contains(QStringLiteral("\u2192")));
        w.schemesPanel()->setFocusedRow(4);
        QVERIFY(w.explainPanel()->text().contains(QStringLiteral("caches 2 KV heads per layer")));
        w.schemesPanel()->setFocusedRow(3);
        QVERIFY(w.explainPanel()->text().contains(QStringLiteral("rank r = 8 instead of d = 32")));
    }

    // A click on a glossary link shows that entry in the panel; Back returns.
    void glossaryLinkOpensItsEntry() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.resize(1600, 1000);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QVERIFY(w.showViewByName(QStringLiteral("attention")));
        ExplainPanel* panel = w.explainPanel();
        QVERIFY(clickLink(panel, QStringLiteral("glossary:mass-lost")));
        QTRY_COMPARE(panel->glossaryEntry(), QStringLiteral("mass-lost"));
        QVERIFY2(panel->text().contains(QStringLiteral("Mass lost")) &&
                     panel->text().contains(QStringLiteral("share of its exact attention")),
                 qPrintable(panel->text()));
        QVERIFY(clickLink(panel, QStringLiteral("glossary:all")));
        QTRY_COMPARE(panel->glossaryEntry(), QStringLiteral("all"));
        QVERIFY(panel->text().contains(QStringLiteral("Next-token KL")));
        QVERIFY(clickLink(panel, QStringLiteral("explain:back")));
        QTRY_VERIFY(!panel->isShowingGlossary());
        QVERIFY(panel->text().contains(QStringLiteral("what each head looks at")));
        // The dark theme: links take its link colour.
        const auto linkColour = [&] {
            QTextDocument* doc = panel->browser()->document();
            for (QTextBlock b = doc->begin(); b.isValid(); b = b.next())
                for (auto it = b.begin(); !it.atEnd(); ++it)
                    if (it.fragment().charFormat().isAnchor())
                        return it.fragment().charFormat().foreground().color();
            return QColor();
        };
        w.setDarkTheme(true);
        QCOMPARE(linkColour(), panel->palette().color(QPalette::Link));
        w.setDarkTheme(false);
        QCOMPARE(linkColour(), panel->palette().color(QPalette::Link));
        // Switching the view leaves the glossary for the new view's text.
        panel->openLink(QUrl(QStringLiteral("glossary:kv-cache")));
        QVERIFY(panel->text().contains(QStringLiteral("KV cache")));
        QVERIFY(w.showViewByName(QStringLiteral("cache")));
        QVERIFY(!panel->isShowingGlossary());
        QVERIFY(panel->text().contains(QStringLiteral("where the bytes go")));
    }

    // The dock: in the View menu, and its visibility saved with the window state.
    void dockIsInTheViewMenuAndTheSavedLayout() {
        openSettings()->clear();
        auto options = kvs::test::quietWindowOptions();
        options.persistSettings = true;
        {
            MainWindow w(options);
            w.show();
            QDockWidget* dock = w.explainDock();
            QVERIFY(dock && dock->isVisible() && dock->objectName() == "explainDock");
            auto* menu = w.findChild<QMenu*>(QStringLiteral("viewMenu"));
            QVERIFY(menu && menu->actions().contains(dock->toggleViewAction()));
            QVERIFY(w.allActions().contains(dock->toggleViewAction()));
            dock->toggleViewAction()->trigger();
            QVERIFY(!dock->isVisible());
            QVERIFY(w.close());
        }
        {
            MainWindow w(options);
            w.show();
            QVERIFY(!w.explainDock()->isVisible());
            w.explainDock()->toggleViewAction()->trigger();
            QVERIFY(w.explainDock()->isVisible());
            QVERIFY(w.close());
        }
        MainWindow w(options);
        w.show();
        QVERIFY(w.explainDock()->isVisible());
        openSettings()->clear();
    }

    // A folder named by KVS_EXPLAIN_DIR overrides a text; the others stay compiled in.
    void aFolderOverridesTheTexts() {
        kvs::test::TempDir dir;
        const fs::path views = dir.path() / "views";
        fs::create_directories(views);
        {
            QFile file(kvs::test::qpath(views / "attention.md"));
            QVERIFY(file.open(QIODevice::WriteOnly));
            file.write("## Corrected text\n\n{?numbers} Head {head}.\n");
        }
        qputenv("KVS_EXPLAIN_DIR", kvs::test::qpath(dir.path()).toUtf8());
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        QVERIFY(w.showViewByName(QStringLiteral("attention")));
        const QString text = w.explainPanel()->text();
        qunsetenv("KVS_EXPLAIN_DIR");
        QVERIFY2(text.contains(QStringLiteral("Corrected text")), qPrintable(text));
        QVERIFY(!text.contains(QStringLiteral("Head "))); // no analysis: the paragraph is left out
        QVERIFY(text.contains(QStringLiteral("No model"))); // status.md: compiled in
    }
};

QTEST_MAIN(TestStudioExplain)
#include "test_studio_explain.moc"
