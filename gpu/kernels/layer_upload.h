// SPDX-License-Identifier: MIT
// How a layer of CompressedHeads is laid out in buffers for the attention kernels: the storage
// form of the heads (Variant) and the packed K / V / scales / bias / positions / head table of
// each upload. gpu/shaders/include/attention_common.glsl documents the same layout from the
// shader side; attention_layout.h names its numbers.
#pragma once

#include "vk/buffer.h"

#include "kvs/attention_backend.h"

#include <compare>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace kvs::gpu::kernels {

using layout::Storage;

// The storage form of a layer's heads; equal for every head of one upload.
struct Variant {
    std::uint32_t hsk = 0, hsv = 0;
    Storage kMode = Storage::F32, vMode = Storage::F32;
    std::uint32_t kBits = 4, kGroup = 32, vBits = 4, vGroup = 32, kPerToken = 0, vPerChannel = 0;
    std::uint32_t kStride = 0, vStride = 0; // words per row
    // Storage::RotatedValues / RotatedLowRank: pair layout. RotatedLowRank also uses kGroup (the
    // rank) and kBits (16 or 32: the coefficients' width).
    std::uint32_t kRotationInterleaved = 0;
    // CompressedHead::hadamardBlock where the quantized keys or values are stored rotated: the
    // queries are rotated before the probe (kMode Quantized) and the outputs turned back after
    // the combine (vMode Quantized) by hadamard.comp.
    std::uint32_t hadamardBlock = 0;
    auto operator<=>(const Variant&) const = default;
};
Variant variantOf(const CompressedHead& head);

// KV heads [first, first + count) of a layer, uploaded. Every role's bytes fit one binding.
struct Upload {
    int firstKvHead = 0;
    int kvHeads = 0;
    Variant variant;
    bool bias = false;
    // Quantized keys / values with outliers kept dense in some head of the layer: every head of
    // the upload has an outlier table (empty where it has none) and the kernels read them.
    bool keyOutliers = false;
    bool valueOutliers = false;
    int maxKept = 0;
    std::vector<int> kept;
    std::unique_ptr<vk::Buffer> k, v, ks, vs, biasBuf, pos, heads;
    std::size_t cacheBytes = 0;  // K + V + scales (+ bias) as the probe kernel reads them
    std::size_t keyBytes = 0;    // K + key scales (+ bias): what the map kernel reads
    float keyScale = 1.0f;       // rotated modes: the rotation's cos/sin factor, folded into scale
    DeviceAllocation allocation; // the device memory of the buffers above (scratch 0)
};

// Splits the layer into uploads whose buffers each fit `maxBinding` bytes (one KV head too large
// for a binding is an Error(Unsupported) naming the sizes).
std::vector<Upload> uploadLayer(vk::Context& context, std::span<const CompressedHead> heads,
                                std::uint64_t maxBinding);

} // namespace kvs::gpu::kernels
