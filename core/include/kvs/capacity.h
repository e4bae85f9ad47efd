// SPDX-License-Identifier: MIT
// The capacity planner: what a model's KV cache costs at a context length, how many users fit on
// one GPU next to the weights, and what a compression ratio changes (docs/capacity.md).
#pragma once

#include "kvs/model_config.h"
#include "kvs/status.h"

#include <string>
#include <string_view>
#include <vector>

namespace kvs {

// A public model whose configuration the planner knows without its weights: the fields of its
// Hugging Face config.json that decide the cache and the weights' size.
struct CapacityPreset {
    std::string id;     // "llama-2-7b", as `kvstudio-cli capacity --preset` takes it
    std::string name;   // "Llama-2-7B"
    std::string source; // the repository whose config.json it reproduces
    ModelConfig config;
};

const std::vector<CapacityPreset>& capacityPresets();
// The preset with this id (case-insensitive), or null.
const CapacityPreset* findCapacityPreset(std::string_view id);

// Bytes of one stored element, by the dtype names the planner accepts: weights fp32, bf16, fp16,
// int8, int4 (packed, scales not counted); the cache fp32, bf16, fp16, fp8. 0 for an unknown name.
double weightBytesPerParameter(std::string_view dtype);
double cacheBytesPerElement(std::string_view dtype);
// "12.6 GiB": bytes in GiB (2^30), two decimals below 10 GiB, one above (the planner's notes).
std::string gibText(double bytes);

// A way of storing the cache: the fractions of the exact key and value bytes it keeps (a scheme's
// measured memory fraction applies to both; "75% fewer key bytes" is keyFraction 0.25).
struct CapacitySetting {
    std::string name; // "exact", "thin keys r=d/4", a scheme setting
    double keyFraction = 1.0;
    double valueFraction = 1.0;
    std::string origin; // "exact", "typed", "measured at 942 tokens" — said beside the row
};

struct CapacityInputs {
    ModelConfig model;
    std::string modelName;
    long long context = 0; // tokens per user (prompt + generated)
    double gpuGiB = 80.0;
    std::string weightDtype = "fp16";
    std::string cacheDtype = "fp16";
    // Memory kept free for activations and the serving framework; negative: 10% of the GPU
    // (vLLM's default gpu_memory_utilization of 0.9).
    double reserveGiB = -1.0;
    std::vector<CapacitySetting> settings; // the exact cache is always the first row
};

struct CapacityRow {
    CapacitySetting setting;
    double cacheFraction = 1.0; // of the exact cache's bytes
    double bytesPerToken = 0.0; // at a context the window does not cap
    double bytesPerUser = 0.0;  // at the context, window applied
    double savedPerUser = 0.0;  // bytes, against the exact cache
    long long users = 0;        // whole users next to the weights on one GPU
    double continuousUsers = 0; // free bytes / bytes per user
    double usersVsExact = 1.0;  // continuous users against the exact cache's, where it limits
    // The longest context one user can have on this GPU; -1: any (a window on every layer caps
    // the cache below the free memory).
    long long longestContext = 0;
    // Tensor-parallel GPUs of this size that hold the weights and one user's cache (reserve on
    // each).
    int gpusForOneUser = 0;
};

struct CapacityReport {
    std::string modelName;
    long long context = 0;
    long long cachedTokens = 0; // per layer at most: min(context, window) where a window applies
    int contextLimit = 0;       // the model's maximum (0: unknown)
    bool hypothetical = false;  // the context is beyond the model's maximum
    bool windowCaps = false;    // a sliding window holds the cache below the context
    int window = 0;
    long long parameters = 0;
    double weightBytes = 0.0;
    double reserveBytes = 0.0;
    double gpuBytes = 0.0;
    double freeBytes = 0.0; // for the cache: GPU − weights − reserve (may be negative)
    std::vector<CapacityRow> rows;
    std::vector<std::string> notes; // hypothetical context, window, no whole user, ...
};

// Validates the inputs (context ≥ 1, GPU > 0, known dtypes, fractions in [0, 1], a model with
// layers and KV heads) and computes every row; errors name the input and what is allowed.
Result<CapacityReport> planCapacity(const CapacityInputs& inputs);

// Users that fit against context length, per setting: the chart of the planner. Contexts are
// log-spaced from `fromTokens` to `toTokens`, both included.
struct CapacityCurve {
    std::string name;
    std::vector<double> context;
    std::vector<double> users;           // whole users (0 where none fits)
    std::vector<double> continuousUsers; // free bytes / bytes per user
};
Result<std::vector<CapacityCurve>>
capacityCurves(const CapacityInputs& inputs, long long fromTokens, long long toTokens, int points);

// The bytes one user's cache takes at `context` tokens under `setting` (the window applied per
// layer): the planner's one formula, exposed for tests and the studio.
double cacheBytesPerUser(const ModelConfig& model, long long context, double elementBytes,
                         const CapacitySetting& setting);

} // namespace kvs
