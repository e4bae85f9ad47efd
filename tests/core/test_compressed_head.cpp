// SPDX-License-Identifier: MIT
// CompressedHead: quantization round trips, bit packing, fp16 rounding, bytes() against the
// formulas of ALGORITHMS.md, validation messages.
#include "kvs/compressed_head.h"
#include "kvs_test.h"

#include <QtTest>
#include <cmath>
#include <random>

using namespace kvs;
using G = QuantizedMatrix::Grouping;

namespace {

Matrix randomMatrix(int rows, int cols, unsigned seed, float spread = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, spread);
    Matrix x(rows, cols);
    for (Eigen::Index i = 0; i < x.size(); ++i)
        x.data()[i] = dist(rng);
    return x;
}

} // namespace

class TestCompressedHead : public QObject {
    Q_OBJECT
private slots:
    // K=V under RoPE: keys are the values turned by position · frequency per pair, hand-computed.
    void rotatedKeysTurnPairsByPosition() {
        CompressedHead h;
        h.headDim = 4;
        h.contextLength = 3;
        h.positions = {0, 2};
        h.values = Matrix::Zero(2, 4);
        h.values.row(0) << 1, 2, 3, 4; // position 0: unchanged (times the scale)
        h.values.row(1) << 1, 0, 0, 0;
        h.valueForm = CompressedHead::ValueForm::SharedWithKeys;
        h.keyRotation.frequencies = {1.0f, 0.5f}; // angles 2 and 1 at position 2
        h.keyRotation.scale = 2.0f;
        Matrix k = rotatedKeys(h);
        QVERIFY(test::maxAbsDiff(k.row(0), 2.0f * h.values.row(0)) < 1e-6);
        // Half-split pairs (0, 2) and (1, 3): (1, 0) turned by 2 rad.
        Matrix want(1, 4);
        want << 2 * std::cos(2.0f), 0, 2 * std::sin(2.0f), 0;
        QVERIFY(test::maxAbsDiff(k.row(1), want) < 1e-6);
        // Interleaved pairs (0, 1) and (2, 3).
        h.keyRotation.interleaved = true;
        h.values.row(1) << 0, 0, 1, 0;
        k = rotatedKeys(h);
        want << 0, 0, 2 * std::cos(1.0f), 2 * std::sin(1.0f);
        QVERIFY(test::maxAbsDiff(k.row(1), want) < 1e-6);
        h.keyRotation.frequencies.clear();
        QVERIFY_THROWS_EXCEPTION(Error, rotatedKeys(h));
    }

    void halfRounding() {
        QCOMPARE(roundToHalf(1.0f), 1.0f);
        QCOMPARE(roundToHalf(65504.0f), 65504.0f);
        QVERIFY(std::isinf(roundToHalf(70000.0f)));
        // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
        QCOMPARE(roundToHalf(1.0f + std::ldexp(1.0f, -11)), 1.0f);
        QCOMPARE(roundToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 1.0f + std::ldexp(1.0f, -9));
        Matrix x = randomMatrix(5, 7, 1);
        Matrix r = x;
        roundToHalf(r);
        for (Eigen::Index i = 0; i < x.size(); ++i) {
            QCOMPARE(roundToHalf(r.data()[i]), r.data()[i]); // idempotent
            QVERIFY(std::abs(r.data()[i] - x.data()[i]) <= std::abs(x.data()[i]) * 0x1p-11f);
        }
    }

    void roundTrip_data() {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("group");
        QTest::addColumn<bool>("perChannel");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        for (int bits : {2, 3, 4, 8})
            for (bool perChannel : {false, true})
                for (int group : {32, 7})
                    QTest::addRow("b%d_g%d_%s", bits, group, perChannel ? "channel" : "token")
                        << bits << group << perChannel << 45 << 37;
        QTest::addRow("b3_d128") << 3 << 32 << false << 3 << 128;
        QTest::addRow("b3_one") << 3 << 1 << true << 1 << 1;
    }
    void roundTrip() {
        QFETCH(int, bits);
        QFETCH(int, group);
        QFETCH(bool, perChannel);
        QFETCH(int, rows);
        QFETCH(int, cols);
        const Matrix x = randomMatrix(rows, cols, 7u + static_cast<unsigned>(bits));
        const QuantizedMatrix q =
            quantize(x, bits, group, perChannel ? G::PerChannel : G::PerToken);
        QCOMPARE(q.wordsPerRow(), (cols * bits + 31) / 32);
        QCOMPARE(q.codes.size(), static_cast<std::size_t>(rows * q.wordsPerRow()));
        const Matrix y = q.dequantize();
        const std::uint32_t top = (1u << bits) - 1u;
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) {
                const float scale = q.scaleAt(r, c);
                QCOMPARE(roundToHalf(scale), scale);
                QCOMPARE(roundToHalf(q.minimumAt(r, c)), q.minimumAt(r, c));
                QVERIFY(q.code(r, c) <= top);
                // Rounding to the nearest level: error ≤ half a step, plus the fp16 rounding of
                // the minimum and the step (≤ 2^-11 relative each, times at most 2^b levels).
                const float tol = 0.5f * scale + std::abs(q.minimumAt(r, c)) * 0x1p-10f +
                                  scale * static_cast<float>(top) * 0x1p-10f + 1e-6f;
                QVERIFY2(std::abs(y(r, c) - x(r, c)) <= tol,
                         qPrintable(QString("(%1,%2): %3 vs %4, tol %5")
                                        .arg(r)
                                        .arg(c)
                                        .arg(y(r, c))
                                        .arg(x(r, c))
                                        .arg(tol)));
            }
    }

    void bitLayoutIsDocumented() {
        // Row r, column c at bit r · wordsPerRow · 32 + c · bits; 3-bit codes straddle words.
        Matrix x(2, 11);
        for (int c = 0; c < 11; ++c) {
            x(0, c) = static_cast<float>(c % 8);
            x(1, c) = static_cast<float>(7 - c % 8);
        }
        const QuantizedMatrix q = quantize(x, 3, 11, G::PerToken);
        QCOMPARE(q.scales[0], 1.0f);
        QCOMPARE(q.minimums[0], 0.0f);
        QCOMPARE(q.wordsPerRow(), 2);
        // Codes 0..7 at 3 bits each: 0b111'110'101'100'011'010'001'000 = 0xFAC688 in bits 0..23,
        // then 0, 1, 2 at bits 24, 27, 30: code 10 occupies bits 30..32, straddling into word 1
        // (whose bit 0 stays 0 for code 2 = 0b010; row 1 decodes 5 = 0b101 across the same seam).
        QCOMPARE(q.codes[0], 0xFAC688u | (1u << 27) | (2u << 30));
        QCOMPARE(q.codes[1], 0u);
        QCOMPARE(q.code(0, 10), 2u);
        QCOMPARE(q.code(1, 10), 5u);
        QCOMPARE(q.dequantize(), x);
    }

    void constantGroupDecodesExactly() {
        Matrix x = Matrix::Constant(4, 8, 0.3f);
        const QuantizedMatrix q = quantize(x, 4, 8, G::PerToken);
        QCOMPARE(q.scales[0], 0.0f);
        QCOMPARE(q.dequantize()(2, 3), roundToHalf(0.3f));
    }

    void quantizeRejectsBadInput() {
        const Matrix x = randomMatrix(2, 2, 3);
        bool threw = false;
        try {
            quantize(x, 5, 32, G::PerToken);
        } catch (const Error& e) {
            threw = std::string(e.what()).find("bits must be 2, 3, 4 or 8") != std::string::npos;
        }
        QVERIFY(threw);
    }

    // ALGORITHMS.md §4: uniform asymmetric, group G, fp16 scale + zero = b + 32/G bits/element.
    void bytesOfQuantizedCaches_data() {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("group");
        for (int bits : {2, 3, 4, 8})
            for (int group : {32, 64, 128})
                QTest::addRow("b%d_g%d", bits, group) << bits << group;
    }
    void bytesOfQuantizedCaches() {
        QFETCH(int, bits);
        QFETCH(int, group);
        const int n = 256, d = 128;
        CompressedHead h = exactHead(randomMatrix(n, d, 1), randomMatrix(n, d, 2));
        h.keyForm = CompressedHead::KeyForm::Quantized;
        h.quantizedKeys = quantize(h.keys, bits, group, G::PerChannel);
        h.valueForm = CompressedHead::ValueForm::Quantized;
        h.quantizedValues = quantize(h.values, bits, group, G::PerToken);
        h.validate();
        const CacheBytes b = h.bytes();
        const double elements = 2.0 * n * d;
        QCOMPARE(static_cast<double>(b.total()) * 8.0 / elements, bits + 32.0 / group);
        QCOMPARE(b.keys, static_cast<std::size_t>(n * d * bits / 8));
        QCOMPARE(b.values, b.keys);
        QCOMPARE(b.metadata, static_cast<std::size_t>(2 * (n * d / group) * 4)); // no index
    }

    void bytesOfDenseAndIdentity() {
        const int n = 100, d = 64;
        const CompressedHead f16 =
            exactHead(randomMatrix(n, d, 1), randomMatrix(n, d, 2), Precision::F16);
        QCOMPARE(f16.bytes().total(), fp16BaselineBytes(n, d)); // 4d bytes per token
        QCOMPARE(f16.bytes().metadata, std::size_t(0));         // identity: no index bytes
        QVERIFY(f16.isIdentityIndex());
        const CompressedHead f32 = exactHead(f16.keys, f16.values, Precision::F32);
        QCOMPARE(f32.bytes().total(), 2 * fp16BaselineBytes(n, d));

        // Eviction (ALGORITHMS.md §1d): m · (4d + 4) bytes, + 2 per token with log-weights.
        CompressedHead evicted = f16;
        const int m = 40;
        evicted.positions.resize(m);
        for (int j = 0; j < m; ++j)
            evicted.positions[static_cast<std::size_t>(j)] = 2 * j + 1;
        evicted.keys = f16.keys.topRows(m);
        evicted.values = f16.values.topRows(m);
        evicted.validate();
        QVERIFY(!evicted.isIdentityIndex());
        QCOMPARE(evicted.bytes().total(), static_cast<std::size_t>(m * (4 * d + 4)));
        evicted.logWeights.assign(m, std::log(2.0f));
        QCOMPARE(evicted.bytes().total(), static_cast<std::size_t>(m * (4 * d + 4 + 2)));

        // Low-rank keys (§2): 2r + 2d bytes per token + the fp16 projection d × r.
        CompressedHead lowRank = f16;
        const int r = 16;
        lowRank.keyForm = CompressedHead::KeyForm::LowRank;
        lowRank.keys = randomMatrix(n, r, 3);
        lowRank.queryProjection = randomMatrix(d, r, 4);
        lowRank.validate();
        QCOMPARE(lowRank.keyRank(), r);
        QCOMPARE(lowRank.bytes().total(),
                 static_cast<std::size_t>(n * (2 * r + 2 * d) + d * r * 2));

        // K=V sharing (§3): values cost nothing.
        CompressedHead shared = f16;
        shared.valueForm = CompressedHead::ValueForm::SharedWithKeys;
        QCOMPARE(shared.bytes().total(), static_cast<std::size_t>(n * 2 * d));
    }

    void validateNamesTheProblem() {
        CompressedHead h = exactHead(randomMatrix(4, 8, 1), randomMatrix(4, 8, 2));
        h.validate();
        const auto expectFailure = [](const CompressedHead& bad, const char* fragment) {
            try {
                bad.validate();
            } catch (const Error& e) {
                return std::string(e.what()).find(fragment) != std::string::npos;
            }
            return false;
        };
        CompressedHead a = h;
        a.positions = {0, 2, 1, 3};
        QVERIFY(expectFailure(a, "positions must increase strictly"));
        CompressedHead b = h;
        b.positions[3] = 4;
        QVERIFY(expectFailure(b, "outside the context"));
        CompressedHead c = h;
        c.logWeights = {0.0f};
        QVERIFY(expectFailure(c, "1 log-weights for 4 kept tokens"));
        CompressedHead d = h;
        d.keys = randomMatrix(4, 7, 3);
        QVERIFY(expectFailure(d, "dense keys are 4 x 7, expected 4 x 8"));
        CompressedHead e = h;
        e.keyForm = CompressedHead::KeyForm::Quantized;
        e.quantizedKeys = quantize(h.keys, 4, 32, G::PerChannel);
        e.quantizedKeys.scales.pop_back();
        QVERIFY(expectFailure(e, "quantized keys"));
        // A recent window: the forms hold the tokens before it, the window some of them.
        CompressedHead w = h;
        w.keys = h.keys.topRows(3);
        w.values = h.values.topRows(3);
        w.recentKeys = h.keys.bottomRows(1);
        w.recentValues = h.values.bottomRows(1);
        w.validate();
        CompressedHead f = w;
        f.keys = h.keys; // all four rows as well as the window's one
        QVERIFY(expectFailure(f, "dense keys are 4 x 8, expected 3 x 8"));
        CompressedHead g = h;
        g.keys = g.values = Matrix(0, 8);
        g.recentKeys = h.keys;
        g.recentValues = h.values;
        QVERIFY(expectFailure(g, "a recent window of 4 tokens leaves none of the 4 kept tokens"));
        CompressedHead k = w;
        k.recentValues = h.values.bottomRows(2);
        QVERIFY(expectFailure(k, "the recent window's keys are 1 x 8 and its values 2 x 8"));
        CompressedHead l = w;
        l.keyForm = CompressedHead::KeyForm::LowRank;
        l.keys = randomMatrix(3, 2, 4);
        l.queryProjection = randomMatrix(8, 2, 5);
        QVERIFY(expectFailure(l, "not low-rank keys or values shared with the keys"));
    }

    // Bytes with a window: the older tokens in their form, the window's rows at 2 bytes each.
    void bytesWithARecentWindow() {
        const Matrix K = randomMatrix(40, 16, 6), V = randomMatrix(40, 16, 7);
        CompressedHead h = exactHead(K.topRows(30), V.topRows(30));
        h.keyForm = CompressedHead::KeyForm::Quantized;
        h.quantizedKeys = quantize(K.topRows(30), 2, 10, G::PerChannel);
        h.valueForm = CompressedHead::ValueForm::Quantized;
        h.quantizedValues = quantize(V.topRows(30), 2, 16, G::PerToken);
        const CacheBytes older = h.bytes();
        h.positions.resize(40);
        for (int j = 0; j < 40; ++j)
            h.positions[static_cast<std::size_t>(j)] = j;
        h.contextLength = 40;
        h.recentKeys = K.bottomRows(10);
        h.recentValues = V.bottomRows(10);
        h.validate();
        QCOMPARE(h.storedCount(), 30);
        const CacheBytes b = h.bytes();
        // 30 × 16 two-bit codes = 4 bytes a row; 3 key groups per channel, 1 value group a row.
        QCOMPARE(older.keys, std::size_t{30 * 4});
        QCOMPARE(b.keys, std::size_t{30 * 4 + 10 * 16 * 2});
        QCOMPARE(b.values, std::size_t{30 * 4 + 10 * 16 * 2});
        QCOMPARE(b.metadata, std::size_t{(3 * 16 + 30 * 1) * 2 * 2}); // identity index: none
        // Named parts, not a structured binding: clang 14 cannot capture one in a lambda.
        const auto parts = splitRecentWindow(h);
        const CompressedHead& o = parts.first;
        const CompressedHead& r = parts.second;
        QCOMPARE(o.keptCount(), 30);
        QCOMPARE(r.keptCount(), 10);
        QCOMPARE(r.positions.front(), 30);
        QCOMPARE(o.bytes().keys + r.bytes().keys, b.keys);
        KVS_VERIFY_THROWS(splitRecentWindow(o), ErrorCode::InvalidArgument, "needs a window");
    }
};

QTEST_GUILESS_MAIN(TestCompressedHead)
#include "test_compressed_head.moc"
