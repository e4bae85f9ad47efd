// SPDX-License-Identifier: MIT
// A saved session opened off screen and waited on until every result is in (render, report).
#include "offscreen_session.h"

#include "session.h"
#include "session_document.h"
#include "view_registry.h"

#include <QEventLoop>
#include <QFileInfo>
#include <QStyleFactory>
#include <QThread>

#include <cmath>
#include <optional>

namespace kvs::studio {

namespace {

// The commands need a QApplication; when they run inside one (tests), that one is used. Off
// screen unless the caller chose a platform: figures do not need a display, and the same session
// renders the same pixels on every machine.
std::unique_ptr<QApplication> ensureApplication() {
    if (QApplication::instance())
        return nullptr;
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    static int argc = 1;
    static char name[] = "kvstudio-cli";
    static char* argv[] = {name, nullptr};
    auto app = std::make_unique<QApplication>(argc, argv);
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    return app;
}

// The first job that failed while the session was being waited on: its error, code included.
// A prompt the tokenizer refuses (a character outside its vocabulary) counts: no analysis
// would ever start.
class FailureWatch : public ISessionView {
public:
    explicit FailureWatch(Session* session) : m_subscription(session, this) {}
    void onJobFailed(views::StudioJob job, const Error& error) override {
        if (!m_failure)
            m_failure.emplace(error.code(), jobFailureText(job, error).toStdString());
    }
    void onTokenizeFailed(const QString& message) override {
        if (!m_failure)
            m_failure.emplace(ErrorCode::InvalidArgument,
                              "its prompt cannot be tokenized: " + message.toStdString());
    }
    const std::optional<Error>& failure() const { return m_failure; }

private:
    std::optional<Error> m_failure;
    SessionSubscription m_subscription;
};

// What would leave the wait for an analysis that never starts, said at once.
void checkSessionFile(const QString& sessionPath) {
    if (!QFileInfo::exists(sessionPath))
        throw Error(ErrorCode::Io,
                    "cannot open the session " + sessionPath.toStdString() + ": no such file");
    SessionDocument document;
    QString error;
    if (!readSessionDocument(sessionPath, &document, &error))
        throw Error(ErrorCode::Format, error.toStdString());
    if (document.modelFolder.isEmpty())
        throw Error(ErrorCode::Missing, "the session " + sessionPath.toStdString() +
                                            " names no model (its \"model\" is empty): open it in "
                                            "the window, choose a model and save it again");
    if (document.prompt.isEmpty())
        throw Error(ErrorCode::InvalidArgument,
                    "the session " + sessionPath.toStdString() +
                        " has an empty prompt: the analysis needs at least two tokens (a context "
                        "and a probe token)");
}

} // namespace

QStringList parseChartViews(const std::string& list) {
    const QStringList known = chartViewNames();
    QStringList views;
    for (const QString& v :
         QString::fromStdString(list).split(QLatin1Char(','), Qt::SkipEmptyParts)) {
        const QString name = v.trimmed().toLower();
        if (name == QLatin1String("all"))
            return known;
        if (!known.contains(name))
            throw cli::UsageError("unknown view '" + name.toStdString() + "' (" +
                                  known.join(QStringLiteral(", ")).toStdString() + " or all)");
        if (!views.contains(name))
            views << name;
    }
    if (views.isEmpty())
        throw cli::UsageError("--views names no view");
    return views;
}

double numberOption(const cli::Args& args, const char* name, double lo, double hi) {
    const auto v = args.get(name);
    if (!v)
        return 0.0;
    double x = 0;
    std::size_t used = 0;
    try {
        x = std::stod(*v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != v->size() || !std::isfinite(x) || x < lo || x > hi)
        throw cli::UsageError("option --" + std::string(name) + " must be a number from " +
                              std::to_string(static_cast<int>(lo)) + " to " +
                              std::to_string(static_cast<int>(hi)) + ", got '" + *v + "'");
    return x;
}

OffscreenSession::OffscreenSession(const QString& sessionPath, MainWindowOptions options,
                                   const std::string& theme, int timeoutSeconds) {
    checkSessionFile(sessionPath);
    m_app = ensureApplication();
    options.persistSettings = false;
    options.askToSaveOnClose = false;
    m_window = std::make_unique<MainWindow>(options);
    MainWindow& window = *m_window;
    window.resize(1600, 1000);
    window.show();

    QString error;
    if (!window.openSession(sessionPath, &error))
        throw Error(ErrorCode::Format, error.toStdString());
    if (theme != "session")
        window.setDarkTheme(theme == "dark");

    // Done when the model is loaded and the session has had no job, pending re-tokenization or
    // pending analysis for a while (quality, timings and sweeps are follow-up jobs, so a short
    // idle gap between two of them must not end the wait).
    Session* session = window.session();
    m_clock.start();
    QElapsedTimer idle;
    bool wasIdle = false;
    // A failed job (analysis, quality, sweep, timing) would leave a figure without its data:
    // the command fails with the job's error and code.
    const FailureWatch watch(session);
    const std::string path = sessionPath.toStdString();
    for (;;) {
        QApplication::processEvents(QEventLoop::AllEvents, 50);
        QThread::msleep(20);
        if (const auto& failure = watch.failure())
            throw Error(failure->code(), "rendering " + path + ": " + failure->what());
        if (session->modelState() == ModelState::Failed)
            throw Error(ErrorCode::Io, "the session " + path +
                                           " names a model that does not load: " +
                                           session->lastError().toStdString());
        if (const auto tokens = session->tokens(); tokens &&
                                                   session->modelState() == ModelState::Loaded &&
                                                   tokens->count() < 2 && !session->isBusy())
            throw Error(ErrorCode::InvalidArgument,
                        "rendering " + path + ": its prompt is " + std::to_string(tokens->count()) +
                            " token(s) long; the analysis needs at least two (a context and a "
                            "probe token)");
        const bool done = session->modelState() == ModelState::Loaded && session->analysis() &&
                          !session->isBusy() && !session->isAnalysisBusy();
        if (done && !wasIdle)
            idle.start();
        wasIdle = done;
        if (done && idle.elapsed() > 500)
            break;
        if (m_clock.elapsed() > 1000LL * timeoutSeconds)
            throw Error(ErrorCode::Internal, "rendering " + path + " did not finish within " +
                                                 std::to_string(timeoutSeconds) + " s (--timeout)");
    }
}

OffscreenSession::~OffscreenSession() = default;

} // namespace kvs::studio
