// SPDX-License-Identifier: MIT
// What an Instance holds, for gpu/'s own code: Vulkan handles, entry points, the message log.
#pragma once

#include "check.h"
#include "kvs/gpu/instance.h"
#include "loader.h"
#include "vulkan_api.h"

#include <cstdint>
#include <mutex>
#include <vector>

namespace kvs::gpu {

namespace vk {

// Messages recorded by the debug-utils messenger; the layer may call in from any thread.
class MessageLog {
public:
    void add(ValidationMessage message);
    std::vector<ValidationMessage> all() const;
    std::size_t size() const;
    void clear();

private:
    mutable std::mutex m_mutex;
    std::vector<ValidationMessage> m_messages;
};

// Calls `fill(count, items)` the Vulkan two-call way, again while the list grows in between
// (VK_INCOMPLETE). `call` names the Vulkan function for the error a failure throws, `file` and
// `line` the caller (__builtin_FILE/LINE: clang 14 with libstdc++ 12, the sanitizer build, has no
// std::source_location).
template <class T, class Fill>
std::vector<T> enumerateAll(const char* call, Fill fill, const char* file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
    std::vector<T> items;
    for (;;) {
        std::uint32_t count = 0;
        checkResult(fill(&count, static_cast<T*>(nullptr)), call, file, line);
        items.resize(count);
        if (count == 0)
            return items;
        const VkResult result = checkResult(fill(&count, items.data()), call, file, line);
        items.resize(count);
        if (result != VK_INCOMPLETE)
            return items;
    }
}

} // namespace vk

struct Instance::Impl {
    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl(); // destroys the messenger, then the instance

    const vk::GlobalFunctions* global = nullptr;
    vk::InstanceFunctions fns;
    VkInstance instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    // The Vulkan version instance-level calls may use (major.minor of min(loader, requested));
    // device-level use is further limited by each device's apiVersion.
    std::uint32_t apiVersion = VK_API_VERSION_1_0;
    std::uint32_t loaderVersion = VK_API_VERSION_1_0;
    bool validation = false;
    bool synchronizationValidation = false;
    // Filled by both messengers: the one chained into VkInstanceCreateInfo (it reports during
    // vkCreateInstance and vkDestroyInstance) and the one created afterwards.
    vk::MessageLog log;
};

} // namespace kvs::gpu
