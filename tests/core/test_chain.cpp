// SPDX-License-Identifier: MIT
// Composed schemes: a chain parses stage by stage and prints back; each stage sees what the ones
// before it kept, its result sits at the original positions, and the bytes are the formulas of
// the final form (kept positions, r numbers per key and the d × r factor, 4-bit value codes and
// their scales); what the form cannot hold or the order forbids is refused with the reason; a
// chain evaluates end to end, including a rewritten model's cache and its sweep.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/sweep.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QtTest>
#include <random>

using namespace kvs;
using test::compressWith;

namespace {

HeadInput randomHead(int n, int d, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    HeadInput h;
    h.keys.resize(n, d);
    h.values.resize(n, d);
    Matrix q(n, d);
    for (int i = 0; i < n; ++i)
        for (int c = 0; c < d; ++c) {
            h.keys(i, c) = normal(rng) * (1.0f + 3.0f * static_cast<float>(c % 5 == 0));
            h.values(i, c) = normal(rng);
            q(i, c) = normal(rng);
        }
    h.queries.push_back(q);
    h.seed = 3;
    return h;
}

// The head as the chain's later stages see it: the kept rows, every context query.
HeadInput keptRows(const HeadInput& h, const Matrix& keys, const Matrix& values) {
    HeadInput in = h;
    in.keys = keys;
    in.values = values;
    return in;
}

} // namespace

class TestChain : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    std::optional<Model> m_model;
    std::optional<Capture> m_capture;

private slots:
    void initTestCase() {
        const auto folder = test::writeModel(m_dir, "gqa", syntheticPreset("tiny-llama-gqa"));
        m_model.emplace(Model::load(folder).valueOrThrow());
        m_capture.emplace(m_model
                              ->capture("In the beginning God created the heaven and the earth. "
                                        "And the earth was without form, and void; and darkness "
                                        "was upon the face of the deep.")
                              .valueOrThrow());
    }

    void parsesAndPrintsBack() {
        const auto s = SchemeSetting::parse(
            " select.h2o:keep=0.25 + factor.data_aware:rank=16 + codec.uniform:value_bits=4 ");
        KVS_VERIFY_OK(s);
        QCOMPARE(s.value().id, std::string("select.h2o+factor.data_aware+codec.uniform"));
        QCOMPARE(s.value().params.at("select.h2o.keep"), 0.25);
        QCOMPARE(s.value().params.at("factor.data_aware.rank"), 16.0);
        QCOMPARE(s.value().params.at("codec.uniform.value_bits"), 4.0);
        QCOMPARE(s.value().toString(), std::string("select.h2o:keep=0.25+factor.data_aware:rank=16+"
                                                   "codec.uniform:value_bits=4"));
        // An exponent's '+' is part of the number, not a join.
        const auto bytes = SchemeSetting::parse("select.uniform:bytes=1e+06+codec.uniform:bits=2");
        KVS_VERIFY_OK(bytes);
        QCOMPARE(bytes.value().params.at("select.uniform.bytes"), 1e6);
        QCOMPARE(splitSchemeChain("a:x=1e+3+b"), (std::vector<std::string>{"a:x=1e+3", "b"}));
        // The composed scheme: prefixed specs, defaults resolved,
        // the budget of the first stage swept, weights needed when a stage needs them.
        const SchemeInfo& info = findScheme(s.value().id)->info();
        QCOMPARE(info.family, std::string("composed"));
        QVERIFY(info.findParam("factor.data_aware.rank"));
        QCOMPARE(info.findParam("select.h2o.keep")->label, std::string("Kept fraction"));
        QCOMPARE(info.findParam("select.h2o.keep")->overriddenBy,
                 (std::vector<std::string>{"select.h2o.tokens", "select.h2o.bytes"}));
        QCOMPARE(info.budgetParam, std::string("select.h2o.keep"));
        QCOMPARE(s.value().resolved().at("codec.uniform.group"), 32.0);
        QVERIFY(!info.needsWeights && !info.transformsWeights);
        QVERIFY(findScheme("select.h2o+factor.weight_svd")->info().needsWeights);
        QVERIFY(findScheme("share.pool+select.h2o")->info().transformsWeights);
        QCOMPARE(findScheme("factor.rope_pairs+codec.entropy")->info().budgetParam,
                 std::string("factor.rope_pairs.rank"));
        const auto plan = sweepPlan(s.value(), 100);
        QVERIFY(plan);
        QCOMPARE(plan->parameter, std::string("select.h2o.keep"));
        QVERIFY(std::abs(plan->values.front() - 0.02) < 1e-12);
    }

    void refusals_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("error");
        QTest::newRow("two codecs") << "codec.uniform+codec.entropy"
                                    << "two stages of one kind (codec)";
        QTest::newRow("two selections") << "select.h2o+coreset.halving"
                                        << "two stages of one kind (token selection)";
        QTest::newRow("order") << "factor.data_aware+select.h2o"
                               << "the order is sharing, selection, factorization, codec";
        QTest::newRow("sharing after a selection") << "select.h2o+share.pool:kv_heads=1"
                                                   << "comes after select.h2o";
        QTest::newRow("not a stage") << "identity+codec.uniform"
                                     << "identity (identity) is not a stage";
        QTest::newRow("empty stage") << "select.h2o+"
                                     << "stage 2 is empty";
        QTest::newRow("unknown stage") << "select.h2o+codec.zip"
                                       << "unknown scheme id 'codec.zip'";
        QTest::newRow("bad value in a stage") << "select.h2o:keep=0.25+codec.uniform:bits=5"
                                              << "bits = 5 is not supported";
        // A '+' that joins no stages is no chain: refused as an unknown id, not looked up
        // recursively (that deadlocked the chain cache once).
        QTest::newRow("plus before a digit") << "select.h2o+8"
                                             << "unknown scheme id 'select.h2o+8'";
        QTest::newRow("double plus") << "select.h2o++codec.uniform"
                                     << "stage 2 is empty";
        QTest::newRow("codec after a K=V tie")
            << "share.kv_tie+codec.uniform"
            << "codec.uniform after share.kv_tie: the rewritten model caches its keys as its "
               "values (K=V)";
        QTest::newRow("factorization after a K=V regression")
            << "share.kv_regress+select.h2o+factor.data_aware"
            << "not supported";
        QTest::newRow("quantized low-rank keys")
            << "factor.data_aware:rank=8+codec.uniform:key_bits=2"
            << "low-rank keys that are also quantized are not a form the kernels read";
    }
    void refusals() {
        QFETCH(QString, text);
        QFETCH(QString, error);
        const std::string expected = error.toStdString();
        KVS_VERIFY_ERROR(SchemeSetting::parse(text.toStdString()), expected.c_str());
    }

    // Stage by stage, by hand: H2O's choice, the data-aware fit on the kept keys (calibrated on
    // every context query), 4-bit values per token — and the bytes of that form.
    void composesStageByStage() {
        const int n = 96, d = 32, r = 8, bits = 4, group = 16;
        const HeadInput h = randomHead(n, d, 11);
        const CompressedHead chain = compressWith(
            "select.h2o:keep=0.25+factor.data_aware:rank=8+codec.uniform:bits=4,group=16", h);
        const CompressedHead selected = compressWith("select.h2o:keep=0.25", h);
        const int m = selected.keptCount();
        QCOMPARE(m, 24);
        QCOMPARE(chain.positions, selected.positions);
        QCOMPARE(chain.contextLength, n);
        const HeadInput kept = keptRows(h, selected.keys, selected.values);
        const CompressedHead factored = compressWith("factor.data_aware:rank=8", kept);
        QVERIFY(chain.keyForm == CompressedHead::KeyForm::LowRank);
        QCOMPARE(test::maxAbsDiff(chain.keys, factored.keys), 0.0);
        QCOMPARE(test::maxAbsDiff(chain.queryProjection, factored.queryProjection), 0.0);
        QVERIFY(chain.valueForm == CompressedHead::ValueForm::Quantized);
        const QuantizedMatrix values =
            quantize(selected.values, bits, group, QuantizedMatrix::Grouping::PerToken);
        QCOMPARE(chain.quantizedValues.codes, values.codes);
        QCOMPARE(chain.quantizedValues.scales, values.scales);
        // ALGORITHMS.md §0: positions 4 B each, keys r fp16 numbers per token plus the d × r
        // factor, values b bits per element plus an fp16 scale and minimum per group of G.
        const CacheBytes b = chain.bytes();
        QCOMPARE(b.keys, std::size_t(m * r * 2));
        QCOMPARE(b.values, std::size_t(m * d * bits / 8));
        QCOMPARE(b.metadata, std::size_t(m * 4 + d * r * 2 + m * (d / group) * 4));
        QCOMPARE(chain.deviceBytes().total(), b.total());
    }

    // A weighted coreset keeps its weights through the later stages; an entropy codec after a
    // key factorization codes the values only, and its rate is theirs.
    void weightsAndRatesCarryThrough() {
        const int n = 128, d = 16, r = 4;
        const HeadInput h = randomHead(n, d, 5);
        // 32 tokens of 128: a window of 8 beside the 4 sinks leaves the coreset 20 to choose (the
        // default 32 would leave it none: a degenerate budget, no weights).
        const CompressedHead coreset = compressWith("coreset.halving:keep=0.25,window=8", h);
        const CompressedHead chain =
            compressWith("coreset.halving:keep=0.25,window=8+codec.uniform:bits=8,group=16", h);
        QVERIFY(!coreset.logWeights.empty());
        QCOMPARE(chain.positions, coreset.positions);
        QCOMPARE(chain.logWeights, coreset.logWeights);
        const CompressedHead coded =
            compressWith("factor.rope_pairs:rank=4+codec.entropy:alpha=0.5", h);
        const CompressedHead pairs = compressWith("factor.rope_pairs:rank=4", h);
        QVERIFY(coded.keyForm == CompressedHead::KeyForm::LowRank);
        QCOMPARE(test::maxAbsDiff(coded.keys, pairs.keys), 0.0);
        QVERIFY(coded.entropyCoded);
        const auto& e = *coded.entropyCoded;
        QCOMPARE(e.keyStreamBytes, std::size_t(0));
        QCOMPARE(e.elements, std::size_t(n * d)); // the values
        // The codec alone on the values the chain's codec saw (fp16, as the first stage stored).
        const CompressedHead valuesAlone =
            compressWith("codec.entropy:alpha=0.5", keptRows(h, h.keys, pairs.values));
        QCOMPARE(e.valueStreamBytes, valuesAlone.entropyCoded->valueStreamBytes);
        const CacheBytes b = coded.bytes();
        QCOMPARE(b.keys, std::size_t(n * r * 2));
        QCOMPARE(b.values, e.valueStreamBytes);
        QCOMPARE(b.metadata, std::size_t(r * 2) + e.sideBytes); // r channel indices (uint16)
        QCOMPARE(e.sideBytes,
                 valuesAlone.entropyCoded->sideBytes - valuesAlone.entropyCoded->keySideBytes);
    }

    // End to end on a model: a chain of stages that lose nothing is exact; a post-hoc sharing
    // stage rewrites the model first (its R² comes back); a chain sweeps its first stage.
    void evaluatesEndToEnd() {
        auto cpu = makeCpuBackend();
        EvalOptions o;
        o.contextTokens = 90;
        const int d = m_capture->config.headDim;
        const auto eval = [&](const std::string& text) {
            return evaluate(*m_capture, &*m_model, SchemeSetting::parse(text).valueOrThrow(), *cpu,
                            o)
                .valueOrThrow();
        };
        const EvalResult lossless = eval("select.uniform:keep=1,precision=32+factor.data_aware:"
                                         "precision=32,rank=" +
                                         std::to_string(d));
        QVERIFY2(lossless.quality->klMean < 1e-6,
                 qPrintable(QString::number(lossless.quality->klMean)));
        const EvalResult lossy =
            eval("select.h2o:keep=0.25+factor.data_aware:rank=4+codec.uniform:bits=2,group=4");
        const EvalResult tokensOnly = eval("select.h2o:keep=0.25");
        QVERIFY(lossy.bytes.total() < tokensOnly.bytes.total());
        QVERIFY(lossy.quality->klMean > tokensOnly.quality->klMean);
        const EvalResult shared = eval("share.pool:kv_heads=1+select.h2o:keep=0.5");
        QVERIFY(!shared.fitR2.empty());
        QVERIFY(shared.bytes.total() < tokensOnly.bytes.total()); // one KV head of two, half kept
        const auto sweep =
            runSweep(*m_capture, &*m_model,
                     SchemeSetting::parse("select.h2o+codec.uniform:bits=4,group=4").valueOrThrow(),
                     "select.h2o.keep", {0.25, 1.0}, *cpu, o);
        KVS_VERIFY_OK(sweep);
        QCOMPARE(sweep.value().points.size(), std::size_t(2));
        QVERIFY(sweep.value().points[0].meanKeptTokens < sweep.value().points[1].meanKeptTokens);
        KVS_VERIFY_ERROR(
            evaluate(*m_capture, nullptr,
                     SchemeSetting::parse("select.h2o+factor.weight_svd").valueOrThrow(), *cpu, o),
            "needs the model's weights");
    }
};

QTEST_GUILESS_MAIN(TestChain)
#include "test_chain.moc"
