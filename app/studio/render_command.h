// SPDX-License-Identifier: MIT
// `kvstudio-cli render SESSION --out DIR`: opens a saved session in an off-screen studio window,
// waits until every result (maps, model quality, timings, sweeps) is in, and exports the charts
// of the chosen views exactly as File > Export All Views does, provenance sidecars included.
#pragma once

#include "cli.h"

namespace kvs::studio {

int runRenderCommand(const cli::Args& args, cli::Streams io);

} // namespace kvs::studio
