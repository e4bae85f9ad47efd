// SPDX-License-Identifier: MIT
// Element types: names and sizes, F16/BF16 rounding against hand-computed bit patterns,
// conversions.
#include "kvs/dtype.h"
#include "kvs_test.h"

#include <QTest>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace kvs;

namespace {

float fromBits(std::uint32_t bits) {
    return std::bit_cast<float>(bits);
}

std::uint16_t encode16(float value, DType to) {
    std::byte out[2];
    convertFromFloat(&value, 1, to, out);
    std::uint16_t bits = 0;
    std::memcpy(&bits, out, 2);
    return bits;
}

float decode16(std::uint16_t bits, DType from) {
    std::byte in[2];
    std::memcpy(in, &bits, 2);
    float out = 0.0f;
    convertToFloat(from, in, 1, &out);
    return out;
}

template <class T> std::vector<double> toDoubles(DType from, const std::vector<T>& values) {
    std::vector<double> out(values.size());
    convertToDouble(from, reinterpret_cast<const std::byte*>(values.data()), values.size(),
                    out.data());
    return out;
}

template <class Fn> Result<bool> attempt(Fn fn) {
    return catchErrors([&]() {
        fn();
        return true;
    });
}

} // namespace

class TestDType : public QObject {
    Q_OBJECT

private slots:
    void namesAndSizes();
    void f16Encode_data();
    void f16Encode();
    void bf16Encode_data();
    void bf16Encode();
    void nanStaysNan();
    void decodeExact();
    void everyHalfPatternRoundTrips();
    void integersAndDoubles();
    void unalignedSourceAndF32();
    void unsupportedConversions();
};

void TestDType::namesAndSizes() {
    struct Row {
        DType type;
        const char* name;
        std::size_t size;
        bool floating;
    };
    const Row rows[] = {
        {DType::Bool, "BOOL", 1, false},     {DType::U8, "U8", 1, false},
        {DType::I8, "I8", 1, false},         {DType::I16, "I16", 2, false},
        {DType::U16, "U16", 2, false},       {DType::F16, "F16", 2, true},
        {DType::BF16, "BF16", 2, true},      {DType::I32, "I32", 4, false},
        {DType::U32, "U32", 4, false},       {DType::F32, "F32", 4, true},
        {DType::F64, "F64", 8, true},        {DType::I64, "I64", 8, false},
        {DType::U64, "U64", 8, false},       {DType::F8E4M3, "F8_E4M3", 1, true},
        {DType::F8E5M2, "F8_E5M2", 1, true},
    };
    for (const auto& r : rows) {
        QCOMPARE(dtypeName(r.type), std::string_view(r.name));
        QCOMPARE(dtypeSize(r.type), r.size);
        QCOMPARE(isFloating(r.type), r.floating);
        const auto parsed = parseDType(r.name);
        QVERIFY(parsed.has_value());
        QCOMPARE(*parsed, r.type);
    }
    QVERIFY(!parseDType("f16").has_value()); // names are case-sensitive, as in the format
    QVERIFY(!parseDType("F17").has_value());
    QVERIFY(!parseDType("").has_value());
    QVERIFY(!parseDType("BOOL ").has_value());
}

// Input float given by its bit pattern, expected F16 bits computed by hand.
void TestDType::f16Encode_data() {
    QTest::addColumn<quint32>("input");
    QTest::addColumn<quint16>("expected");
    auto row = [](const char* name, std::uint32_t in, std::uint16_t out) {
        QTest::newRow(name) << quint32(in) << quint16(out);
    };
    row("1.0", 0x3F800000, 0x3C00);
    row("-2.0", 0xC0000000, 0xC000);
    row("0.5", 0x3F000000, 0x3800);
    row("0.1", 0x3DCCCCCD, 0x2E66);
    row("1/3", 0x3EAAAAAB, 0x3555);
    row("+0", 0x00000000, 0x0000);
    row("-0", 0x80000000, 0x8000);
    row("65504 max", 0x477FE000, 0x7BFF);
    row("65519 rounds down to max", 0x477FEF00, 0x7BFF);
    row("65520 tie rounds to inf (even)", 0x477FF000, 0x7C00);
    row("1e6 overflows", 0x49742400, 0x7C00);
    row("-inf", 0xFF800000, 0xFC00);
    row("1+2^-11 tie to even (down)", 0x3F801000, 0x3C00);
    row("1+3*2^-11 tie to even (up)", 0x3F803000, 0x3C02);
    row("just above tie", 0x3F801001, 0x3C01);
    row("just below tie", 0x3F800FFF, 0x3C00);
    row("2^-14 min normal", 0x38800000, 0x0400);
    row("2^-24 min subnormal", 0x33800000, 0x0001);
    row("2^-25 tie to zero", 0x33000000, 0x0000);
    row("3*2^-25 tie to 2", 0x33C00000, 0x0002);
    row("1023*2^-24 max subnormal", 0x387FC000, 0x03FF);
    row("-2^-24", 0xB3800000, 0x8001);
    row("1e-8 underflows", 0x322BCC77, 0x0000);
}

void TestDType::f16Encode() {
    QFETCH(quint32, input);
    QFETCH(quint16, expected);
    QCOMPARE(encode16(fromBits(input), DType::F16), std::uint16_t(expected));
}

void TestDType::bf16Encode_data() {
    QTest::addColumn<quint32>("input");
    QTest::addColumn<quint16>("expected");
    auto row = [](const char* name, std::uint32_t in, std::uint16_t out) {
        QTest::newRow(name) << quint32(in) << quint16(out);
    };
    row("1.0", 0x3F800000, 0x3F80);
    row("-1.0", 0xBF800000, 0xBF80);
    row("0.1", 0x3DCCCCCD, 0x3DCD);
    row("pi", 0x40490FDB, 0x4049);
    row("tie to even (down)", 0x3F808000, 0x3F80);
    row("tie to even (up)", 0x3F818000, 0x3F82);
    row("just above tie", 0x3F808001, 0x3F81);
    row("just below tie", 0x3F807FFF, 0x3F80);
    row("float max rounds to inf", 0x7F7FFFFF, 0x7F80);
    row("below rounding to inf", 0x7F7F7FFF, 0x7F7F);
    row("inf", 0x7F800000, 0x7F80);
    row("-0", 0x80000000, 0x8000);
    row("subnormal", 0x00010000, 0x0001);
    row("subnormal tie to zero", 0x00008000, 0x0000);
    row("subnormal tie to 2", 0x00018000, 0x0002);
}

void TestDType::bf16Encode() {
    QFETCH(quint32, input);
    QFETCH(quint16, expected);
    QCOMPARE(encode16(fromBits(input), DType::BF16), std::uint16_t(expected));
}

// NaN never turns into infinity (truncating a signalling NaN's low mantissa bits would).
void TestDType::nanStaysNan() {
    for (const std::uint32_t nanBits : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu}) {
        const float nan = fromBits(nanBits);
        const auto h = encode16(nan, DType::F16);
        QCOMPARE(h & 0x7C00, 0x7C00);
        QVERIFY(h & 0x03FF);
        const auto b = encode16(nan, DType::BF16);
        QCOMPARE(b & 0x7F80, 0x7F80);
        QVERIFY(b & 0x007F);
        QVERIFY(std::isnan(decode16(h, DType::F16)));
        QVERIFY(std::isnan(decode16(b, DType::BF16)));
    }
}

void TestDType::decodeExact() {
    QCOMPARE(decode16(0x3C00, DType::F16), 1.0f);
    QCOMPARE(decode16(0xC000, DType::F16), -2.0f);
    QCOMPARE(decode16(0x7BFF, DType::F16), 65504.0f);
    QCOMPARE(decode16(0x3555, DType::F16), 0.333251953125f);
    QCOMPARE(decode16(0x0400, DType::F16), std::ldexp(1.0f, -14));
    QCOMPARE(decode16(0x0001, DType::F16), std::ldexp(1.0f, -24));
    QCOMPARE(decode16(0x03FF, DType::F16), std::ldexp(1023.0f, -24));
    QCOMPARE(decode16(0x7C00, DType::F16), std::numeric_limits<float>::infinity());
    QCOMPARE(decode16(0xFC00, DType::F16), -std::numeric_limits<float>::infinity());
    QVERIFY(std::signbit(decode16(0x8000, DType::F16)));
    QCOMPARE(decode16(0x8000, DType::F16), 0.0f);

    QCOMPARE(decode16(0x3F80, DType::BF16), 1.0f);
    QCOMPARE(decode16(0x4049, DType::BF16), 3.140625f);
    QCOMPARE(decode16(0x3DCD, DType::BF16), 0.10009765625f);
    QCOMPARE(decode16(0x0001, DType::BF16), fromBits(0x00010000));
    QCOMPARE(decode16(0xFF80, DType::BF16), -std::numeric_limits<float>::infinity());
    QCOMPARE(decode16(0x7F7F, DType::BF16), fromBits(0x7F7F0000));
}

// Every non-NaN 16-bit pattern decodes to a float that encodes back to the same bits.
void TestDType::everyHalfPatternRoundTrips() {
    std::vector<std::uint16_t> bits(65536);
    for (std::size_t i = 0; i < bits.size(); ++i)
        bits[i] = static_cast<std::uint16_t>(i);
    for (const DType t : {DType::F16, DType::BF16}) {
        std::vector<float> floats(bits.size());
        convertToFloat(t, reinterpret_cast<const std::byte*>(bits.data()), bits.size(),
                       floats.data());
        std::vector<std::uint16_t> back(bits.size());
        convertFromFloat(floats.data(), floats.size(), t,
                         reinterpret_cast<std::byte*>(back.data()));
        int checked = 0;
        for (std::size_t i = 0; i < bits.size(); ++i) {
            if (std::isnan(floats[i]))
                continue;
            if (back[i] != bits[i])
                QFAIL(qPrintable(QString("%1: 0x%2 -> %3 -> 0x%4")
                                     .arg(QString::fromLatin1(dtypeName(t).data()))
                                     .arg(bits[i], 4, 16, QChar('0'))
                                     .arg(double(floats[i]))
                                     .arg(back[i], 4, 16, QChar('0'))));
            ++checked;
        }
        // NaN patterns: F16 2 signs x 1023 mantissas, BF16 2 signs x 127 mantissas.
        QCOMPARE(checked, t == DType::F16 ? 65536 - 2046 : 65536 - 254);
    }
}

void TestDType::integersAndDoubles() {
    QCOMPARE(toDoubles(DType::I8, std::vector<std::int8_t>{-128, 127, 0}),
             (std::vector<double>{-128, 127, 0}));
    QCOMPARE(toDoubles(DType::U8, std::vector<std::uint8_t>{255, 1}),
             (std::vector<double>{255, 1}));
    QCOMPARE(toDoubles(DType::Bool, std::vector<std::uint8_t>{1, 0}), (std::vector<double>{1, 0}));
    QCOMPARE(toDoubles(DType::I16, std::vector<std::int16_t>{-32768, 32767}),
             (std::vector<double>{-32768, 32767}));
    QCOMPARE(toDoubles(DType::U16, std::vector<std::uint16_t>{65535}), std::vector<double>{65535});
    QCOMPARE(toDoubles(DType::I32, std::vector<std::int32_t>{-2147483647 - 1, 7}),
             (std::vector<double>{-2147483648.0, 7}));
    QCOMPARE(toDoubles(DType::U32, std::vector<std::uint32_t>{4294967295u}),
             std::vector<double>{4294967295.0});
    QCOMPARE(toDoubles(DType::I64, std::vector<std::int64_t>{-(std::int64_t(1) << 53)}),
             std::vector<double>{-9007199254740992.0});
    QCOMPARE(toDoubles(DType::U64, std::vector<std::uint64_t>{std::uint64_t(1) << 63}),
             std::vector<double>{9223372036854775808.0});
    // F64 keeps full precision through convertToDouble.
    QCOMPARE(toDoubles(DType::F64, std::vector<double>{0.1, -1e300}),
             (std::vector<double>{0.1, -1e300}));
    QCOMPARE(toDoubles(DType::F16, std::vector<std::uint16_t>{0x3555}),
             std::vector<double>{0.333251953125});
    // F64 -> float rounds to the nearest float.
    const std::vector<double> d{0.1};
    float f = 0.0f;
    convertToFloat(DType::F64, reinterpret_cast<const std::byte*>(d.data()), 1, &f);
    QCOMPARE(f, 0.1f);
}

void TestDType::unalignedSourceAndF32() {
    // Values at odd addresses are read byte-wise.
    std::vector<std::byte> buffer(1 + 3 * sizeof(float));
    const float values[3] = {1.25f, -7.5f, 3e38f};
    std::memcpy(buffer.data() + 1, values, sizeof(values));
    float out[3] = {};
    convertToFloat(DType::F32, buffer.data() + 1, 3, out);
    QCOMPARE(out[0], 1.25f);
    QCOMPARE(out[1], -7.5f);
    QCOMPARE(out[2], 3e38f);

    std::byte f32[12];
    convertFromFloat(values, 3, DType::F32, f32);
    QVERIFY(std::memcmp(f32, values, sizeof(values)) == 0);

    const std::uint16_t halves[2] = {0x3C00, 0xC000};
    std::memcpy(buffer.data() + 1, halves, sizeof(halves));
    convertToFloat(DType::F16, buffer.data() + 1, 2, out);
    QCOMPARE(out[0], 1.0f);
    QCOMPARE(out[1], -2.0f);
}

void TestDType::unsupportedConversions() {
    const std::byte in[4] = {};
    float f = 0.0f;
    auto r = attempt([&] { convertToFloat(DType::F8E4M3, in, 1, &f); });
    KVS_VERIFY_ERROR(r, "F8_E4M3");
    QCOMPARE(r.error().code(), ErrorCode::Unsupported);
    double d = 0.0;
    r = attempt([&] { convertToDouble(DType::F8E5M2, in, 1, &d); });
    KVS_VERIFY_ERROR(r, "F8_E5M2");
    QCOMPARE(r.error().code(), ErrorCode::Unsupported);
    std::byte out[4];
    r = attempt([&] { convertFromFloat(&f, 1, DType::I32, out); });
    KVS_VERIFY_ERROR(r, "I32");
    QCOMPARE(r.error().code(), ErrorCode::Unsupported);
}

QTEST_APPLESS_MAIN(TestDType)
#include "test_dtype.moc"
