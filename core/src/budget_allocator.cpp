// SPDX-License-Identifier: MIT
// The budget allocator (kvs/budget_allocator.h): the hull greedy, the exact Pareto search and the
// per-head candidates measured with the evaluator.
#include "kvs/budget_allocator.h"

#include "kvs/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <queue>
#include <sstream>
#include <tuple>

namespace kvs {
namespace {

std::string headName(const HeadOptions& h) {
    return "layer " + std::to_string(h.layer) + ", KV head " + std::to_string(h.kvHead);
}

std::string number(double v) {
    std::ostringstream os;
    os << std::setprecision(6) << v;
    return os.str();
}

// Every head has options with finite, non-negative errors, and the budget holds the cheapest
// allocation; returns the cheapest option of each head (least bytes, then least error).
std::vector<std::size_t> checkInput(const std::vector<HeadOptions>& heads, std::size_t budget) {
    std::vector<std::size_t> cheapest;
    std::size_t minimum = 0;
    for (const HeadOptions& h : heads) {
        if (h.options.empty())
            throw Error(ErrorCode::InvalidArgument,
                        "budget allocator: " + headName(h) + " has no options to choose from");
        std::size_t best = 0;
        for (std::size_t i = 0; i < h.options.size(); ++i) {
            const BudgetOption& o = h.options[i];
            if (!std::isfinite(o.error) || o.error < 0)
                throw Error(ErrorCode::InvalidArgument,
                            "budget allocator: " + headName(h) + ", value " + number(o.value) +
                                ": the error is " + number(o.error) +
                                ", not a finite sum of squares; an allocation cannot be scored");
            const BudgetOption& b = h.options[best];
            if (std::tie(o.bytes, o.error) < std::tie(b.bytes, b.error))
                best = i;
        }
        cheapest.push_back(best);
        minimum += h.options[best].bytes;
    }
    if (budget < minimum)
        throw Error(ErrorCode::InvalidArgument,
                    "budget allocator: a budget of " + std::to_string(budget) +
                        " bytes is below the cheapest allocation, " + std::to_string(minimum) +
                        " bytes (every one of the " + std::to_string(heads.size()) +
                        " heads at its smallest option)");
    return cheapest;
}

void finish(BudgetAllocation& a, const std::vector<HeadOptions>& heads) {
    a.bytes = 0;
    a.error = 0;
    for (std::size_t h = 0; h < heads.size(); ++h) {
        a.bytes += heads[h].options[a.choice[h]].bytes;
        a.error += heads[h].options[a.choice[h]].error;
    }
}

// One head's lower convex hull in (bytes, error), from its cheapest option to its least error:
// option indices with error falling and the error saved per byte falling.
std::vector<std::size_t> lowerHull(const HeadOptions& h, std::size_t cheapest) {
    std::vector<std::size_t> order(h.options.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const BudgetOption &x = h.options[a], &y = h.options[b];
        return std::tie(x.bytes, x.error, a) < std::tie(y.bytes, y.error, b);
    });
    std::vector<std::size_t> hull{cheapest};
    for (std::size_t i : order) {
        const BudgetOption& p = h.options[i];
        if (p.bytes <= h.options[hull.back()].bytes || p.error >= h.options[hull.back()].error)
            continue; // not better than the last hull point for its bytes
        // Drop the last point while it lies on or above the segment from the one before to p:
        // saved per byte must fall along the hull.
        while (hull.size() >= 2) {
            const BudgetOption& a = h.options[hull[hull.size() - 2]];
            const BudgetOption& b = h.options[hull.back()];
            const long double s1 = static_cast<long double>(a.error - b.error) *
                                   static_cast<long double>(p.bytes - b.bytes);
            const long double s2 = static_cast<long double>(b.error - p.error) *
                                   static_cast<long double>(b.bytes - a.bytes);
            if (s1 > s2)
                break;
            hull.pop_back();
        }
        hull.push_back(i);
    }
    return hull;
}

} // namespace

Result<BudgetAllocation> allocateGreedy(const std::vector<HeadOptions>& heads, std::size_t budget) {
    return catchErrors([&] {
        BudgetAllocation a;
        a.method = "greedy";
        a.choice = checkInput(heads, budget);
        std::vector<std::vector<std::size_t>> hulls;
        std::vector<std::size_t> at(heads.size(), 0); // position on each hull
        std::size_t spent = 0;
        for (std::size_t h = 0; h < heads.size(); ++h) {
            hulls.push_back(lowerHull(heads[h], a.choice[h]));
            spent += heads[h].options[a.choice[h]].bytes;
        }
        // The next hull step of every head, the most error saved per byte first (ties: the
        // lower head index, so that the result does not depend on the queue's order).
        struct Step {
            double perByte;
            std::size_t head;
            bool operator<(const Step& o) const {
                return perByte < o.perByte || (perByte == o.perByte && head > o.head);
            }
        };
        const auto step = [&](std::size_t h) {
            const BudgetOption& from = heads[h].options[hulls[h][at[h]]];
            const BudgetOption& to = heads[h].options[hulls[h][at[h] + 1]];
            return std::pair(to.bytes - from.bytes, from.error - to.error);
        };
        std::priority_queue<Step> queue;
        for (std::size_t h = 0; h < heads.size(); ++h)
            if (hulls[h].size() > 1) {
                const auto [bytes, saved] = step(h);
                queue.push({saved / static_cast<double>(bytes), h});
            }
        double fractionSaved = 0; // the linear relaxation's part of the step that did not fit
        while (!queue.empty()) {
            const std::size_t h = queue.top().head;
            const auto [bytes, saved] = step(h);
            if (bytes > budget - spent) {
                fractionSaved =
                    saved * static_cast<double>(budget - spent) / static_cast<double>(bytes);
                break;
            }
            queue.pop();
            spent += bytes;
            a.choice[h] = hulls[h][++at[h]];
            if (at[h] + 1 < hulls[h].size()) {
                const auto [nb, ns] = step(h);
                queue.push({ns / static_cast<double>(nb), h});
            }
        }
        finish(a, heads);
        a.lagrangianBytes = a.bytes;
        a.lagrangianError = a.error;
        a.lowerBound = std::max(0.0, a.error - fractionSaved);
        // The leftover: any option of any head that saves error and still fits, the most saved
        // per byte first (an upgrade of no bytes first of all).
        for (;;) {
            std::size_t bestHead = heads.size(), bestOption = 0;
            double bestPerByte = -1, bestSaved = 0;
            for (std::size_t h = 0; h < heads.size(); ++h) {
                const BudgetOption& cur = heads[h].options[a.choice[h]];
                for (std::size_t i = 0; i < heads[h].options.size(); ++i) {
                    const BudgetOption& o = heads[h].options[i];
                    if (o.error >= cur.error || o.bytes < cur.bytes ||
                        o.bytes - cur.bytes > budget - spent)
                        continue;
                    const double saved = cur.error - o.error;
                    const double perByte = o.bytes == cur.bytes
                                               ? std::numeric_limits<double>::infinity()
                                               : saved / static_cast<double>(o.bytes - cur.bytes);
                    if (perByte > bestPerByte || (perByte == bestPerByte && saved > bestSaved)) {
                        bestHead = h;
                        bestOption = i;
                        bestPerByte = perByte;
                        bestSaved = saved;
                    }
                }
            }
            if (bestHead == heads.size())
                break;
            spent += heads[bestHead].options[bestOption].bytes -
                     heads[bestHead].options[a.choice[bestHead]].bytes;
            a.choice[bestHead] = bestOption;
        }
        finish(a, heads);
        a.exact = a.error <= a.lowerBound;
        return a;
    });
}

Result<BudgetAllocation> allocateBudget(const std::vector<HeadOptions>& heads, std::size_t budget,
                                        std::size_t maxStates) {
    return catchErrors([&]() -> BudgetAllocation {
        checkInput(heads, budget);
        BudgetAllocation greedy = allocateGreedy(heads, budget).valueOrThrow();
        if (greedy.exact)
            return greedy;
        // The least bytes the heads after each one need, to prune partial allocations early.
        std::vector<std::size_t> rest(heads.size() + 1, 0);
        for (std::size_t h = heads.size(); h-- > 0;) {
            std::size_t least = std::numeric_limits<std::size_t>::max();
            for (const BudgetOption& o : heads[h].options)
                least = std::min(least, o.bytes);
            rest[h] = rest[h + 1] + least;
        }
        struct State {
            std::size_t bytes;
            double error;
            std::uint32_t parent; // index in the previous front
            std::uint32_t option;
        };
        std::vector<std::vector<State>> fronts;
        std::vector<State> front{{0, 0.0, 0, 0}};
        for (std::size_t h = 0; h < heads.size(); ++h) {
            std::vector<State> next;
            next.reserve(front.size() * heads[h].options.size());
            for (std::size_t s = 0; s < front.size(); ++s)
                for (std::size_t i = 0; i < heads[h].options.size(); ++i) {
                    const BudgetOption& o = heads[h].options[i];
                    const std::size_t bytes = front[s].bytes + o.bytes;
                    if (bytes + rest[h + 1] <= budget)
                        next.push_back({bytes, front[s].error + o.error,
                                        static_cast<std::uint32_t>(s),
                                        static_cast<std::uint32_t>(i)});
                }
            std::sort(next.begin(), next.end(), [](const State& a, const State& b) {
                return std::tie(a.bytes, a.error) < std::tie(b.bytes, b.error);
            });
            // Keep the Pareto front: more bytes only with strictly less error.
            std::size_t kept = 0;
            for (const State& s : next)
                if (kept == 0 || s.error < next[kept - 1].error)
                    next[kept++] = s;
            next.resize(kept);
            if (next.size() > maxStates)
                return greedy;
            fronts.push_back(front);
            front = std::move(next);
        }
        BudgetAllocation a;
        a.method = "exact";
        a.choice.assign(heads.size(), 0);
        std::uint32_t s = static_cast<std::uint32_t>(front.size() - 1); // the least error
        for (std::size_t h = heads.size(); h-- > 0;) {
            const State& st = h + 1 == heads.size() ? front[s] : fronts[h + 1][s];
            a.choice[h] = st.option;
            s = st.parent;
        }
        finish(a, heads);
        a.lowerBound = a.error;
        a.exact = true;
        a.lagrangianBytes = greedy.lagrangianBytes;
        a.lagrangianError = greedy.lagrangianError;
        return a;
    });
}

Result<BudgetCandidates>
measureBudgetCandidates(const Capture& capture, const Model* model, const SchemeSetting& base,
                        const std::string& parameter, const std::vector<double>& values,
                        AttentionBackend& backend, const EvalOptions& options,
                        const ExactReference* reference) {
    return catchErrors([&] {
        checkSweep(base, parameter, values).valueOrThrow();
        const Scheme& scheme = *findScheme(base.id);
        if (scheme.info().transformsWeights)
            throw Error(ErrorCode::Unsupported,
                        base.id + " rewrites the model's weights: its heads are another model's, "
                                  "so they cannot take settings one by one");
        if (options.mode != EvalMode::PostPrefill)
            throw Error(ErrorCode::InvalidArgument,
                        "the budget allocator measures heads after the prefill (post-prefill "
                        "mode), not streaming");
        const ParamSpec* spec = scheme.info().findParam(parameter);
        EvalOptions o = options;
        o.modelQuality = false;
        o.perLayerQuality = false;
        o.attentionMaps = false;
        o.keepCompressed = false;
        o.projectedError = model != nullptr;
        o.headSettings.clear();
        ExactReference computed;
        if (!reference) {
            computed = computeExactReference(capture, model, backend, o).valueOrThrow();
            reference = &computed;
        }
        BudgetCandidates c;
        c.base = base;
        c.parameter = parameter;
        c.projected = o.projectedError;
        for (const double v : values) {
            SchemeSetting s = base;
            s.params[parameter] = spec->integer ? std::round(v) : v;
            auto r = evaluate(capture, model, s, backend, o, reference);
            if (!r.ok() && r.error().code() == ErrorCode::InvalidArgument) {
                c.skipped.emplace_back(s.params[parameter], r.message());
                continue;
            }
            const EvalResult result = std::move(r).valueOrThrow();
            if (c.heads.empty())
                for (const HeadMetrics& h : result.heads)
                    c.heads.push_back({h.layer, h.kvHead, {}});
            for (std::size_t i = 0; i < result.heads.size(); ++i) {
                const HeadMetrics& h = result.heads[i];
                c.heads[i].options.push_back(
                    {s.params[parameter], h.bytes.total(),
                     c.projected ? h.projectedSquares : h.outputSquares.first});
            }
            c.values.push_back(s.params[parameter]);
            c.uniformBytes.push_back(result.bytes.total());
        }
        if (c.values.empty())
            throw Error(
                ErrorCode::InvalidArgument,
                base.toString() + ": no value of " + parameter + " could be measured" +
                    (c.skipped.empty() ? std::string() : " (" + c.skipped.front().second + ")"));
        return c;
    });
}

std::vector<SchemeSetting> allocationSettings(const BudgetCandidates& candidates,
                                              const BudgetAllocation& allocation) {
    std::vector<SchemeSetting> out;
    for (std::size_t h = 0; h < candidates.heads.size(); ++h) {
        SchemeSetting s = candidates.base;
        s.params[candidates.parameter] = candidates.heads[h].options[allocation.choice.at(h)].value;
        out.push_back(std::move(s));
    }
    return out;
}

double summedHeadError(const EvalResult& result, bool projected) {
    double sum = 0;
    for (const HeadMetrics& h : result.heads)
        sum += projected ? h.projectedSquares : h.outputSquares.first;
    return sum;
}

} // namespace kvs
