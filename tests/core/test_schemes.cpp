// SPDX-License-Identifier: MIT
// The scheme framework and the evaluation protocol: registry and settings, exactness of keep-
// everything, weights that reproduce the exact normalizer on constructed cases, byte counts
// against the formulas of ALGORITHMS.md, budgets, determinism, and model-level quality.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/sweep.h"
#include "kvs_test.h"

#include <QtTest>
#include <cmath>
#include <random>
#include <set>

using namespace kvs;

namespace {

// A head whose tokens come in identical adjacent pairs (2i, 2i+1): keys of equal norm, unit
// values. One token of each pair at weight 2 is then an exact coreset.
HeadInput pairedHead(int pairs, int d, std::uint64_t seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    HeadInput h;
    h.keys.resize(2 * pairs, d);
    h.values.resize(2 * pairs, d);
    for (int i = 0; i < pairs; ++i) {
        RowVector k(d), v(d);
        for (int c = 0; c < d; ++c) {
            k(c) = normal(rng);
            v(c) = normal(rng);
        }
        k *= 2.0f / k.norm();
        v /= v.norm();
        h.keys.row(2 * i) = h.keys.row(2 * i + 1) = k;
        h.values.row(2 * i) = h.values.row(2 * i + 1) = v;
    }
    h.queries.push_back(h.keys);
    return h;
}

Matrix randomMatrix(int rows, int cols, std::uint64_t seed, float scale = 1.0f) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::normal_distribution<float> normal(0.0f, scale);
    Matrix m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i)
        m.data()[i] = normal(rng);
    return m;
}

CompressedHead compress(const std::string& setting, const HeadInput& head) {
    auto s = SchemeSetting::parse(setting);
    if (!s.ok())
        throw std::runtime_error(s.message());
    return findScheme(s.value().id)->compress(head, s.value().resolved());
}

} // namespace

class TestSchemes : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    std::optional<Model> m_model;
    std::optional<Capture> m_capture;

private slots:
    void initTestCase() {
        const auto folder = test::writeModel(m_dir, "gqa", syntheticPreset("tiny-llama-gqa"));
        auto m = Model::load(folder);
        KVS_VERIFY_OK(m);
        m_model.emplace(std::move(m.value()));
        auto c = m_model->capture(
            "In the beginning God created the heaven and the earth. And the earth was without "
            "form, and void; and darkness was upon the face of the deep.");
        KVS_VERIFY_OK(c);
        m_capture.emplace(std::move(c.value()));
    }

    void registryIsWellFormed() {
        std::set<std::string> ids;
        QVERIFY(schemeRegistry().size() >= 11);
        for (const auto& s : schemeRegistry()) {
            const SchemeInfo& i = s->info();
            QVERIFY2(ids.insert(i.id).second, i.id.c_str());
            QVERIFY(!i.family.empty() && !i.displayName.empty());
            QVERIFY2(i.explanation.size() > 60, i.id.c_str());
            std::set<std::string> keys;
            for (const auto& p : i.params) {
                QVERIFY2(keys.insert(p.key).second, (i.id + "." + p.key).c_str());
                QVERIFY2(p.minimum <= p.defaultValue && p.defaultValue <= p.maximum,
                         (i.id + "." + p.key).c_str());
                QVERIFY(!p.label.empty());
                if (p.logScale)
                    QVERIFY(p.minimum > 0);
            }
        }
        for (const char* id :
             {"identity", "select.uniform", "select.norm_importance", "select.sinks_window",
              "select.h2o", "select.tova", "select.snapkv", "select.key_norm",
              "select.expected_attention", "coreset.halving", "coreset.streaming"})
            QVERIFY2(findScheme(id), id);
    }

    void parseSettings_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("error"); // empty: valid
        QTest::newRow("plain id") << "coreset.halving"
                                  << "";
        QTest::newRow("params") << "coreset.halving:keep=0.125, seed=3"
                                << "";
        QTest::newRow("unknown id") << "coreset.nope"
                                    << "unknown scheme id 'coreset.nope'";
        QTest::newRow("unknown key") << "select.uniform:kep=0.5"
                                     << "unknown parameter 'kep'";
        QTest::newRow("not a number") << "select.uniform:keep=half"
                                      << "is not a number";
        QTest::newRow("trailing junk") << "select.uniform:keep=0.5x"
                                       << "is not a number";
        QTest::newRow("out of range") << "select.uniform:keep=2"
                                      << "outside [0.001, 1]";
        QTest::newRow("not integer") << "select.uniform:tokens=2.5"
                                     << "must be an integer";
        QTest::newRow("no equals") << "select.uniform:keep"
                                   << "is not key=value";
    }
    void parseSettings() {
        QFETCH(QString, text);
        QFETCH(QString, error);
        const auto r = SchemeSetting::parse(text.toStdString());
        if (error.isEmpty()) {
            KVS_VERIFY_OK(r);
            // The text form parses back to the same setting.
            const auto again = SchemeSetting::parse(r.value().toString());
            KVS_VERIFY_OK(again);
            QCOMPARE(again.value().params, r.value().params);
        } else {
            const std::string fragment = error.toStdString(), quoted = text.toStdString();
            KVS_VERIFY_ERROR(r, fragment.c_str(), quoted.c_str());
        }
    }

    // The head output as the model reads it: the exact context attention merged with the
    // probe's own causal attention reproduces the attention outputs the forward pass captured.
    void mergedOutputIsTheModelsOutput() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 96;
        o.modelQuality = false;
        const auto ref = computeExactReference(*m_capture, nullptr, *backend, o);
        KVS_VERIFY_OK(ref);
        const int ctx = 96, p = m_capture->tokenCount() - ctx, g = m_capture->config.groupSize();
        double worst = 0;
        for (int l = 0; l < m_capture->config.layers; ++l)
            for (int q = 0; q < m_capture->config.heads; ++q) {
                const auto lq = static_cast<std::size_t>(l), qq = static_cast<std::size_t>(q);
                AttendResult merged = ref.value().attention[lq][qq];
                const AttendResult& self = ref.value().probeSelf[lq][qq];
                QCOMPARE(static_cast<int>(self.outputs.rows()), p);
                mergeAttention(merged.outputs, merged.logSumExp, self.outputs, self.logSumExp);
                const Matrix& captured = m_capture->layers[lq]
                                             .kvHeads[static_cast<std::size_t>(q / g)]
                                             .outputs[static_cast<std::size_t>(q % g)];
                const Matrix expected = captured.middleRows(ctx, p);
                worst = std::max(worst, static_cast<double>((merged.outputs - expected).norm() /
                                                            expected.norm()));
            }
        QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
    }

    // Total variation is the mass lost for plain eviction (the kept tokens are renormalized:
    // ½(Σ_kept p(1/K − 1) + (1 − K)) = 1 − K), strictly positive for a weighted coreset at the
    // same budget, and the head output error is a ratio of sums: at most the largest per-head
    // error and at least the smallest.
    void totalVariationAndOutputError() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 96;
        o.modelQuality = false;
        const auto evict =
            evaluate(*m_capture, nullptr,
                     SchemeSetting::parse("select.sinks_window:keep=0.25").value(), *backend, o);
        KVS_VERIFY_OK(evict);
        for (const HeadMetrics& h : evict.value().heads) {
            QVERIFY(!h.weighted);
            QVERIFY2(std::abs(h.totalVariation - h.massLost) < 1e-5,
                     qPrintable(QString("%1 vs %2").arg(h.totalVariation).arg(h.massLost)));
        }
        double lo = 1e300, hi = 0;
        for (const HeadMetrics& h : evict.value().heads) {
            lo = std::min(lo, h.outputError);
            hi = std::max(hi, h.outputError);
        }
        const double total = evict.value().outputError;
        QVERIFY2(total > 0 && total >= lo - 1e-12 && total <= hi + 1e-12,
                 qPrintable(QString("%1 not in [%2, %3]").arg(total).arg(lo).arg(hi)));
        // 24 tokens: the default exact part (4 sinks + 32) would leave the coreset nothing to
        // choose (a degenerate budget), so a shorter window here.
        const auto coreset = evaluate(
            *m_capture, nullptr, SchemeSetting::parse("coreset.halving:keep=0.25,window=8").value(),
            *backend, o);
        KVS_VERIFY_OK(coreset);
        QVERIFY(coreset.value().heads.front().weighted);
        QVERIFY(coreset.value().totalVariation > 0 && coreset.value().totalVariation < 1);
    }

    // Keep-everything at 32 bits is exact: zero error to the bit on the CPU reference, zero
    // next-token KL, zero perplexity change, full top-1 agreement.
    void identityIsExact() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 96;
        o.perLayerQuality = true;
        const auto r =
            evaluate(*m_capture, &*m_model, SchemeSetting::parse("identity").value(), *backend, o);
        KVS_VERIFY_OK(r);
        const EvalResult& e = r.value();
        QCOMPARE(e.contextError, 0.0);
        QCOMPARE(e.outputError, 0.0);
        QVERIFY(e.totalVariation < 1e-6);
        QCOMPARE(e.logitError, 0.0);
        QVERIFY(e.massLost < 1e-6); // 1 − Σp of float probabilities
        QVERIFY(e.quality.has_value());
        QCOMPARE(e.quality->klMean, 0.0);
        QCOMPARE(e.quality->perplexityChangePercent, 0.0);
        QCOMPARE(e.quality->top1Agreement, 1.0);
        QCOMPARE(e.perLayerQuality.size(), std::size_t(2));
        for (const auto& q : e.perLayerQuality)
            QCOMPARE(q.klMean, 0.0);
        // fp32 storage is twice the fp16 baseline; no index, no weights.
        QCOMPARE(e.memoryFraction, 2.0);
        QCOMPARE(e.bytes.metadata, std::size_t(0));
        for (const auto& h : e.heads)
            QCOMPARE(h.keptTokens, 96);
    }

    void identityAt16BitsIsTheBaseline() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 80;
        o.modelQuality = false;
        const auto r = evaluate(*m_capture, nullptr,
                                SchemeSetting::parse("identity:precision=16").value(), *backend, o);
        KVS_VERIFY_OK(r);
        QCOMPARE(r.value().memoryFraction, 1.0);
        // fp16 rounding of keys and values: relative error of the order of 2^-11.
        QVERIFY(r.value().contextError > 0 && r.value().contextError < 2e-3);
    }

    // ALGORITHMS.md §1d: m·(4d + 4) bytes for plain eviction at fp16, +2 per token for a
    // log-weight where weights vary.
    void bytesFollowTheFormulas_data() {
        QTest::addColumn<QString>("setting");
        QTest::addColumn<int>("kept");
        QTest::addColumn<bool>("weighted");
        QTest::newRow("sinks+window") << "select.sinks_window:tokens=40" << 40 << false;
        QTest::newRow("key norm") << "select.key_norm:tokens=33" << 33 << false;
        QTest::newRow("uniform") << "select.uniform:tokens=50" << 50 << true;
        QTest::newRow("halving") << "coreset.halving:tokens=60,sinks=4,window=8" << 60 << true;
    }
    void bytesFollowTheFormulas() {
        QFETCH(QString, setting);
        QFETCH(int, kept);
        QFETCH(bool, weighted);
        const int d = 12, n = 200;
        HeadInput h;
        h.keys = randomMatrix(n, d, 1);
        h.values = randomMatrix(n, d, 2);
        h.queries = {randomMatrix(n, d, 3)};
        const CompressedHead c = compress(setting.toStdString(), h);
        QCOMPARE(c.keptCount(), kept);
        const CacheBytes b = c.bytes();
        QCOMPARE(b.keys, std::size_t(2 * d * kept));
        QCOMPARE(b.values, std::size_t(2 * d * kept));
        QCOMPARE(b.metadata, std::size_t((weighted ? 6 : 4) * kept));
        QCOMPARE(b.total(), std::size_t(kept * (4 * d + 4 + (weighted ? 2 : 0))));
    }

    void budgets() {
        const int d = 16, n = 300;
        HeadInput h;
        h.keys = randomMatrix(n, d, 4);
        h.values = randomMatrix(n, d, 5);
        h.queries = {randomMatrix(n, d, 6)};
        QCOMPARE(compress("select.key_norm:keep=0.1", h).keptCount(), 30);
        QCOMPARE(compress("select.key_norm:tokens=17", h).keptCount(), 17);
        // bytes win over tokens: 68 B per token (64 + 4 for the index).
        QCOMPARE(compress("select.key_norm:tokens=17,bytes=700", h).keptCount(), 10);
        QCOMPARE(compress("select.key_norm:bytes=100000", h).keptCount(), n);
        // sinks + window: the first 4 and the most recent ones.
        const CompressedHead sw = compress("select.sinks_window:tokens=10", h);
        QCOMPARE(sw.positions,
                 (std::vector<std::int32_t>{0, 1, 2, 3, 294, 295, 296, 297, 298, 299}));
        // key norm keeps the smallest norms (no exact part: 5 tokens are all its own choice).
        const CompressedHead kn = compress("select.key_norm:tokens=5,sinks=0,window=0", h);
        const Eigen::VectorXf norms = h.keys.rowwise().norm();
        std::vector<float> sorted(norms.data(), norms.data() + n);
        std::sort(sorted.begin(), sorted.end());
        for (auto p : kn.positions)
            QVERIFY(norms(p) <= sorted[4]);
    }

    // Identical pairs: the walk splits every pair, so halving at keep ½ is an exact coreset —
    // the log-weights ln 2 reproduce the exact normalizer and output.
    void halvingWeightsReproduceTheNormalizer() {
        const HeadInput h = pairedHead(64, 16, 7);
        const CompressedHead c =
            compress("coreset.halving:keep=0.5,sinks=0,window=0,precision=32,kernel=0", h);
        QCOMPARE(c.keptCount(), 64);
        for (int i = 0; i < 64; ++i)
            QCOMPARE(c.positions[static_cast<std::size_t>(i)] / 2, i); // one of each pair
        for (float w : c.logWeights)
            QCOMPARE(w, roundToHalf(std::log(2.0f))); // log-weights are stored in fp16
        auto backend = makeCpuBackend();
        const Matrix q = randomMatrix(5, 16, 8);
        const auto exact = backend->attend(exactHead(h.keys, h.values), q, {});
        const auto approx = backend->attend(c, q, {});
        KVS_VERIFY_OK(exact);
        KVS_VERIFY_OK(approx);
        QVERIFY(test::maxAbsDiff(exact.value().outputs, approx.value().outputs) < 1e-5);
        // The log-weight ln 2 is stored in fp16 (0.69287 instead of 0.69315): the normalizer is
        // off by that rounding, 2.8e-4 in log space; the outputs are not (equal weights cancel).
        for (int i = 0; i < 5; ++i)
            QVERIFY(std::abs(exact.value().logSumExp[static_cast<std::size_t>(i)] -
                             approx.value().logSumExp[static_cast<std::size_t>(i)]) < 3e-4);
    }

    // Identical tokens: any uniform sample with weight n/m gives the exact normalizer.
    void uniformWeightsReproduceTheNormalizer() {
        HeadInput h;
        const Matrix k = randomMatrix(1, 8, 9), v = randomMatrix(1, 8, 10);
        h.keys = k.replicate(90, 1);
        h.values = v.replicate(90, 1);
        h.queries = {h.keys};
        const CompressedHead c =
            compress("select.uniform:tokens=9,sinks=0,window=0,precision=32", h);
        auto backend = makeCpuBackend();
        const Matrix q = randomMatrix(3, 8, 11);
        const auto exact = backend->attend(exactHead(h.keys, h.values), q, {}).value();
        const auto approx = backend->attend(c, q, {}).value();
        // ln 10 stored in fp16 (step 2^-9 between 2 and 4): the normalizer within 1e-3 in log
        // space.
        for (int i = 0; i < 3; ++i)
            QVERIFY(std::abs(exact.logSumExp[static_cast<std::size_t>(i)] -
                             approx.logSumExp[static_cast<std::size_t>(i)]) < 1e-3);
        const double diff = test::maxAbsDiff(exact.outputs, approx.outputs);
        // Float sums of 90 equal terms against 9: a few units in the last place of |v| ≈ 3.
        QVERIFY2(diff < 1e-5, qPrintable(QString::number(diff)));
    }

    void deterministicUnderSeed_data() {
        QTest::addColumn<QString>("scheme");
        QTest::newRow("uniform") << "select.uniform:keep=0.3";
        QTest::newRow("importance") << "select.norm_importance:keep=0.3";
        QTest::newRow("halving") << "coreset.halving:keep=0.3,sinks=2,window=4";
        QTest::newRow("streaming") << "coreset.streaming:keep=0.3,sinks=2,window=4";
    }
    void deterministicUnderSeed() {
        QFETCH(QString, scheme);
        HeadInput h;
        h.keys = randomMatrix(256, 16, 12);
        h.values = randomMatrix(256, 16, 13);
        h.queries = {randomMatrix(256, 16, 14)};
        const std::string s = scheme.toStdString();
        const CompressedHead a = compress(s + ",seed=5", h);
        const CompressedHead b = compress(s + ",seed=5", h);
        const CompressedHead c = compress(s + ",seed=6", h);
        QCOMPARE(a.positions, b.positions);
        QCOMPARE(a.logWeights, b.logWeights);
        QVERIFY(a.positions != c.positions);
        // evaluate() is deterministic too, whatever the thread order.
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 90;
        o.modelQuality = false;
        const auto e1 = evaluate(*m_capture, nullptr, SchemeSetting::parse(s).value(), *backend, o);
        const auto e2 = evaluate(*m_capture, nullptr, SchemeSetting::parse(s).value(), *backend, o);
        QCOMPARE(e1.value().contextError, e2.value().contextError);
    }

    // Merge-and-reduce: weights are powers of two, the summary fits the budget.
    void streamingLevels() {
        HeadInput h;
        h.keys = randomMatrix(1000, 8, 15);
        h.values = randomMatrix(1000, 8, 16);
        h.queries = {randomMatrix(1000, 8, 17)};
        const CompressedHead c = compress("coreset.streaming:tokens=200,sinks=8,window=32", h);
        QVERIFY(c.keptCount() <= 200);
        QVERIFY(c.keptCount() >= 150);
        for (float w : c.logWeights) {
            const float levels = w / std::log(2.0f);
            QVERIFY(std::abs(levels - std::round(levels)) < 1e-3);
        }
        QCOMPARE(c.positions.front(), 0);
        QCOMPARE(c.positions.back(), 999);
    }

    // A compressed run loses something, and the metrics see it.
    void compressionCostsSomething() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 96;
        const auto r =
            evaluate(*m_capture, &*m_model,
                     SchemeSetting::parse("select.sinks_window:keep=0.2").value(), *backend, o);
        KVS_VERIFY_OK(r);
        const EvalResult& e = r.value();
        QVERIFY(e.contextError > 1e-3);
        QVERIFY(e.massLost > 0.05);
        QVERIFY(e.quality->klMean > 0);
        QVERIFY(std::abs(e.memoryFraction - (19.0 * (48 + 4)) / (96.0 * 48)) < 1e-9);
        for (const auto& h : e.heads) {
            QVERIFY(h.rhoEff > 0);
            QVERIFY(std::isfinite(h.boundTokens) && h.boundTokens > 0);
            QVERIFY(h.valueScaledError > 0);
            // √d·e^ρ/ε with the error in the bound's units.
            QVERIFY(std::abs(h.boundTokens - std::sqrt(12.0) * std::exp(h.rhoEff) /
                                                 h.valueScaledError) <= 1e-9 * h.boundTokens);
        }
    }

    // One halving round against the walk written out in full, as ALGORITHMS.md §1a states it:
    // the whole Gram matrix G = K ∘ V (normalized by its largest diagonal entry), token i's sign
    // drawn with P(+) = ½ − γ·Σ_{j<i} G(i, j)σ_j, the class that fills first kept at double weight.
    // The scheme builds G's lower triangle in column blocks, or, for the query-sampled kernel
    // when it is cheaper, walks with running sums of rank probes × d: every path must pick the
    // same tokens.
    void halvingWalkEqualsTheFullGramWalk_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("d");
        QTest::addColumn<int>("kernel");
        QTest::addRow("sampled kernel, low-rank walk") << 256 << 8 << 64;
        QTest::addRow("sampled kernel, blocked walk") << 40 << 16 << 64;
        QTest::addRow("key kernel, several blocks") << 200 << 8 << 0;
        QTest::addRow("key kernel, one partial block") << 50 << 8 << 0;
    }
    void halvingWalkEqualsTheFullGramWalk() {
        QFETCH(int, n);
        QFETCH(int, d);
        QFETCH(int, kernel);
        HeadInput h;
        h.layer = 2;
        h.kvHead = 1;
        h.seed = 7;
        h.keys = randomMatrix(n, d, 31, 0.8f);
        h.values = randomMatrix(n, d, 32);
        h.queries = {randomMatrix(n, d, 33, 0.8f)};
        const std::string text =
            "coreset.halving:sinks=0,window=0,precision=32,seed=5,tokens=" + std::to_string(n / 2) +
            ",block=" + std::to_string(n) + ",kernel=" + std::to_string(kernel);
        const auto setting = SchemeSetting::parse(text);
        KVS_VERIFY_OK(setting);
        const ParamValues p = setting.value().resolved();
        const CompressedHead c = findScheme("coreset.halving")->compress(h, p);

        // The reference: every entry of G, in double.
        const double scale = h.attentionScale();
        Eigen::MatrixXd v = h.values.cast<double>();
        v /= v.rowwise().norm().maxCoeff();
        const Eigen::MatrixXd valuePart = (v * v.transpose()).array() + p.at("c");
        Eigen::MatrixXd g;
        if (kernel > 0) {
            const int per = std::min(kernel, n);
            const Eigen::MatrixXd s =
                (h.queries[0].bottomRows(per).cast<double>() * h.keys.cast<double>().transpose()) *
                scale;
            Eigen::MatrixXd phi(per, n);
            for (int i = 0; i < per; ++i) {
                const Eigen::ArrayXd e = (s.row(i).array() - s.row(i).maxCoeff()).exp().transpose();
                phi.row(i) = (e / e.sum()).matrix().transpose();
            }
            g = (phi.transpose() * phi).cwiseProduct(valuePart);
        } else {
            Eigen::MatrixXd k = h.keys.cast<double>();
            k.rowwise() -= k.colwise().mean();
            const Eigen::MatrixXd a = (k * k.transpose()) * (p.at("tau") * scale);
            g = (a.array() - a.diagonal().maxCoeff()).exp().matrix().cwiseProduct(valuePart);
        }
        g /= g.diagonal().maxCoeff();
        std::seed_seq seq{static_cast<std::uint64_t>(p.at("seed")), h.seed,
                          static_cast<std::uint64_t>(h.layer),
                          static_cast<std::uint64_t>(h.kvHead)};
        std::mt19937_64 rng(seq);
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        std::vector<int> sign(static_cast<std::size_t>(n), 0);
        int plus = 0, minus = 0;
        const int half = n / 2;
        for (int i = 0; i < n; ++i) {
            int sgn = +1;
            if (plus == half)
                sgn = -1;
            else if (minus == half || i == 0)
                sgn = +1;
            else {
                double r = 0;
                for (int j = 0; j < i; ++j)
                    r += g(i, j) * sign[static_cast<std::size_t>(j)];
                sgn = unit(rng) < std::clamp(0.5 - p.at("gamma") * r, 0.0, 1.0) ? +1 : -1;
            }
            sign[static_cast<std::size_t>(i)] = sgn;
            (sgn > 0 ? plus : minus)++;
        }
        int keep = 0;
        for (int i = 0, a = 0, b = 0; i < n && keep == 0; ++i) {
            (sign[static_cast<std::size_t>(i)] > 0 ? a : b)++;
            keep = a == half ? +1 : b == half ? -1 : 0;
        }
        std::vector<int> expected;
        for (int i = 0; i < n; ++i)
            if (sign[static_cast<std::size_t>(i)] == keep)
                expected.push_back(i);

        std::vector<int> kept(c.positions.begin(), c.positions.end());
        std::sort(kept.begin(), kept.end());
        QCOMPARE(kept, expected);
        for (const float w : c.logWeights) // ln 2, stored at fp16
            QVERIFY(std::abs(w - std::log(2.0)) < 1e-3);
    }

    // On a smooth kernel (small key norms) the balanced halving must beat uniform sampling at the
    // same number of kept tokens, and its error must fall faster with m (ALGORITHMS.md §1c).
    void halvingBeatsUniformOnSmoothKernels() {
        const int n = 1024, d = 8;
        HeadInput h;
        h.keys = randomMatrix(n, d, 21, 0.5f);
        h.values = randomMatrix(n, d, 22);
        h.queries = {randomMatrix(n, d, 23, 0.5f)};
        const Matrix probes = randomMatrix(64, d, 24, 0.5f);
        auto backend = makeCpuBackend();
        const auto exact = backend->attend(exactHead(h.keys, h.values), probes, {}).value();
        auto error = [&](const std::string& setting) {
            double sum = 0;
            for (int seed = 1; seed <= 3; ++seed) {
                const auto c = compress(setting + ",precision=32,seed=" + std::to_string(seed), h);
                const auto r = backend->attend(c, probes, {}).value();
                for (Eigen::Index i = 0; i < probes.rows(); ++i)
                    sum += (r.outputs.row(i) - exact.outputs.row(i)).norm() /
                           exact.outputs.row(i).norm();
            }
            return sum / (3.0 * probes.rows());
        };
        std::vector<double> ms, eu, eh;
        for (int m : {16, 64, 256}) {
            ms.push_back(m);
            eu.push_back(error("select.uniform:tokens=" + std::to_string(m)));
            eh.push_back(error("coreset.halving:sinks=0,window=0,tokens=" + std::to_string(m)));
            qInfo("m = %d: uniform %.4f, halving %.4f", m, eu.back(), eh.back());
        }
        const double su = fitLogLog(ms, eu).slope, sh = fitLogLog(ms, eh).slope;
        qInfo("slopes: uniform %.3f, halving %.3f", su, sh);
        QVERIFY(eh.back() < 0.7 * eu.back());
        QVERIFY(sh < su - 0.1);
    }

    void sweepHelpers() {
        // y = 3 x^-0.5 exactly: slope −0.5, R² 1.
        const std::vector<double> x{4, 16, 64, 256}, y{1.5, 0.75, 0.375, 0.1875};
        const SlopeFit f = fitLogLog(x, y);
        QVERIFY(std::abs(f.slope + 0.5) < 1e-12);
        QVERIFY(std::abs(f.intercept - std::log(3.0)) < 1e-12);
        QVERIFY(std::abs(f.r2 - 1.0) < 1e-12);
        QCOMPARE(fitLogLog({1}, {1}).points, 1);
        // Pareto: (cost, error) = (1,5) (2,3) (2,4) (3,3) (4,1): front 0, 1, 4.
        QCOMPARE(paretoFront({1, 2, 2, 3, 4}, {5, 3, 4, 3, 1}),
                 (std::vector<std::size_t>{0, 1, 4}));
        QCOMPARE(geometricValues(1, 8, 4, true), (std::vector<double>{1, 2, 4, 8}));
        QCOMPARE(geometricValues(1, 2, 5, true), (std::vector<double>{1, 2}));
        QCOMPARE(median({3, 1, 2}), 2.0);
        QCOMPARE(median({4, 1, 3, 2}), 3.0); // the upper median of an even count
        QVERIFY(std::isnan(median({})));
    }

    // What a trade-off curve sweeps comes from the scheme's info (its budget parameter), and
    // settings that differ only in the budget share one base.
    void sweepPlanFollowsTheSchemeInfo() {
        const SchemeSetting halving =
            SchemeSetting::parse("coreset.halving:keep=0.3,tokens=12,seed=2").valueOrThrow();
        const auto plan = sweepPlan(halving, 100);
        QVERIFY(plan.has_value());
        QCOMPARE(plan->parameter, std::string("keep"));
        // From two tokens of 100 to all of them, geometric, seven points.
        QCOMPARE(plan->values.size(), std::size_t(7));
        QVERIFY(std::abs(plan->values.front() - 0.02) < 1e-12);
        QVERIFY(std::abs(plan->values.back() - 1.0) < 1e-12);
        QVERIFY(std::abs(plan->values[1] / plan->values[0] - std::pow(50.0, 1.0 / 6)) < 1e-9);
        QCOMPARE(sweepBase(halving, "keep").toString(), std::string("coreset.halving:seed=2"));
        // The exact scheme has no budget: its first parameter (the precision) is swept.
        const auto identity = sweepPlan(SchemeSetting::parse("identity").valueOrThrow(), 100);
        QVERIFY(identity.has_value());
        QCOMPARE(identity->parameter, std::string("precision"));
        QVERIFY(!sweepPlan(SchemeSetting{"no.such.scheme", {}}, 100));
        // A codec sweeps its supported widths, one curve whatever the per-tensor widths were;
        // the entropy codec sweeps its step, factored keys their rank.
        const SchemeSetting k4v2 =
            SchemeSetting::parse("codec.uniform:key_bits=4,value_bits=2,group=16").valueOrThrow();
        const auto bits = sweepPlan(k4v2, 100);
        QVERIFY(bits.has_value());
        QCOMPARE(bits->parameter, std::string("bits"));
        QCOMPARE(bits->values, (std::vector<double>{2, 3, 4, 8}));
        QCOMPARE(sweepBase(k4v2, "bits").toString(), std::string("codec.uniform:group=16"));
        QCOMPARE(sweepPlan(SchemeSetting::parse("codec.entropy").valueOrThrow(), 100)->parameter,
                 std::string("alpha"));
        QCOMPARE(
            sweepPlan(SchemeSetting::parse("factor.data_aware").valueOrThrow(), 100)->parameter,
            std::string("rank"));
        // Post-hoc sharing visits the divisors of the model's KV heads; precision its two widths.
        const auto heads = sweepPlan(SchemeSetting::parse("share.lsq").valueOrThrow(), 100, 7, 6);
        QCOMPARE(heads->parameter, std::string("kv_heads"));
        QCOMPARE(heads->values, (std::vector<double>{1, 2, 3, 6}));
        QCOMPARE(sweepPlan(SchemeSetting::parse("share.kv_tie").valueOrThrow(), 100)->values,
                 (std::vector<double>{16, 32}));
        QVERIFY(!SchemeSetting::parse("identity:precision=20").ok());
        // The theories are data on the schemes.
        QCOMPARE(findScheme("coreset.halving")->info().theory.exponent, -1.0);
        QVERIFY(findScheme("coreset.streaming")->info().theory.coresetBound);
        QCOMPARE(findScheme("select.uniform")->info().theory.exponent, -0.5);
        QVERIFY(!findScheme("select.uniform")->info().theory.coresetBound);
        QVERIFY(std::isnan(findScheme("select.h2o")->info().theory.exponent));
    }

    // A sweep shares one exact reference and gives what single evaluations give.
    void sweepMatchesSingleEvaluations() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 100;
        o.modelQuality = false;
        const auto base = SchemeSetting::parse("select.uniform:precision=32").value();
        const auto sw = runSweep(*m_capture, nullptr, base, "keep", {0.125, 0.5}, *backend, o);
        KVS_VERIFY_OK(sw);
        QCOMPARE(sw.value().points.size(), std::size_t(2));
        const auto one = evaluate(
            *m_capture, nullptr,
            SchemeSetting::parse("select.uniform:precision=32,keep=0.5").value(), *backend, o);
        QCOMPARE(sw.value().points[1].result.contextError, one.value().contextError);
        QCOMPARE(sw.value().points[1].meanKeptTokens, 50.0);
        QVERIFY(sw.value().points[0].result.contextError > one.value().contextError);
        KVS_VERIFY_ERROR(runSweep(*m_capture, nullptr, base, "nope", {1}, *backend, o),
                         "no parameter 'nope'");
    }

    // The reference's probe logits (compressed-context path with exact heads) are the model's
    // own logits: the log-sum-exp merge in the forward pass is right, not just self-consistent.
    void referenceMatchesPlainForward_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<int>("context");
        QTest::newRow("llama gqa") << "tiny-llama-gqa" << 60;
        QTest::newRow("llama gqa, context 1") << "tiny-llama-gqa" << 1;
        QTest::newRow("gpt2") << "tiny-gpt2" << 50;
        QTest::newRow("qwen2") << "tiny-qwen2" << 70;
        QTest::newRow("llama k=v") << "k_eq_v" << 40;
    }
    void referenceMatchesPlainForward() {
        QFETCH(QString, preset);
        QFETCH(int, context);
        SyntheticModelSpec spec =
            syntheticPreset(preset == "k_eq_v" ? "tiny-llama" : preset.toStdString());
        if (preset == "k_eq_v")
            spec.config.sharing = ProjectionSharing::KEqV;
        const auto folder = test::writeModel(m_dir, preset.toStdString(), spec);
        const Model model = Model::load(folder).valueOrThrow();
        const Capture cap =
            model
                .capture("Thy word is a lamp unto my feet, and a light unto my path. I have sworn",
                         {.logits = true})
                .valueOrThrow();
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = context;
        const auto ref = computeExactReference(cap, &model, *backend, o);
        KVS_VERIFY_OK(ref);
        const Matrix plain = cap.logits.bottomRows(cap.tokenCount() - context);
        const double scale = plain.cwiseAbs().maxCoeff();
        QVERIFY2(test::maxAbsDiff(ref.value().probeLogits, plain) < 2e-6 * std::max(1.0, scale),
                 qPrintable(QString::number(test::maxAbsDiff(ref.value().probeLogits, plain))));
        // Identity through that path: exact, and a K=V cache costs no value bytes.
        const auto e = evaluate(cap, &model, SchemeSetting::parse("identity").value(), *backend, o,
                                &ref.value());
        KVS_VERIFY_OK(e);
        QCOMPARE(e.value().contextError, 0.0);
        QCOMPARE(e.value().quality->klMean, 0.0);
        if (preset == "k_eq_v")
            QCOMPARE(e.value().bytes.values, std::size_t(0));
        // Against the model's own fp16 cache (keys only for K=V), fp32 identity is twice it.
        QCOMPARE(e.value().memoryFraction, 2.0);
        const int d = cap.config.headDim;
        const std::size_t perHead = std::size_t(2) * context * d * (preset == "k_eq_v" ? 1 : 2);
        QCOMPARE(e.value().fp16Bytes, perHead * e.value().heads.size());
    }

    void budgetEdgeCases() {
        HeadInput h;
        h.keys = randomMatrix(200, 8, 31);
        h.values = randomMatrix(200, 8, 32);
        h.queries = {randomMatrix(200, 8, 33)};
        // Sinks and window larger than the budget: the budget wins, window first.
        const CompressedHead a = compress("coreset.halving:tokens=10,sinks=16,window=64", h);
        QCOMPARE(a.keptCount(), 10);
        QCOMPARE(a.positions.back(), 9);
        // A byte budget below one token keeps none.
        QCOMPARE(compress("select.uniform:bytes=10", h).keptCount(), 0);
        // Streaming cannot always meet a tiny budget: it says so instead of exceeding it.
        QVERIFY_THROWS_EXCEPTION(Error, compress("coreset.streaming:tokens=4,sinks=0,window=0", h));
        QVERIFY_THROWS_EXCEPTION(
            Error, compress("coreset.streaming:tokens=20,buffer=300,sinks=0,window=0", h));
        QVERIFY(compress("coreset.streaming:tokens=20,sinks=0,window=0", h).keptCount() <= 20);
    }

    // Equal footing (docs/schemes.md): every token-selection and coreset scheme offers the same
    // sinks by default, and the same exact window — a `window` parameter, or for SnapKV the
    // observation window it keeps exactly; sinks + window alone has no window parameter (its
    // window is what the budget leaves after the sinks).
    void equalFootingDefaults() {
        int checked = 0;
        for (const auto& scheme : schemeRegistry()) {
            const SchemeInfo& info = scheme->info();
            if (info.family != "selection" && info.family != "coreset")
                continue;
            ++checked;
            const ParamSpec* sinks = info.findParam("sinks");
            QVERIFY2(sinks, info.id.c_str());
            QVERIFY2(sinks->defaultValue == 4, info.id.c_str());
            const ParamSpec* window = info.findParam("window");
            if (info.id == "select.snapkv") {
                QVERIFY(!window);
                window = info.findParam("observation");
            }
            if (info.id == "select.sinks_window")
                QVERIFY(!window);
            else {
                QVERIFY2(window, info.id.c_str());
                QVERIFY2(window->defaultValue == 32, info.id.c_str());
            }
        }
        QCOMPARE(checked, 10);
        // At defaults every one of them keeps the first 4 and at least the last 32 tokens
        // exactly, and a budget of 75 of 300 tokens is not degenerate for any.
        const int n = 300, d = 16;
        HeadInput h;
        h.keys = randomMatrix(n, d, 41);
        h.values = randomMatrix(n, d, 42);
        h.queries = {randomMatrix(n, d, 43)};
        for (const auto& scheme : schemeRegistry()) {
            const SchemeInfo& info = scheme->info();
            if (info.family != "selection" && info.family != "coreset")
                continue;
            const CompressedHead c = compress(info.id + ":keep=0.25", h);
            QVERIFY2(c.keptCount() <= 75, info.id.c_str());
            QVERIFY2(c.degenerate.empty(), (info.id + ": " + c.degenerate).c_str());
            for (const int p : {0, 1, 2, 3})
                QVERIFY2(std::binary_search(c.positions.begin(), c.positions.end(), p),
                         (info.id + " misses sink " + std::to_string(p)).c_str());
            for (int p = n - 32; p < n; ++p)
                QVERIFY2(std::binary_search(c.positions.begin(), c.positions.end(), p),
                         (info.id + " misses window token " + std::to_string(p)).c_str());
        }
    }

    // A budget that leaves a scheme nothing to choose is flagged with the reason on the head
    // and counted in the evaluation; a budget with room is not.
    void degenerateBudgetsAreFlagged_data() {
        QTest::addColumn<QString>("setting");
        QTest::addColumn<QString>("reason");
        const QString none;
        QTest::newRow("tova, cut") << "select.tova:tokens=20"
                                   << "budget 20 tokens < sinks 4 + window 32: cut to 4 + 16, "
                                      "nothing chosen";
        QTest::newRow("tova, exactly the exact part")
            << "select.tova:tokens=36"
            << "budget 36 tokens = sinks 4 + window 32: nothing left to choose";
        QTest::newRow("tova, room for one") << "select.tova:tokens=37" << none;
        QTest::newRow("tova, own exact part") << "select.tova:tokens=20,sinks=0,window=8" << none;
        QTest::newRow("everything kept") << "select.tova:tokens=100" << none;
        QTest::newRow("uniform") << "select.uniform:tokens=30"
                                 << "budget 30 tokens < sinks 4 + window 32: cut to 4 + 26, "
                                    "nothing chosen";
        QTest::newRow("snapkv, observation window ≥ budget")
            << "select.snapkv:tokens=30,sinks=0"
            << "budget 30 tokens < sinks 0 + observation window 32: cut to 0 + 30, nothing chosen";
        QTest::newRow("snapkv, room") << "select.snapkv:tokens=40" << none;
        QTest::newRow("h2o") << "select.h2o:tokens=30"
                             << "budget 30 tokens < sinks 4 + recent window 32: cut to 4 + 26, "
                                "nothing chosen";
        QTest::newRow("h2o, recent share takes it all")
            << "select.h2o:tokens=60,recent_share=1"
            << "budget 60 tokens < sinks 4 + recent window 60: cut to 4 + 56, nothing chosen";
        QTest::newRow("sinks_window is its own rule") << "select.sinks_window:tokens=20" << none;
        QTest::newRow("sinks_window, sinks take it all")
            << "select.sinks_window:tokens=3"
            << "budget 3 tokens < sinks 4: no recent window, "
               "sinks cut";
        QTest::newRow("halving") << "coreset.halving:tokens=36"
                                 << "budget 36 tokens = sinks 4 + window 32: nothing left to "
                                    "choose";
        QTest::newRow("halving, room") << "coreset.halving:tokens=50" << none;
        QTest::newRow("streaming") << "coreset.streaming:tokens=10"
                                   << "budget 10 tokens < sinks 4 + window 32: cut to 4 + 6, "
                                      "nothing chosen";
        QTest::newRow("chain keeps the selection's reason")
            << "select.key_norm:tokens=20+codec.uniform:bits=4"
            << "budget 20 tokens < sinks 4 + window 32: cut to 4 + 16, nothing chosen";
        QTest::newRow("codec alone") << "codec.uniform:bits=2" << none;
    }
    void degenerateBudgetsAreFlagged() {
        QFETCH(QString, setting);
        QFETCH(QString, reason);
        HeadInput h;
        h.keys = randomMatrix(100, 32, 51);
        h.values = randomMatrix(100, 32, 52);
        h.queries = {randomMatrix(100, 32, 53)};
        const CompressedHead c = compress(setting.toStdString(), h);
        QCOMPARE(QString::fromStdString(c.degenerate), reason);
    }

    // The evaluation counts the degenerate heads and keeps the first reason; the slope of a
    // sweep leaves such points out (they measure sinks + window, not the scheme).
    void degenerateBudgetsInResultsAndSweeps() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 100;
        o.modelQuality = false;
        const auto flagged =
            evaluate(*m_capture, nullptr, SchemeSetting::parse("select.tova:tokens=30").value(),
                     *backend, o);
        KVS_VERIFY_OK(flagged);
        QCOMPARE(flagged.value().degenerateHeads, static_cast<int>(flagged.value().heads.size()));
        QCOMPARE(flagged.value().degenerate,
                 std::string("budget 30 tokens < sinks 4 + window 32: cut to 4 + 26, nothing "
                             "chosen"));
        QCOMPARE(flagged.value().heads.front().degenerate, flagged.value().degenerate);
        const auto fine =
            evaluate(*m_capture, nullptr, SchemeSetting::parse("select.tova:tokens=60").value(),
                     *backend, o);
        KVS_VERIFY_OK(fine);
        QCOMPARE(fine.value().degenerateHeads, 0);
        QVERIFY(fine.value().degenerate.empty());
        const auto sw = runSweep(*m_capture, nullptr, SchemeSetting::parse("select.tova").value(),
                                 "tokens", {10, 30, 50, 70}, *backend, o);
        KVS_VERIFY_OK(sw);
        QCOMPARE(sw.value().points.size(), std::size_t(4));
        QVERIFY(sw.value().points[0].result.degenerateHeads > 0);
        QVERIFY(sw.value().points[1].result.degenerateHeads > 0);
        QCOMPARE(sw.value().points[2].result.degenerateHeads, 0);
        QCOMPARE(sweepSlope(sw.value(), 100, Metric::HeadOutputError).points, 2);
    }

    // Settings saved before the common defaults keep their meaning: the parameters whose
    // default changed are pinned at the earlier value, stage by stage in a chain.
    void earlierDefaultsArePinned() {
        QCOMPARE(pinEarlierDefaults("select.tova:keep=0.25", 1),
                 std::string("select.tova:keep=0.25,sinks=0,window=0"));
        QCOMPARE(pinEarlierDefaults("select.snapkv:keep=0.25,sinks=2", 1),
                 std::string("select.snapkv:keep=0.25,sinks=2"));
        QCOMPARE(pinEarlierDefaults("coreset.halving", 1),
                 std::string("coreset.halving:window=16"));
        QCOMPARE(pinEarlierDefaults("select.h2o:keep=0.5+codec.uniform:bits=4", 1),
                 std::string("select.h2o:keep=0.5,sinks=0,window=0+codec.uniform:bits=4"));
        // Unchanged: the sinks + window scheme, other families, today's generation, bad text.
        QCOMPARE(pinEarlierDefaults("select.sinks_window:keep=0.1", 1),
                 std::string("select.sinks_window:keep=0.1"));
        QCOMPARE(pinEarlierDefaults("codec.uniform:bits=2", 1),
                 std::string("codec.uniform:bits=2"));
        QCOMPARE(pinEarlierDefaults("select.tova:keep=0.25", kSchemeDefaultsGeneration),
                 std::string("select.tova:keep=0.25"));
        QCOMPARE(pinEarlierDefaults("no.such:x=1", 1), std::string("no.such:x=1"));
    }

    void slidingWindowBeyondThePromptIsRefused() {
        const auto folder = test::writeModel(m_dir, "mistral", syntheticPreset("tiny-mistral"));
        const Model model = Model::load(folder).valueOrThrow();
        const Capture cap = model.capture("a prompt longer than sixteen tokens").valueOrThrow();
        auto backend = makeCpuBackend();
        EvalOptions o;
        KVS_VERIFY_ERROR(
            evaluate(cap, &model, SchemeSetting::parse("identity").value(), *backend, o),
            "sliding-window", "window 16", "layer 0");
    }

    void evaluationErrors() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = m_capture->tokenCount();
        KVS_VERIFY_ERROR(
            evaluate(*m_capture, nullptr, SchemeSetting::parse("identity").value(), *backend, o),
            "leaves no probe tokens");
    }
};

QTEST_GUILESS_MAIN(TestSchemes)
#include "test_schemes.moc"
