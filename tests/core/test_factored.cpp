// SPDX-License-Identifier: MIT
// Factored keys from the weights and by channel selection (ALGORITHMS.md §2): the weight SVD's
// rebuilt keys miss the projection by exactly the Eckart–Young tail of its singular values, with
// and without RoPE; pre-RoPE latents rotated on load attend exactly like the dense keys they
// rebuild; full rank reproduces the model; whole rotation pairs are chosen by their score energy
// and are exact on what they keep; a capture without its model and bad ranks are refused.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/spectrum.h"
#include "kvs/status.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <Eigen/SVD>
#include <QtTest>
#include <cmath>
#include <random>

using namespace kvs;
using test::compressWith;

namespace {

const char* kPrompt = "And God said, Let there be light: and there was light. And God saw the "
                      "light, that it was good.";

// Rotates rows by position as RoPE does (pairs (i, i + d/2)), written out independently of
// kvs::rotatedKeys.
Matrix rotateHalfSplit(const Matrix& x, const std::vector<float>& frequencies) {
    const Eigen::Index d = x.cols(), half = d / 2;
    Matrix out(x.rows(), d);
    for (Eigen::Index j = 0; j < x.rows(); ++j)
        for (Eigen::Index i = 0; i < half; ++i) {
            const double a = static_cast<double>(j) * frequencies[static_cast<std::size_t>(i)];
            const double u = x(j, i), v = x(j, i + half);
            out(j, i) = static_cast<float>(u * std::cos(a) - v * std::sin(a));
            out(j, i + half) = static_cast<float>(v * std::cos(a) + u * std::sin(a));
        }
    return out;
}

std::vector<float> ropeFrequencies(int d) {
    std::vector<float> f;
    for (int i = 0; i < d / 2; ++i)
        f.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / static_cast<float>(d)));
    return f;
}

// A head whose inputs are the unit vectors of [x 1]: its pre-RoPE keys are the rows of the
// (D + 1) × d key projection itself, so the rebuilt keys' error is the projection's.
HeadInput projectionHead(int inputs, int d, bool rope, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    HeadInput h;
    h.keyProjection.resize(inputs, d);
    for (Eigen::Index c = 0; c < d; ++c) // anisotropic columns: a spread spectrum
        for (Eigen::Index r = 0; r < inputs; ++r)
            h.keyProjection(r, c) = normal(rng) / (1.0f + static_cast<float>(c));
    h.values = Matrix::Random(inputs, d);
    if (rope) {
        h.keyRotation.frequencies = ropeFrequencies(d);
        h.keysPreRope = h.keyProjection;
        h.keys = rotateHalfSplit(h.keysPreRope, h.keyRotation.frequencies);
    } else {
        h.keys = h.keyProjection;
    }
    h.queries.push_back(Matrix::Random(inputs, d));
    return h;
}

std::filesystem::path bundledDefault() {
    return test::sourceTestsDir().parent_path() / "assets" / "models" / "default";
}

} // namespace

class TestFactored : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    std::filesystem::path m_gpt2;

private slots:
    void initTestCase() {
        QVERIFY2(std::filesystem::exists(bundledDefault() / "config.json"),
                 qPrintable(QString::fromStdString("the bundled model " +
                                                   bundledDefault().string() + " is missing")));
        m_gpt2 = test::writeModel(m_dir, "tiny-gpt2", syntheticPreset("tiny-gpt2"));
    }

    // ‖W − W V_r V_rᵀ‖_F = √(Σ_{i>r} σ_i²): the rebuilt keys of the inputs [e_i] are the rows of
    // W V_r V_rᵀ. Under RoPE the coefficients are pre-RoPE and the rotated keys miss the real
    // ones by the same amount (rotation keeps norms).
    void weightSvdMissesByTheEckartYoungTail_data() {
        QTest::addColumn<bool>("rope");
        QTest::addColumn<int>("rank");
        for (bool rope : {false, true})
            for (int rank : {16, 8, 4, 2})
                QTest::addRow("%s, rank %d", rope ? "RoPE" : "learned positions", rank)
                    << rope << rank;
    }
    void weightSvdMissesByTheEckartYoungTail() {
        QFETCH(bool, rope);
        QFETCH(int, rank);
        const int inputs = 41, d = 16;
        const HeadInput h = projectionHead(inputs, d, rope, 5);
        const CompressedHead c =
            compressWith("factor.weight_svd:precision=32,rank=" + std::to_string(rank), h);
        QCOMPARE(c.keyForm, CompressedHead::KeyForm::LowRank);
        QCOMPARE(c.keys.cols(), Eigen::Index(rank));
        QCOMPARE(hasPreRopeLowRankKeys(c), rope);
        const Eigen::VectorXd sigma =
            Eigen::JacobiSVD<Eigen::MatrixXd>(h.keyProjection.cast<double>()).singularValues();
        const double tail = sigma.tail(d - rank).norm();
        const Eigen::MatrixXd rebuilt =
            c.keys.cast<double>() * c.queryProjection.cast<double>().transpose();
        const double preError = (rebuilt - h.keyProjection.cast<double>()).norm();
        QVERIFY2(std::abs(preError - tail) <= 1e-5 * sigma(0),
                 qPrintable(QString("error %1, tail %2").arg(preError).arg(tail)));
        const Matrix keys = rope ? rotatedKeys(c) : Matrix(rebuilt.cast<float>());
        const double keyError = (keys.cast<double>() - h.keys.cast<double>()).norm();
        QVERIFY2(std::abs(keyError - tail) <= 1e-4 * sigma(0),
                 qPrintable(QString("key error %1, tail %2").arg(keyError).arg(tail)));
        // fp16: r numbers per key, the d × r factor as metadata, values dense.
        const CompressedHead stored =
            compressWith("factor.weight_svd:rank=" + std::to_string(rank), h);
        QCOMPARE(stored.bytes().keys, static_cast<std::size_t>(inputs * rank * 2));
        QCOMPARE(stored.bytes().values, static_cast<std::size_t>(inputs * d * 2));
        QCOMPARE(stored.bytes().metadata, static_cast<std::size_t>(d * rank * 2));
    }

    // Latents rotated on load attend like the dense keys they rebuild (the CPU reference reads
    // both forms; the dense one is rebuilt here by hand).
    void preRopeLatentsAttendLikeTheirDenseKeys() {
        const int inputs = 41, d = 16;
        const HeadInput h = projectionHead(inputs, d, true, 9);
        const CompressedHead latent = compressWith("factor.weight_svd:precision=32,rank=6", h);
        CompressedHead dense = latent;
        dense.keyForm = CompressedHead::KeyForm::Dense;
        dense.keys = rotateHalfSplit(Matrix(latent.keys * latent.queryProjection.transpose()),
                                     h.keyRotation.frequencies);
        dense.queryProjection = Matrix();
        dense.keyRotation = {};
        const Matrix queries = Matrix::Random(7, d) * 3.0f;
        auto cpu = makeCpuBackend();
        AttendOptions o;
        o.wantScores = true;
        const AttendResult a = cpu->attend(latent, queries, o).valueOrThrow();
        const AttendResult b = cpu->attend(dense, queries, o).valueOrThrow();
        QVERIFY(test::maxAbsDiff(a.scores, b.scores) < 1e-5);
        QVERIFY(test::maxAbsDiff(a.outputs, b.outputs) < 1e-5);
    }

    // Full rank keeps the model: the bundled RoPE model (pre-RoPE latents rotated on load) and a
    // GPT-2 shape with a key bias (the bias rides as the projection's last row).
    void fullRankReproducesTheModel_data() {
        QTest::addColumn<bool>("bundled");
        QTest::newRow("RoPE (bundled)") << true;
        QTest::newRow("GPT-2 (learned positions, key bias)") << false;
    }
    void fullRankReproducesTheModel() {
        QFETCH(bool, bundled);
        const Model m = Model::load(bundled ? bundledDefault() : m_gpt2).valueOrThrow();
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        auto backend = makeCpuBackend();
        const std::string full =
            "factor.weight_svd:precision=32,rank=" + std::to_string(m.config().headDim);
        const EvalResult r =
            evaluate(cap, &m, SchemeSetting::parse(full).valueOrThrow(), *backend, EvalOptions{})
                .valueOrThrow();
        QVERIFY(r.quality);
        QVERIFY2(r.quality->klMean < 1e-8, qPrintable(QString::number(r.quality->klMean)));
        QVERIFY2(r.outputError < 1e-4, qPrintable(QString::number(r.outputError)));
        // Low rank loses something, and loses more at lower rank.
        const auto at = [&](int rank) {
            return evaluate(cap, &m,
                            SchemeSetting::parse("factor.weight_svd:rank=" + std::to_string(rank))
                                .valueOrThrow(),
                            *backend, EvalOptions{})
                .valueOrThrow()
                .quality->klMean;
        };
        const double half = at(m.config().headDim / 2), eighth = at(m.config().headDim / 8);
        QVERIFY2(half > 1e-6 && eighth > half,
                 qPrintable(QString("KL d/2 %1, d/8 %2").arg(half).arg(eighth)));
        // A capture alone has no weights: refused, with the reason.
        const auto capOnly =
            evaluate(cap, nullptr, SchemeSetting::parse(full).valueOrThrow(), *backend, {});
        KVS_VERIFY_ERROR(capOnly, "needs the model's weights");
        KVS_VERIFY_ERROR(compressAll(cap, SchemeSetting::parse(full).valueOrThrow(), 20),
                         "needs the model's weights");
        QVERIFY(compressAll(cap, SchemeSetting::parse(full).valueOrThrow(), 20, 0, &m).ok());
    }

    // Whole rotation pairs: the pairs that carry the score energy are kept, the others dropped,
    // and the kept scores are exact.
    void ropePairsKeepTheStrongPairs() {
        const int n = 50, d = 16;
        std::mt19937 rng(3);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        HeadInput h;
        h.keyRotation.frequencies = ropeFrequencies(d);
        h.keys.resize(n, d);
        Matrix q(n, d);
        for (Eigen::Index j = 0; j < n; ++j)
            for (Eigen::Index c = 0; c < d; ++c) {
                const Eigen::Index pair = c % (d / 2);
                const float strength = (pair == 1 || pair == 5) ? 10.0f : 0.1f;
                h.keys(j, c) = strength * normal(rng);
                q(j, c) = normal(rng);
            }
        h.values = Matrix::Random(n, d);
        h.queries = {q};
        const CompressedHead c = compressWith("factor.rope_pairs:precision=32,rank=4", h);
        std::vector<int> kept;
        for (Eigen::Index j = 0; j < c.queryProjection.cols(); ++j)
            for (Eigen::Index i = 0; i < d; ++i)
                if (c.queryProjection(i, j) == 1.0f)
                    kept.push_back(static_cast<int>(i));
        QCOMPARE(kept, (std::vector<int>{1, 5, 9, 13})); // pairs (1, 9) and (5, 13)
        QVERIFY(!hasPreRopeLowRankKeys(c));              // post-RoPE: nothing is rotated on load
        // Bytes: r fp32 numbers per key (precision 32), values dense, r uint16 channel indices
        // (the device holds the d × r 0/1 basis the low-rank path reads).
        QCOMPARE(c.bytes().keys, static_cast<std::size_t>(n * 4 * 4));
        QCOMPARE(c.bytes().metadata, std::size_t{4 * 2});
        QCOMPARE(c.deviceBytes().metadata, static_cast<std::size_t>(d * 4 * 2));
        const Matrix probe = Matrix::Random(3, d);
        Matrix keptExact = Matrix::Zero(n, d);
        for (int i : kept)
            keptExact.col(i) = h.keys.col(i);
        const Matrix exact = probe * keptExact.transpose();
        const Matrix scored = (probe * c.queryProjection) * c.keys.transpose();
        QVERIFY(test::maxAbsDiff(exact, scored) < 1e-5);
        const CompressedHead full = compressWith("factor.rope_pairs:precision=32,rank=16", h);
        QVERIFY(test::maxAbsDiff(Matrix(full.keys * full.queryProjection.transpose()), h.keys) <
                1e-6);
    }

    void refusals() {
        HeadInput h = projectionHead(20, 16, true, 1);
        KVS_VERIFY_THROWS(compressWith("factor.weight_svd:rank=20", h), ErrorCode::InvalidArgument,
                          "rank = 20 is above the head dim 16");
        KVS_VERIFY_THROWS(compressWith("factor.rope_pairs:rank=5", h), ErrorCode::InvalidArgument,
                          "must be even under RoPE");
        HeadInput noPre = h;
        noPre.keysPreRope = Matrix();
        KVS_VERIFY_THROWS(compressWith("factor.weight_svd:rank=4", noPre), ErrorCode::Unsupported,
                          "no pre-RoPE keys");
        HeadInput noWeights = h;
        noWeights.keyProjection = Matrix();
        KVS_VERIFY_THROWS(compressWith("factor.weight_svd:rank=4", noWeights),
                          ErrorCode::Unsupported, "needs the model's weights");
        HeadInput shared = h;
        shared.valuesSharedWithKeys = true;
        KVS_VERIFY_THROWS(compressWith("factor.weight_svd:rank=4", shared), ErrorCode::Unsupported,
                          "K=V");
        KVS_VERIFY_THROWS(compressWith("factor.rope_pairs:rank=4", shared), ErrorCode::Unsupported,
                          "K=V");
        QVERIFY(findScheme("factor.weight_svd")->info().needsWeights);
        QVERIFY(!findScheme("factor.rope_pairs")->info().needsWeights);
    }

    // The spectra behind the spectrum view: σ(Q Kᵀ) through the d × d core equals the SVD of
    // the product itself; σ(W_K) that of the head's columns of the checkpoint's projection; the
    // energy a rank keeps is Σ_{i<r} σ² / Σ σ²; a capture alone has no W_K spectrum.
    void spectraMatchDirectSvds() {
        QCOMPARE(energyKept({3.0, 4.0}, 1), 9.0 / 25.0);
        QCOMPARE(energyKept({3.0, 4.0}, 2), 1.0);
        QCOMPARE(energyKept({0.0, 0.0}, 1), 1.0);
        const Model m = Model::load(bundledDefault()).valueOrThrow();
        const Capture cap = m.capture(kPrompt).valueOrThrow();
        const int ctx = 40, d = m.config().headDim;
        const auto spectra = keySpectra(cap, &m, ctx).valueOrThrow();
        QCOMPARE(spectra.size(), std::size_t(m.config().layers * m.config().kvHeads));
        for (const HeadSpectrum& s : {spectra.front(), spectra.back()}) {
            const KvHeadCapture& hc =
                cap.layers[std::size_t(s.layer)].kvHeads[std::size_t(s.kvHead)];
            const Eigen::MatrixXd k = hc.keys.topRows(ctx).cast<double>();
            Eigen::MatrixXd q(Eigen::Index(hc.queries.size()) * ctx, d);
            for (std::size_t g = 0; g < hc.queries.size(); ++g)
                q.middleRows(Eigen::Index(g) * ctx, ctx) =
                    hc.queries[g].topRows(ctx).cast<double>();
            const Eigen::VectorXd direct =
                Eigen::JacobiSVD<Eigen::MatrixXd>(q * k.transpose()).singularValues();
            QCOMPARE(s.scores.size(), std::size_t(d));
            for (int i = 0; i < d; ++i)
                QVERIFY2(std::abs(s.scores[std::size_t(i)] - direct(i)) <= 1e-9 * direct(0),
                         qPrintable(QString("σ_%1: %2 vs %3")
                                        .arg(i)
                                        .arg(s.scores[std::size_t(i)])
                                        .arg(direct(i))));
            const Eigen::MatrixXd w = m.attentionProjections(s.layer)
                                          .wk.middleCols(Eigen::Index(s.kvHead) * d, d)
                                          .cast<double>();
            const Eigen::VectorXd sw = Eigen::JacobiSVD<Eigen::MatrixXd>(w).singularValues();
            QCOMPARE(s.keyProjection.size(), std::size_t(d));
            for (int i = 0; i < d; ++i)
                QVERIFY(std::abs(s.keyProjection[std::size_t(i)] - sw(i)) <= 1e-6 * sw(0));
            const Eigen::VectorXd sk = Eigen::JacobiSVD<Eigen::MatrixXd>(k).singularValues();
            QVERIFY(std::abs(s.keys[0] - sk(0)) <= 1e-9 * sk(0));
        }
        const auto capOnly = keySpectra(cap, nullptr, ctx).valueOrThrow();
        QVERIFY(capOnly.front().keyProjection.empty());
        QVERIFY(!capOnly.front().scores.empty());
        KVS_VERIFY_ERROR(keySpectra(cap, &m, cap.tokenCount() + 1), "choose 1");
    }
};

QTEST_GUILESS_MAIN(TestFactored)
#include "test_factored.moc"
