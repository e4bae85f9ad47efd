// SPDX-License-Identifier: MIT
// Whole-file reads with limits, and the nesting limit of every JSON document the studio reads.
// Writes go through kvs/output_writer.h.
#pragma once

#include "kvs/status.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace kvs {

// What may be read whole. A file larger than its limit is refused before it is read, so that a
// mistaken path (a 20 GB checkpoint given as a prompt, /dev/zero behind a symbolic link) cannot
// take the machine's memory. The limits are far above the real files: Hugging Face configs are a
// few kB, the largest tokenizer.json files (Gemma's, multilingual vocabularies) tens of MB.
inline constexpr std::size_t kMaxConfigBytes = std::size_t(16) << 20;     // config.json & co.
inline constexpr std::size_t kMaxTokenizerBytes = std::size_t(256) << 20; // tokenizer files
inline constexpr std::size_t kMaxPromptBytes = std::size_t(64) << 20;     // prompt files
inline constexpr std::size_t kMaxReadBytes = std::size_t(256) << 20;      // anything else
// Deeper JSON is refused before it is parsed: the readers of nested tokenizer components
// (Sequence of Sequence ...) recurse, and no real file nests more than about ten levels.
inline constexpr int kMaxJsonDepth = 64;

// Opens `path` for reading only when it is a regular file; a folder, fifo, device or socket is
// refused by its type (a fifo is never opened in a way that waits for a writer). Returns the
// descriptor (the caller closes it) and its size. Throws Error(Io) naming the path.
int openRegularFile(const std::filesystem::path& path, std::uint64_t* size);

// Reads a whole regular file of at most `maxBytes`; throws kvs::Error naming the path: Io when it
// is missing, not a regular file or unreadable, Format when it is larger than `maxBytes`.
std::string readFile(const std::filesystem::path& path, std::size_t maxBytes = kMaxReadBytes);

// Throws Error(Format) "SOURCE: JSON nested deeper than MAX levels (at byte N)" when arrays and
// objects in `text` nest deeper than `maxDepth`. One pass over the bytes, strings skipped.
void checkJsonNesting(std::string_view text, const std::string& source,
                      int maxDepth = kMaxJsonDepth);

} // namespace kvs
