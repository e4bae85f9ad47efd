// SPDX-License-Identifier: MIT
// The codec and factored-key families: the rANS coder (round trip, rate within 2% of the empirical
// entropy plus the side information, damaged streams refused), and the codec schemes' byte counts
// against the formulas of ALGORITHMS.md §4, their exactness at 8 bits, and their refusals.
#include "kvs/attention_backend.h"
#include "kvs/metrics.h"
#include "kvs/rans.h"
#include "kvs/scheme.h"
#include "kvs/status.h"
#include "kvs_test.h"

#include <Eigen/SVD>
#include <QtTest>
#include <cmath>
#include <random>

using namespace kvs;
using test::compressWith;

namespace {

// Symbols of a discretized Gaussian (what rounding x/Δ gives), offset to be non-negative.
std::vector<std::uint32_t> gaussianSymbols(std::size_t count, double sigma, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, sigma);
    std::vector<std::uint32_t> out;
    for (std::size_t i = 0; i < count; ++i)
        out.push_back(
            static_cast<std::uint32_t>(std::clamp<long>(std::lround(normal(rng)) + 128, 0, 255)));
    return out;
}

HeadInput randomHead(int n, int d, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    HeadInput h;
    h.keys.resize(n, d);
    h.values.resize(n, d);
    for (Eigen::Index i = 0; i < h.keys.size(); ++i) {
        h.keys.data()[i] = 2.0f * normal(rng);
        h.values.data()[i] = normal(rng);
    }
    h.queries.push_back(h.keys);
    return h;
}

} // namespace

class TestCodecs : public QObject {
    Q_OBJECT

private slots:
    void ransRoundTripsAndMeetsTheEntropy_data() {
        QTest::addColumn<double>("sigma");
        QTest::addColumn<int>("count");
        QTest::newRow("peaked, 10k") << 0.7 << 10000;
        QTest::newRow("spread, 10k") << 6.0 << 10000;
        QTest::newRow("spread, 200k") << 12.0 << 200000;
    }
    void ransRoundTripsAndMeetsTheEntropy() {
        QFETCH(double, sigma);
        QFETCH(int, count);
        const auto symbols = gaussianSymbols(static_cast<std::size_t>(count), sigma, 7);
        const rans::Model model = rans::buildModel(symbols, 256);
        const auto stream = rans::encode(symbols, model);
        QCOMPARE(rans::decode(stream, model, symbols.size()), symbols);
        // Within 2% of the empirical entropy plus the model sent beside it.
        const double entropyBytes = rans::entropyBits(symbols, 256) / 8.0;
        const double coded = static_cast<double>(stream.size());
        const double side = static_cast<double>(model.sideBytes());
        QVERIFY2(coded + side <= 1.02 * (entropyBytes + side),
                 qPrintable(QString("%1 coded + %2 side vs entropy %3")
                                .arg(coded)
                                .arg(side)
                                .arg(entropyBytes)));
        QVERIFY(coded >= entropyBytes - 1.0); // no coder beats the entropy of its model
    }

    void ransSingleSymbolAndRefusals() {
        const std::vector<std::uint32_t> same(5000, 3);
        const rans::Model model = rans::buildModel(same, 4);
        const auto stream = rans::encode(same, model);
        QVERIFY(stream.size() <= 8); // a certain symbol costs (almost) nothing
        QCOMPARE(rans::decode(stream, model, same.size()), same);

        const auto symbols = gaussianSymbols(3000, 3.0, 11);
        const rans::Model m = rans::buildModel(symbols, 256);
        auto stream2 = rans::encode(symbols, m);
        auto cut = stream2;
        cut.resize(cut.size() / 2);
        KVS_VERIFY_THROWS(rans::decode(cut, m, symbols.size()), ErrorCode::Format, "ends after");
        KVS_VERIFY_THROWS(rans::decode(stream2, m, symbols.size() - 5), ErrorCode::Format,
                          "does not end");
        KVS_VERIFY_THROWS(rans::buildModel(std::vector<std::uint32_t>{300}, 256),
                          ErrorCode::InvalidArgument, "outside the alphabet");
        KVS_VERIFY_THROWS(rans::buildModel(std::vector<std::uint32_t>{}, 256),
                          ErrorCode::InvalidArgument, "no symbols");
    }

    // ALGORITHMS.md §4: b + 32/G bits per element (an fp16 scale and minimum per group of G),
    // with keys grouped per channel over tokens and values per token over channels.
    void uniformCodecBytesFollowTheFormula_data() {
        QTest::addColumn<QString>("setting");
        QTest::addColumn<int>("keyBits");
        QTest::addColumn<int>("valueBits");
        QTest::addColumn<int>("group");
        QTest::newRow("K4/V2, G32") << "codec.uniform:key_bits=4,value_bits=2" << 4 << 2 << 32;
        QTest::newRow("K2/V2, G16") << "codec.uniform:bits=2,group=16" << 2 << 2 << 16;
        QTest::newRow("8 bits, G64") << "codec.uniform:bits=8,group=64" << 8 << 8 << 64;
        QTest::newRow("3 bits, G32") << "codec.uniform:bits=3" << 3 << 3 << 32;
    }
    void uniformCodecBytesFollowTheFormula() {
        QFETCH(QString, setting);
        QFETCH(int, keyBits);
        QFETCH(int, valueBits);
        QFETCH(int, group);
        const int n = 128, d = 64;
        const CompressedHead c = compressWith(setting.toStdString(), randomHead(n, d, 3));
        QCOMPARE(c.quantizedKeys.bits, keyBits);
        QCOMPARE(c.quantizedValues.bits, valueBits);
        const CacheBytes b = c.bytes();
        const double elements = static_cast<double>(n) * d;
        QCOMPARE(static_cast<double>(b.keys) * 8.0, elements * keyBits); // 64 columns pack whole
        QCOMPARE(static_cast<double>(b.values) * 8.0, elements * valueBits);
        QCOMPARE(static_cast<double>(b.metadata) * 8.0, 2.0 * elements * 32.0 / group);
        QVERIFY(!c.entropyCoded);
    }

    // A quantizer round-trips its grid points: a group holding exactly the 2^b levels
    // min + k·scale decodes to them exactly.
    void uniformCodecRoundTripsGridPoints() {
        const int n = 32, d = 32;
        HeadInput h = randomHead(n, d, 5);
        for (int r = 0; r < n; ++r)
            for (int c = 0; c < d; ++c) {
                h.keys(r, c) = static_cast<float>((r + c) % 16) * 0.5f - 2.0f; // 16 levels
                h.values(r, c) = static_cast<float>((3 * r + c) % 16) * 0.25f;
            }
        const CompressedHead c = compressWith("codec.uniform:bits=4", h);
        QCOMPARE(c.quantizedKeys.dequantize(), h.keys);
        QCOMPARE(c.quantizedValues.dequantize(), h.values);
        // At 8 bits a random head is off by at most half a step per element.
        const HeadInput g = randomHead(64, 32, 9);
        const CompressedHead q = compressWith("codec.uniform:bits=8,group=32", g);
        const Matrix err = (q.quantizedValues.dequantize() - g.values).cwiseAbs();
        for (int r = 0; r < 64; ++r)
            for (int col = 0; col < 32; ++col)
                QVERIFY(err(r, col) <= 0.5f * q.quantizedValues.scaleAt(r, col) + 1e-3f);
    }

    void codecRefusals() {
        const auto bad = SchemeSetting::parse("codec.uniform:bits=5");
        KVS_VERIFY_ERROR(bad, "bits = 5 is not supported (one of 2, 3, 4, 8)");
        KVS_VERIFY_THROWS(compressWith("codec.uniform:group=24", randomHead(16, 64, 1)),
                          ErrorCode::InvalidArgument, "group = 24 does not divide the head dim 64");
        KVS_VERIFY_THROWS(compressWith("codec.uniform:group=24", randomHead(16, 64, 1)),
                          ErrorCode::InvalidArgument, "allowed: 4, 8, 16, 32, 64)");
        HeadInput shared = randomHead(16, 32, 2);
        shared.valuesSharedWithKeys = true;
        KVS_VERIFY_THROWS(compressWith("codec.entropy", shared), ErrorCode::Unsupported, "K=V");
    }

    // A recent window (KIVI's fp16 residual): the last w tokens stored as they are (fp16, not
    // rotated), the codes exactly those of coding the tokens before them alone, and the bytes
    // theirs plus 2 · (d + d_v) per window token.
    void recentWindowStaysFp16_data() {
        QTest::addColumn<QString>("setting");
        QTest::newRow("K2/V2, G16") << "codec.uniform:bits=2,group=16";
        QTest::newRow("K4/V2, Hadamard 16") << "codec.uniform:key_bits=4,value_bits=2,rotation=16";
        QTest::newRow("entropy-coded") << "codec.entropy:alpha=0.5";
    }
    void recentWindowStaysFp16() {
        QFETCH(QString, setting);
        const int n = 128, d = 64, w = 24;
        const HeadInput h = randomHead(n, d, 13);
        const CompressedHead c =
            compressWith(setting.toStdString() + ",recent=" + std::to_string(w), h);
        QCOMPARE(c.keptCount(), n);
        QCOMPARE(c.recentCount(), w);
        Matrix keys = h.keys.bottomRows(w), values = h.values.bottomRows(w);
        roundToHalf(keys);
        roundToHalf(values);
        QCOMPARE(c.recentKeys, keys);
        QCOMPARE(c.recentValues, values);

        HeadInput older = h;
        older.keys = h.keys.topRows(n - w);
        older.values = h.values.topRows(n - w);
        const CompressedHead alone = compressWith(setting.toStdString(), older);
        QCOMPARE(c.quantizedKeys.codes, alone.quantizedKeys.codes);
        QCOMPARE(c.quantizedValues.codes, alone.quantizedValues.codes);
        QCOMPARE(c.quantizedValues.scales, alone.quantizedValues.scales);
        QCOMPARE(c.bytes().total(), alone.bytes().total() + std::size_t{2 * 2 * d * w});
        if (c.entropyCoded)
            QCOMPARE(c.entropyCoded->elements, std::size_t{2 * d * (n - w)});

        // A window of the whole context leaves nothing to code: the fp16 cache.
        const CompressedHead all = compressWith(setting.toStdString() + ",recent=4096", h);
        QCOMPARE(all.keyForm, CompressedHead::KeyForm::Dense);
        QCOMPARE(all.bytes().total(), fp16BaselineBytes(n, d));
    }

    // Attention over a windowed head equals the log-sum-exp merge of attention over its two parts
    // (what the Vulkan backend runs): the CPU reference reads the rows concatenated.
    void splitWindowMergesToTheWholeHead() {
        const int n = 96, d = 32;
        CompressedHead c =
            compressWith("codec.uniform:bits=3,group=16,recent=20", randomHead(n, d, 21));
        for (int j = 0; j < n; ++j) // a bias on every token, the window's included
            c.logWeights.push_back(roundToHalf(0.4f * std::sin(0.3f * static_cast<float>(j))));
        std::mt19937 rng(4);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        Matrix queries(5, d);
        for (Eigen::Index i = 0; i < queries.size(); ++i)
            queries.data()[i] = normal(rng);
        AttendOptions options;
        options.wantProbabilities = options.wantScores = true;
        options.queryPositions = {10, 50, 76, 90, 95}; // the first two see no window token
        auto cpu = makeCpuBackend();
        const AttendResult whole = cpu->attend(c, queries, options).valueOrThrow();
        const auto [older, recent] = splitRecentWindow(c);
        AttendResult merged = cpu->attend(older, queries, options).valueOrThrow();
        mergeRecentWindow(merged, cpu->attend(recent, queries, options).valueOrThrow());
        QCOMPARE(merged.scores, whole.scores); // the same products, element by element
        QVERIFY(test::maxAbsDiff(merged.probabilities, whole.probabilities) < 1e-6);
        QVERIFY(test::maxAbsDiff(merged.outputs, whole.outputs) < 1e-5);
        for (std::size_t i = 0; i < whole.logSumExp.size(); ++i)
            QVERIFY(std::abs(merged.logSumExp[i] - whole.logSumExp[i]) < 1e-5);
        for (Eigen::Index i = 0; i < 5; ++i)
            QVERIFY(std::abs(merged.probabilities.row(i).sum() - 1.0f) < 1e-5);
    }

    void recentWindowRefusals() {
        KVS_VERIFY_ERROR(SchemeSetting::parse("factor.data_aware:rank=8+codec.uniform:recent=16"),
                         "recent = 16 after factor.data_aware");
        HeadInput shared = randomHead(16, 32, 2);
        shared.valuesSharedWithKeys = true;
        KVS_VERIFY_THROWS(compressWith("codec.uniform:recent=4", shared), ErrorCode::Unsupported,
                          "K=V");
    }

    // The fast transform against the explicit Sylvester matrix (H_1 = [1], H_2k = [[H, H],
    // [H, −H]]), block-diagonal, normalized: orthonormal, so applying it twice gives x back.
    void hadamardMatchesTheSylvesterMatrix_data() {
        QTest::addColumn<int>("width");
        QTest::addColumn<int>("block");
        QTest::newRow("d 32, one block") << 32 << 32;
        QTest::newRow("d 32, blocks of 8") << 32 << 8;
        QTest::newRow("d 48, blocks of 16") << 48 << 16;
        QTest::newRow("d 6, blocks of 2") << 6 << 2;
    }
    void hadamardMatchesTheSylvesterMatrix() {
        QFETCH(int, width);
        QFETCH(int, block);
        Eigen::MatrixXd h = Eigen::MatrixXd::Ones(1, 1);
        while (h.rows() < block) {
            const Eigen::Index k = h.rows();
            Eigen::MatrixXd next(2 * k, 2 * k);
            next << h, h, h, -h;
            h = next;
        }
        h /= std::sqrt(static_cast<double>(block));
        Eigen::MatrixXd full = Eigen::MatrixXd::Zero(width, width);
        for (int b = 0; b < width; b += block)
            full.block(b, b, block, block) = h;
        const Matrix x = randomHead(7, width, 4).keys;
        Matrix rotated = x;
        hadamardRotate(rotated, block);
        QVERIFY(test::maxAbsDiff(rotated, (x.cast<double>() * full).cast<float>()) < 1e-5);
        hadamardRotate(rotated, block);
        QVERIFY(test::maxAbsDiff(rotated, x) < 1e-5);
        Matrix y = x;
        KVS_VERIFY_THROWS((hadamardRotate(y, 3), 0), ErrorCode::InvalidArgument, "power of two");
    }

    // Rotation spreads an outlier channel over its block before rounding: values grouped per
    // token lose far less to one channel 30× the others; keys and values cost the same bytes and
    // attention reads them back un-rotated.
    void hadamardRotationTamesOutliers() {
        const int n = 64, d = 32;
        HeadInput h = randomHead(n, d, 12);
        h.values.col(5) *= 30.0f;
        const CompressedHead plain = compressWith("codec.uniform:bits=3", h);
        const CompressedHead rotated = compressWith("codec.uniform:bits=3,rotation=32", h);
        QCOMPARE(rotated.hadamardBlock, 32);
        QVERIFY(rotated.keysRotated() && rotated.valuesRotated());
        QCOMPARE(rotated.bytes().total(), plain.bytes().total());
        Matrix back = rotated.quantizedValues.dequantize();
        hadamardRotate(back, 32);
        const double plainError = (plain.quantizedValues.dequantize() - h.values).norm();
        const double rotatedError = (back - h.values).norm();
        QVERIFY2(rotatedError < 0.5 * plainError,
                 qPrintable(QString("%1 vs %2").arg(rotatedError).arg(plainError)));
        // The CPU reference attends with the un-rotated codes: at 8 bits, within 1% of exact.
        const CompressedHead fine = compressWith("codec.uniform:bits=8,rotation=8", h);
        auto cpu = makeCpuBackend();
        const Matrix queries = h.keys.topRows(4);
        const auto exact = cpu->attend(exactHead(h.keys, h.values), queries, {}).valueOrThrow();
        const auto coded = cpu->attend(fine, queries, {}).valueOrThrow();
        const double relative = (coded.outputs - exact.outputs).norm() / exact.outputs.norm();
        QVERIFY2(relative < 0.01, qPrintable(QString::number(relative)));
        // The entropy codec takes the same rotation: its decoded codes are the rotated values
        // within half a step, and the reference attends with them turned back.
        const CompressedHead coded8 = compressWith("codec.entropy:alpha=0.1,rotation=16", h);
        QCOMPARE(coded8.hadamardBlock, 16);
        Matrix turned = h.values;
        hadamardRotate(turned, 16);
        const Matrix decoded = coded8.quantizedValues.dequantize();
        for (int r = 0; r < n; ++r)
            for (int col = 0; col < d; ++col)
                QVERIFY(std::abs(decoded(r, col) - turned(r, col)) <=
                        0.5f * coded8.quantizedValues.scaleAt(r, col) * 1.01f + 1e-3f);
        const auto entropyOut = cpu->attend(coded8, queries, {}).valueOrThrow();
        QVERIFY((entropyOut.outputs - exact.outputs).norm() < 0.05 * exact.outputs.norm());
        KVS_VERIFY_THROWS(compressWith("codec.uniform:group=16,rotation=64", randomHead(8, 48, 1)),
                          ErrorCode::InvalidArgument, "allowed: 0 (none), 2, 4, 8, 16)");
    }

    // Outliers kept dense (ALGORITHMS.md §4, KVQuant's dense-and-sparse): round(f · n · d) of
    // each matrix, the planted extremes among them, decoded exactly (fp16) and left out of their
    // groups' ranges; b + 32/G + f · 48 bits per element; the device's per-row layout counted in
    // deviceBytes(); far lower error than the same codes without them.
    void outliersKeptDense_data() {
        QTest::addColumn<QString>("setting");
        QTest::addColumn<double>("fraction");
        QTest::newRow("2 bits, 1%") << "codec.uniform:bits=2,outliers=0.01" << 0.01;
        QTest::newRow("K4/V2, 2%, G16")
            << "codec.uniform:key_bits=4,value_bits=2,group=16,outliers=0.02" << 0.02;
        QTest::newRow("3 bits, 5%, Hadamard 8")
            << "codec.uniform:bits=3,rotation=8,outliers=0.05" << 0.05;
    }
    void outliersKeptDense() {
        QFETCH(QString, setting);
        QFETCH(double, fraction);
        const int n = 128, d = 64;
        HeadInput h = randomHead(n, d, 21);
        // Planted extremes: a few keys far outside their channel, values outside their token.
        const int planted[][2] = {{3, 7}, {40, 7}, {77, 30}, {100, 63}, {127, 0}};
        for (const auto& rc : planted) {
            h.keys(rc[0], rc[1]) = 40.0f * (rc[0] % 2 ? -1.0f : 1.0f);
            h.values(rc[0], rc[1]) = -25.0f;
        }
        const CompressedHead c = compressWith(setting.toStdString(), h);
        const CompressedHead plain =
            compressWith(setting.toStdString().substr(0, setting.indexOf(",outliers")), h);
        const auto expected = static_cast<int>(std::lround(fraction * n * d));
        QCOMPARE(c.quantizedKeys.outlierCount(), expected);
        QCOMPARE(c.quantizedValues.outlierCount(), expected);
        QCOMPARE(plain.quantizedKeys.outlierCount(), 0);
        // Bytes: the plain codec's plus 48 bits per outlier; on the device, rows + 1 row starts
        // and one word per outlier instead.
        const CacheBytes b = c.bytes(), pb = plain.bytes();
        QCOMPARE(b.keys, pb.keys + 6u * static_cast<std::size_t>(expected));
        QCOMPARE(b.values, pb.values + 6u * static_cast<std::size_t>(expected));
        QCOMPARE(b.metadata, pb.metadata);
        QCOMPARE(c.deviceBytes().keys, pb.keys + 4u * static_cast<std::size_t>(n + 1 + expected));
        QCOMPARE(8.0 * static_cast<double>(b.total() - pb.total()) / (2.0 * n * d),
                 48.0 * expected / (static_cast<double>(n) * d)); // f · 48 bits per element
        if (c.hadamardBlock > 0)
            return; // rotated codes: the planted elements are spread over their blocks
        // The planted elements are outliers and decode to their fp16 values exactly.
        const Matrix keys = c.quantizedKeys.dequantize(), values = c.quantizedValues.dequantize();
        for (const auto& rc : planted) {
            QCOMPARE(keys(rc[0], rc[1]), roundToHalf(h.keys(rc[0], rc[1])));
            QCOMPARE(values(rc[0], rc[1]), roundToHalf(h.values(rc[0], rc[1])));
        }
        // Every other element is within half a step of a range chosen without the outliers.
        const QuantizedMatrix& q = c.quantizedKeys;
        std::vector<bool> isOutlier(static_cast<std::size_t>(n * d), false);
        for (const std::uint32_t flat : q.outlierIndices)
            isOutlier[flat] = true;
        for (int r = 0; r < n; ++r)
            for (int col = 0; col < d; ++col)
                if (!isOutlier[static_cast<std::size_t>(r * d + col)])
                    QVERIFY(std::abs(keys(r, col) - h.keys(r, col)) <=
                            0.5f * q.scaleAt(r, col) * 1.01f + 1e-3f);
        // In the groups that held a planted extreme, the other elements' error falls several
        // fold: their range no longer stretches to it.
        const Matrix plainKeys = plain.quantizedKeys.dequantize();
        const Matrix plainValues = plain.quantizedValues.dequantize();
        const int gk = q.groupSize, gv = c.quantizedValues.groupSize;
        double error = 0.0, plainError = 0.0;
        for (const auto& rc : planted)
            for (int i = 0; i < n; ++i)
                for (int j = 0; j < d; ++j) {
                    if (isOutlier[static_cast<std::size_t>(i * d + j)])
                        continue;
                    if (j == rc[1] && i / gk == rc[0] / gk) { // the key group: channel over tokens
                        error += std::abs(keys(i, j) - h.keys(i, j));
                        plainError += std::abs(plainKeys(i, j) - h.keys(i, j));
                    }
                    if (i == rc[0] &&
                        j / gv == rc[1] / gv) { // the value group: token over channels
                        error += std::abs(values(i, j) - h.values(i, j));
                        plainError += std::abs(plainValues(i, j) - h.values(i, j));
                    }
                }
        QVERIFY2(error < 0.25 * plainError,
                 qPrintable(QString("%1 vs %2").arg(error).arg(plainError)));
    }

    void outlierRefusals() {
        KVS_VERIFY_ERROR(SchemeSetting::parse("codec.uniform:outliers=0.5"), "outliers");
        KVS_VERIFY_ERROR(SchemeSetting::parse("codec.entropy:outliers=0.01"), "unknown parameter");
        const HeadInput h = randomHead(32, 32, 4);
        CompressedHead c = compressWith("codec.uniform:bits=2,outliers=0.05", h);
        c.validate();
        const auto validated = [](const CompressedHead& head) {
            head.validate();
            return true;
        };
        CompressedHead unsorted = c;
        std::swap(unsorted.quantizedKeys.outlierIndices[0],
                  unsorted.quantizedKeys.outlierIndices[1]);
        KVS_VERIFY_THROWS(validated(unsorted), ErrorCode::InvalidArgument,
                          "quantized keys: outlier 1 has index");
        CompressedHead outside = c;
        outside.quantizedValues.outlierIndices.back() = 32 * 32;
        KVS_VERIFY_THROWS(validated(outside), ErrorCode::InvalidArgument, "stay below 1024");
        CompressedHead unpaired = c;
        unpaired.quantizedValues.outlierValues.pop_back();
        KVS_VERIFY_THROWS(validated(unpaired), ErrorCode::InvalidArgument, "outlier indices and");
        CompressedHead coded = compressWith("codec.entropy:alpha=1", h);
        coded.quantizedKeys.outlierIndices = {0};
        coded.quantizedKeys.outlierValues = {1.0f};
        KVS_VERIFY_THROWS(validated(coded), ErrorCode::InvalidArgument, "keep no outliers");
        KVS_VERIFY_THROWS(quantize(h.keys, 2, 32, QuantizedMatrix::Grouping::PerToken, 1.5),
                          ErrorCode::InvalidArgument, "outlier fraction must lie in [0, 1]");
    }

    // Keys quantized before RoPE: the codes hold the pre-RoPE keys, the reference decodes and
    // turns them by position (checked against a hand-written half-split rotation), the bytes are
    // those of post-RoPE codes, and the settings that cannot hold are refused.
    void preRopeKeysAreRotatedOnLoad() {
        const int n = 48, d = 16;
        HeadInput h = randomHead(n, d, 21);
        h.keysPreRope = h.keys;
        for (int i = 0; i < d / 2; ++i)
            h.keyRotation.frequencies.push_back(
                static_cast<float>(std::pow(10000.0, -2.0 * i / d)));
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < d / 2; ++i) {
                const double angle = j * static_cast<double>(h.keyRotation.frequencies[i]);
                const double x = h.keysPreRope(j, i), y = h.keysPreRope(j, i + d / 2);
                h.keys(j, i) = static_cast<float>(x * std::cos(angle) - y * std::sin(angle));
                h.keys(j, i + d / 2) =
                    static_cast<float>(y * std::cos(angle) + x * std::sin(angle));
            }
        h.queries = {h.keys};
        const CompressedHead pre = compressWith("codec.uniform:bits=8,group=16,pre_rope=1", h);
        QVERIFY(hasPreRopeQuantizedKeys(pre));
        QCOMPARE(pre.bytes().total(),
                 compressWith("codec.uniform:bits=8,group=16", h).bytes().total());
        // The decoded keys are the post-RoPE keys within the 8-bit step (a rotation keeps norms).
        const Matrix keys = rotatedKeys(pre);
        QVERIFY2((keys - h.keys).norm() < 0.01 * h.keys.norm(),
                 qPrintable(QString::number((keys - h.keys).norm() / h.keys.norm())));
        auto cpu = makeCpuBackend();
        const Matrix queries = h.keys.bottomRows(3);
        const auto exact = cpu->attend(exactHead(h.keys, h.values), queries, {}).valueOrThrow();
        const auto coded = cpu->attend(pre, queries, {}).valueOrThrow();
        QVERIFY((coded.outputs - exact.outputs).norm() < 0.02 * exact.outputs.norm());

        // The entropy codec codes the same pre-RoPE keys (fine steps: close to the keys).
        const CompressedHead entropy = compressWith("codec.entropy:alpha=0.05,pre_rope=1", h);
        QVERIFY(hasPreRopeQuantizedKeys(entropy));
        QVERIFY((rotatedKeys(entropy) - h.keys).norm() < 0.02 * h.keys.norm());
        KVS_VERIFY_THROWS(compressWith("codec.entropy:pre_rope=1", randomHead(8, 16, 1)),
                          ErrorCode::Unsupported, "codec.entropy: pre_rope = 1 needs a RoPE model");
        KVS_VERIFY_THROWS(compressWith("codec.uniform:pre_rope=1,group=16", randomHead(8, 16, 1)),
                          ErrorCode::Unsupported, "needs a RoPE model");
        KVS_VERIFY_THROWS(compressWith("codec.uniform:pre_rope=1,rotation=16,group=16", h),
                          ErrorCode::InvalidArgument, "allowed: rotation = 0");
    }

    // The entropy-coded codec: the bytes are the streams plus their side information, the
    // decoded values sit within half a step of the input, and a coarser step costs fewer bits.
    void entropyCodecReportsItsRealRate() {
        const int n = 256, d = 64;
        const HeadInput h = randomHead(n, d, 13);
        const CompressedHead fine = compressWith("codec.entropy:alpha=0.25", h);
        QVERIFY(fine.entropyCoded.has_value());
        const auto& coded = *fine.entropyCoded;
        const CacheBytes b = fine.bytes();
        QCOMPARE(b.keys, coded.keyStreamBytes);
        QCOMPARE(b.values, coded.valueStreamBytes);
        QCOMPARE(b.metadata, coded.sideBytes);
        QCOMPARE(coded.elements, static_cast<std::size_t>(2 * n * d));
        // Within 2% of the entropy plus the side information the stream needs.
        const double entropyBytes = (coded.keyEntropyBits + coded.valueEntropyBits) / 8.0;
        QVERIFY2(static_cast<double>(b.total()) <=
                     1.02 * (entropyBytes + static_cast<double>(coded.sideBytes)) + 8.0,
                 qPrintable(QString("%1 B vs entropy %2 B").arg(b.total()).arg(entropyBytes)));
        // The device holds the decoded fixed-width codes: more than the coded rate here.
        QVERIFY(fine.deviceBytes().total() > b.total());
        const Matrix err = (fine.quantizedValues.dequantize() - h.values).cwiseAbs();
        for (int c = 0; c < d; ++c)
            QVERIFY(err.col(c).maxCoeff() <= 0.5f * fine.quantizedValues.scaleAt(0, c) + 2e-3f);
        const CompressedHead coarse = compressWith("codec.entropy:alpha=1", h);
        QVERIFY(coarse.bytes().total() < b.total());
    }

    // The rate of a result in bits per element, hand-computed: 1000 fp16 elements (2000 B)
    // stored in 500 B, 800 of them coded in 3000 stream bits + 200 side bits at an entropy of
    // 2800 bits; 100 B are not coded (positions, a dense part).
    void cacheRateFromTheCodedBits() {
        HeadMetrics h;
        h.fp16Bytes = 2000;
        h.bytes.keys = 300;
        h.bytes.values = 100;
        h.bytes.metadata = 100;
        h.streamBits = 3000;
        h.sideBits = 200;
        h.entropyBits = 2800;
        h.codedElements = 800;
        const CacheRate r = cacheRate(h);
        QVERIFY(r.entropyCoded());
        QCOMPARE(r.bitsPerElement, 4.0);        // 8·500 / 1000
        QCOMPARE(r.codedBitsPerElement, 4.0);   // 3200 / 800
        QCOMPARE(r.streamBitsPerElement, 3.75); // 3000 / 800
        QCOMPARE(r.sideBitsPerElement, 0.25);   // 200 / 800
        QCOMPARE(r.entropyBitsPerElement, 3.5); // 2800 / 800
        QCOMPARE(r.gapBitsPerElement(), 0.5);
        QCOMPARE(r.atEntropyBitsPerElement, 3.6); // (4000 − 3200 + 2800) / 1000
        // A fixed-width form: only the rate per fp16 element, no coded part.
        HeadMetrics fixed;
        fixed.fp16Bytes = 2000;
        fixed.bytes.values = 250;
        const CacheRate f = cacheRate(fixed);
        QVERIFY(!f.entropyCoded());
        QCOMPARE(f.bitsPerElement, 2.0);
        QVERIFY(std::isnan(f.codedBitsPerElement) && std::isnan(f.gapBitsPerElement()));
        // A real entropy-coded result: its rate matches its bytes.
        const HeadInput in = randomHead(256, 64, 5);
        const CompressedHead c = compressWith("codec.entropy:alpha=0.5", in);
        HeadMetrics m;
        m.fp16Bytes = 4u * 64u * 256u;
        m.bytes = c.bytes();
        m.streamBits = 8.0 * static_cast<double>(c.entropyCoded->keyStreamBytes +
                                                 c.entropyCoded->valueStreamBytes);
        m.sideBits = 8.0 * static_cast<double>(c.entropyCoded->sideBytes);
        m.entropyBits = c.entropyCoded->keyEntropyBits + c.entropyCoded->valueEntropyBits;
        m.codedElements = c.entropyCoded->elements;
        const CacheRate e = cacheRate(m);
        QCOMPARE(e.codedBitsPerElement, e.bitsPerElement); // every element coded, nothing else
        QVERIFY(e.gapBitsPerElement() >= 0.0);
        QVERIFY(e.gapBitsPerElement() < 0.02 * e.entropyBitsPerElement + e.sideBitsPerElement);
    }

    // Factored keys (ALGORITHMS.md §2), data-aware: full rank reproduces the scores within
    // float rounding; at rank r the score error is the Eckart–Young optimum — the tail of the
    // singular values of Q Kᵀ — and the bytes are r numbers per key plus the d × r projection.
    void dataAwareFactorsReachEckartYoung_data() {
        QTest::addColumn<int>("rank");
        QTest::newRow("full rank") << 32;
        QTest::newRow("d/2") << 16;
        QTest::newRow("d/4") << 8;
        QTest::newRow("d/8") << 4;
    }
    void dataAwareFactorsReachEckartYoung() {
        QFETCH(int, rank);
        const int n = 96, d = 32;
        HeadInput h = randomHead(n, d, 21);
        std::mt19937 rng(4);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        Matrix q(n, d);
        for (Eigen::Index i = 0; i < q.size(); ++i)
            q.data()[i] = normal(rng) * (1.0f + static_cast<float>(i % d)); // anisotropic
        h.queries = {q};
        const CompressedHead c =
            compressWith("factor.data_aware:precision=32,rank=" + std::to_string(rank), h);
        QCOMPARE(c.keyForm, CompressedHead::KeyForm::LowRank);
        QCOMPARE(static_cast<int>(c.keys.cols()), rank);
        const Eigen::MatrixXd exact = q.cast<double>() * h.keys.cast<double>().transpose();
        const Eigen::MatrixXd approx =
            (q * c.queryProjection).cast<double>() * c.keys.cast<double>().transpose();
        const double error = (exact - approx).norm();
        const Eigen::VectorXd sigma = Eigen::BDCSVD<Eigen::MatrixXd>(exact).singularValues();
        const double optimum = sigma.tail(sigma.size() - rank).norm();
        QVERIFY2(std::abs(error - optimum) <= 1e-4 * exact.norm(),
                 qPrintable(QString("score error %1, Eckart-Young %2 (of %3)")
                                .arg(error)
                                .arg(optimum)
                                .arg(exact.norm())));
        // fp16 storage: r coefficients per key, the projection as metadata.
        const CompressedHead stored =
            compressWith("factor.data_aware:rank=" + std::to_string(rank), h);
        QCOMPARE(stored.bytes().keys, static_cast<std::size_t>(n * rank * 2));
        QCOMPARE(stored.bytes().values, static_cast<std::size_t>(n * d * 2));
        QCOMPARE(stored.bytes().metadata, static_cast<std::size_t>(d * rank * 2));
    }

    void factorRefusals() {
        KVS_VERIFY_THROWS(compressWith("factor.data_aware:rank=40", randomHead(16, 32, 1)),
                          ErrorCode::InvalidArgument, "rank = 40 is above the head dim 32");
        HeadInput shared = randomHead(16, 32, 2);
        shared.valuesSharedWithKeys = true;
        KVS_VERIFY_THROWS(compressWith("factor.data_aware", shared), ErrorCode::Unsupported, "K=V");
    }
};

QTEST_APPLESS_MAIN(TestCodecs)
#include "test_codecs.moc"
