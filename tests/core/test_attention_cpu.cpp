// SPDX-License-Identifier: MIT
// The CPU reference backend: identity = exact attention bit for bit, agreement with a
// double-precision hand computation for every key/value form, causal masking, GQA, and
// mergeAttention.
#include "kvs/attention_backend.h"
#include "kvs/probe_attention.h"
#include "kvs_test.h"

#include <QtTest>
#include <atomic>
#include <cmath>
#include <limits>
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

using MatrixD = MatrixT<double>;

// ALGORITHMS.md §0 written out in double, one query and one key at a time, on the decoded data.
struct Reference {
    MatrixD outputs;
    MatrixD probabilities;
    std::vector<double> logSumExp;
};

Reference handComputed(const CompressedHead& h, const Matrix& queries,
                       const std::vector<std::int32_t>& queryPositions) {
    const Matrix keys =
        h.keyForm == CompressedHead::KeyForm::Quantized ? h.quantizedKeys.dequantize() : h.keys;
    const Matrix values = h.valueForm == CompressedHead::ValueForm::Quantized
                              ? h.quantizedValues.dequantize()
                              : h.values;
    MatrixD q = queries.cast<double>();
    if (h.keyForm == CompressedHead::KeyForm::LowRank)
        q = q * h.queryProjection.cast<double>();
    const double scale = 1.0 / std::sqrt(static_cast<double>(h.headDim));
    const int m = h.keptCount();
    Reference ref;
    ref.outputs = MatrixD::Zero(queries.rows(), values.cols());
    ref.probabilities = MatrixD::Zero(queries.rows(), m);
    ref.logSumExp.assign(static_cast<std::size_t>(queries.rows()),
                         -std::numeric_limits<double>::infinity());
    for (Eigen::Index i = 0; i < queries.rows(); ++i) {
        std::vector<double> s(static_cast<std::size_t>(m), -INFINITY);
        double top = -INFINITY;
        for (int j = 0; j < m; ++j) {
            if (!queryPositions.empty() && h.positions[static_cast<std::size_t>(j)] >
                                               queryPositions[static_cast<std::size_t>(i)])
                continue;
            double dot = 0.0;
            for (Eigen::Index c = 0; c < q.cols(); ++c)
                dot += q(i, c) * static_cast<double>(keys(j, c));
            s[static_cast<std::size_t>(j)] =
                dot * scale +
                (h.logWeights.empty()
                     ? 0.0
                     : static_cast<double>(h.logWeights[static_cast<std::size_t>(j)]));
            top = std::max(top, s[static_cast<std::size_t>(j)]);
        }
        if (top == -INFINITY)
            continue;
        double sum = 0.0;
        for (int j = 0; j < m; ++j)
            sum += std::exp(s[static_cast<std::size_t>(j)] - top);
        for (int j = 0; j < m; ++j) {
            const double p = std::exp(s[static_cast<std::size_t>(j)] - top) / sum;
            ref.probabilities(i, j) = p;
            for (Eigen::Index c = 0; c < values.cols(); ++c)
                ref.outputs(i, c) += p * static_cast<double>(values(j, c));
        }
        ref.logSumExp[static_cast<std::size_t>(i)] = top + std::log(sum);
    }
    return ref;
}

} // namespace

class TestAttentionCpu : public QObject {
    Q_OBJECT
    std::unique_ptr<AttentionBackend> m_cpu = makeCpuBackend();

private slots:
    // The identity scheme is exact attention, bit for bit: the same numbers as a plain Eigen
    // softmax(Q Kᵀ/√d) V written in the obvious way with coefficient-wise products (lazyProduct:
    // a GEMM's summation order depends on OpenMP threads and blocking, see cpu_backend.cpp).
    void identityIsExactAttentionBitForBit_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("d");
        QTest::addColumn<int>("queries");
        QTest::addRow("n1_d64") << 1 << 64 << 1;
        QTest::addRow("n100_d64") << 100 << 64 << 7;
        QTest::addRow("n333_d128") << 333 << 128 << 16;
        QTest::addRow("n2048_d32") << 2048 << 32 << 3;
    }
    void identityIsExactAttentionBitForBit() {
        QFETCH(int, n);
        QFETCH(int, d);
        QFETCH(int, queries);
        const Matrix K = randomMatrix(n, d, 1, 2.0f);
        const Matrix V = randomMatrix(n, d, 2);
        const Matrix Q = randomMatrix(queries, d, 3, 2.0f);

        Matrix S = Q.lazyProduct(K.transpose()) * (1.0f / std::sqrt(static_cast<float>(d)));
        Matrix P(S.rows(), S.cols());
        for (Eigen::Index i = 0; i < S.rows(); ++i) {
            P.row(i) = (S.row(i).array() - S.row(i).maxCoeff()).exp();
            P.row(i) /= P.row(i).sum();
        }
        const Matrix O = P.lazyProduct(V);

        AttendOptions options;
        options.wantProbabilities = true;
        options.wantScores = true;
        const auto result = m_cpu->attend(exactHead(K, V), Q, options);
        KVS_VERIFY_OK(result);
        QVERIFY(result->outputs == O); // bit for bit
        QVERIFY(result->probabilities == P);
        QVERIFY(result->scores == S);
        QCOMPARE(result->logSumExp.size(), static_cast<std::size_t>(queries));
    }

    // Every form against the double-precision hand computation on the same decoded data.
    // Tolerance: fp32 dot products of length ≤ 128 have relative errors of a few 1e-7 of Σ|q_c k_c|
    // (≤ ~100 here, so |Δs| ≲ 3e-5 at worst); |Δp| ≤ 2p|Δs| ⇒ probabilities within 5e-5 and
    // outputs within 1e-5 · max|o| in practice (measured ≤ 2e-6).
    void formsMatchDoublePrecision_data() {
        QTest::addColumn<QString>("form");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("d");
        for (const char* form : {"dense_f32", "dense_f16", "lowrank", "qk4_qv2", "qk8_qv3",
                                 "ragged_bias", "shared_kv", "causal"})
            for (int d : {32, 128})
                QTest::addRow("%s_d%d", form, d) << QString(form) << 200 << d;
    }
    void formsMatchDoublePrecision() {
        QFETCH(QString, form);
        QFETCH(int, n);
        QFETCH(int, d);
        const Matrix K = randomMatrix(n, d, 11, 1.5f);
        const Matrix V = randomMatrix(n, d, 12);
        const Matrix Q = randomMatrix(5, d, 13, 1.5f);
        CompressedHead h = exactHead(K, V, form == "dense_f16" ? Precision::F16 : Precision::F32);
        std::vector<std::int32_t> queryPositions;
        if (form == "lowrank") {
            h.keyForm = CompressedHead::KeyForm::LowRank;
            h.queryProjection = randomMatrix(d, d / 4, 14, 0.5f);
            h.keys = randomMatrix(n, d / 4, 15, 2.0f);
        } else if (form == "qk4_qv2" || form == "qk8_qv3") {
            const bool four = form == "qk4_qv2";
            h.keyForm = CompressedHead::KeyForm::Quantized;
            h.quantizedKeys = quantize(K, four ? 4 : 8, 32, G::PerChannel);
            h.valueForm = CompressedHead::ValueForm::Quantized;
            h.quantizedValues = quantize(V, four ? 2 : 3, 32, G::PerToken);
        } else if (form == "ragged_bias") {
            CompressedHead r;
            r.headDim = d;
            r.contextLength = n;
            std::mt19937 rng(5);
            for (int j = 0; j < n; ++j)
                if (rng() % 3 == 0)
                    r.positions.push_back(j);
            const int m = r.keptCount();
            r.keys.resize(m, d);
            r.values.resize(m, d);
            for (int j = 0; j < m; ++j) {
                r.keys.row(j) = K.row(r.positions[static_cast<std::size_t>(j)]);
                r.values.row(j) = V.row(r.positions[static_cast<std::size_t>(j)]);
                r.logWeights.push_back(j % 5 == 0 ? -INFINITY : std::log(1.0f + float(j % 4)));
            }
            r.keyPrecision = r.valuePrecision = Precision::F32;
            h = r;
        } else if (form == "shared_kv") {
            h.valueForm = CompressedHead::ValueForm::SharedWithKeys;
            h.values = K;
        } else if (form == "causal") {
            queryPositions = {0, 1, 50, 198, 199};
        }
        AttendOptions options;
        options.queryPositions = queryPositions;
        options.wantProbabilities = true;
        const auto result = m_cpu->attend(h, Q, options);
        KVS_VERIFY_OK(result);
        const Reference ref = handComputed(h, Q, queryPositions);
        const double scale = std::max(1e-30, ref.outputs.cwiseAbs().maxCoeff());
        const double err = (result->outputs.cast<double>() - ref.outputs).cwiseAbs().maxCoeff();
        QVERIFY2(err <= 1e-5 * scale, qPrintable(QString("max error %1").arg(err)));
        QVERIFY((result->probabilities.cast<double>() - ref.probabilities).cwiseAbs().maxCoeff() <
                5e-5);
        for (std::size_t i = 0; i < ref.logSumExp.size(); ++i)
            QVERIFY(std::abs(result->logSumExp[i] - ref.logSumExp[i]) <
                    1e-5 * std::max(1.0, std::abs(ref.logSumExp[i])));
        if (form == "causal") {
            QCOMPARE(result->probabilities(0, 0), 1.0f); // the first position sees only itself
            QCOMPARE(result->outputs.row(0), h.values.row(0));
        }
    }

    void fullyMaskedRowIsZero() {
        CompressedHead h = exactHead(randomMatrix(4, 8, 1), randomMatrix(4, 8, 2));
        h.logWeights.assign(4, -INFINITY);
        AttendOptions options;
        options.wantProbabilities = true;
        const auto result = m_cpu->attend(h, randomMatrix(2, 8, 3), options);
        KVS_VERIFY_OK(result);
        QVERIFY(result->outputs.isZero());
        QVERIFY(result->probabilities.isZero());
        QVERIFY(std::isinf(result->logSumExp[0]) && result->logSumExp[0] < 0);
    }

    void groupedQueryMapping() {
        const int d = 16;
        std::vector<CompressedHead> heads = {
            exactHead(randomMatrix(30, d, 1), randomMatrix(30, d, 2)),
            exactHead(randomMatrix(20, d, 3), randomMatrix(20, d, 4))};
        std::vector<Matrix> queries;
        for (unsigned i = 0; i < 6; ++i)
            queries.push_back(randomMatrix(2, d, 10 + i));
        LayerAttendRequest request{heads, queries, 3, {}};
        auto results = m_cpu->attendLayer(request);
        KVS_VERIFY_OK(results);
        QCOMPARE(results->size(), std::size_t(6));
        for (std::size_t q = 0; q < 6; ++q) {
            const auto one = m_cpu->attend(heads[q / 3], queries[q], {});
            QVERIFY((*results)[q].outputs == one->outputs);
        }
        LayerAttendRequest wrong{heads, queries, 2, {}};
        KVS_VERIFY_ERROR(m_cpu->attendLayer(wrong), "6 query heads for 2 KV heads in groups of 2");
    }

    // The evaluator's layer loop: layer l's queries attend to layer l's heads at layer l's scale,
    // exactly as one attendLayer call each; mismatched shapes and a cancel are errors.
    void probeAttentionIsOneLayerCallPerLayer() {
        const int d = 8;
        std::vector<std::vector<CompressedHead>> heads(2);
        std::vector<std::vector<Matrix>> queries(2);
        for (unsigned l = 0; l < 2; ++l) {
            heads[l].push_back(
                exactHead(randomMatrix(12 + 5 * l, d, 1 + l), randomMatrix(12 + 5 * l, d, 3 + l)));
            for (unsigned q = 0; q < 2; ++q)
                queries[l].push_back(randomMatrix(3, d, 10 + 2 * l + q));
        }
        ProbeRequest probe;
        probe.heads = heads;
        probe.queries = queries;
        probe.groupSize = 2;
        probe.scales = {0.5f, 0.25f};
        probe.probabilities = true;
        const auto layersResult = probeAttention(probe, *m_cpu);
        KVS_VERIFY_OK(layersResult);
        const auto& layers = layersResult.value();
        QCOMPARE(layers.size(), std::size_t(2));
        for (std::size_t l = 0; l < 2; ++l) {
            LayerAttendRequest one{heads[l], queries[l], 2, {}};
            one.options.scale = probe.scales[l];
            one.options.wantProbabilities = true;
            const auto want = m_cpu->attendLayer(one).value();
            QCOMPARE(layers[l].size(), std::size_t(2));
            for (std::size_t q = 0; q < 2; ++q) {
                QVERIFY(layers[l][q].outputs == want[q].outputs);
                QVERIFY(layers[l][q].probabilities == want[q].probabilities);
            }
        }
        // The scale matters: layer 1 at layer 0's scale differs.
        LayerAttendRequest other{heads[1], queries[1], 2, {}};
        other.options.scale = 0.5f;
        QVERIFY(m_cpu->attendLayer(other).value()[0].outputs != layers[1][0].outputs);

        probe.scales = {0.5f};
        KVS_VERIFY_ERROR(probeAttention(probe, *m_cpu), "1 layer scales for 2 layers");
        probe.scales.clear();
        probe.queries = std::span(queries).first(1);
        KVS_VERIFY_ERROR(probeAttention(probe, *m_cpu),
                         "2 layers of heads but 1 layers of queries");
        probe.queries = queries;
        probe.groupSize = 1;
        KVS_VERIFY_ERROR(probeAttention(probe, *m_cpu), "layer 0");
        probe.groupSize = 2;
        std::atomic<bool> cancel{true};
        probe.cancel = &cancel;
        const auto cancelled = probeAttention(probe, *m_cpu);
        QVERIFY(!cancelled.ok());
        QCOMPARE(cancelled.error().code(), ErrorCode::Cancelled);
    }

    void errorsAreValues() {
        const CompressedHead h = exactHead(randomMatrix(4, 8, 1), randomMatrix(4, 8, 2));
        KVS_VERIFY_ERROR(m_cpu->attend(h, randomMatrix(1, 7, 3), {}), "7 columns",
                         "dimension is 8");
        AttendOptions options;
        options.queryPositions = {1, 2};
        KVS_VERIFY_ERROR(m_cpu->attend(h, randomMatrix(1, 8, 3), options), "2 query positions");
    }

    // Attention over A ∪ B = merge(attention over A, attention over B), up to fp32 rounding.
    void mergeIsExact() {
        const int n = 300, d = 64;
        const Matrix K = randomMatrix(n, d, 1, 2.0f);
        const Matrix V = randomMatrix(n, d, 2);
        const Matrix Q = randomMatrix(4, d, 3, 2.0f);
        const auto full = m_cpu->attend(exactHead(K, V), Q, {});
        CompressedHead a = exactHead(K.topRows(120), V.topRows(120));
        CompressedHead b = exactHead(K.bottomRows(180), V.bottomRows(180));
        auto ra = m_cpu->attend(a, Q, {});
        const auto rb = m_cpu->attend(b, Q, {});
        Matrix outputs = ra->outputs;
        std::vector<float> lse = ra->logSumExp;
        mergeAttention(outputs, lse, rb->outputs, rb->logSumExp);
        // fp32: each side is within a few ulp of exact; the weights e^{l−max} add ~1e-7 relative.
        QVERIFY(test::maxAbsDiff(outputs, full->outputs) < 2e-6);
        for (std::size_t i = 0; i < lse.size(); ++i)
            QVERIFY(std::abs(lse[i] - full->logSumExp[i]) < 1e-5f);

        // Merging with an empty side (ln Σ = −inf) changes nothing, in either order.
        Matrix same = full->outputs;
        std::vector<float> sameLse = full->logSumExp;
        mergeAttention(same, sameLse, Matrix::Zero(4, d), std::vector<float>(4, -INFINITY));
        QVERIFY(same == full->outputs);
        Matrix empty = Matrix::Zero(4, d);
        std::vector<float> emptyLse(4, -INFINITY);
        mergeAttention(empty, emptyLse, full->outputs, full->logSumExp);
        QVERIFY(empty == full->outputs);

        std::vector<float> shortLse(3, 0.0f);
        bool threw = false;
        try {
            mergeAttention(outputs, shortLse, rb->outputs, rb->logSumExp);
        } catch (const Error& e) {
            threw = std::string(e.what()).find("shapes differ") != std::string::npos;
        }
        QVERIFY(threw);
    }
};

QTEST_GUILESS_MAIN(TestAttentionCpu)
#include "test_attention_cpu.moc"
