// SPDX-License-Identifier: MIT
// The one general form of a compressed KV cache of one KV head (DESIGN.md "Core types",
// ALGORITHMS.md §0): kept tokens with a log-weight bias, keys dense / low-rank / quantized, values
// dense / quantized / shared with the keys. Every scheme produces it, every attention backend
// consumes it, and bytes() is the exact size of what is stored.
#pragma once

#include "kvs/tensor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvs {

// Storage precision of dense matrices. F16 data is kept as float already rounded to fp16, so the
// CPU reference and a GPU that stores half see the same numbers.
enum class Precision { F32, F16 };
int bytesPerElement(Precision p);

// Uniform asymmetric quantization: x ≈ minimum + scale · code, code ∈ [0, 2^bits − 1].
// Codes are stored row-major (tokens × channels) as a dense little-endian bit stream, each row
// starting on a 32-bit word: row r, column c lives at bit (r · wordsPerRow · 32 + c · bits).
// Groups: PerToken = `groupSize` consecutive channels of one token share (scale, minimum) (KIVI's
// values); PerChannel = `groupSize` consecutive tokens of one channel share them (KIVI's keys).
// Scales and minima are stored as fp16 (kept here as float rounded to fp16).
struct QuantizedMatrix {
    enum class Grouping { PerToken, PerChannel };
    int rows = 0;
    int cols = 0;
    int bits = 8; // 2, 3, 4 or 8
    int groupSize = 32;
    Grouping grouping = Grouping::PerToken;
    std::vector<std::uint32_t> codes; // rows × wordsPerRow()
    std::vector<float> scales;   // PerToken: rows × groupsPerRow; PerChannel: groupRows × cols
    std::vector<float> minimums; // same shape as scales
    // Dense-and-sparse (KVQuant): elements kept exactly beside the codes, each as its flat index
    // row · cols + col (strictly increasing) and its value rounded to fp16. Such an element
    // decodes to its value, not to minimum + scale · code, and its group's scale and minimum
    // were chosen without it, so a few extremes no longer stretch a group's range. The cache
    // stores 6 bytes per element (32-bit index, fp16 value); a backend may lay them out per row.
    std::vector<std::uint32_t> outlierIndices;
    std::vector<float> outlierValues;

    int wordsPerRow() const { return (cols * bits + 31) / 32; }
    int groupsPerRow() const { return (cols + groupSize - 1) / groupSize; } // PerToken
    int groupRows() const { return (rows + groupSize - 1) / groupSize; }    // PerChannel
    std::uint32_t code(int row, int col) const;
    // ORs `code` into place: the codes start zeroed (rows × wordsPerRow()).
    void setCode(int row, int col, std::uint32_t code);
    float scaleAt(int row, int col) const;
    float minimumAt(int row, int col) const;
    Matrix dequantize() const;
    // Codes as packed + 2 bytes per scale and per minimum + outlierBytes().
    std::size_t bytes() const;
    std::size_t metadataBytes() const; // the scales and minima alone
    int outlierCount() const { return static_cast<int>(outlierIndices.size()); }
    std::size_t outlierBytes() const { return outlierIndices.size() * 6u; }
    // The outliers as the Vulkan kernels hold them: rows + 1 row starts, then one word per
    // outlier (column in the low 16 bits, fp16 value in the high); 0 without outliers.
    std::size_t outlierDeviceBytes() const {
        return outlierIndices.empty()
                   ? 0u
                   : (static_cast<std::size_t>(rows) + 1u + outlierIndices.size()) * 4u;
    }
};

// Quantizes `x` (rounding to nearest, ties away from zero); scale = (max − min) / (2^bits − 1),
// a constant group gets scale 0 and decodes exactly to its minimum. With `outlierFraction` f > 0
// the round(f · rows · cols) elements farthest from the mean of the vector their groups run
// along (a channel over tokens for PerChannel, a token over channels for PerToken), in units of
// that vector's standard deviation, are kept as outliers (fp16) and left out of their groups'
// ranges. Throws kvs::Error(InvalidArgument) on bad bits, group size, fraction (0 ≤ f ≤ 1) or a
// non-finite element.
QuantizedMatrix quantize(const Matrix& x, int bits, int groupSize,
                         QuantizedMatrix::Grouping grouping, double outlierFraction = 0.0);
// Rounds every element to the nearest fp16 value (round to nearest even), in place.
void roundToHalf(Matrix& x);
float roundToHalf(float x);

struct CacheBytes {
    std::size_t keys = 0;
    std::size_t values = 0;
    std::size_t metadata = 0; // positions, log-weights, scales/minima, low-rank projections
    std::size_t total() const { return keys + values + metadata; }
    // Inline: views sum result types without linking core (kvs_core_api).
    CacheBytes& operator+=(const CacheBytes& o) {
        keys += o.keys;
        values += o.values;
        metadata += o.metadata;
        return *this;
    }
};

// K=V under RoPE: how attention's keys follow from the cached values — pair i turned by the angle
// position · frequencies[i] (pairs (i, i + d/2), or (2i, 2i + 1) when interleaved), cos and sin
// scaled by `scale`. All zeros: keys equal values (learned positions). Empty: no relation known.
struct KeyRotation {
    std::vector<float> frequencies;
    bool interleaved = false;
    float scale = 1.0f;
    bool empty() const { return frequencies.empty(); }
};

struct CompressedHead {
    int headDim = 0;
    // Kept tokens, in increasing original position. Log-weights are empty (all 0) or one per kept
    // token (ln w, stored fp16). Positions cost 4 bytes each unless they are exactly 0..m−1 with
    // m = contextLength (the identity: nothing to index).
    std::vector<std::int32_t> positions;
    std::vector<float> logWeights;
    int contextLength = 0; // n: tokens before compression

    enum class KeyForm { Dense, LowRank, Quantized } keyForm = KeyForm::Dense;
    Matrix keys; // Dense: m × d (post-RoPE, as attention uses them); LowRank: m × r coefficients
    Precision keyPrecision = Precision::F16;
    // LowRank: the d × r basis P, stored fp16 (metadata); a key is c · Pᵀ. Without a
    // keyRotation the coefficients are post-RoPE and a backend scores q̂ = q · P against them;
    // with one (values not shared) they are pre-RoPE latents and the key attention uses is
    // R(position) · (c · Pᵀ), rebuilt and rotated on load: memory saved, not bandwidth.
    Matrix queryProjection;
    // Quantized: with a keyRotation (values not shared) the codes are pre-RoPE keys, and the key
    // attention uses is R(position) · (minimum + scale · code), decoded and rotated on load.
    QuantizedMatrix quantizedKeys;

    enum class ValueForm { Dense, Quantized, SharedWithKeys } valueForm = ValueForm::Dense;
    // Dense (and SharedWithKeys, where this holds what attention multiplies by: for K=V models the
    // pre-RoPE keys, which are what is cached; they cost no extra bytes).
    Matrix values;
    Precision valuePrecision = Precision::F16;
    QuantizedMatrix quantizedValues;
    // SharedWithKeys: keys = R(position) · values. It lets a backend keep the one copy the cache
    // stores and rotate on load (the Vulkan kernels do). LowRank: see queryProjection.
    KeyRotation keyRotation;
    // Entropy-coded codecs: what the bitstreams really take, side information included. The
    // kernels read the decoded fixed-width codes (quantizedKeys/Values); bytes() reports the
    // coded size — the cache's rate — and deviceBytes() what the device holds.
    struct EntropyCoded {
        std::size_t keyStreamBytes = 0;
        std::size_t valueStreamBytes = 0;
        std::size_t sideBytes = 0;   // frequency tables, per-channel steps and offsets
        double keyEntropyBits = 0.0; // empirical entropy of the symbols × their count
        double valueEntropyBits = 0.0;
        std::size_t elements = 0; // symbols coded (keys + values)
        // The keys' share of `elements` and `sideBytes`. A stream of 0 bytes is not coded (a
        // codec after a key factorization codes the values only): its matrix counts as stored.
        std::size_t keyElements = 0;
        std::size_t keySideBytes = 0;
    };
    std::optional<EntropyCoded> entropyCoded;
    // Hadamard rotation before quantization (QuaRot's trick, ALGORITHMS.md §4): 0 = none, else
    // b, a power of two dividing d. The quantized keys and/or values hold x · H_b, with H_b the
    // block-diagonal normalized Walsh–Hadamard matrix — orthonormal and symmetric, its own
    // inverse. A backend rotates the queries alike (scores are unchanged) and un-rotates the
    // output. Rotating spreads a channel's outliers over its block before rounding; the
    // transform is fixed, so nothing more is stored.
    int hadamardBlock = 0;
    bool keysRotated() const { return hadamardBlock > 0 && keyForm == KeyForm::Quantized; }
    bool valuesRotated() const { return hadamardBlock > 0 && valueForm == ValueForm::Quantized; }
    // A codec's recent window (KIVI's full-precision residual): the last w kept tokens are stored
    // here, dense at fp16 (keys post-RoPE, as attention uses them), and the forms above hold only
    // the storedCount() = keptCount() − w tokens before them. positions and logWeights cover every
    // kept token. Empty (0 rows): no window. Not with values shared with the keys.
    Matrix recentKeys;   // w × d
    Matrix recentValues; // w × d_v
    int recentCount() const { return static_cast<int>(recentKeys.rows()); }
    int storedCount() const { return keptCount() - recentCount(); }
    // Empty when the scheme's own rule chose what is kept. Otherwise why the budget made it
    // degenerate — e.g. "budget 20 tokens < sinks 4 + window 32: cut to 4 + 16, nothing chosen":
    // what runs is then another method (sinks + window), and a chart or table must say so
    // (docs/schemes.md "Degenerate budgets"). Not part of the cache: costs no bytes.
    std::string degenerate;

    int keptCount() const { return static_cast<int>(positions.size()); }
    int keyRank() const;  // d for dense/quantized, r for low rank
    int valueDim() const; // columns of what attention multiplies by (d_v, usually d)
    // True when positions are exactly 0..m−1 with m = contextLength: no index is stored.
    bool isIdentityIndex() const;
    CacheBytes bytes() const;
    // What a backend stores: bytes() for every form but the entropy-coded, whose fixed-width
    // decoded codes it holds.
    CacheBytes deviceBytes() const;
    // Checks shapes and ranges; throws kvs::Error(InvalidArgument) naming the first problem.
    void validate() const;
};

// A head with a recent window as two heads over disjoint tokens: the older ones in the head's
// own form and the window as a dense fp16 head (no Hadamard block, no rotation on load). Attention
// over the head is the log-sum-exp merge of attention over the two (mergeRecentWindow in
// kvs/attention_backend.h): a backend whose kernels read one form per head runs both. Throws
// kvs::Error(InvalidArgument) on a head without a window or with a stored part of no tokens.
std::pair<CompressedHead, CompressedHead> splitRecentWindow(const CompressedHead& head);

// x ← x · H_b in place, every row on its own (the fast Walsh–Hadamard transform, normalized by
// 1/√b, so applying it twice gives x back). Throws kvs::Error(InvalidArgument) unless b is a
// power of two that divides x.cols().
void hadamardRotate(Matrix& x, int block);

// The keys attention uses where the cache holds pre-RoPE ones: K=V (from the values) or pre-RoPE
// low-rank latents (from c · Pᵀ), turned by position by the head's keyRotation (in double).
// Throws kvs::Error(InvalidArgument) when the head has no rotation or the shapes disagree.
Matrix rotatedKeys(const CompressedHead& head);
// True for low-rank keys cached before RoPE (rotated on load).
bool hasPreRopeLowRankKeys(const CompressedHead& head);
// True for quantized keys cached before RoPE (decoded, then rotated on load).
bool hasPreRopeQuantizedKeys(const CompressedHead& head);

// The identity scheme: every token kept, dense keys and values at `precision`.
CompressedHead exactHead(const Matrix& keys, const Matrix& values,
                         Precision precision = Precision::F32);
// fp16 baseline of DESIGN.md: 2 bytes · 2 · d per token.
std::size_t fp16BaselineBytes(int tokens, int headDim);

} // namespace kvs
