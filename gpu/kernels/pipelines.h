// SPDX-License-Identifier: MIT
// The kernels (one per gpu/shaders/*.comp), the pipeline key (every specialization constant) and
// the lazily built pipeline per key.
#pragma once

#include "vk/pipeline.h"

#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>

namespace kvs::gpu::kernels {

using layout::Storage;

enum class Kernel : std::uint32_t {
    ProbeSplit,
    ProbeSplitSubgroup,
    Combine,
    AttentionMap,
    Copy,
    Hadamard
};
const char* kernelName(Kernel kernel);
inline constexpr Kernel kAllKernels[] = {Kernel::ProbeSplit, Kernel::ProbeSplitSubgroup,
                                         Kernel::Combine,    Kernel::AttentionMap,
                                         Kernel::Copy,       Kernel::Hadamard};
// The embedded SPIR-V words of the kernel's shader.
std::span<const std::uint32_t> spirv(Kernel kernel);

// What varies per pipeline: the specialization constants (ids: layout::SpecId).
struct PipelineKey {
    Kernel kernel = Kernel::ProbeSplit;
    std::uint32_t wg = 64, hsk = 64, hsv = 64;
    Storage kMode = Storage::F32, vMode = Storage::F32;
    std::uint32_t kBits = 4, kGroup = 32, vBits = 4, vGroup = 32;
    std::uint32_t dSplit = 8, kPerToken = 0, vPerChannel = 0;
    std::uint32_t subgroup = 0, rows = 1; // subgroup kernel: subgroup size, query heads per WG
    std::uint32_t kVec = 0, vVec = 0;     // subgroup kernel: dense rows read as uvec4
    auto operator<=>(const PipelineKey&) const = default;
    // Values by id: the copy kernel takes WG only, the Hadamard kernel WG, HSK (the row length)
    // and K_GROUP (the block), the subgroup kernel four more.
    vk::SpecConstants spec() const;
};

// Lazily created pipelines, one per key (GPU.md decision 2), at most `capacity` of them: a new
// key beyond it destroys the least recently used pipeline. Every low-rank width, codec bit width
// and group size is a key of its own, and on lavapipe each pipeline keeps its compiled code
// (about 1.4 MiB of heap): unbounded, the studio's soak held 241 MiB of them after five minutes,
// still growing (docs/soak.md). A pipeline handed out stays valid while fewer than
// `capacity` other keys are asked for, so the few that one run() records (five at most) are never
// destroyed before it submits; callers hold the set's owner's lock, as for every get.
class PipelineSet {
public:
    static constexpr std::size_t kDefaultCapacity = 64;
    explicit PipelineSet(vk::Context& context, std::size_t capacity = kDefaultCapacity)
        : m_context(context), m_capacity(capacity < 8 ? 8 : capacity) {}
    const vk::Pipeline& get(const PipelineKey& key);
    std::size_t size() const { return m_pipelines.size(); }
    std::size_t capacity() const { return m_capacity; }
    // Pipelines built so far, those destroyed and built again included.
    std::size_t created() const { return m_created; }

private:
    struct Entry {
        std::unique_ptr<vk::Pipeline> pipeline;
        std::uint64_t lastUse = 0;
    };
    vk::Context& m_context;
    std::size_t m_capacity;
    std::uint64_t m_clock = 0;
    std::size_t m_created = 0;
    std::map<PipelineKey, Entry> m_pipelines;
};

} // namespace kvs::gpu::kernels
