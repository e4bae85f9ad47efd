// SPDX-License-Identifier: MIT
// A loaded transformer (GPT-2 or Llama family) with a CPU forward pass in Eigen that can capture
// every layer's queries, keys and values. Weights stay memory-mapped; each layer is converted to
// fp32 when first used and kept only while the converted total fits the weight budget.
#pragma once

#include "kvs/capture.h"
#include "kvs/model_config.h"
#include "kvs/safetensors.h"
#include "kvs/status.h"
#include "kvs/tensor.h"
#include "kvs/tokenizer.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvs {

struct LoadOptions {
    // Converted fp32 weights kept resident up to this many bytes; beyond it a layer is converted
    // from the mapping each time it is used. 0 = choose from the machine's memory (a quarter).
    std::size_t weightBudgetBytes = 0;
    // Memory the model may use, for the up-front checks of load() and capture(). 0 = what the
    // machine has available when the check runs (MemAvailable).
    std::uint64_t memoryLimitBytes = 0;
    // The configuration, the checkpoint's header and the tokenizer only: no weight is converted
    // or checked and no memory is reserved (what `kvstudio-cli info` needs: describing a 16 GB
    // checkpoint took 11 s and 6 GB when it converted the embeddings). Running such a model
    // (forward, capture, attentionProjections, ...) throws InvalidArgument.
    bool describeOnly = false;
};

// Bytes the machine can give a new allocation without swapping (Linux: MemAvailable).
std::uint64_t availableMemoryBytes();

// What running a model needs resident, from its configuration alone (fp32 as the forward pass
// converts it), so that a model or prompt that cannot fit is refused before anything is allocated.
struct MemoryNeed {
    std::uint64_t globalWeights = 0; // embeddings, learned positions, output head, final norm
    std::uint64_t largestLayer = 0;  // one layer's weights (they are converted layer by layer)
    std::uint64_t capture = 0;       // a capture of `tokens` tokens (every layer's tensors)
    std::uint64_t activations = 0;   // the forward pass's working buffers at `tokens` tokens
    std::uint64_t total() const { return globalWeights + largestLayer + capture + activations; }
};
MemoryNeed memoryNeed(const ModelConfig& config, int tokens, bool logits = false);

// Which positions' logits a forward pass computes: the output head is its largest product
// (vocabulary × width per row), so passes that only fill a cache or a capture skip it.
enum class LogitRows { All, Last, None };

struct CaptureOptions {
    bool logits = false; // keep every position's logits in the capture (Capture::logits)
    // Checked before every layer: once set, the capture stops with ErrorCode::Cancelled (a
    // billion-parameter model takes minutes; the studio's Cancel sets it).
    const std::atomic<bool>* cancel = nullptr;
    // Called on the capturing thread after every layer with (layers done, layers).
    std::function<void(int, int)> progress = {};
};

// Keys and values of every layer for the tokens seen so far (what incremental decoding reuses).
template <class Scalar> struct KvCacheT {
    struct Head {
        MatrixT<Scalar> keys;   // positions × headDim (post-RoPE)
        MatrixT<Scalar> values; // positions × headDim
    };
    std::vector<std::vector<Head>> layers; // [layer][kvHead]
    int length = 0;                        // tokens cached
};
using KvCache = KvCacheT<float>;

// Attention over the first `contextLength()` cached positions supplied from elsewhere (a
// compressed context cache, DESIGN.md's protocol): the forward pass then attends exactly only to
// the positions after the context and merges the two parts through their log-sum-exp.
class ContextAttention {
public:
    virtual ~ContextAttention() = default;
    virtual int contextLength() const = 0;
    // Layer `layer`, query heads' queries `queries[h]` (new tokens × headDim, post-RoPE), all of
    // which come after the context. Fills per query head the output over the context and ln of
    // its softmax normalizer. Returns false to let the forward pass attend exactly in this layer.
    virtual bool attend(int layer, const std::vector<Matrix>& queries, float scale,
                        std::vector<Matrix>& outputs,
                        std::vector<std::vector<float>>& logSumExp) const = 0;
};

// One layer's attention projections in fp32, input-major (x · W): W_q D×(H·d), W_k and W_v
// D×(Hkv·d), W_o (H·d)×D; head h owns columns [h·d, (h+1)·d). Under shared projections the
// copies a model does not own are empty (W_q for Q=K, W_v for K=V), as are absent biases.
// What a weight-transforming scheme (post-hoc sharing, weight SVD) reads and rewrites.
struct AttentionProjections {
    Matrix wq, wk, wv, wo;
    RowVector bq, bk, bv, bo;
};

template <class S> class WeightStore; // weights.h (internal)

class Model {
public:
    // Loads config.json, the safetensors checkpoint (single or sharded) and the tokenizer if
    // present. Checks that every tensor the config implies exists with the implied shape.
    static Result<Model> load(const std::filesystem::path& folder, LoadOptions options = {});

    const ModelConfig& config() const;
    const std::filesystem::path& folder() const;
    const Checkpoint& checkpoint() const;
    const Tokenizer* tokenizer() const; // nullptr when the folder has none
    std::string name() const;           // the folder's name

    // Runs `tokens` through the model after the `cache->length` tokens already in the cache (if
    // any), appending to the cache. Returns the logits of `rows` (all: tokens × vocab; last:
    // 1 × vocab; none: empty). When `capture` is given its layers are filled for these tokens.
    // Throws kvs::Error for ids out of range or too many tokens.
    Matrix forward(std::span<const TokenId> tokens, KvCache* cache = nullptr,
                   Capture* capture = nullptr, LogitRows rows = LogitRows::All) const;
    // forward() with the context part of every layer's attention from `context`; `cache` must
    // hold at least context.contextLength() tokens (the exact prefill).
    Matrix forwardWithContext(std::span<const TokenId> tokens, KvCache& cache,
                              const ContextAttention& context) const;
    // The same computation in double precision (for accuracy checks against the fp32 path).
    MatrixT<double> forwardF64(std::span<const TokenId> tokens) const;

    // Bytes of fp32 weights converted and held now (embeddings, cached layers). fp32 tensors
    // stored as the forward pass reads them (GPT-2's, every embedding) are read from the mapped
    // checkpoint in place and count nothing.
    std::size_t convertedWeightBytes() const;

    // Layer `layer`'s attention projections (a copy).
    AttentionProjections attentionProjections(int layer) const;
    // The same model with every layer's attention projections replaced and the config they imply
    // (fewer KV heads, values shared with keys): embeddings, norms and MLPs stay the original's.
    // The result shares the checkpoint and tokenizer. Throws kvs::Error(InvalidArgument) when
    // the projections' shapes disagree with `config`.
    Model withAttention(ModelConfig config, std::vector<AttentionProjections> layers) const;

    // Tokenizes `prompt` and captures it. Errors: no tokenizer, empty prompt, too long, more
    // memory than the machine has (ErrorCode::OutOfMemory, with the numbers, before running).
    Result<Capture> capture(std::string_view prompt, CaptureOptions options = {}) const;
    Result<Capture> captureTokens(std::vector<TokenId> tokens, CaptureOptions options = {}) const;
    // Greedy decoding of `count` new tokens after `prompt` using the KV cache.
    Result<std::vector<TokenId>> generateGreedy(std::span<const TokenId> prompt, int count) const;

    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model();

    struct Impl;

private:
    explicit Model(std::shared_ptr<Impl> impl);
    // The converted weights; throws for a model loaded with LoadOptions::describeOnly.
    const WeightStore<float>& weights() const;
    std::shared_ptr<Impl> m_impl;
};

// Checks a token sequence against the model: non-empty, ids within vocabulary, not longer than the
// model's positions. `source` names where the tokens came from, for the message.
void validateTokens(const ModelConfig& config, std::span<const TokenId> tokens,
                    const std::string& source);

} // namespace kvs
