// SPDX-License-Identifier: MIT
#include "render_command.h"

#include "main_window.h"
#include "session.h"
#include "session_document.h"
#include "view_registry.h"

#include "kvs/output_writer.h"

#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QFileInfo>
#include <QStyleFactory>
#include <QThread>
#include <QTimer>
#include <nlohmann/json.hpp>

#include <cmath>
#include <iostream>
#include <memory>

namespace kvs::studio {

namespace {

QStringList parseViews(const std::string& list) {
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

// The render needs a QApplication; when the command runs inside one (tests), that one is used.
// Off screen unless the caller chose a platform: figures do not need a display, and the same
// session renders the same pixels on every machine.
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

// The first job that failed while the session was being rendered: its error, code included.
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

// Removes from `folder` the figures and sidecars an earlier render or export wrote there (each
// figure vouched for by its sidecar, kvs/output_writer.h; sidecars whose figure was replaced by
// another file too), so that a render stopped half-way leaves some new figures, never new ones
// beside another session's. Anything else stays.
void removeEarlierExports(const QString& folder) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::path> ours; // all found before any is removed: a figure needs its sidecar
    for (const auto& entry : fs::directory_iterator(folder.toStdString(), ec)) {
        if (entry.is_symlink(ec) || !entry.is_regular_file(ec))
            continue;
        const fs::path& file = entry.path();
        const bool sidecar = file.extension() == ".json";
        if (checkOutput(file, sidecar ? kSidecarKind : "export").replaceable)
            ours.push_back(file);
    }
    for (const fs::path& file : ours)
        if (!fs::remove(file, ec) && ec)
            throw Error(ErrorCode::Io, file.string() +
                                           ": cannot remove this figure of an earlier "
                                           "render (" +
                                           ec.message() + ")");
}

} // namespace

int runRenderCommand(const cli::Args& args, cli::Streams io) {
    args.allowOnly({"out", "dpi", "views", "theme", "timeout", "json", "force", "width-mm",
                    "height-mm", "font-pt"});
    const QString sessionPath = QString::fromStdString(args.positional(0, "SESSION"));
    const QString out = QString::fromStdString(args.require("out"));
    const int dpi = args.getInt("dpi", 300, 50, 1200);
    // The figure's size and type in physical units, as a plotting library's figure size.
    views::ExportOptions exportOptions;
    exportOptions.dpi = dpi;
    const auto physical = [&](const char* name, double lo, double hi) {
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
    };
    exportOptions.widthMm = physical("width-mm", 10, 1000);
    exportOptions.heightMm = physical("height-mm", 10, 1000);
    exportOptions.fontPt = physical("font-pt", 4, 72);
    if (exportOptions.heightMm > 0 && exportOptions.widthMm <= 0)
        throw cli::UsageError("--height-mm goes with --width-mm");
    const QStringList views = parseViews(args.get("views").value_or("all"));
    const std::string theme = args.get("theme").value_or("light");
    if (theme != "light" && theme != "dark" && theme != "session")
        throw cli::UsageError("--theme must be light, dark or session");
    const int timeoutSeconds = args.getInt("timeout", 900, 1, 86400);
    if (!QFileInfo::exists(sessionPath))
        throw Error(ErrorCode::Io,
                    "cannot open the session " + sessionPath.toStdString() + ": no such file");
    // What would leave the render waiting for an analysis that never starts, said at once.
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

    auto app = ensureApplication();
    MainWindowOptions options;
    options.persistSettings = false;
    options.askToSaveOnClose = false;
    // Files in --out that the studio did not write are replaced only with --force.
    const bool force = args.has("force");
    QString refused;
    options.confirmReplace = [&](const QString& path) {
        refused = path;
        return force;
    };
    MainWindow window(options);
    window.resize(1600, 1000);
    window.show();

    if (!window.openSession(sessionPath, &error))
        throw Error(ErrorCode::Format, error.toStdString());
    if (theme != "session")
        window.setDarkTheme(theme == "dark");

    // Done when the model is loaded and the session has had no job, pending re-tokenization or
    // pending analysis for a while (quality, timings and sweeps are follow-up jobs, so a short
    // idle gap between two of them must not end the wait).
    Session* session = window.session();
    QElapsedTimer clock;
    clock.start();
    QElapsedTimer idle;
    bool wasIdle = false;
    // A failed job (analysis, quality, sweep, timing) would leave a figure without its data:
    // the render fails with the job's error and code.
    const FailureWatch watch(session);
    for (;;) {
        QApplication::processEvents(QEventLoop::AllEvents, 50);
        QThread::msleep(20);
        if (const auto& failure = watch.failure())
            throw Error(failure->code(),
                        "rendering " + sessionPath.toStdString() + ": " + failure->what());
        if (session->modelState() == ModelState::Failed)
            throw Error(ErrorCode::Io, "the session " + sessionPath.toStdString() +
                                           " names a model that does not load: " +
                                           session->lastError().toStdString());
        if (const auto tokens = session->tokens(); tokens &&
                                                   session->modelState() == ModelState::Loaded &&
                                                   tokens->count() < 2 && !session->isBusy())
            throw Error(ErrorCode::InvalidArgument,
                        "rendering " + sessionPath.toStdString() + ": its prompt is " +
                            std::to_string(tokens->count()) +
                            " token(s) long; the analysis needs at least two (a context and a "
                            "probe token)");
        const bool done = session->modelState() == ModelState::Loaded && session->analysis() &&
                          !session->isBusy() && !session->isAnalysisBusy();
        if (done && !wasIdle)
            idle.start();
        wasIdle = done;
        if (done && idle.elapsed() > 500)
            break;
        if (clock.elapsed() > 1000LL * timeoutSeconds)
            throw Error(ErrorCode::Internal, "rendering " + sessionPath.toStdString() +
                                                 " did not finish within " +
                                                 std::to_string(timeoutSeconds) + " s (--timeout)");
    }

    // One view is written into --out, several each into its own subfolder (exportViews).
    if (views.size() == 1)
        removeEarlierExports(out);
    else
        for (const QString& view : views)
            removeEarlierExports(QDir(out).filePath(view));
    const QStringList written = window.exportViews(out, views, exportOptions, &error);
    if (!error.isEmpty() && !refused.isEmpty() && !force)
        throw Error(ErrorCode::Exists, error.toStdString() + " (use --force to replace it)");
    if (!error.isEmpty())
        throw Error(ErrorCode::Io, error.toStdString());

    const double seconds = static_cast<double>(clock.elapsed()) / 1000.0;
    if (args.has("json")) {
        nlohmann::json files = nlohmann::json::array();
        for (const QString& f : written)
            files.push_back(f.toStdString());
        const auto analysis = session->analysis();
        io.out << nlohmann::json{{"session", sessionPath.toStdString()},
                                 {"model", analysis->provenance.modelFolder.toStdString()},
                                 {"backend", analysis->backendName.toStdString()},
                                 {"dpi", dpi},
                                 {"width_mm", exportOptions.widthMm},
                                 {"height_mm", exportOptions.heightMm},
                                 {"font_pt", exportOptions.fontPt},
                                 {"seconds", seconds},
                                 {"files", files}}
                      .dump(2)
               << "\n";
    } else {
        for (const QString& f : written)
            io.out << f.toStdString() << "\n";
        io.err << "rendered " << written.size() << " files from " << sessionPath.toStdString()
               << " in " << seconds << " s\n";
    }
    return 0;
}

} // namespace kvs::studio
