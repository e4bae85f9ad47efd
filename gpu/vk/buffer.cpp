// SPDX-License-Identifier: MIT
// Buffer: a storage buffer with its own memory, filled through a mapping or a staging copy.
#include "buffer.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace kvs::gpu::vk {

VkBufferCreateInfo storageBufferInfo(VkDeviceSize size) {
    VkBufferCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
    info.size = size;
    info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT;
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    return info;
}

Buffer::Buffer(Context& context, VkDeviceSize size, Role role)
    : m_context(context), m_size(std::max<VkDeviceSize>(size, 16)) {
    const DeviceFunctions& fn = context.fn();
    const VkBufferCreateInfo info = storageBufferInfo(m_size);
    KVS_VK_DEVICE_CHECK(context, fn.vkCreateBuffer(context.device(), &info, nullptr, &m_buffer));
    try {
        VkMemoryRequirements req{};
        fn.vkGetBufferMemoryRequirements(context.device(), m_buffer, &req);
        constexpr VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
        constexpr VkMemoryPropertyFlags visible =
            VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        VkMemoryPropertyFlags flags = 0;
        std::uint32_t type = 0;
        if (role == Role::Host)
            type = context.memoryType(req.memoryTypeBits,
                                      {visible | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, visible,
                                       VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT},
                                      &flags);
        else if (context.mapDeviceMemory())
            type = context.memoryType(req.memoryTypeBits,
                                      {local | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                       VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, local},
                                      &flags);
        else
            type = context.memoryType(req.memoryTypeBits, {local, 0}, &flags);
        VkMemoryAllocateInfo alloc{};
        alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
        alloc.allocationSize = req.size;
        alloc.memoryTypeIndex = type;
        KVS_VK_DEVICE_CHECK(context,
                            fn.vkAllocateMemory(context.device(), &alloc, nullptr, &m_memory));
        m_allocated = req.size;
        KVS_VK_DEVICE_CHECK(context,
                            fn.vkBindBufferMemory(context.device(), m_buffer, m_memory, 0));
        if (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
            KVS_VK_DEVICE_CHECK(context, fn.vkMapMemory(context.device(), m_memory, 0,
                                                        VK_WHOLE_SIZE, 0, &m_mapped));
            m_coherent = (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
        }
    } catch (...) {
        release();
        throw;
    }
}

Buffer::~Buffer() {
    release();
}

void Buffer::release() {
    const DeviceFunctions& fn = m_context.fn();
    if (m_mapped)
        fn.vkUnmapMemory(m_context.device(), m_memory);
    m_mapped = nullptr;
    if (m_buffer)
        fn.vkDestroyBuffer(m_context.device(), m_buffer, nullptr);
    m_buffer = VK_NULL_HANDLE;
    if (m_memory)
        fn.vkFreeMemory(m_context.device(), m_memory, nullptr);
    m_memory = VK_NULL_HANDLE;
}

void Buffer::upload(const void* data, VkDeviceSize bytes) {
    if (bytes == 0)
        return;
    if (bytes > m_size)
        throw Error(ErrorCode::Internal, "Buffer::upload: " + std::to_string(bytes) +
                                             " bytes into a buffer of " + std::to_string(m_size));
    if (m_mapped) {
        std::memcpy(m_mapped, data, bytes);
        if (!m_coherent) {
            VkMappedMemoryRange range{};
            range.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE;
            range.memory = m_memory;
            range.size = VK_WHOLE_SIZE;
            KVS_VK_DEVICE_CHECK(
                m_context, m_context.fn().vkFlushMappedMemoryRanges(m_context.device(), 1, &range));
        }
        return;
    }
    Buffer staging(m_context, bytes, Role::Host);
    staging.upload(data, bytes);
    m_context.submitAndWait([&](VkCommandBuffer cmd) {
        VkBufferCopy region{0, 0, bytes};
        m_context.fn().vkCmdCopyBuffer(cmd, staging.handle(), m_buffer, 1, &region);
        VkMemoryBarrier barrier{};
        barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
        barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
        barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT;
        m_context.fn().vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0,
                                            nullptr, 0, nullptr);
    });
}

void Buffer::download(void* data, VkDeviceSize bytes) const {
    if (bytes == 0)
        return;
    if (!m_mapped || bytes > m_size)
        throw Error(ErrorCode::Internal, "Buffer::download from an unmapped or too small buffer");
    if (!m_coherent) {
        VkMappedMemoryRange range{};
        range.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE;
        range.memory = m_memory;
        range.size = VK_WHOLE_SIZE;
        KVS_VK_DEVICE_CHECK(m_context, m_context.fn().vkInvalidateMappedMemoryRanges(
                                           m_context.device(), 1, &range));
    }
    std::memcpy(data, m_mapped, bytes);
}

} // namespace kvs::gpu::vk
