// SPDX-License-Identifier: MIT
// The evaluation protocol through the Vulkan backend agrees with the CPU reference: same kept
// tokens and bytes (compression is on the CPU), per-head errors and model-level quality within
// float tolerance, under the Khronos validation layer — for a GQA model and for K=V models with
// RoPE and with learned positions, whose keys the kernels derive from the cached values.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/model.h"
#include "kvs_test.h"

#include <QtTest>
#include <cmath>
#include <map>

using namespace kvs;

class TestEvalBackends : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    // GQA Llama; K=V Llama (RoPE: the kernels rotate the cached keys on load); K=V GPT-2 (learned
    // positions: keys are the values).
    std::map<QString, std::pair<std::unique_ptr<Model>, std::unique_ptr<Capture>>> m_models;
    std::unique_ptr<gpu::VulkanBackend> m_vulkan;
    std::string m_error;

    void requireVulkan() {
        if (!m_vulkan && qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") == "1")
            QSKIP(qPrintable(QString("no Vulkan: %1").arg(QString::fromStdString(m_error))));
        QVERIFY2(m_vulkan, m_error.c_str());
    }

private slots:
    void initTestCase() {
        qputenv("KVS_VK_VALIDATION", "1");
        auto v = gpu::makeVulkanBackend();
        if (v.ok())
            m_vulkan = std::move(v.value());
        else
            m_error = v.message();
        for (const char* name : {"gqa", "k=v llama", "k=v gpt2"}) {
            const QString n = QString::fromLatin1(name);
            SyntheticModelSpec spec = syntheticPreset(n == "gqa"         ? "tiny-llama-gqa"
                                                      : n == "k=v llama" ? "tiny-llama"
                                                                         : "tiny-gpt2");
            if (n.startsWith("k=v"))
                spec.config.sharing = ProjectionSharing::KEqV;
            const auto folder = test::writeModel(m_dir,
                                                 n == "gqa"         ? "gqa"
                                                 : n == "k=v llama" ? "kv1"
                                                                    : "kv2",
                                                 spec);
            auto model = std::make_unique<Model>(Model::load(folder).valueOrThrow());
            auto capture = std::make_unique<Capture>(
                model
                    ->capture("Blessed are the meek: for they shall inherit the earth. Blessed "
                              "are they which do hunger and thirst after righteousness.")
                    .valueOrThrow());
            m_models[n] = {std::move(model), std::move(capture)};
        }
    }

    void agree_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("scheme");
        const std::pair<const char*, const char*> schemes[] = {
            {"identity fp32", "identity"},
            {"identity fp16", "identity:precision=16"},
            {"halving", "coreset.halving:keep=0.3,sinks=4,window=8"},
            {"uniform", "select.uniform:keep=0.2"},
            {"snapkv", "select.snapkv:keep=0.25,observation=8"}};
        for (const char* model : {"gqa", "k=v llama", "k=v gpt2"})
            for (const auto& [name, scheme] : schemes)
                QTest::addRow("%s, %s", model, name) << QString(model) << QString(scheme);
        // Codecs and factored keys read the quantized and low-rank forms (K=V caches refuse);
        // post-hoc sharing rewrites the model.
        const std::pair<const char*, const char*> coded[] = {
            {"K4/V2, G12", "codec.uniform:key_bits=4,value_bits=2,group=12"},
            {"3 bits, G4", "codec.uniform:bits=3,group=4"},
            {"entropy-coded", "codec.entropy:alpha=0.5"},
            // Hadamard-rotated codes: queries rotated before the probe, outputs after the combine.
            {"K4/V2, Hadamard blocks of 4",
             "codec.uniform:key_bits=4,value_bits=2,group=12,rotation=4"},
            {"entropy-coded, Hadamard blocks of 4", "codec.entropy:alpha=0.5,rotation=4"},
            // Pre-RoPE key codes: decoded and turned by each kept token's position on load.
            {"K4/V2, keys before RoPE",
             "codec.uniform:key_bits=4,value_bits=2,group=12,pre_rope=1"},
            {"entropy-coded, keys before RoPE", "codec.entropy:alpha=0.5,pre_rope=1"},
            {"SnapKV + 4-bit keys before RoPE",
             "select.snapkv:keep=0.3+codec.uniform:bits=4,group=4,pre_rope=1"},
            // A recent window at fp16: two passes per layer, merged by log-sum-exp.
            {"K2/V2 + 16 recent tokens at fp16", "codec.uniform:bits=2,group=12,recent=16"},
            {"entropy-coded, Hadamard, 16 recent", "codec.entropy:alpha=0.5,rotation=4,recent=16"},
            {"K4/V2 before RoPE + 16 recent",
             "codec.uniform:key_bits=4,value_bits=2,group=12,pre_rope=1,recent=16"},
            {"halving (weighted) + K2/V2 + 8 recent",
             "coreset.halving:keep=0.3+codec.uniform:bits=2,group=4,recent=8"},
            // Outliers kept dense beside the codes: per-row tables the kernels add back.
            {"K2/V2 + 2% outliers", "codec.uniform:bits=2,group=12,outliers=0.02"},
            {"K4/V2 before RoPE + 3% outliers + 16 recent",
             "codec.uniform:key_bits=4,value_bits=2,group=12,pre_rope=1,outliers=0.03,recent=16"},
            {"halving + rank 4 + 2-bit values with 5% outliers",
             "coreset.halving:keep=0.3+factor.data_aware:rank=4+codec.uniform:bits=2,group=4,"
             "outliers=0.05"},
            {"rank 4", "factor.data_aware:rank=4"},
            {"weight SVD rank 4 (pre-RoPE, rotated on load)", "factor.weight_svd:rank=4"},
            {"rotation pairs, rank 4", "factor.rope_pairs:rank=4"},
            // Rewritten models: the cache is the rewritten model's, in the plain forms.
            {"MQA pooled", "share.pool:kv_heads=1"},
            {"MQA least squares", "share.lsq:kv_heads=1"},
            {"K=V regression", "share.kv_regress"},
            // Chains: kept tokens at their original positions (rotation angles included),
            // low-rank keys beside quantized values, a rewritten model's cache selected.
            {"H2O ¼ + rank 4 + 4-bit values",
             "select.h2o:keep=0.25+factor.data_aware:rank=4+codec.uniform:bits=4,group=4"},
            {"H2O ¼ + rank 4 + rotated 4-bit values (outputs turned back only)",
             "select.h2o:keep=0.25+factor.data_aware:rank=4+codec.uniform:bits=4,group=4,"
             "rotation=4"},
            {"halving + weight SVD rank 4 (rotated on load) + entropy-coded values",
             "coreset.halving:keep=0.3+factor.weight_svd:rank=4+codec.entropy:alpha=0.5"},
            {"MQA pooled + SnapKV + K4/V2",
             "share.pool:kv_heads=1+select.snapkv:keep=0.3+codec.uniform:key_bits=4,value_bits=2,"
             "group=4"}};
        for (const auto& [name, scheme] : coded)
            QTest::addRow("gqa, %s", name) << QString("gqa") << QString(scheme);
    }
    void agree() {
        requireVulkan();
        QFETCH(QString, model);
        QFETCH(QString, scheme);
        const Model& m = *m_models.at(model).first;
        const Capture& capture = *m_models.at(model).second;
        const auto setting = SchemeSetting::parse(scheme.toStdString()).valueOrThrow();
        EvalOptions o;
        o.contextTokens = 90;
        o.attentionMaps = true;
        auto cpu = makeCpuBackend();
        const auto a = evaluate(capture, &m, setting, *cpu, o);
        const auto b = evaluate(capture, &m, setting, *m_vulkan, o);
        KVS_VERIFY_OK(a);
        KVS_VERIFY_OK(b);
        const EvalResult& c = a.value();
        const EvalResult& g = b.value();
        QCOMPARE(g.bytes.total(), c.bytes.total());
        QCOMPARE(g.heads.size(), c.heads.size());
        // fp32 accumulation in a different order on the GPU: errors agree to ~1e-6 absolute
        // (relative errors of 0 stay 1e-7-small), mass lost likewise.
        QVERIFY2(std::abs(g.contextError - c.contextError) < 2e-5,
                 qPrintable(QString("%1 vs %2").arg(g.contextError).arg(c.contextError)));
        QVERIFY(std::abs(g.massLost - c.massLost) < 1e-5);
        QVERIFY2(std::abs(g.outputError - c.outputError) < 2e-5,
                 qPrintable(QString("%1 vs %2").arg(g.outputError).arg(c.outputError)));
        for (std::size_t i = 0; i < c.heads.size(); ++i) {
            QCOMPARE(g.heads[i].keptTokens, c.heads[i].keptTokens);
            for (std::size_t q = 0; q < c.heads[i].compressedMap.size(); ++q)
                QVERIFY(test::maxAbsDiff(g.heads[i].compressedMap[q], c.heads[i].compressedMap[q]) <
                        1e-5);
        }
        // Model-level: the identity scheme is exact on each backend against its own reference.
        QVERIFY(g.quality && c.quality);
        if (scheme.startsWith("identity") && !scheme.contains("16")) {
            QCOMPARE(g.quality->klMean, 0.0);
            QCOMPARE(g.quality->top1Agreement, 1.0);
        }
        QVERIFY(std::abs(g.quality->klMean - c.quality->klMean) <
                1e-5 + 1e-3 * std::abs(c.quality->klMean));
        QVERIFY(m_vulkan->validationMessages().empty());
        // K=V: no value bytes on either backend (on the GPU the kernels turn the cached keys
        // into attention's keys on load: rotated under RoPE, as they are with learned positions).
        if (model.startsWith("k=v"))
            QVERIFY(c.bytes.values == 0 && g.bytes.values == 0);
    }
};

QTEST_GUILESS_MAIN(TestEvalBackends)
#include "test_eval_backends.moc"
