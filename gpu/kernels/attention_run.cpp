// SPDX-License-Identifier: MIT
// run(): queries in, probe / combine / map dispatches recorded with named bindings, timings with
// the bytes each kernel must move, results read back per query head.
#include "attention_run.h"

#include "tuning.h"
#include "vk/buffer.h"
#include "vk/submission.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

namespace kvs::gpu::kernels {

using layout::Binding;
using vk::Buffer;

namespace {

// struct Params of attention_common.glsl.
struct PushConstants {
    std::uint32_t nq, heads, group, splits, kStride, vStride;
    float scale;
    std::uint32_t flags, mapStride;
    std::uint32_t pad = 0;
};
static_assert(sizeof(PushConstants) == layout::kPushConstantBytes);

// The specialization constants every attention kernel of this upload shares.
PipelineKey baseKey(const Variant& var, const RunOptions& ro) {
    PipelineKey key;
    key.wg = ro.wg;
    key.dSplit = ro.dSplit;
    key.hsk = var.hsk;
    key.hsv = var.hsv;
    key.kMode = var.kMode;
    key.vMode = var.vMode;
    if (var.kMode == Storage::Quantized || var.kMode == Storage::RotatedLowRank ||
        var.kMode == Storage::RotatedQuantized) {
        key.kBits = var.kBits;
        key.kGroup = var.kGroup;
        key.kPerToken = var.kPerToken;
    }
    if (var.vMode == Storage::Quantized) {
        key.vBits = var.vBits;
        key.vGroup = var.vGroup;
        key.vPerChannel = var.vPerChannel;
    }
    return key;
}

PipelineKey probeKey(PipelineKey key, const ProbeChoice& probe, const Variant& var) {
    key.kernel = probe.subgroup ? Kernel::ProbeSplitSubgroup : Kernel::ProbeSplit;
    key.wg = probe.wg;
    if (probe.subgroup) {
        key.subgroup = probe.subgroupSize;
        key.rows = probe.rows;
        key.kVec = vectorRows(var.kMode, var.hsk, var.kStride) ? 1 : 0;
        key.vVec = vectorRows(var.vMode, var.hsv, var.vStride) ? 1 : 0;
    }
    return key;
}

// What the probe and map kernels read: queries and the upload's cache.
vk::Bindings cacheBindings(const Upload& up, const Buffer& queries, const Buffer& queryPositions) {
    vk::Bindings b;
    b.set(Binding::Q, queries)
        .set(Binding::K, *up.k)
        .set(Binding::V, *up.v)
        .set(Binding::KeyScales, *up.ks)
        .set(Binding::ValueScales, *up.vs)
        .set(Binding::Bias, *up.biasBuf)
        .set(Binding::Positions, *up.pos)
        .set(Binding::QueryPositions, queryPositions)
        .set(Binding::Heads, *up.heads);
    return b;
}

// The first `count` floats of a Host buffer.
std::vector<float> download(const Buffer& buffer, std::size_t count) {
    std::vector<float> values(count);
    buffer.download(values.data(), values.size() * 4);
    return values;
}

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
    if (var.hsv > layout::kProbeMaxCols * ro.wg)
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
    const auto qBuf = vk::makeFilledBuffer(context, q);
    std::vector<std::int32_t> qpos = options.queryPositions;
    if (qpos.empty())
        qpos.push_back(0);
    const auto qposBuf = vk::makeFilledBuffer(context, qpos);

    const TuningOverrides overrides = TuningOverrides::fromEnvironment();
    const ProbeChoice probe =
        chooseProbe(context.info(), var, group, ro.wg, ro.subgroups, overrides);
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    const int splits =
        ro.splits > 0 ? ro.splits
                      : tuneSplits(context.info(), cores, up.maxKept,
                                   static_cast<int>(heads / probe.rows * nq), probe.wg, overrides);
    const std::uint32_t flags =
        (options.queryPositions.empty() ? 0u : layout::flag::kCausal) |
        (up.bias ? layout::flag::kBias : 0u) |
        (var.kRotationInterleaved ? layout::flag::kInterleavedRotation : 0u) |
        (up.keyOutliers ? layout::flag::kKeyOutliers : 0u) |
        (up.valueOutliers ? layout::flag::kValueOutliers : 0u);
    PushConstants pc{nq,
                     heads,
                     static_cast<std::uint32_t>(group),
                     static_cast<std::uint32_t>(splits),
                     var.kStride,
                     var.vStride,
                     scale * up.keyScale, // K=V rotation's attention factor (yarn), else 1
                     flags,
                     static_cast<std::uint32_t>(std::max(1, up.maxKept))};
    const PipelineKey key = baseKey(var, ro);
    const vk::Bindings cache = cacheBindings(up, *qBuf, *qposBuf);
    // Codes stored Hadamard-rotated: queries rotated alike before the probe and the map, the
    // output turned back after the combine (the same self-inverse kernel, in place).
    const bool rotateQueries = var.hadamardBlock > 0 && var.kMode == Storage::Quantized;
    const bool rotateOutputs = var.hadamardBlock > 0 && var.vMode == Storage::Quantized;

    const std::size_t rows = static_cast<std::size_t>(heads) * nq;
    const std::size_t qBytes = q.size() * 4;
    const std::size_t partialBytes = rows * static_cast<std::size_t>(splits) * (var.hsv + 2) * 4;
    const std::size_t mapBytes = rows * static_cast<std::size_t>(pc.mapStride) * 4;
    std::unique_ptr<Buffer> partials, out, lse, scores, probs;
    vk::Submission submission(context, 5);
    const auto hadamard = [&](const Buffer& rowsBuf, std::uint32_t rowCount, std::uint32_t width) {
        if (width > layout::kHadamardMaxDim)
            throw Error(ErrorCode::Unsupported,
                        "Hadamard rotation of rows of " + std::to_string(width) +
                            " exceeds the kernel's " + std::to_string(layout::kHadamardMaxDim));
        PipelineKey hk;
        hk.kernel = Kernel::Hadamard;
        hk.wg = 64;
        hk.hsk = width;
        hk.kGroup = var.hadamardBlock;
        vk::Bindings b;
        b.set(Binding::CopySource, rowsBuf);
        const std::uint32_t push = rowCount;
        submission.dispatch(pipelines.get(hk), b, &push, sizeof push,
                            std::min<std::uint32_t>(rowCount, 65535u), 1, 1);
    };
    if (rotateQueries)
        hadamard(*qBuf, static_cast<std::uint32_t>(rows), var.hsk);
    if (ro.probe) {
        partials = std::make_unique<Buffer>(context, partialBytes, Buffer::Role::Device);
        out = std::make_unique<Buffer>(context, rows * var.hsv * 4, Buffer::Role::Host);
        lse = std::make_unique<Buffer>(context, rows * 4, Buffer::Role::Host);
        vk::Bindings probeBindings = cache;
        probeBindings.set(Binding::Partials, *partials);
        submission.dispatch(pipelines.get(probeKey(key, probe, var)), probeBindings, &pc, sizeof pc,
                            static_cast<std::uint32_t>(splits), nq, heads / probe.rows);
        vk::Bindings combineBindings;
        combineBindings.set(Binding::Partials, *partials)
            .set(Binding::Outputs, *out)
            .set(Binding::LogSumExp, *lse);
        PipelineKey ck = key;
        ck.kernel = Kernel::Combine;
        submission.dispatch(pipelines.get(ck), combineBindings, &pc, sizeof pc, nq, heads, 1);
        if (rotateOutputs)
            hadamard(*out, static_cast<std::uint32_t>(rows), var.hsv);
    }
    if (ro.map) {
        scores = std::make_unique<Buffer>(context, mapBytes, Buffer::Role::Host);
        probs = std::make_unique<Buffer>(context, mapBytes, Buffer::Role::Host);
        vk::Bindings mapBindings = cache;
        mapBindings.set(Binding::Scores, *scores).set(Binding::Probabilities, *probs);
        PipelineKey mk = key;
        mk.kernel = Kernel::AttentionMap;
        submission.dispatch(pipelines.get(mk), mapBindings, &pc, sizeof pc, nq, heads, 1);
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
    if (rotateQueries)
        result.timings.push_back(
            {kernelName(Kernel::Hadamard), submission.microseconds()[i++], qBytes, qBytes});
    if (ro.probe) {
        result.timings.push_back(
            {kernelName(probe.subgroup ? Kernel::ProbeSplitSubgroup : Kernel::ProbeSplit),
             submission.microseconds()[i++], up.cacheBytes + qBytes, partialBytes});
        result.timings.push_back({kernelName(Kernel::Combine), submission.microseconds()[i++],
                                  partialBytes, rows * (var.hsv + 1) * 4});
        if (rotateOutputs)
            result.timings.push_back({kernelName(Kernel::Hadamard), submission.microseconds()[i++],
                                      rows * var.hsv * 4, rows * var.hsv * 4});
    }
    if (ro.map)
        result.timings.push_back({kernelName(Kernel::AttentionMap), submission.microseconds()[i++],
                                  up.keyBytes + qBytes, mapBytes * 2});
    if (!ro.readBack)
        return result;

    if (ro.probe) {
        const std::vector<float> o = download(*out, rows * var.hsv);
        const std::vector<float> l = download(*lse, rows);
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
        const std::vector<float> s = download(*scores, rows * stride);
        const std::vector<float> p = download(*probs, rows * stride);
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

} // namespace kvs::gpu::kernels
