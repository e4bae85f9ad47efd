// SPDX-License-Identifier: MIT
// Captures: shapes, attention and RoPE recomputed independently, k_eq_v values, the capture file.
#include "kvs/capture.h"
#include "kvs/model.h"
#include "kvs/safetensors.h"
#include "kvs_test.h"

#include <QtTest>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

using namespace kvs;
namespace fs = std::filesystem;

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Model loadPreset(const test::TempDir& dir, const std::string& preset) {
    return Model::load(test::writeModel(dir, preset, syntheticPreset(preset))).valueOrThrow();
}

// softmax(q kᵀ / √d + causal mask) v in double precision.
MatD attention(const Matrix& q, const Matrix& k, const Matrix& v) {
    const MatD qd = q.cast<double>(), kd = k.cast<double>(), vd = v.cast<double>();
    const Eigen::Index n = q.rows();
    MatD scores = qd * kd.transpose() / std::sqrt(static_cast<double>(q.cols()));
    MatD out(n, v.cols());
    for (Eigen::Index i = 0; i < n; ++i) {
        double best = -INFINITY;
        for (Eigen::Index j = 0; j <= i; ++j)
            best = std::max(best, scores(i, j));
        double sum = 0;
        Eigen::RowVectorXd w = Eigen::RowVectorXd::Zero(n);
        for (Eigen::Index j = 0; j <= i; ++j) {
            w(j) = std::exp(scores(i, j) - best);
            sum += w(j);
        }
        out.row(i) = (w / sum) * vd;
    }
    return out;
}

// HF half-split RoPE with inv_freq_i = theta^(-2i/d), positions from 0.
MatD rotateHalfSplit(const Matrix& x, double theta) {
    const Eigen::Index n = x.rows(), d = x.cols(), half = d / 2;
    MatD out(n, d);
    for (Eigen::Index p = 0; p < n; ++p)
        for (Eigen::Index i = 0; i < half; ++i) {
            const double invFreq =
                std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
            const double a = static_cast<double>(p) * invFreq;
            const double x1 = x(p, i), x2 = x(p, i + half);
            out(p, i) = x1 * std::cos(a) - x2 * std::sin(a);
            out(p, i + half) = x2 * std::cos(a) + x1 * std::sin(a);
        }
    return out;
}

bool bitEqual(const Matrix& a, const Matrix& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

void rewriteWithout(const fs::path& file, const std::string& drop) {
    SafetensorsWriter w;
    {
        auto opened = SafetensorsFile::open(file);
        const SafetensorsFile& f = opened.valueOrThrow();
        for (const auto& [k, v] : f.metadata())
            w.setMetadata(k, v);
        for (const auto& name : f.names())
            if (name != drop)
                w.add(name, f.info(name).dtype, f.info(name).shape, f.bytes(name));
    }
    w.write(file).valueOrThrow();
}

const char* kPrompt = "The cat sat on the mat.";

} // namespace

class TestCapture : public QObject {
    Q_OBJECT

private slots:
    void shapes_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("group");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<bool>("rope");
        QTest::newRow("tiny-llama-gqa") << "tiny-llama-gqa" << 2 << 4 << 12 << true;
        QTest::newRow("tiny-gpt2") << "tiny-gpt2" << 4 << 1 << 16 << false;
    }
    void shapes() {
        QFETCH(QString, preset);
        QFETCH(int, kvHeads);
        QFETCH(int, group);
        QFETCH(int, headDim);
        QFETCH(bool, rope);
        test::TempDir dir;
        const Model m = loadPreset(dir, preset.toStdString());
        const auto r = m.capture(kPrompt, {.logits = true});
        KVS_VERIFY_OK(r);
        const Capture& c = r.value();
        const int n = c.tokenCount();
        QCOMPARE(n, static_cast<int>(std::string(kPrompt).size())); // byte-level, no merges
        QCOMPARE(c.prompt, std::string(kPrompt));
        QCOMPARE(static_cast<int>(c.tokenTexts.size()), n);
        QCOMPARE(c.logits.rows(), Eigen::Index(n));
        QCOMPARE(c.logits.cols(), Eigen::Index(m.config().vocab));
        QCOMPARE(static_cast<int>(c.layers.size()), 2);
        for (const auto& layer : c.layers) {
            QCOMPARE(layer.hiddenNormed.rows(), Eigen::Index(n));
            QCOMPARE(layer.hiddenNormed.cols(), Eigen::Index(m.config().width));
            QCOMPARE(static_cast<int>(layer.kvHeads.size()), kvHeads);
            for (const auto& h : layer.kvHeads) {
                QCOMPARE(h.keys.rows(), Eigen::Index(n));
                QCOMPARE(h.keys.cols(), Eigen::Index(headDim));
                QCOMPARE(h.values.rows(), Eigen::Index(n));
                QCOMPARE(h.values.cols(), Eigen::Index(headDim));
                QCOMPARE(h.keysPreRope.size() != 0, rope);
                if (rope)
                    QCOMPARE(h.keysPreRope.cols(), Eigen::Index(headDim));
                QCOMPARE(static_cast<int>(h.queries.size()), group);
                QCOMPARE(static_cast<int>(h.outputs.size()), group);
                QCOMPARE(static_cast<int>(h.queriesPreRope.size()), rope ? group : 0);
                for (const auto& q : h.queries) {
                    QCOMPARE(q.rows(), Eigen::Index(n));
                    QCOMPARE(q.cols(), Eigen::Index(headDim));
                }
            }
        }
        QCOMPARE(c.queryHead(1, 2), group + 2);
    }

    void attentionRecomputed_data() {
        QTest::addColumn<QString>("preset");
        QTest::newRow("tiny-gpt2") << "tiny-gpt2";
        QTest::newRow("tiny-llama-gqa") << "tiny-llama-gqa";
    }
    void attentionRecomputed() {
        QFETCH(QString, preset);
        test::TempDir dir;
        const Model m = loadPreset(dir, preset.toStdString());
        const auto r = m.capture(kPrompt);
        KVS_VERIFY_OK(r);
        double worst = 0;
        double magnitude = 0;
        for (const auto& layer : r.value().layers)
            for (const auto& h : layer.kvHeads)
                for (std::size_t j = 0; j < h.queries.size(); ++j) {
                    const MatD expected = attention(h.queries[j], h.keys, h.values);
                    worst = std::max(worst, test::maxAbsDiff(expected, h.outputs[j]));
                    magnitude = std::max(magnitude, expected.cwiseAbs().maxCoeff());
                }
        QVERIFY2(magnitude > 1e-3, "attention outputs are all near zero; the check is vacuous");
        QVERIFY2(worst < 1e-5, qPrintable(QString("max abs diff %1").arg(worst)));
    }

    void ropeRecomputed() {
        test::TempDir dir;
        const Model m = loadPreset(dir, "tiny-llama");
        KVS_COMPARE_ENUM(m.config().ropeScaling.kind, RopeScaling::Kind::None);
        QCOMPARE(m.config().ropeLayout, RopeLayout::HalfSplit);
        const auto r = m.capture(kPrompt);
        KVS_VERIFY_OK(r);
        const double theta = m.config().ropeTheta;
        double worst = 0;
        for (const auto& layer : r.value().layers)
            for (const auto& h : layer.kvHeads) {
                worst = std::max(worst,
                                 test::maxAbsDiff(rotateHalfSplit(h.keysPreRope, theta), h.keys));
                for (std::size_t j = 0; j < h.queries.size(); ++j)
                    worst = std::max(worst,
                                     test::maxAbsDiff(rotateHalfSplit(h.queriesPreRope[j], theta),
                                                      h.queries[j]));
            }
        QVERIFY2(worst < 1e-5, qPrintable(QString("max abs diff %1").arg(worst)));
        // Position 0 is not rotated; later positions are.
        const auto& h0 = r.value().layers[0].kvHeads[0];
        QCOMPARE(test::maxAbsDiff(h0.keysPreRope.row(0), h0.keys.row(0)), 0.0);
        QVERIFY(test::maxAbsDiff(h0.keysPreRope.row(3), h0.keys.row(3)) > 1e-4);
    }

    // A long capture reports every layer and stops at the next one once cancelled, with
    // ErrorCode::Cancelled; a finished capture equals one made without progress.
    void progressAndCancel() {
        test::TempDir dir;
        const Model m = loadPreset(dir, "tiny-llama-gqa");
        const std::vector<TokenId> tokens = {3, 17, 42, 99, 7, 250};
        std::vector<std::pair<int, int>> seen;
        CaptureOptions options;
        options.progress = [&](int done, int layers) { seen.emplace_back(done, layers); };
        const Capture c = m.captureTokens(tokens, options).valueOrThrow();
        const int layers = m.config().layers;
        QCOMPARE(static_cast<int>(seen.size()), layers);
        for (int l = 0; l < layers; ++l)
            QCOMPARE(seen[static_cast<std::size_t>(l)], std::make_pair(l + 1, layers));
        const Capture plain = m.captureTokens(tokens).valueOrThrow();
        QCOMPARE(c.layers[1].hiddenNormed, plain.layers[1].hiddenNormed);

        std::atomic<bool> cancel{true};
        options.cancel = &cancel;
        KVS_VERIFY_ERROR(m.captureTokens(tokens, options), "cancelled before layer 0 of");
        // Cancelled from the progress report after the first layer: stops before the second.
        cancel = false;
        options.progress = [&](int, int) { cancel = true; };
        const auto stopped = m.captureTokens(tokens, options);
        KVS_VERIFY_ERROR(stopped, "cancelled before layer 1 of");
        KVS_COMPARE_ENUM(stopped.error().code(), ErrorCode::Cancelled);
    }

    void kEqVValuesAreKeys() {
        test::TempDir dir;
        SyntheticModelSpec spec = syntheticPreset("tiny-llama");
        spec.config.sharing = ProjectionSharing::KEqV;
        const Model m = Model::load(test::writeModel(dir, "keqv", spec)).valueOrThrow();
        KVS_COMPARE_ENUM(m.config().sharing, ProjectionSharing::KEqV);
        const auto r = m.capture(kPrompt);
        KVS_VERIFY_OK(r);
        for (const auto& layer : r.value().layers)
            for (const auto& h : layer.kvHeads) {
                QVERIFY(bitEqual(h.values, h.keysPreRope));
                QVERIFY(!bitEqual(h.values, h.keys)); // keys are rotated, values are not
            }
    }

    void saveLoadRoundTrip_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<bool>("half");
        QTest::newRow("gqa f32") << "tiny-llama-gqa" << false;
        QTest::newRow("gqa f16") << "tiny-llama-gqa" << true;
        QTest::newRow("gpt2 f32") << "tiny-gpt2" << false;
        QTest::newRow("gpt2 f16") << "tiny-gpt2" << true;
    }
    void saveLoadRoundTrip() {
        QFETCH(QString, preset);
        QFETCH(bool, half);
        test::TempDir dir;
        const Model m = loadPreset(dir, preset.toStdString());
        const std::string prompt = "héllo \"wörld\"\n";
        const auto r = m.capture(prompt, {.logits = true});
        KVS_VERIFY_OK(r);
        const Capture& a = r.value();
        const auto path = dir / "c.safetensors";
        KVS_VERIFY_OK(saveCapture(a, path, half));
        const auto loaded = loadCapture(path);
        KVS_VERIFY_OK(loaded);
        const Capture& b = loaded.value();
        QCOMPARE(b.tokens, a.tokens);
        QCOMPARE(b.tokenTexts, a.tokenTexts);
        QCOMPARE(b.prompt, prompt);
        QCOMPARE(b.modelName, a.modelName);
        QCOMPARE(b.config.toJson().dump(), a.config.toJson().dump());
        QCOMPARE(b.layers.size(), a.layers.size());

        // Every float tensor: bit-exact in F32; in F16 within half a unit in the last place
        // (2^-11 relative) plus the subnormal step.
        double worstRel = 0;
        auto check = [&](const Matrix& x, const Matrix& y) {
            if (!half)
                return bitEqual(x, y);
            if (x.rows() != y.rows() || x.cols() != y.cols())
                return false;
            for (Eigen::Index i = 0; i < x.size(); ++i) {
                const double diff = std::abs(double(x.data()[i]) - double(y.data()[i]));
                if (diff > std::abs(double(x.data()[i])) * std::ldexp(1.0, -11) + 6e-8)
                    return false;
                worstRel = std::max(worstRel, diff);
            }
            return true;
        };
        QVERIFY(check(a.logits, b.logits));
        for (std::size_t l = 0; l < a.layers.size(); ++l) {
            QVERIFY(check(a.layers[l].hiddenNormed, b.layers[l].hiddenNormed));
            for (std::size_t h = 0; h < a.layers[l].kvHeads.size(); ++h) {
                const auto &x = a.layers[l].kvHeads[h], &y = b.layers[l].kvHeads[h];
                QVERIFY(check(x.keys, y.keys));
                QVERIFY(check(x.values, y.values));
                QCOMPARE(y.keysPreRope.size(), x.keysPreRope.size());
                if (x.keysPreRope.size())
                    QVERIFY(check(x.keysPreRope, y.keysPreRope));
                QCOMPARE(y.queries.size(), x.queries.size());
                QCOMPARE(y.queriesPreRope.size(), x.queriesPreRope.size());
                for (std::size_t j = 0; j < x.queries.size(); ++j) {
                    QVERIFY(check(x.queries[j], y.queries[j]));
                    QVERIFY(check(x.outputs[j], y.outputs[j]));
                    if (j < x.queriesPreRope.size())
                        QVERIFY(check(x.queriesPreRope[j], y.queriesPreRope[j]));
                }
            }
        }
        if (half)
            QVERIFY2(worstRel > 0, "F16 storage lost no precision: was it really F16?");
    }

    void notACapture() {
        test::TempDir dir;
        const auto path = dir / "plain.safetensors";
        SafetensorsWriter w;
        const std::vector<float> data = {1, 2, 3, 4};
        w.addFloat("weight", DType::F32, {2, 2}, data);
        KVS_VERIFY_OK(w.write(path));
        const std::string where = path.string();
        KVS_VERIFY_ERROR(loadCapture(path), where.c_str(), "not a KV Studio capture", "format");

        test::writeBytes(dir / "junk.safetensors", "not safetensors at all");
        const std::string junk = (dir / "junk.safetensors").string();
        KVS_VERIFY_ERROR(loadCapture(dir / "junk.safetensors"), junk.c_str());
    }

    void captureMissingTensor_data() {
        QTest::addColumn<QString>("tensor");
        QTest::newRow("values") << "layers.1.kv_heads.0.values";
        QTest::newRow("outputs") << "layers.0.query_heads.3.outputs";
        QTest::newRow("keys_pre_rope") << "layers.1.kv_heads.1.keys_pre_rope";
        QTest::newRow("hidden_normed") << "layers.0.hidden_normed";
        QTest::newRow("tokens") << "tokens";
    }
    void captureMissingTensor() {
        QFETCH(QString, tensor);
        test::TempDir dir;
        const Model m = loadPreset(dir, "tiny-llama-gqa");
        const auto path = dir / "c.safetensors";
        KVS_VERIFY_OK(saveCapture(m.capture(kPrompt).valueOrThrow(), path));
        KVS_VERIFY_OK(loadCapture(path));
        const std::string name = tensor.toStdString();
        rewriteWithout(path, name);
        const std::string where = path.string();
        const std::string quoted = "'" + name + "'";
        KVS_VERIFY_ERROR(loadCapture(path), where.c_str(), "lacks tensor", quoted.c_str());
    }

    // Token ids index the logits and the embeddings: one outside the config's vocabulary is a
    // format error naming the token (found by fuzz_capture; tests/fuzz/regressions/capture).
    void tokenIdOutsideTheVocabulary_data() {
        QTest::addColumn<bool>("negative");
        QTest::newRow("the vocabulary size") << false;
        QTest::newRow("negative") << true;
    }
    void tokenIdOutsideTheVocabulary() {
        QFETCH(bool, negative);
        test::TempDir dir;
        const Model m = loadPreset(dir, "tiny-gpt2");
        Capture c = m.capture(kPrompt).valueOrThrow();
        c.tokens[1] = negative ? -1 : c.config.vocab;
        const auto path = dir / "c.safetensors";
        KVS_VERIFY_OK(saveCapture(c, path));
        const std::string where = path.string();
        const std::string id = "has id " + std::to_string(c.tokens[1]);
        const auto loaded = loadCapture(path);
        KVS_VERIFY_ERROR(loaded, where.c_str(), "token 1 ", id.c_str(), "outside the vocabulary");
        KVS_COMPARE_ENUM(loaded.error().code(), ErrorCode::Format);
    }
};

QTEST_APPLESS_MAIN(TestCapture)
#include "test_capture.moc"
