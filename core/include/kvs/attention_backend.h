// SPDX-License-Identifier: MIT
// Attention over compressed heads (ALGORITHMS.md §0): ŝ_j = <q̂, k̂_j>/√d + b_j, p̂ = softmax(ŝ),
// ô = Σ p̂_j v̂_j. CpuBackend (Eigen) is the reference; the Vulkan backend in gpu/ implements the
// same interface and is checked against it.
#pragma once

#include "kvs/compressed_head.h"
#include "kvs/status.h"
#include "kvs/tensor.h"

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace kvs {

struct AttendOptions {
    // Causal masking by original position: query i sees kept token j iff positions[j] <=
    // queryPositions[i]. Empty: every query sees every kept token (probe queries after the
    // context).
    std::vector<std::int32_t> queryPositions;
    bool wantProbabilities = false; // fill AttendResult::probabilities (queries × kept)
    bool wantScores = false;        // fill AttendResult::scores (pre-softmax ŝ incl. bias)
    float scale = 0.0f;             // 0 = 1/√headDim (of the original d, also for low rank)
};

struct DispatchTiming {
    std::string kernel; // e.g. "probe_attention_split", "combine"
    double microseconds = 0.0;
    std::size_t bytesRead = 0;
    std::size_t bytesWritten = 0;
};

// Device memory one attend / attendLayer call allocated, as the device reports it (Vulkan:
// VkMemoryRequirements::size of each buffer, so alignment and driver padding are included).
// The cache roles hold what the CompressedHeads store, laid out for the kernels (fp16 pairs,
// packed codes, per-head starts on 16 bytes); scratch is the queries, split partials and outputs
// of the call. All zero on the CPU backend, which reads the CompressedHeads where they are.
struct DeviceAllocation {
    std::size_t keys = 0;     // key rows or codes + key scales
    std::size_t values = 0;   // value rows or codes + value scales
    std::size_t metadata = 0; // positions, log-weight bias, per-head offset table
    std::size_t scratch = 0;  // queries, query positions, partials, outputs, maps
    int buffers = 0;          // buffers (= allocations) behind these bytes
    // Of `values`: K=V heads' values uploaded beside their keys although the cache stores them
    // once — heads without a KeyRotation, whose keys the kernels cannot derive from the values.
    std::size_t sharedValueCopy = 0;
    std::size_t cache() const { return keys + values + metadata; }
    // Inline: views sum result types without linking core (kvs_core_api).
    DeviceAllocation& operator+=(const DeviceAllocation& o) {
        keys += o.keys;
        values += o.values;
        metadata += o.metadata;
        scratch += o.scratch;
        buffers += o.buffers;
        sharedValueCopy += o.sharedValueCopy;
        return *this;
    }
};

struct AttendResult {
    Matrix outputs;               // queries × d_v
    std::vector<float> logSumExp; // per query: ln Σ_j exp(ŝ_j) (merges partial attentions exactly)
    Matrix probabilities;         // when asked: queries × kept (0 where masked)
    Matrix scores;                // when asked: queries × kept (-inf where masked)
    // Empty on the CPU backend. attendLayer: the whole layer's dispatches are in the first result.
    std::vector<DispatchTiming> timings;
    double wallMicroseconds = 0.0;
    // What the backend allocated on the device for the call (attendLayer: in the first result).
    DeviceAllocation allocation;
};

// One layer: `heads[h]` is KV head h; `queries[q]` the queries of query head q, which reads KV
// head q / groupSize (grouped-query mapping). Results are per query head.
struct LayerAttendRequest {
    std::span<const CompressedHead> heads;
    std::span<const Matrix> queries;
    int groupSize = 1;
    AttendOptions options;
};

class AttentionBackend {
public:
    virtual ~AttentionBackend() = default;
    virtual std::string name() const = 0;    // "CPU (Eigen)", or the Vulkan device name
    virtual bool isCpuEmulation() const = 0; // true for the CPU backend and for lavapipe
    virtual Result<AttendResult> attend(const CompressedHead& head, const Matrix& queries,
                                        const AttendOptions& options) = 0;
    // All heads of a layer (one dispatch on the GPU).
    virtual Result<std::vector<AttendResult>> attendLayer(const LayerAttendRequest& request) = 0;
};

// The reference. Computes in fp32 with coefficient-wise products (Eigen lazyProduct), so the
// identity scheme equals S = Q.lazyProduct(Kᵀ)·scale, row softmax (subtract max, exp, divide by
// the sum), O = P.lazyProduct(V) bit for bit, whatever the OpenMP thread count.
std::unique_ptr<AttentionBackend> makeCpuBackend();

// The score scale a backend uses: options.scale, or 1/√headDim when it is 0.
float attentionScale(const CompressedHead& head, const AttendOptions& options);
// Throws Error(InvalidArgument) unless queries.size() == heads.size() · groupSize ≥ 1 · 1.
void checkLayerRequest(const LayerAttendRequest& request);

// Merges two attentions over disjoint key sets (e.g. compressed context + exact probe keys):
// o = (e^{l1} o1 + e^{l2} o2) / (e^{l1} + e^{l2}).
void mergeAttention(Matrix& outputs, std::vector<float>& logSumExp, const Matrix& otherOutputs,
                    const std::vector<float>& otherLogSumExp);

// Attention over a head with a recent window from attention over its two parts
// (splitRecentWindow): outputs and ln Σ merged, probabilities rescaled to the whole head's
// softmax and scores concatenated (older tokens first, as the head's positions run), timings and
// device allocation added up.
void mergeRecentWindow(AttendResult& older, const AttendResult& recent);

} // namespace kvs
