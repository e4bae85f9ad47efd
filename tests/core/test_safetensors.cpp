// SPDX-License-Identifier: MIT
// Safetensors reading (strict validation), writing (reference layout) and sharded checkpoints.
#include "kvs/file_util.h"
#include "kvs/safetensors.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QTest>
#include <cstring>
#include <limits>
#include <vector>

using namespace kvs;
using kvs::test::readBytes;
using kvs::test::TempDir;
using kvs::test::writeBytes;

Q_DECLARE_METATYPE(std::string)

namespace {

// The 8-byte little-endian length prefix.
std::string le64(std::uint64_t v) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i)
        out[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
    return out;
}

// A whole file: length prefix, header text as given, then `dataBytes` bytes of data.
std::string stFile(const std::string& header, std::size_t dataBytes = 0) {
    return le64(header.size()) + header + std::string(dataBytes, '\x11');
}

std::string floatBytes(const std::vector<float>& values) {
    std::string out(values.size() * sizeof(float), '\0');
    std::memcpy(out.data(), values.data(), out.size());
    return out;
}

std::vector<float> toFloats(DType dtype, std::span<const std::byte> bytes) {
    std::vector<float> out(bytes.size() / dtypeSize(dtype));
    convertToFloat(dtype, bytes.data(), out.size(), out.data());
    return out;
}

template <class T> std::span<const std::byte> rawBytes(const std::vector<T>& v) {
    return std::as_bytes(std::span<const T>(v));
}

// Runs fn and captures the kvs::Error it throws (if any) as a Result.
template <class Fn> Result<bool> attempt(Fn fn) {
    return catchErrors([&]() {
        fn();
        return true;
    });
}

std::string tensorJson(const std::string& dtype, const std::string& shape, std::size_t begin,
                       std::size_t end) {
    return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(begin) + "," + std::to_string(end) + "]}";
}

} // namespace

class TestSafetensors : public QObject {
    Q_OBJECT

private slots:
    void openRejects_data();
    void openRejects();
    void openMissingFileOrFolder();
    void handcraftedHeader();
    void paddedHeaderAndScalar();
    void emptyTensorsAndGapsAccepted();
    void unalignedTensorsAndEmptyHeader();
    void lookupOfAbsentTensor();
    void mappingSurvivesMoveAndReplacement();

    void writerRoundTrip();
    void generatedTensorsStream();
    void syntheticModelsAreReproducible();
    void writerMatchesReferenceBytes();
    void writerReplacesExistingFile();
    void writerRejectsBadInput();
    void writerReportsUnwritablePath();

    void checkpointSingleFile();
    void checkpointThreeShards();
    void checkpointRejects_data();
    void checkpointRejects();
};

// ---------------------------------------------------------------------------------------------
// Reading: every malformed file gives one Format error starting with "<path>: ".

void TestSafetensors::openRejects_data() {
    QTest::addColumn<std::string>("bytes");
    QTest::addColumn<QStringList>("fragments");

    const std::string a = tensorJson("F32", "[2]", 0, 8);
    auto row = [](const char* name, const std::string& bytes, QStringList fragments) {
        QTest::newRow(name) << bytes << fragments;
    };

    row("empty file", "", {"truncated", "0 bytes"});
    row("5 bytes", std::string("\x02\0\0\0\0", 5), {"truncated", "5 bytes"});
    row("header past end", le64(100) + "{}",
        {"header length 100", "past the end of the file", "10 bytes"});
    row("header length 0", le64(0) + std::string(16, ' '), {"header length is 0"});
    row("header length absurd", le64(200'000'000) + "{}", {"header length 200000000", "absurd"});
    row("header length 2^64-1", le64(std::numeric_limits<std::uint64_t>::max()) + "{}",
        {"header length 18446744073709551615", "absurd"});
    row("not json", stFile("{\"a\":", 0),
        {"header is not valid JSON", "json.exception.parse_error"});
    row("trailing garbage", stFile("{}x", 0), {"not valid JSON", "json.exception.parse_error"});
    row("not an object", stFile("[1,2]", 0), {"header is not a JSON object", "array"});
    row("entry not object", stFile("{\"w\":5}", 0), {"tensor 'w'", "not a JSON object", "number"});
    row("missing dtype", stFile("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
        {"tensor 'w'", "missing \"dtype\""});
    row("missing shape", stFile("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8),
        {"tensor 'w'", "missing \"shape\""});
    row("missing data_offsets", stFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8),
        {"tensor 'w'", "missing \"data_offsets\""});
    row("dtype not string", stFile("{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
        {"tensor 'w'", "dtype is not a string"});
    row("unknown dtype", stFile("{\"w\":" + tensorJson("F17", "[2]", 0, 8) + "}", 8),
        {"tensor 'w'", "unknown dtype 'F17'"});
    row("lowercase dtype", stFile("{\"w\":" + tensorJson("f32", "[2]", 0, 8) + "}", 8),
        {"tensor 'w'", "unknown dtype 'f32'"});
    row("shape negative", stFile("{\"w\":" + tensorJson("F32", "[-2]", 0, 8) + "}", 8),
        {"tensor 'w'", "shape entry -2 is negative"});
    row("shape fraction", stFile("{\"w\":" + tensorJson("F32", "[1.5]", 0, 8) + "}", 8),
        {"tensor 'w'", "shape entry 1.5 is not an integer"});
    row("shape float 2.0", stFile("{\"w\":" + tensorJson("F32", "[2.0]", 0, 8) + "}", 8),
        {"tensor 'w'", "is not an integer"});
    row("shape string", stFile("{\"w\":" + tensorJson("F32", "[\"2\"]", 0, 8) + "}", 8),
        {"tensor 'w'", "shape entry \"2\" is not an integer"});
    row("shape not array", stFile("{\"w\":" + tensorJson("F32", "2", 0, 8) + "}", 8),
        {"tensor 'w'", "shape is not an array"});
    row("offsets one number",
        stFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8),
        {"tensor 'w'", "data_offsets [8] is not a pair of non-negative integers"});
    row("offsets three numbers",
        stFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8),
        {"tensor 'w'", "not a pair of non-negative integers"});
    row("offsets negative",
        stFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8),
        {"tensor 'w'", "not a pair of non-negative integers"});
    row("offsets float",
        stFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8),
        {"tensor 'w'", "not a pair of non-negative integers"});
    row("offsets object",
        stFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":0}}}", 8),
        {"tensor 'w'", "not a pair of non-negative integers"});
    row("begin after end", stFile("{\"w\":" + tensorJson("F32", "[2]", 8, 4) + "}", 8),
        {"tensor 'w'", "begin 8 is after end 4"});
    row("past data end", stFile("{\"w\":" + tensorJson("F32", "[4]", 0, 16) + "}", 8),
        {"tensor 'w'", "[0,16]", "past the end of the data buffer (8 bytes)"});
    row("size mismatch", stFile("{\"w\":" + tensorJson("F32", "[3]", 0, 8) + "}", 8),
        {"tensor 'w'", "span 8 bytes", "shape [3] of F32 needs 12"});
    row("size mismatch F16", stFile("{\"w\":" + tensorJson("F16", "[2, 3]", 0, 8) + "}", 16),
        {"tensor 'w'", "shape [2, 3] of F16 needs 12"});
    row("shape overflows",
        stFile("{\"w\":" + tensorJson("F32", "[4294967296,4294967296,16]", 0, 8) + "}", 8),
        {"tensor 'w'", "needs more than 2^64"});
    row("overlap",
        stFile("{\"a\":" + tensorJson("F32", "[2]", 0, 8) +
                   ",\"b\":" + tensorJson("F32", "[2]", 4, 12) + "}",
               12),
        {"'a' [0, 8)", "'b' [4, 12)", "overlap"});
    row("overlap contained",
        stFile("{\"big\":" + tensorJson("F32", "[4]", 0, 16) + ",\"in\":" +
                   tensorJson("U8", "[1]", 9, 10) + ",\"z\":" + tensorJson("U8", "[1]", 3, 4) + "}",
               16),
        {"'big'", "'z'", "overlap"});
    row("overlap identical",
        stFile("{\"x\":" + tensorJson("F32", "[2]", 0, 8) +
                   ",\"y\":" + tensorJson("F32", "[2]", 0, 8) + "}",
               8),
        {"'x'", "'y'", "overlap"});
    row("metadata not object", stFile("{\"__metadata__\":\"pt\"}", 0),
        {"__metadata__ is not a JSON object", "string"});
    row("metadata value not string", stFile("{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0),
        {"__metadata__ value of 'n' is not a string", "number"});
    row("duplicate tensor", stFile("{\"a\":" + a + ",\"a\":" + a + "}", 8),
        {"duplicate tensor name 'a'"});
    row("duplicate key in entry",
        stFile("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8),
        {"duplicate key 'dtype'"});
}

void TestSafetensors::openRejects() {
    QFETCH(std::string, bytes);
    QFETCH(QStringList, fragments);
    TempDir dir;
    const auto path = dir / "bad.safetensors";
    writeBytes(path, bytes);
    const auto result = SafetensorsFile::open(path);
    QVERIFY2(!result.ok(), "expected an error, got success");
    const std::string msg = result.message();
    QVERIFY2(msg.starts_with(path.string() + ": "), msg.c_str());
    QCOMPARE(result.error().code(), ErrorCode::Format);
    for (const auto& fragment : fragments)
        QVERIFY2(
            msg.find(fragment.toStdString()) != std::string::npos,
            qPrintable(
                QString("message \"%1\" lacks \"%2\"").arg(QString::fromStdString(msg), fragment)));
}

void TestSafetensors::openMissingFileOrFolder() {
    TempDir dir;
    const auto missing = dir / "nothing.safetensors";
    const auto r1 = SafetensorsFile::open(missing);
    // Fragments are named strings: the macro's range-for would outlive temporaries' buffers.
    const std::string missingText = missing.string();
    KVS_VERIFY_ERROR(r1, missingText.c_str(), "cannot open", "No such file");
    QCOMPARE(r1.error().code(), ErrorCode::Io);

    const auto r2 = SafetensorsFile::open(dir.path());
    const std::string dirText = dir.path().string();
    KVS_VERIFY_ERROR(r2, dirText.c_str(), "is a directory");
    QCOMPARE(r2.error().code(), ErrorCode::Io);
}

// A file written byte by byte as the reference format describes it.
void TestSafetensors::handcraftedHeader() {
    TempDir dir;
    const auto path = dir / "a.safetensors";
    const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    QCOMPARE(header.size(), std::size_t(54));
    std::string bytes("\x36\0\0\0\0\0\0\0", 8); // 54, little-endian
    bytes += header;
    bytes += std::string("\x00\x00\xc0\x3f", 4); // 1.5f
    bytes += std::string("\x00\x00\x10\xc0", 4); // -2.25f
    writeBytes(path, bytes);

    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    QCOMPARE(file->names(), std::vector<std::string>{"a"});
    const TensorInfo& info = file->info("a");
    QCOMPARE(info.dtype, DType::F32);
    QCOMPARE(info.shape, std::vector<std::int64_t>{2});
    QCOMPARE(info.numel(), std::int64_t(2));
    QCOMPARE(info.dataBegin, std::size_t(0));
    QCOMPARE(info.nbytes(), std::size_t(8));
    QCOMPARE(toFloats(DType::F32, file->bytes("a")), (std::vector<float>{1.5f, -2.25f}));
    QVERIFY(file->metadata().empty());
    QVERIFY(file->contains("a"));
    QVERIFY(!file->contains("b"));
    QCOMPARE(file->path(), path);
}

void TestSafetensors::paddedHeaderAndScalar() {
    TempDir dir;
    const auto path = dir / "p.safetensors";
    // Header padded with spaces (as the reference writes), a scalar (shape []) and an F16 matrix.
    std::string header = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x y\"},\"s\":" +
                         tensorJson("F32", "[]", 12, 16) +
                         ",\"h\":" + tensorJson("F16", "[2,3]", 0, 12) + "}";
    header.append((8 - header.size() % 8) % 8 + 8, ' ');
    const std::vector<std::uint16_t> half{0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000};
    std::string data(reinterpret_cast<const char*>(half.data()), 12);
    data += floatBytes({42.0f});
    writeBytes(path, le64(header.size()) + header + data);

    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    QCOMPARE(file->names(), (std::vector<std::string>{"h", "s"}));
    QCOMPARE(file->info("s").numel(), std::int64_t(1));
    QVERIFY(file->info("s").shape.empty());
    QCOMPARE(toFloats(DType::F32, file->bytes("s")), std::vector<float>{42.0f});
    QCOMPARE(file->info("h").dtype, DType::F16);
    QCOMPARE(file->info("h").numel(), std::int64_t(6));
    QCOMPARE(toFloats(DType::F16, file->bytes("h")),
             (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f, 5.9604645e-8f, -0.0f}));
    const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "x y"}};
    QCOMPARE(file->metadata(), meta);
}

// Zero-size tensors may sit anywhere (even inside another tensor's range); gaps are allowed.
void TestSafetensors::emptyTensorsAndGapsAccepted() {
    TempDir dir;
    const auto path = dir / "e.safetensors";
    const std::string header = "{\"a\":" + tensorJson("F32", "[1]", 0, 4) +
                               ",\"b\":" + tensorJson("F32", "[2]", 8, 16) +
                               ",\"e0\":" + tensorJson("F32", "[0,3]", 10, 10) +
                               ",\"e1\":" + tensorJson("BF16", "[0]", 2, 2) +
                               ",\"e2\":" + tensorJson("I64", "[4,0]", 20, 20) + "}";
    std::string data = floatBytes({7.0f}) + std::string(4, '\xee') + floatBytes({-1.0f, 3.0f}) +
                       std::string(4, '\xee');
    writeBytes(path, stFile(header) + data);

    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    QCOMPARE(file->names(), (std::vector<std::string>{"a", "b", "e0", "e1", "e2"}));
    QCOMPARE(toFloats(DType::F32, file->bytes("a")), std::vector<float>{7.0f});
    QCOMPARE(toFloats(DType::F32, file->bytes("b")), (std::vector<float>{-1.0f, 3.0f}));
    QCOMPARE(file->info("e0").numel(), std::int64_t(0));
    QCOMPARE(file->info("e0").shape, (std::vector<std::int64_t>{0, 3}));
    QCOMPARE(file->bytes("e0").size(), std::size_t(0));
    QCOMPARE(file->bytes("e2").size(), std::size_t(0));
    QCOMPARE(file->info("e2").dataBegin, std::size_t(20)); // at the very end of the data is fine
}

void TestSafetensors::unalignedTensorsAndEmptyHeader() {
    TempDir dir;
    // An odd-length header and a U8 first leave the F32 at an odd address: bytes() works anyway.
    const auto path = dir / "u.safetensors";
    const std::string header = "{\"b\":" + tensorJson("U8", "[1]", 0, 1) +
                               ",\"f\":" + tensorJson("F32", "[2]", 1, 9) +
                               ",\"i\":" + tensorJson("I32", "[1]", 9, 13) + "}";
    std::string data(1, '\x05');
    data += floatBytes({0.25f, -8.0f});
    const std::int32_t minusSeven = -7;
    data.append(reinterpret_cast<const char*>(&minusSeven), 4);
    writeBytes(path, stFile(header) + data);
    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    QCOMPARE(toFloats(DType::U8, file->bytes("b")), std::vector<float>{5.0f});
    QCOMPARE(toFloats(DType::F32, file->bytes("f")), (std::vector<float>{0.25f, -8.0f}));
    QCOMPARE(toFloats(DType::I32, file->bytes("i")), std::vector<float>{-7.0f});

    // A header with no tensors and no data at all is a valid (empty) file.
    const auto empty = dir / "empty.safetensors";
    writeBytes(empty, stFile("{}"));
    auto e = SafetensorsFile::open(empty);
    KVS_VERIFY_OK(e);
    QVERIFY(e->names().empty());
    QVERIFY(e->metadata().empty());
}

void TestSafetensors::lookupOfAbsentTensor() {
    TempDir dir;
    const auto path = dir / "a.safetensors";
    writeBytes(path, stFile("{\"a\":" + tensorJson("F32", "[1]", 0, 4) + "}", 4));
    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    const std::string expected = path.string() + ": no tensor named 'zz'";
    const auto r1 = attempt([&] { (void)file->info("zz"); });
    KVS_VERIFY_ERROR(r1, expected.c_str());
    QCOMPARE(r1.error().code(), ErrorCode::Missing);
    const auto r2 = attempt([&] { (void)file->bytes("zz"); });
    KVS_VERIFY_ERROR(r2, expected.c_str());
    QCOMPARE(r2.error().code(), ErrorCode::Missing);
}

// The mapping belongs to the object (moves keep it) and is private: replacing the file on disk
// (atomic rename) does not change what an open SafetensorsFile reads.
void TestSafetensors::mappingSurvivesMoveAndReplacement() {
    TempDir dir;
    const auto path = dir / "m.safetensors";
    SafetensorsWriter w1;
    w1.addFloat("x", DType::F32, {3}, std::vector<float>{1.0f, 2.0f, 3.0f});
    KVS_VERIFY_OK(w1.write(path));

    auto opened = SafetensorsFile::open(path);
    KVS_VERIFY_OK(opened);
    SafetensorsFile file = std::move(opened).value();
    std::vector<SafetensorsFile> many;
    many.push_back(std::move(file));

    SafetensorsWriter w2;
    w2.addFloat("x", DType::F32, {3}, std::vector<float>{9.0f, 9.0f, 9.0f});
    KVS_VERIFY_OK(w2.write(path));

    QCOMPARE(toFloats(DType::F32, many.front().bytes("x")), (std::vector<float>{1.0f, 2.0f, 3.0f}));
    auto reopened = SafetensorsFile::open(path);
    KVS_VERIFY_OK(reopened);
    QCOMPARE(toFloats(DType::F32, reopened->bytes("x")), (std::vector<float>{9.0f, 9.0f, 9.0f}));
}

// ---------------------------------------------------------------------------------------------
// Writing

// Generated tensors are made chunk by chunk while the file is written (never whole in memory):
// the file is byte for byte the one of the same values added whole, across chunk boundaries
// (1 Mi elements per chunk), beside ordinary tensors; a fill that throws leaves nothing behind.
void TestSafetensors::generatedTensorsStream() {
    TempDir dir;
    const std::size_t n = (std::size_t(1) << 20) * 3 / 2 + 7; // one and a half chunks
    std::vector<float> values(n);
    for (std::size_t i = 0; i < n; ++i)
        values[i] = static_cast<float>(static_cast<double>(i % 1013) * 0.25 - 100.0);
    const std::vector<float> small{1.0f, -2.0f, 3.5f};
    SafetensorsWriter whole;
    whole.addFloat("big", DType::BF16, {static_cast<std::int64_t>(n)}, values);
    whole.addFloat("small", DType::F32, {3}, small);
    KVS_VERIFY_OK(whole.write(dir / "whole.safetensors"));

    SafetensorsWriter streamed;
    std::size_t position = 0;
    std::vector<std::size_t> chunks;
    streamed.addFloatGenerated("big", DType::BF16, {static_cast<std::int64_t>(n)},
                               [&](std::span<float> out) {
                                   chunks.push_back(out.size());
                                   for (float& v : out)
                                       v = values[position++];
                               });
    streamed.addFloat("small", DType::F32, {3}, small);
    KVS_VERIFY_OK(streamed.write(dir / "streamed.safetensors"));
    QCOMPARE(position, n);
    QCOMPARE(chunks, (std::vector<std::size_t>{std::size_t(1) << 20, n - (std::size_t(1) << 20)}));
    QCOMPARE(readBytes(dir / "streamed.safetensors"), readBytes(dir / "whole.safetensors"));

    // A failing fill: the error comes out, the file that was there stays, no temporary is left.
    SafetensorsWriter failing;
    failing.addFloatGenerated("big", DType::F16, {3000000}, [](std::span<float> out) {
        std::fill(out.begin(), out.end(), 1.0f);
        static int calls = 0;
        if (++calls == 2)
            throw Error(ErrorCode::Internal, "generator failed");
    });
    const auto r = failing.write(dir / "whole.safetensors");
    KVS_VERIFY_ERROR(r, "generator failed");
    QCOMPARE(readBytes(dir / "streamed.safetensors"), readBytes(dir / "whole.safetensors"));
    int entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path()))
        ++entries;
    QCOMPARE(entries, 2);
}

// Every tensor of a generated model has its own random stream: the same seed writes the same
// bytes, another seed other weights; the Llama-3-8B preset is that model's public shape.
void TestSafetensors::syntheticModelsAreReproducible() {
    TempDir dir;
    SyntheticModelSpec spec = syntheticPreset("tiny-llama-gqa"); // 3 bf16 shards
    KVS_VERIFY_OK(writeSyntheticModel(spec, dir / "a"));
    KVS_VERIFY_OK(writeSyntheticModel(spec, dir / "b"));
    spec.seed = 2;
    KVS_VERIFY_OK(writeSyntheticModel(spec, dir / "c"));
    for (int s = 1; s <= 3; ++s) {
        const std::string shard = "model-0000" + std::to_string(s) + "-of-00003.safetensors";
        QCOMPARE(readBytes(dir / "a" / shard), readBytes(dir / "b" / shard));
        QVERIFY(readBytes(dir / "a" / shard) != readBytes(dir / "c" / shard));
    }
    const ModelConfig big = syntheticPreset("llama-3-8b").config;
    QCOMPARE(big.parameterCount(), 8030261248LL); // Meta-Llama-3-8B: 8,030,261,248
    QCOMPARE(big.kvHeads, 8);
    QCOMPARE(big.vocab, 128256);
}

void TestSafetensors::writerRoundTrip() {
    TempDir dir;
    const auto path = dir / "rt.safetensors";
    SafetensorsWriter w;
    w.setMetadata("format", "pt");
    w.setMetadata("kvs.kind", "capture");
    w.setMetadata("format", "np"); // the last value wins
    const std::vector<float> values{0.5f, -3.25f, 1024.0f, 0.1f, 70000.0f, 1e-8f};
    w.addFloat("zeta.f32", DType::F32, {2, 3}, values);
    w.addFloat("alpha.f16", DType::F16, {6}, values);
    w.addFloat("mid.bf16", DType::BF16, {3, 2}, values);
    const std::vector<std::int32_t> ints{-1, 2147483647, 0, 42};
    w.add("ids", DType::I32, {4}, rawBytes(ints));
    const std::vector<std::uint8_t> flags{1, 0, 1};
    w.add("flags", DType::U8, {3}, rawBytes(flags));
    w.addFloat("empty", DType::F16, {0, 4}, std::vector<float>{});
    QCOMPARE(w.tensorCount(), std::size_t(6));
    KVS_VERIFY_OK(w.write(path));

    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    QCOMPARE(file->names(), (std::vector<std::string>{"alpha.f16", "empty", "flags", "ids",
                                                      "mid.bf16", "zeta.f32"}));
    const std::map<std::string, std::string> meta{{"format", "np"}, {"kvs.kind", "capture"}};
    QCOMPARE(file->metadata(), meta);

    QCOMPARE(file->info("zeta.f32").dtype, DType::F32);
    QCOMPARE(file->info("zeta.f32").shape, (std::vector<std::int64_t>{2, 3}));
    QCOMPARE(toFloats(DType::F32, file->bytes("zeta.f32")), values);

    // F16: exact where representable, nearest otherwise, overflow to infinity.
    QCOMPARE(file->info("alpha.f16").dtype, DType::F16);
    const auto h = toFloats(DType::F16, file->bytes("alpha.f16"));
    QCOMPARE(h[0], 0.5f);
    QCOMPARE(h[1], -3.25f);
    QCOMPARE(h[2], 1024.0f);
    QCOMPARE(h[3], 0.0999755859375f);
    QCOMPARE(h[4], std::numeric_limits<float>::infinity());
    QCOMPARE(h[5], 0.0f); // 1e-8 is below half the smallest F16 subnormal

    QCOMPARE(file->info("mid.bf16").dtype, DType::BF16);
    QCOMPARE(file->info("mid.bf16").shape, (std::vector<std::int64_t>{3, 2}));
    const auto b = toFloats(DType::BF16, file->bytes("mid.bf16"));
    QCOMPARE(b[0], 0.5f);
    QCOMPARE(b[1], -3.25f);
    QCOMPARE(b[3], 0.10009765625f);
    QCOMPARE(b[4], 70144.0f);

    QCOMPARE(file->info("ids").dtype, DType::I32);
    const auto idBytes = file->bytes("ids");
    std::vector<std::int32_t> idsBack(4);
    std::memcpy(idsBack.data(), idBytes.data(), idBytes.size());
    QCOMPARE(idsBack, ints);
    QCOMPARE(toFloats(DType::U8, file->bytes("flags")), (std::vector<float>{1, 0, 1}));
    QCOMPARE(file->info("empty").numel(), std::int64_t(0));
    QCOMPARE(file->bytes("empty").size(), std::size_t(0));

    // Layout: the data buffer starts on 8 bytes; tensors are contiguous (no gaps, as the
    // reference reader demands) and each is aligned to its element size.
    const std::string raw = readBytes(path);
    std::uint64_t headerLength = 0;
    std::memcpy(&headerLength, raw.data(), 8);
    QCOMPARE(headerLength % 8, std::uint64_t(0));
    const std::string headerText = raw.substr(8, headerLength);
    const auto lastBrace = headerText.find_last_of('}');
    QCOMPARE(headerText.front(), '{');
    QCOMPARE(headerText.find_first_not_of(' ', lastBrace + 1), std::string::npos); // spaces only
    QVERIFY(headerText.size() - lastBrace - 1 < 8);
    QVERIFY(headerText.find("\"__metadata__\":{\"format\":\"np\",\"kvs.kind\":\"capture\"}") == 1);
    std::size_t total = 0;
    for (const auto& name : file->names()) {
        const auto& info = file->info(name);
        QCOMPARE(info.dataBegin % dtypeSize(info.dtype), std::size_t(0));
        total += info.nbytes();
    }
    QCOMPARE(raw.size(), 8 + headerLength + total);
    QCOMPARE(file->info("ids").dataBegin, std::size_t(0)); // 4-byte dtypes first, by name
    QCOMPARE(file->info("zeta.f32").dataBegin, std::size_t(16));
    QCOMPARE(file->info("flags").dataEnd, total); // narrowest last
}

// The writer's bytes are exactly what the reference implementation produces.
void TestSafetensors::writerMatchesReferenceBytes() {
    TempDir dir;
    SafetensorsWriter w;
    w.addFloat("a", DType::F32, {2}, std::vector<float>{1.5f, -2.25f});
    KVS_VERIFY_OK(w.write(dir / "a.safetensors"));
    const std::string data("\x00\x00\xc0\x3f\x00\x00\x10\xc0", 8);
    std::string expected("\x38\0\0\0\0\0\0\0", 8); // 56
    expected += R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  )";
    QCOMPARE(readBytes(dir / "a.safetensors"), expected + data);

    w.setMetadata("format", "pt");
    KVS_VERIFY_OK(w.write(dir / "b.safetensors"));
    std::string expectedMeta("\x58\0\0\0\0\0\0\0", 8); // 88
    expectedMeta += R"({"__metadata__":{"format":"pt"},)"
                    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   )";
    QCOMPARE(readBytes(dir / "b.safetensors"), expectedMeta + data);

    SafetensorsWriter none;
    KVS_VERIFY_OK(none.write(dir / "c.safetensors"));
    QCOMPARE(readBytes(dir / "c.safetensors"), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
}

void TestSafetensors::writerReplacesExistingFile() {
    TempDir dir;
    const auto path = dir / "r.safetensors";
    writeBytes(path, std::string(10000, 'x'));
    SafetensorsWriter w;
    w.addFloat("t", DType::BF16, {2}, std::vector<float>{1.0f, -1.0f});
    KVS_VERIFY_OK(w.write(path));
    const std::string raw = readBytes(path);
    QCOMPARE(raw.size(), std::size_t(8 + 56 + 4));
    QCOMPARE(raw.substr(raw.size() - 4), std::string("\x80\x3f\x80\xbf", 4));
    // No temporary file is left beside it.
    int entries = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        QCOMPARE(e.path().filename().string(), std::string("r.safetensors"));
        ++entries;
    }
    QCOMPARE(entries, 1);
    auto file = SafetensorsFile::open(path);
    KVS_VERIFY_OK(file);
    QCOMPARE(toFloats(DType::BF16, file->bytes("t")), (std::vector<float>{1.0f, -1.0f}));
}

void TestSafetensors::writerRejectsBadInput() {
    SafetensorsWriter w;
    const std::vector<float> six(6, 1.0f);
    const std::vector<std::byte> bytes(24);

    auto r = attempt([&] { w.add("w", DType::F32, {2, 2}, bytes); });
    KVS_VERIFY_ERROR(r, "tensor 'w'", "24 bytes", "[2, 2]", "F32");
    QCOMPARE(r.error().code(), ErrorCode::InvalidArgument);
    r = attempt([&] { w.add("w", DType::F16, {2, 3}, std::span(bytes).first(11)); });
    KVS_VERIFY_ERROR(r, "tensor 'w'", "11 bytes");
    QCOMPARE(r.error().code(), ErrorCode::InvalidArgument);
    r = attempt([&] { w.add("w", DType::F32, {-2, -3}, bytes); });
    KVS_VERIFY_ERROR(r, "tensor 'w'", "negative");
    QCOMPARE(r.error().code(), ErrorCode::InvalidArgument);
    r = attempt([&] { w.addFloat("v", DType::F16, {7}, six); });
    KVS_VERIFY_ERROR(r, "tensor 'v'", "6 values", "[7]");
    QCOMPARE(r.error().code(), ErrorCode::InvalidArgument);
    r = attempt([&] { w.addFloat("v", DType::I32, {6}, six); });
    KVS_VERIFY_ERROR(r, "tensor 'v'", "I32");
    r = attempt([&] { w.add("__metadata__", DType::U8, {1}, std::span(bytes).first(1)); });
    KVS_VERIFY_ERROR(r, "__metadata__");
    QCOMPARE(w.tensorCount(), std::size_t(0));

    w.add("w", DType::F32, {2, 3}, bytes); // correct size: accepted
    QCOMPARE(w.tensorCount(), std::size_t(1));
    r = attempt([&] { w.addFloat("w", DType::F32, {6}, six); });
    KVS_VERIFY_ERROR(r, "tensor 'w'", "already");
    QCOMPARE(w.tensorCount(), std::size_t(1));
}

void TestSafetensors::writerReportsUnwritablePath() {
    TempDir dir;
    SafetensorsWriter w;
    w.addFloat("a", DType::F32, {1}, std::vector<float>{1.0f});
    const auto inMissingFolder = dir / "no" / "such" / "x.safetensors";
    const auto r = w.write(inMissingFolder);
    const std::string pathText = inMissingFolder.string();
    KVS_VERIFY_ERROR(r, pathText.c_str());
    QCOMPARE(r.error().code(), ErrorCode::Io);
    QVERIFY(!std::filesystem::exists(inMissingFolder));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

void TestSafetensors::checkpointSingleFile() {
    TempDir dir;
    SafetensorsWriter w;
    w.setMetadata("format", "pt");
    w.addFloat("w", DType::F32, {2}, std::vector<float>{4.0f, 5.0f});
    w.addFloat("b", DType::F16, {1}, std::vector<float>{-1.0f});
    KVS_VERIFY_OK(w.write(dir / "weights.safetensors"));

    auto single = Checkpoint::open(dir / "weights.safetensors");
    KVS_VERIFY_OK(single);
    QCOMPARE(single->describe(), std::string("weights.safetensors"));
    QCOMPARE(single->names(), (std::vector<std::string>{"b", "w"}));
    QCOMPARE(single->files().size(), std::size_t(1));
    QCOMPARE(single->totalBytes(), std::uintmax_t(10));
    QCOMPARE(single->metadata().at("format"), std::string("pt"));
    QCOMPARE(toFloats(DType::F32, single->bytes("w")), (std::vector<float>{4.0f, 5.0f}));

    std::filesystem::create_directory(dir / "model");
    KVS_VERIFY_OK(w.write(dir / "model" / "model.safetensors"));
    auto folder = Checkpoint::open(dir / "model");
    KVS_VERIFY_OK(folder);
    QCOMPARE(folder->describe(), std::string("model.safetensors"));
    QCOMPARE(folder->info("b").dtype, DType::F16);
    QCOMPARE(toFloats(DType::F16, folder->bytes("b")), std::vector<float>{-1.0f});
    QCOMPARE(folder->fileOf("w").path(), dir / "model" / "model.safetensors");

    const std::string expected =
        (dir / "model" / "model.safetensors").string() + ": no tensor named 'nope'";
    auto r = attempt([&] { (void)folder->info("nope"); });
    KVS_VERIFY_ERROR(r, expected.c_str());
    QCOMPARE(r.error().code(), ErrorCode::Missing);
    r = attempt([&] { (void)folder->bytes("nope"); });
    KVS_VERIFY_ERROR(r, expected.c_str());
    r = attempt([&] { (void)folder->fileOf("nope"); });
    KVS_VERIFY_ERROR(r, expected.c_str());
    QCOMPARE(r.error().code(), ErrorCode::Missing);
}

namespace {

// Three shards with distinct tensors and the index mapping them; returns the folder.
std::filesystem::path writeShardedModel(const TempDir& dir) {
    const auto folder = dir / "sharded";
    std::filesystem::create_directory(folder);
    const char* shardNames[] = {"model-00001-of-00003.safetensors",
                                "model-00002-of-00003.safetensors",
                                "model-00003-of-00003.safetensors"};
    for (int s = 0; s < 3; ++s) {
        SafetensorsWriter w;
        w.setMetadata("format", "pt");
        w.setMetadata("shard", std::to_string(s + 1));
        for (int t = 0; t < 2; ++t) {
            const int layer = 2 * s + t;
            const float v = static_cast<float>(10 * layer);
            w.addFloat("layers." + std::to_string(layer) + ".w", DType::F32, {2},
                       std::vector<float>{v, v + 1.0f});
        }
        if (!w.write(folder / shardNames[s]).ok())
            qFatal("writing shard failed");
    }
    std::string index = R"({"metadata": {"total_size": 48}, "weight_map": {)";
    for (int layer = 0; layer < 6; ++layer)
        index += std::string(layer ? ", " : "") + "\"layers." + std::to_string(layer) + ".w\": \"" +
                 shardNames[layer / 2] + "\"";
    index += "}}";
    writeBytes(folder / "model.safetensors.index.json", index);
    return folder;
}

} // namespace

void TestSafetensors::checkpointThreeShards() {
    TempDir dir;
    const auto folder = writeShardedModel(dir);
    auto ckpt = Checkpoint::open(folder);
    KVS_VERIFY_OK(ckpt);
    QCOMPARE(ckpt->describe(), std::string("model.safetensors.index.json (3 shards)"));
    QCOMPARE(ckpt->files().size(), std::size_t(3));
    QCOMPARE(ckpt->names(), (std::vector<std::string>{"layers.0.w", "layers.1.w", "layers.2.w",
                                                      "layers.3.w", "layers.4.w", "layers.5.w"}));
    QCOMPARE(ckpt->totalBytes(), std::uintmax_t(48));
    QCOMPARE(ckpt->metadata().at("shard"), std::string("1")); // metadata of the first shard
    for (int layer = 0; layer < 6; ++layer) {
        const std::string name = "layers." + std::to_string(layer) + ".w";
        const float v = static_cast<float>(10 * layer);
        QCOMPARE(toFloats(DType::F32, ckpt->bytes(name)), (std::vector<float>{v, v + 1.0f}));
        QCOMPARE(ckpt->fileOf(name).path().filename().string(),
                 "model-0000" + std::to_string(layer / 2 + 1) + "-of-00003.safetensors");
        QCOMPARE(ckpt->info(name).shape, std::vector<std::int64_t>{2});
    }
    QVERIFY(ckpt->contains("layers.5.w"));
    QVERIFY(!ckpt->contains("layers.6.w"));
    const auto r = attempt([&] { (void)ckpt->info("layers.6.w"); });
    const std::string indexText = (folder / "model.safetensors.index.json").string();
    KVS_VERIFY_ERROR(r, indexText.c_str(), "no tensor named 'layers.6.w'");

    // The index file itself may be given, too.
    auto viaIndex = Checkpoint::open(folder / "model.safetensors.index.json");
    KVS_VERIFY_OK(viaIndex);
    QCOMPARE(viaIndex->names().size(), std::size_t(6));
    QCOMPARE(viaIndex->describe(), std::string("model.safetensors.index.json (3 shards)"));
}

// Each row damages the sharded model of writeShardedModel(); fragments may use {folder}.
void TestSafetensors::checkpointRejects_data() {
    QTest::addColumn<QString>("damage");
    QTest::addColumn<QStringList>("fragments");
    QTest::newRow("empty folder") << "empty-folder"
                                  << QStringList{"no model.safetensors or "
                                                 "model.safetensors.index.json in {folder}"};
    QTest::newRow("missing folder") << "missing-folder" << QStringList{"{folder}/absent"};
    QTest::newRow("index not json")
        << "index={\"weight_map\": {" << QStringList{"{index}: ", "not valid JSON", "parse_error"};
    QTest::newRow("index not object")
        << "index=[]" << QStringList{"{index}: ", "not a JSON object"};
    QTest::newRow("index without weight_map")
        << "index={\"metadata\": {}}" << QStringList{"{index}: ", "weight_map"};
    QTest::newRow("index empty weight_map")
        << "index={\"weight_map\": {}}" << QStringList{"{index}: ", "lists no tensors"};
    QTest::newRow("index value not string")
        << "index={\"weight_map\": {\"layers.0.w\": 3}}"
        << QStringList{"{index}: ", "'layers.0.w'", "not a string"};
    QTest::newRow("index duplicate key")
        << "index={\"weight_map\": {\"layers.0.w\": \"model-00001-of-00003.safetensors\", "
           "\"layers.0.w\": \"model-00002-of-00003.safetensors\"}}"
        << QStringList{"{index}: ", "duplicate", "'layers.0.w'"};
    QTest::newRow("shard outside folder")
        << "index={\"weight_map\": {\"layers.0.w\": \"../model-00001-of-00003.safetensors\"}}"
        << QStringList{"{index}: ", "'layers.0.w'", "not a path inside"};
    QTest::newRow("shard missing on disk")
        << "remove=model-00002-of-00003.safetensors"
        << QStringList{"{index}: ", "'model-00002-of-00003.safetensors'", "does not exist"};
    QTest::newRow("tensor not in its shard")
        << "index={\"weight_map\": {\"layers.0.w\": \"model-00002-of-00003.safetensors\", "
           "\"layers.2.w\": \"model-00002-of-00003.safetensors\"}}"
        << QStringList{"{index}: ", "tensor 'layers.0.w'", "'model-00002-of-00003.safetensors'"};
    QTest::newRow("tensor in another shard")
        << "index={\"weight_map\": {\"layers.0.w\": \"model-00002-of-00003.safetensors\", "
           "\"layers.1.w\": \"model-00001-of-00003.safetensors\"}}"
        << QStringList{"{index}: ", "tensor 'layers.0.w'",
                       "not in its shard 'model-00002-of-00003.safetensors'",
                       "but in 'model-00001-of-00003.safetensors'"};
    QTest::newRow("tensor in two shards")
        << "duplicate-tensor"
        << QStringList{"{index}: ", "tensor 'layers.0.w'", "two shards",
                       "'model-00001-of-00003.safetensors'", "'model-00003-of-00003.safetensors'"};
    QTest::newRow("broken shard") << "truncate=model-00003-of-00003.safetensors"
                                  << QStringList{"{folder}/model-00003-of-00003.safetensors: ",
                                                 "truncated", "{index}"};
}

void TestSafetensors::checkpointRejects() {
    QFETCH(QString, damage);
    QFETCH(QStringList, fragments);
    TempDir dir;
    auto folder = writeShardedModel(dir);
    const auto index = folder / "model.safetensors.index.json";
    const std::string how = damage.toStdString();
    if (how == "empty-folder") {
        folder = dir / "empty";
        std::filesystem::create_directory(folder);
    } else if (how == "missing-folder") {
        folder = folder / "absent";
    } else if (how.starts_with("index=")) {
        writeBytes(index, how.substr(6));
    } else if (how.starts_with("remove=")) {
        std::filesystem::remove(folder / how.substr(7));
    } else if (how.starts_with("truncate=")) {
        writeBytes(folder / how.substr(9), "\x01\x02");
    } else if (how == "duplicate-tensor") {
        SafetensorsWriter w;
        w.addFloat("layers.0.w", DType::F32, {1}, std::vector<float>{1.0f});
        w.addFloat("layers.4.w", DType::F32, {2}, std::vector<float>{40.0f, 41.0f});
        w.addFloat("layers.5.w", DType::F32, {2}, std::vector<float>{50.0f, 51.0f});
        KVS_VERIFY_OK(w.write(folder / "model-00003-of-00003.safetensors"));
    }
    const auto result = Checkpoint::open(folder);
    QVERIFY2(!result.ok(), "expected an error, got success");
    const std::string msg = result.message();
    for (auto fragment : fragments) {
        fragment.replace("{folder}",
                         QString::fromStdString(
                             (how == "missing-folder" ? folder.parent_path() : folder).string()));
        fragment.replace("{index}", QString::fromStdString(index.string()));
        QVERIFY2(
            msg.find(fragment.toStdString()) != std::string::npos,
            qPrintable(
                QString("message \"%1\" lacks \"%2\"").arg(QString::fromStdString(msg), fragment)));
    }
}

QTEST_APPLESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
