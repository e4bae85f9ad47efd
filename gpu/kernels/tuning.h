// SPDX-License-Identifier: MIT
// The tuning rules of the attention kernels as pure functions of the device, the shape and the
// environment switches (STYLE.md 7, 8): which probe kernel runs with which workgroup, how many
// key splits, which rows are read as 16-byte words. Each rule names the measurement behind it.
#pragma once

#include "layer_upload.h"

#include "kvs/gpu/devices.h"

#include <cstdint>

namespace kvs::gpu::kernels {

// The environment switches of these rules, read by fromEnvironment() once per run so the rules
// themselves stay pure (lavapipe CI covers the paths a GPU takes and the other way round).
struct TuningOverrides {
    int splits = 0;                // KVS_VK_SPLITS: ≥ 1 forces the split count
    bool noSubgroups = false;      // KVS_VK_NO_SUBGROUPS: any value but "0" (or empty)
    int subgroupsPerWorkgroup = 0; // KVS_VK_SUBGROUPS_PER_WG: > 0 replaces 1 (CPU) / 4 (GPU)
    static TuningOverrides fromEnvironment();
};

// Which probe kernel runs: the subgroup kernel (rows = query heads per workgroup, wg = 4
// subgroups) where the device has subgroup arithmetic and the shapes fit, else the
// shared-memory kernel (rows 1, wg = `sharedMemoryWg`).
struct ProbeChoice {
    bool subgroup = false;
    std::uint32_t subgroupSize = 0;
    std::uint32_t wg = 64;
    std::uint32_t rows = 1;
};
ProbeChoice chooseProbe(const DeviceInfo& device, const Variant& var, int group,
                        std::uint32_t sharedMemoryWg, bool allowSubgroups,
                        const TuningOverrides& overrides);

// Key splits of the probe kernel for `workgroups` workgroups per split on a device with `cores`
// host cores (CPU devices).
int tuneSplits(const DeviceInfo& device, int cores, int maxKept, int workgroups, std::uint32_t wg,
               const TuningOverrides& overrides);

// Whether the subgroup kernel reads dense rows of `dim` channels, `stride` words apart, as uvec4.
bool vectorRows(Storage mode, std::uint32_t dim, std::uint32_t stride);

} // namespace kvs::gpu::kernels
