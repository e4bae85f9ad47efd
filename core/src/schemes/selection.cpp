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

// Budget and sinks, then the scheme's own parameters, then the precision: the parameters of
// schemes that pick their recent tokens themselves (no separate window).
std::vector<ParamSpec> withSinks(std::vector<ParamSpec> specific, double keep, int sinks) {
    std::vector<ParamSpec> p = budgetParams(keep);
    p.push_back(sinksParam(sinks));
    p.insert(p.end(), specific.begin(), specific.end());
    p.push_back(precisionParam(16));
    return p;
}

// withSinks with an exact recent window first and, for sampling schemes, a seed last.
std::vector<ParamSpec> withCommon(std::vector<ParamSpec> specific, double keep, int sinks,
                                  int window, bool seeded) {
    specific.insert(specific.begin(), windowParam(window));
    if (seeded)
        specific.push_back(seedParam());
    return withSinks(std::move(specific), keep, sinks);
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
    // The window is whatever the budget leaves after the sinks.
    ExactSplit split = splitExact(h.tokens(), m, sinks, h.tokens());
    return assemble(h, split, {}, {}, precision);
}

CompressedHead heavyHitters(const HeadInput& h, const ParamValues& p) {
    const Precision precision = precisionOf(p);
    const int n = h.tokens();
    const int m = tokenBudget(p, n, perTokenBytes(h, precision, false));
    // H2O splits the budget between the recent window and the heavy hitters.
    const int recent = static_cast<int>(std::round(param(p, "recent_share") * m));
    ExactSplit split = splitExact(n, m, static_cast<int>(param(p, "sinks")), recent);
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
    ExactSplit split = splitExact(n, m, static_cast<int>(param(p, "sinks")), obs);
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
        identity));
    out.push_back(makeScheme(
        {"select.uniform", "selection", "Uniform sampling",
         "Keeps m context tokens drawn uniformly at random and gives each the weight n/m (a log-"
         "bias ln(n/m) on its score), an unbiased estimate of the attention sums. Its error "
         "falls like 1/√m: the baseline a coreset must beat.",
         withCommon({}, 0.25, 0, 0, true), "keep",
         // Monte-Carlo: the error of an unbiased sample mean falls like m^−½.
         ScalingTheory{-0.5, "sampling theory", false}},
        uniform));
    out.push_back(makeScheme(
        {"select.norm_importance", "selection", "Norm-importance sampling",
         "Draws m tokens with probability proportional to exp(ρ‖k‖), where large keys can "
         "dominate the softmax, and weights each by 1/(m·probability) so the sums stay unbiased.",
         withCommon({{"rho", "ρ", 0, 100, 0, false, false, "",
                      "sharpness of the sampling; 0 = max query norm × attention scale"}},
                    0.25, 0, 0, true)},
        normImportance));
    out.push_back(makeScheme(
        {"select.sinks_window", "selection", "Sinks + recent window (StreamingLLM)",
         "Keeps the first few tokens, which act as attention sinks, and the most recent ones; "
         "everything in between is evicted. No weights, no look at the data.",
         withSinks({}, 0.25, 4)},
        sinksWindow));
    out.push_back(makeScheme(
        {"select.h2o", "selection", "Heavy hitters (H2O)",
         "Keeps a recent window plus the tokens that received the most attention, accumulated "
         "over all context queries of the heads that share this KV head.",
         withSinks({{"recent_share", "Recent share", 0, 1, 0.5, false, false, "",
                     "fraction of the budget given to the recent window"}},
                   0.25, 0)},
        heavyHitters));
    out.push_back(makeScheme(
        {"select.tova", "selection", "Current query (TOVA)",
         "Evicts the tokens with the lowest attention from the latest query, summed over the "
         "heads of the group: the greedy rule TOVA applies at every decoding step, here after "
         "the prefill.",
         withCommon({}, 0.25, 0, 0, false)},
        currentQuery));
    out.push_back(makeScheme(
        {"select.snapkv", "selection", "Observation window (SnapKV)",
         "Looks at the attention the last queries of the prompt (the observation window) give "
         "to the prefix, max-pools it over neighbouring tokens and keeps the top tokens together "
         "with the window itself.",
         withSinks({{"observation", "Observation window", 1, 4096, 32, false, true, "tokens",
                     "how many of the last context queries vote"},
                    {"kernel", "Pooling kernel", 1, 63, 7, false, true, "tokens",
                     "max-pooling width over neighbouring positions"}},
                   0.25, 0)},
        observationWindow));
    out.push_back(makeScheme(
        {"select.key_norm", "selection", "Lowest key norm",
         "Keeps the tokens whose keys have the smallest norm, which in trained models tend to "
         "attract the most attention. Looks at keys only.",
         withCommon({}, 0.25, 0, 0, false)},
        keyNorm));
    out.push_back(makeScheme(
        {"select.expected_attention", "selection", "Expected attention",
         "Scores each token by the attention a future query would give it on average, modelling "
         "recent queries as a Gaussian (mean μ, covariance Σ): exp(μᵀk/√d + kᵀΣk/(2d))·‖v‖, "
         "and keeps the top tokens.",
         withCommon({{"observation", "Recent queries", 1, 4096, 32, false, true, "tokens",
                      "how many recent context queries estimate μ and Σ"}},
                    0.25, 0, 0, false)},
        expectedAttention));
}

} // namespace kvs::schemes
