// SPDX-License-Identifier: MIT
// Layer uploads (packing K/V/scales/bias/positions per KV head), pipeline keys, split tuning and
// the probe / combine / map / copy dispatches.
#include "attention_kernels.h"

#include "shaders.h"

#include <Eigen/Core>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <thread>

namespace kvs::gpu::kernels {

using vk::Buffer;

const char* kernelName(Kernel kernel) {
    switch (kernel) {
    case Kernel::ProbeSplit:
        return "probe_split";
    case Kernel::ProbeSplitSubgroup:
        return "probe_split_sg";
    case Kernel::Combine:
        return "combine";
    case Kernel::AttentionMap:
        return "attention_map";
    case Kernel::Copy:
        return "copy";
    }
    return "?";
}

vk::SpecConstants PipelineKey::spec() const {
    if (kernel == Kernel::Copy)
        return {wg};
    vk::SpecConstants spec = {wg,     hsk,   hsv,    kMode,  vMode,     kBits,
                              kGroup, vBits, vGroup, dSplit, kPerToken, vPerChannel};
    if (kernel == Kernel::ProbeSplitSubgroup) { // ids 12..15 of probe_split_sg.comp
        spec.push_back(subgroup);
        spec.push_back(rows);
        spec.push_back(kVec);
        spec.push_back(vVec);
    }
    return spec;
}

const vk::Pipeline& PipelineSet::get(const PipelineKey& key) {
    auto it = m_pipelines.find(key);
    if (it != m_pipelines.end())
        return *it->second;
    std::span<const std::uint32_t> code;
    switch (key.kernel) {
    case Kernel::ProbeSplit:
        code = {shaders::probe_split, shaders::probe_split_words};
        break;
    case Kernel::ProbeSplitSubgroup:
        code = {shaders::probe_split_sg, shaders::probe_split_sg_words};
        break;
    case Kernel::Combine:
        code = {shaders::combine, shaders::combine_words};
        break;
    case Kernel::AttentionMap:
        code = {shaders::attention_map, shaders::attention_map_words};
        break;
    case Kernel::Copy:
        code = {shaders::copy, shaders::copy_words};
        break;
    }
    auto pipeline =
        std::make_unique<vk::Pipeline>(m_context, code, key.spec(), kernelName(key.kernel));
    return *m_pipelines.emplace(key, std::move(pipeline)).first->second;
}

namespace {

std::uint32_t halfBits(float x) {
    return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(x));
}

std::uint32_t packHalf2(float lo, float hi) {
    return halfBits(lo) | (halfBits(hi) << 16);
}

std::uint32_t denseMode(Precision p) {
    return p == Precision::F16 ? 1u : 0u;
}

std::uint32_t denseStride(std::uint32_t cols, std::uint32_t mode) {
    return mode == 1u ? (cols + 1u) / 2u : cols;
}

// Appends a dense matrix as fp32 bits or fp16 pairs, `stride` words per row.
void appendDense(std::vector<std::uint32_t>& out, const Matrix& x, std::uint32_t mode) {
    const auto cols = static_cast<std::uint32_t>(x.cols());
    const std::uint32_t stride = denseStride(cols, mode);
    const std::size_t base = out.size();
    out.resize(base + static_cast<std::size_t>(x.rows()) * stride, 0u);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
        std::uint32_t* row = out.data() + base + static_cast<std::size_t>(r) * stride;
        for (std::uint32_t c = 0; c < cols; ++c) {
            const float v = x(r, static_cast<Eigen::Index>(c));
            if (mode == 0u)
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

template <class T>
std::unique_ptr<Buffer> makeBuffer(vk::Context& ctx, const std::vector<T>& data) {
    auto buffer = std::make_unique<Buffer>(ctx, data.size() * sizeof(T), Buffer::Role::Device);
    buffer->upload(data.data(), data.size() * sizeof(T));
    return buffer;
}

// Bytes each role of one head takes in the upload, for the binding-range check.
struct HeadBytes {
    std::size_t k = 0, v = 0, ks = 0, vs = 0, tok = 0;
};

HeadBytes headBytes(const CompressedHead& h, const Variant& var) {
    HeadBytes b;
    const auto m = static_cast<std::size_t>(h.keptCount());
    b.k = var.kMode == 3 ? var.hsk / 2 * 4 : m * var.kStride * 4;
    b.v = m * var.vStride * 4;
    if (var.kMode == 2)
        b.ks = h.quantizedKeys.scales.size() * 4;
    if (var.vMode == 2)
        b.vs = h.quantizedValues.scales.size() * 4;
    b.tok = m * 4;
    return b;
}

} // namespace

Variant variantOf(const CompressedHead& head) {
    Variant v;
    v.hsk = static_cast<std::uint32_t>(head.keyRank());
    v.hsv = static_cast<std::uint32_t>(head.valueDim());
    if (head.keyForm == CompressedHead::KeyForm::Quantized) {
        v.kMode = 2;
        v.kBits = static_cast<std::uint32_t>(head.quantizedKeys.bits);
        v.kGroup = static_cast<std::uint32_t>(head.quantizedKeys.groupSize);
        v.kPerToken = head.quantizedKeys.grouping == QuantizedMatrix::Grouping::PerToken ? 1 : 0;
        v.kStride = static_cast<std::uint32_t>(head.quantizedKeys.wordsPerRow());
    } else {
        v.kMode = denseMode(head.keyPrecision);
        v.kStride = denseStride(v.hsk, v.kMode);
    }
    if (head.valueForm == CompressedHead::ValueForm::Quantized) {
        v.vMode = 2;
        v.vBits = static_cast<std::uint32_t>(head.quantizedValues.bits);
        v.vGroup = static_cast<std::uint32_t>(head.quantizedValues.groupSize);
        v.vPerChannel =
            head.quantizedValues.grouping == QuantizedMatrix::Grouping::PerChannel ? 1 : 0;
        v.vStride = static_cast<std::uint32_t>(head.quantizedValues.wordsPerRow());
    } else {
        v.vMode = denseMode(head.valuePrecision);
        v.vStride = denseStride(v.hsv, v.vMode);
    }
    // K=V under RoPE: only the values (the cached pre-RoPE keys) are uploaded; the kernels rotate
    // them into keys on load, the K binding holding the d/2 pair frequencies.
    if (head.valueForm == CompressedHead::ValueForm::SharedWithKeys &&
        head.keyForm == CompressedHead::KeyForm::Dense && v.hsk == v.hsv && v.hsk % 2 == 0 &&
        head.keyRotation.frequencies.size() * 2 == v.hsk) {
        v.kMode = 3;
        v.kStride = 0;
        v.kRotationInterleaved = head.keyRotation.interleaved ? 1 : 0;
    }
    return v;
}

std::vector<Upload> uploadLayer(vk::Context& context, std::span<const CompressedHead> heads,
                                std::uint64_t maxBinding) {
    std::vector<Upload> uploads;
    if (heads.empty())
        return uploads;
    const Variant variant = variantOf(heads[0]);
    bool bias = false;
    for (const auto& h : heads) {
        if (variantOf(h) != variant)
            throw Error(ErrorCode::Internal, "uploadLayer: heads of different storage forms");
        bias = bias || !h.logWeights.empty();
    }

    std::size_t first = 0;
    while (first < heads.size()) {
        // Greedy chunk: add heads while every role still fits one binding.
        HeadBytes sum;
        std::size_t end = first;
        while (end < heads.size()) {
            const HeadBytes b = headBytes(heads[end], variant);
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

        Upload up;
        up.firstKvHead = static_cast<int>(first);
        up.kvHeads = static_cast<int>(end - first);
        up.variant = variant;
        up.bias = bias;
        std::vector<std::uint32_t> k, v, ks, vs, table;
        std::size_t sharedValueWords = 0; // value words of K=V heads (a copy of the keys)
        std::vector<float> biasData;
        std::vector<std::int32_t> pos;
        for (std::size_t i = first; i < end; ++i) {
            const CompressedHead& h = heads[i];
            const int m = h.keptCount();
            up.kept.push_back(m);
            up.maxKept = std::max(up.maxKept, m);
            // Every head's K and V start on 16 bytes: the uvec4 loads of probe_split_sg.comp.
            k.resize((k.size() + 3) / 4 * 4, 0u);
            v.resize((v.size() + 3) / 4 * 4, 0u);
            table.insert(table.end(),
                         {static_cast<std::uint32_t>(m), static_cast<std::uint32_t>(k.size()),
                          static_cast<std::uint32_t>(v.size()),
                          static_cast<std::uint32_t>(ks.size()),
                          static_cast<std::uint32_t>(vs.size()),
                          static_cast<std::uint32_t>(pos.size()), 0u, 0u});
            if (variant.kMode == 2) {
                k.insert(k.end(), h.quantizedKeys.codes.begin(), h.quantizedKeys.codes.end());
                appendScales(ks, h.quantizedKeys);
            } else if (variant.kMode == 3) {
                for (float f : h.keyRotation.frequencies)
                    k.push_back(std::bit_cast<std::uint32_t>(f));
                up.keyScale = h.keyRotation.scale;
            } else {
                appendDense(k, h.keys, variant.kMode);
            }
            if (variant.vMode == 2) {
                v.insert(v.end(), h.quantizedValues.codes.begin(), h.quantizedValues.codes.end());
                appendScales(vs, h.quantizedValues);
            } else {
                const std::size_t before = v.size();
                appendDense(v, h.values, variant.vMode);
                if (h.valueForm == CompressedHead::ValueForm::SharedWithKeys && variant.kMode != 3)
                    sharedValueWords += v.size() - before;
            }
            pos.insert(pos.end(), h.positions.begin(), h.positions.end());
            if (h.logWeights.empty())
                biasData.insert(biasData.end(), static_cast<std::size_t>(m), 0.0f);
            else
                biasData.insert(biasData.end(), h.logWeights.begin(), h.logWeights.end());
        }
        up.k = makeBuffer(context, k);
        up.v = makeBuffer(context, v);
        up.ks = makeBuffer(context, ks);
        up.vs = makeBuffer(context, vs);
        up.biasBuf = makeBuffer(context, biasData);
        up.pos = makeBuffer(context, pos);
        up.heads = makeBuffer(context, table);
        up.allocation.keys = up.k->allocatedBytes() + up.ks->allocatedBytes();
        up.allocation.values = up.v->allocatedBytes() + up.vs->allocatedBytes();
        up.allocation.metadata =
            up.biasBuf->allocatedBytes() + up.pos->allocatedBytes() + up.heads->allocatedBytes();
        up.allocation.buffers = 7;
        // The values buffer, or its K=V heads' share of it (all or none in practice: a model
        // shares K=V in every head).
        if (sharedValueWords > 0) {
            const bool allShared = std::all_of(
                heads.begin() + static_cast<std::ptrdiff_t>(first),
                heads.begin() + static_cast<std::ptrdiff_t>(end), [](const CompressedHead& h) {
                    return h.valueForm == CompressedHead::ValueForm::SharedWithKeys;
                });
            const auto allocated = static_cast<double>(up.v->allocatedBytes());
            up.allocation.sharedValueCopy =
                allShared
                    ? up.v->allocatedBytes()
                    : static_cast<std::size_t>(allocated * static_cast<double>(sharedValueWords) /
                                               static_cast<double>(v.size()));
        }
        up.keyBytes = (k.size() + ks.size()) * 4 + (bias ? biasData.size() * 4 : 0);
        up.cacheBytes = up.keyBytes + (v.size() + vs.size()) * 4;
        if (variant.kMode == 3) // the map kernel reads its keys out of the values
            up.keyBytes += v.size() * 4;
        uploads.push_back(std::move(up));
        first = end;
    }
    return uploads;
}

int tuneSplits(const DeviceInfo& device, int maxKept, int workgroups, std::uint32_t wg) {
    if (const char* forced = std::getenv("KVS_VK_SPLITS"); forced && *forced) {
        const int n = std::atoi(forced);
        if (n >= 1)
            return n;
    }
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int target = device.isCpuEmulation() ? 4 * cores : 256;
    const int wanted = (target + std::max(1, workgroups) - 1) / std::max(1, workgroups);
    const int tiles = (maxKept + static_cast<int>(wg) - 1) / static_cast<int>(wg);
    const int most = std::max(1, tiles / 4);
    return std::clamp(wanted, 1, std::min(64, most));
}

ProbeChoice chooseProbe(const DeviceInfo& device, const Variant& var, int group,
                        const RunOptions& ro) {
    ProbeChoice c;
    c.wg = ro.wg;
    const std::uint32_t sg = device.subgroupSize;
    const char* off = std::getenv("KVS_VK_NO_SUBGROUPS");
    const bool disabled = off && *off && std::string_view(off) != "0";
    if (!ro.subgroups || disabled || !device.subgroupArithmetic || sg < 4 || sg > 64 ||
        (sg & (sg - 1)) != 0 || 4 * sg > device.maxWorkgroupInvocations)
        return c;
    // Value chunks per lane (MAX_VEC = 8 in probe_split_sg.comp, one slot kept for a tail).
    const std::uint32_t v4 = var.hsv / 4;
    if (v4 > sg * (var.hsv % 4 == 0 ? 8u : 7u) || var.hsk > 32 * sg) // MAX_VEC, MAX_QVEC
        return c;
    // Subgroups per workgroup: 4 on GPUs (128 threads on NVIDIA: rows in flight, small merge);
    // 1 on CPU devices, where lavapipe ran the 4-subgroup version 2.5× slower (4k keys × 32
    // heads × d 128 fp16: 53 ms with 1, 133 ms with 4, 148 ms with 16 subgroups; 2026-11-23).
    std::uint32_t wg = (device.isCpuEmulation() ? 1 : 4) * sg;
    if (const char* e = std::getenv("KVS_VK_SUBGROUPS_PER_WG"); e && std::atoi(e) > 0)
        wg = sg * static_cast<std::uint32_t>(std::atoi(e));
    const std::uint32_t nsg = wg / sg;
    // The shader's fixed shared arrays (probe_split_sg.comp): 28.5 KiB.
    const auto fits = [&](std::uint32_t rows) {
        return rows * var.hsk <= 2048 && rows * nsg <= 64 &&
               rows * nsg * ((var.hsv + 3) / 4) <= 1280;
    };
    if (device.maxComputeSharedMemorySize < 29 * 1024)
        return c;
    // Rows = query heads of one GQA group sharing each K/V load: the largest divisor of the
    // group ≤ 8 (MAX_ROWS) whose rows fit the shared arrays.
    std::uint32_t rows = 0;
    for (std::uint32_t r = 8; r >= 1; --r)
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

namespace {

struct PushConstants {
    std::uint32_t nq, heads, group, splits, kStride, vStride;
    float scale;
    std::uint32_t flags, mapStride;
    std::uint32_t pad = 0;
};
static_assert(sizeof(PushConstants) == vk::kPushConstantBytes);

} // namespace

RunResult run(vk::Context& context, PipelineSet& pipelines, const Upload& up,
              std::span<const Matrix> queries, int group, const AttendOptions& options, float scale,
              const RunOptions& ro) {
    const Variant& var = up.variant;
    const auto heads = static_cast<std::uint32_t>(queries.size());
    const auto nq = static_cast<std::uint32_t>(queries.empty() ? 0 : queries[0].rows());
    RunResult result;
    if (heads == 0 || nq == 0)
        return result;
    if (var.hsv > 4 * ro.wg)
        throw Error(ErrorCode::Unsupported, "value dimension " + std::to_string(var.hsv) +
                                                " exceeds 4 × the workgroup size " +
                                                std::to_string(ro.wg));
    if (nq > 65535)
        throw Error(ErrorCode::Unsupported,
                    std::to_string(nq) + " queries per head exceed one dispatch (65535)");

    std::vector<float> q(static_cast<std::size_t>(heads) * nq * var.hsk);
    for (std::uint32_t h = 0; h < heads; ++h)
        std::memcpy(q.data() + static_cast<std::size_t>(h) * nq * var.hsk, queries[h].data(),
                    static_cast<std::size_t>(nq) * var.hsk * sizeof(float));
    const auto qBuf = makeBuffer(context, q);
    std::vector<std::int32_t> qpos = options.queryPositions;
    if (qpos.empty())
        qpos.push_back(0);
    const auto qposBuf = makeBuffer(context, qpos);

    const ProbeChoice probe = chooseProbe(context.info(), var, group, ro);
    const int splits = ro.splits > 0
                           ? ro.splits
                           : tuneSplits(context.info(), up.maxKept,
                                        static_cast<int>(heads / probe.rows * nq), probe.wg);
    PushConstants pc{nq,
                     heads,
                     static_cast<std::uint32_t>(group),
                     static_cast<std::uint32_t>(splits),
                     var.kStride,
                     var.vStride,
                     scale * up.keyScale, // K=V rotation's attention factor (yarn), else 1
                     (options.queryPositions.empty() ? 0u : 1u) | (up.bias ? 2u : 0u) |
                         (var.kRotationInterleaved ? 4u : 0u),
                     static_cast<std::uint32_t>(std::max(1, up.maxKept))};

    PipelineKey key;
    key.wg = ro.wg;
    key.dSplit = ro.dSplit;
    key.hsk = var.hsk;
    key.hsv = var.hsv;
    key.kMode = var.kMode;
    key.vMode = var.vMode;
    if (var.kMode == 2) {
        key.kBits = var.kBits;
        key.kGroup = var.kGroup;
        key.kPerToken = var.kPerToken;
    }
    if (var.vMode == 2) {
        key.vBits = var.vBits;
        key.vGroup = var.vGroup;
        key.vPerChannel = var.vPerChannel;
    }

    const std::size_t rows = static_cast<std::size_t>(heads) * nq;
    const std::size_t qBytes = q.size() * 4;
    std::unique_ptr<Buffer> partials, out, lse, scores, probs;
    vk::Submission submission(context, 3);
    if (ro.probe) {
        partials = std::make_unique<Buffer>(
            context, rows * static_cast<std::size_t>(splits) * (var.hsv + 2) * 4,
            Buffer::Role::Device);
        out = std::make_unique<Buffer>(context, rows * var.hsv * 4, Buffer::Role::Host);
        lse = std::make_unique<Buffer>(context, rows * 4, Buffer::Role::Host);
        const Buffer* probeBufs[] = {qBuf.get(),     up.k.get(),       up.v.get(),   up.ks.get(),
                                     up.vs.get(),    up.biasBuf.get(), up.pos.get(), qposBuf.get(),
                                     up.heads.get(), partials.get(),   nullptr,      nullptr};
        PipelineKey pk = key;
        pk.kernel = probe.subgroup ? Kernel::ProbeSplitSubgroup : Kernel::ProbeSplit;
        pk.wg = probe.wg;
        if (probe.subgroup) {
            pk.subgroup = probe.subgroupSize;
            pk.rows = probe.rows;
            // 16-byte loads of whole rows where dense rows are a whole number of uvec4s
            // (4 fp32 or 8 fp16 channels per lane per load).
            const auto vectorRow = [](std::uint32_t mode, std::uint32_t dim, std::uint32_t stride) {
                return mode < 2 && dim % (mode == 1 ? 8u : 4u) == 0 && stride % 4 == 0;
            };
            pk.kVec = vectorRow(var.kMode, var.hsk, var.kStride) ? 1 : 0;
            pk.vVec = vectorRow(var.vMode, var.hsv, var.vStride) ? 1 : 0;
        }
        submission.dispatch(pipelines.get(pk), probeBufs, &pc, sizeof pc,
                            static_cast<std::uint32_t>(splits), nq, heads / probe.rows);
        const Buffer* combineBufs[] = {nullptr, nullptr,        nullptr,   nullptr,
                                       nullptr, nullptr,        nullptr,   nullptr,
                                       nullptr, partials.get(), out.get(), lse.get()};
        PipelineKey ck = key;
        ck.kernel = Kernel::Combine;
        submission.dispatch(pipelines.get(ck), combineBufs, &pc, sizeof pc, nq, heads, 1);
    }
    if (ro.map) {
        const std::size_t mapBytes = rows * static_cast<std::size_t>(pc.mapStride) * 4;
        scores = std::make_unique<Buffer>(context, mapBytes, Buffer::Role::Host);
        probs = std::make_unique<Buffer>(context, mapBytes, Buffer::Role::Host);
        const Buffer* mapBufs[] = {qBuf.get(),     up.k.get(),       up.v.get(),   up.ks.get(),
                                   up.vs.get(),    up.biasBuf.get(), up.pos.get(), qposBuf.get(),
                                   up.heads.get(), scores.get(),     probs.get(),  nullptr};
        PipelineKey mk = key;
        mk.kernel = Kernel::AttentionMap;
        submission.dispatch(pipelines.get(mk), mapBufs, &pc, sizeof pc, nq, heads, 1);
    }
    submission.run();
    for (const Buffer* b : {qBuf.get(), qposBuf.get(), partials.get(), out.get(), lse.get(),
                            scores.get(), probs.get()})
        if (b) {
            result.scratch.scratch += b->allocatedBytes();
            ++result.scratch.buffers;
        }

    // Timings with the bytes each kernel must move (the cache once, not once per GQA head).
    std::size_t i = 0;
    const std::size_t partialBytes = rows * static_cast<std::size_t>(splits) * (var.hsv + 2) * 4;
    if (ro.probe) {
        result.timings.push_back(
            {kernelName(probe.subgroup ? Kernel::ProbeSplitSubgroup : Kernel::ProbeSplit),
             submission.microseconds()[i++], up.cacheBytes + qBytes, partialBytes});
        result.timings.push_back({kernelName(Kernel::Combine), submission.microseconds()[i++],
                                  partialBytes, rows * (var.hsv + 1) * 4});
    }
    if (ro.map)
        result.timings.push_back({kernelName(Kernel::AttentionMap), submission.microseconds()[i++],
                                  up.keyBytes + qBytes,
                                  rows * static_cast<std::size_t>(pc.mapStride) * 8});
    if (!ro.readBack)
        return result;

    if (ro.probe) {
        std::vector<float> o(rows * var.hsv), l(rows);
        out->download(o.data(), o.size() * 4);
        lse->download(l.data(), l.size() * 4);
        for (std::uint32_t h = 0; h < heads; ++h) {
            Matrix m(nq, var.hsv);
            std::memcpy(m.data(), o.data() + static_cast<std::size_t>(h) * nq * var.hsv,
                        static_cast<std::size_t>(nq) * var.hsv * 4);
            result.outputs.push_back(std::move(m));
            result.logSumExp.emplace_back(l.begin() + static_cast<std::ptrdiff_t>(h * nq),
                                          l.begin() + static_cast<std::ptrdiff_t>((h + 1) * nq));
        }
    }
    if (ro.map) {
        const std::size_t stride = pc.mapStride;
        std::vector<float> s(rows * stride), p(rows * stride);
        scores->download(s.data(), s.size() * 4);
        probs->download(p.data(), p.size() * 4);
        for (std::uint32_t h = 0; h < heads; ++h) {
            const int m = up.kept[h / static_cast<std::uint32_t>(group)];
            Matrix sm(nq, m), pm(nq, m);
            for (std::uint32_t r = 0; r < nq; ++r)
                for (int j = 0; j < m; ++j) {
                    const std::size_t at = (static_cast<std::size_t>(h) * nq + r) * stride +
                                           static_cast<std::size_t>(j);
                    sm(r, j) = s[at];
                    pm(r, j) = p[at];
                }
            result.scores.push_back(std::move(sm));
            result.probabilities.push_back(std::move(pm));
        }
    }
    return result;
}

std::vector<double> copyBandwidth(vk::Context& context, PipelineSet& pipelines, std::size_t bytes,
                                  int repeats) {
    bytes = std::min<std::size_t>(bytes, context.maxStorageBufferRange());
    bytes = bytes / 16 * 16;
    Buffer src(context, bytes, Buffer::Role::Device);
    Buffer dst(context, bytes, Buffer::Role::Device);
    std::vector<std::uint8_t> fill(bytes, 1);
    src.upload(fill.data(), bytes);
    PipelineKey key;
    key.kernel = Kernel::Copy;
    key.wg = 256;
    const vk::Pipeline& pipeline = pipelines.get(key);
    const auto count = static_cast<std::uint32_t>(bytes / 16);
    const std::uint32_t groups = std::clamp<std::uint32_t>((count + 255) / 256, 1, 65535);
    std::vector<double> gbs;
    for (int r = 0; r < repeats; ++r) {
        vk::Submission submission(context, 1);
        const Buffer* bufs[] = {&src, &dst};
        std::uint32_t push[10] = {count};
        submission.dispatch(pipeline, bufs, push, sizeof push, groups, 1, 1);
        submission.run();
        const double us = submission.microseconds()[0];
        gbs.push_back(us > 0 ? 2.0 * static_cast<double>(bytes) / (us * 1e3) : 0.0);
    }
    return gbs;
}

} // namespace kvs::gpu::kernels
