// SPDX-License-Identifier: MIT
// kvstudio-cli's main(): forwards to runCli so tests drive the same code.
#include "cli.h"
#ifdef KVS_WITH_STUDIO
#include "render_command.h"
#include "report_command.h"
#endif

#include <iostream>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
#ifdef KVS_WITH_STUDIO
    kvs::cli::setRenderHandler(&kvs::studio::runRenderCommand);
    kvs::cli::setReportHandler(&kvs::studio::runReportCommand);
#endif
    return kvs::cli::runCli(args, {std::cout, std::cerr});
}
