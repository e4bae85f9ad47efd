// SPDX-License-Identifier: MIT
// Every attention kernel variant on the Vulkan device (lavapipe in CI) against the CPU reference,
// with the Khronos validation layer (plus synchronization validation) on: any validation message
// fails the test. Also the descriptor-pool path, chunking over the binding range, the copy
// kernel, and the fallback to the CPU when Vulkan is missing.
#include "kvs/gpu/vulkan_backend.h"
#include "kvs_test.h"

#include <QCoreApplication>
#include <QProcess>
#include <QtTest>
#include <cmath>
#include <iostream>
#include <random>
#include <thread>

using namespace kvs;
using namespace kvs::gpu;
using G = QuantizedMatrix::Grouping;

namespace {

constexpr const char* kChildArgument = "--kvs-child-backend";

int runChild() {
    const BackendChoice choice = makeAttentionBackend();
    std::cout << (choice.vulkan ? "vulkan " : "cpu ") << choice.description << std::endl;
    // The fallback backend must work.
    const CompressedHead h = exactHead(Matrix::Ones(3, 4), Matrix::Ones(3, 4));
    const auto r = choice.backend->attend(h, Matrix::Ones(1, 4), {});
    std::cout << (r.ok() && r->outputs(0, 0) == 1.0f ? "attend ok" : "attend failed") << std::endl;
    return 0;
}

Matrix randomMatrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng, float spread) {
    std::normal_distribution<float> dist(0.0f, spread);
    Matrix x(rows, cols);
    for (Eigen::Index i = 0; i < x.size(); ++i)
        x.data()[i] = dist(rng);
    return x;
}

// One test layer: `kvHeads` heads of the given form, `group` query heads each, `nq` queries.
struct Case {
    int d = 64;
    int n = 100;
    QString form = "f32"; // f32 f16 lowrank quant shared ragged rope rope_il
    int kBits = 4, vBits = 4, groupSize = 32;
    bool swappedGrouping = false; // keys per token, values per channel
    int kvHeads = 1, group = 1, nq = 1;
    bool causal = false;
    int splits = 0;
    // Quantized forms: the fraction of elements kept dense beside the codes (odd heads none: a
    // layer whose heads' outlier tables are partly empty).
    double outliers = 0.0;
};

CompressedHead makeHead(const Case& c, std::mt19937& rng, int index) {
    // Scores of magnitude a few units: queries and keys N(0, 1), scale 1/√d.
    const Matrix K = randomMatrix(c.n, c.d, rng, 1.0f);
    const Matrix V = randomMatrix(c.n, c.d, rng, 1.0f);
    CompressedHead h =
        exactHead(K, V, c.form == "f32" || c.form == "ragged" ? Precision::F32 : Precision::F16);
    if (c.form == "lowrank") {
        const int r = std::max(1, c.d / 4);
        h.keyForm = CompressedHead::KeyForm::LowRank;
        h.keys = randomMatrix(c.n, r, rng, 1.0f);
        roundToHalf(h.keys);
        h.queryProjection = randomMatrix(c.d, r, rng, 0.5f);
        roundToHalf(h.queryProjection);
    } else if (c.form.startsWith(QLatin1String("lowrank_rope"))) {
        // Pre-RoPE low-rank latents (weight SVD under RoPE): the kernels rebuild c · Pᵀ and rotate
        // it by position; fp16 coefficients half-split, fp32 coefficients interleaved. The CPU
        // reference rotates in double.
        const bool interleaved = c.form.endsWith(QLatin1String("_il"));
        const int r = std::max(1, c.d / 4);
        h.keyForm = CompressedHead::KeyForm::LowRank;
        h.keyPrecision = interleaved ? Precision::F32 : Precision::F16;
        h.keys = randomMatrix(c.n, r, rng, 1.0f);
        h.queryProjection = randomMatrix(c.d, r, rng, 0.5f);
        if (!interleaved)
            roundToHalf(h.keys);
        roundToHalf(h.queryProjection);
        for (int i = 0; i < c.d / 2; ++i)
            h.keyRotation.frequencies.push_back(
                static_cast<float>(std::pow(10000.0, -2.0 * i / c.d)));
        h.keyRotation.interleaved = interleaved;
        h.keyRotation.scale = 1.1f;
    } else if (c.form == "quant" || c.form.startsWith(QLatin1String("quant_rope"))) {
        const double outliers = index % 2 ? 0.0 : c.outliers;
        h.keyForm = CompressedHead::KeyForm::Quantized;
        h.quantizedKeys = quantize(K, c.kBits, c.groupSize,
                                   c.swappedGrouping ? G::PerToken : G::PerChannel, outliers);
        h.valueForm = CompressedHead::ValueForm::Quantized;
        h.quantizedValues = quantize(V, c.vBits, c.groupSize,
                                     c.swappedGrouping ? G::PerChannel : G::PerToken, outliers);
        if (c.form != "quant") {
            // Pre-RoPE codes (KVQuant): decoded, outliers put back, then turned by position on
            // load; the CPU reference turns in double (rotatedKeys).
            for (int i = 0; i < c.d / 2; ++i)
                h.keyRotation.frequencies.push_back(
                    static_cast<float>(std::pow(10000.0, -2.0 * i / c.d)));
            h.keyRotation.interleaved = c.form.endsWith(QLatin1String("_il"));
            h.keyRotation.scale = 1.1f;
        }
    } else if (c.form == "quant_recent") {
        // A codec's fp16 recent window beside the codes: the Vulkan backend runs the window as a
        // second pass and merges by log-sum-exp, the CPU reference reads the rows concatenated.
        // Odd heads have no window (a mixed layer); head 0 has a log-weight bias.
        const int w = index % 2 ? 0 : 16 + 8 * index;
        h.keyForm = CompressedHead::KeyForm::Quantized;
        h.quantizedKeys =
            quantize(K.topRows(c.n - w), c.kBits, c.groupSize, G::PerChannel, c.outliers);
        h.valueForm = CompressedHead::ValueForm::Quantized;
        h.quantizedValues =
            quantize(V.topRows(c.n - w), c.vBits, c.groupSize, G::PerToken, c.outliers);
        h.recentKeys = K.bottomRows(w);
        h.recentValues = V.bottomRows(w);
        roundToHalf(h.recentKeys);
        roundToHalf(h.recentValues);
        if (index == 0)
            for (int j = 0; j < c.n; ++j)
                h.logWeights.push_back(roundToHalf(0.3f * std::sin(static_cast<float>(j))));
    } else if (c.form == "shared") {
        h.valueForm = CompressedHead::ValueForm::SharedWithKeys;
        h.values = h.keys;
    } else if (c.form == "rope" || c.form == "rope_il") {
        // K=V under RoPE: the cache holds fp16 pre-RoPE keys (the values); attention's keys are
        // them rotated by position — computed here in double, independently of the shader and of
        // rope.cpp — with cos/sin scaled by 1.1 (a yarn attention factor). Every other token kept.
        const bool interleaved = c.form == "rope_il";
        CompressedHead r;
        r.headDim = c.d;
        r.contextLength = c.n;
        for (int j = index % 2; j < c.n; j += 2)
            r.positions.push_back(j);
        const int m = r.keptCount(), half = c.d / 2;
        r.values.resize(m, c.d);
        for (int j = 0; j < m; ++j)
            r.values.row(j) = V.row(r.positions[static_cast<std::size_t>(j)]);
        roundToHalf(r.values);
        r.keys.resize(m, c.d);
        for (int i = 0; i < half; ++i)
            r.keyRotation.frequencies.push_back(
                static_cast<float>(std::pow(10000.0, -2.0 * i / c.d)));
        for (int j = 0; j < m; ++j)
            for (int i = 0; i < half; ++i) {
                const double angle =
                    static_cast<double>(r.positions[static_cast<std::size_t>(j)]) *
                    static_cast<double>(r.keyRotation.frequencies[static_cast<std::size_t>(i)]);
                const double cs = 1.1 * std::cos(angle), sn = 1.1 * std::sin(angle);
                const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
                const double x = r.values(j, a), y = r.values(j, b);
                r.keys(j, a) = static_cast<float>(x * cs - y * sn);
                r.keys(j, b) = static_cast<float>(y * cs + x * sn);
            }
        r.keyPrecision = r.valuePrecision = Precision::F16;
        r.valueForm = CompressedHead::ValueForm::SharedWithKeys;
        r.keyRotation.interleaved = interleaved;
        r.keyRotation.scale = 1.1f;
        h = std::move(r);
    } else if (c.form == "ragged") {
        // A different kept set per head (eviction), log-weights with tombstones (−inf).
        CompressedHead r;
        r.headDim = c.d;
        r.contextLength = c.n;
        for (int j = 0; j < c.n; ++j)
            if (static_cast<int>(rng() % 4) <= index % 3 || j == c.n - 1)
                r.positions.push_back(j);
        const int m = r.keptCount();
        r.keys.resize(m, c.d);
        r.values.resize(m, c.d);
        std::uniform_real_distribution<float> w(0.0f, 2.0f);
        for (int j = 0; j < m; ++j) {
            r.keys.row(j) = K.row(r.positions[static_cast<std::size_t>(j)]);
            r.values.row(j) = V.row(r.positions[static_cast<std::size_t>(j)]);
            r.logWeights.push_back(j % 7 == 3 ? -INFINITY : std::log(w(rng) + 0.1f));
        }
        r.keyPrecision = r.valuePrecision = Precision::F32;
        h = std::move(r);
    }
    return h;
}

struct Gates {
    double maxRel = 0.0; // max|Δ| / max|ref|
    double nmse = 0.0;   // ‖Δ‖² / ‖ref‖²
};

Gates compare(const Matrix& got, const Matrix& ref) {
    Gates g;
    const double scale = std::max(1e-30, static_cast<double>(ref.cwiseAbs().maxCoeff()));
    const Eigen::MatrixXd diff = got.cast<double>() - ref.cast<double>();
    g.maxRel = diff.cwiseAbs().maxCoeff() / scale;
    const double norm = std::max(1e-30, ref.cast<double>().squaredNorm());
    g.nmse = diff.squaredNorm() / norm;
    return g;
}

} // namespace

Q_DECLARE_METATYPE(Case)

class TestAttentionVulkan : public QObject {
    Q_OBJECT

    std::unique_ptr<VulkanBackend> m_vulkan;
    std::unique_ptr<VulkanBackend> m_vulkanShared; // the shared-memory-only probe kernel
    std::unique_ptr<AttentionBackend> m_cpu = makeCpuBackend();
    std::string m_error;

    void requireVulkan() {
        if (!m_vulkan && qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") == "1")
            QSKIP(qPrintable(QString("no Vulkan: %1").arg(QString::fromStdString(m_error))));
        QVERIFY2(m_vulkan, m_error.c_str());
    }

    // Runs a case on both backends and applies the gates.
    void runCase(AttentionBackend& gpu, const Case& c, unsigned seed) {
        std::mt19937 rng(seed);
        std::vector<CompressedHead> heads;
        for (int h = 0; h < c.kvHeads; ++h)
            heads.push_back(makeHead(c, rng, h));
        std::vector<Matrix> queries;
        for (int q = 0; q < c.kvHeads * c.group; ++q)
            queries.push_back(randomMatrix(c.nq, c.d, rng, 1.0f));
        AttendOptions options;
        if (c.causal) {
            // Queries inside the context (the map view's rows): early, middle, last.
            for (int i = 0; i < c.nq; ++i)
                options.queryPositions.push_back(static_cast<std::int32_t>(
                    (static_cast<long>(c.n - 1) * i) / std::max(1, c.nq - 1)));
        }
        if (c.splits > 0)
            qputenv("KVS_VK_SPLITS", QByteArray::number(c.splits));
        else
            qunsetenv("KVS_VK_SPLITS");
        LayerAttendRequest request{heads, queries, c.group, options};
        auto ref = m_cpu->attendLayer(request);
        auto got = gpu.attendLayer(request);
        qunsetenv("KVS_VK_SPLITS");
        KVS_VERIFY_OK(ref);
        KVS_VERIFY_OK(got);
        QCOMPARE(got->size(), ref->size());
        Gates worst;
        for (std::size_t q = 0; q < got->size(); ++q) {
            const Gates w = compare((*got)[q].outputs, (*ref)[q].outputs);
            worst.maxRel = std::max(worst.maxRel, w.maxRel);
            worst.nmse = std::max(worst.nmse, w.nmse);
        }
        qInfo("%s: max-rel %.2e, NMSE %.2e, %zu dispatches, probe %.0f us",
              (*got)[0].timings.empty() ? "?" : (*got)[0].timings[0].kernel.c_str(), worst.maxRel,
              worst.nmse, (*got)[0].timings.size(),
              (*got)[0].timings.empty() ? 0.0 : (*got)[0].timings[0].microseconds);
        for (std::size_t q = 0; q < got->size(); ++q) {
            // Gates (GPU.md "Verification"): both sides accumulate in fp32 over the same
            // rounded/dequantized inputs, in different orders (tiles of 64, splits, exp of a
            // rescaled max); the CPU reference sums its n terms sequentially, whose error grows
            // like √n·2^-24 (≈ 1e-5 at 32k). Measured on lavapipe: max-rel ≤ 1.6e-6 up to 4k
            // keys, ≤ 4.6e-6 at 32k; NMSE ≤ 1.1e-11. Gates: max|Δ|/max|ref| ≤ 1e-5 (3e-5 beyond
            // 4k keys), NMSE ≤ 1e-9.
            // K=V under RoPE: the GPU turns by fp32 angles (position · frequency, then sin/cos
            // of up to a few hundred radians: ~1e-5 rad) where the reference used double.
            const bool rotated = c.form.contains(QLatin1String("rope"));
            const double maxRelGate = rotated ? 1e-4 : c.n > 4096 ? 3e-5 : 1e-5;
            const Gates g = compare((*got)[q].outputs, (*ref)[q].outputs);
            QVERIFY2(g.maxRel <= maxRelGate && g.nmse <= (rotated ? 1e-8 : 1e-9),
                     qPrintable(QString("query head %1: max-rel %2, NMSE %3")
                                    .arg(q)
                                    .arg(g.maxRel)
                                    .arg(g.nmse)));
            for (std::size_t i = 0; i < (*ref)[q].logSumExp.size(); ++i) {
                const float a = (*got)[q].logSumExp[i];
                const float b = (*ref)[q].logSumExp[i];
                QVERIFY2((std::isinf(a) && std::isinf(b)) ||
                             std::abs(a - b) <=
                                 (rotated ? 1e-4f : 1e-5f) * std::max(1.0f, std::abs(b)),
                         qPrintable(QString("ln Σ %1 vs %2").arg(a).arg(b)));
            }
        }
        QVERIFY(!(*got)[0].timings.empty());
    }

private slots:
    void initTestCase() {
        VulkanBackendOptions options;
        options.instance.validation = true; // CI: the Khronos layer is installed with lavapipe
        auto backend = makeVulkanBackend(options);
        if (backend.ok())
            m_vulkan = std::move(backend).value();
        else
            m_error = backend.message();
        options.useSubgroups = false;
        if (auto shared = makeVulkanBackend(options); shared.ok())
            m_vulkanShared = std::move(shared).value();
        if (m_vulkan)
            qInfo("device: %s; push descriptors %s", summaryLine(m_vulkan->device()).c_str(),
                  m_vulkan->usesPushDescriptors() ? "yes" : "no");
    }

    // Any validation message during a test function fails it.
    void cleanup() {
        if (!m_vulkan)
            return;
        auto messages = m_vulkan->validationMessages();
        m_vulkan->clearValidationMessages();
        if (m_vulkanShared) {
            for (auto& m : m_vulkanShared->validationMessages())
                messages.push_back(m);
            m_vulkanShared->clearValidationMessages();
        }
        QString all;
        for (const auto& m : messages)
            all += QString::fromStdString(toString(m)) + "\n";
        QVERIFY2(messages.empty(), qPrintable(all));
    }

    void probeMatchesCpu_data() {
        QTest::addColumn<Case>("c");
        // Dense fp32 / fp16 over head dims and lengths around the tile size (64) and long ones.
        for (int d : {32, 64, 128})
            for (int n : {1, 63, 64, 65, 1000})
                QTest::addRow("f32_d%d_n%d", d, n) << Case{.d = d, .n = n, .form = "f32"};
        for (int d : {64, 128})
            QTest::addRow("f16_d%d_n4096", d) << Case{.d = d, .n = 4096, .form = "f16"};
        // 32k keys: fp16 at d 32 (4 MiB of KV) and 4-bit at d 128 (4.5 MiB).
        QTest::addRow("f16_d32_n32768") << Case{.d = 32, .n = 32768, .form = "f16"};
        QTest::addRow("q4_d128_n32768")
            << Case{.d = 128, .n = 32768, .form = "quant", .kBits = 4, .vBits = 4};
        // Every bit width for keys and values, both head dims, an odd group size.
        for (int bits : {2, 3, 4, 8})
            for (int d : {64, 128})
                QTest::addRow("quant_k%d_v%d_d%d", bits, bits == 8 ? 2 : bits, d)
                    << Case{.d = d,
                            .n = 777,
                            .form = "quant",
                            .kBits = bits,
                            .vBits = bits == 8 ? 2 : bits};
        QTest::addRow("quant_k3_v2_g7")
            << Case{.d = 64, .n = 300, .form = "quant", .kBits = 3, .vBits = 2, .groupSize = 7};
        QTest::addRow("quant_swapped_grouping") << Case{
            .d = 64, .n = 300, .form = "quant", .kBits = 4, .vBits = 3, .swappedGrouping = true};
        QTest::addRow("lowrank_d64") << Case{.d = 64, .n = 500, .form = "lowrank"};
        QTest::addRow("lowrank_d128") << Case{.d = 128, .n = 500, .form = "lowrank"};
        // A head dim that is not a multiple of 4: the kernels' scalar tails (keys and values).
        QTest::addRow("f32_d30_tails") << Case{.d = 30, .n = 300, .form = "f32", .group = 2};
        QTest::addRow("shared_kv") << Case{.d = 64, .n = 300, .form = "shared"};
        // K=V under RoPE, rotated on load (half-split and interleaved pairs; GQA; causal).
        QTest::addRow("rope_kv_d32") << Case{.d = 32, .n = 300, .form = "rope", .kvHeads = 2};
        QTest::addRow("rope_kv_interleaved_gqa3")
            << Case{.d = 64, .n = 257, .form = "rope_il", .kvHeads = 2, .group = 3, .nq = 2};
        QTest::addRow("rope_kv_causal")
            << Case{.d = 64, .n = 400, .form = "rope", .nq = 4, .causal = true};
        // Pre-RoPE low-rank keys rebuilt and rotated on load (GQA, causal, both pair layouts).
        QTest::addRow("lowrank_rope_d64_gqa2")
            << Case{.d = 64, .n = 300, .form = "lowrank_rope", .kvHeads = 2, .group = 2};
        QTest::addRow("lowrank_rope_interleaved_causal")
            << Case{.d = 32, .n = 257, .form = "lowrank_rope_il", .nq = 4, .causal = true};
        // A recent window at fp16 beside 3/2-bit codes: two passes merged (GQA, causal, mixed).
        QTest::addRow("quant_recent_gqa2_causal") << Case{.d = 64,
                                                          .n = 300,
                                                          .form = "quant_recent",
                                                          .kBits = 3,
                                                          .vBits = 2,
                                                          .kvHeads = 3,
                                                          .group = 2,
                                                          .nq = 3,
                                                          .causal = true};
        // Outliers kept dense beside 2/3-bit codes (KVQuant's dense-and-sparse): scores get
        // q · (x − decoded) per key outlier, outputs p · (x − decoded) per value outlier. Mixed
        // layers (odd heads keep none), GQA, causal, both groupings, a head dim with scalar
        // tails, pre-RoPE codes (the difference turned by position), a recent window.
        QTest::addRow("quant_outliers_gqa2_causal") << Case{.d = 64,
                                                            .n = 300,
                                                            .form = "quant",
                                                            .kBits = 2,
                                                            .vBits = 2,
                                                            .kvHeads = 3,
                                                            .group = 2,
                                                            .nq = 3,
                                                            .causal = true,
                                                            .outliers = 0.02};
        QTest::addRow("quant_outliers_swapped") << Case{.d = 64,
                                                        .n = 200,
                                                        .form = "quant",
                                                        .kBits = 3,
                                                        .vBits = 2,
                                                        .swappedGrouping = true,
                                                        .outliers = 0.05};
        QTest::addRow("quant_outliers_d30_tails") << Case{.d = 30,
                                                          .n = 150,
                                                          .form = "quant",
                                                          .kBits = 2,
                                                          .vBits = 3,
                                                          .groupSize = 10,
                                                          .group = 2,
                                                          .outliers = 0.05};
        QTest::addRow("quant_outliers_d12_gqa4") << Case{.d = 12,
                                                         .n = 90,
                                                         .form = "quant",
                                                         .kBits = 2,
                                                         .vBits = 2,
                                                         .groupSize = 12,
                                                         .kvHeads = 2,
                                                         .group = 4,
                                                         .nq = 30,
                                                         .outliers = 0.02};
        QTest::addRow("quant_rope_outliers") << Case{.d = 64,
                                                     .n = 300,
                                                     .form = "quant_rope",
                                                     .kBits = 2,
                                                     .vBits = 4,
                                                     .kvHeads = 2,
                                                     .nq = 2,
                                                     .causal = true,
                                                     .outliers = 0.02};
        QTest::addRow("quant_rope_il_outliers")
            << Case{.d = 32, .n = 200, .form = "quant_rope_il", .kBits = 3, .outliers = 0.05};
        QTest::addRow("quant_recent_outliers") << Case{.d = 64,
                                                       .n = 300,
                                                       .form = "quant_recent",
                                                       .kBits = 2,
                                                       .vBits = 2,
                                                       .kvHeads = 2,
                                                       .nq = 2,
                                                       .causal = true,
                                                       .outliers = 0.02};
        // Ragged kept sets + log-weight bias with tombstones; GQA groups of 1, 4, 8.
        for (int group : {1, 4, 8})
            QTest::addRow("ragged_bias_gqa%d", group)
                << Case{.d = 64, .n = 700, .form = "ragged", .kvHeads = 3, .group = group, .nq = 2};
        // All heads of a layer in one dispatch: 8 KV heads, GQA 4, several queries.
        QTest::addRow("layer_8kv_gqa4")
            << Case{.d = 128, .n = 256, .form = "f16", .kvHeads = 8, .group = 4, .nq = 3};
        // Causal masking by position (queries inside the context; the first sees one key).
        QTest::addRow("causal_f32")
            << Case{.d = 64, .n = 500, .form = "f32", .nq = 5, .causal = true};
        QTest::addRow("causal_ragged")
            << Case{.d = 64, .n = 500, .form = "ragged", .kvHeads = 2, .nq = 4, .causal = true};
        // Split-K: 1, 3 and many splits (combine pass over empty splits too).
        for (int splits : {1, 3, 40})
            QTest::addRow("splits_%d", splits)
                << Case{.d = 64, .n = 2000, .form = "f16", .splits = splits};
    }
    void probeMatchesCpu() {
        requireVulkan();
        QFETCH(Case, c);
        // Both probe kernels: subgroup (what lavapipe and NVIDIA run) and shared-memory-only.
        runCase(*m_vulkan, c, 1234u + static_cast<unsigned>(c.n + c.d));
        QVERIFY(m_vulkanShared);
        runCase(*m_vulkanShared, c, 1234u + static_cast<unsigned>(c.n + c.d));
    }

    // The attention map: scores (−inf where masked) and probabilities per kept key.
    void attentionMapMatchesCpu_data() {
        QTest::addColumn<Case>("c");
        QTest::addRow("exact_causal")
            << Case{.d = 64, .n = 200, .form = "f32", .nq = 6, .causal = true};
        QTest::addRow("ragged_causal") << Case{
            .d = 32, .n = 300, .form = "ragged", .kvHeads = 2, .group = 2, .nq = 5, .causal = true};
        QTest::addRow("quant_k2_v2")
            << Case{.d = 128, .n = 100, .form = "quant", .kBits = 2, .vBits = 2, .nq = 2};
        QTest::addRow("rope_kv_causal")
            << Case{.d = 32, .n = 200, .form = "rope", .group = 2, .nq = 3, .causal = true};
        QTest::addRow("lowrank_rope_causal")
            << Case{.d = 32, .n = 150, .form = "lowrank_rope", .nq = 3, .causal = true};
        QTest::addRow("quant_outliers_causal") << Case{.d = 64,
                                                       .n = 150,
                                                       .form = "quant",
                                                       .kBits = 2,
                                                       .vBits = 2,
                                                       .kvHeads = 2,
                                                       .nq = 3,
                                                       .causal = true,
                                                       .outliers = 0.03};
        QTest::addRow("quant_rope_outliers")
            << Case{.d = 32, .n = 150, .form = "quant_rope", .kBits = 2, .nq = 3, .outliers = 0.05};
        QTest::addRow("quant_recent_causal") << Case{.d = 32,
                                                     .n = 200,
                                                     .form = "quant_recent",
                                                     .kBits = 2,
                                                     .vBits = 2,
                                                     .groupSize = 16,
                                                     .kvHeads = 2,
                                                     .nq = 4,
                                                     .causal = true};
    }
    void attentionMapMatchesCpu() {
        requireVulkan();
        QFETCH(Case, c);
        std::mt19937 rng(99);
        std::vector<CompressedHead> heads;
        for (int h = 0; h < c.kvHeads; ++h)
            heads.push_back(makeHead(c, rng, h));
        std::vector<Matrix> queries;
        for (int q = 0; q < c.kvHeads * c.group; ++q)
            queries.push_back(randomMatrix(c.nq, c.d, rng, 1.0f));
        AttendOptions options;
        options.wantProbabilities = true;
        options.wantScores = true;
        if (c.causal)
            for (int i = 0; i < c.nq; ++i)
                options.queryPositions.push_back(i * (c.n - 1) / std::max(1, c.nq - 1));
        LayerAttendRequest request{heads, queries, c.group, options};
        auto ref = m_cpu->attendLayer(request);
        auto got = m_vulkan->attendLayer(request);
        KVS_VERIFY_OK(ref);
        KVS_VERIFY_OK(got);
        const bool rotated = c.form.contains(QLatin1String("rope"));
        for (std::size_t q = 0; q < ref->size(); ++q) {
            const Matrix& s = (*got)[q].scores;
            const Matrix& sr = (*ref)[q].scores;
            QCOMPARE(s.rows(), sr.rows());
            QCOMPARE(s.cols(), sr.cols());
            for (Eigen::Index i = 0; i < s.rows(); ++i)
                for (Eigen::Index j = 0; j < s.cols(); ++j) {
                    if (std::isinf(sr(i, j))) {
                        QVERIFY(std::isinf(s(i, j)) && s(i, j) < 0);
                        continue;
                    }
                    // fp32 dot products of ≤ 128 terms in another order: ≤ 1e-5 of |s| + 1e-6
                    // (rotated keys: fp32 angles, ≤ 1e-5 absolute on scores of a few units).
                    const float tol = rotated ? 1e-5f * std::abs(sr(i, j)) + 1e-5f
                                              : 1e-5f * std::abs(sr(i, j)) + 1e-6f;
                    QVERIFY2(std::abs(s(i, j) - sr(i, j)) <= tol,
                             qPrintable(QString("score %1 vs %2").arg(s(i, j)).arg(sr(i, j))));
                }
            // Probabilities ∈ [0, 1]: absolute 1e-6 (|Δp| ≤ 2p|Δs|).
            QVERIFY(test::maxAbsDiff((*got)[q].probabilities, (*ref)[q].probabilities) <=
                    (rotated ? 1e-5 : 1e-6));
            QVERIFY(compare((*got)[q].outputs, (*ref)[q].outputs).maxRel <=
                    (rotated ? 1e-4 : 1e-5));
        }
    }

    // Devices without push descriptors bind through a descriptor pool: same answers.
    void descriptorPoolPath() {
        requireVulkan();
        VulkanBackendOptions options;
        options.instance.validation = true;
        options.allowPushDescriptors = false;
        auto backend = makeVulkanBackend(options);
        KVS_VERIFY_OK(backend);
        QVERIFY(!(*backend)->usesPushDescriptors());
        runCase(**backend,
                Case{.d = 64,
                     .n = 500,
                     .form = "quant",
                     .kBits = 4,
                     .vBits = 2,
                     .kvHeads = 2,
                     .group = 2,
                     .nq = 2},
                7);
        const auto messages = (*backend)->validationMessages();
        QVERIFY2(messages.empty(), messages.empty() ? "" : toString(messages[0]).c_str());
    }

    // A layer bigger than one binding runs as several chunks of KV heads (lavapipe's 128 MiB
    // limit at 64k keys × 32 heads); here forced with a 64 KiB cap.
    void layerLargerThanABindingIsChunked() {
        requireVulkan();
        VulkanBackendOptions options;
        options.instance.validation = true;
        options.maxBindingBytes = 64 * 1024;
        auto backend = makeVulkanBackend(options);
        KVS_VERIFY_OK(backend);
        const Case c{.d = 64, .n = 200, .form = "f32", .kvHeads = 5, .group = 2, .nq = 2};
        runCase(**backend, c, 11); // 200 × 64 × 4 = 50 KiB per head: one head per chunk
        std::mt19937 rng(1);
        std::vector<CompressedHead> heads = {
            exactHead(randomMatrix(300, 64, rng, 1.0f), randomMatrix(300, 64, rng, 1.0f))};
        std::vector<Matrix> queries = {randomMatrix(1, 64, rng, 1.0f)};
        KVS_VERIFY_ERROR((*backend)->attendLayer({heads, queries, 1, {}}), "needs a binding of",
                         "split the context");
    }

    void timingsAndCopyBandwidth() {
        requireVulkan();
        std::mt19937 rng(5);
        std::vector<CompressedHead> heads = {exactHead(
            randomMatrix(1024, 64, rng, 1.0f), randomMatrix(1024, 64, rng, 1.0f), Precision::F16)};
        std::vector<Matrix> queries = {randomMatrix(1, 64, rng, 1.0f)};
        const auto timings = m_vulkan->benchmarkLayer({heads, queries, 1, {}}, 1, 2);
        KVS_VERIFY_OK(timings);
        QCOMPARE(timings->size(), std::size_t(2));
        const LayerTiming& t = timings->front();
        QCOMPARE(t.dispatches.size(), std::size_t(2)); // probe + combine
        QVERIFY(t.dispatches[0].kernel.rfind("probe_split", 0) == 0);
        QCOMPARE(t.dispatches[1].kernel, std::string("combine"));
        QVERIFY(t.dispatches[0].microseconds > 0.0);
        // fp16 K and V of 1024 × 64 + the fp32 query.
        QCOMPARE(t.dispatches[0].bytesRead, std::size_t(2 * 1024 * 64 * 2 + 64 * 4));
        const auto copy = m_vulkan->measureCopyBandwidth(4 << 20, 2);
        KVS_VERIFY_OK(copy);
        QCOMPARE(copy->size(), std::size_t(2));
        QVERIFY(copy->front() > 0.0);
    }

    // A head that keeps nothing attends to nothing: output 0, ln Σ = −inf, beside a normal head.
    void emptyHeadGivesZero() {
        requireVulkan();
        std::mt19937 rng(3);
        CompressedHead empty;
        empty.headDim = 32;
        empty.contextLength = 10;
        empty.keys = Matrix(0, 32);
        empty.values = Matrix(0, 32);
        std::vector<CompressedHead> heads = {
            empty, exactHead(randomMatrix(10, 32, rng, 1.0f), randomMatrix(10, 32, rng, 1.0f))};
        heads[1].keyPrecision = heads[1].valuePrecision = Precision::F32;
        std::vector<Matrix> queries = {randomMatrix(2, 32, rng, 1.0f),
                                       randomMatrix(2, 32, rng, 1.0f)};
        auto got = m_vulkan->attendLayer({heads, queries, 1, {}});
        auto ref = m_cpu->attendLayer({heads, queries, 1, {}});
        KVS_VERIFY_OK(got);
        KVS_VERIFY_OK(ref);
        QVERIFY((*got)[0].outputs.isZero());
        QVERIFY(std::isinf((*got)[0].logSumExp[0]) && (*got)[0].logSumExp[0] < 0);
        QVERIFY(compare((*got)[1].outputs, (*ref)[1].outputs).maxRel <= 1e-5);
    }

    // Worker threads may share one backend: calls are serialized, results stay right.
    void concurrentCallsAreSafe() {
        requireVulkan();
        std::mt19937 rng(8);
        const CompressedHead head = exactHead(randomMatrix(300, 64, rng, 1.0f),
                                              randomMatrix(300, 64, rng, 1.0f), Precision::F16);
        std::vector<Matrix> queries;
        for (int i = 0; i < 4; ++i)
            queries.push_back(randomMatrix(2, 64, rng, 1.0f));
        std::vector<double> errors(queries.size(), 1.0);
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < queries.size(); ++i)
            threads.emplace_back([&, i] {
                for (int repeat = 0; repeat < 3; ++repeat) {
                    auto got = m_vulkan->attend(head, queries[i], {});
                    auto ref = m_cpu->attend(head, queries[i], {});
                    errors[i] =
                        got.ok() && ref.ok() ? compare(got->outputs, ref->outputs).maxRel : 1.0;
                }
            });
        for (auto& t : threads)
            t.join();
        for (double e : errors)
            QVERIFY2(e <= 1e-5, qPrintable(QString("max-rel %1").arg(e)));
    }

    void invalidRequestsAreErrors() {
        requireVulkan();
        std::mt19937 rng(5);
        std::vector<CompressedHead> heads = {
            exactHead(randomMatrix(10, 8, rng, 1.0f), randomMatrix(10, 8, rng, 1.0f))};
        std::vector<Matrix> queries = {randomMatrix(1, 7, rng, 1.0f)};
        KVS_VERIFY_ERROR(m_vulkan->attendLayer({heads, queries, 1, {}}), "7 columns");
        std::vector<Matrix> two = {randomMatrix(1, 8, rng, 1.0f), randomMatrix(1, 8, rng, 1.0f)};
        KVS_VERIFY_ERROR(m_vulkan->attendLayer({heads, two, 1, {}}), "2 query heads for 1");
    }

    // No loader: the choice falls back to the CPU and says why; nothing crashes.
    void missingLoaderFallsBackToCpu() {
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("KVS_VULKAN_LOADER", "/nonexistent/libvulkan.so.1");
        QProcess child;
        child.setProcessEnvironment(env);
        child.start(QCoreApplication::applicationFilePath(), {kChildArgument});
        QVERIFY(child.waitForFinished(60000));
        QCOMPARE(child.exitStatus(), QProcess::NormalExit);
        QCOMPARE(child.exitCode(), 0);
        const QString out = QString::fromLocal8Bit(child.readAllStandardOutput());
        QVERIFY2(out.startsWith("cpu CPU (Eigen): Vulkan is not available (no Vulkan loader"),
                 qPrintable(out));
        QVERIFY2(out.contains("attend ok"), qPrintable(out));
    }

    // A device lost mid-session: the failing call and every later one run on the CPU.
    void lostDeviceFallsBackToCpu() {
        requireVulkan();
        BackendChoice choice = makeAttentionBackend();
        QVERIFY(choice.vulkan);
        std::mt19937 rng(4);
        const CompressedHead head =
            exactHead(randomMatrix(50, 32, rng, 1.0f), randomMatrix(50, 32, rng, 1.0f));
        const Matrix q = randomMatrix(2, 32, rng, 1.0f);
        auto ref = m_cpu->attend(head, q, {});
        KVS_VERIFY_OK(ref);
        qputenv("KVS_VK_SIMULATE_DEVICE_LOST", "1");
        auto lost = choice.backend->attend(head, q, {});
        qunsetenv("KVS_VK_SIMULATE_DEVICE_LOST");
        KVS_VERIFY_OK(lost);
        QVERIFY(lost->outputs == ref->outputs); // computed by the CPU reference
        QVERIFY2(choice.backend->name().find("device lost") != std::string::npos,
                 choice.backend->name().c_str());
        auto later = choice.backend->attend(head, q, {});
        KVS_VERIFY_OK(later);
        QVERIFY(later->timings.empty()); // still the CPU
    }

    void cpuPreferenceSkipsVulkan() {
        const BackendChoice choice = makeAttentionBackend("cpu");
        QVERIFY(!choice.vulkan);
        QCOMPARE(choice.backend->name(), std::string("CPU (Eigen)"));
    }
};

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == kChildArgument)
        return runChild();
    QCoreApplication app(argc, argv);
    TestAttentionVulkan test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "test_attention_vulkan.moc"
