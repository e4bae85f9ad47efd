// SPDX-License-Identifier: MIT
// Pipeline: a compute pipeline of the shared layout from embedded SPIR-V and specialization
// constants.
#pragma once

#include "context.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kvs::gpu::vk {

// Specialization-constant values of one pipeline, by constant id (0, 1, 2, ...).
using SpecConstants = std::vector<std::uint32_t>;

class Pipeline {
public:
    Pipeline(Context& context, std::span<const std::uint32_t> spirv, const SpecConstants& spec,
             const char* name);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;
    VkPipeline handle() const { return m_pipeline; }
    const std::string& name() const { return m_name; }

private:
    Context& m_context;
    VkPipeline m_pipeline = VK_NULL_HANDLE;
    std::string m_name;
};

} // namespace kvs::gpu::vk
