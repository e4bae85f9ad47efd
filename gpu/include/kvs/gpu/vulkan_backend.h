// SPDX-License-Identifier: MIT
// The Vulkan attention backend (compute shaders over CompressedHead, DESIGN.md "GPU"), the
// choice between it and the CPU reference, and the measurements `kvstudio-cli bench attention`
// makes with it.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/gpu/devices.h"
#include "kvs/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// Environment variables read here, beside those of devices.h:
//   KVS_VK_SPLITS               force the number of key splits of the probe kernel (≥ 1)
//   KVS_VK_NO_SUBGROUPS         "1": the shared-memory probe kernel instead of the subgroup one
//   KVS_VK_NO_PUSH_DESCRIPTORS  "1": bind through a descriptor pool even where push descriptors
//                               exist (so lavapipe CI covers the fallback path)
//   KVS_BACKEND                 "cpu" makes makeAttentionBackend() skip Vulkan
//   KVS_VK_SIMULATE_DEVICE_LOST "1": every submission fails with VK_ERROR_DEVICE_LOST (tests)

namespace kvs::gpu {

struct VulkanBackendOptions {
    InstanceOptions instance; // validation from KVS_VK_VALIDATION by default
    std::string device = devicePreferenceFromEnv();
    bool allowPushDescriptors = true;
    int splits = 0;         // 0: tuned (or KVS_VK_SPLITS); else this many key splits
    int workgroupSize = 64; // threads per workgroup = keys per tile; a multiple of dSplit
    int dSplit = 8;         // threads sharing one key row's dot product (shared-memory kernel)
    // The subgroup probe kernel where the device has subgroup arithmetic (lavapipe, NVIDIA);
    // false (or KVS_VK_NO_SUBGROUPS=1) runs the shared-memory-only kernel everywhere.
    bool useSubgroups = true;
    // Largest storage-buffer binding to use; 0 = the device's maxStorageBufferRange (128 MiB on
    // lavapipe). Layers whose K or V exceed it run as several dispatches over chunks of KV heads;
    // tests set it small to exercise that path.
    std::uint64_t maxBindingBytes = 0;
};

// Per dispatch of one layer call, as the bench reports it.
struct LayerTiming {
    std::vector<DispatchTiming> dispatches;
    double totalMicroseconds() const;
    std::size_t bytesRead() const;
};

// Thread-safe: calls from several threads are serialized (one queue and fence per backend).
class VulkanBackend : public AttentionBackend {
public:
    ~VulkanBackend() override;
    std::string name() const override;
    bool isCpuEmulation() const override;
    // attend: one head (query head = KV head). attendLayer: every KV head of the layer in one
    // probe dispatch + one combine dispatch (more only where a role's bytes exceed the device's
    // storage-buffer range: then per chunk of KV heads). The dispatch timings of a layer call are
    // in the first result.
    Result<AttendResult> attend(const CompressedHead& head, const Matrix& queries,
                                const AttendOptions& options) override;
    Result<std::vector<AttendResult>> attendLayer(const LayerAttendRequest& request) override;

    const DeviceInfo& device() const;
    // Validation messages recorded since creation or the last clear (validation on only).
    std::vector<ValidationMessage> validationMessages() const;
    void clearValidationMessages();
    bool usesPushDescriptors() const;
    // True after a Vulkan call reported VK_ERROR_DEVICE_LOST; later calls fail fast.
    bool deviceLost() const;

    // Uploads the layer once, runs the probe kernels `warmup + repeats` times; the timings of
    // the measured repeats. Outputs are not read back.
    Result<std::vector<LayerTiming>> benchmarkLayer(const LayerAttendRequest& request, int warmup,
                                                    int repeats);
    // Copy-kernel bandwidth over `bytes` (read + write counted): one entry per repeat, GB/s.
    Result<std::vector<double>> measureCopyBandwidth(std::size_t bytes, int repeats);

    // The device memory one storage buffer of `bytes` bytes takes on this device
    // (VkMemoryRequirements::size; every buffer of the backend is its own allocation of that
    // size). AttendResult::allocation sums these over the buffers of a call.
    Result<std::size_t> memoryRequirement(std::size_t bytes);
    // The VkInstance handle, for tools that hook Vulkan (RenderDoc's device pointer).
    void* nativeInstance() const;

    struct Impl;

private:
    friend Result<std::unique_ptr<VulkanBackend>> makeVulkanBackend(const VulkanBackendOptions&);
    explicit VulkanBackend(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

// Errors (Unsupported) without a loader, a driver or a usable device; never throws or crashes.
Result<std::unique_ptr<VulkanBackend>> makeVulkanBackend(const VulkanBackendOptions& options = {});

// What the studio and the CLI run attention on: Vulkan when it works, else the CPU reference.
struct BackendChoice {
    std::unique_ptr<AttentionBackend> backend;
    bool vulkan = false;
    // The Vulkan backend inside `backend` (owned by it), for what only Vulkan has (copy
    // bandwidth, the VkInstance for RenderDoc); null on the CPU.
    VulkanBackend* vulkanBackend = nullptr;
    std::string description; // "Vulkan: <device summary>" or "CPU (Eigen): <why>"
};

// Tries Vulkan unless `preference` (or KVS_BACKEND) is "cpu"; on failure falls back to the CPU
// backend and says why. The Vulkan backend is wrapped so that a device lost later also falls
// back (the call is retried on the CPU, and every later call goes there).
BackendChoice makeAttentionBackend(const std::string& preference = "",
                                   const VulkanBackendOptions& options = {});

} // namespace kvs::gpu
