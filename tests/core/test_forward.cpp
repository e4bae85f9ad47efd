// SPDX-License-Identifier: MIT
// Forward-pass checks that need no Hugging Face: causality, KV-cache decoding, GQA = MHA with
// copied heads, the two RoPE layouts, fp32 against fp64.
#include "kvs/file_util.h"
#include "kvs/model.h"
#include "kvs/safetensors.h"
#include "kvs/threads.h"
#include "kvs_test.h"

#include <QTest>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

using namespace kvs;
using kvs::test::TempDir;

namespace {

std::vector<TokenId> someTokens(int n, int vocab, int seed = 7) {
    std::vector<TokenId> t;
    std::uint32_t x = static_cast<std::uint32_t>(seed);
    for (int i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        t.push_back(static_cast<TokenId>((x >> 8) % static_cast<std::uint32_t>(vocab)));
    }
    return t;
}

// Copies a model folder, passing every tensor (as fp32) and config.json through edit functions.
using TensorEdit = std::function<void(const std::string& name, std::vector<std::int64_t>& shape,
                                      std::vector<float>& data)>;
void rewriteModel(const std::filesystem::path& src, const std::filesystem::path& dst,
                  const std::function<void(nlohmann::json&)>& editConfig,
                  const TensorEdit& editTensor) {
    std::filesystem::create_directories(dst);
    auto ckpt = Checkpoint::open(src).valueOrThrow();
    SafetensorsWriter w;
    for (const auto& name : ckpt.names()) {
        const auto& info = ckpt.info(name);
        std::vector<float> data(static_cast<std::size_t>(info.numel()));
        convertToFloat(info.dtype, ckpt.bytes(name).data(), data.size(), data.data());
        auto shape = info.shape;
        editTensor(name, shape, data);
        w.addFloat(name, DType::F32, shape, data);
    }
    QVERIFY(w.write(dst / "model.safetensors").ok());
    auto config = nlohmann::json::parse(readFile(src / "config.json"));
    editConfig(config);
    kvs::test::writeBytes(dst / "config.json", config.dump(2));
    std::filesystem::copy_file(src / "tokenizer.json", dst / "tokenizer.json");
}

} // namespace

class TestForward : public QObject {
    Q_OBJECT

private slots:
    void causality_data() {
        QTest::addColumn<QString>("preset");
        for (const char* p : {"tiny-gpt2", "tiny-gpt2-untied", "tiny-llama", "tiny-llama-gqa",
                              "tiny-qwen2", "tiny-mistral"})
            QTest::newRow(p) << QString(p);
    }
    // Appending tokens never changes the logits of earlier positions.
    void causality() {
        QFETCH(QString, preset);
        TempDir dir;
        auto model = Model::load(test::writeModel(dir, "m", syntheticPreset(preset.toStdString())))
                         .valueOrThrow();
        // Longer than one block of query rows (64) in the attention, and not a multiple of it.
        const auto tokens = someTokens(120, model.config().vocab);
        const Matrix full = model.forward(tokens);
        const std::vector<TokenId> prefix(tokens.begin(), tokens.begin() + 75);
        const Matrix part = model.forward(prefix);
        QCOMPARE(full.rows(), Eigen::Index(120));
        QVERIFY2(test::maxAbsDiff(part, full.topRows(75)) < 1e-4, "prefix logits changed");
        // And the logits do depend on the tokens (the check above is not vacuous).
        auto changed = tokens;
        changed[3] = (changed[3] + 1) % model.config().vocab;
        const Matrix other = model.forward(changed);
        QVERIFY(test::maxAbsDiff(other.topRows(3), full.topRows(3)) < 1e-4);
        QVERIFY(test::maxAbsDiff(other.row(3), full.row(3)) > 1e-3);
    }

    void cachedDecodingMatchesFullPass_data() { causality_data(); }
    // Decoding one token at a time through the KV cache gives the full pass's logits.
    void cachedDecodingMatchesFullPass() {
        QFETCH(QString, preset);
        TempDir dir;
        auto model = Model::load(test::writeModel(dir, "m", syntheticPreset(preset.toStdString())))
                         .valueOrThrow();
        const auto tokens = someTokens(110, model.config().vocab, 11);
        const Matrix full = model.forward(tokens);
        KvCache cache;
        // The prefill spans two blocks of query rows; decoding reads the cache.
        const Matrix prefill = model.forward(std::span<const TokenId>(tokens.data(), 100), &cache,
                                             nullptr, LogitRows::Last);
        QCOMPARE(cache.length, 100);
        QCOMPARE(prefill.rows(), Eigen::Index(1));
        QVERIFY(test::maxAbsDiff(prefill.row(0), full.row(99)) < 1e-4);
        for (int i = 100; i < 110; ++i) {
            const Matrix step =
                model.forward(std::span<const TokenId>(tokens.data() + i, 1), &cache);
            QVERIFY2(test::maxAbsDiff(step.row(0), full.row(i)) < 1e-4,
                     qPrintable(QString("position %1 differs").arg(i)));
        }
    }

    // Only the logits asked for are computed: the last row, or none (a pass that fills a cache
    // or a capture), equal to the rows of the whole pass; the cache is the same either way.
    void logitRowsAskedFor() {
        TempDir dir;
        auto model =
            Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-llama"))).valueOrThrow();
        const auto tokens = someTokens(70, model.config().vocab, 13);
        KvCache withAll, withNone;
        const Matrix all = model.forward(tokens, &withAll);
        const Matrix last = model.forward(tokens, nullptr, nullptr, LogitRows::Last);
        const Matrix none = model.forward(tokens, &withNone, nullptr, LogitRows::None);
        QCOMPARE(all.rows(), Eigen::Index(70));
        QCOMPARE(last.rows(), Eigen::Index(1));
        QCOMPARE(last.cols(), Eigen::Index(model.config().vocab));
        // (one row goes through a matrix-vector product: rounding differs, not the value)
        QVERIFY(test::maxAbsDiff(last.row(0), all.row(69)) < 1e-5 * all.cwiseAbs().maxCoeff());
        QCOMPARE(none.size(), Eigen::Index(0));
        QCOMPARE(withNone.length, 70);
        QCOMPARE(test::maxAbsDiff(withNone.layers[1][0].keys, withAll.layers[1][0].keys), 0.0);
        // A capture keeps the logits only when asked (they are n × vocabulary).
        const std::vector<TokenId> ids(tokens.begin(), tokens.end());
        QCOMPARE(model.captureTokens(ids).value().logits.size(), Eigen::Index(0));
        const Matrix kept = model.captureTokens(ids, {.logits = true}).value().logits;
        QCOMPARE(test::maxAbsDiff(kept, all), 0.0);
    }

    // A GQA model equals the MHA model whose key/value heads are copies of the shared ones.
    void gqaEqualsMhaWithCopiedHeads() {
        TempDir dir;
        const auto spec = syntheticPreset("tiny-llama-gqa");
        const auto src = test::writeModel(dir, "gqa", spec);
        const int d = spec.config.headDim, g = spec.config.groupSize(), heads = spec.config.heads;
        QVERIFY(g > 1);
        rewriteModel(
            src, dir / "mha", [&](nlohmann::json& c) { c["num_key_value_heads"] = heads; },
            [&](const std::string& name, std::vector<std::int64_t>& shape,
                std::vector<float>& data) {
                const bool kv = name.find("k_proj") != std::string::npos ||
                                name.find("v_proj") != std::string::npos;
                if (!kv)
                    return;
                const std::int64_t cols = shape.size() == 2 ? shape[1] : 1;
                std::vector<float> out;
                for (int h = 0; h < heads; ++h) {
                    const int source = h / g; // query head h reads kv head h / g
                    const auto begin =
                        data.begin() + static_cast<std::ptrdiff_t>(source) * d * cols;
                    out.insert(out.end(), begin, begin + static_cast<std::ptrdiff_t>(d) * cols);
                }
                shape[0] = static_cast<std::int64_t>(heads) * d;
                data = std::move(out);
            });
        auto gqa = Model::load(src).valueOrThrow();
        auto mha = Model::load(dir / "mha").valueOrThrow();
        QCOMPARE(mha.config().kvHeads, heads);
        const auto tokens = someTokens(33, gqa.config().vocab, 5);
        const double diff = test::maxAbsDiff(gqa.forward(tokens), mha.forward(tokens));
        QVERIFY2(diff < 1e-4, qPrintable(QString("max logit difference %1").arg(diff)));
    }

    // Meta's interleaved RoPE layout with q/k channels permuted equals the half-split layout.
    void ropeLayoutsAgree() {
        TempDir dir;
        const auto spec = syntheticPreset("tiny-llama");
        const auto src = test::writeModel(dir, "half", spec);
        const int d = spec.config.headDim;
        rewriteModel(
            src, dir / "interleaved",
            [](nlohmann::json& c) { c["kvstudio_rope_layout"] = "interleaved"; },
            [&](const std::string& name, std::vector<std::int64_t>& shape,
                std::vector<float>& data) {
                if (name.find("q_proj") == std::string::npos &&
                    name.find("k_proj") == std::string::npos)
                    return;
                // Within each head, channel i and i + d/2 become the pair 2i, 2i + 1.
                const std::int64_t cols = shape.size() == 2 ? shape[1] : 1;
                std::vector<float> out(data.size());
                for (std::int64_t row = 0; row < shape[0]; ++row) {
                    const std::int64_t head = row / d, c = row % d;
                    const std::int64_t target =
                        head * d + (c < d / 2 ? 2 * c : 2 * (c - d / 2) + 1);
                    std::copy_n(data.begin() + row * cols, cols, out.begin() + target * cols);
                }
                data = std::move(out);
            });
        auto half = Model::load(src).valueOrThrow();
        auto inter = Model::load(dir / "interleaved").valueOrThrow();
        QCOMPARE(inter.config().ropeLayout, RopeLayout::Interleaved);
        const auto tokens = someTokens(50, half.config().vocab, 3);
        const Matrix a = half.forward(tokens), b = inter.forward(tokens);
        QVERIFY2(test::maxAbsDiff(a, b) < 1e-4, "RoPE layouts disagree");
        // Without the permutation the interleaved model must differ (the test can fail).
        rewriteModel(
            src, dir / "unpermuted",
            [](nlohmann::json& c) { c["kvstudio_rope_layout"] = "interleaved"; },
            [](const std::string&, std::vector<std::int64_t>&, std::vector<float>&) {});
        auto wrong = Model::load(dir / "unpermuted").valueOrThrow();
        QVERIFY(test::maxAbsDiff(a, wrong.forward(tokens)) > 1e-3);
    }

    void fp32AgreesWithFp64_data() { causality_data(); }
    void fp32AgreesWithFp64() {
        QFETCH(QString, preset);
        TempDir dir;
        auto model = Model::load(test::writeModel(dir, "m", syntheticPreset(preset.toStdString())))
                         .valueOrThrow();
        const auto tokens = someTokens(100, model.config().vocab, 9);
        const Matrix f = model.forward(tokens);
        const MatrixT<double> d = model.forwardF64(tokens);
        const double scale = d.cwiseAbs().maxCoeff();
        const double diff = test::maxAbsDiff(f, d);
        // fp32 accumulates ~1e-7 relative error per operation over a few layers of width 64-128.
        QVERIFY2(diff <= 1e-5 * std::max(1.0, scale),
                 qPrintable(QString("diff %1 scale %2").arg(diff).arg(scale)));
    }

    // Sliding window: a query attends only to the last `window` keys, so tokens further back
    // than the window (times the layers) cannot influence it.
    void slidingWindowLimitsReach() {
        TempDir dir;
        auto spec = syntheticPreset("tiny-mistral");
        const int window = *spec.config.slidingWindow;
        auto model = Model::load(test::writeModel(dir, "m", spec)).valueOrThrow();
        auto tokens = someTokens(80, model.config().vocab, 2);
        const Matrix a = model.forward(tokens);
        tokens[0] = (tokens[0] + 1) % model.config().vocab;
        const Matrix b = model.forward(tokens);
        const int reach = spec.config.layers * (window - 1); // receptive field through all layers
        QVERIFY(test::maxAbsDiff(a.row(1), b.row(1)) > 1e-4);
        QVERIFY(test::maxAbsDiff(a.bottomRows(80 - reach - 1), b.bottomRows(80 - reach - 1)) <
                1e-5);
    }

    // fp32 weights stored input-major (GPT-2's) are read in place: after a forward pass the model
    // holds only its norms and biases converted; the same model in bf16 holds every weight as
    // fp32. Both give the same logits up to bf16's rounding of the weights.
    void fp32WeightsAreReadInPlace() {
        TempDir dir;
        auto spec = syntheticPreset("tiny-gpt2");
        spec.dtype = DType::F32;
        auto inPlace = Model::load(test::writeModel(dir, "f32", spec)).valueOrThrow();
        spec.dtype = DType::BF16;
        auto converted = Model::load(test::writeModel(dir, "bf16", spec)).valueOrThrow();
        const auto tokens = someTokens(20, spec.config.vocab, 23);
        const Matrix a = inPlace.forward(tokens);
        const Matrix b = converted.forward(tokens);
        const double file =
            static_cast<double>(std::filesystem::file_size(dir / "f32" / "model.safetensors"));
        QVERIFY2(static_cast<double>(inPlace.convertedWeightBytes()) < 0.05 * file,
                 qPrintable(QString::number(inPlace.convertedWeightBytes())));
        QVERIFY(static_cast<double>(converted.convertedWeightBytes()) > 0.9 * file);
        QVERIFY(test::maxAbsDiff(a, b) < 0.05 * a.cwiseAbs().maxCoeff());
    }

    // A background job's thread limit holds for its own thread only, is restored at the end of
    // its scope, and leaves the forward pass's results unchanged.
    void threadLimitIsPerThreadAndScoped() {
        const int before = threadLimit();
        QVERIFY(before >= 1 && hardwareThreads() >= 1);
        TempDir dir;
        auto model =
            Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-gpt2"))).valueOrThrow();
        const auto tokens = someTokens(90, model.config().vocab, 17);
        const Matrix all = model.forward(tokens);
        {
            const ScopedThreadLimit limit(1);
            QCOMPARE(threadLimit(), 1);
            int other = 0;
            std::thread([&] { other = threadLimit(); }).join();
            QCOMPARE(other, before);
            QVERIFY(test::maxAbsDiff(model.forward(tokens), all) <
                    1e-5 * all.cwiseAbs().maxCoeff());
        }
        QCOMPARE(threadLimit(), before);
    }

    void greedyGenerationUsesArgmax() {
        TempDir dir;
        auto model =
            Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-llama"))).valueOrThrow();
        auto tokens = someTokens(10, model.config().vocab, 4);
        const auto generated = model.generateGreedy(tokens, 5).valueOrThrow();
        QCOMPARE(generated.size(), std::size_t(5));
        for (TokenId next : generated) {
            const Matrix logits = model.forward(tokens);
            Eigen::Index best = 0;
            logits.row(logits.rows() - 1).maxCoeff(&best);
            QCOMPARE(next, static_cast<TokenId>(best));
            tokens.push_back(next);
        }
    }
};

QTEST_APPLESS_MAIN(TestForward)
#include "test_forward.moc"
