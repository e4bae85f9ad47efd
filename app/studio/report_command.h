// SPDX-License-Identifier: MIT
// `kvstudio-cli report SESSION --out REPORT.pdf`: opens a saved session in an off-screen studio
// window as `render` does, waits until every result is in, and writes one multi-page PDF: the
// settings and the results table, then the chosen views' charts, each captioned with its
// provenance (report_document.h).
#pragma once

#include "cli.h"

namespace kvs::studio {

int runReportCommand(const cli::Args& args, cli::Streams io);

} // namespace kvs::studio
