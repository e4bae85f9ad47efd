// SPDX-License-Identifier: MIT
// Shared helpers for the Qt Test suites: temporary model folders, error assertions, tolerances.
#pragma once

#include "kvs/scheme.h"
#include "kvs/status.h"
#include "kvs/synthetic_model.h"
#include "kvs/tensor.h"

#include <QTest>
#include <filesystem>
#include <string>

namespace kvs::test {

// A fresh temporary folder removed when the object dies.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }
    std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

private:
    std::filesystem::path m_path;
};

// Writes a synthetic model folder (see kvs/synthetic_model.h) and returns its path; fails the test
// on error.
std::filesystem::path writeModel(const TempDir& dir, const std::string& name,
                                 const SyntheticModelSpec& spec);

// The source tree's tests/ folder (for committed fixtures).
std::filesystem::path sourceTestsDir();

template <class Derived1, class Derived2>
double maxAbsDiff(const Eigen::MatrixBase<Derived1>& a, const Eigen::MatrixBase<Derived2>& b) {
    if (a.rows() != b.rows() || a.cols() != b.cols())
        return std::numeric_limits<double>::infinity();
    return (a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff();
}

// Compresses `head` with the scheme setting `text` ("codec.uniform:bits=4", a chain too); throws
// kvs::Error on a bad setting or a refusal.
CompressedHead compressWith(const std::string& text, const HeadInput& head);

// Writes bytes to a file (no atomicity needed in tests).
void writeBytes(const std::filesystem::path& path, const std::string& bytes);
std::string readBytes(const std::filesystem::path& path);

} // namespace kvs::test

// Asserts that a Result failed and that its message contains every given fragment.
#define KVS_VERIFY_ERROR(result, ...)                                                              \
    do {                                                                                           \
        const auto& kvs_r_ = (result);                                                             \
        QVERIFY2(!kvs_r_.ok(), "expected an error, got success");                                  \
        const std::string kvs_msg_ = kvs_r_.message();                                             \
        for (const char* kvs_frag_ : {__VA_ARGS__})                                                \
            QVERIFY2(kvs_msg_.find(kvs_frag_) != std::string::npos,                                \
                     qPrintable(QString("message \"%1\" lacks \"%2\"")                             \
                                    .arg(QString::fromStdString(kvs_msg_), kvs_frag_)));           \
    } while (0)

// Asserts that a Result succeeded, printing its error otherwise.
#define KVS_VERIFY_OK(result)                                                                      \
    do {                                                                                           \
        const auto& kvs_r_ = (result);                                                             \
        QVERIFY2(kvs_r_.ok(), qPrintable(QString::fromStdString(kvs_r_.message())));               \
    } while (0)

// kvs::toString(enum) returns std::string and, found by argument-dependent lookup, hides
// QTest::toString inside QCOMPARE; compare such enums by their names instead.
#define KVS_COMPARE_ENUM(actual, expected)                                                         \
    QCOMPARE(QString::fromStdString(kvs::toString(actual)),                                        \
             QString::fromStdString(kvs::toString(expected)))

// Asserts that `expr` throws kvs::Error with `expectedCode` and a message containing `fragment`.
#define KVS_VERIFY_THROWS(expr, expectedCode, fragment)                                            \
    do {                                                                                           \
        const auto kvs_result_ = kvs::catchErrors([&] { return (expr); });                         \
        KVS_VERIFY_ERROR(kvs_result_, fragment);                                                   \
        KVS_COMPARE_ENUM(kvs_result_.error().code(), expectedCode);                                \
    } while (0)
