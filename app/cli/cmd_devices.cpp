// SPDX-License-Identifier: MIT
// `kvstudio-cli devices [--json]`: the Vulkan devices, their capabilities and the one we would use.
#include "cli.h"

#include "kvs/gpu/devices.h"
#include "kvs/status.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>

namespace kvs::cli {

namespace {

// "2 GiB", "79.6 GiB", "128 MiB", "32 KiB", "512 B".
std::string formatBytes(std::uint64_t bytes) {
    const struct {
        std::uint64_t size;
        const char* name;
    } units[] = {{1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
    char text[48];
    for (const auto& unit : units) {
        if (bytes < unit.size)
            continue;
        if (bytes % unit.size == 0)
            std::snprintf(text, sizeof text, "%llu %s",
                          static_cast<unsigned long long>(bytes / unit.size), unit.name);
        else
            std::snprintf(text, sizeof text, "%.1f %s",
                          static_cast<double>(bytes) / static_cast<double>(unit.size), unit.name);
        return text;
    }
    return std::to_string(bytes) + " B";
}

std::string hex(std::uint32_t value, int digits) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%0*x", digits, value);
    return text;
}

const char* yesNo(bool value) {
    return value ? "yes" : "no";
}

nlohmann::ordered_json deviceJson(const gpu::DeviceInfo& d) {
    nlohmann::ordered_json heaps = nlohmann::ordered_json::array();
    for (const auto& heap : d.memoryHeaps)
        heaps.push_back({{"size", heap.size}, {"device_local", heap.deviceLocal}});
    return {
        {"index", d.index},
        {"name", d.name},
        {"type", gpu::toString(d.type)},
        {"vendor_id", d.vendorId},
        {"device_id", d.deviceId},
        {"driver_name", d.driverName},
        {"driver_info", d.driverInfo},
        {"api_version", d.apiVersion},
        {"driver_version", d.driverVersion},
        {"memory_heaps", heaps},
        {"compute_queue", d.hasCompute},
        {"subgroup_size", d.subgroupSize},
        {"timestamp_period_ns", d.timestampPeriod},
        {"timestamps_supported", d.timestampsSupported},
        {"float16", d.float16},
        {"int8", d.int8},
        {"storage_16bit", d.storage16bit},
        {"max_storage_buffer_range", d.maxStorageBufferRange},
        {"max_compute_shared_memory_size", d.maxComputeSharedMemorySize},
        {"max_workgroup_invocations", d.maxWorkgroupInvocations},
        {"cpu_emulation", d.isCpuEmulation()},
    };
}

void printDevice(std::ostream& out, const gpu::DeviceInfo& d, bool chosen) {
    const auto row = [&](const char* label, const std::string& value) {
        char head[32];
        std::snprintf(head, sizeof head, "    %-22s", label);
        out << head << value << "\n";
    };
    out << "[" << d.index << "] " << d.name << (chosen ? "   <- chosen" : "") << "\n";
    row("type", std::string(gpu::toString(d.type)) +
                    (d.isCpuEmulation() ? " (CPU emulation: checks results, not timings)" : ""));
    row("vendor / device id", hex(d.vendorId, 4) + " / " + hex(d.deviceId, 4));
    std::string driver = d.driverName.empty() ? "(not reported)" : d.driverName;
    if (!d.driverInfo.empty())
        driver += ", " + d.driverInfo;
    row("driver", driver + ", version " + d.driverVersion);
    row("Vulkan version", d.apiVersion);
    std::string heaps;
    for (const auto& heap : d.memoryHeaps)
        heaps += (heaps.empty() ? "" : ", ") + formatBytes(heap.size) +
                 (heap.deviceLocal ? " device-local" : " host");
    row("memory heaps", heaps.empty() ? "none" : heaps);
    row("compute queue", yesNo(d.hasCompute));
    row("subgroup size", d.subgroupSize ? std::to_string(d.subgroupSize) : "unknown");
    char period[64];
    std::snprintf(period, sizeof period, "yes, %g ns per tick", d.timestampPeriod);
    row("timestamps", d.timestampsSupported ? period : "no");
    row("shader float16", yesNo(d.float16));
    row("shader int8", yesNo(d.int8));
    row("16-bit storage", yesNo(d.storage16bit));
    row("max storage buffer", formatBytes(d.maxStorageBufferRange));
    row("max shared memory", formatBytes(d.maxComputeSharedMemorySize));
    row("max invocations", std::to_string(d.maxWorkgroupInvocations) + " per workgroup");
}

} // namespace

int runDevices(const Args& args, Streams io) {
    args.allowOnly({"json"});
    if (!args.positionals().empty())
        throw UsageError("devices takes no arguments, got '" + args.positionals().front() + "'");
    const bool json = args.has("json");

    // Our own instance (not enumerateDevices(options)) so that, with KVS_VK_VALIDATION=1, the
    // layer's messages can be shown.
    auto instance = gpu::Instance::create();
    Result<std::vector<gpu::DeviceInfo>> found =
        instance.ok() ? gpu::enumerateDevices(*instance)
                      : Result<std::vector<gpu::DeviceInfo>>(instance.error());
    const std::vector<gpu::DeviceInfo> devices =
        found.ok() ? found.value() : std::vector<gpu::DeviceInfo>{};
    const std::string preference = gpu::devicePreferenceFromEnv();
    const std::optional<std::size_t> chosen = gpu::chooseDevice(devices, preference);

    if (instance.ok())
        for (const auto& message : instance->validationMessages())
            io.err << "vulkan validation: " << gpu::toString(message) << "\n";

    if (json) {
        nlohmann::ordered_json j;
        j["devices"] = nlohmann::ordered_json::array();
        for (const auto& d : devices)
            j["devices"].push_back(deviceJson(d));
        j["chosen"] = chosen ? nlohmann::ordered_json(devices[*chosen].index) : nullptr;
        j["preference"] = preference.empty() ? nlohmann::ordered_json(nullptr)
                                             : nlohmann::ordered_json(preference);
        j["loader_version"] = instance.ok() ? nlohmann::ordered_json(instance->loaderVersion())
                                            : nlohmann::ordered_json(nullptr);
        if (!found.ok())
            j["error"] = found.message();
        io.out << j.dump(2) << "\n";
        return 0;
    }

    if (!found.ok()) {
        io.out << "No Vulkan device available: " << found.message()
               << "\nKV Studio computes on the CPU instead.\n";
        return 0;
    }
    if (devices.empty()) {
        io.out << "The Vulkan loader (" << instance->loaderVersion()
               << ") works but lists no device.\nKV Studio computes on the CPU instead.\n";
        return 0;
    }
    io.out << "Vulkan devices: " << devices.size() << " (loader " << instance->loaderVersion()
           << ")\n\n";
    for (std::size_t i = 0; i < devices.size(); ++i) {
        printDevice(io.out, devices[i], chosen == i);
        io.out << "\n";
    }
    if (chosen) {
        io.out << "chosen: [" << devices[*chosen].index << "] " << devices[*chosen].name;
        if (preference.empty())
            io.out << " (automatic: discrete > integrated > virtual > cpu; set "
                      "KVS_VULKAN_DEVICE=<index|name> to override)\n";
        else
            io.out << " (KVS_VULKAN_DEVICE=\"" << preference << "\")\n";
    } else if (!preference.empty()) {
        io.out << "chosen: none - KVS_VULKAN_DEVICE=\"" << preference
               << "\" matches no device (use an index or part of a name listed above)\n";
    } else {
        io.out << "chosen: none - no device has a compute queue\n";
    }
    return 0;
}

} // namespace kvs::cli
