// SPDX-License-Identifier: MIT
// Helpers shared by the libFuzzer targets: a scratch folder for parsers that read paths, and the
// rule that a parser may refuse any input but only with a clean kvs::Error.
#pragma once

#include "kvs/status.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

namespace kvs::fuzz {

// A per-process folder under $TMPDIR (or /tmp), removed at exit; parallel fuzzers (-jobs, -fork)
// each get their own.
inline const std::filesystem::path& scratchDir() {
    static const std::filesystem::path dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kvs-fuzz-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) {
            std::perror("kvs fuzz: mkdtemp");
            std::abort();
        }
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratchDir(), ec);
        });
        return std::filesystem::path(pattern);
    }();
    return dir;
}

// Writes `bytes` to `name` in the scratch folder (replacing it) and returns its path.
inline std::filesystem::path writeScratch(const std::string& name, std::string_view bytes) {
    const auto path = scratchDir() / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
        std::perror("kvs fuzz: cannot write the scratch file");
        std::abort();
    }
    return path;
}

inline std::string_view asText(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// A refusal is fine; ErrorCode::Internal is not: it means an exception of the library (a JSON
// type error, an out-of-range index) escaped the parser's own checks, so the user would read a
// message such as "vector::_M_range_check" instead of what is wrong with the file.
template <class T> void checkResult(const Result<T>& result) {
    if (!result.ok() && result.error().code() == ErrorCode::Internal) {
        std::fprintf(stderr, "kvs fuzz: internal error escaped the parser: %s\n",
                     result.message().c_str());
        std::abort();
    }
}

} // namespace kvs::fuzz
