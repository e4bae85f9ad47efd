// SPDX-License-Identifier: MIT
// Layer uploads: packing K / V / scales / bias / positions and the head table per KV head, in
// as few uploads as the binding range allows.
#include "layer_upload.h"

#include <Eigen/Core>
#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>
#include <string>

namespace kvs::gpu::kernels {

using layout::HeadField;

namespace {

std::uint32_t halfBits(float x) {
    return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(x));
}

std::uint32_t packHalf2(float lo, float hi) {
    return halfBits(lo) | (halfBits(hi) << 16);
}

Storage denseMode(Precision p) {
    return p == Precision::F16 ? Storage::F16 : Storage::F32;
}

std::uint32_t denseStride(std::uint32_t cols, Storage mode) {
    return mode == Storage::F16 ? (cols + 1u) / 2u : cols;
}

// Appends a dense matrix as fp32 bits or fp16 pairs, `stride` words per row.
void appendDense(std::vector<std::uint32_t>& out, const Matrix& x, Storage mode) {
    const auto cols = static_cast<std::uint32_t>(x.cols());
    const std::uint32_t stride = denseStride(cols, mode);
    const std::size_t base = out.size();
    out.resize(base + static_cast<std::size_t>(x.rows()) * stride, 0u);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
        std::uint32_t* row = out.data() + base + static_cast<std::size_t>(r) * stride;
        for (std::uint32_t c = 0; c < cols; ++c) {
            const float v = x(r, static_cast<Eigen::Index>(c));
            if (mode == Storage::F32)
                std::memcpy(&row[c], &v, 4);
            else
                row[c / 2] |= halfBits(v) << (16 * (c % 2));
        }
    }
}

void appendScales(std::vector<std::uint32_t>& out, const QuantizedMatrix& q) {
    for (std::size_t g = 0; g < q.scales.size(); ++g)
        out.push_back(packHalf2(q.scales[g], q.minimums[g]));
}

// Appends the outlier table of `q` (attention_layout.h, KVS_HEAD_KO_OFFSET): rows + 1 absolute
// row starts, then (column | fp16 value << 16) per outlier. Returns the table's word offset.
std::size_t appendOutliers(std::vector<std::uint32_t>& out, const QuantizedMatrix& q) {
    if (q.cols > 0xffff)
        throw Error(ErrorCode::Unsupported, "outliers of rows of " + std::to_string(q.cols) +
                                                " columns: the kernels index 16-bit columns");
    const std::size_t table = out.size();
    const std::size_t first = table + static_cast<std::size_t>(q.rows) + 1;
    out.resize(first, 0u);
    const auto cols = static_cast<std::size_t>(q.cols);
    std::size_t e = 0;
    for (int r = 0; r <= q.rows; ++r) {
        // Row r starts at its first outlier: the ones before it belong to earlier rows.
        while (e < q.outlierIndices.size() &&
               q.outlierIndices[e] / cols < static_cast<std::size_t>(r))
            ++e;
        out[table + static_cast<std::size_t>(r)] = static_cast<std::uint32_t>(first + e);
    }
    for (std::size_t i = 0; i < q.outlierIndices.size(); ++i)
        out.push_back(static_cast<std::uint32_t>(q.outlierIndices[i] % cols) |
                      (halfBits(q.outlierValues[i]) << 16));
    return table;
}

// Bytes each role of one head takes in the upload, for the binding-range check.
struct HeadBytes {
    std::size_t k = 0, v = 0, ks = 0, vs = 0, tok = 0;
};

HeadBytes headBytes(const CompressedHead& h, const Variant& var, bool keyOutliers,
                    bool valueOutliers) {
    HeadBytes b;
    const auto m = static_cast<std::size_t>(h.keptCount());
    b.k = var.kMode == Storage::RotatedValues ? var.hsk / 2 * 4 : m * var.kStride * 4;
    if (var.kMode == Storage::RotatedLowRank) // frequencies and basis lead the coefficients
        b.k += (var.hsk / 2 + var.hsk * var.kGroup) * 4 + 12; // + up to 3 words of alignment
    if (var.kMode == Storage::RotatedQuantized)               // the frequencies lead the codes
        b.k += var.hsk / 2 * 4;
    b.v = m * var.vStride * 4;
    if (var.kMode == Storage::Quantized || var.kMode == Storage::RotatedQuantized)
        b.ks = h.quantizedKeys.scales.size() * 4;
    if (var.vMode == Storage::Quantized)
        b.vs = h.quantizedValues.scales.size() * 4;
    if (keyOutliers)
        b.ks += (h.quantizedKeys.outlierIndices.size() + m + 1) * 4;
    if (valueOutliers)
        b.vs += (h.quantizedValues.outlierIndices.size() + m + 1) * 4;
    b.tok = m * 4;
    return b;
}

} // namespace

Variant variantOf(const CompressedHead& head) {
    Variant v;
    v.hsk = static_cast<std::uint32_t>(head.keyRank());
    v.hsv = static_cast<std::uint32_t>(head.valueDim());
    if (head.keyForm == CompressedHead::KeyForm::Quantized) {
        v.kMode = Storage::Quantized;
        v.kBits = static_cast<std::uint32_t>(head.quantizedKeys.bits);
        v.kGroup = static_cast<std::uint32_t>(head.quantizedKeys.groupSize);
        v.kPerToken = head.quantizedKeys.grouping == QuantizedMatrix::Grouping::PerToken ? 1 : 0;
        v.kStride = static_cast<std::uint32_t>(head.quantizedKeys.wordsPerRow());
    } else {
        v.kMode = denseMode(head.keyPrecision);
        v.kStride = denseStride(v.hsk, v.kMode);
    }
    if (head.valueForm == CompressedHead::ValueForm::Quantized) {
        v.vMode = Storage::Quantized;
        v.vBits = static_cast<std::uint32_t>(head.quantizedValues.bits);
        v.vGroup = static_cast<std::uint32_t>(head.quantizedValues.groupSize);
        v.vPerChannel =
            head.quantizedValues.grouping == QuantizedMatrix::Grouping::PerChannel ? 1 : 0;
        v.vStride = static_cast<std::uint32_t>(head.quantizedValues.wordsPerRow());
    } else {
        v.vMode = denseMode(head.valuePrecision);
        v.vStride = denseStride(v.hsv, v.vMode);
    }
    if (head.keysRotated() || head.valuesRotated())
        v.hadamardBlock = static_cast<std::uint32_t>(head.hadamardBlock);
    // K=V under RoPE: only the values (the cached pre-RoPE keys) are uploaded; the kernels rotate
    // them into keys on load, the K binding holding the d/2 pair frequencies.
    if (head.valueForm == CompressedHead::ValueForm::SharedWithKeys &&
        head.keyForm == CompressedHead::KeyForm::Dense && v.hsk == v.hsv && v.hsk % 2 == 0 &&
        head.keyRotation.frequencies.size() * 2 == v.hsk) {
        v.kMode = Storage::RotatedValues;
        v.kStride = 0;
        v.kRotationInterleaved = head.keyRotation.interleaved ? 1 : 0;
    }
    // Pre-RoPE low-rank latents: queries stay d wide; the kernels rebuild c · Pᵀ and rotate it.
    if (hasPreRopeLowRankKeys(head)) {
        v.kMode = Storage::RotatedLowRank;
        v.hsk = static_cast<std::uint32_t>(head.headDim);
        v.kGroup = static_cast<std::uint32_t>(head.keys.cols());
        v.kBits = head.keyPrecision == Precision::F16 ? 16u : 32u;
        v.kStride = denseStride(v.kGroup, denseMode(head.keyPrecision));
        v.kRotationInterleaved = head.keyRotation.interleaved ? 1 : 0;
    }
    // Pre-RoPE quantized keys: decoded and rotated on load, the codes after the frequencies.
    if (hasPreRopeQuantizedKeys(head)) {
        v.kMode = Storage::RotatedQuantized;
        v.kRotationInterleaved = head.keyRotation.interleaved ? 1 : 0;
    }
    return v;
}

namespace {

// Greedy chunk from `first`: the end of the heads that still fit one binding per role.
std::size_t chunkEnd(std::span<const CompressedHead> heads, std::size_t first, const Upload& up,
                     std::uint64_t maxBinding) {
    HeadBytes sum;
    std::size_t end = first;
    while (end < heads.size()) {
        const HeadBytes b = headBytes(heads[end], up.variant, up.keyOutliers, up.valueOutliers);
        const HeadBytes next{sum.k + b.k, sum.v + b.v, sum.ks + b.ks, sum.vs + b.vs,
                             sum.tok + b.tok};
        const std::size_t biggest = std::max({next.k, next.v, next.ks, next.vs, next.tok});
        if (biggest > maxBinding) {
            if (end == first)
                throw Error(ErrorCode::Unsupported,
                            "KV head " + std::to_string(first) + " needs a binding of " +
                                std::to_string(biggest) + " bytes; this device allows " +
                                std::to_string(maxBinding) +
                                " (maxStorageBufferRange); split the context");
            break;
        }
        sum = next;
        ++end;
    }
    return end;
}

// The words of every binding of one upload, before they become buffers.
struct Packed {
    std::vector<std::uint32_t> k, v, ks, vs, table;
    std::vector<float> bias;
    std::vector<std::int32_t> pos;
    std::size_t sharedValueWords = 0; // value words of K=V heads (a copy of the keys)
};

// Appends head `h` to `p`: its head-table entry, keys, values, positions and bias.
void packHead(Packed& p, const CompressedHead& h, const Variant& variant, Upload& up) {
    const int m = h.keptCount();
    up.kept.push_back(m);
    up.maxKept = std::max(up.maxKept, m);
    // Every head's K and V start on 16 bytes: the uvec4 loads of probe_split_sg.comp.
    p.k.resize((p.k.size() + 3) / 4 * 4, 0u);
    p.v.resize((p.v.size() + 3) / 4 * 4, 0u);
    std::uint32_t entry[layout::kHeadWords] = {};
    const auto field = [&](HeadField f, std::size_t value) {
        entry[layout::index(f)] = static_cast<std::uint32_t>(value);
    };
    field(HeadField::Kept, static_cast<std::size_t>(m));
    field(HeadField::KOffset, p.k.size());
    field(HeadField::VOffset, p.v.size());
    field(HeadField::KsOffset, p.ks.size());
    field(HeadField::VsOffset, p.vs.size());
    field(HeadField::TokenOffset, p.pos.size());
    if (variant.kMode == Storage::Quantized || variant.kMode == Storage::RotatedQuantized) {
        if (variant.kMode == Storage::RotatedQuantized) {
            for (float f : h.keyRotation.frequencies)
                p.k.push_back(std::bit_cast<std::uint32_t>(f));
            up.keyScale = h.keyRotation.scale;
        }
        p.k.insert(p.k.end(), h.quantizedKeys.codes.begin(), h.quantizedKeys.codes.end());
        appendScales(p.ks, h.quantizedKeys);
        if (up.keyOutliers)
            field(HeadField::KeyOutlierOffset, appendOutliers(p.ks, h.quantizedKeys));
    } else if (variant.kMode == Storage::RotatedValues) {
        for (float f : h.keyRotation.frequencies)
            p.k.push_back(std::bit_cast<std::uint32_t>(f));
        up.keyScale = h.keyRotation.scale;
    } else if (variant.kMode == Storage::RotatedLowRank) {
        for (float f : h.keyRotation.frequencies)
            p.k.push_back(std::bit_cast<std::uint32_t>(f));
        appendDense(p.k, h.queryProjection, Storage::F32);
        appendDense(p.k, h.keys, variant.kBits == 16u ? Storage::F16 : Storage::F32);
        up.keyScale = h.keyRotation.scale;
    } else {
        appendDense(p.k, h.keys, variant.kMode);
    }
    if (variant.vMode == Storage::Quantized) {
        p.v.insert(p.v.end(), h.quantizedValues.codes.begin(), h.quantizedValues.codes.end());
        appendScales(p.vs, h.quantizedValues);
        if (up.valueOutliers)
            field(HeadField::ValueOutlierOffset, appendOutliers(p.vs, h.quantizedValues));
    } else {
        const std::size_t before = p.v.size();
        appendDense(p.v, h.values, variant.vMode);
        if (h.valueForm == CompressedHead::ValueForm::SharedWithKeys &&
            variant.kMode != Storage::RotatedValues)
            p.sharedValueWords += p.v.size() - before;
    }
    p.table.insert(p.table.end(), std::begin(entry), std::end(entry));
    p.pos.insert(p.pos.end(), h.positions.begin(), h.positions.end());
    if (h.logWeights.empty())
        p.bias.insert(p.bias.end(), static_cast<std::size_t>(m), 0.0f);
    else
        p.bias.insert(p.bias.end(), h.logWeights.begin(), h.logWeights.end());
}

// Makes the buffers of `p` and counts their memory and the bytes each kernel reads.
void fillBuffers(vk::Context& context, const Packed& p, std::span<const CompressedHead> chunk,
                 Upload& up) {
    up.k = vk::makeFilledBuffer(context, p.k);
    up.v = vk::makeFilledBuffer(context, p.v);
    up.ks = vk::makeFilledBuffer(context, p.ks);
    up.vs = vk::makeFilledBuffer(context, p.vs);
    up.biasBuf = vk::makeFilledBuffer(context, p.bias);
    up.pos = vk::makeFilledBuffer(context, p.pos);
    up.heads = vk::makeFilledBuffer(context, p.table);
    up.allocation.keys = up.k->allocatedBytes() + up.ks->allocatedBytes();
    up.allocation.values = up.v->allocatedBytes() + up.vs->allocatedBytes();
    up.allocation.metadata =
        up.biasBuf->allocatedBytes() + up.pos->allocatedBytes() + up.heads->allocatedBytes();
    up.allocation.buffers = 7;
    // The values buffer, or its K=V heads' share of it (all or none in practice: a model
    // shares K=V in every head).
    if (p.sharedValueWords > 0) {
        const bool allShared = std::all_of(chunk.begin(), chunk.end(), [](const CompressedHead& h) {
            return h.valueForm == CompressedHead::ValueForm::SharedWithKeys;
        });
        const auto allocated = static_cast<double>(up.v->allocatedBytes());
        up.allocation.sharedValueCopy =
            allShared
                ? up.v->allocatedBytes()
                : static_cast<std::size_t>(allocated * static_cast<double>(p.sharedValueWords) /
                                           static_cast<double>(p.v.size()));
    }
    up.keyBytes = (p.k.size() + p.ks.size()) * 4 + (up.bias ? p.bias.size() * 4 : 0);
    up.cacheBytes = up.keyBytes + (p.v.size() + p.vs.size()) * 4;
    if (up.variant.kMode == Storage::RotatedValues) // the map kernel reads keys out of values
        up.keyBytes += p.v.size() * 4;
}

} // namespace

std::vector<Upload> uploadLayer(vk::Context& context, std::span<const CompressedHead> heads,
                                std::uint64_t maxBinding) {
    std::vector<Upload> uploads;
    if (heads.empty())
        return uploads;
    Upload layer; // what every upload of the layer shares
    layer.variant = variantOf(heads[0]);
    for (const auto& h : heads) {
        if (variantOf(h) != layer.variant)
            throw Error(ErrorCode::Internal, "uploadLayer: heads of different storage forms");
        layer.bias = layer.bias || !h.logWeights.empty();
        layer.keyOutliers = layer.keyOutliers || (h.keyForm == CompressedHead::KeyForm::Quantized &&
                                                  !h.quantizedKeys.outlierIndices.empty());
        layer.valueOutliers =
            layer.valueOutliers || (h.valueForm == CompressedHead::ValueForm::Quantized &&
                                    !h.quantizedValues.outlierIndices.empty());
    }
    std::size_t first = 0;
    while (first < heads.size()) {
        const std::size_t end = chunkEnd(heads, first, layer, maxBinding);
        Upload up;
        up.firstKvHead = static_cast<int>(first);
        up.kvHeads = static_cast<int>(end - first);
        up.variant = layer.variant;
        up.bias = layer.bias;
        up.keyOutliers = layer.keyOutliers;
        up.valueOutliers = layer.valueOutliers;
        Packed packed;
        for (std::size_t i = first; i < end; ++i)
            packHead(packed, heads[i], up.variant, up);
        fillBuffers(context, packed, heads.subspan(first, end - first), up);
        uploads.push_back(std::move(up));
        first = end;
    }
    return uploads;
}

} // namespace kvs::gpu::kernels
