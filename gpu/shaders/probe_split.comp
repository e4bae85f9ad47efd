#version 450
// SPDX-License-Identifier: MIT
// Probe attention, pass 1 of 2: one workgroup per (split of the keys, query, query head).
// Online softmax over tiles of WG keys: scores (D_SPLIT threads per key row, shared-memory
// reduction), tile maximum, rescale, values accumulated by column (thread t owns columns
// t, t + WG, ...). Writes the unnormalized partial (O, max, sum) of its split; combine.comp
// merges the splits. Query head h reads KV head h / group (grouped-query mapping).
#include "include/attention_common.glsl"

const uint MAX_COLS = KVS_PROBE_MAX_COLS; // columns per thread: HSV ≤ MAX_COLS · WG (host checks)

shared float qs[HSK];
shared float partial[WG];
shared float ps[WG];

void main() {
    const uint split = gl_WorkGroupID.x;
    const uint query = gl_WorkGroupID.y;
    const uint qhead = gl_WorkGroupID.z;
    const uint t = gl_LocalInvocationID.x;
    const HeadInfo h = headInfo(qhead / pc.group);

    const uint qBase = (qhead * pc.nq + query) * HSK;
    for (uint c = t; c < HSK; c += WG)
        qs[c] = Q[qBase + c];

    // This split's keys: a multiple of WG per split, the last one shorter.
    const uint perSplit = ((h.m + pc.splits - 1u) / pc.splits + WG - 1u) / WG * WG;
    const uint begin = min(split * perSplit, h.m);
    const uint end = min(begin + perSplit, h.m);

    float o[MAX_COLS];
    [[unroll]] for (uint k = 0; k < MAX_COLS; ++k)
        o[k] = 0.0;
    float runningMax = NEG_INF;
    float runningSum = 0.0;
    barrier();

    const uint rowsPerPass = WG / D_SPLIT;
    const uint lane = t % D_SPLIT;
    for (uint tile = begin; tile < end; tile += WG) {
        // Scores: pass p handles rows p·rowsPerPass .. of the tile, D_SPLIT lanes per row.
        float myScore = NEG_INF;
        for (uint pass = 0; pass < D_SPLIT; ++pass) {
            const uint row = pass * rowsPerPass + t / D_SPLIT;
            const uint j = tile + row;
            float dot = 0.0;
            if (j < end) {
                for (uint c = lane; c < HSK; c += D_SPLIT)
                    dot += qs[c] * loadK(h, j, c);
                if ((pc.flags & KVS_FLAG_KEY_OUTLIERS) != 0u)
                    dot += keyOutlierDot(h, j, qBase, lane, D_SPLIT);
            }
            partial[t] = dot;
            barrier();
            // Thread r of this pass's rows sums the lanes of row r.
            if (t / rowsPerPass == pass) {
                const uint r = t % rowsPerPass;
                float sum = 0.0;
                for (uint l = 0; l < D_SPLIT; ++l)
                    sum += partial[r * D_SPLIT + l];
                const uint jj = tile + pass * rowsPerPass + r;
                myScore = jj < end ? finishScore(h, jj, query, sum) : NEG_INF;
            }
            barrier();
        }
        // Thread t now holds the score of key tile + t.
        ps[t] = myScore;
        barrier();
        float tileMax = NEG_INF;
        for (uint k = 0; k < WG; ++k)
            tileMax = max(tileMax, ps[k]);
        const float newMax = max(runningMax, tileMax);
        if (newMax != NEG_INF) { // uniform: every thread computed the same maxima
            const float alpha = runningMax == NEG_INF ? 0.0 : exp(runningMax - newMax);
            const float p = myScore == NEG_INF ? 0.0 : exp(myScore - newMax);
            barrier();
            ps[t] = p;
            barrier();
            float tileSum = 0.0;
            for (uint k = 0; k < WG; ++k)
                tileSum += ps[k];
            runningSum = runningSum * alpha + tileSum;
            runningMax = newMax;
            const uint count = min(WG, end - tile);
            [[unroll]] for (uint k = 0; k < MAX_COLS; ++k) {
                const uint c = t + k * WG;
                if (c < HSV) {
                    float acc = o[k] * alpha;
                    for (uint jj = 0; jj < count; ++jj)
                        acc += ps[jj] * loadV(h, tile + jj, c);
                    o[k] = acc;
                }
            }
            // Outliers kept dense: each thread adds p · (x − decoded) for the columns it owns.
            if ((pc.flags & KVS_FLAG_VALUE_OUTLIERS) != 0u)
                for (uint jj = 0; jj < count; ++jj) {
                    const uint row = tile + jj;
                    const uint last = VS[h.voOff + row + 1u];
                    for (uint e = VS[h.voOff + row]; e < last; ++e) {
                        const uint c = VS[e] & 0xffffu;
                        if (c % WG == t) {
                            const ValueOutlier v = valueOutlier(h, row, e);
                            [[unroll]] for (uint k = 0; k < MAX_COLS; ++k)
                                if (k == c / WG)
                                    o[k] += ps[jj] * v.delta;
                        }
                    }
                }
        }
        barrier();
    }

    const uint stride = HSV + 2u;
    const uint base = ((qhead * pc.nq + query) * pc.splits + split) * stride;
    [[unroll]] for (uint k = 0; k < MAX_COLS; ++k) {
        const uint c = t + k * WG;
        if (c < HSV)
            OUT0[base + c] = o[k];
    }
    if (t == 0u) {
        OUT0[base + HSV] = runningMax;
        OUT0[base + HSV + 1u] = runningSum;
    }
}
