#version 450
// SPDX-License-Identifier: MIT
// Attention map: the scores ŝ (−inf where masked) and softmax probabilities of every kept key
// for one (query, query head) per workgroup — the rows the map view draws, exact or compressed.
// Thread t handles keys t, t + WG, ...; maxima and sums are reduced in shared memory.
#include "include/attention_common.glsl"

shared float red[WG];
shared float qs[HSK];

float reduceMax(float v) {
    const uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint width = WG / 2u; width > 0u; width >>= 1u) {
        if (t < width)
            red[t] = max(red[t], red[t + width]);
        barrier();
    }
    const float r = red[0];
    barrier();
    return r;
}

float reduceSum(float v) {
    const uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint width = WG / 2u; width > 0u; width >>= 1u) {
        if (t < width)
            red[t] += red[t + width];
        barrier();
    }
    const float r = red[0];
    barrier();
    return r;
}

void main() {
    const uint query = gl_WorkGroupID.x;
    const uint qhead = gl_WorkGroupID.y;
    const uint t = gl_LocalInvocationID.x;
    const HeadInfo h = headInfo(qhead / pc.group);
    const uint qBase = (qhead * pc.nq + query) * HSK;
    for (uint c = t; c < HSK; c += WG)
        qs[c] = Q[qBase + c];
    barrier();

    const uint rowBase = (qhead * pc.nq + query) * pc.mapStride;
    float localMax = NEG_INF;
    for (uint j = t; j < h.m; j += WG) {
        float dot = 0.0;
        for (uint c = 0; c < HSK; ++c)
            dot += qs[c] * loadK(h, j, c);
        if ((pc.flags & KVS_FLAG_KEY_OUTLIERS) != 0u)
            dot += keyOutlierDot(h, j, qBase, 0u, 1u);
        const float s = finishScore(h, j, query, dot);
        OUT0[rowBase + j] = s;
        localMax = max(localMax, s);
    }
    const float top = reduceMax(localMax);
    float localSum = 0.0;
    for (uint j = t; j < h.m; j += WG) {
        const float s = OUT0[rowBase + j];
        const float e = (top == NEG_INF || s == NEG_INF) ? 0.0 : exp(s - top);
        OUT1[rowBase + j] = e;
        localSum += e;
    }
    const float total = reduceSum(localSum);
    for (uint j = t; j < h.m; j += WG)
        OUT1[rowBase + j] = total > 0.0 ? OUT1[rowBase + j] / total : 0.0;
}
