// SPDX-License-Identifier: MIT
// kvstudio-cli's main(): forwards to runCli so tests drive the same code.
#include "cli.h"

#include <iostream>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    return kvs::cli::runCli(args, {std::cout, std::cerr});
}
