// SPDX-License-Identifier: MIT
// Kernel names, specialization constants by id, and the pipeline cache by key.
#include "pipelines.h"

#include "shaders.h"

#include <algorithm>

namespace kvs::gpu::kernels {

using layout::SpecId;

const char* kernelName(Kernel kernel) {
    switch (kernel) {
    case Kernel::ProbeSplit:
        return "probe_split";
    case Kernel::ProbeSplitSubgroup:
        return "probe_split_sg";
    case Kernel::Combine:
        return "combine";
    case Kernel::AttentionMap:
        return "attention_map";
    case Kernel::Copy:
        return "copy";
    case Kernel::Hadamard:
        return "hadamard";
    }
    return "?";
}

vk::SpecConstants PipelineKey::spec() const {
    if (kernel == Kernel::Copy)
        return {wg}; // KVS_SPEC_WG only
    if (kernel == Kernel::Hadamard) {
        vk::SpecConstants spec(layout::index(SpecId::KGroup) + 1);
        spec.at(layout::index(SpecId::Wg)) = wg;
        spec.at(layout::index(SpecId::Hsk)) = hsk;
        spec.at(layout::index(SpecId::KGroup)) = kGroup;
        return spec;
    }
    const bool subgroupKernel = kernel == Kernel::ProbeSplitSubgroup;
    vk::SpecConstants spec(subgroupKernel ? layout::kSubgroupSpecCount
                                          : layout::kAttentionSpecCount);
    const auto set = [&](SpecId id, std::uint32_t value) { spec.at(layout::index(id)) = value; };
    set(SpecId::Wg, wg);
    set(SpecId::Hsk, hsk);
    set(SpecId::Hsv, hsv);
    set(SpecId::KMode, layout::index(kMode));
    set(SpecId::VMode, layout::index(vMode));
    set(SpecId::KBits, kBits);
    set(SpecId::KGroup, kGroup);
    set(SpecId::VBits, vBits);
    set(SpecId::VGroup, vGroup);
    set(SpecId::DSplit, dSplit);
    set(SpecId::KPerToken, kPerToken);
    set(SpecId::VPerChannel, vPerChannel);
    if (subgroupKernel) {
        set(SpecId::Subgroup, subgroup);
        set(SpecId::Rows, rows);
        set(SpecId::KVec, kVec);
        set(SpecId::VVec, vVec);
    }
    return spec;
}

std::span<const std::uint32_t> spirv(Kernel kernel) {
    switch (kernel) {
    case Kernel::ProbeSplit:
        return {shaders::probe_split, shaders::probe_split_words};
    case Kernel::ProbeSplitSubgroup:
        return {shaders::probe_split_sg, shaders::probe_split_sg_words};
    case Kernel::Combine:
        return {shaders::combine, shaders::combine_words};
    case Kernel::AttentionMap:
        return {shaders::attention_map, shaders::attention_map_words};
    case Kernel::Copy:
        return {shaders::copy, shaders::copy_words};
    case Kernel::Hadamard:
        return {shaders::hadamard, shaders::hadamard_words};
    }
    return {};
}

const vk::Pipeline& PipelineSet::get(const PipelineKey& key) {
    if (auto it = m_pipelines.find(key); it != m_pipelines.end()) {
        it->second.lastUse = ++m_clock;
        return *it->second.pipeline;
    }
    auto pipeline = std::make_unique<vk::Pipeline>(m_context, spirv(key.kernel), key.spec(),
                                                   kernelName(key.kernel));
    ++m_created;
    // The least recently used goes (a linear scan: a few dozen entries, against a compile).
    if (m_pipelines.size() >= m_capacity)
        m_pipelines.erase(std::min_element(
            m_pipelines.begin(), m_pipelines.end(),
            [](const auto& a, const auto& b) { return a.second.lastUse < b.second.lastUse; }));
    Entry& entry = m_pipelines[key];
    entry.pipeline = std::move(pipeline);
    entry.lastUse = ++m_clock;
    return *entry.pipeline;
}

} // namespace kvs::gpu::kernels
