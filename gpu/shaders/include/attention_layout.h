// SPDX-License-Identifier: MIT
// The vocabulary the attention shaders and their host side share: storage modes, descriptor
// bindings, specialization-constant ids, push-constant flags, the per-head table, and the fixed
// array sizes the host checks shapes against. Included by GLSL (gpu/shaders/include/
// attention_common.glsl, copy.comp) and by C++ (gpu/kernels/, gpu/vk/), so it is written in the
// common subset: plain #defines of integer literals. The typed C++ names at the end are built
// from the same macros. glslc's depfile lists this header, so editing it recompiles the shaders.
#ifndef KVS_ATTENTION_LAYOUT_H
#define KVS_ATTENTION_LAYOUT_H

// ---- How a K or V binding stores its rows (specialization constants K_MODE, V_MODE) -----------
#define KVS_STORAGE_F32 0u       // fp32 bits, one word per element
#define KVS_STORAGE_F16 1u       // fp16 pairs, element c in the low half when c is even
#define KVS_STORAGE_QUANTIZED 2u // packed codes + (scale, minimum) per group in KS / VS
// Keys only (K=V under RoPE): the keys are the value rows rotated by position on load; the K
// binding holds HSK/2 fp32 pair frequencies per head.
#define KVS_STORAGE_ROTATED_VALUES 3u
// Keys only (pre-RoPE low-rank latents): per head the K binding holds HSK/2 fp32 pair
// frequencies, the HSK × K_GROUP fp32 basis P (row-major), then one row of K_GROUP coefficients
// per kept token (fp16 pairs when K_BITS = 16, fp32 when 32; kStride words per row); a key is
// R(position) · (c · Pᵀ), rebuilt and rotated on load.
#define KVS_STORAGE_ROTATED_LOW_RANK 4u
// Keys only (pre-RoPE quantized keys): per head the K binding holds HSK/2 fp32 pair frequencies,
// then the codes as KVS_STORAGE_QUANTIZED lays them out (scales in KS); a key is R(position) ·
// (minimum + scale · code), decoded and rotated on load.
#define KVS_STORAGE_ROTATED_QUANTIZED 5u

// ---- Descriptor bindings of the one layout every kernel uses (set 0) -------------------------
#define KVS_BINDING_Q 0            // queries, fp32, (query head, query, channel)
#define KVS_BINDING_K 1            // keys (KVS_STORAGE_*)
#define KVS_BINDING_V 2            // values
#define KVS_BINDING_KEY_SCALES 3   // packHalf2x16(scale, minimum) per key group
#define KVS_BINDING_VALUE_SCALES 4 // the same per value group
#define KVS_BINDING_BIAS 5         // additive score bias per kept token
#define KVS_BINDING_POSITIONS 6    // original position per kept token
#define KVS_BINDING_QUERY_POSITIONS 7
#define KVS_BINDING_HEADS 8 // the per-KV-head table (KVS_HEAD_*)
#define KVS_BINDING_OUT0 9  // probe: split partials; combine: read; map: scores
#define KVS_BINDING_OUT1 10 // combine: normalized outputs; map: probabilities
#define KVS_BINDING_OUT2 11 // combine: ln Σ exp(ŝ)
#define KVS_BINDING_COUNT 12
// The copy kernel (bandwidth reference) uses the first two slots of the same layout.
#define KVS_BINDING_COPY_SRC 0
#define KVS_BINDING_COPY_DST 1

// ---- Specialization-constant ids -------------------------------------------------------------
#define KVS_SPEC_WG 0 // threads per workgroup (= keys per tile); the copy kernel's only constant
#define KVS_SPEC_HSK 1
#define KVS_SPEC_HSV 2
#define KVS_SPEC_K_MODE 3
#define KVS_SPEC_V_MODE 4
#define KVS_SPEC_K_BITS 5
#define KVS_SPEC_K_GROUP 6
#define KVS_SPEC_V_BITS 7
#define KVS_SPEC_V_GROUP 8
#define KVS_SPEC_D_SPLIT 9
#define KVS_SPEC_K_PER_TOKEN 10
#define KVS_SPEC_V_PER_CHANNEL 11
#define KVS_SPEC_ATTENTION_COUNT 12 // ids 0..11: every attention kernel
#define KVS_SPEC_SG 12              // probe_split_sg.comp only: subgroup size
#define KVS_SPEC_BR 13              // query heads per workgroup
#define KVS_SPEC_K_VEC 14           // dense key rows read as uvec4
#define KVS_SPEC_V_VEC 15           // dense value rows read as uvec4
#define KVS_SPEC_SUBGROUP_COUNT 16

// ---- Push constants: 10 words (struct Params in attention_common.glsl) -----------------------
#define KVS_PUSH_CONSTANT_BYTES 40
#define KVS_FLAG_CAUSAL 1u               // mask keys whose position is after the query's
#define KVS_FLAG_BIAS 2u                 // add BIAS to the scores
#define KVS_FLAG_INTERLEAVED_ROTATION 4u // rotated storage modes: pairs (2i, 2i+1)
// Quantized keys (values) with outliers kept dense: every head's table entry gives the word
// offset in KS (VS) of its outlier table (KVS_HEAD_KO_OFFSET / KVS_HEAD_VO_OFFSET).
#define KVS_FLAG_KEY_OUTLIERS 8u
#define KVS_FLAG_VALUE_OUTLIERS 16u

// ---- The per-KV-head table (binding KVS_BINDING_HEADS): KVS_HEAD_WORDS uints per head -------
#define KVS_HEAD_WORDS 8u
#define KVS_HEAD_KEPT 0u     // kept token count m
#define KVS_HEAD_K_OFFSET 1u // word offsets into K, V, KS, VS
#define KVS_HEAD_V_OFFSET 2u
#define KVS_HEAD_KS_OFFSET 3u
#define KVS_HEAD_VS_OFFSET 4u
#define KVS_HEAD_TOKEN_OFFSET 5u // into BIAS and POSITIONS
// Outlier tables (with the KVS_FLAG_*_OUTLIERS flags): at this word of KS (VS), rows + 1 row
// starts — absolute word indices into KS (VS) — and there one word per outlier of the row, in
// increasing column: the column in the low 16 bits, the fp16 value in the high 16. An outlier's
// element is that value instead of minimum + scale · code.
#define KVS_HEAD_KO_OFFSET 6u
#define KVS_HEAD_VO_OFFSET 7u

// ---- Fixed sizes the host checks shapes against -----------------------------------------------
// hadamard.comp: the longest row it transforms (its shared array, 1 KiB).
#define KVS_HADAMARD_MAX_DIM 256
// probe_split.comp: value columns per thread (HSV ≤ KVS_PROBE_MAX_COLS · WG).
#define KVS_PROBE_MAX_COLS 4
// probe_split_sg.comp: vec4 value chunks per lane (HSV ≤ 4 · SG · MAX_VEC, one slot kept for a
// tail), query heads per workgroup, query vec4 chunks per lane (HSK ≤ 4 · SG · MAX_QVEC).
#define KVS_SG_MAX_VEC 8
#define KVS_SG_MAX_ROWS 8
#define KVS_SG_MAX_QVEC 8
// Its shared arrays, fixed rather than sized by specialization constants so that the footprint
// (28.5 KiB, under lavapipe's 32 KiB) is known on the host.
#define KVS_SG_SHARED_QUERY_FLOATS 2048 // BR · HSK
#define KVS_SG_SHARED_MERGE_SLOTS 64    // BR · subgroups per workgroup
#define KVS_SG_SHARED_MERGE_VEC4S 1280  // BR · subgroups · ⌈HSV/4⌉

#ifdef __cplusplus
#include <cstdint>

namespace kvs::gpu::layout {

enum class Storage : std::uint32_t {
    F32 = KVS_STORAGE_F32,
    F16 = KVS_STORAGE_F16,
    Quantized = KVS_STORAGE_QUANTIZED,
    RotatedValues = KVS_STORAGE_ROTATED_VALUES,
    RotatedLowRank = KVS_STORAGE_ROTATED_LOW_RANK,
    RotatedQuantized = KVS_STORAGE_ROTATED_QUANTIZED,
};

enum class Binding : std::uint32_t {
    Q = KVS_BINDING_Q,
    K = KVS_BINDING_K,
    V = KVS_BINDING_V,
    KeyScales = KVS_BINDING_KEY_SCALES,
    ValueScales = KVS_BINDING_VALUE_SCALES,
    Bias = KVS_BINDING_BIAS,
    Positions = KVS_BINDING_POSITIONS,
    QueryPositions = KVS_BINDING_QUERY_POSITIONS,
    Heads = KVS_BINDING_HEADS,
    Partials = KVS_BINDING_OUT0,       // probe writes, combine reads
    Outputs = KVS_BINDING_OUT1,        // combine
    LogSumExp = KVS_BINDING_OUT2,      // combine
    Scores = KVS_BINDING_OUT0,         // map
    Probabilities = KVS_BINDING_OUT1,  // map
    CopySource = KVS_BINDING_COPY_SRC, // copy
    CopyDestination = KVS_BINDING_COPY_DST,
};
inline constexpr std::uint32_t kBindingCount = KVS_BINDING_COUNT;

enum class SpecId : std::uint32_t {
    Wg = KVS_SPEC_WG,
    Hsk = KVS_SPEC_HSK,
    Hsv = KVS_SPEC_HSV,
    KMode = KVS_SPEC_K_MODE,
    VMode = KVS_SPEC_V_MODE,
    KBits = KVS_SPEC_K_BITS,
    KGroup = KVS_SPEC_K_GROUP,
    VBits = KVS_SPEC_V_BITS,
    VGroup = KVS_SPEC_V_GROUP,
    DSplit = KVS_SPEC_D_SPLIT,
    KPerToken = KVS_SPEC_K_PER_TOKEN,
    VPerChannel = KVS_SPEC_V_PER_CHANNEL,
    Subgroup = KVS_SPEC_SG,
    Rows = KVS_SPEC_BR,
    KVec = KVS_SPEC_K_VEC,
    VVec = KVS_SPEC_V_VEC,
};
inline constexpr std::uint32_t kAttentionSpecCount = KVS_SPEC_ATTENTION_COUNT;
inline constexpr std::uint32_t kSubgroupSpecCount = KVS_SPEC_SUBGROUP_COUNT;

inline constexpr std::uint32_t kPushConstantBytes = KVS_PUSH_CONSTANT_BYTES;
namespace flag {
inline constexpr std::uint32_t kCausal = KVS_FLAG_CAUSAL;
inline constexpr std::uint32_t kBias = KVS_FLAG_BIAS;
inline constexpr std::uint32_t kInterleavedRotation = KVS_FLAG_INTERLEAVED_ROTATION;
inline constexpr std::uint32_t kKeyOutliers = KVS_FLAG_KEY_OUTLIERS;
inline constexpr std::uint32_t kValueOutliers = KVS_FLAG_VALUE_OUTLIERS;
} // namespace flag

enum class HeadField : std::uint32_t {
    Kept = KVS_HEAD_KEPT,
    KOffset = KVS_HEAD_K_OFFSET,
    VOffset = KVS_HEAD_V_OFFSET,
    KsOffset = KVS_HEAD_KS_OFFSET,
    VsOffset = KVS_HEAD_VS_OFFSET,
    TokenOffset = KVS_HEAD_TOKEN_OFFSET,
    KeyOutlierOffset = KVS_HEAD_KO_OFFSET,
    ValueOutlierOffset = KVS_HEAD_VO_OFFSET,
};
inline constexpr std::uint32_t kHeadWords = KVS_HEAD_WORDS;

inline constexpr std::uint32_t kHadamardMaxDim = KVS_HADAMARD_MAX_DIM;
inline constexpr std::uint32_t kProbeMaxCols = KVS_PROBE_MAX_COLS;
inline constexpr std::uint32_t kSgMaxVec = KVS_SG_MAX_VEC;
inline constexpr std::uint32_t kSgMaxRows = KVS_SG_MAX_ROWS;
inline constexpr std::uint32_t kSgMaxQVec = KVS_SG_MAX_QVEC;
inline constexpr std::uint32_t kSgSharedQueryFloats = KVS_SG_SHARED_QUERY_FLOATS;
inline constexpr std::uint32_t kSgSharedMergeSlots = KVS_SG_SHARED_MERGE_SLOTS;
inline constexpr std::uint32_t kSgSharedMergeVec4s = KVS_SG_SHARED_MERGE_VEC4S;
// Bytes of probe_split_sg.comp's shared arrays: qs, mergeMax + mergeSum, mergeO.
inline constexpr std::uint32_t kSgSharedBytes =
    4 * kSgSharedQueryFloats + 2 * 4 * kSgSharedMergeSlots + 16 * kSgSharedMergeVec4s;
static_assert(kSgSharedBytes == 28 * 1024 + 512, "the 28.5 KiB the shader comment promises");

// The underlying number of a layout enum (an index, an id, or a specialization value).
template <class E> constexpr std::uint32_t index(E e) {
    return static_cast<std::uint32_t>(e);
}

} // namespace kvs::gpu::layout
#endif // __cplusplus

#endif // KVS_ATTENTION_LAYOUT_H
