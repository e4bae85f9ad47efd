// SPDX-License-Identifier: MIT
// The copy kernel as a bandwidth reference for the attention timings.
#pragma once

#include "pipelines.h"

#include <cstddef>
#include <vector>

namespace kvs::gpu::kernels {

// Copy-kernel bandwidth: GB/s per repeat (read + write bytes / time).
std::vector<double> copyBandwidth(vk::Context& context, PipelineSet& pipelines, std::size_t bytes,
                                  int repeats);

} // namespace kvs::gpu::kernels
