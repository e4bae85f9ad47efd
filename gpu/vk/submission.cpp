// SPDX-License-Identifier: MIT
// Submission: one command buffer of dispatches with barriers between them and timestamps around
// each, submitted and waited for.
#include "submission.h"

#include "bindings.h"
#include "buffer.h"
#include "pipeline.h"

namespace kvs::gpu::vk {

Submission::Submission(Context& context, std::uint32_t maxDispatches)
    : m_context(context), m_capacity(maxDispatches) {
    if (context.timestampValidBits() > 0 && maxDispatches > 0) {
        VkQueryPoolCreateInfo info{};
        info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
        info.queryType = VK_QUERY_TYPE_TIMESTAMP;
        info.queryCount = 2 * maxDispatches;
        KVS_VK_DEVICE_CHECK(
            context, context.fn().vkCreateQueryPool(context.device(), &info, nullptr, &m_queries));
    }
}

Submission::~Submission() {
    if (m_queries)
        m_context.fn().vkDestroyQueryPool(m_context.device(), m_queries, nullptr);
}

void Submission::dispatch(const Pipeline& pipeline, const Bindings& bindings,
                          const void* pushConstants, std::uint32_t pushBytes, std::uint32_t x,
                          std::uint32_t y, std::uint32_t z) {
    if (m_recorded.size() >= m_capacity)
        throw Error(ErrorCode::Internal, "Submission: more dispatches than reserved");
    Recorded r{&pipeline, bindings, {}, x, y, z};
    const auto* bytes = static_cast<const std::uint8_t*>(pushConstants);
    r.push.assign(bytes, bytes + pushBytes);
    m_recorded.push_back(std::move(r));
}

void Submission::run() {
    const DeviceFunctions& fn = m_context.fn();
    const auto count = static_cast<std::uint32_t>(m_recorded.size());
    m_context.submitAndWait([&](VkCommandBuffer cmd) {
        if (m_queries)
            fn.vkCmdResetQueryPool(cmd, m_queries, 0, 2 * m_capacity);
        for (std::uint32_t i = 0; i < count; ++i) {
            const Recorded& r = m_recorded[i];
            // Each dispatch reads what the previous ones wrote (partials -> combine).
            VkMemoryBarrier barrier{};
            barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
            barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
            barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
            fn.vkCmdPipelineBarrier(
                cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
            if (m_queries)
                fn.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, m_queries, 2 * i);
            fn.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r.pipeline->handle());
            m_context.bindBuffers(cmd, r.bindings);
            if (!r.push.empty())
                fn.vkCmdPushConstants(cmd, m_context.pipelineLayout(), VK_SHADER_STAGE_COMPUTE_BIT,
                                      0, static_cast<std::uint32_t>(r.push.size()), r.push.data());
            fn.vkCmdDispatch(cmd, r.x, r.y, r.z);
            if (m_queries)
                fn.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, m_queries,
                                       2 * i + 1);
        }
        // Make shader writes visible to the host mapping.
        VkMemoryBarrier toHost{};
        toHost.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
        toHost.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
        toHost.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
        fn.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &toHost, 0, nullptr, 0, nullptr);
    });
    m_microseconds.assign(count, 0.0);
    if (!m_queries || count == 0)
        return;
    std::vector<std::uint64_t> ticks(2 * count);
    KVS_VK_DEVICE_CHECK(
        m_context, fn.vkGetQueryPoolResults(m_context.device(), m_queries, 0, 2 * count,
                                            ticks.size() * sizeof(std::uint64_t), ticks.data(),
                                            sizeof(std::uint64_t),
                                            VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    const std::uint32_t bits = m_context.timestampValidBits();
    const std::uint64_t mask = bits >= 64 ? ~0ull : ((1ull << bits) - 1ull);
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::uint64_t delta = ((ticks[2 * i + 1] & mask) - (ticks[2 * i] & mask)) & mask;
        m_microseconds[i] = static_cast<double>(delta) * m_context.info().timestampPeriod / 1000.0;
    }
}

} // namespace kvs::gpu::vk
