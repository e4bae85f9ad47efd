// SPDX-License-Identifier: MIT
// dlopen of the Vulkan loader (never linked, so machines without Vulkan still run the studio).
#include "loader.h"

#include "kvs/gpu/renderdoc.h"
#include "kvs/status.h"

#include <cstdlib>
#include <dlfcn.h>
#include <optional>
#include <string_view>
#include <utility>

namespace kvs::gpu::vk {

namespace {

#if defined(__APPLE__)
constexpr const char* kDefaultLoader = "libvulkan.1.dylib";
#else
constexpr const char* kDefaultLoader = "libvulkan.so.1";
#endif

template <class Fn>
Fn globalEntry(PFN_vkGetInstanceProcAddr getInstanceProcAddr, const char* name) {
    return reinterpret_cast<Fn>(getInstanceProcAddr(VK_NULL_HANDLE, name));
}

struct LoadOutcome {
    GlobalFunctions functions;
    std::optional<Error> error;
};

LoadOutcome openLoader() {
    // RenderDoc's capture layer must be in the process before the first instance exists.
    preloadRenderDocFromEnv();
    LoadOutcome outcome;
    GlobalFunctions& f = outcome.functions;
    const char* overridden = std::getenv("KVS_VULKAN_LOADER");
    f.library = overridden && *overridden ? overridden : kDefaultLoader;

    void* library = dlopen(f.library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char* why = dlerror();
        outcome.error = Error(ErrorCode::Unsupported, "no Vulkan loader (" + f.library +
                                                          ") found: " + (why ? why : "unknown"));
        return outcome;
    }
    void* symbol = dlsym(library, "vkGetInstanceProcAddr");
    if (!symbol) {
        outcome.error =
            Error(ErrorCode::Unsupported, "no Vulkan loader (" + f.library +
                                              ") found: the library has no vkGetInstanceProcAddr");
        return outcome;
    }
    f.vkGetInstanceProcAddr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(symbol);
    const auto gipa = f.vkGetInstanceProcAddr;
    f.vkEnumerateInstanceVersion =
        globalEntry<PFN_vkEnumerateInstanceVersion>(gipa, "vkEnumerateInstanceVersion");
    f.vkEnumerateInstanceLayerProperties = globalEntry<PFN_vkEnumerateInstanceLayerProperties>(
        gipa, "vkEnumerateInstanceLayerProperties");
    f.vkEnumerateInstanceExtensionProperties =
        globalEntry<PFN_vkEnumerateInstanceExtensionProperties>(
            gipa, "vkEnumerateInstanceExtensionProperties");
    f.vkCreateInstance = globalEntry<PFN_vkCreateInstance>(gipa, "vkCreateInstance");
    if (!f.vkEnumerateInstanceLayerProperties || !f.vkEnumerateInstanceExtensionProperties ||
        !f.vkCreateInstance)
        outcome.error = Error(ErrorCode::Unsupported,
                              "the Vulkan loader " + f.library +
                                  " is broken: it lacks vkCreateInstance or the enumeration calls");
    return outcome;
}

} // namespace

const GlobalFunctions& globalFunctions() {
    static const LoadOutcome outcome = openLoader(); // thread-safe, once per process
    if (outcome.error)
        throw *outcome.error;
    return outcome.functions;
}

void InstanceFunctions::load(PFN_vkGetInstanceProcAddr getInstanceProcAddr, VkInstance instance) {
#define KVS_VK_LOAD_FUNCTION(name)                                                                 \
    name = reinterpret_cast<PFN_##name>(getInstanceProcAddr(instance, #name));
    KVS_VK_INSTANCE_FUNCTIONS(KVS_VK_LOAD_FUNCTION)
#undef KVS_VK_LOAD_FUNCTION

    const std::pair<const char*, bool> required[] = {
        {"vkDestroyInstance", vkDestroyInstance != nullptr},
        {"vkEnumeratePhysicalDevices", vkEnumeratePhysicalDevices != nullptr},
        {"vkGetPhysicalDeviceProperties", vkGetPhysicalDeviceProperties != nullptr},
        {"vkGetPhysicalDeviceMemoryProperties", vkGetPhysicalDeviceMemoryProperties != nullptr},
        {"vkGetPhysicalDeviceQueueFamilyProperties",
         vkGetPhysicalDeviceQueueFamilyProperties != nullptr},
        {"vkEnumerateDeviceExtensionProperties", vkEnumerateDeviceExtensionProperties != nullptr},
    };
    for (const auto& [name, present] : required)
        if (!present)
            throw Error(ErrorCode::Internal,
                        std::string("the Vulkan loader returned no ") + name + " for the instance");
}

void DeviceFunctions::load(PFN_vkGetDeviceProcAddr getDeviceProcAddr, VkDevice device) {
#define KVS_VK_LOAD_FUNCTION(name)                                                                 \
    name = reinterpret_cast<PFN_##name>(getDeviceProcAddr(device, #name));
    KVS_VK_DEVICE_FUNCTIONS(KVS_VK_LOAD_FUNCTION)
#undef KVS_VK_LOAD_FUNCTION
#define KVS_VK_REQUIRE_FUNCTION(name)                                                              \
    if (!name && std::string_view(#name) != "vkCmdPushDescriptorSetKHR")                           \
        throw Error(ErrorCode::Internal, "the Vulkan driver returned no " #name " for the "        \
                                                                                "device");
    KVS_VK_DEVICE_FUNCTIONS(KVS_VK_REQUIRE_FUNCTION)
#undef KVS_VK_REQUIRE_FUNCTION
}

} // namespace kvs::gpu::vk
