// SPDX-License-Identifier: MIT
// Small file helpers: atomic writes (temp file in the same folder + rename) and whole-file reads.
#pragma once

#include "kvs/status.h"

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace kvs {

// Writes data to path atomically: nothing the user had at `path` is lost if writing fails midway.
// Throws kvs::Error(Io) naming the path on failure.
void writeFileAtomically(const std::filesystem::path& path, std::span<const std::byte> data);
void writeFileAtomically(const std::filesystem::path& path, std::string_view text);

// Reads a whole file; throws kvs::Error(Io) naming the path.
std::string readFile(const std::filesystem::path& path);

} // namespace kvs
