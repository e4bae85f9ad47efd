// SPDX-License-Identifier: MIT
// The one layer loop of the evaluation protocol: each layer's probe queries attend to that layer's
// (compressed) context heads on a backend, one attendLayer call per layer. The evaluator, the
// studio's timing and scaling passes and `kvstudio-cli bench` all go through it.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/capture.h"

#include <atomic>
#include <span>
#include <vector>

namespace kvs {

struct ProbeRequest {
    std::span<const std::vector<CompressedHead>> heads; // [layer][KV head]
    std::span<const std::vector<Matrix>> queries;       // [layer][query head], probe rows
    int groupSize = 1;                                  // query heads per KV head
    std::vector<float> scales;                          // per layer; empty = 1/√d
    bool probabilities = false;                         // AttendResult::probabilities
    bool scores = false;                                // AttendResult::scores
    const std::atomic<bool>* cancel = nullptr;          // checked between layers
};

// [layer][query head]. Layer l's timings and device allocation are in its first result. A
// cancelled request ends with Error(Cancelled).
Result<std::vector<std::vector<AttendResult>>> probeAttention(const ProbeRequest& request,
                                                              AttentionBackend& backend);

// The captured probe queries (rows contextTokens…n−1) of every layer: [layer][query head].
std::vector<std::vector<Matrix>> probeQueries(const Capture& capture, int contextTokens);

// layerAttentionScale() of every layer.
std::vector<float> layerAttentionScales(const ModelConfig& config);

// A request for a model of `config`: its group size and per-layer scales, no maps.
ProbeRequest probeRequest(const ModelConfig& config,
                          std::span<const std::vector<CompressedHead>> heads,
                          std::span<const std::vector<Matrix>> queries,
                          const std::atomic<bool>* cancel);

} // namespace kvs
