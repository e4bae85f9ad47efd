// SPDX-License-Identifier: MIT
// Export of a view's charts to a folder: PNG at a chosen DPI, SVG, PDF and CSV, each with its
// provenance sidecar (views/chart_export draws them, studio_files writes them).
#pragma once

#include "chart_export.h"

#include <QStringList>
#include <vector>

namespace kvs::studio {

// Writes every chart of `charts` into `folder` (created when missing) in the four formats; a
// hidden plot (a map toggled off) exports its data only. Returns the files written; stops at
// the first error, which `error` then names. `write` puts each file on disk (studio_files.h).
QStringList exportCharts(const std::vector<views::ChartHandle>& charts, const QString& folder,
                         const views::ExportOptions& options, const views::Provenance& provenance,
                         const views::ExportWriter& write, QString* error);

} // namespace kvs::studio
