// SPDX-License-Identifier: MIT
#include "render_command.h"

#include "offscreen_session.h"
#include "session.h"

#include "kvs/output_writer.h"

#include <QDir>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <vector>

namespace kvs::studio {

namespace {

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
    exportOptions.widthMm = numberOption(args, "width-mm", 10, 1000);
    exportOptions.heightMm = numberOption(args, "height-mm", 10, 1000);
    exportOptions.fontPt = numberOption(args, "font-pt", 4, 72);
    if (exportOptions.heightMm > 0 && exportOptions.widthMm <= 0)
        throw cli::UsageError("--height-mm goes with --width-mm");
    const QStringList views = parseChartViews(args.get("views").value_or("all"));
    const std::string theme = args.get("theme").value_or("light");
    if (theme != "light" && theme != "dark" && theme != "session")
        throw cli::UsageError("--theme must be light, dark or session");
    const int timeoutSeconds = args.getInt("timeout", 900, 1, 86400);

    MainWindowOptions options;
    // Files in --out that the studio did not write are replaced only with --force.
    const bool force = args.has("force");
    QString refused;
    options.confirmReplace = [&](const QString& path) {
        refused = path;
        return force;
    };
    OffscreenSession studio(sessionPath, options, theme, timeoutSeconds);
    MainWindow& window = studio.window();
    Session* session = window.session();

    // One view is written into --out, several each into its own subfolder (exportViews).
    if (views.size() == 1)
        removeEarlierExports(out);
    else
        for (const QString& view : views)
            removeEarlierExports(QDir(out).filePath(view));
    QString error;
    const QStringList written = window.exportViews(out, views, exportOptions, &error);
    if (!error.isEmpty() && !refused.isEmpty() && !force)
        throw Error(ErrorCode::Exists, error.toStdString() + " (use --force to replace it)");
    if (!error.isEmpty())
        throw Error(ErrorCode::Io, error.toStdString());

    const double seconds = studio.seconds();
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
