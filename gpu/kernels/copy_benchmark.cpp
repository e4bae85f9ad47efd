// SPDX-License-Identifier: MIT
// copyBandwidth: copy.comp over two device buffers, timed per repeat.
#include "copy_benchmark.h"

#include "vk/buffer.h"
#include "vk/submission.h"

#include <algorithm>
#include <cstdint>

namespace kvs::gpu::kernels {

std::vector<double> copyBandwidth(vk::Context& context, PipelineSet& pipelines, std::size_t bytes,
                                  int repeats) {
    using vk::Buffer;
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
    vk::Bindings bindings;
    bindings.set(layout::Binding::CopySource, src).set(layout::Binding::CopyDestination, dst);
    std::vector<double> gbs;
    for (int r = 0; r < repeats; ++r) {
        vk::Submission submission(context, 1);
        std::uint32_t push[layout::kPushConstantBytes / 4] = {count};
        submission.dispatch(pipeline, bindings, push, sizeof push, groups, 1, 1);
        submission.run();
        const double us = submission.microseconds()[0];
        gbs.push_back(us > 0 ? 2.0 * static_cast<double>(bytes) / (us * 1e3) : 0.0);
    }
    return gbs;
}

} // namespace kvs::gpu::kernels
