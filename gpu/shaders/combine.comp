#version 450
// SPDX-License-Identifier: MIT
// Probe attention, pass 2 of 2: merges the split partials (O, max, sum) of one (query, query
// head) into the normalized output and ln Σ exp(ŝ). All-masked rows give output 0, ln Σ = −inf.
#include "include/attention_common.glsl"

void main() {
    const uint query = gl_WorkGroupID.x;
    const uint qhead = gl_WorkGroupID.y;
    const uint t = gl_LocalInvocationID.x;
    const uint stride = HSV + 2u;
    const uint row = qhead * pc.nq + query;
    const uint base = row * pc.splits * stride;

    float top = NEG_INF;
    for (uint s = 0; s < pc.splits; ++s)
        top = max(top, OUT0[base + s * stride + HSV]);
    float total = 0.0;
    if (top != NEG_INF)
        for (uint s = 0; s < pc.splits; ++s) {
            const float m = OUT0[base + s * stride + HSV];
            if (m != NEG_INF)
                total += OUT0[base + s * stride + HSV + 1u] * exp(m - top);
        }
    for (uint c = t; c < HSV; c += WG) {
        float acc = 0.0;
        if (top != NEG_INF) {
            for (uint s = 0; s < pc.splits; ++s) {
                const float m = OUT0[base + s * stride + HSV];
                if (m != NEG_INF)
                    acc += OUT0[base + s * stride + c] * exp(m - top);
            }
            acc /= total;
        }
        OUT1[row * HSV + c] = acc;
    }
    if (t == 0u)
        OUT2[row] = top == NEG_INF ? NEG_INF : top + log(total);
}
