// SPDX-License-Identifier: MIT
// kvstudio: the studio window. `kvstudio [MODEL_FOLDER | S.kvsession] [--prompt-file F] [--session
// S]
// [--view NAME] [--theme light|dark] [--screenshot F.png]`.
#include "main_window.h"
#include "session.h"
#include "startup.h"
#include "studio_settings.h"

#include <QApplication>
#include <QStyleFactory>
#include <QTimer>
#include <cstdio>

using namespace kvs::studio;

namespace {

// Prints help, version or a usage error; returns the exit code, or -1 to go on.
int handleEarly(const StartupOptions& options) {
    if (!options.error.isEmpty()) {
        std::fprintf(stderr, "kvstudio: %s\n\n%s", qPrintable(options.error),
                     qPrintable(options.helpText));
        return 2;
    }
    if (options.help) {
        std::fputs(qPrintable(options.helpText), stdout);
        return 0;
    }
    if (options.version) {
        std::printf("kvstudio %s\n", KVS_VERSION);
        return 0;
    }
    return -1;
}

} // namespace

int main(int argc, char** argv) {
    // --help and --version work without a display: answer them before the QApplication exists.
    for (int i = 1; i < argc; ++i) {
        const QString a = QString::fromLocal8Bit(argv[i]);
        if (a == QLatin1String("-h") || a == QLatin1String("--help") ||
            a == QLatin1String("--help-all") || a == QLatin1String("--version") ||
            a == QLatin1String("-v"))
            return handleEarly(parseStartupOptions({QStringLiteral("kvstudio"), a}));
    }

    const QStringList ours = takeOptionsQtWouldEat(argc, argv);
    QApplication app(argc, argv); // takes Qt's own options (-platform, -style, ...) out
    QApplication::setOrganizationName(QString::fromLatin1(kOrganization));
    QApplication::setApplicationName(QString::fromLatin1(kApplication));
    QApplication::setApplicationDisplayName(QStringLiteral("KV Studio"));
    QApplication::setApplicationVersion(QStringLiteral(KVS_VERSION));
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));

    const StartupOptions options =
        parseStartupOptions(withOptionsBack(QApplication::arguments(), ours));
    if (const int code = handleEarly(options); code >= 0)
        return code;

    QString prompt = defaultPrompt();
    if (!options.promptFile.isEmpty()) {
        QString error;
        prompt = readPromptFile(options.promptFile, &error);
        if (!error.isEmpty()) {
            std::fprintf(stderr, "kvstudio: %s\n", qPrintable(error));
            return 2;
        }
    }

    MainWindowOptions windowOptions;
    windowOptions.persistSettings = options.screenshot.isEmpty();
    // Unsaved work survives a crash: written every 20 s, offered back at the next start.
    windowOptions.autosaveSeconds = windowOptions.persistSettings ? 20 : 0;
    MainWindow window(windowOptions);
    window.setPrompt(prompt);

    if (!options.theme.isEmpty())
        window.setDarkTheme(options.theme == QLatin1String("dark"));
    else if (windowOptions.persistSettings &&
             openSettings()->value(QStringLiteral("view/theme")).toString() ==
                 QLatin1String("dark"))
        window.setDarkTheme(true);
    if (!options.session.isEmpty()) { // its model, prompt, schemes and view
        QString error;
        if (!window.openSession(options.session, &error)) {
            std::fprintf(stderr, "kvstudio: %s\n", qPrintable(error));
            return 2;
        }
        // The command line wins over the session's theme and prompt.
        if (!options.theme.isEmpty())
            window.setDarkTheme(options.theme == QLatin1String("dark"));
        if (!options.promptFile.isEmpty())
            window.setPrompt(prompt);
    }
    if (!options.modelFolder.isEmpty()) {
        window.openModel(options.modelFolder);
    } else if (window.session()->modelState() == ModelState::None) {
        const QString folder = findDefaultModel(QApplication::applicationDirPath());
        if (folder.isEmpty())
            window.showInfo(
                noModelMessage(defaultModelCandidates(QApplication::applicationDirPath())));
        else
            window.openModel(folder);
    }
    if (!options.studies.isEmpty()) {
        QString error;
        if (!window.openStudyResults(options.studies, &error)) {
            std::fprintf(stderr, "kvstudio: %s\n", qPrintable(error));
            return 2;
        }
    }
    if (!options.view.isEmpty())
        window.showViewByName(options.view);
    window.show();
    // After the window is up (the question needs it), and unless a session was asked for.
    if (windowOptions.autosaveSeconds > 0 && options.session.isEmpty())
        QTimer::singleShot(0, &window, [&window] { window.offerRecoveredSessions(); });

    if (!options.screenshot.isEmpty()) {
        auto* taker = new ScreenshotTaker(&window, options.screenshot,
                                          options.timeoutSeconds * 1000, &window);
        QObject::connect(
            taker, &ScreenshotTaker::finished, &app, [](int code, const QString& message) {
                std::fprintf(code == 0 ? stdout : stderr, "kvstudio: %s\n", qPrintable(message));
                QApplication::exit(code);
            });
        taker->start();
    }
    return QApplication::exec();
}
