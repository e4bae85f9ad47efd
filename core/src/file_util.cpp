// SPDX-License-Identifier: MIT
// Whole-file reads with limits; the JSON nesting check.
#include "kvs/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kvs {
namespace {

[[noreturn]] void ioError(const std::filesystem::path& path, const std::string& what, int error) {
    throw Error(ErrorCode::Io, path.string() + ": " + what + " (" + std::strerror(error) + ")");
}

// Why a file of this mode cannot be read as a document, or nullptr for a regular file.
const char* notRegular(mode_t mode) {
    if (S_ISREG(mode))
        return nullptr;
    if (S_ISDIR(mode))
        return "is a directory, not a file";
    if (S_ISFIFO(mode))
        return "is a fifo (named pipe), not a regular file";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "is a device, not a regular file";
    if (S_ISSOCK(mode))
        return "is a socket, not a regular file";
    return "is not a regular file";
}

std::string mib(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return text;
}

} // namespace

int openRegularFile(const std::filesystem::path& path, std::uint64_t* size) {
    // The type first (stat does not open): open() itself waits for a writer on a fifo.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        ioError(path, "cannot open", errno);
    if (const char* why = notRegular(st.st_mode))
        throw Error(ErrorCode::Io, path.string() + ": " + why);
    // O_NONBLOCK: should the path turn into a fifo between stat and open, open returns at once.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        ioError(path, "cannot open", errno);
    if (::fstat(fd, &st) != 0 || notRegular(st.st_mode)) {
        const int saved = errno;
        ::close(fd);
        if (const char* why = notRegular(st.st_mode))
            throw Error(ErrorCode::Io, path.string() + ": " + why);
        ioError(path, "cannot stat", saved);
    }
    if (size)
        *size = static_cast<std::uint64_t>(st.st_size);
    return fd;
}

std::string readFile(const std::filesystem::path& path, std::size_t maxBytes) {
    std::uint64_t size = 0;
    const int fd = openRegularFile(path, &size);
    const auto tooLarge = [&](const std::string& bytes) {
        ::close(fd);
        throw Error(ErrorCode::Format, path.string() + ": the file is " + bytes +
                                           ", more than the " + mib(maxBytes) +
                                           " read whole for it");
    };
    if (size > maxBytes)
        tooLarge(mib(size));
    std::string text;
    text.reserve(static_cast<std::size_t>(size));
    // Until end of file, not st_size: files in /proc and /sys report 0 and still have content.
    char buffer[1 << 16];
    for (;;) {
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            const int saved = errno;
            ::close(fd);
            ioError(path, "read failed", saved);
        }
        if (n == 0)
            break;
        if (text.size() + static_cast<std::size_t>(n) > maxBytes)
            tooLarge("larger");
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

void checkJsonNesting(std::string_view text, const std::string& source, int maxDepth) {
    int depth = 0;
    bool inString = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (inString) {
            if (c == '\\')
                ++i; // the escaped character cannot end the string
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > maxDepth)
                throw Error(ErrorCode::Format, source + ": JSON nested deeper than " +
                                                   std::to_string(maxDepth) + " levels (at byte " +
                                                   std::to_string(i) + ")");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

} // namespace kvs
