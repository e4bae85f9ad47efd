// SPDX-License-Identifier: MIT
// The budget allocator: one byte budget for the whole model, spent per head on the setting of a
// scheme's budget parameter that minimizes the summed squared head error (docs/schemes.md
// "Budget allocator"). allocateBudget() is the pure choice over given (bytes, error) options;
// measureBudgetCandidates() measures those options per head with the evaluator.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/capture.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/status.h"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace kvs {

// One candidate of one head: the budget parameter's value, the head's cache bytes with it and its
// error (a sum of squares: finite and ≥ 0).
struct BudgetOption {
    double value = 0.0;
    std::size_t bytes = 0;
    double error = 0.0;
};

struct HeadOptions {
    int layer = 0;
    int kvHead = 0;
    std::vector<BudgetOption> options; // at least one, in any order
};

struct BudgetAllocation {
    std::vector<std::size_t> choice; // per head, an index into its options
    std::size_t bytes = 0;           // Σ bytes of the chosen options (≤ the budget)
    double error = 0.0;              // Σ error of the chosen options, summed in head order
    // The linear relaxation's optimum (the hull greedy with its last step taken in part): no
    // allocation within the budget has less error, so the optimum lies in [lowerBound, error].
    double lowerBound = 0.0;
    bool exact = false; // proven optimal: exhaustive search, or error == lowerBound
    // The greedy's Lagrangian point (before the leftover pass): optimal among all allocations
    // of at most lagrangianBytes, convex curves or not.
    std::size_t lagrangianBytes = 0;
    double lagrangianError = 0.0;
    std::string method; // "exact" (Pareto search) or "greedy"
};

// The greedy on marginal error per byte. Per head, the options' lower convex hull in (bytes,
// error) from the cheapest option; every head starts at its cheapest option, and the hull steps
// of all heads are taken in decreasing error saved per byte while they fit. Stopping at the
// first step that does not fit leaves a Lagrangian point: it minimizes Σ error + λ·Σ bytes for
// the last slope λ, so it is optimal among all allocations of at most its own bytes, whatever
// the heads' curves look like. Then the leftover bytes buy upgrades that still fit (any option,
// not only hull points), the largest error saved per byte first.
// Where it may miss the optimum: the bytes between the Lagrangian point and the budget. The
// step that did not fit may have been worth more than the upgrades that did, and options
// above a head's hull (non-convex curves) are reached only by the leftover pass; the gap is at
// most the error that step saves (error − lowerBound says how much at most, per call).
// Errors (InvalidArgument): a head without options, an error that is not finite or negative
// (named by layer, KV head and value), a budget below the cheapest allocation (with both).
Result<BudgetAllocation> allocateGreedy(const std::vector<HeadOptions>& heads, std::size_t budget);

// The optimum when it is cheap to find, else the greedy: heads are merged one at a time into the
// Pareto front of (bytes, error) partial allocations within the budget (exact: every allocation
// not on the front is beaten or matched by one that is); when a front would exceed `maxStates`
// the greedy's answer is returned instead (method "greedy"). Same errors as allocateGreedy.
Result<BudgetAllocation> allocateBudget(const std::vector<HeadOptions>& heads, std::size_t budget,
                                        std::size_t maxStates = std::size_t(1) << 18);

// What the allocator chooses from, measured: `base` with `parameter` at each of `values`, every
// head at once (one evaluation per value without model quality, sharing `reference`).
struct BudgetCandidates {
    SchemeSetting base;
    std::string parameter;
    std::vector<double> values; // the values measured, as set (rounded for integer parameters)
    // Values the scheme could not meet (InvalidArgument), with why; left out of `heads`.
    std::vector<std::pair<double, std::string>> skipped;
    // The error measure: Σ over probe rows and the group's query heads of ‖(Ô − O)·W_O,h‖², the
    // head output error as the residual stream reads it (true, with the model); without the
    // model, the unprojected Σ‖Ô − O‖² (HeadMetrics::outputSquares.first).
    bool projected = false;
    std::vector<HeadOptions> heads;        // layer-major; options in the order of `values`
    std::vector<std::size_t> uniformBytes; // per value: every head at it
};

// Post-prefill only; schemes that rewrite the weights are refused (their heads are not the
// model's). `options.modelQuality` is ignored (off: the candidates need per-head figures only).
Result<BudgetCandidates>
measureBudgetCandidates(const Capture& capture, const Model* model, const SchemeSetting& base,
                        const std::string& parameter, const std::vector<double>& values,
                        AttentionBackend& backend, const EvalOptions& options,
                        const ExactReference* reference = nullptr);

// The per-head settings of an allocation, layer-major, for EvalOptions::headSettings.
std::vector<SchemeSetting> allocationSettings(const BudgetCandidates& candidates,
                                              const BudgetAllocation& allocation);

// A result's summed head error as the allocator counts it: Σ HeadMetrics::projectedSquares
// (projected) or Σ outputSquares.first.
double summedHeadError(const EvalResult& result, bool projected);

} // namespace kvs
