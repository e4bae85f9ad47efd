// SPDX-License-Identifier: MIT
// Streaming evaluation (EvalMode::Streaming): with a budget that holds the whole prompt it is
// exact attention; on a hand-built capture sinks + window streams a different cache from the
// post-prefill one, with numbers computed here by hand; the online merge-and-reduce keeps its
// budget and its weights; schemes that need the future are refused with their reason.
#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs_test.h"

#include <QtTest>
#include <cmath>
#include <random>

using namespace kvs;

namespace {

SchemeSetting setting(const std::string& text) {
    auto s = SchemeSetting::parse(text);
    if (!s.ok())
        throw std::runtime_error(s.message());
    return s.value();
}

// One layer, one head, d = 2, learned positions: keys and queries zero, so every query attends
// uniformly to what it sees, and value i = (i, 1), so an output is the mean position it sees.
Capture uniformCapture(int n) {
    Capture c;
    c.config.layers = 1;
    c.config.heads = 1;
    c.config.kvHeads = 1;
    c.config.headDim = 2;
    c.config.width = 2;
    c.config.vocab = 4;
    c.config.maxPositions = 64;
    c.config.positions = PositionKind::Learned;
    c.tokens.assign(static_cast<std::size_t>(n), 0);
    c.modelName = "hand-built";
    KvHeadCapture head;
    head.keys = Matrix::Zero(n, 2);
    head.values.resize(n, 2);
    for (int i = 0; i < n; ++i)
        head.values.row(i) << static_cast<float>(i), 1.0f;
    head.queries.push_back(Matrix::Zero(n, 2));
    LayerCapture layer;
    layer.kvHeads.push_back(std::move(head));
    c.layers.push_back(std::move(layer));
    return c;
}

// The head output error of attending uniformly to `seen(t)` instead of 0..t, over probe t.
template <class Seen> double uniformOutputError(int ctx, int n, Seen seen) {
    double diff2 = 0, norm2 = 0;
    for (int t = ctx; t < n; ++t) {
        const double exact = t / 2.0; // mean of 0..t; the second coordinate is 1 on both sides
        const std::vector<int> kept = seen(t);
        double sum = 0;
        for (int p : kept)
            sum += p;
        const double compressed = sum / static_cast<double>(kept.size());
        diff2 += (compressed - exact) * (compressed - exact);
        norm2 += exact * exact + 1.0;
    }
    return std::sqrt(diff2 / norm2);
}

HeadInput randomStream(int n, int d, std::uint64_t seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    HeadInput h;
    h.keys.resize(n, d);
    h.values.resize(n, d);
    Matrix q(n, d);
    for (int i = 0; i < n; ++i)
        for (int c = 0; c < d; ++c) {
            h.keys(i, c) = normal(rng);
            h.values(i, c) = normal(rng);
            q(i, c) = normal(rng);
        }
    h.queries.push_back(q);
    return h;
}

} // namespace

class TestStreaming : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    std::optional<Model> m_model;
    std::optional<Capture> m_capture;

    Result<EvalResult> run(const std::string& text, EvalMode mode, const Capture& capture,
                           const Model* model, int context = 0, bool keep = false) {
        EvalOptions o;
        o.mode = mode;
        o.contextTokens = context;
        o.keepCompressed = keep;
        const auto backend = makeCpuBackend();
        return evaluate(capture, model, setting(text), *backend, o);
    }

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

    // A budget that holds the whole prompt never evicts: streaming is exact attention, for
    // every scheme with an online form (the model's decode included: KL ≈ 0).
    void fullBudgetIsExact_data() {
        QTest::addColumn<QString>("scheme");
        for (const char* s :
             {"identity", "select.sinks_window:tokens=4096,precision=32",
              "select.h2o:tokens=4096,precision=32", "select.tova:tokens=4096,precision=32",
              "select.key_norm:tokens=4096,precision=32", "select.uniform:tokens=4096,precision=32",
              "coreset.streaming:tokens=4096,buffer=1024,precision=32"})
            QTest::newRow(s) << QString(s);
    }
    void fullBudgetIsExact() {
        QFETCH(QString, scheme);
        const auto r = run(scheme.toStdString(), EvalMode::Streaming, *m_capture, &*m_model);
        KVS_VERIFY_OK(r);
        const EvalResult& e = r.value();
        QVERIFY(e.mode == EvalMode::Streaming);
        QVERIFY(e.quality.has_value());
        QVERIFY2(e.quality->klMean < 1e-7, qPrintable(QString::number(e.quality->klMean)));
        QCOMPARE(e.quality->top1Agreement, 1.0);
        QVERIFY2(e.outputError < 1e-5, qPrintable(QString::number(e.outputError)));
        QVERIFY(e.massLost < 1e-6);
        QVERIFY(e.totalVariation < 1e-5);
        QCOMPARE(e.quality->positions, e.probeTokens);
    }

    // Sinks s = 1 and window w = 2 (a budget of 3) over 12 tokens, the first 8 the context. Post-
    // prefill, probe t sees {0, 6, 7} and the probe tokens 8..t; streaming, {0, t−2, t−1} and t.
    void sinksWindowStreamsByHand() {
        const Capture c = uniformCapture(12);
        const std::string s = "select.sinks_window:sinks=1,tokens=3,precision=32";
        const auto post = run(s, EvalMode::PostPrefill, c, nullptr, 8, true);
        const auto stream = run(s, EvalMode::Streaming, c, nullptr, 8, true);
        KVS_VERIFY_OK(post);
        KVS_VERIFY_OK(stream);
        const double postError = uniformOutputError(8, 12, [](int t) {
            std::vector<int> seen = {0, 6, 7};
            for (int p = 8; p <= t; ++p)
                seen.push_back(p);
            return seen;
        });
        const double streamError = uniformOutputError(8, 12, [](int t) {
            return std::vector<int>{0, t - 2, t - 1, t};
        });
        // The two caches differ visibly (0.3375 against 0.3200): far above float tolerance.
        QVERIFY(std::abs(postError - streamError) > 0.01);
        QVERIFY2(std::abs(post.value().outputError - postError) < 1e-6,
                 qPrintable(QString("%1 vs %2").arg(post.value().outputError).arg(postError)));
        QVERIFY2(std::abs(stream.value().outputError - streamError) < 1e-6,
                 qPrintable(QString("%1 vs %2").arg(stream.value().outputError).arg(streamError)));
        // Mass lost: post-prefill keeps 3 of the 8 context tokens for every row; streaming keeps
        // 3 of the t tokens before probe t.
        QVERIFY(std::abs(post.value().massLost - 5.0 / 8.0) < 1e-6);
        const double streamLost =
            ((1 - 3.0 / 8) + (1 - 3.0 / 9) + (1 - 3.0 / 10) + (1 - 3.0 / 11)) / 4;
        QVERIFY(std::abs(stream.value().massLost - streamLost) < 1e-6);
        // What the last probe token saw.
        QCOMPARE(post.value().compressed[0][0].positions, (std::vector<std::int32_t>{0, 6, 7}));
        QCOMPARE(stream.value().compressed[0][0].positions, (std::vector<std::int32_t>{0, 9, 10}));
        QCOMPARE(stream.value().compressed[0][0].contextLength, 11);
        // One budget in both modes: the same bytes.
        QCOMPARE(stream.value().bytes.total(), post.value().bytes.total());
    }

    // The online state itself, token by token.
    void sinksWindowStateByHand() {
        const HeadInput stream = randomStream(10, 4, 1);
        const Scheme* scheme = findScheme("select.sinks_window");
        auto state = scheme->startStream(
            stream, StreamStart{8}, setting("select.sinks_window:sinks=2,keep=0.5").resolved());
        for (int t = 0; t < 10; ++t)
            state->append(stream, t);
        auto kept = state->summary().positions;
        std::sort(kept.begin(), kept.end());
        // keep 0.5 of a basis of 8: 4 tokens, 2 sinks and the last 2.
        QCOMPARE(kept, (std::vector<std::int32_t>{0, 1, 8, 9}));
    }

    // Merge-and-reduce online: a fixed buffer, never over budget, weights that add up to the
    // tokens streamed while no level overflows, the same summary for the same seed.
    void mergeAndReduceOnline() {
        const int n = 300;
        const HeadInput stream = randomStream(n, 8, 2);
        const Scheme* scheme = findScheme("coreset.streaming");
        QVERIFY(scheme->info().canStream);
        const ParamValues p =
            setting("coreset.streaming:tokens=40,sinks=0,window=0,buffer=8").resolved();
        auto a = scheme->startStream(stream, StreamStart{100}, p);
        auto b = scheme->startStream(stream, StreamStart{100}, p);
        for (int t = 0; t < n; ++t) {
            a->append(stream, t);
            b->append(stream, t);
            const StreamSummary s = a->summary();
            QVERIFY2(s.positions.size() <= 40u, qPrintable(QString::number(s.positions.size())));
            // Four levels of 8 and the buffer hold 8·(1 + 2 + 4 + 8) + 7 tokens exactly.
            if (t + 1 <= 127) {
                double total = 0;
                for (std::size_t i = 0; i < s.positions.size(); ++i)
                    total += s.logWeights.empty() ? 1.0 : std::exp(double(s.logWeights[i]));
                QVERIFY2(std::abs(total - (t + 1)) < 1e-3 * (t + 1),
                         qPrintable(QString("%1 after %2").arg(total).arg(t + 1)));
            }
        }
        QCOMPARE(a->summary().positions, b->summary().positions);
        // A clone continues exactly as the original.
        auto c = a->clone();
        QCOMPARE(c->summary().positions, a->summary().positions);
    }

    // Schemes that read the future, or the whole context at once, are refused with the reason.
    void excludedSchemesAreRefused_data() {
        QTest::addColumn<QString>("scheme");
        QTest::addColumn<QString>("reason");
        QTest::newRow("snapkv") << "select.snapkv"
                                << "in the future";
        QTest::newRow("expected") << "select.expected_attention"
                                  << "in the future";
        QTest::newRow("halving") << "coreset.halving"
                                 << "coreset.streaming";
        QTest::newRow("norm_importance") << "select.norm_importance"
                                         << "whole context";
        QTest::newRow("codec") << "codec.uniform"
                               << "grows with the stream";
        QTest::newRow("factored") << "factor.data_aware"
                                  << "grows with the stream";
        QTest::newRow("sharing") << "share.pool:kv_heads=1"
                                 << "rewrites the model's weights";
        QTest::newRow("chain") << "select.h2o+codec.uniform"
                               << "chains do not stream";
        QTest::newRow("query kernel") << "coreset.streaming:kernel=8"
                                      << "kernel=0";
    }
    void excludedSchemesAreRefused() {
        QFETCH(QString, scheme);
        QFETCH(QString, reason);
        const auto r = run(scheme.toStdString(), EvalMode::Streaming, *m_capture, &*m_model);
        const std::string id = setting(scheme.toStdString()).id;
        const std::string why = reason.toStdString();
        KVS_VERIFY_ERROR(r, id.c_str(), "cannot stream", why.c_str());
        KVS_COMPARE_ENUM(r.error().code(), ErrorCode::InvalidArgument);
        if (scheme != "coreset.streaming:kernel=8")
            QVERIFY(!findScheme(id)->info().canStream);
    }

    void streamableSchemesSayTheyStream() {
        for (const char* id : {"identity", "select.sinks_window", "select.h2o", "select.tova",
                               "select.key_norm", "select.uniform", "coreset.streaming"}) {
            QVERIFY2(findScheme(id)->info().canStream, id);
            QVERIFY(findScheme(id)->info().noStreamReason.empty());
        }
    }

    // At a real budget streaming loses something, stays finite, and keeps its budget: the
    // largest summary any probe row saw holds at most keep · n_ctx tokens.
    void smallBudgetStaysWithinBudget_data() {
        QTest::addColumn<QString>("scheme");
        QTest::addColumn<double>("keep");
        for (const char* s : {"select.sinks_window", "select.h2o", "select.tova", "select.key_norm",
                              "select.uniform"})
            QTest::newRow(s) << QString(s) + ":keep=0.25" << 0.25;
        QTest::newRow("coreset.streaming") << "coreset.streaming:keep=0.5" << 0.5;
    }
    void smallBudgetStaysWithinBudget() {
        QFETCH(QString, scheme);
        QFETCH(double, keep);
        const auto stream = run(scheme.toStdString(), EvalMode::Streaming, *m_capture, &*m_model);
        const auto post = run(scheme.toStdString(), EvalMode::PostPrefill, *m_capture, &*m_model);
        KVS_VERIFY_OK(stream);
        KVS_VERIFY_OK(post);
        QVERIFY(stream.value().quality->klMean > 0);
        QVERIFY(std::isfinite(stream.value().quality->klMean));
        const double budget = std::round(keep * stream.value().contextTokens);
        for (const HeadMetrics& h : stream.value().heads)
            QVERIFY2(h.keptTokens <= budget, qPrintable(QString::number(h.keptTokens)));
    }

    // A stream's budget fixed at the start can leave the scheme nothing to choose, as after the
    // prefill: the evaluation says so on every head with the reason; a budget with room does not.
    void degenerateBudgetsAreFlagged_data() {
        QTest::addColumn<QString>("scheme");
        QTest::addColumn<QString>("reason");
        QTest::newRow("tova") << "select.tova:tokens=20"
                              << "budget 20 tokens < sinks 4 + window 32: cut to 4 + 16, nothing "
                                 "chosen";
        QTest::newRow("uniform, exactly the exact part")
            << "select.uniform:tokens=36"
            << "budget 36 tokens = sinks 4 + window 32: nothing left to choose";
        QTest::newRow("h2o") << "select.h2o:tokens=30"
                             << "budget 30 tokens < sinks 4 + recent window 32: cut to 4 + 26, "
                                "nothing chosen";
        QTest::newRow("merge-and-reduce") << "coreset.streaming:tokens=30"
                                          << "budget 30 tokens < sinks 4 + window 32: cut to 4 + "
                                             "26, nothing chosen";
        QTest::newRow("sinks_window, sinks take it all")
            << "select.sinks_window:tokens=3"
            << "budget 3 tokens < sinks 4: no recent window, "
               "sinks cut";
        QTest::newRow("sinks_window, its own rule") << "select.sinks_window:tokens=20" << QString();
        QTest::newRow("key norm, room") << "select.key_norm:tokens=40" << QString();
    }
    void degenerateBudgetsAreFlagged() {
        QFETCH(QString, scheme);
        QFETCH(QString, reason);
        const auto r = run(scheme.toStdString(), EvalMode::Streaming, *m_capture, nullptr);
        KVS_VERIFY_OK(r);
        const EvalResult& e = r.value();
        QCOMPARE(QString::fromStdString(e.degenerate), reason);
        QCOMPARE(e.degenerateHeads, reason.isEmpty() ? 0 : static_cast<int>(e.heads.size()));
    }
};

QTEST_GUILESS_MAIN(TestStreaming)
#include "test_streaming.moc"
