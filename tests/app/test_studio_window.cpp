// SPDX-License-Identifier: MIT
// The studio window end to end (offscreen): load a synthetic model on the worker, show its
// configuration and the tokenized prompt, survive bad folders, persist its layout, close cleanly.
#include "kvs_test.h"
#include "main_window.h"
#include "message_bar.h"
#include "model_config_view.h"
#include "overview_page.h"
#include "session.h"
#include "setup_panel.h"
#include "startup.h"
#include "studio_settings.h"
#include "studio_test_support.h"
#include "token_chips_view.h"

#include "kvs/model_config.h"
#include "kvs/tokenizer.h"

#include <QAction>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QImage>
#include <QLabel>
#include <QPushButton>
#include <QMenu>
#include <QPlainTextEdit>
#include <QPointer>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTest>
#include <QUrl>
#include <memory>

using namespace kvs::studio;
namespace fs = std::filesystem;

namespace {

constexpr int kTimeoutMs = 30000;

QString qpath(const fs::path& p) {
    return QString::fromStdString(p.string());
}

QString configValue(MainWindow& w, const QString& key) {
    auto* label = w.findChild<QLabel*>(key + QStringLiteral("Value"));
    return label ? label->text() : QStringLiteral("<no label %1Value>").arg(key);
}

kvs::views::TokenChipsView* chips(MainWindow& w) {
    return w.findChild<kvs::views::TokenChipsView*>(QStringLiteral("tokenChipsView"));
}

kvs::views::MessageBar* messageBar(MainWindow& w) {
    return w.findChild<kvs::views::MessageBar*>(QStringLiteral("messageBar"));
}

// Names of this process's threads (Linux), to see that a session leaves none behind.
QStringList threadNames() {
    QStringList names;
    const QDir tasks(QStringLiteral("/proc/self/task"));
    for (const QString& tid : tasks.entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
        QFile comm(tasks.filePath(tid + QStringLiteral("/comm")));
        if (comm.open(QIODevice::ReadOnly))
            names << QString::fromUtf8(comm.readAll()).trimmed();
    }
    names.sort();
    return names;
}

MainWindowOptions quietOptions() {
    MainWindowOptions o;
    o.probeBackend = false;
    return o;
}

} // namespace

class TestStudioWindow : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<kvs::test::TempDir> m_dir;
    fs::path m_llama;
    fs::path m_gqa;

    bool waitLoaded(MainWindow& w) {
        return QTest::qWaitFor([&] { return w.session()->modelState() != ModelState::Loading; },
                               kTimeoutMs) &&
               w.session()->modelState() == ModelState::Loaded;
    }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        openSettings()->clear();
        m_dir = std::make_unique<kvs::test::TempDir>();
        m_llama = kvs::test::writeModel(*m_dir, "tiny-llama", kvs::syntheticPreset("tiny-llama"));
        m_gqa =
            kvs::test::writeModel(*m_dir, "tiny-llama-gqa", kvs::syntheticPreset("tiny-llama-gqa"));
    }

    void cleanupTestCase() {
        openSettings()->clear();
        m_dir.reset();
    }

    void showsTheModelsConfiguration() {
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(w.session()->modelState() == ModelState::None);
        QCOMPARE(configValue(w, "layers"), QStringLiteral("\u2014"));

        w.openModel(qpath(m_gqa));
        QVERIFY(w.session()->modelState() == ModelState::Loading);
        QVERIFY(w.isLoadProgressVisible());
        QVERIFY2(waitLoaded(w), qPrintable(w.session()->lastError()));
        QVERIFY(!w.isLoadProgressVisible());

        const auto config = kvs::loadModelConfig(m_gqa / "config.json");
        KVS_VERIFY_OK(config);
        QCOMPARE(configValue(w, "layers"), QString::number(config->layers));
        QCOMPARE(configValue(w, "heads"), QString::number(config->heads));
        QCOMPARE(configValue(w, "kvHeads"), QString::number(config->kvHeads));
        QCOMPARE(configValue(w, "headDim"), QString::number(config->headDim));
        QCOMPARE(configValue(w, "width"), QString::number(config->width));
        QVERIFY(config->heads != config->kvHeads);
        const QString group = configValue(w, "group");
        QVERIFY2(group.contains("GQA") && group.contains(QString::number(config->groupSize())),
                 qPrintable(group));
        QVERIFY(configValue(w, "positions").contains("llama3"));
        QVERIFY(configValue(w, "checkpoint").contains("3 shards"));
        QCOMPARE(configValue(w, "dtype"), QStringLiteral("BF16"));
        QVERIFY(configValue(w, "tokenizer").contains(QString::number(config->vocab)));

        // Document, model, application; [*] is where Qt draws the modified mark.
        QCOMPARE(w.windowTitle(),
                 QStringLiteral("Untitled session[*] \u2014 tiny-llama-gqa \u2014 KV Studio"));
        QVERIFY(w.modelStateText().contains("tiny-llama-gqa"));
        QCOMPARE(w.setupPanel()->modelPath(), QDir::toNativeSeparators(qpath(m_gqa)));
        QVERIFY(w.findChild<QDockWidget*>(QStringLiteral("setupDock")));
        QCOMPARE(w.tabs()->tabText(0), QStringLiteral("Start"));
        QVERIFY(w.overviewPage()->factsText().contains("tiny-llama-gqa"));
    }

    void showsTheTokenizedPrompt() {
        MainWindow w(quietOptions());
        w.show();
        w.openModel(qpath(m_llama));
        QVERIFY(waitLoaded(w));

        auto tokenizer = kvs::loadTokenizer(m_llama);
        KVS_VERIFY_OK(tokenizer);
        const QString prompt = QStringLiteral("Hello world,\nthe cache grows.");
        const auto ids = (*tokenizer)->encode(prompt.toStdString());
        QVERIFY(ids.size() > 5);

        w.setPrompt(prompt);
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->tokens() && w.session()->tokens()->prompt == prompt,
                                 kTimeoutMs);
        auto* view = chips(w);
        QVERIFY(view);
        QCOMPARE(view->chipCount(), static_cast<int>(ids.size()));
        for (int i = 0; i < view->chipCount(); ++i) {
            const auto id = ids[static_cast<std::size_t>(i)];
            QCOMPARE(view->tokenId(i), static_cast<int>(id));
            QCOMPARE(view->tokenText(i), QString::fromStdString((*tokenizer)->tokenText(id)));
            QCOMPARE(view->chipText(i), kvs::views::visibleWhitespace(view->tokenText(i)));
        }
        // Whitespace is visible on the chips.
        bool sawSpace = false, sawNewline = false;
        for (int i = 0; i < view->chipCount(); ++i) {
            sawSpace |= view->chipText(i).contains(QChar(0x00B7));
            sawNewline |= view->chipText(i).contains(QChar(0x21B5));
        }
        QVERIFY(sawSpace && sawNewline);
        const auto* count = w.findChild<QLabel*>(QStringLiteral("tokenCountLabel"));
        QVERIFY(count);
        QVERIFY2(count->text().startsWith(QStringLiteral("%1 tokens").arg(ids.size())),
                 qPrintable(count->text()));
    }

    void typingRetokenizesAfterTheDebounce() {
        MainWindow w(quietOptions());
        w.show();
        w.openModel(qpath(m_llama));
        QVERIFY(waitLoaded(w));
        auto* edit = w.findChild<QPlainTextEdit*>(QStringLiteral("promptEdit"));
        QVERIFY(edit);
        edit->clear();
        QTest::keyClicks(edit, QStringLiteral("abc def"));
        // Keystrokes only restart the debounce; the result is for the whole text.
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->isBusy() && w.session()->tokens() &&
                                     w.session()->tokens()->prompt == QStringLiteral("abc def"),
                                 kTimeoutMs);
        auto tokenizer = kvs::loadTokenizer(m_llama);
        KVS_VERIFY_OK(tokenizer);
        QCOMPARE(chips(w)->chipCount(), static_cast<int>((*tokenizer)->encode("abc def").size()));
    }

    void staleResultsAreDropped() {
        MainWindow w(quietOptions());
        w.session()->setTokenizeDelay(0);
        w.openModel(qpath(m_llama));
        QVERIFY(waitLoaded(w));
        QSignalSpy published(w.session(), &Session::tokensChanged);
        for (int i = 1; i <= 20; ++i) {
            w.session()->setPrompt(QString(i, QLatin1Char('x')));
            w.session()->tokenizeNow();
        }
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->isBusy(), kTimeoutMs);
        QTest::qWait(50);
        QVERIFY(published.count() >= 1);
        QCOMPARE(w.session()->tokens()->prompt, QString(20, QLatin1Char('x')));
        QCOMPARE(chips(w)->chipCount(), 20);
        // A second load supersedes the first: only the later model arrives.
        QSignalSpy loaded(w.session(), &Session::modelLoaded);
        w.openModel(qpath(m_llama));
        w.openModel(qpath(m_gqa));
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->isBusy(), kTimeoutMs);
        QTest::qWait(50);
        QCOMPARE(loaded.count(), 1);
        QCOMPARE(w.session()->model()->facts.name, QStringLiteral("tiny-llama-gqa"));
    }

    void aMissingFolderIsReportedAndTheWindowStillWorks() {
        MainWindow w(quietOptions());
        w.show();
        const QString missing = qpath(m_dir->path() / "no-such-model");
        w.openModel(missing);
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->modelState() == ModelState::Failed, kTimeoutMs);
        auto* bar = messageBar(w);
        QVERIFY(bar && bar->isVisible());
        QVERIFY2(bar->text().contains(QDir::toNativeSeparators(missing)), qPrintable(bar->text()));
        QVERIFY(w.modelStateText().contains(QDir::toNativeSeparators(missing)));
        QVERIFY(!w.isLoadProgressVisible());
        QCOMPARE(w.windowTitle(), QStringLiteral("Untitled session[*] \u2014 KV Studio"));

        // The window still works: a good model loads, and the error goes away.
        w.openModel(qpath(m_llama));
        QVERIFY(waitLoaded(w));
        QVERIFY(!bar->isVisible());
        w.setPrompt(QStringLiteral("still alive"));
        QTRY_VERIFY_WITH_TIMEOUT(chips(w)->chipCount() > 0 && !w.session()->isBusy(), kTimeoutMs);

        // A bad folder after a good one keeps the good model.
        w.openModel(missing);
        QTRY_VERIFY_WITH_TIMEOUT(bar->isVisible(), kTimeoutMs);
        QCOMPARE(w.session()->modelState(), ModelState::Loaded);
        QCOMPARE(w.session()->model()->facts.name, QStringLiteral("tiny-llama"));
    }

    void aBrokenModelNamesTheFile() {
        const fs::path broken = m_dir->path() / "broken";
        fs::create_directories(broken);
        kvs::test::writeBytes(broken / "config.json", "{ this is not json");
        MainWindow w(quietOptions());
        w.openModel(qpath(broken));
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->modelState() == ModelState::Failed, kTimeoutMs);
        const QString text = messageBar(w)->text();
        QVERIFY2(text.contains(QStringLiteral("config.json")), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("broken")), qPrintable(text));
    }

    void aModelWithoutTokenizerSaysSo() {
        const fs::path bare = m_dir->path() / "no-tokenizer";
        fs::create_directories(bare);
        fs::copy(m_llama / "config.json", bare / "config.json");
        fs::copy(m_llama / "model.safetensors", bare / "model.safetensors");
        MainWindow w(quietOptions());
        w.setPrompt(QStringLiteral("hello"));
        w.openModel(qpath(bare));
        QVERIFY(waitLoaded(w));
        QTRY_VERIFY_WITH_TIMEOUT(messageBar(w)->hasMessage(), kTimeoutMs);
        QVERIFY(messageBar(w)->text().contains(QStringLiteral("no tokenizer")));
        QCOMPARE(chips(w)->chipCount(), 0);
        QVERIFY(configValue(w, "tokenizer").contains(QStringLiteral("none")));
    }

    void backendIsShownInTheStatusBar() {
        MainWindow w; // probes the backend on the worker
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->backend() != nullptr, kTimeoutMs);
        const QString text = w.backendText();
        QVERIFY2(text.startsWith(QStringLiteral("Vulkan: ")) ||
                     text.startsWith(QStringLiteral("CPU backend: ")),
                 qPrintable(text));
    }

    void recentModelsAndLayoutPersist() {
        openSettings()->clear();
        {
            MainWindow w;
            w.show();
            w.openModel(qpath(m_llama));
            QVERIFY(waitLoaded(w));
            w.findChild<QDockWidget*>(QStringLiteral("setupDock"))->hide();
            w.resize(1000, 700);
            w.close();
        }
        {
            MainWindow w;
            QCOMPARE(w.recentModels(), QStringList{QDir::cleanPath(qpath(m_llama))});
            w.show();
            QVERIFY(w.findChild<QDockWidget*>(QStringLiteral("setupDock"))->isHidden());
            QCOMPARE(w.size(), QSize(1000, 700));
            // View > Reset Layout brings the dock back.
            auto* reset = w.findChild<QAction*>(QStringLiteral("resetLayoutAction"));
            QVERIFY(reset);
            reset->trigger();
            QVERIFY(w.findChild<QDockWidget*>(QStringLiteral("setupDock"))->isVisible());
        }
        // Missing folders are pruned from the list.
        auto settings = openSettings();
        RecentModels::add(*settings, qpath(m_dir->path() / "gone"));
        QCOMPARE(RecentModels::load(*settings).size(), 1);
        openSettings()->clear();
    }

    void dropsOpenModelFolders() {
        const QList<QUrl> folder{QUrl::fromLocalFile(qpath(m_llama))};
        QCOMPARE(MainWindow::modelFolderFromUrls(folder), qpath(m_llama));
        const QList<QUrl> config{QUrl::fromLocalFile(qpath(m_llama / "config.json"))};
        QCOMPARE(MainWindow::modelFolderFromUrls(config), qpath(m_llama));
        const QList<QUrl> web{QUrl(QStringLiteral("https://example.com/model"))};
        QVERIFY(MainWindow::modelFolderFromUrls(web).isEmpty());
    }

    void screenshotWaitsForTheWorkers() {
        MainWindowOptions o;
        o.persistSettings = false;
        MainWindow w(o);
        w.setPrompt(QStringLiteral("a screenshot"));
        w.openModel(qpath(m_llama));
        w.show();
        const QString png = qpath(m_dir->path() / "shot.png");
        ScreenshotTaker taker(&w, png, kTimeoutMs);
        QSignalSpy finished(&taker, &ScreenshotTaker::finished);
        taker.start();
        QVERIFY(finished.wait(kTimeoutMs));
        QCOMPARE(finished.at(0).at(0).toInt(), 0);
        QVERIFY(w.session()->tokens());
        QCOMPARE(chips(w)->chipCount(), w.session()->tokens()->count());
        const QImage image(png);
        QVERIFY(!image.isNull());
        QVERIFY(image.width() >= w.width());
    }

    void screenshotTimesOutWithAnError() {
        MainWindowOptions o;
        o.persistSettings = false;
        o.probeBackend = false; // the backend never becomes known: the taker must give up
        MainWindow w(o);
        ScreenshotTaker taker(&w, qpath(m_dir->path() / "never.png"), 300);
        QSignalSpy finished(&taker, &ScreenshotTaker::finished);
        taker.start();
        QVERIFY(finished.wait(kTimeoutMs));
        QCOMPARE(finished.at(0).at(0).toInt(), int(ScreenshotTaker::TimedOut));
        QVERIFY(!QFileInfo::exists(qpath(m_dir->path() / "never.png")));
    }

    void commandLineAndDefaultModel() {
        auto o = parseStartupOptions(
            {"kvstudio", "/m", "--prompt-file", "p.txt", "--screenshot", "s.png"});
        QVERIFY2(o.error.isEmpty(), qPrintable(o.error));
        QCOMPARE(o.modelFolder, QStringLiteral("/m"));
        QCOMPARE(o.promptFile, QStringLiteral("p.txt"));
        QCOMPARE(o.screenshot, QStringLiteral("s.png"));
        QVERIFY(!parseStartupOptions({"kvstudio", "a", "b"}).error.isEmpty());
        QVERIFY(!parseStartupOptions({"kvstudio", "--bogus"}).error.isEmpty());
        // A session file may stand where the model folder does; two sessions are an error.
        const QString sessionFile = qpath(m_dir->path() / "named.kvsession");
        {
            QFile f(sessionFile);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("{}");
        }
        o = parseStartupOptions({"kvstudio", sessionFile});
        QVERIFY2(o.error.isEmpty(), qPrintable(o.error));
        QCOMPARE(o.session, sessionFile);
        QVERIFY(o.modelFolder.isEmpty());
        QVERIFY(!parseStartupOptions({"kvstudio", sessionFile, "--session", "b.kvsession"})
                     .error.isEmpty());
        // QApplication would take --session for X session management: it is kept for us.
        {
            QByteArray a0("kvstudio"), a1("--session"), a2("s.kvsession"), a3("-platform"),
                a4("offscreen"), a5("--session=t.kvsession"), a6("--"), a7("--session");
            char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data(),
                            a5.data(), a6.data(), a7.data(), nullptr};
            int argc = 8;
            const QStringList taken = takeOptionsQtWouldEat(argc, argv);
            QCOMPARE(taken, (QStringList{"--session", "s.kvsession", "--session", "t.kvsession"}));
            QCOMPARE(argc, 5);
            QCOMPARE(QByteArray(argv[1]), QByteArray("-platform"));
            QCOMPARE(QByteArray(argv[2]), QByteArray("offscreen"));
            QCOMPARE(QByteArray(argv[3]), QByteArray("--"));
            QCOMPARE(QByteArray(argv[4]), QByteArray("--session"));
            QCOMPARE(argv[5], nullptr);
            // Put back before a "--", so that they are options, not positionals.
            const QStringList back = withOptionsBack({"kvstudio", "--", "m"}, taken);
            QCOMPARE(back.mid(0, 3), (QStringList{"kvstudio", "--session", "s.kvsession"}));
            QCOMPARE(back.mid(5), (QStringList{"--", "m"}));
        }

        qputenv("KVS_DEFAULT_MODEL", qpath(m_gqa).toUtf8());
        QCOMPARE(findDefaultModel(QString()), QDir::cleanPath(qpath(m_gqa)));
        qputenv("KVS_DEFAULT_MODEL", qpath(m_dir->path() / "nothing").toUtf8());
        const QStringList candidates = defaultModelCandidates(QStringLiteral("/opt/kvs/bin"));
        QCOMPARE(candidates.value(1), QStringLiteral("/opt/kvs/assets/models/default"));
        QVERIFY(noModelMessage(candidates).contains(QStringLiteral("make-model tiny-llama")));
        qunsetenv("KVS_DEFAULT_MODEL");

        QString error;
        readPromptFile(qpath(m_dir->path() / "missing.txt"), &error);
        QVERIFY(error.contains(QStringLiteral("missing.txt")));
        // The start-up prompt is the held-out passage compiled in (a held-out book of the
        // 1,024-token default model; most of its context).
        QFile passage(qpath(kvs::test::sourceTestsDir().parent_path() / "assets" / "prompts" /
                            "held-out" / "03-ecclesiastes-1.txt"));
        QVERIFY(passage.open(QIODevice::ReadOnly));
        QCOMPARE(defaultPrompt(), QString::fromUtf8(passage.readAll()));
        QVERIFY(defaultPrompt().startsWith(QStringLiteral("The words of the Preacher")));
        QVERIFY(defaultPrompt().size() > 900 && defaultPrompt().size() < 1024);
    }

    // File > Bundled Models: the trained default model and its projection-sharing variants, the
    // build's copy before the source tree's, in the results table's order, unknown ones last.
    void bundledModelsAreListedInTableOrder() {
        const fs::path root = m_dir->path() / "install";
        fs::create_directories(root / "bin");
        const fs::path models = root / "assets" / "models";
        for (const char* name : {"default", "variants/mqa", "variants/zz_custom"})
            kvs::test::writeModel(*m_dir, std::string("install/assets/models/") + name,
                                  kvs::syntheticPreset("tiny-llama"));
        fs::create_directories(models / "variants" / "empty"); // no config.json: not a model

        const auto listed = bundledModels(qpath(root / "bin"));
        QStringList names;
        for (const auto& m : listed)
            names << m.name;
        QVERIFY2(names.size() >= 3, qPrintable(names.join(' ')));
        QCOMPARE(names.front(), QStringLiteral("default"));
        QCOMPARE(QDir::cleanPath(listed.front().folder),
                 QDir::cleanPath(qpath(models / "default")));
        QCOMPARE(names.back(), QStringLiteral("zz_custom"));
        QCOMPARE(listed.back().label, QStringLiteral("zz_custom"));
        QVERIFY(!names.contains(QStringLiteral("empty")));
        QCOMPARE(names.count(QStringLiteral("mqa")), 1);
        const auto mqa = listed[names.indexOf(QStringLiteral("mqa"))];
        QCOMPARE(QDir::cleanPath(mqa.folder), QDir::cleanPath(qpath(models / "variants" / "mqa")));
        QCOMPARE(mqa.label, QStringLiteral("MQA (1 KV head)"));
        QVERIFY(mqa.details.isEmpty()); // the synthetic stand-in has no train_results.json

        // The source tree's shipped variants follow the table's order, with their figures.
        const fs::path shipped = kvs::test::sourceTestsDir().parent_path() / "assets" / "models";
        if (!fs::is_directory(shipped / "variants"))
            return;
        const QStringList order = {"default",     "default-256", "gqa3",   "gqa2",
                                   "mqa",         "k_eq_v",      "q_eq_k", "q_eq_k_eq_v",
                                   "k_eq_v_gqa2", "thin_keys"};
        int last = -1;
        for (const auto& e : fs::directory_iterator(shipped / "variants")) {
            const QString name = QString::fromStdString(e.path().filename().string());
            QVERIFY2(names.contains(name), qPrintable(name));
            if (name == QLatin1String("mqa"))
                continue;
            const auto& m = listed[names.indexOf(name)];
            QVERIFY2(m.details.contains(QStringLiteral("bytes per token")), qPrintable(m.details));
            if (name == QLatin1String("thin_keys"))
                QVERIFY2(m.details.contains(QStringLiteral("with the keys as rank-8 latents")),
                         qPrintable(m.details));
        }
        for (const QString& name : names) {
            const int at = order.indexOf(name);
            if (at < 0)
                continue;
            QVERIFY2(at > last, qPrintable(names.join(' ')));
            last = at;
        }
    }

    void bundledModelsMenuOpensAVariant() {
        const fs::path assets = kvs::test::sourceTestsDir().parent_path() / "assets" / "models";
        const fs::path mqa = assets / "variants" / "mqa";
        if (!fs::is_directory(mqa))
            QFAIL("the trained MQA variant assets/models/variants/mqa is missing");
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        auto* menu = w.findChild<QMenu*>(QStringLiteral("bundledMenu"));
        QVERIFY(menu);
        const auto listed = bundledModels(QCoreApplication::applicationDirPath());
        const auto checked = [&] {
            QStringList names;
            for (QAction* a : menu->actions())
                if (a->isChecked())
                    names << a->objectName();
            return names.join(' ');
        };

        // Opening a model by any route ticks its entry the next time the menu opens.
        w.openModel(qpath(assets / "default"));
        QVERIFY2(waitLoaded(w), qPrintable(w.session()->lastError()));
        QMetaObject::invokeMethod(menu, "aboutToShow");
        QCOMPARE(menu->actions().size(), listed.size());
        QCOMPARE(checked(), QStringLiteral("bundledModel_default"));

        // Triggering an entry opens that model; the menu is rebuilt (new actions) when shown.
        QPointer<QAction> action = menu->findChild<QAction*>(QStringLiteral("bundledModel_mqa"));
        QVERIFY(action);
        QVERIFY2(action->statusTip().contains(QStringLiteral("768 bytes per token")),
                 qPrintable(action->statusTip()));
        action->trigger();
        QVERIFY2(waitLoaded(w), qPrintable(w.session()->lastError()));
        QCOMPARE(configValue(w, "kvHeads"), QStringLiteral("1"));
        // The trained model's record (train_results.json) is part of its configuration.
        const QString training = configValue(w, "training");
        QVERIFY2(training.contains(QStringLiteral("2,500 steps")) &&
                     training.contains(QStringLiteral("validation 0.9385 nats/char")),
                 qPrintable(training));
        QMetaObject::invokeMethod(menu, "aboutToShow");
        QVERIFY(action.isNull());
        QCOMPARE(checked(), QStringLiteral("bundledModel_mqa"));

        // The variant takes 256 positions; the start-up prompt has 942 characters. The setup
        // panel says so and offers to keep the tokens that fit: one click, and the prompt is its
        // first 256 characters (a character-level model), within the limit.
        SetupPanel* setup = w.setupPanel();
        w.setPrompt(defaultPrompt());
        QTRY_VERIFY_WITH_TIMEOUT(
            w.session()->tokens() && w.session()->tokens()->prompt == defaultPrompt(), kTimeoutMs);
        QTRY_VERIFY(setup->fitPromptButton()->isVisible());
        QVERIFY2(setup->tokenCountLabel()->text().contains(QStringLiteral("over the model")),
                 qPrintable(setup->tokenCountLabel()->text()));
        setup->fitPromptButton()->click();
        QCOMPARE(setup->prompt(), defaultPrompt().left(256));
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->tokens() &&
                                     w.session()->tokens()->prompt == defaultPrompt().left(256),
                                 kTimeoutMs);
        QCOMPARE(w.session()->tokens()->count(), 256);
        QTRY_VERIFY(!setup->fitPromptButton()->isVisible());
        setup->promptEdit()->undo(); // one edit: undo brings the whole prompt back
        QCOMPARE(setup->prompt(), defaultPrompt());
    }

    // A training record is optional: without one the row says nothing, a broken one is named and
    // the model still loads.
    void trainingRecordIsOptionalAndNamedWhenBroken() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.openModel(qpath(m_llama));
        QVERIFY(waitLoaded(w));
        QCOMPARE(configValue(w, "training"), QStringLiteral("\u2014"));

        const fs::path broken =
            kvs::test::writeModel(*m_dir, "broken-record", kvs::syntheticPreset("tiny-llama"));
        kvs::test::writeBytes(broken / "train_results.json", "{\"validation\": ");
        w.openModel(qpath(broken));
        QVERIFY2(waitLoaded(w), qPrintable(w.session()->lastError()));
        const QString training = configValue(w, "training");
        QVERIFY2(training.startsWith(QStringLiteral("train_results.json: not a training record")),
                 qPrintable(training));
    }

    void closesCleanlyWhileWorking() {
        // Warm up whatever the first window starts once per process (fonts, style, GL-less
        // backing store), so that the count below sees only the session's own threads.
        { MainWindow warm(quietOptions()); }
        const QStringList before = threadNames();
        for (int i = 0; i < 3; ++i) {
            auto w = std::make_unique<MainWindow>(quietOptions());
            w->show();
            w->setPrompt(QStringLiteral("closing while the workers run"));
            w->openModel(qpath(i % 2 ? m_gqa : m_llama));
            w->session()->tokenizeNow();
            QVERIFY(w->session()->isBusy());
            w->close();
            w.reset(); // waits for the load; its result is never delivered
        }
        // A joined thread may take a moment to leave /proc after QThread::wait() returns; a
        // leaked one never does.
        QTRY_VERIFY2_WITH_TIMEOUT(threadNames() == before,
                                  qPrintable(QStringLiteral("threads before: %1; after: %2")
                                                 .arg(before.join(", "), threadNames().join(", "))),
                                  5000);
    }
};

QTEST_MAIN(TestStudioWindow)
#include "test_studio_window.moc"
