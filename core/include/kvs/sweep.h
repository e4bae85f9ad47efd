// SPDX-License-Identifier: MIT
// Sweeps: one scheme evaluated over a range of one parameter (usually the budget), the points of
// a trade-off curve, and the least-squares slope of log error against log kept tokens.
#pragma once

#include "kvs/evaluator.h"

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
// the given options; the exact reference is computed once and shared by every point.
Result<Sweep> runSweep(const Capture& capture, const Model* model, const SchemeSetting& base,
                       const std::string& parameter, const std::vector<double>& values,
                       AttentionBackend& backend, const EvalOptions& options);

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

// Indices of the points on the lower-left Pareto front of (cost, error): no other point has
// both less or equal cost and less or equal error with one strictly less. Sorted by cost.
std::vector<std::size_t> paretoFront(const std::vector<double>& cost,
                                     const std::vector<double>& error);

} // namespace kvs
