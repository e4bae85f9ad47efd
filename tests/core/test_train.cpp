// SPDX-License-Identifier: MIT
// The trainer: finite-difference gradients in double precision for every attention variant and
// every optional path, loss at initialization, overfitting one batch, determinism, checkpoints
// that resume exactly, and the Hugging Face export giving the trainer's logits through kvs::Model.
#include "kvs/model.h"
#include "kvs/train.h"
#include "kvs_test.h"

#include <Eigen/SVD>
#include <QTest>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

using namespace kvs;
using kvs::test::TempDir;

namespace {

ModelConfig tinyConfig(const QString& variant) {
    ModelConfig c = defaultTrainConfig(11);
    c.layers = 2;
    c.width = 16;
    c.heads = 4;
    c.kvHeads = 4;
    c.headDim = 4;
    c.intermediate = 24;
    c.maxPositions = 8;
    const auto parts = variant.split('+');
    for (const auto& p : parts) {
        if (p == "qkv")
            c.sharing = ProjectionSharing::Qkv;
        else if (p == "k_eq_v")
            c.sharing = ProjectionSharing::KEqV;
        else if (p == "q_eq_k")
            c.sharing = ProjectionSharing::QEqK;
        else if (p == "q_eq_k_eq_v")
            c.sharing = ProjectionSharing::QEqKEqV;
        else if (p == "gqa2")
            c.kvHeads = 2;
        else if (p == "mqa")
            c.kvHeads = 1;
        else if (p == "learned")
            c.positions = PositionKind::Learned;
        else if (p == "layernorm")
            c.norm = NormKind::LayerNorm;
        else if (p == "gelu")
            c.mlp = MlpKind::Gelu;
        else if (p == "gelu_tanh")
            c.mlp = MlpKind::GeluTanh;
        else if (p == "untied")
            c.tiedEmbeddings = false;
        else if (p == "interleaved")
            c.ropeLayout = RopeLayout::Interleaved;
        else
            qFatal("unknown variant part %s", qPrintable(p));
    }
    return c;
}

const QStringList kVariants = {"qkv",
                               "gqa2",
                               "mqa",
                               "k_eq_v",
                               "q_eq_k",
                               "q_eq_k_eq_v",
                               "k_eq_v+gqa2",
                               "k_eq_v+mqa",
                               "learned+layernorm+gelu",
                               "learned+q_eq_k_eq_v+gelu_tanh",
                               "layernorm+untied+k_eq_v",
                               "interleaved+q_eq_k"};

std::vector<TokenId> randomTokens(std::size_t n, int vocab, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dist(0, vocab - 1);
    std::vector<TokenId> out(n);
    for (auto& t : out)
        t = dist(rng);
    return out;
}

// Weights large enough that attention is far from uniform and every path matters.
template <class S> void randomize(TransformerT<S>& m, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    for (const auto& p : m.layout()) {
        const bool isNorm = p.name.find("norm") != std::string::npos;
        const bool isBias = p.name.find("bias") != std::string::npos;
        const double scale = isNorm ? 0.2 : 0.7 / std::sqrt(static_cast<double>(p.rows));
        for (std::size_t i = 0; i < p.size(); ++i)
            m.parameters()[p.offset + i] =
                static_cast<S>((isNorm && !isBias ? 1.0 : 0.0) + scale * n(rng));
    }
}

// KV head h's columns of a flat input-major projection (e.g. one layer's wk), in double.
Eigen::MatrixXd headBlock(const std::vector<float>& params, const ParamInfo& p, int h,
                          int headDim) {
    Eigen::MatrixXd block(p.rows, headDim);
    for (int r = 0; r < p.rows; ++r)
        for (int j = 0; j < headDim; ++j)
            block(r, j) = params[p.offset + static_cast<std::size_t>(r) * p.cols +
                                 static_cast<std::size_t>(h * headDim + j)];
    return block;
}

} // namespace

class TestTrain : public QObject {
    Q_OBJECT

private slots:
    void gradientsMatchFiniteDifferences_data() {
        QTest::addColumn<QString>("variant");
        for (const auto& v : kVariants)
            QTest::newRow(qPrintable(v)) << v;
    }
    void gradientsMatchFiniteDifferences() {
        QFETCH(QString, variant);
        const ModelConfig c = tinyConfig(variant);
        TransformerT<double> m(c);
        randomize(m, 3);
        const int batch = 2, T = 7;
        const auto in = randomTokens(static_cast<std::size_t>(batch) * T, c.vocab, 5);
        const auto out = randomTokens(in.size(), c.vocab, 6);
        std::vector<double> grad;
        m.loss(in, out, batch, &grad);
        QCOMPARE(grad.size(), m.parameterCount());
        const double h = 1e-5;
        std::mt19937 rng(9);
        double worst = 0;
        std::string worstName;
        for (const auto& p : m.layout()) {
            // Every entry of small tensors, a random sample of larger ones.
            std::vector<std::size_t> idx;
            for (std::size_t i = 0; i < p.size(); ++i)
                idx.push_back(i);
            std::shuffle(idx.begin(), idx.end(), rng);
            idx.resize(std::min<std::size_t>(idx.size(), 24));
            double tensorMax = 0;
            for (std::size_t i : idx) {
                double& w = m.parameters()[p.offset + i];
                const double saved = w;
                w = saved + h;
                const double lp = m.loss(in, out, batch);
                w = saved - h;
                const double lm = m.loss(in, out, batch);
                w = saved;
                const double numeric = (lp - lm) / (2 * h);
                const double analytic = grad[p.offset + i];
                tensorMax = std::max(tensorMax, std::abs(analytic));
                const double err = std::abs(numeric - analytic) / (1e-4 + std::abs(numeric));
                if (err > worst) {
                    worst = err;
                    worstName = p.name;
                }
            }
            // Every tensor takes part in the loss (no dead parameters).
            QVERIFY2(tensorMax > 1e-8, p.name.c_str());
        }
        QVERIFY2(worst < 1e-5, (worstName + ": relative error " + std::to_string(worst)).c_str());
    }

    void initialLossIsLogVocabulary() {
        ModelConfig c = defaultTrainConfig(63);
        c.layers = 2;
        c.maxPositions = 64;
        Transformer m(c);
        m.initialize(1);
        const auto in = randomTokens(4 * 64, 63, 1), out = randomTokens(4 * 64, 63, 2);
        const double loss = m.loss(in, out, 4);
        QVERIFY2(std::abs(loss - std::log(63.0)) < 0.05, std::to_string(loss).c_str());
    }

    void oneBatchOverfits() {
        ModelConfig c = tinyConfig("qkv");
        c.width = 32;
        c.headDim = 8;
        c.intermediate = 64;
        c.maxPositions = 16;
        Transformer m(c);
        m.initialize(4);
        const auto in = randomTokens(2 * 16, c.vocab, 11), out = randomTokens(2 * 16, c.vocab, 12);
        TrainOptions o;
        o.lr = 1e-2;
        o.warmup = 10;
        o.steps = 300;
        o.weightDecay = 0;
        AdamState state;
        std::vector<float> grad;
        const double first = m.loss(in, out, 2);
        double last = first;
        for (int s = 0; s < o.steps; ++s) {
            last = m.loss(in, out, 2, &grad);
            adamwStep(m.parameters(), grad, state, m.layout(), o, learningRate(o, s));
        }
        last = m.loss(in, out, 2);
        QVERIFY2(first > 2.0 && last < 0.05,
                 (std::to_string(first) + " -> " + std::to_string(last)).c_str());
    }

    void scheduleWarmsUpAndDecays() {
        TrainOptions o;
        o.lr = 1e-3;
        o.warmup = 10;
        o.steps = 110;
        o.minLrRatio = 0.1;
        QCOMPARE(learningRate(o, 0), 1e-4);
        QCOMPARE(learningRate(o, 9), 1e-3);
        QVERIFY(std::abs(learningRate(o, 60) - 0.55e-3) < 1e-12);
        QVERIFY(std::abs(learningRate(o, 110) - 1e-4) < 1e-12);
    }

    void clippingBoundsTheUpdate() {
        ModelConfig c = tinyConfig("qkv");
        Transformer m(c);
        std::vector<float> params = m.parameters(), grad(params.size(), 100.0f);
        AdamState s;
        TrainOptions o;
        o.clip = 1.0;
        const double norm = adamwStep(params, grad, s, m.layout(), o, 1e-3);
        QVERIFY(std::abs(norm - 100.0 * std::sqrt(static_cast<double>(params.size()))) <
                1e-2 * norm);
        // Adam normalizes, so the first step moves each weight by about lr.
        for (std::size_t i = 0; i < params.size(); i += 97)
            QVERIFY(std::abs(params[i] - m.parameters()[i]) < 1.2e-3);
    }

    void sameSeedSameLoss() {
        ModelConfig c = tinyConfig("k_eq_v+gqa2");
        c.maxPositions = 8;
        TrainOptions o;
        o.batch = 3;
        o.steps = 5;
        o.seed = 42;
        const auto data = randomTokens(400, c.vocab, 3);
        auto losses = [&](std::uint64_t seed) {
            TrainOptions oo = o;
            oo.seed = seed;
            Trainer t(c, oo);
            t.setData(data, {});
            std::vector<double> out;
            for (int i = 0; i < 4; ++i)
                out.push_back(t.step());
            return out;
        };
        QCOMPARE(losses(42), losses(42));
        QVERIFY(losses(42) != losses(43));
    }

    void checkpointResumesExactly() {
        TempDir dir;
        ModelConfig c = tinyConfig("q_eq_k_eq_v");
        TrainOptions o;
        o.batch = 2;
        o.steps = 6;
        o.warmup = 2;
        o.seed = 7;
        o.evalEvery = 0;
        const auto data = randomTokens(300, c.vocab, 8);
        Trainer a(c, o);
        a.setAlphabet("abcdefghijk");
        a.setData(data, {});
        a.step();
        a.step();
        QVERIFY(a.save(dir / "ckpt.safetensors").ok());
        const double a3 = a.step(), a4 = a.step();

        auto b = Trainer::resume(dir / "ckpt.safetensors").valueOrThrow();
        QCOMPARE(b.stepsDone(), 2LL);
        QCOMPARE(b.alphabet(), std::string("abcdefghijk"));
        b.setData(data, {});
        QCOMPARE(b.step(), a3);
        QCOMPARE(b.step(), a4);
        QCOMPARE(b.model().parameters(), a.model().parameters());

        // Save -> load gives identical logits.
        const auto tokens = randomTokens(8, c.vocab, 1);
        const Matrix la = a.model().logits(tokens), lb = b.model().logits(tokens);
        QCOMPARE((la - lb).cwiseAbs().maxCoeff(), 0.0f);
    }

    void resumeRejectsOtherFiles() {
        TempDir dir;
        kvs::test::writeBytes(dir / "x.safetensors", "not a checkpoint");
        const auto r = Trainer::resume(dir / "x.safetensors");
        QVERIFY(!r.ok());
        QVERIFY2(r.message().find("x.safetensors") != std::string::npos, r.message().c_str());
    }

    void exportLoadsWithTheTrainersLogits_data() {
        QTest::addColumn<QString>("variant");
        for (const char* v :
             {"qkv", "gqa2", "mqa", "k_eq_v", "q_eq_k", "q_eq_k_eq_v", "k_eq_v+gqa2", "untied"})
            QTest::newRow(v) << v;
    }
    void exportLoadsWithTheTrainersLogits() {
        QFETCH(QString, variant);
        TempDir dir;
        ModelConfig c = tinyConfig(variant);
        c.maxPositions = 32;
        Transformer m(c);
        randomize(m, 21);
        QVERIFY(exportHfModel(m, "abcdefghij\n", DType::F32, dir / "model").ok());
        auto loaded = Model::load(dir / "model").valueOrThrow();
        QVERIFY(loaded.config().sharing == c.sharing);
        QCOMPARE(loaded.config().kvHeads, c.kvHeads);
        QVERIFY(loaded.tokenizer() != nullptr);
        QCOMPARE(loaded.tokenizer()->encode("abc\n"), (std::vector<TokenId>{0, 1, 2, 10}));
        const auto tokens = randomTokens(32, c.vocab, 4);
        const Matrix ours = m.logits(tokens);
        const Matrix theirs = loaded.forward(tokens);
        const float diff = (ours - theirs).cwiseAbs().maxCoeff();
        QVERIFY2(diff < 1e-4f, std::to_string(diff).c_str());

        // fp16 export loads too, close to the fp32 logits.
        QVERIFY(exportHfModel(m, "abcdefghij\n", DType::F16, dir / "f16").ok());
        auto half = Model::load(dir / "f16").valueOrThrow();
        const float diff16 = (half.forward(tokens) - ours).cwiseAbs().maxCoeff();
        QVERIFY2(diff16 < 0.05f, std::to_string(diff16).c_str());
    }

    void exportRefusesShapesLlamaCannotSpell() {
        TempDir dir;
        Transformer m(tinyConfig("learned+layernorm+gelu"));
        const auto r = exportHfModel(m, "abcdefghijk", DType::F32, dir / "m");
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code(), ErrorCode::Unsupported);
    }

    // A fine-tune starts from the exported weights exactly, moves only the parameters it names,
    // keeps every KV head's key projection at the declared rank, and exports that rank.
    void fineTuneKeepsFrozenWeightsAndTheKeyRank() {
        TempDir dir;
        ModelConfig c = tinyConfig("gqa2");
        c.maxPositions = 16;
        Transformer source(c);
        randomize(source, 5);
        QVERIFY(exportHfModel(source, "abcdefghijk", DType::F32, dir / "source").ok());

        TrainOptions o;
        o.batch = 2;
        o.steps = 4;
        o.warmup = 1;
        o.evalEvery = 0;
        o.trainOnly = {"wq", "wk"};
        o.keyRank = 2;
        ModelConfig thin = c;
        thin.keyRank = 2;
        Trainer t = Trainer::fromModel(dir / "source", thin, o).valueOrThrow();
        const auto& layout = t.model().layout();
        const auto& start = t.model().parameters();
        // The import is exact (F32), and the start is the Eckart–Young truncation of each block:
        // what it removed is the energy of the dropped singular values.
        for (const auto& p : layout) {
            const bool isKey = p.name.ends_with(".wk");
            for (std::size_t i = 0; i < p.size() && !isKey; ++i)
                QCOMPARE(start[p.offset + i], source.parameters()[p.offset + i]);
            if (!isKey)
                continue;
            for (int h = 0; h < c.kvHeads; ++h) {
                const Eigen::MatrixXd original = headBlock(source.parameters(), p, h, c.headDim);
                const Eigen::MatrixXd projected = headBlock(start, p, h, c.headDim);
                const Eigen::VectorXd sigma =
                    Eigen::JacobiSVD<Eigen::MatrixXd>(original).singularValues();
                const double dropped = sigma.tail(c.headDim - 2).squaredNorm();
                QVERIFY(std::abs((original - projected).squaredNorm() - dropped) <
                        1e-5 * sigma.squaredNorm());
            }
        }
        const std::vector<float> before = t.model().parameters();
        t.setData(randomTokens(400, c.vocab, 6), {});
        for (int s = 0; s < 3; ++s)
            t.step();
        const auto& after = t.model().parameters();
        for (const auto& p : layout) {
            const bool trained = p.name.ends_with(".wq") || p.name.ends_with(".wk");
            double moved = 0;
            for (std::size_t i = 0; i < p.size(); ++i)
                moved =
                    std::max<double>(moved, std::abs(after[p.offset + i] - before[p.offset + i]));
            QVERIFY2(trained ? moved > 1e-4 : moved == 0.0, p.name.c_str());
            if (!p.name.ends_with(".wk"))
                continue;
            for (int h = 0; h < c.kvHeads; ++h) {
                const Eigen::VectorXd sigma =
                    Eigen::JacobiSVD<Eigen::MatrixXd>(headBlock(after, p, h, c.headDim))
                        .singularValues();
                QVERIFY2(sigma(2) < 1e-5 * sigma(0), p.name.c_str());
            }
        }
        QVERIFY(exportHfModel(t.model(), "abcdefghijk", DType::F32, dir / "thin").ok());
        const Model loaded = Model::load(dir / "thin").valueOrThrow();
        QCOMPARE(loaded.config().keyRank, 2);
        const auto tokens = randomTokens(16, c.vocab, 7);
        const float diff =
            (loaded.forward(tokens) - t.model().logits(tokens)).cwiseAbs().maxCoeff();
        QVERIFY2(diff < 1e-4f, std::to_string(diff).c_str());
    }

    void keyRankRefusals() {
        Transformer m(tinyConfig("qkv"));
        try {
            projectKeysToRank(m, 5); // head dim 4
            QFAIL("a rank above the head dim was accepted");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidArgument);
            QVERIFY2(std::string(e.what()).find("1…4") != std::string::npos, e.what());
        }
        Transformer shared(tinyConfig("k_eq_v"));
        QVERIFY_THROWS_EXCEPTION(Error, projectKeysToRank(shared, 2));
        // config.json declares at most the head dim.
        nlohmann::json j = toHfConfigJson(tinyConfig("qkv"));
        j["kvstudio_key_rank"] = 9;
        const auto r = parseModelConfig(j, "config.json");
        QVERIFY(!r.ok());
        QVERIFY2(r.message().find("kvstudio_key_rank") != std::string::npos, r.message().c_str());
    }

    void rejectsBadInputs() {
        Transformer m(tinyConfig("qkv"));
        const std::vector<TokenId> bad = {0, 1, 99};
        QVERIFY_THROWS_EXCEPTION(Error, m.loss(bad, bad, 1));
        const auto tooLong = randomTokens(20, 11, 1);
        QVERIFY_THROWS_EXCEPTION(Error, m.loss(tooLong, tooLong, 1));
        ModelConfig c = tinyConfig("q_eq_k+gqa2");
        QVERIFY_THROWS_EXCEPTION(Error, Transformer{c});
    }
};

QTEST_GUILESS_MAIN(TestTrain)
#include "test_train.moc"
