// SPDX-License-Identifier: MIT
#include "report_command.h"

#include "offscreen_session.h"
#include "report_document.h"
#include "session.h"
#include "studio_files.h"

#include "kvs/output_writer.h"

#include <QDir>
#include <QFileInfo>
#include <nlohmann/json.hpp>

#include <iostream>

namespace kvs::studio {

namespace {

// Refuses, before any work, a report or sidecar path that may not be written: a file the studio
// did not write (unless --force), a folder (always).
void requireReplaceable(const QString& path, std::string_view kind, bool force) {
    const OutputCheck check = checkOutput(path.toStdString(), kind);
    if (check.replaceable || (force && check.forceable))
        return;
    throw Error(ErrorCode::Exists, "refusing to overwrite " + path.toStdString() + ": " +
                                       check.reason +
                                       (check.forceable ? " (use --force to replace it)" : ""));
}

} // namespace

int runReportCommand(const cli::Args& args, cli::Streams io) {
    args.allowOnly({"out", "force", "page", "views", "font-pt", "timeout", "json"});
    const QString sessionPath = QString::fromStdString(args.positional(0, "SESSION"));
    const QString out = QString::fromStdString(args.require("out"));
    if (!out.endsWith(QLatin1String(".pdf"), Qt::CaseInsensitive))
        throw cli::UsageError("--out names the PDF to write (REPORT.pdf), got '" +
                              out.toStdString() + "'");
    ReportOptions options;
    const std::string page = args.get("page").value_or("a4");
    if (page == "a4")
        options.page = QPageSize::A4;
    else if (page == "letter")
        options.page = QPageSize::Letter;
    else
        throw cli::UsageError("--page must be a4 or letter, got '" + page + "'");
    options.views = parseChartViews(args.get("views").value_or("all"));
    if (const double pt = numberOption(args, "font-pt", 4, 24); pt > 0)
        options.fontPt = pt;
    const int timeoutSeconds = args.getInt("timeout", 900, 1, 86400);
    const bool force = args.has("force");
    options.sessionName = QFileInfo(sessionPath).fileName();

    // Said before the analysis, not after it: a report that could not be written anyway.
    const QString sidecarPath = out + QStringLiteral(".json");
    requireReplaceable(out, "export", force);
    requireReplaceable(sidecarPath, kSidecarKind, force);

    OffscreenSession studio(sessionPath, MainWindowOptions{}, "light", timeoutSeconds);
    const ReportDocument report = drawReport(studio.window(), options);

    if (const QString folder = QFileInfo(out).absolutePath(); !QDir().mkpath(folder))
        throw Error(ErrorCode::Io, "cannot write the report " + out.toStdString() +
                                       ": cannot create the folder " + folder.toStdString());
    views::ExportFile file{report.pdf, report.sidecar};
    file.sidecar[QStringLiteral("file")] = QFileInfo(out).fileName();
    const QString error = writeExportFile(out, file, [force](const QString&) { return force; });
    if (!error.isEmpty())
        throw Error(error.startsWith(QLatin1String("refusing")) ? ErrorCode::Exists : ErrorCode::Io,
                    error.toStdString() + (error.startsWith(QLatin1String("refusing")) && !force
                                               ? " (use --force to replace it)"
                                               : ""));

    const double seconds = studio.seconds();
    if (args.has("json")) {
        nlohmann::json charts = nlohmann::json::array();
        for (const QString& c : report.charts)
            charts.push_back(c.toStdString());
        const auto provenance = report.sidecar.value(QStringLiteral("provenance")).toObject();
        io.out
            << nlohmann::json{{"session", sessionPath.toStdString()},
                              {"file", out.toStdString()},
                              {"pages", report.pages},
                              {"charts", charts},
                              {"page", page},
                              {"font_pt", options.fontPt},
                              {"model",
                               provenance.value(QStringLiteral("model")).toString().toStdString()},
                              {"model_hash", provenance.value(QStringLiteral("model_hash"))
                                                 .toString()
                                                 .toStdString()},
                              {"seconds", seconds}}
                   .dump(2)
            << "\n";
    } else {
        io.out << out.toStdString() << "\n";
        io.err << "wrote a " << report.pages << "-page report with " << report.charts.size()
               << " charts from " << sessionPath.toStdString() << " in " << seconds << " s\n";
    }
    return 0;
}

} // namespace kvs::studio
