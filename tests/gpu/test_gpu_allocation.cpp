// SPDX-License-Identifier: MIT
// The device memory the Vulkan backend reports for a layer call (AttendResult::allocation)
// against an independent computation: the buffer layout of the kernels
// (gpu/shaders/include/attention_common.glsl) worked out here from the CompressedHeads, each
// buffer's size turned into device memory by the device's own rule (VkMemoryRequirements for
// that size) and, on lavapipe, by Mesa's rule written out (requirement = the size asked for:
// lvp_GetBufferMemoryRequirements returns the buffer's size, with PIPE_RESOURCE_FLAG_
// DONT_OVER_ALLOCATE; measured 1 → 1, 20 → 20, 4096 → 4096 bytes on Mesa 22.3.6). Runs under
// the Khronos validation layer; any message fails the test.
#include "kvs/gpu/vulkan_backend.h"
#include "kvs_test.h"

#include <QtTest>
#include <cmath>
#include <random>

using namespace kvs;
using namespace kvs::gpu;
using G = QuantizedMatrix::Grouping;

namespace {

Matrix randomMatrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    Matrix x(rows, cols);
    for (Eigen::Index i = 0; i < x.size(); ++i)
        x.data()[i] = dist(rng);
    return x;
}

// The words (uint32) one role of a layer takes: every head's rows start on 16 bytes (4 words).
struct RoleWords {
    std::size_t words = 0;
    void appendHead(std::size_t headWords, bool align16) {
        if (align16)
            words = (words + 3) / 4 * 4;
        words += headWords;
    }
    // A buffer is never smaller than 16 bytes (unused roles get one of 16).
    std::size_t bufferBytes() const { return std::max<std::size_t>(16, words * 4); }
};

std::size_t denseWords(const Matrix& x, Precision p) {
    const auto cols = static_cast<std::size_t>(x.cols());
    return static_cast<std::size_t>(x.rows()) * (p == Precision::F16 ? (cols + 1) / 2 : cols);
}

// The buffer sizes of one upload of `heads` (one chunk: every head fits one binding), by role.
struct Expected {
    std::vector<std::size_t> keys, values, metadata;
};

Expected expectedBuffers(const std::vector<CompressedHead>& heads) {
    RoleWords k, v, ks, vs, bias, pos, table;
    for (const CompressedHead& h : heads) {
        const auto m = static_cast<std::size_t>(h.keptCount());
        if (h.keyForm == CompressedHead::KeyForm::Quantized) {
            k.appendHead(h.quantizedKeys.codes.size(), true);
            ks.appendHead(h.quantizedKeys.scales.size(), false); // (scale, minimum) as half2
        } else if (h.valueForm == CompressedHead::ValueForm::SharedWithKeys &&
                   !h.keyRotation.empty()) {
            k.appendHead(h.keyRotation.frequencies.size(),
                         true); // pair frequencies: keys are rotated values
        } else {
            k.appendHead(denseWords(h.keys, h.keyPrecision), true);
        }
        if (h.valueForm == CompressedHead::ValueForm::Quantized) {
            v.appendHead(h.quantizedValues.codes.size(), true);
            vs.appendHead(h.quantizedValues.scales.size(), false);
        } else {
            v.appendHead(denseWords(h.values, h.valuePrecision), true);
        }
        bias.appendHead(m, false);  // one float per kept token, zeros without log-weights
        pos.appendHead(m, false);   // int32 positions
        table.appendHead(8, false); // kept, k/v/ks/vs/pos offsets, 2 spare
    }
    return {{k.bufferBytes(), ks.bufferBytes()},
            {v.bufferBytes(), vs.bufferBytes()},
            {bias.bufferBytes(), pos.bufferBytes(), table.bufferBytes()}};
}

} // namespace

class TestGpuAllocation : public QObject {
    Q_OBJECT

    std::unique_ptr<VulkanBackend> m_vulkan;
    std::string m_error;
    bool m_lavapipe = false;

    void requireVulkan() {
        if (!m_vulkan && qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") == "1")
            QSKIP(qPrintable(QString("no Vulkan: %1").arg(QString::fromStdString(m_error))));
        QVERIFY2(m_vulkan, m_error.c_str());
    }

    QString m_ruleError; // what deviceBytes() found wrong with the device's answers

    // The device memory of buffers of these sizes: the device's answer, and on lavapipe Mesa's
    // rule computed here (which must agree with it).
    std::size_t deviceBytes(const std::vector<std::size_t>& sizes) {
        std::size_t sum = 0;
        for (std::size_t s : sizes) {
            const auto req = m_vulkan->memoryRequirement(s);
            if (!req.ok()) {
                m_ruleError += QString::fromStdString(req.message()) + "\n";
                continue;
            }
            if (req.value() < s || (m_lavapipe && req.value() != s))
                m_ruleError += QString("%1 bytes require %2\n").arg(s).arg(req.value());
            sum += m_lavapipe ? s : req.value();
        }
        return sum;
    }

private slots:
    void initTestCase() {
        VulkanBackendOptions options;
        options.instance.validation = true;
        options.splits = 2; // fixed, so that the scratch partials are known here
        auto backend = makeVulkanBackend(options);
        if (backend.ok())
            m_vulkan = std::move(backend).value();
        else
            m_error = backend.message();
        if (m_vulkan) {
            m_lavapipe = m_vulkan->device().name.find("llvmpipe") != std::string::npos;
            qInfo("device: %s", summaryLine(m_vulkan->device()).c_str());
        }
    }

    void cleanup() {
        if (!m_vulkan)
            return;
        const auto messages = m_vulkan->validationMessages();
        m_vulkan->clearValidationMessages();
        QString all;
        for (const auto& m : messages)
            all += QString::fromStdString(toString(m)) + "\n";
        QVERIFY2(messages.empty(), qPrintable(all));
    }

    void layerAllocationMatchesTheLayout_data() {
        QTest::addColumn<QString>("form");
        QTest::addColumn<int>("d");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("group");
        QTest::newRow("f16, weighted, ragged") << "f16" << 30 << 2 << 2;
        QTest::newRow("f32, one head") << "f32" << 64 << 1 << 1;
        QTest::newRow("kivi 4/2 bits") << "quant" << 64 << 3 << 2;
        QTest::newRow("k=v, f16") << "k=v" << 32 << 2 << 3;
        QTest::newRow("k=v under RoPE, f16") << "k=v rope" << 32 << 2 << 3;
    }

    void layerAllocationMatchesTheLayout() {
        requireVulkan();
        QFETCH(QString, form);
        QFETCH(int, d);
        QFETCH(int, kvHeads);
        QFETCH(int, group);
        std::mt19937 rng(7);
        constexpr int nq = 3;
        std::vector<CompressedHead> heads;
        for (int h = 0; h < kvHeads; ++h) {
            const int n = 37 + 8 * h; // ragged kept counts: heads start mid-word-group
            const Matrix K = randomMatrix(n, d, rng);
            const Matrix V = randomMatrix(n, d, rng);
            CompressedHead head = exactHead(K, V, form == "f32" ? Precision::F32 : Precision::F16);
            if (form.startsWith("k=v")) // a K=V model's head: the values are the unrotated keys
                head.valueForm = CompressedHead::ValueForm::SharedWithKeys;
            if (form == "k=v rope") // ... and the kernels may rotate them into keys on load
                for (int i = 0; i < d / 2; ++i)
                    head.keyRotation.frequencies.push_back(std::pow(10000.0f, -2.0f * i / d));
            if (form == "f16") {
                // Keep every other token, with weights (a coreset's bias).
                CompressedHead c;
                c.headDim = d;
                c.contextLength = n;
                for (int j = 0; j < n; j += 2)
                    c.positions.push_back(j);
                const int m = c.keptCount();
                c.keys.resize(m, d);
                c.values.resize(m, d);
                for (int j = 0; j < m; ++j) {
                    c.keys.row(j) = K.row(2 * j);
                    c.values.row(j) = V.row(2 * j);
                    c.logWeights.push_back(std::log(1.0f + static_cast<float>(j % 3)));
                }
                roundToHalf(c.keys);
                roundToHalf(c.values);
                head = std::move(c);
            } else if (form == "quant") {
                head.keyForm = CompressedHead::KeyForm::Quantized;
                head.quantizedKeys = quantize(K, 4, 32, G::PerChannel);
                head.valueForm = CompressedHead::ValueForm::Quantized;
                head.quantizedValues = quantize(V, 2, 32, G::PerToken);
            }
            heads.push_back(std::move(head));
        }
        std::vector<Matrix> queries;
        for (int q = 0; q < kvHeads * group; ++q)
            queries.push_back(randomMatrix(nq, d, rng));
        LayerAttendRequest request{heads, queries, group, {}};
        auto out = m_vulkan->attendLayer(request);
        KVS_VERIFY_OK(out);
        const DeviceAllocation& got = out->front().allocation;

        const Expected e = expectedBuffers(heads);
        const std::size_t keys = deviceBytes(e.keys);
        const std::size_t values = deviceBytes(e.values);
        const std::size_t metadata = deviceBytes(e.metadata);
        // Scratch: queries (fp32), query positions (one dummy), split partials (O, M, L per
        // split: 2 splits forced), outputs and ln Σ.
        const auto rows = static_cast<std::size_t>(kvHeads * group * nq);
        const auto dd = static_cast<std::size_t>(d);
        const std::size_t scratch =
            deviceBytes({std::max<std::size_t>(16, rows * dd * 4), 16, rows * 2 * (dd + 2) * 4,
                         rows * dd * 4, std::max<std::size_t>(16, rows * 4)});
        QVERIFY2(m_ruleError.isEmpty(), qPrintable(m_ruleError));
        qInfo("allocated: keys %zu values %zu metadata %zu scratch %zu in %d buffers", got.keys,
              got.values, got.metadata, got.scratch, got.buffers);
        QCOMPARE(got.keys, keys);
        QCOMPARE(got.values, values);
        QCOMPARE(got.metadata, metadata);
        QCOMPARE(got.scratch, scratch);
        QCOMPARE(got.buffers, 7 + 5);
        // K=V: the values buffer is a second copy of what the cache stores once, unless the
        // kernels rotate the values into keys (then the keys buffer holds only frequencies).
        QCOMPARE(got.sharedValueCopy,
                 form == "k=v" ? deviceBytes({e.values.front()}) : std::size_t{0});
        // Never less than what the heads say they store.
        std::size_t counted = 0;
        for (const CompressedHead& h : heads)
            counted += h.bytes().total();
        QVERIFY2(got.cache() >= counted,
                 qPrintable(QString("allocated %1 < counted %2").arg(got.cache()).arg(counted)));
        // The map kernel's outputs are scratch too.
        request.options.wantProbabilities = true;
        auto withMap = m_vulkan->attendLayer(request);
        KVS_VERIFY_OK(withMap);
        QCOMPARE(withMap->front().allocation.cache(), got.cache());
        QVERIFY(withMap->front().allocation.scratch > got.scratch);
        QCOMPARE(withMap->front().allocation.buffers, 7 + 7);
    }

    // A layer too big for one binding is uploaded in chunks; the K=V copy adds up over them.
    void keqvCopyAddsUpOverChunks() {
        requireVulkan();
        VulkanBackendOptions options;
        options.instance.validation = true;
        options.maxBindingBytes = 4096; // one head of 37 × 32 fp16 values (2,368 B) per chunk
        auto small = makeVulkanBackend(options);
        KVS_VERIFY_OK(small);
        std::mt19937 rng(11);
        std::vector<CompressedHead> heads;
        std::size_t expected = 0;
        for (int h = 0; h < 3; ++h) {
            const Matrix K = randomMatrix(37, 32, rng);
            CompressedHead head = exactHead(K, K, Precision::F16);
            head.valueForm = CompressedHead::ValueForm::SharedWithKeys;
            expected += deviceBytes({expectedBuffers({head}).values.front()});
            heads.push_back(std::move(head));
        }
        std::vector<Matrix> queries;
        for (int q = 0; q < 3; ++q)
            queries.push_back(randomMatrix(2, 32, rng));
        auto out = small.value()->attendLayer({heads, queries, 1, {}});
        KVS_VERIFY_OK(out);
        const DeviceAllocation& got = out->front().allocation;
        QCOMPARE(got.buffers, 3 * (7 + 5)); // three chunks, each with its own scratch
        QCOMPARE(got.sharedValueCopy, expected);
        QVERIFY(got.values > got.sharedValueCopy); // plus the (empty) value-scale buffers
        QVERIFY2(m_ruleError.isEmpty(), qPrintable(m_ruleError));
    }

    void zeroBytesIsAnError() {
        requireVulkan();
        KVS_VERIFY_ERROR(m_vulkan->memoryRequirement(0), "at least 1 byte");
        const auto one = m_vulkan->memoryRequirement(1);
        KVS_VERIFY_OK(one);
        QVERIFY(one.value() >= 1);
    }

    void cpuBackendAllocatesNothingOnADevice() {
        const CompressedHead h = exactHead(Matrix::Ones(3, 4), Matrix::Ones(3, 4));
        const Matrix q[] = {Matrix::Ones(1, 4)};
        auto out =
            makeCpuBackend()->attendLayer({std::span<const CompressedHead>(&h, 1), q, 1, {}});
        KVS_VERIFY_OK(out);
        QCOMPARE(out->front().allocation.cache(), std::size_t{0});
        QCOMPARE(out->front().allocation.buffers, 0);
    }
};

QTEST_GUILESS_MAIN(TestGpuAllocation)
#include "test_gpu_allocation.moc"
