// SPDX-License-Identifier: MIT
// Recording and running the attention kernels on one upload: probe + combine (outputs, ln Σ)
// and/or the map (scores, probabilities), with the bytes and time of each dispatch.
#pragma once

#include "layer_upload.h"
#include "pipelines.h"

#include "kvs/attention_backend.h"

#include <cstdint>
#include <span>
#include <vector>

namespace kvs::gpu::kernels {

struct RunOptions {
    int splits = 0; // 0 = tuned (tuneSplits)
    std::uint32_t wg = 64;
    std::uint32_t dSplit = 8;
    bool subgroups = true; // the subgroup kernel where the device has subgroup arithmetic
    bool probe = true;     // outputs + ln Σ
    bool map = false;      // scores + probabilities
    bool readBack = true;
};

struct RunResult {
    std::vector<Matrix> outputs;               // per query head of the upload: nq × hsv
    std::vector<std::vector<float>> logSumExp; // per query head
    std::vector<Matrix> scores, probabilities; // per query head: nq × kept (map only)
    std::vector<DispatchTiming> timings;
    DeviceAllocation scratch; // queries, partials, outputs, maps (only `scratch` and `buffers`)
};

// Runs the kernels on one upload. `queries[q]` (q over the upload's query heads, group per KV
// head) are already projected for low-rank keys (nq × hsk each).
RunResult run(vk::Context& context, PipelineSet& pipelines, const Upload& upload,
              std::span<const Matrix> queries, int group, const AttendOptions& options, float scale,
              const RunOptions& runOptions);

} // namespace kvs::gpu::kernels
