// SPDX-License-Identifier: MIT
// The output writer: ownership check (marks in safetensors/JSON, sidecars for exports), then an
// atomic write (temporary + fsync + rename in the same folder).
#include "kvs/output_writer.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace kvs {
namespace {

namespace fs = std::filesystem;

// Larger JSON files are not something the studio writes (its largest, tokenizer.json, is kB).
constexpr std::uintmax_t kMaxJsonBytes = 64u << 20;
// The safetensors reference reader's own limit on the header.
constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

[[noreturn]] void ioError(const fs::path& path, const std::string& what, int err) {
    throw Error(ErrorCode::Io, path.string() + ": " + what + " (" + std::strerror(err) + ")");
}

std::optional<std::string> readAtMost(const fs::path& path, std::uintmax_t limit) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec || size > limit)
        return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::string text(static_cast<std::size_t>(size), '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    if (static_cast<std::uintmax_t>(in.gcount()) != size)
        return std::nullopt;
    return text;
}

std::optional<nlohmann::json> parseJsonObject(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
        return std::nullopt;
    return j;
}

// The safetensors `__metadata__` of `path`, or nothing when it is not a safetensors file.
std::optional<nlohmann::json> safetensorsMetadata(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char lengthBytes[8];
    if (!in.read(reinterpret_cast<char*>(lengthBytes), 8))
        return std::nullopt;
    std::uint64_t length = 0;
    for (int i = 7; i >= 0; --i)
        length = (length << 8) | lengthBytes[i];
    // A header longer than the file is not one: checked before allocating, so that eight bytes
    // cannot make the check allocate (and zero) up to kMaxHeaderBytes (found by fuzz_output_check).
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec || length < 2 || length > kMaxHeaderBytes || size < 8 || length > size - 8)
        return std::nullopt;
    std::string header(static_cast<std::size_t>(length), '\0');
    if (!in.read(header.data(), static_cast<std::streamsize>(length)))
        return std::nullopt;
    const auto j = parseJsonObject(header);
    if (!j)
        return std::nullopt;
    const auto it = j->find("__metadata__");
    return it != j->end() && it->is_object() ? *it : nlohmann::json::object();
}

std::string stringAt(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The kind the studio recorded in a JSON object or safetensors metadata ("" when none).
std::string markedKind(const nlohmann::json& j, bool safetensors) {
    if (std::string kind = stringAt(j, kOwnerKey); !kind.empty())
        return kind;
    // Marks of files written before the writer existed.
    if (safetensors) {
        const std::string format = stringAt(j, "format");
        if (format == "kvstudio-capture")
            return "capture";
        if (format == "kvstudio-train")
            return "train-checkpoint";
    } else if (j.contains("kvstudio_session")) {
        return "session";
    }
    return {};
}

// An export in a format without room for a mark is ours iff its sidecar (ours) names it with the
// size and hash it still has.
bool vouchedBySidecar(const fs::path& path) {
    fs::path sidecarPath = path;
    sidecarPath += ".json";
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(sidecarPath, ec)))
        return false;
    const auto text = readAtMost(sidecarPath, kMaxJsonBytes);
    const auto sidecar = text ? parseJsonObject(*text) : std::nullopt;
    if (!sidecar || stringAt(*sidecar, kOwnerKey) != kSidecarKind ||
        stringAt(*sidecar, "file") != path.filename().string())
        return false;
    const auto bytes = sidecar->find("bytes");
    if (bytes == sidecar->end() || !bytes->is_number_unsigned())
        return false;
    const auto content = readAtMost(path, bytes->get<std::uintmax_t>());
    if (!content || content->size() != bytes->get<std::uintmax_t>())
        return false;
    const auto hash = fnv1a64Bytes(std::as_bytes(std::span(content->data(), content->size())));
    return stringAt(*sidecar, "fnv1a64") == hex64(hash);
}

// The kind of the studio file at `path` (a regular file), or "" when the studio did not write it.
std::string ownedKind(const fs::path& path) {
    if (auto meta = safetensorsMetadata(path))
        return markedKind(*meta, true);
    std::ifstream in(path, std::ios::binary);
    char first = 0;
    while (in.get(first) && std::isspace(static_cast<unsigned char>(first)))
        ;
    if (in && first == '{') {
        const auto text = readAtMost(path, kMaxJsonBytes);
        if (const auto j = text ? parseJsonObject(*text) : std::nullopt)
            return markedKind(*j, false);
    }
    return vouchedBySidecar(path) ? "export" : std::string();
}

std::string article(std::string_view kind) {
    return (std::string_view("aeiou").find(kind.empty() ? 'x' : kind.front()) !=
                    std::string_view::npos
                ? "an "
                : "a ") +
           std::string(kind);
}

// Writes all of `data` to `fd` (retrying interrupted and, for a non-blocking fifo, would-block
// writes): 0, or the errno of the write that failed.
int writeFully(int fd, std::span<const std::byte> data) {
    std::size_t written = 0;
    while (written < data.size()) {
        const auto n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno;
        }
        written += static_cast<std::size_t>(n);
    }
    return 0;
}

// Writes straight into a device or fifo the user named with --force (/dev/null, /dev/stdout).
void writeInto(const fs::path& path, const OutputProducer& produce) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        ioError(path, "cannot open for writing", errno);
    try {
        produce([&](std::span<const std::byte> data) {
            if (const int error = writeFully(fd, data))
                ioError(path, "write failed", error);
        });
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
}

// Writes an unnamed file in `folder` (O_TMPFILE) and gives it a name only once it is complete and
// on disk: a process killed while writing — by Ctrl+C, kill, or the out-of-memory killer — leaves
// no temporary behind, which a named temporary cannot promise for SIGKILL. False, with nothing
// written, where the file system or the kernel has no unnamed files (or /proc is not mounted to
// name them); the caller then writes a named temporary.
bool writeUnnamedThenRename(const fs::path& path, const fs::path& folder,
                            const OutputProducer& produce) {
    if (::access("/proc/self/fd", X_OK) != 0)
        return false;
    const int fd = ::open(folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT)
            return false; // no O_TMPFILE here; a missing folder fails again, with its message
        ioError(path, "cannot create a temporary file beside it", errno);
    }
    bool open = true; // closing an unnamed file frees it: nothing to remove on failure
    const auto fail = [&](const std::string& what, int error) {
        if (open)
            ::close(fd);
        open = false;
        ioError(path, what, error);
    };
    try {
        produce([&](std::span<const std::byte> data) {
            if (const int error = writeFully(fd, data))
                fail("write failed", error);
        });
    } catch (...) {
        if (open)
            ::close(fd);
        throw;
    }
    if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0)
        fail("flushing to disk failed", errno);
    // A hidden name for the moment between link and rename (linkat cannot replace a file).
    const std::string procPath = "/proc/self/fd/" + std::to_string(fd);
    fs::path tmp;
    for (unsigned attempt = 0;; ++attempt) {
        tmp = folder / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                        "-" + std::to_string(attempt));
        if (::linkat(AT_FDCWD, procPath.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) == 0)
            break;
        if (errno != EEXIST || attempt > 100)
            fail("cannot name the temporary file beside it", errno);
    }
    open = false;
    if (::close(fd) != 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        ioError(path, "closing failed", saved);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        ioError(path, "cannot replace the file", saved);
    }
    return true;
}

void writeAtomically(const fs::path& path, const OutputProducer& produce) {
    const auto folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
    if (writeUnnamedThenRename(path, folder, produce))
        return;
    // Built with append(): GCC 12 warns falsely (-Wrestrict) on "." + std::string here.
    std::string tmpName(".");
    tmpName.append(path.filename().string()).append(".tmp-XXXXXX");
    std::string tmpl = (folder / tmpName).string();
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0)
        ioError(path, "cannot create a temporary file beside it", errno);
    const fs::path tmp = tmpl;
    bool open = true;
    auto fail = [&](const std::string& what) {
        const int saved = errno;
        if (open)
            ::close(fd);
        open = false;
        ::unlink(tmp.c_str());
        ioError(path, what, saved);
    };
    try {
        produce([&](std::span<const std::byte> data) {
            if (const int error = writeFully(fd, data)) {
                errno = error;
                fail("write failed");
            }
        });
    } catch (...) { // the producer failed, or a write did (then fail() has cleaned up)
        if (open)
            ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0)
        fail("flushing to disk failed");
    open = false;
    if (::close(fd) != 0)
        fail("closing failed");
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        fail("cannot replace the file");
}

} // namespace

std::optional<std::uint64_t> freeDiskBytes(const fs::path& path) {
    std::error_code ec;
    fs::path probe = path;
    // The nearest existing folder: the output's own folder may not exist yet.
    while (!probe.empty() && !fs::exists(probe, ec))
        probe = probe.has_parent_path() && probe.parent_path() != probe ? probe.parent_path()
                                                                        : fs::path();
    if (probe.empty())
        probe = ".";
    struct statvfs info {};
    if (::statvfs(probe.c_str(), &info) != 0)
        return std::nullopt;
    return static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
}

void requireDiskSpace(const fs::path& path, std::uint64_t bytes, const std::string& hint) {
    const auto available = freeDiskBytes(path);
    if (!available)
        return;
    const std::uint64_t needed = bytes + bytes / 100 + (std::uint64_t(16) << 20);
    if (needed <= *available)
        return;
    const auto mb = [](std::uint64_t b) { return std::to_string((b + (1u << 19)) >> 20) + " MB"; };
    const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
    throw Error(ErrorCode::Io, path.string() + ": needs " + mb(bytes) + " but the disk holding " +
                                   folder.string() + " has " + mb(*available) + " free" +
                                   (hint.empty() ? "" : "; " + hint));
}

std::uint64_t fnv1a64Bytes(std::span<const std::byte> data) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const std::byte b : data) {
        h ^= static_cast<std::uint64_t>(b);
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex64(std::uint64_t value) {
    static const char* digits = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i, value >>= 4)
        s[static_cast<std::size_t>(i)] = digits[value & 0xF];
    return s;
}

OutputCheck checkOutput(const fs::path& path, std::string_view kind) {
    std::error_code ec;
    const auto status = fs::symlink_status(path, ec);
    if (ec || status.type() == fs::file_type::not_found)
        return {true, true, {}};
    switch (status.type()) {
    case fs::file_type::directory:
        return {false, false, "it is a folder"};
    case fs::file_type::symlink:
        return {false, true, "it is a symbolic link"};
    case fs::file_type::regular:
        break;
    case fs::file_type::character:
    case fs::file_type::fifo:
        return {false, true, "it is a device or fifo, not a regular file"};
    default: // a block device or a socket: nothing a forced write should go into
        return {false, false, "it is a block device or socket, not a regular file"};
    }
    const std::string owned = ownedKind(path);
    if (owned.empty())
        return {false, true, "it was not written by KV Studio"};
    if (owned != kind)
        return {false, true,
                "it is " + article(owned) + " written by KV Studio, not " + article(kind)};
    return {true, true, {}};
}

void requireWritable(const fs::path& path, std::string_view kind, Overwrite overwrite) {
    const OutputCheck check = checkOutput(path, kind);
    if (check.replaceable || (overwrite == Overwrite::Force && check.forceable))
        return;
    throw Error(ErrorCode::Exists, "refusing to overwrite " + path.string() + ": " + check.reason +
                                       (check.forceable ? " (use --force to replace it)" : ""));
}

void writeOutputStreamed(const fs::path& path, std::string_view kind, Overwrite overwrite,
                         const OutputProducer& produce) {
    requireWritable(path, kind, overwrite);
    std::error_code ec;
    const auto type = fs::symlink_status(path, ec).type();
    if (type == fs::file_type::character || type == fs::file_type::fifo)
        writeInto(path, produce); // forced: nothing to rename over
    else
        writeAtomically(path, produce);
}

void writeOutput(const fs::path& path, std::span<const std::byte> data, std::string_view kind,
                 Overwrite overwrite) {
    writeOutputStreamed(path, kind, overwrite, [data](const OutputSink& sink) { sink(data); });
}

void writeOutput(const fs::path& path, std::string_view text, std::string_view kind,
                 Overwrite overwrite) {
    writeOutput(path, std::as_bytes(std::span<const char>(text.data(), text.size())), kind,
                overwrite);
}

} // namespace kvs
