// SPDX-License-Identifier: MIT
// Names and error codes for VkResult values, and the Error that KVS_VK_CHECK throws.
#include "check.h"

#include <string_view>

namespace kvs::gpu::vk {

const char* resultName(VkResult result) {
    switch (result) {
#define KVS_VK_RESULT_NAME(r)                                                                      \
    case r:                                                                                        \
        return #r;
        KVS_VK_RESULT_NAME(VK_SUCCESS)
        KVS_VK_RESULT_NAME(VK_NOT_READY)
        KVS_VK_RESULT_NAME(VK_TIMEOUT)
        KVS_VK_RESULT_NAME(VK_EVENT_SET)
        KVS_VK_RESULT_NAME(VK_EVENT_RESET)
        KVS_VK_RESULT_NAME(VK_INCOMPLETE)
        KVS_VK_RESULT_NAME(VK_ERROR_OUT_OF_HOST_MEMORY)
        KVS_VK_RESULT_NAME(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        KVS_VK_RESULT_NAME(VK_ERROR_INITIALIZATION_FAILED)
        KVS_VK_RESULT_NAME(VK_ERROR_DEVICE_LOST)
        KVS_VK_RESULT_NAME(VK_ERROR_MEMORY_MAP_FAILED)
        KVS_VK_RESULT_NAME(VK_ERROR_LAYER_NOT_PRESENT)
        KVS_VK_RESULT_NAME(VK_ERROR_EXTENSION_NOT_PRESENT)
        KVS_VK_RESULT_NAME(VK_ERROR_FEATURE_NOT_PRESENT)
        KVS_VK_RESULT_NAME(VK_ERROR_INCOMPATIBLE_DRIVER)
        KVS_VK_RESULT_NAME(VK_ERROR_TOO_MANY_OBJECTS)
        KVS_VK_RESULT_NAME(VK_ERROR_FORMAT_NOT_SUPPORTED)
        KVS_VK_RESULT_NAME(VK_ERROR_FRAGMENTED_POOL)
        KVS_VK_RESULT_NAME(VK_ERROR_UNKNOWN)
        KVS_VK_RESULT_NAME(VK_ERROR_OUT_OF_POOL_MEMORY)
        KVS_VK_RESULT_NAME(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        KVS_VK_RESULT_NAME(VK_ERROR_FRAGMENTATION)
        KVS_VK_RESULT_NAME(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
        KVS_VK_RESULT_NAME(VK_PIPELINE_COMPILE_REQUIRED)
        KVS_VK_RESULT_NAME(VK_ERROR_SURFACE_LOST_KHR)
        KVS_VK_RESULT_NAME(VK_ERROR_NATIVE_WINDOW_IN_USE_KHR)
        KVS_VK_RESULT_NAME(VK_SUBOPTIMAL_KHR)
        KVS_VK_RESULT_NAME(VK_ERROR_OUT_OF_DATE_KHR)
        KVS_VK_RESULT_NAME(VK_ERROR_INCOMPATIBLE_DISPLAY_KHR)
        KVS_VK_RESULT_NAME(VK_ERROR_VALIDATION_FAILED_EXT)
        KVS_VK_RESULT_NAME(VK_ERROR_INVALID_SHADER_NV)
        KVS_VK_RESULT_NAME(VK_ERROR_INVALID_DRM_FORMAT_MODIFIER_PLANE_LAYOUT_EXT)
        KVS_VK_RESULT_NAME(VK_ERROR_NOT_PERMITTED_KHR)
        KVS_VK_RESULT_NAME(VK_ERROR_FULL_SCREEN_EXCLUSIVE_MODE_LOST_EXT)
        KVS_VK_RESULT_NAME(VK_THREAD_IDLE_KHR)
        KVS_VK_RESULT_NAME(VK_THREAD_DONE_KHR)
        KVS_VK_RESULT_NAME(VK_OPERATION_DEFERRED_KHR)
        KVS_VK_RESULT_NAME(VK_OPERATION_NOT_DEFERRED_KHR)
#undef KVS_VK_RESULT_NAME
    default:
        break;
    }
    // Values added by newer headers: still say what the number was. Thread-local so the pointer
    // stays valid until this thread's next call.
    thread_local std::string unnamed;
    unnamed = "VkResult(" + std::to_string(static_cast<int>(result)) + ")";
    return unnamed.c_str();
}

ErrorCode errorCodeFor(VkResult result) {
    switch (result) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_POOL_MEMORY:
    case VK_ERROR_FRAGMENTED_POOL:
    case VK_ERROR_FRAGMENTATION:
    case VK_ERROR_TOO_MANY_OBJECTS:
        return ErrorCode::OutOfMemory; // the same code catchErrors() gives std::bad_alloc
    case VK_ERROR_INITIALIZATION_FAILED:
    case VK_ERROR_LAYER_NOT_PRESENT:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_FEATURE_NOT_PRESENT:
    case VK_ERROR_INCOMPATIBLE_DRIVER:
    case VK_ERROR_FORMAT_NOT_SUPPORTED:
        return ErrorCode::Unsupported;
    default:
        return ErrorCode::Internal;
    }
}

namespace {

// "m_fns.vkCreateInstance(&info, nullptr, &handle)" -> "vkCreateInstance".
std::string_view calledFunction(std::string_view call) {
    call = call.substr(0, call.find('('));
    while (!call.empty() && call.back() == ' ')
        call.remove_suffix(1);
    if (const auto cut = call.find_last_of(".>: "); cut != std::string_view::npos)
        call.remove_prefix(cut + 1);
    return call;
}

// "/work/main/gpu/vk/instance.cpp" -> "gpu/vk/instance.cpp" (the path inside the source tree).
std::string_view sourcePath(std::string_view file) {
    if (const auto at = file.rfind("/gpu/"); at != std::string_view::npos)
        return file.substr(at + 1);
    if (const auto slash = file.find_last_of("/\\"); slash != std::string_view::npos)
        return file.substr(slash + 1);
    return file;
}

const char* hintFor(VkResult result) {
    switch (result) {
    case VK_ERROR_INCOMPATIBLE_DRIVER:
        return " (no Vulkan driver was found, or none supports this Vulkan version)";
    case VK_ERROR_LAYER_NOT_PRESENT:
        return " (a requested layer is not installed)";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
        return " (a requested extension is not available)";
    case VK_ERROR_DEVICE_LOST:
        return " (the driver lost the device: a hang, a reset or a driver bug)";
    default:
        return "";
    }
}

} // namespace

Error resultError(VkResult result, const char* call, const char* file, int line) {
    std::string message(calledFunction(call));
    message += " failed: ";
    message += resultName(result);
    message += hintFor(result);
    message += " [";
    message += sourcePath(file);
    message += ':';
    message += std::to_string(line);
    message += ']';
    return Error(errorCodeFor(result), message);
}

} // namespace kvs::gpu::vk
