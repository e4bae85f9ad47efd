// SPDX-License-Identifier: MIT
// Context: logical device creation, memory-type choice, submission with a fence, push descriptors
// (or a pool) for the shared layout, and the device-lost bookkeeping.
#include "context.h"

#include "bindings.h"
#include "buffer.h"
#include "instance_impl.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>

namespace kvs::gpu::vk {

void checkDevice(Context& context, VkResult result, const char* call, const char* file, int line) {
    if (result >= 0)
        return;
    if (result == VK_ERROR_DEVICE_LOST)
        context.markLost();
    throw resultError(result, call, file, line);
}

namespace {

bool envFlag(const char* name) {
    const char* v = std::getenv(name);
    if (!v)
        return false;
    const std::string_view s(v);
    return !(s.empty() || s == "0" || s == "off" || s == "false" || s == "no");
}

} // namespace

Context::Context(Instance instance) : m_instance(std::move(instance)) {}

std::unique_ptr<Context> Context::create(const ContextOptions& options) {
    auto instance = Instance::create(options.instance);
    if (!instance)
        throw instance.error();
    std::unique_ptr<Context> ctx(new Context(std::move(instance).value()));
    const Instance::Impl& impl = ctx->m_instance.impl();

    auto devices = enumerateDevices(ctx->m_instance);
    if (!devices)
        throw devices.error();
    if (devices->empty())
        throw Error(ErrorCode::Unsupported, "the Vulkan loader lists no device");
    const auto chosen = chooseDevice(*devices, options.device);
    if (!chosen)
        throw Error(ErrorCode::Unsupported,
                    options.device.empty()
                        ? std::string("no Vulkan device has a compute queue")
                        : "no Vulkan device matches \"" + options.device +
                              "\" (KVS_VULKAN_DEVICE); `kvstudio-cli devices` lists them");
    ctx->m_info = (*devices)[*chosen];
    if (!ctx->m_info.hasCompute)
        throw Error(ErrorCode::Unsupported, ctx->m_info.name + " has no compute queue");

    const auto physical = enumerateAll<VkPhysicalDevice>(
        "vkEnumeratePhysicalDevices", [&](std::uint32_t* count, VkPhysicalDevice* items) {
            return impl.fns.vkEnumeratePhysicalDevices(impl.instance, count, items);
        });
    ctx->m_physical = physical.at(ctx->m_info.index);
    impl.fns.vkGetPhysicalDeviceMemoryProperties(ctx->m_physical, &ctx->m_memory);

    const auto families = enumerateAll<VkQueueFamilyProperties>(
        "vkGetPhysicalDeviceQueueFamilyProperties",
        [&](std::uint32_t* count, VkQueueFamilyProperties* items) {
            impl.fns.vkGetPhysicalDeviceQueueFamilyProperties(ctx->m_physical, count, items);
            return VK_SUCCESS;
        });
    // A compute family, preferring one without graphics (dedicated compute queues) and with
    // timestamps.
    int best = -1;
    for (std::size_t i = 0; i < families.size(); ++i) {
        if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) == 0)
            continue;
        const auto score = [&](std::size_t k) {
            return (families[k].timestampValidBits > 0 ? 2 : 0) +
                   ((families[k].queueFlags & VK_QUEUE_GRAPHICS_BIT) == 0 ? 1 : 0);
        };
        if (best < 0 || score(i) > score(static_cast<std::size_t>(best)))
            best = static_cast<int>(i);
    }
    ctx->m_queueFamily = static_cast<std::uint32_t>(best);
    ctx->m_timestampBits = families[static_cast<std::size_t>(best)].timestampValidBits;

    const auto extensions = enumerateAll<VkExtensionProperties>(
        "vkEnumerateDeviceExtensionProperties",
        [&](std::uint32_t* count, VkExtensionProperties* items) {
            return impl.fns.vkEnumerateDeviceExtensionProperties(ctx->m_physical, nullptr, count,
                                                                 items);
        });
    const bool hasPush =
        std::any_of(extensions.begin(), extensions.end(), [](const VkExtensionProperties& e) {
            return std::strcmp(e.extensionName, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME) == 0;
        });
    ctx->m_pushDescriptors =
        hasPush && options.allowPushDescriptors && !envFlag("KVS_VK_NO_PUSH_DESCRIPTORS");
    std::vector<const char*> enabled;
    if (ctx->m_pushDescriptors)
        enabled.push_back(VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);

    const float priority = 1.0f;
    VkDeviceQueueCreateInfo queueInfo{};
    queueInfo.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    queueInfo.queueFamilyIndex = ctx->m_queueFamily;
    queueInfo.queueCount = 1;
    queueInfo.pQueuePriorities = &priority;
    VkDeviceCreateInfo deviceInfo{};
    deviceInfo.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
    deviceInfo.queueCreateInfoCount = 1;
    deviceInfo.pQueueCreateInfos = &queueInfo;
    deviceInfo.enabledExtensionCount = static_cast<std::uint32_t>(enabled.size());
    deviceInfo.ppEnabledExtensionNames = enabled.data();
    KVS_VK_CHECK(impl.fns.vkCreateDevice(ctx->m_physical, &deviceInfo, nullptr, &ctx->m_device));
    const PFN_vkGetDeviceProcAddr getDeviceProcAddr = impl.fns.vkGetDeviceProcAddr;
    if (!getDeviceProcAddr)
        throw Error(ErrorCode::Internal, "the Vulkan loader returned no vkGetDeviceProcAddr");
    ctx->m_fn.load(getDeviceProcAddr, ctx->m_device);
    if (ctx->m_pushDescriptors && !ctx->m_fn.vkCmdPushDescriptorSetKHR)
        ctx->m_pushDescriptors = false;
    ctx->m_fn.vkGetDeviceQueue(ctx->m_device, ctx->m_queueFamily, 0, &ctx->m_queue);

    // Host-visible device memory is the fast path on CPU devices and UMA; discrete GPUs get
    // device-local memory filled through staging (a small BAR heap must not hold the KV arena).
    ctx->m_mapDeviceMemory = ctx->m_info.type != DeviceType::Discrete;

    VkCommandPoolCreateInfo poolInfo{};
    poolInfo.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    poolInfo.flags =
        VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT | VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
    poolInfo.queueFamilyIndex = ctx->m_queueFamily;
    KVS_VK_CHECK(ctx->m_fn.vkCreateCommandPool(ctx->m_device, &poolInfo, nullptr, &ctx->m_pool));

    VkPipelineCacheCreateInfo cacheInfo{};
    cacheInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
    KVS_VK_CHECK(
        ctx->m_fn.vkCreatePipelineCache(ctx->m_device, &cacheInfo, nullptr, &ctx->m_cache));

    VkDescriptorSetLayoutBinding bindings[kBindingCount]{};
    for (std::uint32_t i = 0; i < kBindingCount; ++i) {
        bindings[i].binding = i;
        bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        bindings[i].descriptorCount = 1;
        bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo layoutInfo{};
    layoutInfo.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
    layoutInfo.flags =
        ctx->m_pushDescriptors ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0;
    layoutInfo.bindingCount = kBindingCount;
    layoutInfo.pBindings = bindings;
    KVS_VK_CHECK(ctx->m_fn.vkCreateDescriptorSetLayout(ctx->m_device, &layoutInfo, nullptr,
                                                       &ctx->m_setLayout));
    VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushConstantBytes};
    VkPipelineLayoutCreateInfo pipelineLayoutInfo{};
    pipelineLayoutInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
    pipelineLayoutInfo.setLayoutCount = 1;
    pipelineLayoutInfo.pSetLayouts = &ctx->m_setLayout;
    pipelineLayoutInfo.pushConstantRangeCount = 1;
    pipelineLayoutInfo.pPushConstantRanges = &range;
    KVS_VK_CHECK(ctx->m_fn.vkCreatePipelineLayout(ctx->m_device, &pipelineLayoutInfo, nullptr,
                                                  &ctx->m_pipelineLayout));
    if (!ctx->m_pushDescriptors)
        ctx->createDescriptorPool();

    VkFenceCreateInfo fenceInfo{};
    fenceInfo.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    KVS_VK_CHECK(ctx->m_fn.vkCreateFence(ctx->m_device, &fenceInfo, nullptr, &ctx->m_fence));

    ctx->m_dummy = std::make_unique<Buffer>(*ctx, 16, Buffer::Role::Host);
    return ctx;
}

void Context::createDescriptorPool() {
    // Enough sets for one submission of many dispatches; reset after every submission.
    constexpr std::uint32_t kSets = 256;
    VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSets * kBindingCount};
    VkDescriptorPoolCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
    info.maxSets = kSets;
    info.poolSizeCount = 1;
    info.pPoolSizes = &size;
    KVS_VK_CHECK(m_fn.vkCreateDescriptorPool(m_device, &info, nullptr, &m_descriptorPool));
}

Context::~Context() {
    if (m_device == VK_NULL_HANDLE)
        return;
    m_fn.vkDeviceWaitIdle(m_device);
    m_dummy.reset();
    // Children before the device; a handle creation never reached stays null.
    const auto destroy = [this](auto handle, auto destroyFn) {
        if (handle != VK_NULL_HANDLE)
            destroyFn(m_device, handle, nullptr);
    };
    destroy(m_fence, m_fn.vkDestroyFence);
    destroy(m_descriptorPool, m_fn.vkDestroyDescriptorPool);
    destroy(m_pipelineLayout, m_fn.vkDestroyPipelineLayout);
    destroy(m_setLayout, m_fn.vkDestroyDescriptorSetLayout);
    destroy(m_cache, m_fn.vkDestroyPipelineCache);
    destroy(m_pool, m_fn.vkDestroyCommandPool);
    m_fn.vkDestroyDevice(m_device, nullptr);
}

std::uint32_t Context::memoryType(std::uint32_t typeBits,
                                  std::initializer_list<VkMemoryPropertyFlags> preferences,
                                  VkMemoryPropertyFlags* chosenFlags) const {
    for (VkMemoryPropertyFlags wanted : preferences)
        for (std::uint32_t i = 0; i < m_memory.memoryTypeCount; ++i)
            if ((typeBits & (1u << i)) &&
                (m_memory.memoryTypes[i].propertyFlags & wanted) == wanted) {
                if (chosenFlags)
                    *chosenFlags = m_memory.memoryTypes[i].propertyFlags;
                return i;
            }
    throw Error(ErrorCode::Unsupported, m_info.name + " has no suitable memory type");
}

void Context::submitAndWait(const std::function<void(VkCommandBuffer)>& record) {
    if (m_lost)
        throw Error(ErrorCode::Internal, m_info.name + ": the Vulkan device was lost earlier");
    // Test hook: KVS_VK_SIMULATE_DEVICE_LOST=1 makes the next submission report a lost device,
    // so the fallback to the CPU can be tested without a misbehaving driver.
    if (envFlag("KVS_VK_SIMULATE_DEVICE_LOST"))
        checkDevice(*this, VK_ERROR_DEVICE_LOST, "vkQueueSubmit (simulated)", __FILE__, __LINE__);
    VkCommandBufferAllocateInfo alloc{};
    alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    alloc.commandPool = m_pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkAllocateCommandBuffers(m_device, &alloc, &cmd));
    struct Free {
        Context& c;
        VkCommandBuffer cmd;
        ~Free() {
            c.m_fn.vkFreeCommandBuffers(c.m_device, c.m_pool, 1, &cmd);
            if (c.m_descriptorPool)
                c.m_fn.vkResetDescriptorPool(c.m_device, c.m_descriptorPool, 0);
        }
    } freeLater{*this, cmd};

    VkCommandBufferBeginInfo begin{};
    begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkBeginCommandBuffer(cmd, &begin));
    record(cmd);
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkEndCommandBuffer(cmd));
    VkSubmitInfo submit{};
    submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &cmd;
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkResetFences(m_device, 1, &m_fence));
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkQueueSubmit(m_queue, 1, &submit, m_fence));
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkWaitForFences(m_device, 1, &m_fence, VK_TRUE,
                                                    std::numeric_limits<std::uint64_t>::max()));
}

void Context::bindBuffers(VkCommandBuffer cmd, const Bindings& bindings) {
    VkDescriptorBufferInfo infos[kBindingCount]{};
    VkWriteDescriptorSet writes[kBindingCount]{};
    for (std::uint32_t i = 0; i < kBindingCount; ++i) {
        const Buffer* b = bindings.at(i) ? bindings.at(i) : m_dummy.get();
        infos[i] = {b->handle(), 0, VK_WHOLE_SIZE};
        writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
        writes[i].dstBinding = i;
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &infos[i];
    }
    if (m_pushDescriptors) {
        m_fn.vkCmdPushDescriptorSetKHR(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, m_pipelineLayout, 0,
                                       kBindingCount, writes);
        return;
    }
    VkDescriptorSetAllocateInfo alloc{};
    alloc.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
    alloc.descriptorPool = m_descriptorPool;
    alloc.descriptorSetCount = 1;
    alloc.pSetLayouts = &m_setLayout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkAllocateDescriptorSets(m_device, &alloc, &set));
    for (auto& w : writes)
        w.dstSet = set;
    m_fn.vkUpdateDescriptorSets(m_device, kBindingCount, writes, 0, nullptr);
    m_fn.vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, m_pipelineLayout, 0, 1, &set,
                                 0, nullptr);
}

VkDeviceSize Context::memoryRequirement(VkDeviceSize bytes) {
    if (bytes == 0) // VUID-VkBufferCreateInfo-size-00912
        throw Error(ErrorCode::InvalidArgument, "memoryRequirement: a buffer has at least 1 byte");
    const VkBufferCreateInfo info = storageBufferInfo(bytes);
    VkBuffer buffer = VK_NULL_HANDLE;
    KVS_VK_DEVICE_CHECK(*this, m_fn.vkCreateBuffer(m_device, &info, nullptr, &buffer));
    VkMemoryRequirements req{};
    m_fn.vkGetBufferMemoryRequirements(m_device, buffer, &req);
    m_fn.vkDestroyBuffer(m_device, buffer, nullptr);
    return req.size;
}

} // namespace kvs::gpu::vk
