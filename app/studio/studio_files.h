// SPDX-License-Identifier: MIT
// How the window writes files: through core's output writer (atomic; a file the studio did not
// write is refused), with one question to the person before a foreign file is replaced. Sessions
// and chart exports (the export and its sidecar) go through here.
#pragma once

#include "chart_export.h"

#include <QByteArray>
#include <QString>
#include <functional>
#include <string_view>

namespace kvs::studio {

// Asked before a file the studio did not write is replaced; true replaces it.
using ConfirmReplace = std::function<bool(const QString& path)>;

// Writes `bytes` to `path` as a studio file of `kind` (see kvs/output_writer.h). Throws kvs::Error:
// Exists when the file is not ours and `confirmReplace` is empty or says no, Io when writing fails.
void writeStudioFile(const QString& path, const QByteArray& bytes, std::string_view kind,
                     const ConfirmReplace& confirmReplace);

// Writes an export and its sidecar `path`.json (marked, with the export's size and hash, so the
// studio knows the export as its own next time). Both paths are checked before either is
// written. Returns "" or the error naming the file.
QString writeExportFile(const QString& path, const views::ExportFile& file,
                        const ConfirmReplace& confirmReplace);

// writeExportFile bound to one way of asking, for the views' export menus.
views::ExportWriter exportWriter(ConfirmReplace confirmReplace);

} // namespace kvs::studio
