// SPDX-License-Identifier: MIT
// Vulkan device discovery: what each physical device offers, and which one KV Studio would use.
#pragma once

#include "kvs/gpu/instance.h"
#include "kvs/status.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

// Environment variables read by gpu/:
//   KVS_VULKAN_DEVICE   which device to use: an index ("1") as listed by `kvstudio-cli devices`,
//                       or a case-insensitive part of its name ("llvmpipe", "nvidia"). Unset or
//                       empty: the automatic choice (discrete > integrated > virtual > cpu).
//   KVS_VK_VALIDATION   "1" turns the Khronos validation layer on (see InstanceOptions).
//   KVS_VULKAN_LOADER   the loader library to dlopen instead of libvulkan.so.1.
// The Vulkan loader's own variables (VK_ICD_FILENAMES / VK_DRIVER_FILES, VK_LAYER_PATH) work too.

namespace kvs::gpu {

enum class DeviceType { Discrete, Integrated, Virtual, Cpu, Other };

// "discrete", "integrated", "virtual", "cpu", "other" (the CLI's JSON uses these).
const char* toString(DeviceType type);

struct MemoryHeap {
    std::uint64_t size = 0; // bytes
    bool deviceLocal = false;
};

// One physical device as the driver describes it. Fields a device cannot report (a Vulkan 1.0
// device has no subgroup or driver properties) keep their zero/empty defaults.
struct DeviceInfo {
    std::size_t index = 0; // position in the loader's enumeration (what KVS_VULKAN_DEVICE counts)
    std::string name;      // "llvmpipe (LLVM 15.0.6, 256 bits)"
    DeviceType type = DeviceType::Other;
    std::uint32_t vendorId = 0; // PCI vendor (0x10de NVIDIA) or Khronos vendor id (0x10005 Mesa)
    std::uint32_t deviceId = 0;
    std::uint32_t driverId = 0; // VkDriverId, 0 when unknown
    std::string driverName;     // VkPhysicalDeviceDriverProperties: "llvmpipe"
    std::string driverInfo;     // "Mesa 22.3.6 (LLVM 15.0.6)"
    std::string apiVersion;     // the device's Vulkan version, "1.3.230"
    std::string driverVersion;  // decoded the vendor's way ("535.104.5" for NVIDIA)
    std::uint32_t driverVersionRaw = 0;
    std::vector<MemoryHeap> memoryHeaps;
    bool hasCompute = false;                      // some queue family supports compute
    std::uint32_t subgroupSize = 0;               // 0 when unknown (Vulkan 1.0 device)
    bool subgroupArithmetic = false;              // subgroupAdd & co. in compute shaders
    double timestampPeriod = 0.0;                 // nanoseconds per timestamp tick
    bool timestampsSupported = false;             // a compute queue can write timestamps
    bool float16 = false;                         // shaderFloat16
    bool int8 = false;                            // shaderInt8
    bool storage16bit = false;                    // storageBuffer16BitAccess
    std::uint32_t maxStorageBufferRange = 0;      // bytes one storage-buffer binding may span
    std::uint32_t maxComputeSharedMemorySize = 0; // bytes of shared memory per workgroup
    std::uint32_t maxWorkgroupInvocations = 0;    // maxComputeWorkGroupInvocations

    // A software rasterizer on the host CPU (lavapipe/llvmpipe, SwiftShader): fine for checking
    // results, meaningless for timings.
    bool isCpuEmulation() const;
};

// One line for logs and status bars: "llvmpipe (LLVM 15.0.6, 256 bits): cpu, Vulkan 1.3.230,
// llvmpipe Mesa 22.3.6 (LLVM 15.0.6), subgroup 8, fp16, int8, 16-bit storage, 2.0 GiB".
std::string summaryLine(const DeviceInfo& device);

// Lists the devices of a fresh instance (made with `options`, then destroyed). Failure to
// discover is an Error, not an exception: Unsupported "no Vulkan loader (libvulkan.so.1) found:
// ..." without a loader, a vkCreateInstance error without a driver. No device at all is an
// empty list. Callers fall back to the CPU in both cases.
Result<std::vector<DeviceInfo>> enumerateDevices(const InstanceOptions& options = {});

// The same on an existing instance (whose validation messages then stay inspectable).
Result<std::vector<DeviceInfo>> enumerateDevices(const Instance& instance);

// Picks a device; returns its position in `devices`, or nullopt when nothing fits.
// `preference`:
//   ""            the automatic choice: the best type (discrete > integrated > virtual > cpu >
//                 other) among devices with a compute queue, lowest index on ties;
//   all digits    the device whose DeviceInfo::index equals it;
//   anything else the lowest-index device whose name contains it, ignoring case.
// Surrounding spaces are ignored. Pass devicePreferenceFromEnv() to honour the user's choice.
std::optional<std::size_t> chooseDevice(const std::vector<DeviceInfo>& devices,
                                        const std::string& preference);

// The value of KVS_VULKAN_DEVICE, or "" when it is unset.
std::string devicePreferenceFromEnv();

} // namespace kvs::gpu
