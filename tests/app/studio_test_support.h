// SPDX-License-Identifier: MIT
// What the studio's window tests share: quiet window options, path conversion, waiting for the
// session's analysis.
#pragma once

#include "kvs_test.h"
#include "main_window.h"
#include "session.h"

#include <QApplication>
#include <QDir>
#include <QSettings>
#include <QStandardPaths>
#include <QString>
#include <QStringList>
#include <QTest>
#include <filesystem>
#include <functional>

namespace kvs::test {

inline constexpr int kStudioTimeoutMs = 60000;

inline QString qpath(const std::filesystem::path& p) {
    return QString::fromStdString(p.string());
}

// Test-mode settings of this process alone: the window suites run in parallel and each clears
// its settings, so they must not share one file under ~/.qttest (a recent-sessions list once
// vanished mid-test that way). The folder lives as long as the process.
inline void isolateSettings() {
    static const kvs::test::TempDir folder;
    QStandardPaths::setTestModeEnabled(true);
    for (const auto format : {QSettings::NativeFormat, QSettings::IniFormat})
        QSettings::setPath(format, QSettings::UserScope, qpath(folder.path()));
}

// The window's "Replace a file KV Studio did not write?" question, answered by the test: every
// path asked about is recorded and `answer` is given.
struct ReplaceQuestions {
    QStringList asked;
    bool answer = false;
};
inline void answerReplace(kvs::studio::MainWindowOptions& options, ReplaceQuestions& questions) {
    options.confirmReplace = [&questions](const QString& path) {
        questions.asked << path;
        return questions.answer;
    };
}

// No backend probe, no settings written, never a modal question.
inline kvs::studio::MainWindowOptions quietWindowOptions() {
    kvs::studio::MainWindowOptions o;
    o.probeBackend = false;
    o.persistSettings = false;
    o.askToSaveOnClose = false;
    return o;
}

// With KVS_SCREENSHOT_DIR set, saves `w` there as `name` (a PNG), after pending events: how the
// docs' screenshots of tabs, docks and lesson steps are made. Without it, nothing.
inline void saveScreenshot(QWidget* w, const QString& name) {
    const QString dir = qEnvironmentVariable("KVS_SCREENSHOT_DIR");
    if (dir.isEmpty())
        return;
    QDir().mkpath(dir);
    QApplication::processEvents();
    QVERIFY(w->grab().save(dir + QLatin1Char('/') + name));
}

// Waits until the session has an analysis, nothing of it is pending, and `ok` accepts it.
inline bool waitForAnalysis(kvs::studio::MainWindow& w,
                            const std::function<bool(const kvs::views::AnalysisData&)>& ok) {
    return QTest::qWaitFor(
        [&] {
            const auto a = w.session()->analysis();
            return a && !w.session()->isAnalysisBusy() && ok(*a);
        },
        kStudioTimeoutMs);
}

} // namespace kvs::test
