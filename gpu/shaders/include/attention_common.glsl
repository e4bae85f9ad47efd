// SPDX-License-Identifier: MIT
// Shared by the attention kernels: the one descriptor layout, push constants, specialization
// constants and the loaders that read (and dequantize) one key or value element. The numbers
// (storage modes, bindings, ids, flags, the head table) are named in attention_layout.h, which
// the host side includes too.
//
// Layout of a layer upload (gpu/kernels/layer_upload.cpp writes it):
//   HEADS[]    per KV head KVS_HEAD_WORDS uints: kept count m, K word offset, V word offset,
//              K scale offset, V scale offset, token offset (bias/positions), K and V outlier
//              table offsets (into KS / VS, read only with the outlier flags)
//   K, V       uint words: fp32 bits, fp16 pairs (element c in the low half when c is even), or
//              packed codes (row r starts on a word, column c at bit r·stride·32 + c·bits);
//              KVS_STORAGE_ROTATED_VALUES (K=V under RoPE): K holds HSK/2 fp32 pair frequencies
//              per head and the keys are the value rows rotated by position on load
//   KS, VS     one uint per group: packHalf2x16(scale, minimum); keys grouped per channel over
//              tokens ((r / KG)·HSK + c), values per token ((r · groupsPerRow) + c / VG), or the
//              other way round where K_PER_TOKEN / V_PER_CHANNEL say so
//   bias, pos  per kept token, at the head's token offset
#include "attention_layout.h"
#extension GL_EXT_control_flow_attributes : enable

layout(constant_id = KVS_SPEC_WG) const uint WG = 64; // threads per workgroup (= keys per tile)
layout(constant_id = KVS_SPEC_HSK) const uint HSK = 64; // key / query dimension (r: low-rank keys)
layout(constant_id = KVS_SPEC_HSV) const uint HSV = 64; // value dimension
layout(constant_id = KVS_SPEC_K_MODE) const uint K_MODE = KVS_STORAGE_F32; // KVS_STORAGE_*
layout(constant_id = KVS_SPEC_V_MODE) const uint V_MODE = KVS_STORAGE_F32; // not ROTATED_VALUES
layout(constant_id = KVS_SPEC_K_BITS) const uint K_BITS = 4;
layout(constant_id = KVS_SPEC_K_GROUP) const uint K_GROUP = 32;
layout(constant_id = KVS_SPEC_V_BITS) const uint V_BITS = 4;
layout(constant_id = KVS_SPEC_V_GROUP) const uint V_GROUP = 32;
// Threads sharing one key row's dot product (probe_split.comp).
layout(constant_id = KVS_SPEC_D_SPLIT) const uint D_SPLIT = 8;
// 1: key groups run along a token's channels; 1: value groups run along a channel's tokens.
layout(constant_id = KVS_SPEC_K_PER_TOKEN) const uint K_PER_TOKEN = 0;
layout(constant_id = KVS_SPEC_V_PER_CHANNEL) const uint V_PER_CHANNEL = 0;

layout(local_size_x_id = KVS_SPEC_WG) in;

layout(push_constant) uniform Params {
    uint nq;          // queries per query head
    uint heads;       // query heads in this dispatch
    uint group;       // query heads per KV head
    uint splits;      // key splits (probe kernel)
    uint kStride;     // words per key row
    uint vStride;     // words per value row
    float scale;      // score scale (1/√d of the original d)
    uint flags;       // KVS_FLAG_*: causal, bias, interleaved rotation, outliers
    uint mapStride;   // row stride of the map outputs (max kept count)
} pc;

layout(std430, binding = KVS_BINDING_Q) readonly buffer QBuf { float Q[]; };
layout(std430, binding = KVS_BINDING_K) readonly buffer KBuf { uint K[]; };
layout(std430, binding = KVS_BINDING_V) readonly buffer VBuf { uint V[]; };
layout(std430, binding = KVS_BINDING_KEY_SCALES) readonly buffer KSBuf { uint KS[]; };
layout(std430, binding = KVS_BINDING_VALUE_SCALES) readonly buffer VSBuf { uint VS[]; };
layout(std430, binding = KVS_BINDING_BIAS) readonly buffer BiasBuf { float BIAS[]; };
layout(std430, binding = KVS_BINDING_POSITIONS) readonly buffer PosBuf { int POS[]; };
layout(std430, binding = KVS_BINDING_QUERY_POSITIONS) readonly buffer QPosBuf { int QPOS[]; };
layout(std430, binding = KVS_BINDING_HEADS) readonly buffer HeadBuf { uint HEADS[]; };
layout(std430, binding = KVS_BINDING_OUT0) buffer Out0 { float OUT0[]; };
layout(std430, binding = KVS_BINDING_OUT1) buffer Out1 { float OUT1[]; };
layout(std430, binding = KVS_BINDING_OUT2) buffer Out2 { float OUT2[]; };

#define NEG_INF uintBitsToFloat(0xff800000u)

struct HeadInfo {
    uint m, kOff, vOff, ksOff, vsOff, tokOff, koOff, voOff;
};

HeadInfo headInfo(uint kvHead) {
    const uint b = kvHead * KVS_HEAD_WORDS;
    return HeadInfo(HEADS[b + KVS_HEAD_KEPT], HEADS[b + KVS_HEAD_K_OFFSET],
                    HEADS[b + KVS_HEAD_V_OFFSET], HEADS[b + KVS_HEAD_KS_OFFSET],
                    HEADS[b + KVS_HEAD_VS_OFFSET], HEADS[b + KVS_HEAD_TOKEN_OFFSET],
                    HEADS[b + KVS_HEAD_KO_OFFSET], HEADS[b + KVS_HEAD_VO_OFFSET]);
}

// `bits` (≤ 32) consecutive bits at bit offset `bit` of the stream starting at word `base` of
// buffer BUF. GLSL has no buffer parameters: one function per buffer, from this one body.
// Aligned fields (bits dividing 32, as 4 codes of 2/4/8 bits do) never straddle two words: with
// constant `bits` the test folds away and no second (masked) load is issued.
#define KVS_DEFINE_EXTRACT(NAME, BUF)                                                              \
    uint NAME(uint base, uint bit, uint bits) {                                                    \
        const uint w = base + (bit >> 5u);                                                         \
        const uint sh = bit & 31u;                                                                 \
        uint v = BUF[w] >> sh;                                                                     \
        if ((32u % bits) != 0u && sh + bits > 32u)                                                 \
            v |= BUF[w + 1u] << (32u - sh);                                                        \
        return bits >= 32u ? v : v & ((1u << bits) - 1u);                                          \
    }
KVS_DEFINE_EXTRACT(extractK, K)
KVS_DEFINE_EXTRACT(extractV, V)

float loadV(HeadInfo h, uint j, uint c) {
    if (V_MODE == KVS_STORAGE_F32)
        return uintBitsToFloat(V[h.vOff + j * pc.vStride + c]);
    if (V_MODE == KVS_STORAGE_F16) {
        const vec2 pair = unpackHalf2x16(V[h.vOff + j * pc.vStride + (c >> 1u)]);
        return (c & 1u) == 0u ? pair.x : pair.y;
    }
    const uint code = extractV(h.vOff, j * pc.vStride * 32u + c * V_BITS, V_BITS);
    const uint g = V_PER_CHANNEL != 0u ? (j / V_GROUP) * HSV + c
                                       : j * ((HSV + V_GROUP - 1u) / V_GROUP) + c / V_GROUP;
    const vec2 sm = unpackHalf2x16(VS[h.vsOff + g]);
    return sm.y + sm.x * float(code);
}

// Pre-RoPE low-rank keys: channel c of the rebuilt latent c_j · Pᵀ (K_GROUP = rank).
float lowRankKey(HeadInfo h, uint j, uint c) {
    const uint basis = h.kOff + HSK / 2u;
    const uint row = basis + HSK * K_GROUP + j * pc.kStride;
    float sum = 0.0;
    for (uint t = 0u; t < K_GROUP; ++t) {
        float coefficient;
        if (K_BITS == 16u) {
            const vec2 pair = unpackHalf2x16(K[row + (t >> 1u)]);
            coefficient = (t & 1u) == 0u ? pair.x : pair.y;
        } else {
            coefficient = uintBitsToFloat(K[row + t]);
        }
        sum += coefficient * uintBitsToFloat(K[basis + c * K_GROUP + t]);
    }
    return sum;
}

// RoPE pair of channel c: pairs (i, i + d/2), or (2i, 2i + 1) with the interleaved flag.
struct RopePair {
    uint partner;
    bool first;  // c is the pair's first channel
    float angle; // original position · the pair's frequency (the frequencies lead the K words)
};

RopePair ropePair(HeadInfo h, uint j, uint c) {
    const bool interleaved = (pc.flags & KVS_FLAG_INTERLEAVED_ROTATION) != 0u;
    const uint halfDim = HSK / 2u;
    const uint i = interleaved ? c >> 1u : (c < halfDim ? c : c - halfDim);
    RopePair r;
    r.partner = interleaved ? c ^ 1u : (c < halfDim ? c + halfDim : c - halfDim);
    r.first = interleaved ? (c & 1u) == 0u : c < halfDim;
    r.angle = float(POS[h.tokOff + j]) * uintBitsToFloat(K[h.kOff + i]);
    return r;
}

// Channel c of a pre-RoPE row turned by the pair's angle, given the row's channel and partner.
float rotateChannel(RopePair r, float self, float partner) {
    const float rotated = partner * sin(r.angle);
    return self * cos(r.angle) + (r.first ? -rotated : rotated);
}

// Quantized key element (row j, column c) whose codes start at word `base`: minimum + scale ·
// code as on the CPU.
float quantizedKey(HeadInfo h, uint base, uint j, uint c) {
    const uint code = extractK(base, j * pc.kStride * 32u + c * K_BITS, K_BITS);
    const uint g = K_PER_TOKEN != 0u ? j * ((HSK + K_GROUP - 1u) / K_GROUP) + c / K_GROUP
                                      : (j / K_GROUP) * HSK + c;
    const vec2 sm = unpackHalf2x16(KS[h.ksOff + g]);
    return sm.y + sm.x * float(code);
}

// Key element (row j, column c) of head h, decoded to fp32: minimum + scale · code as on the CPU.
float loadK(HeadInfo h, uint j, uint c) {
    if (K_MODE == KVS_STORAGE_ROTATED_LOW_RANK) {
        // Pre-RoPE latents: the row rebuilt for channel c and its partner, then turned.
        const RopePair r = ropePair(h, j, c);
        return rotateChannel(r, lowRankKey(h, j, c), lowRankKey(h, j, r.partner));
    }
    if (K_MODE == KVS_STORAGE_ROTATED_VALUES) {
        // K=V under RoPE: the key is the value row turned by its original position.
        const RopePair r = ropePair(h, j, c);
        return rotateChannel(r, loadV(h, j, c), loadV(h, j, r.partner));
    }
    if (K_MODE == KVS_STORAGE_ROTATED_QUANTIZED) {
        // Pre-RoPE codes after the HSK/2 frequencies: decoded for c and its partner, then turned.
        const RopePair r = ropePair(h, j, c);
        const uint codes = h.kOff + HSK / 2u;
        return rotateChannel(r, quantizedKey(h, codes, j, c), quantizedKey(h, codes, j, r.partner));
    }
    if (K_MODE == KVS_STORAGE_F32)
        return uintBitsToFloat(K[h.kOff + j * pc.kStride + c]);
    if (K_MODE == KVS_STORAGE_F16) {
        const vec2 pair = unpackHalf2x16(K[h.kOff + j * pc.kStride + (c >> 1u)]);
        return (c & 1u) == 0u ? pair.x : pair.y;
    }
    return quantizedKey(h, h.kOff, j, c);
}

// Outliers kept dense (KVS_FLAG_KEY_OUTLIERS): what key row j's outliers add to the dot product
// with the query at Q[qBase ..] — q · (x − decoded) over the row's outliers first, first + step,
// ... (the lanes sharing a row split them). Pre-RoPE codes: the difference is turned by position
// like the key, so it reaches the outlier's channel and its pair partner.
float keyOutlierDot(HeadInfo h, uint j, uint qBase, uint first, uint step) {
    float sum = 0.0;
    const uint end = KS[h.koOff + j + 1u];
    for (uint e = KS[h.koOff + j] + first; e < end; e += step) {
        const uint word = KS[e];
        const uint c = word & 0xffffu;
        const float value = unpackHalf2x16(word).y;
        if (K_MODE == KVS_STORAGE_ROTATED_QUANTIZED) {
            const float delta = value - quantizedKey(h, h.kOff + HSK / 2u, j, c);
            const RopePair r = ropePair(h, j, c);
            const RopePair partner = ropePair(h, j, r.partner);
            sum += Q[qBase + c] * rotateChannel(r, delta, 0.0) +
                   Q[qBase + r.partner] * rotateChannel(partner, 0.0, delta);
        } else {
            sum += Q[qBase + c] * (value - quantizedKey(h, h.kOff, j, c));
        }
    }
    return sum;
}

// Value outlier e (KVS_FLAG_VALUE_OUTLIERS) of row j: its column and x − decoded.
struct ValueOutlier {
    uint column;
    float delta;
};

ValueOutlier valueOutlier(HeadInfo h, uint j, uint e) {
    const uint word = VS[e];
    ValueOutlier o;
    o.column = word & 0xffffu;
    o.delta = unpackHalf2x16(word).y - loadV(h, j, o.column);
    return o;
}

// ŝ_j without the dot product: bias and causal mask by original position.
float finishScore(HeadInfo h, uint j, uint query, float dot) {
    float s = dot * pc.scale;
    if ((pc.flags & KVS_FLAG_BIAS) != 0u)
        s += BIAS[h.tokOff + j];
    if ((pc.flags & KVS_FLAG_CAUSAL) != 0u && POS[h.tokOff + j] > QPOS[query])
        s = NEG_INF;
    return s;
}
