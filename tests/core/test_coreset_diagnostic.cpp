// SPDX-License-Identifier: MIT
// The coreset diagnostic of ALGORITHMS.md §1c in the bound's own terms (HeadMetrics::rhoEff,
// valueScaledError, boundTokens), on a hand-built capture whose keys and values carry a large
// shared offset: ρ must see the centred keys (softmax ignores the offset), ε the worst probe
// query with values scaled by their spread around their mean, and the bound follow from both.
// Every expected number is computed here in double from the formulas, not by the evaluator.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/scheme.h"
#include "kvs_test.h"

#include <QtTest>
#include <array>
#include <cmath>

using namespace kvs;

namespace {

// One layer, one head, d = 2: a context of 4 tokens and 2 probe tokens. Keys (10 ± 1, 10):
// centred, (±1, 0); values (101 ± 1, 5): centred, (±1, 0), spread 1. Keeping tokens 0 and 3
// keeps the two keys at 9 and values at 100.
constexpr int kContext = 4;
constexpr int kTokens = 6;
constexpr std::array<float, kTokens> kKeyX = {9, 11, 11, 9, 10, 10};
// The same with the first probe token's key far out: the second probe row's prefix (tokens 0…4)
// has another spread than the first's (0…3), so a prefix one token too long or too short shows.
constexpr std::array<float, kTokens> kFarKeyX = {9, 11, 11, 9, 20, 10};
constexpr std::array<float, kTokens> kValueX = {100, 102, 102, 100, 101, 101};
constexpr std::array<float, kTokens> kQueryX = {0, 0, 0, 0, 1, 2}; // probe queries (1,0), (2,0)

Capture offsetCapture(const std::array<float, kTokens>& keyX = kKeyX) {
    Capture c;
    c.config.layers = 1;
    c.config.heads = 1;
    c.config.kvHeads = 1;
    c.config.headDim = 2;
    c.config.width = 2;
    c.config.vocab = 4;
    c.config.maxPositions = 64;
    c.config.positions = PositionKind::Learned;
    c.tokens.assign(kTokens, 0);
    c.modelName = "hand-built";
    KvHeadCapture head;
    head.keys.resize(kTokens, 2);
    head.values.resize(kTokens, 2);
    Matrix queries = Matrix::Zero(kTokens, 2);
    for (int i = 0; i < kTokens; ++i) {
        head.keys.row(i) << keyX[static_cast<std::size_t>(i)], 10.0f;
        head.values.row(i) << kValueX[i], 5.0f;
        queries(i, 0) = kQueryX[i];
    }
    head.queries.push_back(std::move(queries));
    LayerCapture layer;
    layer.kvHeads.push_back(std::move(head));
    c.layers.push_back(std::move(layer));
    return c;
}

// Attention of query (qx, 0) over the context tokens in `kept`, first coordinate of the output
// (the second is 5 for every value, so it never differs).
double attendX(double qx, double scale, const std::vector<int>& kept) {
    double num = 0, den = 0;
    for (int i : kept) {
        const double w = std::exp(qx * kKeyX[static_cast<std::size_t>(i)] * scale);
        num += w * kValueX[static_cast<std::size_t>(i)];
        den += w;
    }
    return num / den;
}

} // namespace

class TestCoresetDiagnostic : public QObject {
    Q_OBJECT
private slots:
    // Sinks + window keeping tokens 0 and 3 (fp32, no weights): every number by hand.
    void boundUsesCentredKeysAndTheWorstQuery() {
        const Capture capture = offsetCapture();
        auto backend = makeCpuBackend();
        EvalOptions options;
        options.contextTokens = kContext;
        options.modelQuality = false;
        const auto setting =
            SchemeSetting::parse("select.sinks_window:tokens=2,sinks=1,precision=32");
        KVS_VERIFY_OK(setting);
        const auto result = evaluate(capture, nullptr, setting.value(), *backend, options);
        KVS_VERIFY_OK(result);
        QCOMPARE(static_cast<int>(result->heads.size()), 1);
        const HeadMetrics& h = result->heads.front();
        QCOMPARE(h.keptTokens, 2);

        const double scale = layerAttentionScale(capture.config, 0);
        // ρ = max‖q‖ · max‖k − k̄‖ · scale = 2 · 1 · scale (not 2 · ‖(11, 10)‖ · scale = 29.7 ·
        // scale, what the uncentred keys would give).
        QVERIFY2(std::abs(h.rhoEff - 2.0 * scale) < 1e-6, qPrintable(QString::number(h.rhoEff)));

        // ε per probe query: |o − ô| / spread, spread = max‖v − v̄‖ = 1.
        std::vector<double> errors;
        for (int t = kContext; t < kTokens; ++t) {
            const double qx = kQueryX[static_cast<std::size_t>(t)];
            errors.push_back(
                std::abs(attendX(qx, scale, {0, 1, 2, 3}) - attendX(qx, scale, {0, 3})));
        }
        const double worst = std::max(errors[0], errors[1]);
        const double mean = (errors[0] + errors[1]) / 2.0;
        QVERIFY(errors[0] != errors[1]); // the worst and the mean differ on this case
        QVERIFY2(std::abs(h.valueScaledError - worst) <= 1e-5 * worst,
                 qPrintable(QStringLiteral("%1 vs %2").arg(h.valueScaledError).arg(worst)));
        QVERIFY(std::abs(h.meanValueScaledError - mean) <= 1e-5 * mean);

        // The bound at that ε: √d·e^ρ/ε.
        const double bound = std::sqrt(2.0) * std::exp(h.rhoEff) / h.valueScaledError;
        QVERIFY(std::abs(h.boundTokens - bound) <= 1e-9 * bound);
    }

    // The exact cache has ε = 0: the bound asks for infinitely many tokens, never a finite or
    // "perfect" number.
    void exactCacheHasNoFiniteBound() {
        const Capture capture = offsetCapture();
        auto backend = makeCpuBackend();
        EvalOptions options;
        options.contextTokens = kContext;
        options.modelQuality = false;
        const auto result =
            evaluate(capture, nullptr, SchemeSetting::parse("identity").value(), *backend, options);
        KVS_VERIFY_OK(result);
        const HeadMetrics& h = result->heads.front();
        QCOMPARE(h.valueScaledError, 0.0);
        QVERIFY2(std::isinf(h.boundTokens), qPrintable(QString::number(h.boundTokens)));
    }

    // Streaming: probe row t's ρ uses the keys of tokens 0 … t − 1 centred on their own mean.
    // Row 4 sees 9, 11, 11, 9 (spread 1) with ‖q‖ = 1; row 5 sees 9, 11, 11, 9, 20 (mean 12,
    // spread 8) with ‖q‖ = 2: ρ = max(1 · 1, 2 · 8) · scale = 16 · scale. A prefix one token too
    // long would give max(1 · 8, 2 · 8.33…) · scale; one too short, max(1 · 1, 2 · 1) · scale.
    void streamingSpreadsArePerPrefix() {
        const Capture capture = offsetCapture(kFarKeyX);
        auto backend = makeCpuBackend();
        EvalOptions options;
        options.contextTokens = kContext;
        options.modelQuality = false;
        options.mode = EvalMode::Streaming;
        const auto setting =
            SchemeSetting::parse("select.sinks_window:tokens=2,sinks=1,precision=32");
        const auto result = evaluate(capture, nullptr, setting.value(), *backend, options);
        KVS_VERIFY_OK(result);
        const double scale = layerAttentionScale(capture.config, 0);
        const double rho = result->heads.front().rhoEff;
        QVERIFY2(std::abs(rho - 16.0 * scale) < 1e-5, qPrintable(QString::number(rho / scale)));
    }

    // Streaming mode reports the worst probe row too (each row against its own summary).
    void streamingTakesTheWorstRow() {
        const Capture capture = offsetCapture();
        auto backend = makeCpuBackend();
        EvalOptions options;
        options.contextTokens = kContext;
        options.modelQuality = false;
        const auto setting =
            SchemeSetting::parse("select.sinks_window:tokens=2,sinks=1,precision=32");
        EvalOptions streaming = options;
        streaming.mode = EvalMode::Streaming;
        const auto result = evaluate(capture, nullptr, setting.value(), *backend, streaming);
        KVS_VERIFY_OK(result);
        const HeadMetrics& h = result->heads.front();
        // Row t sees tokens 0 … t − 1, keys centred on their own mean: spread 1 for both rows
        // (9, 11, 11, 9 and then 10 as well), so ρ is the second row's 2 · 1 · scale.
        const double scale = layerAttentionScale(capture.config, 0);
        QVERIFY2(std::abs(h.rhoEff - 2.0 * scale) < 1e-6, qPrintable(QString::number(h.rhoEff)));
        QVERIFY(h.valueScaledError >= h.meanValueScaledError);
        QVERIFY(h.valueScaledError > 0);
        QVERIFY(std::abs(h.boundTokens - std::sqrt(2.0) * std::exp(h.rhoEff) /
                                             h.valueScaledError) <= 1e-9 * h.boundTokens);
    }
};

QTEST_GUILESS_MAIN(TestCoresetDiagnostic)
#include "test_coreset_diagnostic.moc"
