// SPDX-License-Identifier: MIT
// Atomic file writes (temp file + fsync + rename in the same folder) and whole-file reads.
#include "kvs/file_util.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace kvs {
namespace {

[[noreturn]] void ioError(const std::filesystem::path& path, const std::string& what) {
    throw Error(ErrorCode::Io, path.string() + ": " + what + " (" + std::strerror(errno) + ")");
}

} // namespace

void writeFileAtomically(const std::filesystem::path& path, std::span<const std::byte> data) {
    const auto folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    // Built with append(): GCC 12 warns falsely (-Wrestrict) on "." + std::string here.
    std::string tmpName(".");
    tmpName.append(path.filename().string()).append(".tmp-XXXXXX");
    std::string tmpl = (folder / tmpName).string();
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0)
        ioError(path, "cannot create a temporary file beside it");
    const std::filesystem::path tmp = tmpl;
    auto fail = [&](const std::string& what) {
        const int saved = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        errno = saved;
        ioError(path, what);
    };
    std::size_t written = 0;
    while (written < data.size()) {
        const auto n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("write failed");
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0)
        fail("flushing to disk failed");
    if (::close(fd) != 0) {
        ::unlink(tmp.c_str());
        ioError(path, "closing failed");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        ioError(path, "cannot replace the file");
    }
}

void writeFileAtomically(const std::filesystem::path& path, std::string_view text) {
    writeFileAtomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

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
