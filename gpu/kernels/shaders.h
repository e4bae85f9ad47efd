// SPDX-License-Identifier: MIT
// The embedded SPIR-V of gpu/shaders/*.comp (generated .cpp files, see gpu/CMakeLists.txt).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvs::gpu::shaders {

#define KVS_DECLARE_SHADER(name)                                                                   \
    extern const std::uint32_t name[];                                                             \
    extern const std::size_t name##_words;
KVS_DECLARE_SHADER(probe_split)
KVS_DECLARE_SHADER(probe_split_sg)
KVS_DECLARE_SHADER(combine)
KVS_DECLARE_SHADER(attention_map)
KVS_DECLARE_SHADER(copy)
KVS_DECLARE_SHADER(hadamard)
#undef KVS_DECLARE_SHADER

} // namespace kvs::gpu::shaders
