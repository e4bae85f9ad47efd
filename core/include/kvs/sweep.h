// SPDX-License-Identifier: MIT
// Sweeps: one scheme evaluated over a range of one parameter (usually the budget), the points of
// a trade-off curve, and the least-squares slope of log error against log kept tokens.
#pragma once

#include "kvs/evaluator.h"
#include "kvs/metrics.h"

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace kvs {

struct SweepPoint {
    double value = 0.0; // the swept parameter's value
    EvalResult result;
    double meanKeptTokens = 0.0; // over heads
};

struct Sweep {
    std::string scheme; // the base setting
    std::string parameter;
    std::vector<SweepPoint> points;
    // Values the scheme cannot meet (e.g. a budget below what its summary needs), with why.
    std::vector<std::pair<double, std::string>> skipped;
};

// Evaluates `base` with `parameter` set to each of `values` (validated against the spec) and
// the given options; the exact reference (computed once when not given) is shared by every point.
// A value the scheme cannot meet (InvalidArgument) is skipped; any other error ends the sweep.
// What runSweep checks before any work: the scheme has `parameter`, a tokens or bytes budget in
// `base` does not override it, and every value is a finite number in the parameter's range (and
// one of its choices, and not an integer that rounds to "not set"). InvalidArgument naming the
// value, the parameter and what is allowed, both bounds of a range.
Result<bool> checkSweep(const SchemeSetting& base, const std::string& parameter,
                        const std::vector<double>& values);
Result<Sweep> runSweep(const Capture& capture, const Model* model, const SchemeSetting& base,
                       const std::string& parameter, const std::vector<double>& values,
                       AttentionBackend& backend, const EvalOptions& options,
                       const ExactReference* reference = nullptr);

// The parameter a scheme's trade-off curve sweeps (SchemeInfo::budgetParam) and the values it
// takes: for "keep", from about two tokens of the context to all of it; otherwise the spec's
// range, geometric on log-scale parameters; for a KV-head count (ParamSpec::dividesKvHeads) the
// divisors of `kvHeads`. None for an unknown scheme or one without parameters.
struct SweepPlan {
    std::string parameter;
    std::vector<double> values;
};
std::optional<SweepPlan> sweepPlan(const SchemeSetting& setting, int contextTokens, int points = 7,
                                   int kvHeads = 0);
// `setting` without `parameter` — and without what would override it (ParamSpec::overriddenBy:
// for "keep" the token and byte budgets, for "bits" the key and value widths) — so that settings
// differing only in the swept budget share one curve.
SchemeSetting sweepBase(SchemeSetting setting, const std::string& parameter);

// The median (the upper one for an even count); NaN when empty.
double median(std::vector<double> values);
// Kept tokens per head, averaged over the heads of a result.
double meanKeptTokens(const EvalResult& result);

// `count` values from `lo` to `hi`, geometrically spaced (integers rounded and deduplicated when
// `integer`).
std::vector<double> geometricValues(double lo, double hi, int count, bool integer);

struct SlopeFit {
    double slope = 0.0;
    double intercept = 0.0; // of log y = intercept + slope · log x
    double r2 = 0.0;
    int points = 0;
};
// Least squares on (ln x, ln y) over the points with x > 0 and y > 0.
SlopeFit fitLogLog(const std::vector<double>& x, const std::vector<double>& y);

// The theory diagnostic of ALGORITHMS.md §1c per head: for a target error ε, the coreset size the
// bound √d·e^ρ/ε asks for, next to the size the method needed (the smallest `tokens` budget on a
// geometric grid whose error in the bound's units, mean ‖o − ô‖ / max‖v‖, is ≤ ε; −1 when even
// the whole context misses it).
struct HeadSizeCheck {
    int layer = 0;
    int kvHead = 0;
    double rhoEff = 0.0;
    double boundTokens = 0.0;
    int neededTokens = -1;
    int contextTokens = 0;
};
Result<std::vector<HeadSizeCheck>>
coresetSizeCheck(const Capture& capture, const SchemeSetting& scheme, double epsilon,
                 AttentionBackend& backend, const EvalOptions& options, int gridPoints = 24);

// The least-squares slope of log `metric` against log mean kept tokens over the points of a sweep
// that compress (those that keep the whole context have no error to fit) and whose budget is not
// degenerate for the scheme (EvalResult::degenerateHeads: such a point measures sinks + window,
// not the scheme); repeated kept sizes count once (their median), so a flat stretch of a budget
// sweep does not weigh twice.
SlopeFit sweepSlope(const Sweep& sweep, int contextTokens, Metric metric);

// The theory overlay of a trade-off curve (ALGORITHMS.md §1c), from a sweep whose points are in
// increasing bytes: the slope the scheme's theory predicts (SchemeInfo::theory) as a guide
// segment through the compressing point that keeps the most (the theory is asymptotic in the
// kept tokens) back to the most compressed point's bytes (kept tokens are proportional to bytes
// within one scheme, so the slope carries over to the bytes axis), and at that anchor the
// coreset bound's medians over heads.
struct TheoryOverlay {
    double slope = std::numeric_limits<double>::quiet_NaN(); // NaN: no theory for the scheme
    std::string name;                                        // "coreset theory"
    bool coresetBound = false;
    double guideX0 = 0, guideY0 = 0, guideX1 = 0, guideY1 = 0; // (bytes, context error)
    double boundRho = std::numeric_limits<double>::quiet_NaN();
    double boundTokens = std::numeric_limits<double>::quiet_NaN();
    double boundKeptTokens = std::numeric_limits<double>::quiet_NaN();
};
TheoryOverlay theoryOverlay(const Sweep& sweep, const ScalingTheory& theory, int contextTokens);

// Indices of the points on the lower-left Pareto front of (cost, error): no other point has
// both less or equal cost and less or equal error with one strictly less. Sorted by cost.
std::vector<std::size_t> paretoFront(const std::vector<double>& cost,
                                     const std::vector<double>& error);

} // namespace kvs
