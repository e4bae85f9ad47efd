// SPDX-License-Identifier: MIT
// Shared by the attention kernels: the one descriptor layout, push constants, specialization
// constants and the loaders that read (and dequantize) one key or value element.
//
// Layout of a layer upload (gpu/kernels/attention_kernels.cpp writes it):
//   heads[]    per KV head 8 uints: kept count m, K word offset, V word offset, K scale offset,
//              V scale offset, token offset (bias/positions), 0, 0
//   K, V       uint words: fp32 bits, fp16 pairs (element c in the low half when c is even), or
//              packed codes (row r starts on a word, column c at bit r·stride·32 + c·bits);
//              K_MODE 3 (K=V under RoPE): K holds HSK/2 fp32 pair frequencies per head and the
//              keys are the value rows rotated by position on load
//   KS, VS     one uint per group: packHalf2x16(scale, minimum); keys grouped per channel over
//              tokens ((r / KG)·HSK + c), values per token ((r · groupsPerRow) + c / VG), or the
//              other way round where K_PER_TOKEN / V_PER_CHANNEL say so
//   bias, pos  per kept token, at the head's token offset
#extension GL_EXT_control_flow_attributes : enable

layout(constant_id = 0) const uint WG = 64;     // threads per workgroup (= keys per tile)
layout(constant_id = 1) const uint HSK = 64;    // key / query dimension (r for low-rank keys)
layout(constant_id = 2) const uint HSV = 64;    // value dimension
layout(constant_id = 3) const uint K_MODE = 0;  // 0 fp32, 1 fp16, 2 quantized, 3 rotated V
layout(constant_id = 4) const uint V_MODE = 0;  // 0 fp32, 1 fp16, 2 quantized
layout(constant_id = 5) const uint K_BITS = 4;
layout(constant_id = 6) const uint K_GROUP = 32;
layout(constant_id = 7) const uint V_BITS = 4;
layout(constant_id = 8) const uint V_GROUP = 32;
layout(constant_id = 9) const uint D_SPLIT = 8; // threads sharing one key row's dot product
layout(constant_id = 10) const uint K_PER_TOKEN = 0; // 1: key groups run along a token's channels
layout(constant_id = 11) const uint V_PER_CHANNEL = 0; // 1: value groups run along a channel's tokens

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint nq;          // queries per query head
    uint heads;       // query heads in this dispatch
    uint group;       // query heads per KV head
    uint splits;      // key splits (probe kernel)
    uint kStride;     // words per key row
    uint vStride;     // words per value row
    float scale;      // score scale (1/√d of the original d)
    uint flags;       // bit 0: causal (positions), bit 1: bias, bit 2: interleaved rotation
    uint mapStride;   // row stride of the map outputs (max kept count)
} pc;

layout(std430, binding = 0) readonly buffer QBuf { float Q[]; };
layout(std430, binding = 1) readonly buffer KBuf { uint K[]; };
layout(std430, binding = 2) readonly buffer VBuf { uint V[]; };
layout(std430, binding = 3) readonly buffer KSBuf { uint KS[]; };
layout(std430, binding = 4) readonly buffer VSBuf { uint VS[]; };
layout(std430, binding = 5) readonly buffer BiasBuf { float BIAS[]; };
layout(std430, binding = 6) readonly buffer PosBuf { int POS[]; };
layout(std430, binding = 7) readonly buffer QPosBuf { int QPOS[]; };
layout(std430, binding = 8) readonly buffer HeadBuf { uint HEADS[]; };
layout(std430, binding = 9) buffer Out0 { float OUT0[]; };
layout(std430, binding = 10) buffer Out1 { float OUT1[]; };
layout(std430, binding = 11) buffer Out2 { float OUT2[]; };

#define NEG_INF uintBitsToFloat(0xff800000u)

struct HeadInfo {
    uint m, kOff, vOff, ksOff, vsOff, tokOff;
};

HeadInfo headInfo(uint kvHead) {
    const uint b = kvHead * 8u;
    return HeadInfo(HEADS[b], HEADS[b + 1u], HEADS[b + 2u], HEADS[b + 3u], HEADS[b + 4u],
                    HEADS[b + 5u]);
}

// `bits` (≤ 32) consecutive bits at bit offset `bit` of the stream starting at word `base`.
uint extractK(uint base, uint bit, uint bits) {
    const uint w = base + (bit >> 5u);
    const uint sh = bit & 31u;
    uint v = K[w] >> sh;
    // Aligned fields (bits dividing 32, as 4 codes of 2/4/8 bits do) never straddle two words:
    // with constant `bits` the test folds away and no second (masked) load is issued.
    if ((32u % bits) != 0u && sh + bits > 32u)
        v |= K[w + 1u] << (32u - sh);
    return bits >= 32u ? v : v & ((1u << bits) - 1u);
}

uint extractV(uint base, uint bit, uint bits) {
    const uint w = base + (bit >> 5u);
    const uint sh = bit & 31u;
    uint v = V[w] >> sh;
    // Aligned fields (bits dividing 32, as 4 codes of 2/4/8 bits do) never straddle two words:
    // with constant `bits` the test folds away and no second (masked) load is issued.
    if ((32u % bits) != 0u && sh + bits > 32u)
        v |= V[w + 1u] << (32u - sh);
    return bits >= 32u ? v : v & ((1u << bits) - 1u);
}

float loadV(HeadInfo h, uint j, uint c) {
    if (V_MODE == 0u)
        return uintBitsToFloat(V[h.vOff + j * pc.vStride + c]);
    if (V_MODE == 1u) {
        const vec2 pair = unpackHalf2x16(V[h.vOff + j * pc.vStride + (c >> 1u)]);
        return (c & 1u) == 0u ? pair.x : pair.y;
    }
    const uint code = extractV(h.vOff, j * pc.vStride * 32u + c * V_BITS, V_BITS);
    const uint g = V_PER_CHANNEL != 0u ? (j / V_GROUP) * HSV + c
                                       : j * ((HSV + V_GROUP - 1u) / V_GROUP) + c / V_GROUP;
    const vec2 sm = unpackHalf2x16(VS[h.vsOff + g]);
    return sm.y + sm.x * float(code);
}

// Key element (row j, column c) of head h, decoded to fp32: minimum + scale · code as on the CPU.
float loadK(HeadInfo h, uint j, uint c) {
    if (K_MODE == 3u) {
        // K=V under RoPE: the key is the value row rotated by its original position; K holds the
        // d/2 pair frequencies. Pairs (i, i + d/2), or (2i, 2i + 1) with flags bit 2.
        const bool interleaved = (pc.flags & 4u) != 0u;
        const uint halfDim = HSK / 2u;
        const uint i = interleaved ? c >> 1u : (c < halfDim ? c : c - halfDim);
        const uint partner = interleaved ? c ^ 1u : (c < halfDim ? c + halfDim : c - halfDim);
        const bool first = interleaved ? (c & 1u) == 0u : c < halfDim;
        const float angle = float(POS[h.tokOff + j]) * uintBitsToFloat(K[h.kOff + i]);
        const float rotated = loadV(h, j, partner) * sin(angle);
        return loadV(h, j, c) * cos(angle) + (first ? -rotated : rotated);
    }
    if (K_MODE == 0u)
        return uintBitsToFloat(K[h.kOff + j * pc.kStride + c]);
    if (K_MODE == 1u) {
        const vec2 pair = unpackHalf2x16(K[h.kOff + j * pc.kStride + (c >> 1u)]);
        return (c & 1u) == 0u ? pair.x : pair.y;
    }
    const uint code = extractK(h.kOff, j * pc.kStride * 32u + c * K_BITS, K_BITS);
    const uint g = K_PER_TOKEN != 0u ? j * ((HSK + K_GROUP - 1u) / K_GROUP) + c / K_GROUP
                                      : (j / K_GROUP) * HSK + c;
    const vec2 sm = unpackHalf2x16(KS[h.ksOff + g]);
    return sm.y + sm.x * float(code);
}

// ŝ_j without the dot product: bias and causal mask by original position.
float finishScore(HeadInfo h, uint j, uint query, float dot) {
    float s = dot * pc.scale;
    if ((pc.flags & 2u) != 0u)
        s += BIAS[h.tokOff + j];
    if ((pc.flags & 1u) != 0u && POS[h.tokOff + j] > QPOS[query])
        s = NEG_INF;
    return s;
}
