#version 450
// SPDX-License-Identifier: MIT
// Bandwidth reference: copies uvec4 words, grid-stride; bytes moved = 2 × size (read + write).
#include "include/attention_layout.h"

layout(constant_id = KVS_SPEC_WG) const uint WG = 256;
layout(local_size_x_id = KVS_SPEC_WG) in;
layout(push_constant) uniform Params { uint count; } pc; // uvec4 elements
layout(std430, binding = KVS_BINDING_COPY_SRC) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = KVS_BINDING_COPY_DST) writeonly buffer Dst { uvec4 dst[]; };

void main() {
    const uint stride = gl_NumWorkGroups.x * WG;
    for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride)
        dst[i] = src[i];
}
