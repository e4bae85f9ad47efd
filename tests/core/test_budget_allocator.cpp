// SPDX-License-Identifier: MIT
// The budget allocator (kvs/budget_allocator.h): a hand-computed case with a known optimum (and
// one where the greedy misses it by the documented gap); random small instances against brute
// force — the greedy's Lagrangian point is optimal for its own bytes, its linear bound never
// exceeds the optimum, the exact search equals it; bad input named; end to end on a synthetic
// model: per-head evaluation with one setting everywhere is the ordinary evaluation bit for bit,
// and the allocation's summed projected error is at most the uniform setting's at its bytes.
#include "kvs/attention_backend.h"
#include "kvs/budget_allocator.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs_test.h"

#include <Eigen/SVD>
#include <QtTest>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

using namespace kvs;

namespace {

HeadOptions head(int layer, std::vector<std::pair<std::size_t, double>> points) {
    HeadOptions h;
    h.layer = layer;
    for (std::size_t i = 0; i < points.size(); ++i)
        h.options.push_back({static_cast<double>(i), points[i].first, points[i].second});
    return h;
}

// The least summed error within `budget`, by enumerating every allocation (+∞ when none fits).
double bruteForce(const std::vector<HeadOptions>& heads, std::size_t budget) {
    double best = std::numeric_limits<double>::infinity();
    std::vector<std::size_t> at(heads.size(), 0);
    for (;;) {
        std::size_t bytes = 0;
        double error = 0;
        for (std::size_t h = 0; h < heads.size(); ++h) {
            bytes += heads[h].options[at[h]].bytes;
            error += heads[h].options[at[h]].error;
        }
        if (bytes <= budget)
            best = std::min(best, error);
        std::size_t h = 0;
        while (h < heads.size() && ++at[h] == heads[h].options.size())
            at[h++] = 0;
        if (h == heads.size())
            return best;
    }
}

SchemeSetting setting(const std::string& text) {
    auto s = SchemeSetting::parse(text);
    if (!s.ok())
        throw std::runtime_error(s.message());
    return s.value();
}

} // namespace

class TestBudgetAllocator : public QObject {
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

    // Two heads, budget 60 bytes. Head 0's (30, 30) lies above its hull (10,100)–(20,40)–(40,5);
    // the greedy takes 6/B (head 0), 3/B (head 1), 1.75/B (head 0) and stops with 0 bytes left:
    // head 0 at 40 B, head 1 at 20 B, error 5 + 20 = 25, which enumeration confirms is the best of
    // the 16 allocations (the next best within 60 B: 30 + 18 = 48).
    void handComputedOptimum() {
        const std::vector<HeadOptions> heads = {head(0, {{10, 100}, {20, 40}, {30, 30}, {40, 5}}),
                                                head(1, {{10, 50}, {20, 20}, {30, 18}, {40, 17}})};
        const auto g = allocateGreedy(heads, 60);
        KVS_VERIFY_OK(g);
        QCOMPARE(g.value().choice, (std::vector<std::size_t>{3, 1}));
        QCOMPARE(g.value().error, 25.0);
        QCOMPARE(g.value().bytes, std::size_t(60));
        QCOMPARE(g.value().lowerBound, 25.0);
        QVERIFY(g.value().exact);
        QCOMPARE(bruteForce(heads, 60), 25.0);
        const auto a = allocateBudget(heads, 60);
        KVS_VERIFY_OK(a);
        QCOMPARE(a.value().choice, (std::vector<std::size_t>{3, 1}));
    }

    // Where the greedy misses: A (0 B, 10) → (6 B, 0) saves 10/6 per byte, B and C (0, 6) →
    // (5, 0) save 6/5. Budget 10: the greedy buys A (6 B), then B's 5 B do not fit: error 12, with
    // the linear bound 12 − 6·4/5 = 7.2. The optimum buys B and C: error 10.
    void greedyGapCase() {
        const std::vector<HeadOptions> heads = {
            head(0, {{0, 10}, {6, 0}}), head(1, {{0, 6}, {5, 0}}), head(2, {{0, 6}, {5, 0}})};
        const auto g = allocateGreedy(heads, 10);
        KVS_VERIFY_OK(g);
        QCOMPARE(g.value().error, 12.0);
        QCOMPARE(g.value().choice, (std::vector<std::size_t>{1, 0, 0}));
        QVERIFY(std::abs(g.value().lowerBound - 7.2) < 1e-12);
        QVERIFY(!g.value().exact);
        QCOMPARE(g.value().lagrangianBytes, std::size_t(6));
        QCOMPARE(g.value().lagrangianError, 12.0);
        const auto a = allocateBudget(heads, 10);
        KVS_VERIFY_OK(a);
        QCOMPARE(a.value().error, 10.0);
        QCOMPARE(a.value().choice, (std::vector<std::size_t>{0, 1, 1}));
        QCOMPARE(a.value().method, std::string("exact"));
        // With a front capped below what it needs, the greedy's answer comes back.
        const auto capped = allocateBudget(heads, 10, 1);
        KVS_VERIFY_OK(capped);
        QCOMPARE(capped.value().method, std::string("greedy"));
        QCOMPARE(capped.value().error, 12.0);
    }

    // Random instances (integer errors, so sums are exact): convex and not.
    void randomInstancesAgainstBruteForce() {
        std::mt19937 rng(7);
        for (int trial = 0; trial < 400; ++trial) {
            const bool convex = trial % 2 == 0;
            const int nHeads = 1 + static_cast<int>(rng() % 4);
            std::vector<HeadOptions> heads;
            std::size_t least = 0, most = 0;
            for (int h = 0; h < nHeads; ++h) {
                const int nOptions = 1 + static_cast<int>(rng() % 4);
                HeadOptions ho;
                ho.layer = h;
                std::size_t bytes = rng() % 8;
                double error = 40.0 + static_cast<double>(rng() % 40);
                double saved = 12.0 + static_cast<double>(rng() % 8); // per byte, falling
                std::size_t lo = bytes, hi = bytes;
                for (int i = 0; i < nOptions; ++i) {
                    ho.options.push_back({static_cast<double>(i), bytes, error});
                    lo = std::min(lo, bytes);
                    hi = std::max(hi, bytes);
                    if (convex) {
                        const std::size_t step = 1 + rng() % 5;
                        saved = std::floor(saved * 0.6);
                        bytes += step;
                        error = std::max(0.0, error - saved * static_cast<double>(step));
                    } else {
                        bytes = rng() % 20;
                        error = static_cast<double>(rng() % 60);
                    }
                }
                least += lo;
                most += hi;
                heads.push_back(std::move(ho));
            }
            const std::size_t budget = least + rng() % (most - least + 1);
            const double optimum = bruteForce(heads, budget);
            const auto g = allocateGreedy(heads, budget);
            KVS_VERIFY_OK(g);
            const BudgetAllocation& ga = g.value();
            const QByteArray where = QByteArray::number(trial);
            QVERIFY2(ga.bytes <= budget, where);
            QVERIFY2(ga.error >= optimum, where);
            QVERIFY2(ga.lowerBound <= optimum + 1e-9, where);
            QVERIFY2(ga.error <= ga.lagrangianError, where);
            // The Lagrangian point is optimal for its own bytes, convex or not.
            QVERIFY2(ga.lagrangianBytes <= budget, where);
            QCOMPARE(bruteForce(heads, ga.lagrangianBytes), ga.lagrangianError);
            if (ga.exact)
                QCOMPARE(ga.error, optimum);
            // On convex curves, a budget that is a Lagrangian point's bytes is met exactly.
            if (convex) {
                const auto again = allocateGreedy(heads, ga.lagrangianBytes);
                KVS_VERIFY_OK(again);
                QCOMPARE(again.value().error, bruteForce(heads, ga.lagrangianBytes));
            }
            const auto a = allocateBudget(heads, budget);
            KVS_VERIFY_OK(a);
            QCOMPARE(a.value().error, optimum);
            QVERIFY2(a.value().bytes <= budget, where);
            QVERIFY2(a.value().exact, where);
        }
    }

    void badInputIsNamed() {
        const double nan = std::numeric_limits<double>::quiet_NaN();
        std::vector<HeadOptions> heads = {head(0, {{1, 2}, {2, 1}}), head(1, {{1, 2}, {2, nan}})};
        heads[1].kvHead = 3;
        KVS_VERIFY_ERROR(allocateGreedy(heads, 10), "layer 1, KV head 3", "nan", "not a finite");
        KVS_VERIFY_ERROR(allocateBudget(heads, 10), "layer 1, KV head 3");
        heads[1].options[1].error = std::numeric_limits<double>::infinity();
        KVS_VERIFY_ERROR(allocateBudget(heads, 10), "layer 1, KV head 3", "inf");
        heads[1].options[1].error = 0.5;
        const auto tooSmall = allocateBudget(heads, 1);
        KVS_VERIFY_ERROR(tooSmall, "budget of 1 bytes", "cheapest allocation, 2 bytes");
        KVS_COMPARE_ENUM(tooSmall.error().code(), ErrorCode::InvalidArgument);
        heads[0].options.clear();
        KVS_VERIFY_ERROR(allocateGreedy(heads, 10), "layer 0, KV head 0", "no options");
    }

    // One setting for every head through EvalOptions::headSettings is the ordinary evaluation,
    // bit for bit, quality included.
    void perHeadEvaluationWithOneSettingIsTheOrdinaryOne() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.projectedError = true;
        const SchemeSetting s = setting("select.h2o:keep=0.25");
        const auto plain = evaluate(*m_capture, &*m_model, s, *backend, o);
        KVS_VERIFY_OK(plain);
        const int heads = m_capture->config.layers * m_capture->config.kvHeads;
        o.headSettings.assign(static_cast<std::size_t>(heads), s);
        const auto per = evaluate(*m_capture, &*m_model, s, *backend, o);
        KVS_VERIFY_OK(per);
        const EvalResult &a = plain.value(), &b = per.value();
        QVERIFY(a.quality && b.quality);
        QCOMPARE(b.quality->klMean, a.quality->klMean);
        QCOMPARE(b.outputError, a.outputError);
        QCOMPARE(b.bytes.total(), a.bytes.total());
        QCOMPARE(b.heads.size(), a.heads.size());
        for (std::size_t i = 0; i < a.heads.size(); ++i) {
            QCOMPARE(b.heads[i].outputSquares, a.heads[i].outputSquares);
            QCOMPARE(b.heads[i].projectedSquares, a.heads[i].projectedSquares);
            QCOMPARE(b.heads[i].keptTokens, a.heads[i].keptTokens);
            QVERIFY(a.heads[i].projectedSquares > 0);
        }
        // The projection reads the group's own rows of W_o: per KV head, the projected squares
        // lie between the unprojected ones times the least and the largest squared singular
        // value of those d × D blocks.
        const int d = m_capture->config.headDim, g = m_capture->config.groupSize();
        for (const HeadMetrics& h : a.heads) {
            const Matrix wo = m_model->attentionProjections(h.layer).wo;
            double lo = std::numeric_limits<double>::infinity(), hi = 0;
            for (int q = h.kvHead * g; q < (h.kvHead + 1) * g; ++q) {
                const Eigen::MatrixXd block =
                    wo.middleRows(Eigen::Index(q) * d, d).cast<double>().transpose();
                const Eigen::VectorXd sv =
                    Eigen::JacobiSVD<Eigen::MatrixXd>(block).singularValues();
                lo = std::min(lo, sv.minCoeff() * sv.minCoeff());
                hi = std::max(hi, sv.maxCoeff() * sv.maxCoeff());
            }
            const double plainSquares = h.outputSquares.first;
            QVERIFY(h.projectedSquares >= lo * plainSquares * (1 - 1e-9));
            QVERIFY(h.projectedSquares <= hi * plainSquares * (1 + 1e-9));
        }
        // Refusals: the wrong count, streaming, a scheme that rewrites the weights.
        EvalOptions wrong = o;
        wrong.headSettings.pop_back();
        // A named string: the macro reads the text after the statement that made it (a
        // temporary's c_str() was a stack-use-after-scope under AddressSanitizer).
        const std::string headCount = std::to_string(heads);
        KVS_VERIFY_ERROR(evaluate(*m_capture, &*m_model, s, *backend, wrong), "per-head",
                         headCount.c_str());
        EvalOptions streaming = o;
        streaming.mode = EvalMode::Streaming;
        streaming.headSettings.assign(static_cast<std::size_t>(heads),
                                      setting("coreset.streaming"));
        KVS_VERIFY_ERROR(
            evaluate(*m_capture, &*m_model, setting("coreset.streaming"), *backend, streaming),
            "post-prefill");
        EvalOptions rewrite = o;
        rewrite.headSettings.assign(static_cast<std::size_t>(heads), setting("share.pool"));
        KVS_VERIFY_ERROR(evaluate(*m_capture, &*m_model, s, *backend, rewrite), "share.pool",
                         "weights");
    }

    // The allocation at each uniform setting's bytes: within the bytes, its measured summed
    // projected error equals what the allocator computed and is at most the uniform one's.
    void allocationBeatsUniformAtEqualBytes() {
        auto backend = makeCpuBackend();
        EvalOptions o;
        o.modelQuality = false;
        o.projectedError = true;
        const auto reference = computeExactReference(*m_capture, &*m_model, *backend, o);
        KVS_VERIFY_OK(reference);
        const SchemeSetting base = setting("select.h2o");
        const auto c = measureBudgetCandidates(*m_capture, &*m_model, base, "keep",
                                               {0.125, 0.25, 0.5}, *backend, o, &reference.value());
        KVS_VERIFY_OK(c);
        const BudgetCandidates& cand = c.value();
        QVERIFY(cand.projected);
        QCOMPARE(cand.values.size(), std::size_t(3));
        for (std::size_t v = 0; v < cand.values.size(); ++v) {
            SchemeSetting uniform = base;
            uniform.params["keep"] = cand.values[v];
            const auto u =
                evaluate(*m_capture, &*m_model, uniform, *backend, o, &reference.value());
            KVS_VERIFY_OK(u);
            QCOMPARE(u.value().bytes.total(), cand.uniformBytes[v]);
            const auto a = allocateBudget(cand.heads, cand.uniformBytes[v]);
            KVS_VERIFY_OK(a);
            EvalOptions plan = o;
            plan.headSettings = allocationSettings(cand, a.value());
            const auto p =
                evaluate(*m_capture, &*m_model, base, *backend, plan, &reference.value());
            KVS_VERIFY_OK(p);
            QVERIFY(p.value().bytes.total() <= cand.uniformBytes[v]);
            QCOMPARE(p.value().bytes.total(), a.value().bytes);
            const double measured = summedHeadError(p.value(), true);
            QCOMPARE(measured, a.value().error);
            QVERIFY(measured <= summedHeadError(u.value(), true));
        }
        // A capture without its model: the unprojected squares, and said so.
        const auto bare =
            measureBudgetCandidates(*m_capture, nullptr, base, "keep", {0.25}, *backend, o);
        KVS_VERIFY_OK(bare);
        QVERIFY(!bare.value().projected);
        SchemeSetting quarter = base;
        quarter.params["keep"] = 0.25;
        const auto q = evaluate(*m_capture, nullptr, quarter, *backend, o);
        KVS_VERIFY_OK(q);
        for (std::size_t h = 0; h < q.value().heads.size(); ++h)
            QCOMPARE(bare.value().heads[h].options.front().error,
                     q.value().heads[h].outputSquares.first);
        KVS_VERIFY_ERROR(measureBudgetCandidates(*m_capture, &*m_model, setting("share.pool"),
                                                 "kv_heads", {1}, *backend, o),
                         "rewrites the model's weights");
    }
};

QTEST_GUILESS_MAIN(TestBudgetAllocator)
#include "test_budget_allocator.moc"
