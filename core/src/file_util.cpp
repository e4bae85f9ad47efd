// SPDX-License-Identifier: MIT
// Whole-file reads.
#include "kvs/file_util.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kvs {
namespace {

[[noreturn]] void ioError(const std::filesystem::path& path, const std::string& what) {
    throw Error(ErrorCode::Io, path.string() + ": " + what + " (" + std::strerror(errno) + ")");
}

} // namespace

std::string readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        ioError(path, "cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        ioError(path, "read failed");
    return ss.str();
}

} // namespace kvs
