// SPDX-License-Identifier: MIT
// Whole-file reads. Writes go through kvs/output_writer.h.
#pragma once

#include "kvs/status.h"

#include <filesystem>
#include <string>

namespace kvs {

// Reads a whole file; throws kvs::Error(Io) naming the path.
std::string readFile(const std::filesystem::path& path);

} // namespace kvs
