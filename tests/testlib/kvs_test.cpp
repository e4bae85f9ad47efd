// SPDX-License-Identifier: MIT
// Shared helpers for the Qt Test suites.
#include "kvs_test.h"

#include <fstream>
#include <random>
#include <sstream>

namespace kvs::test {

TempDir::TempDir() {
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
        auto candidate = base / ("kvs-test-" + std::to_string(rd()));
        if (std::filesystem::create_directory(candidate)) {
            m_path = candidate;
            return;
        }
    }
    throw std::runtime_error("could not create a temporary folder");
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
}

std::filesystem::path writeModel(const TempDir& dir, const std::string& name,
                                 const SyntheticModelSpec& spec) {
    auto folder = dir / name;
    auto written = writeSyntheticModel(spec, folder);
    if (!written.ok())
        qFatal("writing synthetic model %s failed: %s", name.c_str(), written.message().c_str());
    return folder;
}

std::filesystem::path sourceTestsDir() {
    return std::filesystem::path(KVS_SOURCE_DIR) / "tests";
}

void writeBytes(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string readBytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

CompressedHead compressWith(const std::string& text, const HeadInput& head) {
    const SchemeSetting s = SchemeSetting::parse(text).valueOrThrow();
    const Scheme* scheme = findScheme(s.id);
    if (!scheme)
        throw Error(ErrorCode::Internal, "no scheme " + s.id);
    return scheme->compress(head, s.resolved());
}

} // namespace kvs::test
