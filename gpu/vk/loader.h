// SPDX-License-Identifier: MIT
// The Vulkan loader, opened at run time with dlopen, and the tables of entry points gpu/ calls.
#pragma once

#include "vulkan_api.h"

#include <string>

namespace kvs::gpu::vk {

// Entry points that exist before any instance does.
struct GlobalFunctions {
    std::string library; // what was opened: "libvulkan.so.1" or $KVS_VULKAN_LOADER
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion = nullptr; // null on a 1.0 loader
    PFN_vkEnumerateInstanceLayerProperties vkEnumerateInstanceLayerProperties = nullptr;
    PFN_vkEnumerateInstanceExtensionProperties vkEnumerateInstanceExtensionProperties = nullptr;
    PFN_vkCreateInstance vkCreateInstance = nullptr;
};

// Opens the loader once per process (thread-safe) and returns its global entry points. The library
// is libvulkan.so.1 unless the environment variable KVS_VULKAN_LOADER names another file. Throws
// Error(Unsupported, "no Vulkan loader (libvulkan.so.1) found: <dlerror text>") when it cannot be
// opened; the outcome is cached, so later calls fail the same way without retrying. The library
// is never closed: drivers and layers may keep threads and exit handlers inside it.
const GlobalFunctions& globalFunctions();

// Instance-level entry points gpu/ uses. Add a line here to use another one.
#define KVS_VK_INSTANCE_FUNCTIONS(X)                                                               \
    X(vkDestroyInstance)                                                                           \
    X(vkEnumeratePhysicalDevices)                                                                  \
    X(vkGetPhysicalDeviceProperties)                                                               \
    X(vkGetPhysicalDeviceProperties2)                                                              \
    X(vkGetPhysicalDeviceFeatures2)                                                                \
    X(vkGetPhysicalDeviceMemoryProperties)                                                         \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                    \
    X(vkEnumerateDeviceExtensionProperties)                                                        \
    X(vkGetDeviceProcAddr)                                                                         \
    X(vkCreateDevice)                                                                              \
    X(vkCreateDebugUtilsMessengerEXT)                                                              \
    X(vkDestroyDebugUtilsMessengerEXT)                                                             \
    X(vkSubmitDebugUtilsMessageEXT)

struct InstanceFunctions {
#define KVS_VK_DECLARE_FUNCTION(name) PFN_##name name = nullptr;
    KVS_VK_INSTANCE_FUNCTIONS(KVS_VK_DECLARE_FUNCTION)
#undef KVS_VK_DECLARE_FUNCTION

    // Resolves every entry point of the list for `instance`. Those the instance lacks (extensions
    // not enabled, 1.1 functions on a 1.0 instance) stay null; the Vulkan 1.0 core ones gpu/ cannot
    // work without throw Error(Internal) when missing.
    void load(PFN_vkGetInstanceProcAddr getInstanceProcAddr, VkInstance instance);
};

// Device-level entry points gpu/ uses (core 1.0 plus VK_KHR_push_descriptor, which may be null).
#define KVS_VK_DEVICE_FUNCTIONS(X)                                                                 \
    X(vkDestroyDevice)                                                                             \
    X(vkGetDeviceQueue)                                                                            \
    X(vkDeviceWaitIdle)                                                                            \
    X(vkCreateBuffer)                                                                              \
    X(vkDestroyBuffer)                                                                             \
    X(vkGetBufferMemoryRequirements)                                                               \
    X(vkAllocateMemory)                                                                            \
    X(vkFreeMemory)                                                                                \
    X(vkBindBufferMemory)                                                                          \
    X(vkMapMemory)                                                                                 \
    X(vkUnmapMemory)                                                                               \
    X(vkFlushMappedMemoryRanges)                                                                   \
    X(vkInvalidateMappedMemoryRanges)                                                              \
    X(vkCreateShaderModule)                                                                        \
    X(vkDestroyShaderModule)                                                                       \
    X(vkCreateDescriptorSetLayout)                                                                 \
    X(vkDestroyDescriptorSetLayout)                                                                \
    X(vkCreatePipelineLayout)                                                                      \
    X(vkDestroyPipelineLayout)                                                                     \
    X(vkCreatePipelineCache)                                                                       \
    X(vkDestroyPipelineCache)                                                                      \
    X(vkCreateComputePipelines)                                                                    \
    X(vkDestroyPipeline)                                                                           \
    X(vkCreateDescriptorPool)                                                                      \
    X(vkDestroyDescriptorPool)                                                                     \
    X(vkResetDescriptorPool)                                                                       \
    X(vkAllocateDescriptorSets)                                                                    \
    X(vkUpdateDescriptorSets)                                                                      \
    X(vkCreateCommandPool)                                                                         \
    X(vkDestroyCommandPool)                                                                        \
    X(vkAllocateCommandBuffers)                                                                    \
    X(vkFreeCommandBuffers)                                                                        \
    X(vkBeginCommandBuffer)                                                                        \
    X(vkEndCommandBuffer)                                                                          \
    X(vkCmdBindPipeline)                                                                           \
    X(vkCmdBindDescriptorSets)                                                                     \
    X(vkCmdPushConstants)                                                                          \
    X(vkCmdDispatch)                                                                               \
    X(vkCmdPipelineBarrier)                                                                        \
    X(vkCmdCopyBuffer)                                                                             \
    X(vkCmdFillBuffer)                                                                             \
    X(vkCmdResetQueryPool)                                                                         \
    X(vkCmdWriteTimestamp)                                                                         \
    X(vkCmdPushDescriptorSetKHR)                                                                   \
    X(vkCreateQueryPool)                                                                           \
    X(vkDestroyQueryPool)                                                                          \
    X(vkGetQueryPoolResults)                                                                       \
    X(vkCreateFence)                                                                               \
    X(vkDestroyFence)                                                                              \
    X(vkResetFences)                                                                               \
    X(vkWaitForFences)                                                                             \
    X(vkQueueSubmit)

struct DeviceFunctions {
#define KVS_VK_DECLARE_FUNCTION(name) PFN_##name name = nullptr;
    KVS_VK_DEVICE_FUNCTIONS(KVS_VK_DECLARE_FUNCTION)
#undef KVS_VK_DECLARE_FUNCTION

    // Resolves the list for `device`; throws Error(Internal) naming the first missing core entry
    // point (vkCmdPushDescriptorSetKHR may stay null: the extension is optional).
    void load(PFN_vkGetDeviceProcAddr getDeviceProcAddr, VkDevice device);
};

} // namespace kvs::gpu::vk
