// SPDX-License-Identifier: MIT
// What `kvstudio-cli render` and `kvstudio-cli report` share: a saved session opened in an
// off-screen studio window and waited on until every result (maps, model quality, timings,
// sweeps) is in, the --views list, and the commands' numeric options.
#pragma once

#include "cli.h"
#include "main_window.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QString>
#include <QStringList>
#include <memory>
#include <string>

namespace kvs::studio {

// --views LIST: views with charts (chartViewNames()) separated by commas, or "all"; a
// cli::UsageError naming an unknown view.
QStringList parseChartViews(const std::string& list);

// Option --`name` as a number in [lo, hi]; 0 when it is not given; a cli::UsageError otherwise.
double numberOption(const cli::Args& args, const char* name, double lo, double hi);

// A saved session in an off-screen studio window with every result in. The window and, when the
// command runs outside one (the CLI; tests bring their own), the QApplication live as long as
// this object.
class OffscreenSession {
public:
    // Checks the session file (it exists, is a session, names a model, has a prompt) before any
    // window is made, opens it in a window made with `options` (settings never written, never a
    // question on close), sets the theme ("light", "dark" or "session": the session's own) and
    // waits until the model is loaded and no job, re-tokenization or analysis is pending for half
    // a second. Throws kvs::Error naming the session: the failed job's error and code, a model
    // that does not load, a prompt too short or that cannot be tokenized, or the timeout.
    OffscreenSession(const QString& sessionPath, MainWindowOptions options,
                     const std::string& theme, int timeoutSeconds);
    ~OffscreenSession();
    OffscreenSession(const OffscreenSession&) = delete;
    OffscreenSession& operator=(const OffscreenSession&) = delete;

    MainWindow& window() { return *m_window; }
    // Seconds since the window opened the session.
    double seconds() const { return static_cast<double>(m_clock.elapsed()) / 1000.0; }

private:
    std::unique_ptr<QApplication> m_app; // declared first: it outlives the window
    std::unique_ptr<MainWindow> m_window;
    QElapsedTimer m_clock;
};

} // namespace kvs::studio
