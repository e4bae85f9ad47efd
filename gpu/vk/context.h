// SPDX-License-Identifier: MIT
// Context: instance + logical device + queue + command pool + pipeline cache + the one descriptor
// layout every kernel uses. The rest of gpu/vk's RAII vocabulary: buffer.h (device memory with
// mapping or staging), pipeline.h (compute pipeline from embedded SPIR-V), bindings.h (which
// buffer each binding gets), submission.h (one command buffer with timestamps and a fence).
#pragma once

#include "check.h"
#include "kvs/gpu/devices.h"
#include "kvs/gpu/instance.h"
#include "loader.h"
#include "shaders/include/attention_layout.h"
#include "vulkan_api.h"

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>

namespace kvs::gpu::vk {

// Every storage buffer binding of the one shared descriptor layout (GPU.md: one layout for all
// kernels; unused slots get a 16-byte dummy buffer). Named in attention_layout.h.
constexpr std::uint32_t kBindingCount = layout::kBindingCount;
constexpr std::uint32_t kPushConstantBytes = layout::kPushConstantBytes;

struct ContextOptions {
    InstanceOptions instance;
    std::string device;               // KVS_VULKAN_DEVICE syntax; "" = automatic choice
    bool allowPushDescriptors = true; // false (or KVS_VK_NO_PUSH_DESCRIPTORS=1): descriptor pool
};

class Bindings;
class Buffer;

class Context {
public:
    // Throws kvs::Error: Unsupported without loader/driver/device, Vulkan errors otherwise.
    static std::unique_ptr<Context> create(const ContextOptions& options);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    Instance& instance() { return m_instance; }
    const DeviceInfo& info() const { return m_info; }
    const DeviceFunctions& fn() const { return m_fn; }
    VkDevice device() const { return m_device; }
    VkQueue queue() const { return m_queue; }
    VkCommandPool commandPool() const { return m_pool; }
    VkPipelineCache pipelineCache() const { return m_cache; }
    VkDescriptorSetLayout setLayout() const { return m_setLayout; }
    VkPipelineLayout pipelineLayout() const { return m_pipelineLayout; }
    bool pushDescriptors() const { return m_pushDescriptors; }
    std::uint32_t timestampValidBits() const { return m_timestampBits; }
    std::uint64_t maxStorageBufferRange() const { return m_info.maxStorageBufferRange; }
    // True where device memory is host-visible and the fast path (CPU devices, UMA): kernels'
    // inputs are written through a mapping instead of a staging copy.
    bool mapDeviceMemory() const { return m_mapDeviceMemory; }

    // The first memory type allowed by `typeBits` that has all flags of one entry of
    // `preferences`, tried in order; throws when none fits.
    std::uint32_t memoryType(std::uint32_t typeBits,
                             std::initializer_list<VkMemoryPropertyFlags> preferences,
                             VkMemoryPropertyFlags* chosenFlags) const;

    // Records with `record`, submits, waits for the fence. Throws on failure (device lost too).
    void submitAndWait(const std::function<void(VkCommandBuffer)>& record);

    // Binds the storage buffers of the shared layout for the next dispatch on `cmd` (the dummy
    // buffer where `bindings` has none): push descriptors where the device has them, else a set
    // from a pool reset by submitAndWait.
    void bindBuffers(VkCommandBuffer cmd, const Bindings& bindings);

    const Buffer& dummyBuffer() const { return *m_dummy; }

    // VkMemoryRequirements::size of a storage buffer of `bytes` bytes created as Buffer creates
    // its buffers (same usage flags): what one such buffer really takes on this device.
    VkDeviceSize memoryRequirement(VkDeviceSize bytes);

    // Set when a Vulkan call reported VK_ERROR_DEVICE_LOST; every later use fails fast.
    bool lost() const { return m_lost; }
    void markLost() { m_lost = true; }

private:
    explicit Context(Instance instance); // in context.cpp: m_dummy needs Buffer complete
    void createDescriptorPool();

    Instance m_instance;
    DeviceInfo m_info;
    VkPhysicalDevice m_physical = VK_NULL_HANDLE;
    VkPhysicalDeviceMemoryProperties m_memory{};
    DeviceFunctions m_fn;
    VkDevice m_device = VK_NULL_HANDLE;
    VkQueue m_queue = VK_NULL_HANDLE;
    std::uint32_t m_queueFamily = 0;
    std::uint32_t m_timestampBits = 0;
    VkCommandPool m_pool = VK_NULL_HANDLE;
    VkPipelineCache m_cache = VK_NULL_HANDLE;
    VkDescriptorSetLayout m_setLayout = VK_NULL_HANDLE;
    VkPipelineLayout m_pipelineLayout = VK_NULL_HANDLE;
    VkDescriptorPool m_descriptorPool = VK_NULL_HANDLE;
    VkFence m_fence = VK_NULL_HANDLE;
    bool m_pushDescriptors = false;
    bool m_mapDeviceMemory = false;
    bool m_lost = false;
    std::unique_ptr<Buffer> m_dummy;
};

// Throws the right kvs::Error for a failed call, marking the context lost on DEVICE_LOST.
void checkDevice(Context& context, VkResult result, const char* call, const char* file, int line);

} // namespace kvs::gpu::vk

#define KVS_VK_DEVICE_CHECK(context, call)                                                         \
    ::kvs::gpu::vk::checkDevice((context), (call), #call, __FILE__, __LINE__)
