// SPDX-License-Identifier: MIT
// The kernels (one per gpu/shaders/*.comp), the pipeline key (every specialization constant) and
// the lazily built pipeline per key.
#pragma once

#include "vk/pipeline.h"

#include <compare>
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

// Lazily created pipelines, one per key (GPU.md decision 2).
class PipelineSet {
public:
    explicit PipelineSet(vk::Context& context) : m_context(context) {}
    const vk::Pipeline& get(const PipelineKey& key);

private:
    vk::Context& m_context;
    std::map<PipelineKey, std::unique_ptr<vk::Pipeline>> m_pipelines;
};

} // namespace kvs::gpu::kernels
