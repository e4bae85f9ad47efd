// SPDX-License-Identifier: MIT
// The one way KV Studio writes an output file: atomically, and never over a file it did not write.
//
// Every file the studio writes says so and says what it is (its "kind": "capture", "session", ...):
//  - safetensors: the `__metadata__` key "kvstudio_file" = kind;
//  - JSON objects: the top-level key "kvstudio_file" = kind;
//  - formats without room for a mark (PNG, SVG, PDF, CSV exports): the JSON sidecar `FILE.json`
//    written beside them (kind "export-sidecar") names the file with its size and FNV-1a 64 hash;
//    the export is ours iff that sidecar says so and the bytes still match.
// Files of earlier versions count as ours by their old marks (captures' format "kvstudio-capture",
// checkpoints' "kvstudio-train", sessions' "kvstudio_session").
//
// An existing path is replaced only when it is a regular file the studio wrote as the same kind.
// Anything else — another program's file, a studio file of another kind (a capture over the
// model's weights), a symbolic link, a device, fifo or socket — is refused with ErrorCode::Exists
// unless the caller forces it. Forced, a symbolic link is replaced by the new file (its target is
// untouched) and a device or fifo is written into directly (there is nothing to rename over). A
// folder is never replaced.
#pragma once

#include "kvs/status.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kvs {

// Whether an existing file that the studio did not write (as this kind) may be replaced.
enum class Overwrite {
    OursOnly, // the default: refuse with ErrorCode::Exists
    Force,    // --force on the command line, "Replace" in the window
};

// The mark's key in safetensors metadata and in JSON objects.
inline constexpr const char* kOwnerKey = "kvstudio_file";
// The kind of the sidecars that vouch for exports in formats without room for the mark.
inline constexpr const char* kSidecarKind = "export-sidecar";

// What an existing path is, as far as replacing it goes.
struct OutputCheck {
    bool replaceable = false; // absent, or ours of the asked kind
    bool forceable = false;   // refused, but --force may replace it (false for folders)
    std::string reason;       // why not: "it was not written by KV Studio"
};

// Looks at `path` (without following a final symbolic link) for a file of `kind`.
OutputCheck checkOutput(const std::filesystem::path& path, std::string_view kind);

// Throws Error(Exists) "refusing to overwrite PATH: REASON (use --force to replace it)" unless
// `path` may be written as `kind` under `overwrite`.
void requireWritable(const std::filesystem::path& path, std::string_view kind, Overwrite overwrite);

// Writes `data` to `path`: checks it as requireWritable does, then writes a temporary file in the
// same folder, fsyncs it and renames it over `path`; on any failure the temporary is removed and
// what was at `path` is untouched. The caller puts the mark for `kind` into `data` (or writes the
// sidecar after it). Throws kvs::Error naming the path: Exists when refused, Io when writing fails.
void writeOutput(const std::filesystem::path& path, std::span<const std::byte> data,
                 std::string_view kind, Overwrite overwrite);
void writeOutput(const std::filesystem::path& path, std::string_view text, std::string_view kind,
                 Overwrite overwrite);
// As writeOutput, for files too large to hold whole (a model's weights): `produce` hands the
// consecutive pieces of the file to the sink it is given. Whatever it throws leaves `path`
// untouched and removes the temporary.
using OutputSink = std::function<void(std::span<const std::byte>)>;
using OutputProducer = std::function<void(const OutputSink&)>;
void writeOutputStreamed(const std::filesystem::path& path, std::string_view kind,
                         Overwrite overwrite, const OutputProducer& produce);

// Bytes free to an unprivileged writer on the file system that holds `path` (its folder when it
// does not exist yet); nullopt when that cannot be told (statvfs failed).
std::optional<std::uint64_t> freeDiskBytes(const std::filesystem::path& path);
// Throws Error(Io) "PATH: needs N MB but the disk holding FOLDER has M MB free; HINT" when
// `bytes` (plus a 1% and 16 MiB margin) do not fit: a large output is refused before any of it is
// written, not abandoned when the disk fills up (that case is still cleaned up: the write is
// atomic). Silent when the free space cannot be told.
void requireDiskSpace(const std::filesystem::path& path, std::uint64_t bytes,
                      const std::string& hint);

// The hash sidecars record ("fnv1a64": 16 lowercase hex digits).
std::uint64_t fnv1a64Bytes(std::span<const std::byte> data);
std::string hex64(std::uint64_t value);

} // namespace kvs
