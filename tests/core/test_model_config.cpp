// SPDX-License-Identifier: MIT
// parseModelConfig on real-shaped Hugging Face configs, the HF round trip, derived sizes, errors.
#include "kvs/model_config.h"
#include "kvs_test.h"

#include <QtTest>
#include <nlohmann/json.hpp>

using nlohmann::json;
using namespace kvs;

namespace {

// GPT-2 small as published by OpenAI / Hugging Face.
const char* kGpt2Small = R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
  "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
  "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": null, "n_layer": 12,
  "n_positions": 1024, "resid_pdrop": 0.1, "vocab_size": 50257
})";

// A small Llama with GQA (4 query heads over 2 KV heads), untied.
const char* kLlamaTiny = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
  "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 512,
  "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "hidden_act": "silu",
  "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": [2, 7, 9]
})";

json parse(const char* text) {
    return json::parse(text);
}

ModelConfig parsed(const json& j) {
    auto r = parseModelConfig(j, "test-config.json");
    if (!r.ok())
        qFatal("unexpected parse failure: %s", r.message().c_str());
    return r.value();
}

} // namespace

class TestModelConfig : public QObject {
    Q_OBJECT

private slots:
    void gpt2Small() {
        const ModelConfig c = parsed(parse(kGpt2Small));
        KVS_COMPARE_ENUM(c.family, Family::Gpt2);
        QCOMPARE(c.modelType, std::string("gpt2"));
        QCOMPARE(c.architecture, std::string("GPT2LMHeadModel"));
        QCOMPARE(c.layers, 12);
        QCOMPARE(c.heads, 12);
        QCOMPARE(c.kvHeads, 12);
        QCOMPARE(c.width, 768);
        QCOMPARE(c.headDim, 64);
        QCOMPARE(c.intermediate, 3072); // n_inner null -> 4 * n_embd
        QCOMPARE(c.vocab, 50257);
        QCOMPARE(c.maxPositions, 1024);
        QCOMPARE(c.positions, PositionKind::Learned);
        KVS_COMPARE_ENUM(c.norm, NormKind::LayerNorm);
        KVS_COMPARE_ENUM(c.mlp, MlpKind::GeluTanh);
        QVERIFY(c.tiedEmbeddings); // GPT-2 ties by default
        QVERIFY(c.qkvBias && c.outputBias && c.mlpBias);
        QCOMPARE(c.bosTokenId.value(), 50256);
        QCOMPARE(c.eosTokenId.value(), 50256);
        // Per layer: attention 4D^2 + 4D, MLP 8D^2 + 5D, two LayerNorms 4D = 12D^2 + 13D =
        // 7,087,872 for D = 768; 12 layers = 85,054,464; final norm 1,536; wte 50257 * 768 =
        // 38,597,376; wpe 1024 * 768 = 786,432. Total 124,439,808.
        QCOMPARE(c.parameterCount(), 124439808LL);
        // fp16 K and V: 2 bytes * 64 * 2 * 12 heads * 12 layers.
        QCOMPARE(c.kvBytesPerTokenFp16(), 36864LL);

        json untied = parse(kGpt2Small);
        untied["tie_word_embeddings"] = false;
        untied["n_inner"] = 1000;
        const ModelConfig u = parsed(untied);
        QVERIFY(!u.tiedEmbeddings);
        QCOMPARE(u.intermediate, 1000);
    }

    void llamaGqa() {
        const ModelConfig c = parsed(parse(kLlamaTiny));
        KVS_COMPARE_ENUM(c.family, Family::Llama);
        QCOMPARE(c.heads, 4);
        QCOMPARE(c.kvHeads, 2);
        QCOMPARE(c.groupSize(), 2);
        QCOMPARE(c.headDim, 16);
        QCOMPARE(c.positions, PositionKind::Rope);
        KVS_COMPARE_ENUM(c.norm, NormKind::RmsNorm);
        KVS_COMPARE_ENUM(c.mlp, MlpKind::SwiGlu);
        QCOMPARE(c.ropeTheta, 10000.0);
        KVS_COMPARE_ENUM(c.ropeScaling.kind, RopeScaling::Kind::None);
        QVERIFY(!c.tiedEmbeddings);
        QVERIFY(!c.qkvBias && !c.outputBias && !c.mlpBias);
        QVERIFY(!c.slidingWindow);
        QCOMPARE(c.eosTokenId.value(), 2); // first of the list
        KVS_COMPARE_ENUM(c.sharing, ProjectionSharing::Qkv);
        // Per layer: q 64*64 = 4096, k 64*32 = 2048, v 2048, o 4096 -> 12,288; SwiGLU 3*64*128 =
        // 24,576; two RMSNorms 128 -> 36,992; 2 layers 73,984; final norm 64; embeddings and
        // lm_head 2 * 100 * 64 = 12,800. Total 86,848.
        QCOMPARE(c.parameterCount(), 86848LL);
        // fp16: 2 bytes * 16 * (K + V) * 2 KV heads * 2 layers.
        QCOMPARE(c.kvBytesPerTokenFp16(), 256LL);

        json kv = parse(kLlamaTiny);
        kv["kvstudio_projection_sharing"] = "k_eq_v";
        const ModelConfig s = parsed(kv);
        KVS_COMPARE_ENUM(s.sharing, ProjectionSharing::KEqV);
        QCOMPARE(s.kvBytesPerTokenFp16(), 128LL);         // only keys are cached
        QCOMPARE(s.parameterCount(), 86848LL - 2 * 2048); // no value projections
    }

    void headDimDiffersFromWidthOverHeads() {
        json j = parse(kLlamaTiny);
        j["head_dim"] = 24; // 4 * 24 = 96 != 64
        const ModelConfig c = parsed(j);
        QCOMPARE(c.headDim, 24);
        QCOMPARE(c.width, 64);
        // q 64*96, k 64*48, v 64*48, o 96*64 = 18,432 per layer (vs 12,288 at head_dim 16).
        QCOMPARE(c.parameterCount(), 86848LL + 2 * (18432 - 12288));
        QCOMPARE(c.kvBytesPerTokenFp16(), 2LL * 24 * 2 * 2 * 2);
    }

    void mistralSlidingWindow() {
        json j = parse(kLlamaTiny);
        j["model_type"] = "mistral";
        j["architectures"] = {"MistralForCausalLM"};
        j["sliding_window"] = 4096;
        const ModelConfig c = parsed(j);
        QCOMPARE(c.slidingWindow.value(), 4096);
        QCOMPARE(static_cast<int>(c.slidingLayers.size()), 2);
        QVERIFY(c.windowApplies(0) && c.windowApplies(1));

        j["sliding_window"] = nullptr;
        QVERIFY(!parsed(j).slidingWindow);
    }

    void qwen2() {
        json j = parse(kLlamaTiny);
        j["model_type"] = "qwen2";
        j["architectures"] = {"Qwen2ForCausalLM"};
        j["sliding_window"] = 32768;
        j["use_sliding_window"] = false;
        j["max_window_layers"] = 21;
        j["rope_theta"] = 1000000.0;
        const ModelConfig c = parsed(j);
        QVERIFY(c.qkvBias);
        QVERIFY(!c.outputBias);
        QVERIFY(!c.slidingWindow); // use_sliding_window false -> no window
        QVERIFY(!c.windowApplies(0));
        QCOMPARE(c.ropeTheta, 1000000.0);
        // Biases on q (64), k (32) and v (32) per layer.
        QCOMPARE(c.parameterCount(), 86848LL + 2 * 128);

        j["use_sliding_window"] = true;
        j["max_window_layers"] = 1;
        const ModelConfig w = parsed(j);
        QCOMPARE(w.slidingWindow.value(), 32768);
        QVERIFY(!w.windowApplies(0));
        QVERIFY(w.windowApplies(1));
    }

    void ropeScaling_data() {
        QTest::addColumn<QString>("scaling");
        QTest::addColumn<int>("kind");
        QTest::addColumn<double>("factor");
        QTest::addColumn<int>("original");
        QTest::newRow("linear type")
            << R"({"type": "linear", "factor": 2.0})" << int(RopeScaling::Kind::Linear) << 2.0 << 0;
        QTest::newRow("linear rope_type") << R"({"rope_type": "linear", "factor": 3.0})"
                                          << int(RopeScaling::Kind::Linear) << 3.0 << 0;
        QTest::newRow("dynamic") << R"({"type": "dynamic", "factor": 4.0})"
                                 << int(RopeScaling::Kind::Dynamic) << 4.0 << 512;
        QTest::newRow("yarn no original")
            << R"({"rope_type": "yarn", "factor": 4.0, "beta_fast": 16, "beta_slow": 2})"
            << int(RopeScaling::Kind::Yarn) << 4.0 << 512;
        // transformers derives the factor from the two lengths when both are given.
        QTest::newRow("yarn original")
            << R"({"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 128})"
            << int(RopeScaling::Kind::Yarn) << 4.0 << 128;
        QTest::newRow("llama3") << R"({"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192})"
                                << int(RopeScaling::Kind::Llama3) << 8.0 << 8192;
        QTest::newRow("default") << R"({"rope_type": "default"})" << int(RopeScaling::Kind::None)
                                 << 1.0 << 0;
    }
    void ropeScaling() {
        QFETCH(QString, scaling);
        QFETCH(int, kind);
        QFETCH(double, factor);
        QFETCH(int, original);
        json j = parse(kLlamaTiny);
        j["rope_scaling"] = json::parse(scaling.toStdString());
        const ModelConfig c = parsed(j);
        QCOMPARE(int(c.ropeScaling.kind), kind);
        QCOMPARE(c.ropeScaling.factor, factor);
        QCOMPARE(c.ropeScaling.originalMaxPositions, original);
        if (c.ropeScaling.kind == RopeScaling::Kind::Dynamic)
            QCOMPARE(c.contextLimit(), 2048); // 512 * 4
        else
            QCOMPARE(c.contextLimit(), 512);
        if (c.ropeScaling.kind == RopeScaling::Kind::Yarn && original == 512) {
            QCOMPARE(c.ropeScaling.betaFast, 16.0);
            QCOMPARE(c.ropeScaling.betaSlow, 2.0);
        }
        if (c.ropeScaling.kind == RopeScaling::Kind::Llama3) {
            QCOMPARE(c.ropeScaling.lowFreqFactor, 1.0);
            QCOMPARE(c.ropeScaling.highFreqFactor, 4.0);
        }
    }

    void ropeParameters() {
        // transformers >= 4.56 spelling: theta and scaling together in "rope_parameters".
        json j = parse(kLlamaTiny);
        j.erase("rope_theta");
        j["rope_parameters"] = {
            {"rope_theta", 500000.0},  {"rope_type", "llama3"},
            {"factor", 32.0},          {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
        const ModelConfig c = parsed(j);
        QCOMPARE(c.ropeTheta, 500000.0);
        KVS_COMPARE_ENUM(c.ropeScaling.kind, RopeScaling::Kind::Llama3);
        QCOMPARE(c.ropeScaling.factor, 32.0);
        QCOMPARE(c.ropeScaling.originalMaxPositions, 8192);

        j["rope_parameters"] = {{"rope_theta", 20000.0}, {"rope_type", "default"}};
        const ModelConfig d = parsed(j);
        QCOMPARE(d.ropeTheta, 20000.0);
        KVS_COMPARE_ENUM(d.ropeScaling.kind, RopeScaling::Kind::None);
    }

    void projectionSharing_data() {
        QTest::addColumn<QString>("value");
        QTest::addColumn<int>("sharing");
        QTest::newRow("qkv") << "qkv" << int(ProjectionSharing::Qkv);
        QTest::newRow("k_eq_v") << "k_eq_v" << int(ProjectionSharing::KEqV);
        QTest::newRow("q_eq_k") << "q_eq_k" << int(ProjectionSharing::QEqK);
        QTest::newRow("q_eq_k_eq_v") << "q_eq_k_eq_v" << int(ProjectionSharing::QEqKEqV);
    }
    void projectionSharing() {
        QFETCH(QString, value);
        QFETCH(int, sharing);
        json j = parse(kLlamaTiny);
        j["num_key_value_heads"] = 4; // q_eq_k needs as many KV heads as heads
        j["kvstudio_projection_sharing"] = value.toStdString();
        QCOMPARE(int(parsed(j).sharing), sharing);
    }

    void hfRoundTrip_data() {
        QTest::addColumn<QString>("preset");
        for (const auto& name : syntheticPresetNames())
            QTest::newRow(name.c_str()) << QString::fromStdString(name);
    }
    void hfRoundTrip() {
        QFETCH(QString, preset);
        const ModelConfig a = syntheticPreset(preset.toStdString()).config;
        const ModelConfig b = parsed(toHfConfigJson(a));
        QCOMPARE(b.toJson().dump(), a.toJson().dump());
        QCOMPARE(b.layers, a.layers);
        QCOMPARE(b.heads, a.heads);
        QCOMPARE(b.kvHeads, a.kvHeads);
        QCOMPARE(b.width, a.width);
        QCOMPARE(b.headDim, a.headDim);
        QCOMPARE(b.intermediate, a.intermediate);
        QCOMPARE(b.vocab, a.vocab);
        QCOMPARE(b.maxPositions, a.maxPositions);
        QCOMPARE(b.ropeTheta, a.ropeTheta);
        KVS_COMPARE_ENUM(b.ropeScaling.kind, a.ropeScaling.kind);
        QCOMPARE(b.ropeScaling.factor, a.ropeScaling.factor);
        QCOMPARE(b.ropeScaling.lowFreqFactor, a.ropeScaling.lowFreqFactor);
        QCOMPARE(b.ropeScaling.highFreqFactor, a.ropeScaling.highFreqFactor);
        QCOMPARE(b.tiedEmbeddings, a.tiedEmbeddings);
        QCOMPARE(b.qkvBias, a.qkvBias);
        QCOMPARE(b.outputBias, a.outputBias);
        QCOMPARE(b.mlpBias, a.mlpBias);
        QCOMPARE(b.slidingWindow, a.slidingWindow);
        QCOMPARE(b.slidingLayers, a.slidingLayers);
        QCOMPARE(b.scaleAttnByInverseLayerIdx, a.scaleAttnByInverseLayerIdx);
        QCOMPARE(b.bosTokenId, a.bosTokenId);
        QCOMPARE(b.eosTokenId, a.eosTokenId);
        QCOMPARE(b.parameterCount(), a.parameterCount());
    }

    void errors_data() {
        QTest::addColumn<QString>("config");
        QTest::addColumn<QString>("fragment");
        QTest::newRow("gpt2 missing n_layer")
            << R"({"model_type": "gpt2", "n_head": 12, "n_embd": 768, "vocab_size": 10,
                  "n_positions": 16})"
            << "missing key \"n_layer\"";
        QTest::newRow("llama missing hidden_size")
            << R"({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4,
                  "vocab_size": 10, "intermediate_size": 8, "max_position_embeddings": 16})"
            << "missing key \"hidden_size\"";
        QTest::newRow("heads not divisible by kv heads")
            << R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 10,
                  "intermediate_size": 8, "max_position_embeddings": 16})"
            << "4 attention heads cannot be grouped over 3 key/value heads";
        QTest::newRow("unknown model_type") << R"({"model_type": "bert", "hidden_size": 64})"
                                            << "model_type \"bert\"";
        QTest::newRow("no model_type, unknown architecture")
            << R"({"architectures": ["BertModel"]})"
            << "missing \"model_type\"";
        QTest::newRow("unsupported rope type")
            << R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8,
                  "max_position_embeddings": 16, "rope_scaling": {"type": "su", "factor": 2}})"
            << "rope scaling type \"su\" is not supported";
        QTest::newRow("non-integer layers")
            << R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2.5,
                  "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8,
                  "max_position_embeddings": 16})"
            << "\"num_hidden_layers\" must be an integer, got 2.5";
        QTest::newRow("string heads")
            << R"({"model_type": "gpt2", "n_layer": 2, "n_head": "12", "n_embd": 768,
                  "vocab_size": 10, "n_positions": 16})"
            << "\"n_head\" must be an integer";
        QTest::newRow("zero heads")
            << R"({"model_type": "gpt2", "n_layer": 2, "n_head": 0, "n_embd": 768,
                  "vocab_size": 10, "n_positions": 16})"
            << "out of range";
        QTest::newRow("unknown sharing")
            << R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8,
                  "max_position_embeddings": 16, "kvstudio_projection_sharing": "k_eq_q"})"
            << "\"kvstudio_projection_sharing\" = \"k_eq_q\"";
        QTest::newRow("not an object") << "[1, 2]"
                                       << "must be a JSON object";
    }
    void errors() {
        QFETCH(QString, config);
        QFETCH(QString, fragment);
        const std::string frag = fragment.toStdString();
        const auto r = parseModelConfig(json::parse(config.toStdString()), "some/dir/config.json");
        KVS_VERIFY_ERROR(r, "some/dir/config.json", frag.c_str());
    }

    void loadErrors() {
        test::TempDir dir;
        const auto path = dir / "config.json";
        test::writeBytes(path, "{\"model_type\": \"gpt2\", \"n_layer\": 2,");
        const std::string where = path.string();
        const auto r = loadModelConfig(path);
        KVS_VERIFY_ERROR(r, where.c_str(), "malformed JSON");
        QCOMPARE(r.error().code(), ErrorCode::Format);

        // A number no double holds is malformed JSON too, not an internal error (found by
        // fuzz_model_config; tests/fuzz/regressions/model_config).
        test::writeBytes(path, "{\"model_type\": \"llama\", \"rms_norm_eps\": 1e505}");
        const auto overflow = loadModelConfig(path);
        KVS_VERIFY_ERROR(overflow, where.c_str(), "malformed JSON", "1e505");
        QCOMPARE(overflow.error().code(), ErrorCode::Format);

        const auto missingPath = dir / "absent.json";
        const std::string missing = missingPath.string();
        KVS_VERIFY_ERROR(loadModelConfig(missingPath), missing.c_str());

        test::writeBytes(path, kGpt2Small);
        const auto ok = loadModelConfig(path);
        KVS_VERIFY_OK(ok);
        QCOMPARE(ok.value().layers, 12);
    }
};

QTEST_APPLESS_MAIN(TestModelConfig)
#include "test_model_config.moc"
