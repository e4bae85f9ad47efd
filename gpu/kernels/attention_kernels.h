// SPDX-License-Identifier: MIT
// Host side of the attention kernels: how a layer of CompressedHeads is laid out in buffers
// (gpu/shaders/include/attention_common.glsl documents the same layout from the shader side),
// the pipeline key, the split tuning, and the recording of the dispatches.
#pragma once

#include "vk/context.h"

#include "kvs/attention_backend.h"

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

namespace kvs::gpu::kernels {

enum class Kernel : std::uint32_t { ProbeSplit, ProbeSplitSubgroup, Combine, AttentionMap, Copy };
const char* kernelName(Kernel kernel);

// What varies per pipeline: the specialization constants (ids in attention_common.glsl).
struct PipelineKey {
    Kernel kernel = Kernel::ProbeSplit;
    std::uint32_t wg = 64, hsk = 64, hsv = 64;
    std::uint32_t kMode = 0, vMode = 0; // 0 fp32, 1 fp16, 2 quantized
    std::uint32_t kBits = 4, kGroup = 32, vBits = 4, vGroup = 32;
    std::uint32_t dSplit = 8, kPerToken = 0, vPerChannel = 0;
    std::uint32_t subgroup = 0, rows = 1; // subgroup kernel: subgroup size, query heads per WG
    std::uint32_t kVec = 0, vVec = 0;     // subgroup kernel: dense rows read as uvec4
    auto operator<=>(const PipelineKey&) const = default;
    vk::SpecConstants spec() const;
};

// Lazily created pipelines, one per key (GPU.md decision 2).
class PipelineSet {
public:
    explicit PipelineSet(vk::Context& context) : m_context(context) {}
    const vk::Pipeline& get(const PipelineKey& key);

private:
    vk::Context& m_context;
    std::map<PipelineKey, std::unique_ptr<vk::Pipeline>> m_pipelines;
};

// The storage form of a layer's heads; equal for every head of one upload.
struct Variant {
    std::uint32_t hsk = 0, hsv = 0, kMode = 0, vMode = 0;
    std::uint32_t kBits = 4, kGroup = 32, vBits = 4, vGroup = 32, kPerToken = 0, vPerChannel = 0;
    std::uint32_t kStride = 0, vStride = 0; // words per row
    std::uint32_t kRotationInterleaved = 0; // kMode 3 (keys = rotated values): pair layout
    auto operator<=>(const Variant&) const = default;
};
Variant variantOf(const CompressedHead& head);

// KV heads [first, first + count) of a layer, uploaded. Every role's bytes fit one binding.
struct Upload {
    int firstKvHead = 0;
    int kvHeads = 0;
    Variant variant;
    bool bias = false;
    int maxKept = 0;
    std::vector<int> kept;
    std::unique_ptr<vk::Buffer> k, v, ks, vs, biasBuf, pos, heads;
    std::size_t cacheBytes = 0;  // K + V + scales (+ bias) as the probe kernel reads them
    std::size_t keyBytes = 0;    // K + key scales (+ bias): what the map kernel reads
    float keyScale = 1.0f;       // kMode 3: the rotation's cos/sin factor, folded into the scale
    DeviceAllocation allocation; // the device memory of the buffers above (scratch 0)
};

// Splits the layer into uploads whose buffers each fit `maxBinding` bytes (one KV head too large
// for a binding is an Error(Unsupported) naming the sizes).
std::vector<Upload> uploadLayer(vk::Context& context, std::span<const CompressedHead> heads,
                                std::uint64_t maxBinding);

struct RunOptions {
    int splits = 0; // 0 = tuned
    std::uint32_t wg = 64;
    std::uint32_t dSplit = 8;
    bool subgroups = true; // the subgroup kernel where the device has subgroup arithmetic
    bool probe = true;     // outputs + ln Σ
    bool map = false;      // scores + probabilities
    bool readBack = true;
};

// Which probe kernel runs: the subgroup kernel (rows = query heads per workgroup, wg = 4
// subgroups) where the device has subgroup arithmetic and the shapes fit, else the
// shared-memory kernel (rows 1, wg from RunOptions). KVS_VK_NO_SUBGROUPS=1 forces the latter.
struct ProbeChoice {
    bool subgroup = false;
    std::uint32_t subgroupSize = 0;
    std::uint32_t wg = 64;
    std::uint32_t rows = 1;
};
ProbeChoice chooseProbe(const DeviceInfo& device, const Variant& var, int group,
                        const RunOptions& ro);

struct RunResult {
    std::vector<Matrix> outputs;               // per query head of the upload: nq × hsv
    std::vector<std::vector<float>> logSumExp; // per query head
    std::vector<Matrix> scores, probabilities; // per query head: nq × kept (map only)
    std::vector<DispatchTiming> timings;
    DeviceAllocation scratch; // queries, partials, outputs, maps (only `scratch` and `buffers`)
};

// Key splits of the probe kernel: enough workgroups to fill the device (CPU devices: 4 per
// core; GPUs: 256 ≈ 2 per SM of a large GPU) with at least 4 tiles per split, at most 64.
// KVS_VK_SPLITS overrides. Rule from GPU.md ("splits = max(1, 2·cores / (heads·batch))").
int tuneSplits(const DeviceInfo& device, int maxKept, int workgroups, std::uint32_t wg);

// Runs the kernels on one upload. `queries[q]` (q over the upload's query heads, group per KV
// head) are already projected for low-rank keys (nq × hsk each).
RunResult run(vk::Context& context, PipelineSet& pipelines, const Upload& upload,
              std::span<const Matrix> queries, int group, const AttendOptions& options, float scale,
              const RunOptions& runOptions);

// Copy-kernel bandwidth: GB/s per repeat (read + write bytes / time).
std::vector<double> copyBandwidth(vk::Context& context, PipelineSet& pipelines, std::size_t bytes,
                                  int repeats);

} // namespace kvs::gpu::kernels
