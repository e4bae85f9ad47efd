// SPDX-License-Identifier: MIT
// Device discovery: each physical device's properties, features and limits; the device choice.
#include "kvs/gpu/devices.h"

#include "check.h"
#include "instance_impl.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kvs::gpu {

const char* toString(DeviceType type) {
    switch (type) {
    case DeviceType::Discrete:
        return "discrete";
    case DeviceType::Integrated:
        return "integrated";
    case DeviceType::Virtual:
        return "virtual";
    case DeviceType::Cpu:
        return "cpu";
    case DeviceType::Other:
        return "other";
    }
    return "other";
}

namespace {

std::string lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// A fixed-size char array from a Vulkan struct, which need not be NUL-terminated.
template <std::size_t N> std::string fromArray(const char (&chars)[N]) {
    return std::string(chars, strnlen(chars, N));
}

std::string versionString(std::uint32_t version) {
    return std::to_string(VK_API_VERSION_MAJOR(version)) + "." +
           std::to_string(VK_API_VERSION_MINOR(version)) + "." +
           std::to_string(VK_API_VERSION_PATCH(version));
}

// Major.minor only: the part of a version that decides which structures may be used.
std::uint32_t majorMinor(std::uint32_t version) {
    return VK_MAKE_API_VERSION(0, VK_API_VERSION_MAJOR(version), VK_API_VERSION_MINOR(version), 0);
}

// Vendors pack driverVersion their own way; everyone else (Mesa included) uses VK_MAKE_VERSION.
std::string driverVersionString(std::uint32_t vendorId, std::uint32_t driverId, std::uint32_t v) {
    const auto n = [](std::uint32_t x) { return std::to_string(x); };
    if (vendorId == 0x10de || driverId == VK_DRIVER_ID_NVIDIA_PROPRIETARY)
        return n((v >> 22) & 0x3ff) + "." + n((v >> 14) & 0xff) + "." + n((v >> 6) & 0xff) + "." +
               n(v & 0x3f);
    if (driverId == VK_DRIVER_ID_INTEL_PROPRIETARY_WINDOWS)
        return n(v >> 14) + "." + n(v & 0x3fff);
    return versionString(v);
}

DeviceType deviceType(VkPhysicalDeviceType type) {
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
        return DeviceType::Discrete;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return DeviceType::Integrated;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
        return DeviceType::Virtual;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
        return DeviceType::Cpu;
    default:
        return DeviceType::Other;
    }
}

DeviceInfo describe(const Instance::Impl& impl, VkPhysicalDevice physical, std::size_t index) {
    const vk::InstanceFunctions& f = impl.fns;
    DeviceInfo d;
    d.index = index;

    VkPhysicalDeviceProperties props{};
    f.vkGetPhysicalDeviceProperties(physical, &props);
    d.name = fromArray(props.deviceName);
    d.type = deviceType(props.deviceType);
    d.vendorId = props.vendorID;
    d.deviceId = props.deviceID;
    d.apiVersion = versionString(props.apiVersion);
    d.driverVersionRaw = props.driverVersion;
    d.timestampPeriod = static_cast<double>(props.limits.timestampPeriod);
    d.maxStorageBufferRange = props.limits.maxStorageBufferRange;
    d.maxComputeSharedMemorySize = props.limits.maxComputeSharedMemorySize;
    d.maxWorkgroupInvocations = props.limits.maxComputeWorkGroupInvocations;

    // Structures beyond Vulkan 1.0 may be chained only when both the instance and the device
    // know them (a version, or the extension that the version absorbed).
    const std::uint32_t usable = std::min(impl.apiVersion, majorMinor(props.apiVersion));
    const auto extensions = vk::enumerateAll<VkExtensionProperties>(
        "vkEnumerateDeviceExtensionProperties",
        [&](std::uint32_t* count, VkExtensionProperties* items) {
            return f.vkEnumerateDeviceExtensionProperties(physical, nullptr, count, items);
        });
    const auto hasExtension = [&](const char* name) {
        return std::any_of(extensions.begin(), extensions.end(),
                           [&](const VkExtensionProperties& e) {
                               return std::strcmp(e.extensionName, name) == 0;
                           });
    };
    const bool v11 = usable >= VK_API_VERSION_1_1 && f.vkGetPhysicalDeviceProperties2 &&
                     f.vkGetPhysicalDeviceFeatures2;
    const bool v12 = v11 && usable >= VK_API_VERSION_1_2;

    if (v11) {
        VkPhysicalDeviceSubgroupProperties subgroup{};
        subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
        VkPhysicalDeviceDriverProperties driver{};
        driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
        VkPhysicalDeviceProperties2 props2{};
        props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
        props2.pNext = &subgroup;
        const bool hasDriverProps = v12 || hasExtension(VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
        if (hasDriverProps)
            subgroup.pNext = &driver;
        f.vkGetPhysicalDeviceProperties2(physical, &props2);
        d.subgroupSize = subgroup.subgroupSize;
        d.subgroupArithmetic =
            (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0 &&
            (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;
        if (hasDriverProps) {
            d.driverId = static_cast<std::uint32_t>(driver.driverID);
            d.driverName = fromArray(driver.driverName);
            d.driverInfo = fromArray(driver.driverInfo);
        }

        VkPhysicalDevice16BitStorageFeatures storage16{};
        storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
        VkPhysicalDeviceShaderFloat16Int8Features float16Int8{};
        float16Int8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
        VkPhysicalDeviceFeatures2 features2{};
        features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
        features2.pNext = &storage16;
        const bool hasFloat16Int8 = v12 || hasExtension(VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
        if (hasFloat16Int8)
            storage16.pNext = &float16Int8;
        f.vkGetPhysicalDeviceFeatures2(physical, &features2);
        d.storage16bit = storage16.storageBuffer16BitAccess == VK_TRUE;
        d.float16 = hasFloat16Int8 && float16Int8.shaderFloat16 == VK_TRUE;
        d.int8 = hasFloat16Int8 && float16Int8.shaderInt8 == VK_TRUE;
    }
    d.driverVersion = driverVersionString(d.vendorId, d.driverId, d.driverVersionRaw);

    VkPhysicalDeviceMemoryProperties memory{};
    f.vkGetPhysicalDeviceMemoryProperties(physical, &memory);
    const std::uint32_t heapCount =
        std::min<std::uint32_t>(memory.memoryHeapCount, VK_MAX_MEMORY_HEAPS);
    for (std::uint32_t i = 0; i < heapCount; ++i)
        d.memoryHeaps.push_back(
            {memory.memoryHeaps[i].size,
             (memory.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});

    const auto families = vk::enumerateAll<VkQueueFamilyProperties>(
        "vkGetPhysicalDeviceQueueFamilyProperties",
        [&](std::uint32_t* count, VkQueueFamilyProperties* items) {
            f.vkGetPhysicalDeviceQueueFamilyProperties(physical, count, items);
            return VK_SUCCESS;
        });
    for (const auto& family : families) {
        if ((family.queueFlags & VK_QUEUE_COMPUTE_BIT) == 0)
            continue;
        d.hasCompute = true;
        if (family.timestampValidBits > 0)
            d.timestampsSupported = true;
    }
    return d;
}

std::string formatBytes(std::uint64_t bytes) {
    char text[32];
    const double gib = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
    if (gib >= 1.0)
        std::snprintf(text, sizeof text, "%.1f GiB", gib);
    else
        std::snprintf(text, sizeof text, "%.0f MiB",
                      static_cast<double>(bytes) / (1024.0 * 1024.0));
    return text;
}

int typeRank(DeviceType type) {
    switch (type) {
    case DeviceType::Discrete:
        return 0;
    case DeviceType::Integrated:
        return 1;
    case DeviceType::Virtual:
        return 2;
    case DeviceType::Cpu:
        return 3;
    case DeviceType::Other:
        return 4;
    }
    return 5;
}

} // namespace

bool DeviceInfo::isCpuEmulation() const {
    if (type == DeviceType::Cpu || driverId == VK_DRIVER_ID_MESA_LLVMPIPE ||
        driverId == VK_DRIVER_ID_GOOGLE_SWIFTSHADER)
        return true;
    // Drivers too old to report a driver id still have telling names.
    const std::string lower = lowercase(name);
    return lower.find("llvmpipe") != std::string::npos ||
           lower.find("swiftshader") != std::string::npos;
}

std::string summaryLine(const DeviceInfo& device) {
    std::string line = device.name + ": " + toString(device.type) + ", Vulkan " + device.apiVersion;
    if (!device.driverName.empty())
        line +=
            ", " + device.driverName + (device.driverInfo.empty() ? "" : " " + device.driverInfo);
    if (device.subgroupSize > 0)
        line += ", subgroup " + std::to_string(device.subgroupSize);
    if (device.float16)
        line += ", fp16";
    if (device.int8)
        line += ", int8";
    if (device.storage16bit)
        line += ", 16-bit storage";
    std::uint64_t local = 0;
    for (const auto& heap : device.memoryHeaps)
        if (heap.deviceLocal)
            local += heap.size;
    line += ", " + formatBytes(local);
    if (!device.hasCompute)
        line += ", no compute queue";
    return line;
}

Result<std::vector<DeviceInfo>> enumerateDevices(const Instance& instance) {
    return catchErrors([&] {
        const Instance::Impl& impl = instance.impl();
        const auto physical = vk::enumerateAll<VkPhysicalDevice>(
            "vkEnumeratePhysicalDevices", [&](std::uint32_t* count, VkPhysicalDevice* items) {
                return impl.fns.vkEnumeratePhysicalDevices(impl.instance, count, items);
            });
        std::vector<DeviceInfo> devices;
        devices.reserve(physical.size());
        for (std::size_t i = 0; i < physical.size(); ++i)
            devices.push_back(describe(impl, physical[i], i));
        return devices;
    });
}

Result<std::vector<DeviceInfo>> enumerateDevices(const InstanceOptions& options) {
    auto instance = Instance::create(options);
    if (!instance)
        return instance.error();
    return enumerateDevices(*instance);
}

std::optional<std::size_t> chooseDevice(const std::vector<DeviceInfo>& devices,
                                        const std::string& preference) {
    const auto first = preference.find_first_not_of(" \t");
    const std::string wanted =
        first == std::string::npos
            ? std::string()
            : preference.substr(first, preference.find_last_not_of(" \t") - first + 1);

    if (wanted.empty()) {
        std::optional<std::size_t> best;
        for (std::size_t i = 0; i < devices.size(); ++i) {
            if (!devices[i].hasCompute)
                continue;
            if (!best || typeRank(devices[i].type) < typeRank(devices[*best].type) ||
                (typeRank(devices[i].type) == typeRank(devices[*best].type) &&
                 devices[i].index < devices[*best].index))
                best = i;
        }
        return best;
    }

    if (std::all_of(wanted.begin(), wanted.end(),
                    [](unsigned char c) { return std::isdigit(c) != 0; })) {
        if (wanted.size() > 9)
            return std::nullopt; // no machine has a billion devices; avoids overflow below
        const std::size_t index = std::stoul(wanted);
        for (std::size_t i = 0; i < devices.size(); ++i)
            if (devices[i].index == index)
                return i;
        return std::nullopt;
    }

    const std::string needle = lowercase(wanted);
    std::optional<std::size_t> match;
    for (std::size_t i = 0; i < devices.size(); ++i)
        if (lowercase(devices[i].name).find(needle) != std::string::npos &&
            (!match || devices[i].index < devices[*match].index))
            match = i;
    return match;
}

std::string devicePreferenceFromEnv() {
    const char* value = std::getenv("KVS_VULKAN_DEVICE");
    return value ? std::string(value) : std::string();
}

} // namespace kvs::gpu
