// SPDX-License-Identifier: MIT
// What the CLI suites share: one kvstudio-cli command run through its library entry point, with
// its exit code and what it printed on each stream.
#pragma once

#include "cli.h"

#include <sstream>
#include <string>
#include <vector>

namespace kvs::test {

struct CliRun {
    int code = -1;
    std::string out;
    std::string err;
};

inline CliRun run(const std::vector<std::string>& argv) {
    std::ostringstream out, err;
    CliRun r;
    r.code = kvs::cli::runCli(argv, {out, err});
    r.out = out.str();
    r.err = err.str();
    return r;
}

} // namespace kvs::test
