// SPDX-License-Identifier: MIT
// What kvstudio does at start-up: its command line, where the default model is looked for, the
// default prompt, and the --screenshot mode that grabs the window once the workers are done.
#pragma once

#include <QList>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QTimer>

namespace kvs::studio {

class MainWindow;

struct StartupOptions {
    QString modelFolder; // empty: the default model
    QString promptFile;  // empty: the default prompt
    QString screenshot;  // PNG to write once the window has settled, then quit
    QString view;        // the tab to show: a registered view name (studioViewNames())
    QString theme;       // light or dark ("" = the saved choice)
    QString session;     // a session file to open
    QStringList studies; // journals of a prompt-set study to overlay (--study, repeatable)
    int timeoutSeconds = 120;
    bool help = false;
    bool version = false;
    QString helpText;
    QString error; // a usage error; the program prints it and exits with 2
};

// Parses kvstudio's arguments (without the program name's special handling: arguments[0] is
// skipped as the program).
StartupOptions parseStartupOptions(const QStringList& arguments);

// Removes from argv the options QApplication would take for itself though they are ours
// (Qt reads "-session ID" / "--session ID" as an X session-management id and drops it), and
// returns them to be parsed after QApplication has run: call before constructing QApplication.
QStringList takeOptionsQtWouldEat(int& argc, char** argv);
// `arguments` with `taken` put back right after the program name (before any "--").
QStringList withOptionsBack(const QStringList& arguments, const QStringList& taken);

// Where a default model may be, in order: $KVS_DEFAULT_MODEL, <applicationDir>/../assets/models/
// default, <source tree>/assets/models/default.
QStringList defaultModelCandidates(const QString& applicationDir);
// The first candidate that is a folder, or "".
QString findDefaultModel(const QString& applicationDir);
// One of the project's trained models (docs/bundled-model.md).
struct BundledModel {
    QString folder;
    QString name;    // the folder's name: default, mqa, k_eq_v, ...
    QString label;   // "MQA (1 KV head)"
    QString details; // KV bytes per token and validation loss from train_results.json, or ""
};

// The trained models beside the default one: assets/models/default and assets/models/variants/*,
// each taken from the build's copy (<applicationDir>/../assets/models) or else the source tree, in
// the order of the results table; variants the table does not know follow by name.
QList<BundledModel> bundledModels(const QString& applicationDir);
// What the window calls a model folder: "default (bundled)" for a model that ships with the studio,
// else the folder's last part (the full path goes in a tooltip, so screenshots show no path).
QString modelDisplayName(const QString& folder, const QString& applicationDir);
// What to tell the user when there is no default model.
QString noModelMessage(const QStringList& candidates);

QString defaultPrompt();

// Reads a prompt file as UTF-8; `error` receives a message naming the file on failure.
QString readPromptFile(const QString& path, QString* error);

// Waits until the window's session is idle (model loaded or failed, prompt tokenized, backend
// probed), grabs the window to a PNG and reports. Times out with a non-zero code.
class ScreenshotTaker : public QObject {
    Q_OBJECT
public:
    enum ExitCode { Ok = 0, ModelFailed = 1, SaveFailed = 2, TimedOut = 3 };

    ScreenshotTaker(MainWindow* window, QString path, int timeoutMs, QObject* parent = nullptr);
    void start();

signals:
    void finished(int exitCode, const QString& message);

private:
    bool settled() const;
    void check();
    void grabNow();

    MainWindow* m_window;
    QString m_path;
    QTimer m_timeout;
    QTimer m_settle;
    bool m_done = false;
};

} // namespace kvs::studio
