// SPDX-License-Identifier: MIT
// Tuning rules: probe kernel choice, key splits, 16-byte row loads.
#include "tuning.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

namespace kvs::gpu::kernels {

TuningOverrides TuningOverrides::fromEnvironment() {
    TuningOverrides o;
    if (const char* forced = std::getenv("KVS_VK_SPLITS"); forced && *forced)
        o.splits = std::max(0, std::atoi(forced));
    const char* off = std::getenv("KVS_VK_NO_SUBGROUPS");
    o.noSubgroups = off && *off && std::string_view(off) != "0";
    if (const char* e = std::getenv("KVS_VK_SUBGROUPS_PER_WG"))
        o.subgroupsPerWorkgroup = std::max(0, std::atoi(e));
    return o;
}

ProbeChoice chooseProbe(const DeviceInfo& device, const Variant& var, int group,
                        std::uint32_t sharedMemoryWg, bool allowSubgroups,
                        const TuningOverrides& overrides) {
    ProbeChoice c;
    c.wg = sharedMemoryWg;
    const std::uint32_t sg = device.subgroupSize;
    if (!allowSubgroups || overrides.noSubgroups || !device.subgroupArithmetic || sg < 4 ||
        sg > 64 || (sg & (sg - 1)) != 0 || 4 * sg > device.maxWorkgroupInvocations)
        return c;
    // Value chunks per lane (one slot kept for a tail) and query chunks per lane.
    const std::uint32_t v4 = var.hsv / 4;
    if (v4 > sg * (var.hsv % 4 == 0 ? layout::kSgMaxVec : layout::kSgMaxVec - 1) ||
        var.hsk > 4 * layout::kSgMaxQVec * sg)
        return c;
    // Subgroups per workgroup: 4 on GPUs (128 threads on NVIDIA: rows in flight, small merge);
    // 1 on CPU devices, where lavapipe ran the 4-subgroup version 2.5× slower (4k keys × 32
    // heads × d 128 fp16: 53 ms with 1, 133 ms with 4, 148 ms with 16 subgroups; 2026-11-23).
    std::uint32_t wg = (device.isCpuEmulation() ? 1 : 4) * sg;
    if (overrides.subgroupsPerWorkgroup > 0)
        wg = sg * static_cast<std::uint32_t>(overrides.subgroupsPerWorkgroup);
    const std::uint32_t nsg = wg / sg;
    // The shader's fixed shared arrays (probe_split_sg.comp, sizes in attention_layout.h).
    const auto fits = [&](std::uint32_t rows) {
        return rows * var.hsk <= layout::kSgSharedQueryFloats &&
               rows * nsg <= layout::kSgSharedMergeSlots &&
               rows * nsg * ((var.hsv + 3) / 4) <= layout::kSgSharedMergeVec4s;
    };
    if (device.maxComputeSharedMemorySize < layout::kSgSharedBytes)
        return c;
    // Rows = query heads of one GQA group sharing each K/V load: the largest divisor of the
    // group ≤ MAX_ROWS whose rows fit the shared arrays.
    std::uint32_t rows = 0;
    for (std::uint32_t r = layout::kSgMaxRows; r >= 1; --r)
        if (static_cast<std::uint32_t>(group) % r == 0 && fits(r)) {
            rows = r;
            break;
        }
    if (rows == 0)
        return c;
    c.subgroup = true;
    c.subgroupSize = sg;
    c.wg = wg;
    c.rows = rows;
    return c;
}

// Enough workgroups to fill the device (CPU devices: 4 per core; GPUs: 256 ≈ 2 per SM of a large
// GPU) with at least 4 tiles per split, at most 64. From GPU.md's scratch benchmark (32 heads ×
// d 128 × 1k keys on lavapipe: 4 splits best) and its rule "splits = max(1, 2·cores /
// (heads·batch))".
int tuneSplits(const DeviceInfo& device, int cores, int maxKept, int workgroups, std::uint32_t wg,
               const TuningOverrides& overrides) {
    if (overrides.splits >= 1)
        return overrides.splits;
    const int target = device.isCpuEmulation() ? 4 * std::max(1, cores) : 256;
    const int wanted = (target + std::max(1, workgroups) - 1) / std::max(1, workgroups);
    const int tiles = (maxKept + static_cast<int>(wg) - 1) / static_cast<int>(wg);
    const int most = std::max(1, tiles / 4);
    return std::clamp(wanted, 1, std::min(64, most));
}

// 16-byte loads of whole rows where dense rows are a whole number of uvec4s (4 fp32 or 8 fp16
// channels per lane per load): on lavapipe the per-uint loads made the key reads ~5× slower
// than the copy kernel (probe_split_sg.comp).
bool vectorRows(Storage mode, std::uint32_t dim, std::uint32_t stride) {
    return (mode == Storage::F32 || mode == Storage::F16) &&
           dim % (mode == Storage::F16 ? 8u : 4u) == 0 && stride % 4 == 0;
}

} // namespace kvs::gpu::kernels
