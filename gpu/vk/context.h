// SPDX-License-Identifier: MIT
// The small RAII vocabulary of gpu/: Context (instance + logical device + queue + command pool +
// pipeline cache), Buffer (device memory with mapping or staging), Pipeline (compute pipeline
// from embedded SPIR-V with specialization constants), Submission (one command buffer with
// timestamp queries and a fence).
#pragma once

#include "check.h"
#include "kvs/gpu/devices.h"
#include "kvs/gpu/instance.h"
#include "loader.h"
#include "vulkan_api.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace kvs::gpu::vk {

// Every storage buffer binding of the one shared descriptor layout (GPU.md: one layout for all
// kernels; unused slots get a 16-byte dummy buffer).
constexpr std::uint32_t kBindingCount = 12;
constexpr std::uint32_t kPushConstantBytes = 40;

struct ContextOptions {
    InstanceOptions instance;
    std::string device;               // KVS_VULKAN_DEVICE syntax; "" = automatic choice
    bool allowPushDescriptors = true; // false (or KVS_VK_NO_PUSH_DESCRIPTORS=1): descriptor pool
};

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

    // Binds the storage buffers of the shared layout for the next dispatch on `cmd`: push
    // descriptors where the device has them, else a set from a pool reset by submitAndWait.
    void bindBuffers(VkCommandBuffer cmd, std::span<const Buffer* const> buffers);

    const Buffer& dummyBuffer() const { return *m_dummy; }

    // VkMemoryRequirements::size of a storage buffer of `bytes` bytes created as Buffer creates
    // its buffers (same usage flags): what one such buffer really takes on this device.
    VkDeviceSize memoryRequirement(VkDeviceSize bytes);

    // Set when a Vulkan call reported VK_ERROR_DEVICE_LOST; every later use fails fast.
    bool lost() const { return m_lost; }
    void markLost() { m_lost = true; }

private:
    Context(Instance instance) : m_instance(std::move(instance)) {}
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

// One recorded batch of dispatches with a timestamp pair around each; run() submits and waits,
// then timings() holds microseconds per dispatch (0 where the queue has no timestamps).
class Submission {
public:
    Submission(Context& context, std::uint32_t maxDispatches);
    ~Submission();
    Submission(const Submission&) = delete;
    Submission& operator=(const Submission&) = delete;

    // Records: barrier on previous writes, bind, push constants, dispatch, timestamps.
    void dispatch(const Pipeline& pipeline, std::span<const Buffer* const> buffers,
                  const void* pushConstants, std::uint32_t pushBytes, std::uint32_t x,
                  std::uint32_t y, std::uint32_t z);
    void run();
    const std::vector<double>& microseconds() const { return m_microseconds; }

private:
    Context& m_context;
    VkQueryPool m_queries = VK_NULL_HANDLE;
    std::uint32_t m_capacity = 0;
    struct Recorded {
        const Pipeline* pipeline;
        std::vector<const Buffer*> buffers;
        std::vector<std::uint8_t> push;
        std::uint32_t x, y, z;
    };
    std::vector<Recorded> m_recorded;
    std::vector<double> m_microseconds;
};

// Throws the right kvs::Error for a failed call, marking the context lost on DEVICE_LOST.
void checkDevice(Context& context, VkResult result, const char* call, const char* file, int line);

} // namespace kvs::gpu::vk

#define KVS_VK_DEVICE_CHECK(context, call)                                                         \
    ::kvs::gpu::vk::checkDevice((context), (call), #call, __FILE__, __LINE__)
