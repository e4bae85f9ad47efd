// SPDX-License-Identifier: MIT
// Shared projections post hoc (weight-transforming schemes): keeping every head is exact; the
// least-squares fits recover heads that really are shareable (built by rewriting a model so that
// one head of each pair is the other times a RoPE-commuting factor, or values that are the keys
// times a map) where mean pooling does not; byte counts follow the KV-head count; naive K=V tying
// collapses the bundled model while the regression does not; bad settings are refused.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QtTest>
#include <complex>
#include <random>

using namespace kvs;

namespace {

// Short enough for the synthetic models' 128 positions with one token per byte.
const char* kPrompt = "And God said, Let there be light: and there was light. And God saw the "
                      "light, that it was good.";

std::filesystem::path bundled(const std::string& name) {
    const auto models = test::sourceTestsDir().parent_path() / "assets" / "models";
    return name == "default" ? models / "default" : models / "variants" / name;
}

EvalResult evaluateWith(const Model& model, const Capture& capture, const std::string& scheme) {
    auto backend = makeCpuBackend();
    EvalOptions o;
    return evaluate(capture, &model, SchemeSetting::parse(scheme).valueOrThrow(), *backend, o)
        .valueOrThrow();
}

// A copy of `model` whose odd KV heads are functions of the even ones: keys per RoPE pair a
// complex multiple (or, with learned positions, the even head's keys times a d × d matrix),
// values the even head's values times a d × d matrix. Such pairs are exactly shareable.
Model withShareablePairs(const Model& model, unsigned seed) {
    const ModelConfig& c = model.config();
    const int d = c.headDim;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> uniform(0.5, 1.5);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<AttentionProjections> layers;
    for (int l = 0; l < c.layers; ++l) {
        AttentionProjections a = model.attentionProjections(l);
        for (int h = 0; h + 1 < c.kvHeads; h += 2) {
            const auto even = Eigen::Index(h) * d, odd = Eigen::Index(h + 1) * d;
            Eigen::MatrixXd mix = Eigen::MatrixXd::Identity(d, d);
            for (Eigen::Index i = 0; i < mix.size(); ++i)
                mix.data()[i] += 0.3 * normal(rng);
            const Matrix valueMap = mix.cast<float>();
            a.wv.middleCols(odd, d) = a.wv.middleCols(even, d) * valueMap;
            if (a.bv.size())
                a.bv.segment(odd, d) = a.bv.segment(even, d) * valueMap;
            if (c.positions == PositionKind::Rope) {
                for (int i = 0; i < d / 2; ++i) {
                    const std::complex<double> z = std::polar(uniform(rng), 3.0 * uniform(rng));
                    const int x = c.ropeLayout == RopeLayout::Interleaved ? 2 * i : i;
                    const int y = c.ropeLayout == RopeLayout::Interleaved ? 2 * i + 1 : i + d / 2;
                    const Eigen::VectorXf ka = a.wk.col(even + x), kb = a.wk.col(even + y);
                    a.wk.col(odd + x) = float(z.real()) * ka - float(z.imag()) * kb;
                    a.wk.col(odd + y) = float(z.imag()) * ka + float(z.real()) * kb;
                }
            } else {
                Eigen::MatrixXd keyMix = Eigen::MatrixXd::Identity(d, d);
                for (Eigen::Index i = 0; i < keyMix.size(); ++i)
                    keyMix.data()[i] += 0.3 * normal(rng);
                a.wk.middleCols(odd, d) = a.wk.middleCols(even, d) * keyMix.cast<float>();
                if (a.bk.size())
                    a.bk.segment(odd, d) = a.bk.segment(even, d) * keyMix.cast<float>();
            }
        }
        layers.push_back(std::move(a));
    }
    return model.withAttention(c, std::move(layers));
}

// A copy of `model` whose values are its (pre-RoPE) keys times a map (plus an offset).
Model withValuesFromKeys(const Model& model, unsigned seed, bool identity) {
    const ModelConfig& c = model.config();
    const int d = c.headDim;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<AttentionProjections> layers;
    for (int l = 0; l < c.layers; ++l) {
        AttentionProjections a = model.attentionProjections(l);
        for (int h = 0; h < c.kvHeads; ++h) {
            Matrix map = Matrix::Identity(d, d);
            if (!identity)
                for (Eigen::Index i = 0; i < map.size(); ++i)
                    map.data()[i] += 0.3f * normal(rng);
            const auto cols = Eigen::Index(h) * d;
            a.wv.middleCols(cols, d) = a.wk.middleCols(cols, d) * map;
            if (a.bv.size())
                a.bv.segment(cols, d) = a.bk.segment(cols, d) * map;
        }
        layers.push_back(std::move(a));
    }
    return model.withAttention(c, std::move(layers));
}

double minimumR2(const EvalResult& r) {
    double lowest = 1.0;
    for (const auto& layer : r.fitR2)
        for (double v : layer)
            lowest = std::min(lowest, v);
    return lowest;
}

} // namespace

class TestSharing : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    std::map<QString, std::filesystem::path> m_models;

    const std::filesystem::path& folder(const QString& name) { return m_models.at(name); }

private slots:
    void initTestCase() {
        for (const auto& name : {"default", "k_eq_v", "q_eq_k"}) {
            QVERIFY2(std::filesystem::exists(bundled(name) / "config.json"),
                     qPrintable(QString::fromStdString("the bundled model " +
                                                       bundled(name).string() + " is missing")));
            m_models[name] = bundled(name);
        }
        m_models["tiny-gpt2"] = test::writeModel(m_dir, "tiny-gpt2", syntheticPreset("tiny-gpt2"));
        m_models["tiny-llama-gqa"] =
            test::writeModel(m_dir, "tiny-llama-gqa", syntheticPreset("tiny-llama-gqa"));
    }

    // No sharing (as many KV heads as the model has) rewrites nothing that matters: the model,
    // its cache size and its outputs stay the same up to float rounding.
    void keepingEveryHeadIsExact_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("scheme");
        for (const char* model : {"default", "tiny-gpt2", "tiny-llama-gqa"})
            for (const char* scheme : {"share.pool", "share.lsq"})
                QTest::addRow("%s, %s", model, scheme) << QString(model) << QString(scheme);
    }
    void keepingEveryHeadIsExact() {
        QFETCH(QString, model);
        QFETCH(QString, scheme);
        const Model m = Model::load(folder(model)).valueOrThrow();
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        const EvalResult r = evaluateWith(
            m, cap, scheme.toStdString() + ":kv_heads=" + std::to_string(m.config().kvHeads));
        QVERIFY(r.quality);
        QVERIFY2(r.quality->klMean < 1e-7, qPrintable(QString::number(r.quality->klMean)));
        QCOMPARE(r.quality->top1Agreement, 1.0);
        // fp16 storage of the cache is the only loss (the identity at 16 bits has it too; the
        // rewrite's is measured after the output projection, so only the order of magnitude
        // compares).
        const EvalResult fp16 = evaluateWith(m, cap, "identity:precision=16");
        QVERIFY2(r.outputError < 3.0 * fp16.outputError + 1e-6,
                 qPrintable(QString("%1 vs %2").arg(r.outputError).arg(fp16.outputError)));
        QCOMPARE(r.memoryFraction, 1.0);
        QVERIFY(minimumR2(r) > 1.0 - 1e-9);
        QCOMPARE(r.fitR2.size(), std::size_t(m.config().layers));
    }

    // Pairs of heads built to be shareable: least squares finds the shared head exactly (RoPE:
    // per-pair complex factors folded into the queries; learned positions: a d × d factor), mean
    // pooling does not.
    void leastSquaresRecoversShareableHeads_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("RoPE (bundled)") << QString("default");
        QTest::newRow("learned positions, biases") << QString("tiny-gpt2");
    }
    void leastSquaresRecoversShareableHeads() {
        QFETCH(QString, model);
        const Model original = Model::load(folder(model)).valueOrThrow();
        const Model m = withShareablePairs(original, 7);
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        const std::string half = ":kv_heads=" + std::to_string(m.config().kvHeads / 2);
        const EvalResult fitted = evaluateWith(m, cap, "share.lsq" + half);
        const EvalResult pooled = evaluateWith(m, cap, "share.pool" + half);
        QVERIFY2(fitted.quality->klMean < 1e-6,
                 qPrintable(QString::number(fitted.quality->klMean)));
        QVERIFY2(minimumR2(fitted) > 1.0 - 1e-6, qPrintable(QString::number(minimumR2(fitted))));
        QVERIFY2(pooled.quality->klMean > 1e3 * std::max(fitted.quality->klMean, 1e-9),
                 qPrintable(QString("pooled %1, fitted %2")
                                .arg(pooled.quality->klMean)
                                .arg(fitted.quality->klMean)));
        QVERIFY(minimumR2(pooled) < 0.99);
        // Half the KV heads at fp16: half the cache.
        QCOMPARE(fitted.memoryFraction, 0.5);
        QCOMPARE(fitted.heads.size(),
                 std::size_t(m.config().layers) * std::size_t(m.config().kvHeads / 2));
    }

    // Values that are the keys times a map: the regression folds the map into W_o and is exact;
    // with the identity map naive tying is exact too. On the trained model tying collapses and
    // the regression does not.
    void keyValueSharing_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("RoPE (bundled)") << QString("default");
        QTest::newRow("learned positions, biases") << QString("tiny-gpt2");
    }
    void keyValueSharing() {
        QFETCH(QString, model);
        const Model original = Model::load(folder(model)).valueOrThrow();
        const Model mapped = withValuesFromKeys(original, 3, false);
        const Capture cap = mapped.capture(kPrompt).valueOrThrow();
        const EvalResult regress = evaluateWith(mapped, cap, "share.kv_regress");
        QVERIFY2(regress.quality->klMean < 1e-6,
                 qPrintable(QString::number(regress.quality->klMean)));
        QVERIFY2(regress.outputError < 1e-3, qPrintable(QString::number(regress.outputError)));
        QVERIFY(minimumR2(regress) > 1.0 - 1e-6);
        QCOMPARE(regress.memoryFraction, 0.5); // keys only, at fp16
        QCOMPARE(regress.bytes.values, std::size_t(0));

        const Model tied = withValuesFromKeys(original, 3, true);
        const Capture tiedCap = tied.capture(kPrompt).valueOrThrow();
        const EvalResult tie = evaluateWith(tied, tiedCap, "share.kv_tie");
        QVERIFY2(tie.quality->klMean < 1e-6, qPrintable(QString::number(tie.quality->klMean)));

        if (model == "default") { // the trained model: tying breaks it, regression much less
            const Capture own = original.capture(kPrompt).valueOrThrow();
            const EvalResult naive = evaluateWith(original, own, "share.kv_tie");
            const EvalResult fit = evaluateWith(original, own, "share.kv_regress");
            QVERIFY2(naive.quality->klMean > 1.0,
                     qPrintable(QString::number(naive.quality->klMean)));
            QVERIFY2(fit.quality->klMean < 0.5 * naive.quality->klMean,
                     qPrintable(QString::number(fit.quality->klMean)));
            QVERIFY(minimumR2(naive) < minimumR2(fit));
        }
    }

    void byteCounts_data() {
        QTest::addColumn<QString>("scheme");
        QTest::addColumn<double>("fraction");
        QTest::newRow("3 KV heads") << "share.pool:kv_heads=3" << 3.0 / 6.0;
        QTest::newRow("2 KV heads") << "share.lsq:kv_heads=2" << 2.0 / 6.0;
        QTest::newRow("MQA") << "share.pool:kv_heads=1" << 1.0 / 6.0;
        QTest::newRow("MQA at fp32") << "share.pool:kv_heads=1,precision=32" << 2.0 / 6.0;
        QTest::newRow("K=V") << "share.kv_tie" << 0.5;
    }
    void byteCounts() {
        QFETCH(QString, scheme);
        QFETCH(double, fraction);
        const Model m = Model::load(folder("default")).valueOrThrow();
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        const EvalResult r = evaluateWith(m, cap, scheme.toStdString());
        const std::size_t n = std::size_t(r.contextTokens), d = std::size_t(m.config().headDim);
        QCOMPARE(r.fp16Bytes, std::size_t(m.config().layers * m.config().kvHeads) * 4 * d * n);
        QCOMPARE(r.memoryFraction, fraction);
    }

    void refusals_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("scheme");
        QTest::addColumn<int>("code");
        QTest::addColumn<QString>("message");
        const int invalid = int(ErrorCode::InvalidArgument),
                  unsupported = int(ErrorCode::Unsupported);
        QTest::newRow("kv_heads does not divide")
            << "default"
            << "share.pool:kv_heads=4" << invalid
            << "kv_heads = 4 does not divide the model's 6 KV heads (allowed: 1, 2, 3, 6)";
        QTest::newRow("more KV heads than the model")
            << "default"
            << "share.lsq:kv_heads=12" << invalid << "allowed: 1, 2, 3, 6";
        QTest::newRow("Q=K model")
            << "q_eq_k"
            << "share.pool:kv_heads=2" << unsupported << "queries are its keys";
        QTest::newRow("K=V model, tying")
            << "k_eq_v"
            << "share.kv_tie" << unsupported << "already caches its keys as values";
        QTest::newRow("K=V model, least squares")
            << "k_eq_v"
            << "share.lsq:kv_heads=2" << unsupported << "use share.pool";
    }
    void refusals() {
        QFETCH(QString, model);
        QFETCH(QString, scheme);
        QFETCH(int, code);
        QFETCH(QString, message);
        const Model m = Model::load(folder(model)).valueOrThrow();
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        auto backend = makeCpuBackend();
        const auto r = evaluate(cap, &m, SchemeSetting::parse(scheme.toStdString()).valueOrThrow(),
                                *backend, EvalOptions{});
        const std::string fragment = message.toStdString();
        KVS_VERIFY_ERROR(r, fragment.c_str());
        QCOMPARE(int(r.error().code()), code);
    }

    // A capture alone cannot be rewritten: the weights are needed.
    void needsTheModel() {
        const Model m = Model::load(folder("default")).valueOrThrow();
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        const auto setting = SchemeSetting::parse("share.pool:kv_heads=2").valueOrThrow();
        auto backend = makeCpuBackend();
        const auto r = evaluate(cap, nullptr, setting, *backend, EvalOptions{});
        KVS_VERIFY_ERROR(r, "needs the model");
        QCOMPARE(int(r.error().code()), int(ErrorCode::Unsupported));
        const auto heads = compressAll(cap, setting, 100);
        KVS_VERIFY_ERROR(heads, "rewrites the model's weights");
    }

    // The rewritten model checks what it is given.
    void rewrittenShapesAreChecked() {
        const Model m = Model::load(folder("default")).valueOrThrow();
        std::vector<AttentionProjections> layers;
        for (int l = 0; l < m.config().layers; ++l)
            layers.push_back(m.attentionProjections(l));
        ModelConfig fewer = m.config();
        fewer.kvHeads = 2;
        const auto r = catchErrors([&] { return m.withAttention(fewer, layers); });
        KVS_VERIFY_ERROR(r, "W_k is 192×192, the config implies 192×64");
    }
};

QTEST_GUILESS_MAIN(TestSharing)
#include "test_sharing.moc"
