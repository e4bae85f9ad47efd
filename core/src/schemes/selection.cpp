// SPDX-License-Identifier: MIT
// Token selection (ALGORITHMS.md §1d): the identity, uniform and norm-importance sampling with
// their weights, and the eviction baselines users compare with.
#include "registry_parts.h"
#include "scheme_util.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

namespace kvs::schemes {
namespace {

// Budget and sinks (the common default, scheme_util.h), then the scheme's own parameters, then the
// precision: the parameters of schemes whose own rule sets their recent tokens (no separate
// window).
std::vector<ParamSpec> withSinks(std::vector<ParamSpec> specific, double keep) {
    std::vector<ParamSpec> p = budgetParams(keep);
    p.push_back(sinksParam());
    p.insert(p.end(), specific.begin(), specific.end());
    p.push_back(precisionParam(16));
    return p;
}

// withSinks with the common exact recent window first and, for sampling schemes, a seed last.
std::vector<ParamSpec> withCommon(std::vector<ParamSpec> specific, double keep, bool seeded) {
    specific.insert(specific.begin(), windowParam());
    if (seeded)
        specific.push_back(seedParam());
    return withSinks(std::move(specific), keep);
}

struct Budgeted {
    ExactSplit split;
    Precision precision;
};

Budgeted budgeted(const HeadInput& h, const ParamValues& p, bool weighted) {
    const Precision precision = precisionOf(p);
    const int m = tokenBudget(p, h.tokens(), perTokenBytes(h, precision, weighted));
    return {splitExact(h.tokens(), m, static_cast<int>(param(p, "sinks")),
                       static_cast<int>(param(p, "window"))),
            precision};
}

CompressedHead identity(const HeadInput& h, const ParamValues& p) {
    return allTokens(h, precisionOf(p));
}

CompressedHead uniform(const HeadInput& h, const ParamValues& p) {
    const auto [split, precision] = budgeted(h, p, true);
    auto rng = rngFor(h, p);
    std::vector<std::int32_t> pool = split.middle;
    std::shuffle(pool.begin(), pool.end(), rng);
    pool.resize(static_cast<std::size_t>(split.middleBudget));
    // Each kept token stands for middle/m of them: weight n/m as a log-bias.
    const float lw = split.middleBudget > 0
                         ? static_cast<float>(std::log(static_cast<double>(split.middle.size()) /
                                                       split.middleBudget))
                         : 0.0f;
    return assemble(h, split, pool, std::vector<float>(pool.size(), lw), precision);
}

CompressedHead normImportance(const HeadInput& h, const ParamValues& p) {
    const auto [split, precision] = budgeted(h, p, true);
    const int m = split.middleBudget;
    if (m <= 0 || split.middle.empty())
        return assemble(h, split, {}, {}, precision);
    double rho = param(p, "rho");
    if (rho <= 0) { // the largest query norm times the attention scale
        double qmax = 0;
        for (const Matrix& q : h.queries)
            qmax = std::max(qmax, static_cast<double>(q.rowwise().norm().maxCoeff()));
        rho = qmax * h.attentionScale();
    }
    std::vector<double> logit(split.middle.size());
    for (std::size_t i = 0; i < split.middle.size(); ++i)
        logit[i] = rho * h.keys.row(split.middle[i]).norm();
    const double mx = *std::max_element(logit.begin(), logit.end());
    std::vector<double> prob(logit.size());
    double z = 0;
    for (std::size_t i = 0; i < prob.size(); ++i)
        z += (prob[i] = std::exp(logit[i] - mx));
    for (double& q : prob)
        q /= z;
    // m draws with replacement; a token drawn c times carries weight c / (m · prob).
    auto rng = rngFor(h, p);
    std::discrete_distribution<std::size_t> draw(prob.begin(), prob.end());
    std::map<std::size_t, int> counts;
    for (int t = 0; t < m; ++t)
        ++counts[draw(rng)];
    std::vector<std::int32_t> chosen;
    std::vector<float> lw;
    for (const auto& [i, c] : counts) {
        chosen.push_back(split.middle[i]);
        lw.push_back(static_cast<float>(std::log(c / (m * prob[i]))));
    }
    return assemble(h, split, chosen, lw, precision);
}

CompressedHead sinksWindow(const HeadInput& h, const ParamValues& p) {
    const Precision precision = precisionOf(p);
    const int m = tokenBudget(p, h.tokens(), perTokenBytes(h, precision, false));
    const int sinks = static_cast<int>(param(p, "sinks"));
    // The window is whatever the budget leaves after the sinks: that is the method, so it is
    // degenerate only when the sinks take the whole budget (no recent window at all).
    ExactSplit split = splitExact(h.tokens(), m, sinks, h.tokens());
    split.degenerate.clear();
    if (m < h.tokens() && sinks > 0 && m <= sinks)
        split.degenerate = "budget " + std::to_string(std::max(0, m)) + " tokens " +
                           (m < sinks ? "<" : "=") + " sinks " + std::to_string(sinks) +
                           ": no recent window" + (m < sinks ? ", sinks cut" : "");
    return assemble(h, split, {}, {}, precision);
}

CompressedHead heavyHitters(const HeadInput& h, const ParamValues& p) {
    const Precision precision = precisionOf(p);
    const int n = h.tokens();
    const int m = tokenBudget(p, n, perTokenBytes(h, precision, false));
    // H2O splits the budget between the recent window and the heavy hitters; the recent part is
    // never shorter than the common exact window (equal footing).
    const int recent = std::max(static_cast<int>(param(p, "window")),
                                static_cast<int>(std::round(param(p, "recent_share") * m)));
    ExactSplit split =
        splitExact(n, m, static_cast<int>(param(p, "sinks")), recent, "recent window");
    const auto score = receivedAttention(h, 0);
    return assemble(h, split, topByScore(split.middle, score, split.middleBudget), {}, precision);
}

CompressedHead currentQuery(const HeadInput& h, const ParamValues& p) {
    const auto [split, precision] = budgeted(h, p, false);
    // TOVA after prefill: the attention of the latest context query, summed over the group.
    const auto score = receivedAttention(h, h.tokens() - 1);
    return assemble(h, split, topByScore(split.middle, score, split.middleBudget), {}, precision);
}

CompressedHead observationWindow(const HeadInput& h, const ParamValues& p) {
    const Precision precision = precisionOf(p);
    const int n = h.tokens();
    const int m = tokenBudget(p, n, perTokenBytes(h, precision, false));
    const int obs = std::min(static_cast<int>(param(p, "observation")), n);
    // The observation window itself is kept; the prefix is chosen by its pooled attention.
    ExactSplit split =
        splitExact(n, m, static_cast<int>(param(p, "sinks")), obs, "observation window");
    const auto attn = receivedAttention(h, n - obs);
    const int k = static_cast<int>(param(p, "kernel")) / 2;
    std::vector<double> pooled(attn.size(), 0.0);
    for (int i = 0; i < n; ++i)
        for (int j = std::max(0, i - k); j <= std::min(n - 1, i + k); ++j)
            pooled[static_cast<std::size_t>(i)] =
                std::max(pooled[static_cast<std::size_t>(i)], attn[static_cast<std::size_t>(j)]);
    return assemble(h, split, topByScore(split.middle, pooled, split.middleBudget), {}, precision);
}

CompressedHead keyNorm(const HeadInput& h, const ParamValues& p) {
    const auto [split, precision] = budgeted(h, p, false);
    std::vector<double> score(static_cast<std::size_t>(h.tokens()));
    for (int i = 0; i < h.tokens(); ++i)
        score[static_cast<std::size_t>(i)] = -h.keys.row(i).norm(); // lowest norm first
    return assemble(h, split, topByScore(split.middle, score, split.middleBudget), {}, precision);
}

CompressedHead expectedAttention(const HeadInput& h, const ParamValues& p) {
    const auto [split, precision] = budgeted(h, p, false);
    const int n = h.tokens();
    const int d = h.headDim();
    const int recent = std::clamp(static_cast<int>(param(p, "observation")), 1, n);
    // Mean and covariance of the recent queries of every head in the group.
    Eigen::MatrixXd qs(
        static_cast<Eigen::Index>(recent) * static_cast<Eigen::Index>(h.queries.size()), d);
    Eigen::Index r = 0;
    for (const Matrix& q : h.queries)
        for (int i = n - recent; i < n; ++i)
            qs.row(r++) = q.row(i).cast<double>();
    const Eigen::RowVectorXd mu = qs.colwise().mean();
    const Eigen::MatrixXd centred = qs.rowwise() - mu;
    const Eigen::MatrixXd sigma =
        centred.transpose() * centred / std::max<Eigen::Index>(1, qs.rows() - 1);
    const double scale = h.attentionScale();
    std::vector<double> score(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const Eigen::RowVectorXd k = h.keys.row(i).cast<double>();
        // ln of exp(μᵀk·s + s²·kᵀΣk/2)·‖v‖: the expected exp-score of a Gaussian query.
        const double quad = (k * sigma * k.transpose())(0, 0);
        score[static_cast<std::size_t>(i)] = mu.dot(k) * scale + 0.5 * scale * scale * quad +
                                             std::log(h.values.row(i).norm() + 1e-30);
    }
    return assemble(h, split, topByScore(split.middle, score, split.middleBudget), {}, precision);
}

// ---- Streaming mode: the online forms (ALGORITHMS.md §1d as the original methods run them,
// one decoded token at a time, within a budget fixed at the start).

// Keeps every token: the identity streams trivially (and is exact).
class AllTokensStream final : public StreamingState {
public:
    void append(const HeadInput&, int position) override { m_count = position + 1; }
    StreamSummary summary() const override {
        StreamSummary s;
        for (int i = 0; i < m_count; ++i)
            s.positions.push_back(i);
        return s;
    }
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<AllTokensStream>(*this);
    }

private:
    int m_count = 0;
};

// StreamingLLM: sinks + the recent window; a token leaving the window is evicted.
class SinksWindowStream final : public ProtectedStream {
public:
    using ProtectedStream::ProtectedStream;
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<SinksWindowStream>(*this);
    }

protected:
    void admit(const HeadInput&, int) override {}
    void addMiddle(StreamSummary&) const override {}
};

// A middle part of plain eviction: tokens with a score, the lowest evicted when over budget
// (ties: the later position goes, as topByScore keeps the earlier one).
class ScoredMiddle {
public:
    void add(std::int32_t position, double score) { m_tokens.push_back({position, score}); }
    void evictTo(int budget) {
        while (static_cast<int>(m_tokens.size()) > budget) {
            auto worst = m_tokens.begin();
            for (auto it = m_tokens.begin(); it != m_tokens.end(); ++it)
                if (it->score < worst->score ||
                    (it->score == worst->score && it->position > worst->position))
                    worst = it;
            m_tokens.erase(worst);
        }
    }
    void addTo(StreamSummary& s) const {
        for (const auto& t : m_tokens)
            s.positions.push_back(t.position);
    }
    // Adds per-token increments (position → amount) to the scores.
    template <class F> void rescore(F&& scoreOf) {
        for (auto& t : m_tokens)
            t.score = scoreOf(t.position, t.score);
    }

private:
    struct Token {
        std::int32_t position;
        double score;
    };
    std::vector<Token> m_tokens;
};

// H2O as published: every cached token accumulates the attention each arriving query gives it
// (over the cache as it stands, the new token included); the heavy-hitter part evicts the
// lowest total. Post-prefill H2O sums every context query instead, as an oracle would.
class HeavyHitterStream final : public ProtectedStream {
public:
    using ProtectedStream::ProtectedStream;
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<HeavyHitterStream>(*this);
    }

protected:
    void observe(const HeadInput& stream, int position) override {
        std::vector<std::int32_t> keys = cached();
        keys.push_back(position);
        const auto attention = groupAttention(stream, position, keys);
        for (std::size_t j = 0; j < keys.size(); ++j)
            m_accumulated[keys[j]] += attention[j];
        m_middle.rescore([&](std::int32_t p, double) { return m_accumulated[p]; });
    }
    void admit(const HeadInput&, int position) override {
        m_middle.add(position, m_accumulated[position]);
        m_middle.evictTo(budget().middle);
        // Only cached tokens keep a score: the map stays within the budget.
        std::map<std::int32_t, double> kept;
        for (const std::int32_t p : cached())
            kept[p] = m_accumulated[p];
        m_accumulated = std::move(kept);
    }
    void addMiddle(StreamSummary& s) const override { m_middle.addTo(s); }

private:
    std::map<std::int32_t, double> m_accumulated;
    ScoredMiddle m_middle;
};

// TOVA: at each step the arriving query scores the cache (and itself); over budget, the token it
// attends to least goes.
class CurrentQueryStream final : public ProtectedStream {
public:
    using ProtectedStream::ProtectedStream;
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<CurrentQueryStream>(*this);
    }

protected:
    void observe(const HeadInput& stream, int position) override {
        std::vector<std::int32_t> keys = cached();
        keys.push_back(position);
        const auto attention = groupAttention(stream, position, keys);
        m_latest.clear();
        for (std::size_t j = 0; j < keys.size(); ++j)
            m_latest[keys[j]] = attention[j];
        m_middle.rescore([&](std::int32_t p, double) { return m_latest[p]; });
    }
    void admit(const HeadInput&, int position) override {
        m_middle.add(position, m_latest[position]);
        m_middle.evictTo(budget().middle);
    }
    void addMiddle(StreamSummary& s) const override { m_middle.addTo(s); }

private:
    std::map<std::int32_t, double> m_latest;
    ScoredMiddle m_middle;
};

// Lowest key norm: a token's score is fixed on arrival, so the middle keeps the smallest norms
// seen so far.
class KeyNormStream final : public ProtectedStream {
public:
    using ProtectedStream::ProtectedStream;
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<KeyNormStream>(*this);
    }

protected:
    void admit(const HeadInput& stream, int position) override {
        m_middle.add(position, -stream.keys.row(position).norm());
        m_middle.evictTo(budget().middle);
    }
    void addMiddle(StreamSummary& s) const override { m_middle.addTo(s); }

private:
    ScoredMiddle m_middle;
};

// Uniform sampling online: reservoir sampling (Algorithm R) keeps a uniform sample of k of the
// tokens that left the window, each weighted seen/k as post-prefill uniform weights n/m.
class ReservoirStream final : public ProtectedStream {
public:
    ReservoirStream(StreamBudget budget, std::mt19937_64 rng)
        : ProtectedStream(budget), m_rng(std::move(rng)) {}
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<ReservoirStream>(*this);
    }

protected:
    void admit(const HeadInput&, int position) override {
        ++m_seen;
        const int k = budget().middle;
        if (static_cast<int>(m_sample.size()) < k) {
            m_sample.push_back(position);
            return;
        }
        if (k == 0)
            return;
        std::uniform_int_distribution<long long> slot(0, m_seen - 1);
        const long long j = slot(m_rng);
        if (j < k)
            m_sample[static_cast<std::size_t>(j)] = position;
    }
    void addMiddle(StreamSummary& s) const override {
        const float lw = m_sample.empty() || m_seen <= static_cast<long long>(m_sample.size())
                             ? 0.0f
                             : static_cast<float>(std::log(static_cast<double>(m_seen) /
                                                           static_cast<double>(m_sample.size())));
        for (const std::int32_t p : m_sample) {
            s.positions.push_back(p);
            s.logWeights.push_back(lw);
        }
    }

private:
    std::mt19937_64 m_rng;
    long long m_seen = 0;
    std::vector<std::int32_t> m_sample;
};

int paramInt(const ParamValues& p, const char* key) {
    return static_cast<int>(param(p, key));
}

std::unique_ptr<StreamingState> streamAll(const HeadInput&, const StreamStart&,
                                          const ParamValues&) {
    return std::make_unique<AllTokensStream>();
}

std::unique_ptr<StreamingState> streamSinksWindow(const HeadInput& h, const StreamStart& start,
                                                  const ParamValues& p) {
    const int m = streamBudgetTokens(h, start, p, false);
    const int sinks = std::min(paramInt(p, "sinks"), m);
    auto state = std::make_unique<SinksWindowStream>(streamBudget(m, sinks, m - sinks));
    if (paramInt(p, "sinks") > 0 && m <= paramInt(p, "sinks"))
        state->setDegenerate("budget " + std::to_string(std::max(0, m)) + " tokens " +
                             (m < paramInt(p, "sinks") ? "<" : "=") + " sinks " +
                             std::to_string(paramInt(p, "sinks")) + ": no recent window" +
                             (m < paramInt(p, "sinks") ? ", sinks cut" : ""));
    return state;
}

std::unique_ptr<StreamingState> streamHeavyHitters(const HeadInput& h, const StreamStart& start,
                                                   const ParamValues& p) {
    const int m = streamBudgetTokens(h, start, p, false);
    const int recent =
        std::max(paramInt(p, "window"), static_cast<int>(std::round(param(p, "recent_share") * m)));
    auto state = std::make_unique<HeavyHitterStream>(streamBudget(m, paramInt(p, "sinks"), recent));
    state->setDegenerate(streamDegenerate(m, paramInt(p, "sinks"), recent, "recent window"));
    return state;
}

StreamBudget commonStreamBudget(const HeadInput& h, const StreamStart& start, const ParamValues& p,
                                bool weighted) {
    return streamBudget(streamBudgetTokens(h, start, p, weighted), paramInt(p, "sinks"),
                        paramInt(p, "window"));
}

// A stream of the common exact part, told whether its budget leaves it anything to choose.
template <class State>
std::unique_ptr<StreamingState> withReason(std::unique_ptr<State> state, const HeadInput& h,
                                           const StreamStart& start, const ParamValues& p,
                                           bool weighted) {
    state->setDegenerate(streamDegenerate(streamBudgetTokens(h, start, p, weighted),
                                          paramInt(p, "sinks"), paramInt(p, "window")));
    return state;
}

std::unique_ptr<StreamingState> streamCurrentQuery(const HeadInput& h, const StreamStart& start,
                                                   const ParamValues& p) {
    return withReason(std::make_unique<CurrentQueryStream>(commonStreamBudget(h, start, p, false)),
                      h, start, p, false);
}

std::unique_ptr<StreamingState> streamKeyNorm(const HeadInput& h, const StreamStart& start,
                                              const ParamValues& p) {
    return withReason(std::make_unique<KeyNormStream>(commonStreamBudget(h, start, p, false)), h,
                      start, p, false);
}

std::unique_ptr<StreamingState> streamUniform(const HeadInput& h, const StreamStart& start,
                                              const ParamValues& p) {
    return withReason(
        std::make_unique<ReservoirStream>(commonStreamBudget(h, start, p, true), rngFor(h, p)), h,
        start, p, true);
}

SchemeInfo cannotStream(SchemeInfo info, std::string why) {
    info.noStreamReason = std::move(why);
    return info;
}

} // namespace

void addSelectionSchemes(std::vector<std::unique_ptr<Scheme>>& out) {
    out.push_back(makeScheme(
        {"identity",
         "identity",
         "Exact (no compression)",
         "Keeps every context token with its exact key and value: the reference every scheme is "
         "measured against. At 32-bit precision it reproduces exact attention bit for bit; at 16 "
         "bits it is the fp16 cache that memory fractions are measured against.",
         {precisionParam(32)}},
        identity, streamAll));
    out.push_back(makeScheme(
        {"select.uniform", "selection", "Uniform sampling",
         "Keeps m context tokens drawn uniformly at random and gives each the weight n/m (a log-"
         "bias ln(n/m) on its score), an unbiased estimate of the attention sums. Its error "
         "falls like 1/√m: the baseline a coreset must beat.",
         withCommon({}, 0.25, true), "keep",
         // Monte-Carlo: the error of an unbiased sample mean falls like m^−½.
         ScalingTheory{-0.5, "sampling theory", false}},
        uniform, streamUniform));
    out.push_back(makeScheme(
        cannotStream(
            {"select.norm_importance", "selection", "Norm-importance sampling",
             "Draws m tokens with probability proportional to exp(ρ‖k‖), where large keys can "
             "dominate the softmax, and weights each by 1/(m·probability) so the sums stay "
             "unbiased.",
             withCommon({{"rho", "ρ", 0, 100, 0, false, false, "",
                          "sharpness of the sampling; 0 = max query norm × attention scale"}},
                        0.25, true)},
            "its sampling probabilities are normalized over the whole context, and ρ = 0 takes "
            "the largest query norm of the prompt: both depend on tokens a stream has not seen"),
        normImportance));
    out.push_back(makeScheme(
        {"select.sinks_window", "selection", "Sinks + recent window (StreamingLLM)",
         "Keeps the first few tokens, which act as attention sinks, and the most recent ones; "
         "everything in between is evicted. No weights, no look at the data.",
         withSinks({}, 0.25)},
        sinksWindow, streamSinksWindow));
    out.push_back(makeScheme(
        {"select.h2o", "selection", "Heavy hitters (H2O)",
         "Keeps a recent window plus the tokens that received the most attention, accumulated "
         "over all context queries of the heads that share this KV head.",
         withCommon({{"recent_share", "Recent share", 0, 1, 0.5, false, false, "",
                      "fraction of the budget given to the recent window (never fewer tokens "
                      "than the window)"}},
                    0.25, false)},
        heavyHitters, streamHeavyHitters));
    out.push_back(makeScheme(
        {"select.tova", "selection", "Current query (TOVA)",
         "Evicts the tokens with the lowest attention from the latest query, summed over the "
         "heads of the group: the greedy rule TOVA applies at every decoding step, here after "
         "the prefill.",
         withCommon({}, 0.25, false)},
        currentQuery, streamCurrentQuery));
    out.push_back(makeScheme(
        cannotStream(
            {"select.snapkv", "selection", "Observation window (SnapKV)",
             "Looks at the attention the last queries of the prompt (the observation window) give "
             "to the prefix, max-pools it over neighbouring tokens and keeps the top tokens "
             "together "
             "with the window itself.",
             // The observation window is SnapKV's exact recent window: its default is the
             // common window.
             withSinks({{"observation", "Observation window", 1, 4096,
                         static_cast<double>(kDefaultWindow), false, true, "tokens",
                         "how many of the last context queries vote; they are kept exactly"},
                        {"kernel", "Pooling kernel", 1, 63, 7, false, true, "tokens",
                         "max-pooling width over neighbouring positions"}},
                       0.25)},
            "it votes with the attention of the prompt's last queries (the observation "
            "window), which come after every token it must choose among: while streaming, "
            "those queries are in the future"),
        observationWindow));
    out.push_back(makeScheme(
        {"select.key_norm", "selection", "Lowest key norm",
         "Keeps the tokens whose keys have the smallest norm, which in trained models tend to "
         "attract the most attention. Looks at keys only.",
         withCommon({}, 0.25, false)},
        keyNorm, streamKeyNorm));
    out.push_back(makeScheme(
        cannotStream(
            {"select.expected_attention", "selection", "Expected attention",
             "Scores each token by the attention a future query would give it on average, "
             "modelling "
             "recent queries as a Gaussian (mean μ, covariance Σ): exp(μᵀk/√d + kᵀΣk/(2d))·‖v‖, "
             "and keeps the top tokens.",
             withCommon({{"observation", "Recent queries", 1, 4096, 32, false, true, "tokens",
                          "how many recent context queries estimate μ and Σ"}},
                        0.25, false)},
            "it scores tokens by a Gaussian fitted to the prompt's last queries, which come "
            "after the tokens it must evict: while streaming, those queries are in the future"),
        expectedAttention));
}

} // namespace kvs::schemes
