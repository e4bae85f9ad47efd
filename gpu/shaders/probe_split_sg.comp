#version 450
// SPDX-License-Identifier: MIT
// Probe attention, pass 1 of 2, subgroup variant (GPU.md decision 1, ggml's scalar decode
// shape). One workgroup per (split of the keys, query, block of BR query heads that share one KV
// head): K and V are read once for the BR heads of a GQA group. Each subgroup walks key rows
// (subgroup s takes rows s, s + NSG, ...); its SG lanes split a row's dot products in chunks of 4
// channels and reduce with subgroupAdd, so the main loop has no barrier. Online softmax per
// subgroup (a new maximum rescales), values accumulated by lane (columns 4·lane + 4·SG·k). At the
// end the subgroups merge through shared memory and write the split's partial (O, max, sum) for
// combine.comp. probe_split.comp is the shared-memory-only variant for devices without subgroup
// arithmetic.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "include/attention_common.glsl"

layout(constant_id = KVS_SPEC_SG) const uint SG = 8; // subgroup size the pipeline was made for
layout(constant_id = KVS_SPEC_BR) const uint BR = 1; // query heads per workgroup (a GQA block)
// 1: dense key (value) rows read as uvec4 (16-byte loads).
layout(constant_id = KVS_SPEC_K_VEC) const uint K_VEC = 0;
layout(constant_id = KVS_SPEC_V_VEC) const uint V_VEC = 0;

// The K and V bindings again, as 16-byte words (heads start on 16 bytes, see uploadLayer).
layout(std430, binding = KVS_BINDING_K) readonly buffer KBufV { uvec4 KV4[]; };
layout(std430, binding = KVS_BINDING_V) readonly buffer VBufV { uvec4 VV4[]; };

const uint MAX_VEC = KVS_SG_MAX_VEC;   // vec4 value chunks per lane: HSV ≤ 4 · SG · MAX_VEC
const uint MAX_ROWS = KVS_SG_MAX_ROWS; // BR ≤ MAX_ROWS
const uint MAX_QVEC = KVS_SG_MAX_QVEC; // query vec4 chunks per lane: HSK ≤ 4 · SG · MAX_QVEC

// Fixed sizes (28.5 KiB, under lavapipe's 32 KiB) rather than specialization-constant
// expressions, so the footprint is known on the host (chooseProbe checks the shapes fit).
shared float qs[KVS_SG_SHARED_QUERY_FLOATS];       // BR · HSK
shared float mergeMax[KVS_SG_SHARED_MERGE_SLOTS];  // BR · NSG
shared float mergeSum[KVS_SG_SHARED_MERGE_SLOTS];
shared vec4 mergeO[KVS_SG_SHARED_MERGE_VEC4S];     // BR · NSG · ⌈HSV/4⌉

// Four key channels c..c+3 of row j (c a multiple of 4, c + 3 < HSK).
vec4 loadK4(HeadInfo h, uint j, uint c) {
    if (K_MODE == KVS_STORAGE_ROTATED_VALUES || K_MODE == KVS_STORAGE_ROTATED_LOW_RANK ||
        K_MODE == KVS_STORAGE_ROTATED_QUANTIZED)
        return vec4(loadK(h, j, c), loadK(h, j, c + 1u), loadK(h, j, c + 2u), loadK(h, j, c + 3u));
    if (K_MODE == KVS_STORAGE_F32) {
        const uint b = h.kOff + j * pc.kStride + c;
        return vec4(uintBitsToFloat(K[b]), uintBitsToFloat(K[b + 1u]), uintBitsToFloat(K[b + 2u]),
                    uintBitsToFloat(K[b + 3u]));
    }
    if (K_MODE == KVS_STORAGE_F16) {
        const uint b = h.kOff + j * pc.kStride + (c >> 1u);
        return vec4(unpackHalf2x16(K[b]), unpackHalf2x16(K[b + 1u]));
    }
    const uint codes = extractK(h.kOff, j * pc.kStride * 32u + c * K_BITS, 4u * K_BITS);
    const uint mask = (1u << K_BITS) - 1u;
    const vec4 q = vec4(float(codes & mask), float((codes >> K_BITS) & mask),
                        float((codes >> (2u * K_BITS)) & mask),
                        float((codes >> (3u * K_BITS)) & mask));
    vec4 scale, minimum;
    [[unroll]] for (uint e = 0; e < 4u; ++e) {
        const uint cc = c + e;
        const uint g = K_PER_TOKEN != 0u ? j * ((HSK + K_GROUP - 1u) / K_GROUP) + cc / K_GROUP
                                          : (j / K_GROUP) * HSK + cc;
        const vec2 sm = unpackHalf2x16(KS[h.ksOff + g]);
        scale[e] = sm.x;
        minimum[e] = sm.y;
    }
    return minimum + scale * q;
}

vec4 queryChunk(uint r, uint c) {
    const uint b = r * HSK + c;
    return vec4(qs[b], qs[b + 1u], qs[b + 2u], qs[b + 3u]);
}

// Values quantized per token with whole words of codes in one group: each lane loads words
// (32 / bits columns) and one (scale, minimum) per word.
bool valueWords() {
    return V_MODE == KVS_STORAGE_QUANTIZED && V_PER_CHANNEL == 0u && 32u % V_BITS == 0u &&
           HSV % (32u / V_BITS) == 0u && V_GROUP % (32u / V_BITS) == 0u;
}

// The vec4 of value columns that accumulator slot k of this lane holds.
uint slotColumn4(uint lane, uint k) {
    if (V_VEC != 0u && V_MODE == KVS_STORAGE_F16) // 8 fp16 columns per load: slots 2i, 2i + 1
        return 2u * (lane + (k / 2u) * SG) + (k & 1u);
    if (valueWords()) {
        const uint spc = 8u / V_BITS; // vec4 slots per word
        return (lane + (k / spc) * SG) * spc + k % spc;
    }
    return lane + k * SG;
}

vec4 loadV4(HeadInfo h, uint j, uint c) {
    if (V_MODE == KVS_STORAGE_F32) {
        const uint b = h.vOff + j * pc.vStride + c;
        return vec4(uintBitsToFloat(V[b]), uintBitsToFloat(V[b + 1u]), uintBitsToFloat(V[b + 2u]),
                    uintBitsToFloat(V[b + 3u]));
    }
    if (V_MODE == KVS_STORAGE_F16) {
        const uint b = h.vOff + j * pc.vStride + (c >> 1u);
        return vec4(unpackHalf2x16(V[b]), unpackHalf2x16(V[b + 1u]));
    }
    const uint codes = extractV(h.vOff, j * pc.vStride * 32u + c * V_BITS, 4u * V_BITS);
    const uint mask = (1u << V_BITS) - 1u;
    const vec4 q = vec4(float(codes & mask), float((codes >> V_BITS) & mask),
                        float((codes >> (2u * V_BITS)) & mask),
                        float((codes >> (3u * V_BITS)) & mask));
    if (V_PER_CHANNEL == 0u && V_GROUP % 4u == 0u) { // the 4 columns share one group
        const vec2 sm = unpackHalf2x16(VS[h.vsOff + j * ((HSV + V_GROUP - 1u) / V_GROUP) + c / V_GROUP]);
        return vec4(sm.y) + vec4(sm.x) * q;
    }
    vec4 scale, minimum;
    [[unroll]] for (uint e = 0; e < 4u; ++e) {
        const uint cc = c + e;
        const uint g = V_PER_CHANNEL != 0u ? (j / V_GROUP) * HSV + cc
                                           : j * ((HSV + V_GROUP - 1u) / V_GROUP) + cc / V_GROUP;
        const vec2 sm = unpackHalf2x16(VS[h.vsOff + g]);
        scale[e] = sm.x;
        minimum[e] = sm.y;
    }
    return minimum + scale * q;
}

void main() {
    const uint split = gl_WorkGroupID.x;
    const uint query = gl_WorkGroupID.y;
    const uint firstHead = gl_WorkGroupID.z * BR;
    const uint t = gl_LocalInvocationID.x;
    const uint lane = gl_SubgroupInvocationID;
    const uint sg = gl_SubgroupID;
    const uint NSG = WG / SG;
    const HeadInfo h = headInfo(firstHead / pc.group);

    for (uint i = t; i < BR * HSK; i += WG) {
        const uint r = i / HSK;
        qs[i] = Q[((firstHead + r) * pc.nq + query) * HSK + (i % HSK)];
    }
    barrier();

    const uint perSplit = ((h.m + pc.splits - 1u) / pc.splits + WG - 1u) / WG * WG;
    const uint begin = min(split * perSplit, h.m);
    const uint end = min(begin + perSplit, h.m);

    const uint K4 = HSK / 4u; // full chunks of 4 key channels
    const uint V4 = HSV / 4u;
    vec4 o[MAX_ROWS][MAX_VEC];
    float runMax[MAX_ROWS];
    float runSum[MAX_ROWS];
    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r) {
        runMax[r] = NEG_INF;
        runSum[r] = 0.0;
        [[unroll]] for (uint k = 0; k < MAX_VEC; ++k)
            o[r][k] = vec4(0.0);
    }

    // Keys quantized per channel over groups of K_GROUP tokens: within a group, score
    // = Σ q_c·min_c + Σ (q_c·scale_c)·code_c, so the scales are folded into the query once per
    // group instead of being loaded for every key (the per-element loads made 4-bit caches slower
    // than fp16 on lavapipe). Where codes tile whole words (2, 4, 8 bits), each lane loads whole
    // words of a row (32 / bits channels each).
    // Plain locals, not spec-constant expressions (glslc 2023.2's optimizer fails on those
    // bool expressions); the driver folds them once the constants are known.
    bool foldKeyScales = K_MODE == KVS_STORAGE_QUANTIZED && K_PER_TOKEN == 0u;
    bool foldWords = foldKeyScales && 32u % K_BITS == 0u && HSK % (32u / K_BITS) == 0u;
    // Channels per lane chunk (one load) and vec4 register slots per chunk: slot s of a lane
    // holds channels (lane + (s / SPC)·SG)·QPER + 4·(s % SPC) .. + 3.
    uint QPER = (K_VEC != 0u && K_MODE == KVS_STORAGE_F16) ? 8u : (foldWords ? 32u / K_BITS : 4u);
    uint SPC = QPER / 4u;

    // Each lane keeps the query channels it multiplies in registers (reading them from shared
    // memory per key was the main cost on lavapipe: measured 5× slower than these loads).
    vec4 qreg[MAX_ROWS][MAX_QVEC];
    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
        [[unroll]] for (uint i = 0; i < MAX_QVEC; ++i) {
            qreg[r][i] = vec4(0.0);
            const uint c = (lane + (i / SPC) * SG) * QPER + 4u * (i % SPC);
            if (r < BR && c + 3u < HSK)
                qreg[r][i] = queryChunk(r, c);
        }

    vec4 qscaled[MAX_ROWS][MAX_QVEC];
    float qmin[MAX_ROWS];
    uint foldedGroup = 0xffffffffu;

    for (uint j = begin + sg; j < end; j += NSG) {
        float dots[MAX_ROWS];
        [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
            dots[r] = 0.0;
        if (K_VEC != 0u) {
            // One 16-byte load per lane: 8 fp16 or 4 fp32 channels (measured on lavapipe: the
            // per-uint loads of loadK4 made the key reads ~5× slower than the copy kernel).
            const uint per = K_MODE == KVS_STORAGE_F16 ? 8u : 4u;
            const uint base = (h.kOff + j * pc.kStride) >> 2u;
            [[unroll]] for (uint i = 0; i < (K_MODE == KVS_STORAGE_F16 ? MAX_QVEC / 2u : MAX_QVEC); ++i) {
                const uint ch = lane + i * SG;
                if (ch < HSK / per) {
                    const uvec4 u = KV4[base + ch];
                    if (K_MODE == KVS_STORAGE_F16) {
                        const vec4 a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
                        const vec4 b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
                        [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                            if (r < BR)
                                dots[r] += dot(a, qreg[r][2u * i]) + dot(b, qreg[r][2u * i + 1u]);
                    } else {
                        const vec4 a = uintBitsToFloat(u);
                        [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                            if (r < BR)
                                dots[r] += dot(a, qreg[r][i]);
                    }
                }
            }
        } else if (foldKeyScales) {
            if (j / K_GROUP != foldedGroup) {
                foldedGroup = j / K_GROUP;
                [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                    qmin[r] = 0.0;
                [[unroll]] for (uint i = 0; i < MAX_QVEC; ++i) {
                    const uint c = (lane + (i / SPC) * SG) * QPER + 4u * (i % SPC);
                    vec4 scale = vec4(0.0), minimum = vec4(0.0);
                    if (c + 3u < HSK)
                        [[unroll]] for (uint e = 0; e < 4u; ++e) {
                            const vec2 sm = unpackHalf2x16(KS[h.ksOff + foldedGroup * HSK + c + e]);
                            scale[e] = sm.x;
                            minimum[e] = sm.y;
                        }
                    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                        if (r < BR) {
                            qscaled[r][i] = qreg[r][i] * scale;
                            qmin[r] += dot(qreg[r][i], minimum);
                        }
                }
            }
            const uint mask = (1u << K_BITS) - 1u;
            [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                if (r < BR)
                    dots[r] = qmin[r];
            if (foldWords) {
                [[unroll]] for (uint i = 0; i < MAX_QVEC / SPC; ++i) {
                    const uint ch = lane + i * SG;
                    if (ch < HSK / QPER) {
                        const uint word = K[h.kOff + j * pc.kStride + ch];
                        [[unroll]] for (uint e = 0; e < SPC; ++e) {
                            const uint codes = word >> (4u * K_BITS * e);
                            const vec4 q = vec4(float(codes & mask),
                                                float((codes >> K_BITS) & mask),
                                                float((codes >> (2u * K_BITS)) & mask),
                                                float((codes >> (3u * K_BITS)) & mask));
                            [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                                if (r < BR)
                                    dots[r] += dot(q, qscaled[r][i * SPC + e]);
                        }
                    }
                }
            } else {
                [[unroll]] for (uint i = 0; i < MAX_QVEC; ++i) {
                    const uint k4 = lane + i * SG;
                    if (k4 < K4) {
                        const uint codes = extractK(h.kOff, j * pc.kStride * 32u + 4u * k4 * K_BITS,
                                                    4u * K_BITS);
                        const vec4 q = vec4(float(codes & mask), float((codes >> K_BITS) & mask),
                                            float((codes >> (2u * K_BITS)) & mask),
                                            float((codes >> (3u * K_BITS)) & mask));
                        [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                            if (r < BR)
                                dots[r] += dot(q, qscaled[r][i]);
                    }
                }
            }
            for (uint c = 4u * K4 + lane; c < HSK; c += SG) // channels past the last chunk
                [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                    if (r < BR)
                        dots[r] += qs[r * HSK + c] * loadK(h, j, c);
        } else {
            [[unroll]] for (uint i = 0; i < MAX_QVEC; ++i) {
                const uint k4 = lane + i * SG;
                if (k4 < K4) {
                    const vec4 kv = loadK4(h, j, 4u * k4);
                    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                        if (r < BR)
                            dots[r] += dot(kv, qreg[r][i]);
                }
            }
            for (uint c = 4u * K4 + lane; c < HSK; c += SG) // channels past the last chunk
                [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                    if (r < BR)
                        dots[r] += qs[r * HSK + c] * loadK(h, j, c);
        }

        if ((pc.flags & KVS_FLAG_KEY_OUTLIERS) != 0u) // the lanes split the row's outliers
            [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                if (r < BR)
                    dots[r] += keyOutlierDot(h, j, ((firstHead + r) * pc.nq + query) * HSK, lane, SG);

        float p[MAX_ROWS];
        bool any = false;
        [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r) {
            p[r] = 0.0;
            if (r < BR) {
                const float s = finishScore(h, j, query, subgroupAdd(dots[r]));
                if (s != NEG_INF) {
                    if (s > runMax[r]) { // new maximum: rescale what was accumulated
                        const float alpha = runMax[r] == NEG_INF ? 0.0 : exp(runMax[r] - s);
                        runSum[r] *= alpha;
                        [[unroll]] for (uint k = 0; k < MAX_VEC; ++k)
                            o[r][k] *= alpha;
                        runMax[r] = s;
                    }
                    p[r] = exp(s - runMax[r]);
                    runSum[r] += p[r];
                    any = true;
                }
            }
        }
        if (!any)
            continue;
        if (V_VEC != 0u && V_MODE == KVS_STORAGE_F16) {
            const uint base = (h.vOff + j * pc.vStride) >> 2u;
            [[unroll]] for (uint i = 0; i < MAX_VEC / 2u; ++i) {
                const uint ch = lane + i * SG;
                if (ch < HSV / 8u) {
                    const uvec4 u = VV4[base + ch];
                    const vec4 a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
                    const vec4 b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
                    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                        if (r < BR) {
                            o[r][2u * i] += p[r] * a;
                            o[r][2u * i + 1u] += p[r] * b;
                        }
                }
            }
        } else if (valueWords()) {
            const uint perWord = 32u / V_BITS;
            const uint spc = perWord / 4u;
            const uint mask = (1u << V_BITS) - 1u;
            const uint groupsPerRow = (HSV + V_GROUP - 1u) / V_GROUP;
            [[unroll]] for (uint i = 0; i < MAX_VEC / spc; ++i) {
                const uint ch = lane + i * SG;
                if (ch < HSV / perWord) {
                    const uint word = V[h.vOff + j * pc.vStride + ch];
                    const vec2 sm =
                        unpackHalf2x16(VS[h.vsOff + j * groupsPerRow + ch * perWord / V_GROUP]);
                    [[unroll]] for (uint e = 0; e < spc; ++e) {
                        const uint codes = word >> (4u * V_BITS * e);
                        const vec4 q = vec4(float(codes & mask), float((codes >> V_BITS) & mask),
                                            float((codes >> (2u * V_BITS)) & mask),
                                            float((codes >> (3u * V_BITS)) & mask));
                        const vec4 v = vec4(sm.y) + vec4(sm.x) * q;
                        [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                            if (r < BR)
                                o[r][i * spc + e] += p[r] * v;
                    }
                }
            }
        } else {
            [[unroll]] for (uint k = 0; k < MAX_VEC; ++k) {
                const uint c4 = lane + k * SG;
                if (c4 < V4) {
                    const vec4 v = V_VEC != 0u
                                       ? uintBitsToFloat(VV4[((h.vOff + j * pc.vStride) >> 2u) + c4])
                                       : loadV4(h, j, 4u * c4);
                    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                        if (r < BR)
                            o[r][k] += p[r] * v;
                }
            }
        }
        for (uint c = 4u * V4 + lane; c < HSV; c += SG) { // value columns past the last chunk
            const float v = loadV(h, j, c);
            // Stored in the x component of a spare chunk slot: MAX_VEC - 1 (host checks room).
            [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                if (r < BR)
                    o[r][MAX_VEC - 1u][(c - 4u * V4) / SG] += p[r] * v;
        }
        // Outliers kept dense: the lane that owns a column adds p · (x − decoded).
        if ((pc.flags & KVS_FLAG_VALUE_OUTLIERS) != 0u) {
            const uint last = VS[h.voOff + j + 1u];
            for (uint e = VS[h.voOff + j]; e < last; ++e) {
                const uint c = VS[e] & 0xffffu;
                if (c < 4u * V4) {
                    [[unroll]] for (uint k = 0; k < MAX_VEC; ++k)
                        if (slotColumn4(lane, k) == c / 4u) {
                            const float delta = valueOutlier(h, j, e).delta;
                            [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                                if (r < BR)
                                    o[r][k][c & 3u] += p[r] * delta;
                        }
                } else if ((c - 4u * V4) % SG == lane) {
                    const float delta = valueOutlier(h, j, e).delta;
                    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r)
                        if (r < BR)
                            o[r][MAX_VEC - 1u][(c - 4u * V4) / SG] += p[r] * delta;
                }
            }
        }
    }

    // Merge the subgroups of the workgroup.
    const uint chunks = (HSV + 3u) / 4u;
    [[unroll]] for (uint r = 0; r < MAX_ROWS; ++r) {
        if (r >= BR)
            break;
        const uint slot = r * NSG + sg;
        if (lane == 0u) {
            mergeMax[slot] = runMax[r];
            mergeSum[slot] = runSum[r];
        }
        [[unroll]] for (uint k = 0; k < MAX_VEC; ++k) {
            const uint c4 = slotColumn4(lane, k);
            if (c4 < V4)
                mergeO[slot * chunks + c4] = o[r][k];
        }
        if (V4 < chunks && lane < HSV - 4u * V4) // the tail columns, one per lane
            mergeO[slot * chunks + V4][lane] = o[r][MAX_VEC - 1u][0];
    }
    barrier();

    const uint stride = HSV + 2u;
    for (uint r = 0; r < BR; ++r) {
        float top = NEG_INF;
        for (uint s = 0; s < NSG; ++s)
            top = max(top, mergeMax[r * NSG + s]);
        const uint base = (((firstHead + r) * pc.nq + query) * pc.splits + split) * stride;
        float total = 0.0;
        for (uint s = 0; s < NSG; ++s)
            if (mergeMax[r * NSG + s] != NEG_INF)
                total += mergeSum[r * NSG + s] * exp(mergeMax[r * NSG + s] - top);
        for (uint c = t; c < HSV; c += WG) {
            float acc = 0.0;
            for (uint s = 0; s < NSG; ++s)
                if (mergeMax[r * NSG + s] != NEG_INF)
                    acc += mergeO[(r * NSG + s) * chunks + c / 4u][c % 4u] *
                           exp(mergeMax[r * NSG + s] - top);
            OUT0[base + c] = acc;
        }
        if (t == 0u) {
            OUT0[base + HSV] = top;
            OUT0[base + HSV + 1u] = total;
        }
    }
}
