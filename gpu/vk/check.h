// SPDX-License-Identifier: MIT
// KVS_VK_CHECK: turns a failed VkResult into a kvs::Error naming the call, the result and the
// place.
#pragma once

#include "vulkan_api.h"

#include "kvs/status.h"

#include <string>

namespace kvs::gpu::vk {

// "VK_ERROR_INITIALIZATION_FAILED"; "VkResult(-1234)" for values these headers do not name.
const char* resultName(VkResult result);

// The ErrorCode a failed VkResult maps to: out-of-memory results -> Io, missing drivers, layers,
// extensions and features -> Unsupported, everything else (device lost, unknown) -> Internal.
ErrorCode errorCodeFor(VkResult result);

// The Error KVS_VK_CHECK throws, e.g. "vkCreateInstance failed: VK_ERROR_INCOMPATIBLE_DRIVER
// (no Vulkan driver was found, or none supports this Vulkan version) [gpu/vk/instance.cpp:120]".
// `call` is the call's source text; only the called function's name is kept.
Error resultError(VkResult result, const char* call, const char* file, int line);

// Throws resultError(...) when result < 0. Positive codes (VK_INCOMPLETE, VK_SUBOPTIMAL_KHR, ...)
// are not failures; callers that care about them look at the returned value.
inline VkResult checkResult(VkResult result, const char* call, const char* file, int line) {
    if (result < 0)
        throw resultError(result, call, file, line);
    return result;
}

} // namespace kvs::gpu::vk

// Evaluates a Vulkan call once; throws kvs::Error if it failed; yields the VkResult otherwise.
#define KVS_VK_CHECK(call) ::kvs::gpu::vk::checkResult((call), #call, __FILE__, __LINE__)
