// SPDX-License-Identifier: MIT
// Pipeline: a compute pipeline from embedded SPIR-V and specialization constants.
#include "pipeline.h"

#include "context.h"

#include <vector>

namespace kvs::gpu::vk {

Pipeline::Pipeline(Context& context, std::span<const std::uint32_t> spirv,
                   const SpecConstants& spec, const char* name)
    : m_context(context), m_name(name) {
    const DeviceFunctions& fn = context.fn();
    VkShaderModuleCreateInfo moduleInfo{};
    moduleInfo.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    moduleInfo.codeSize = spirv.size() * sizeof(std::uint32_t);
    moduleInfo.pCode = spirv.data();
    VkShaderModule module = VK_NULL_HANDLE;
    KVS_VK_DEVICE_CHECK(context,
                        fn.vkCreateShaderModule(context.device(), &moduleInfo, nullptr, &module));

    std::vector<VkSpecializationMapEntry> entries(spec.size());
    for (std::size_t i = 0; i < spec.size(); ++i)
        entries[i] = {static_cast<std::uint32_t>(i),
                      static_cast<std::uint32_t>(i * sizeof(std::uint32_t)), sizeof(std::uint32_t)};
    VkSpecializationInfo specInfo{};
    specInfo.mapEntryCount = static_cast<std::uint32_t>(entries.size());
    specInfo.pMapEntries = entries.data();
    specInfo.dataSize = spec.size() * sizeof(std::uint32_t);
    specInfo.pData = spec.data();

    VkComputePipelineCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
    info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    info.stage.module = module;
    info.stage.pName = "main";
    info.stage.pSpecializationInfo = &specInfo;
    info.layout = context.pipelineLayout();
    const VkResult result = fn.vkCreateComputePipelines(context.device(), context.pipelineCache(),
                                                        1, &info, nullptr, &m_pipeline);
    fn.vkDestroyShaderModule(context.device(), module, nullptr);
    KVS_VK_DEVICE_CHECK(context, result);
}

Pipeline::~Pipeline() {
    if (m_pipeline)
        m_context.fn().vkDestroyPipeline(m_context.device(), m_pipeline, nullptr);
}

} // namespace kvs::gpu::vk
