#version 450
// SPDX-License-Identifier: MIT
// The block-wise normalized Walsh–Hadamard transform of every row, in place: row ← row · H_B,
// B = K_GROUP a power of two dividing the row length HSK (CompressedHead::hadamardBlock). H_B is
// orthonormal and symmetric, its own inverse, so the one kernel rotates the queries before the
// probe (scores against rotated keys are unchanged) and turns the combined output back when the
// values are stored rotated. One workgroup per row at a time, the row in shared memory, log2 B
// butterfly stages with a barrier between them.
#include "include/attention_layout.h"

layout(constant_id = KVS_SPEC_WG) const uint WG = 64;
layout(constant_id = KVS_SPEC_HSK) const uint D = 64;
layout(constant_id = KVS_SPEC_K_GROUP) const uint B = 64;
layout(local_size_x_id = KVS_SPEC_WG) in;
layout(push_constant) uniform Params { uint rows; } pc;
layout(std430, binding = KVS_BINDING_COPY_SRC) buffer Rows { float x[]; };

shared float row[KVS_HADAMARD_MAX_DIM];

void main() {
    const uint lane = gl_LocalInvocationID.x;
    const float norm = inversesqrt(float(B));
    for (uint r = gl_WorkGroupID.x; r < pc.rows; r += gl_NumWorkGroups.x) {
        const uint base = r * D;
        for (uint c = lane; c < D; c += WG)
            row[c] = x[base + c];
        barrier();
        // Stage h pairs (i, i + h) over the i whose bit h is clear: the pair never leaves its
        // block, since h < B and B divides D.
        for (uint h = 1; h < B; h <<= 1) {
            for (uint t = lane; t < D / 2; t += WG) {
                const uint i = (t / h) * 2u * h + t % h;
                const float a = row[i], b = row[i + h];
                row[i] = a + b;
                row[i + h] = a - b;
            }
            barrier();
        }
        for (uint c = lane; c < D; c += WG)
            x[base + c] = row[c] * norm;
        barrier(); // the next row overwrites the shared array
    }
}
