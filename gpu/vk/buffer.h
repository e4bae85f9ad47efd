// SPDX-License-Identifier: MIT
// Buffer: a storage buffer with its own device memory (mapped, or filled through staging).
#pragma once

#include "context.h"

#include <memory>
#include <vector>

namespace kvs::gpu::vk {

// A storage buffer with its own memory. Role Device: what kernels read (mapped where
// Context::mapDeviceMemory(), else device-local filled through a staging copy). Role Host:
// host-visible memory kernels write and the host reads (outputs), or scratch for copies.
class Buffer {
public:
    enum class Role { Device, Host };
    Buffer(Context& context, VkDeviceSize size, Role role);
    ~Buffer();
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    VkBuffer handle() const { return m_buffer; }
    VkDeviceSize size() const { return m_size; }
    // What the device memory of this buffer really takes: VkMemoryRequirements::size for the
    // created buffer (driver padding included; allocated exactly, one allocation per buffer).
    VkDeviceSize allocatedBytes() const { return m_allocated; }
    // Copies bytes in (mapping or staging). `bytes` ≤ size().
    void upload(const void* data, VkDeviceSize bytes);
    // Copies bytes out; Host buffers only.
    void download(void* data, VkDeviceSize bytes) const;

private:
    void release();
    Context& m_context;
    VkBuffer m_buffer = VK_NULL_HANDLE;
    VkDeviceMemory m_memory = VK_NULL_HANDLE;
    VkDeviceSize m_size = 0;
    VkDeviceSize m_allocated = 0;
    void* m_mapped = nullptr;
    bool m_coherent = true;
};

// How every Buffer is created (storage + transfer usage, exclusive); Context::memoryRequirement
// asks the driver about a buffer made the same way.
VkBufferCreateInfo storageBufferInfo(VkDeviceSize size);

// A Device buffer holding `data` (at least 16 bytes, as every Buffer).
template <class T>
std::unique_ptr<Buffer> makeFilledBuffer(Context& context, const std::vector<T>& data) {
    auto buffer = std::make_unique<Buffer>(context, data.size() * sizeof(T), Buffer::Role::Device);
    buffer->upload(data.data(), data.size() * sizeof(T));
    return buffer;
}

} // namespace kvs::gpu::vk
