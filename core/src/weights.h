// SPDX-License-Identifier: MIT
// Model weights converted from the mapped checkpoint to Scalar, stored input-major (x · W), one
// layer at a time, cached while the converted total fits the budget.
#pragma once

#include "kvs/model.h"
#include "kvs/model_config.h"
#include "kvs/safetensors.h"
#include "kvs/tensor.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kvs {

template <class S> struct LayerWeights {
    MatrixT<S> wq, wk, wv, wo; // D×(H·d), D×(Hkv·d), D×(Hkv·d), (H·d)×D; wq/wv empty when shared
    RowVectorT<S> bq, bk, bv, bo;    // empty when the model has no such bias
    RowVectorT<S> norm1, norm1Bias;  // attention norm (bias only for LayerNorm)
    RowVectorT<S> norm2, norm2Bias;  // MLP norm
    MatrixT<S> wUp, wGate, wDown;    // D×F, D×F (SwiGLU only), F×D
    RowVectorT<S> bUp, bGate, bDown; // empty when no MLP bias
    std::size_t bytes() const;
};

template <class S> struct GlobalWeights {
    MatrixT<S> embed;     // V×D token embeddings
    MatrixT<S> positions; // P×D learned positions (GPT-2), else empty
    RowVectorT<S> finalNorm, finalNormBias;
    MatrixT<S> lmHead; // V×D when untied, else empty (the embedding is used)
    const MatrixT<S>& outputMatrix() const { return lmHead.size() ? lmHead : embed; }
};

// Names of a model's tensors in Hugging Face checkpoints, with the prefix found in the file
// ("transformer." or none for GPT-2, "model." or none for Llama).
class TensorNames {
public:
    TensorNames(const ModelConfig& config, const Checkpoint& checkpoint);
    // Every tensor the config implies, with its expected shape (row-major, as stored).
    struct Expected {
        std::string name;
        std::vector<std::int64_t> shape;
    };
    std::vector<Expected> expected() const;
    std::string layer(int l, const std::string& suffix) const;
    std::string global(const std::string& suffix) const;
    std::string lmHead() const { return "lm_head.weight"; }

private:
    const ModelConfig& m_config;
    std::string m_prefix;
};

// Checks that every expected tensor exists with the expected shape and a floating dtype. Throws one
// kvs::Error naming the folder/file, the tensor and the problem.
void validateCheckpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                        const std::string& configSource);

// Whether the config's model has its own query / value projection (not shared with the keys).
bool ownsQuery(const ModelConfig& config);
bool ownsValue(const ModelConfig& config);

// Replaces a converted layer's attention projections (fp32 stores of rewritten models).
using AttentionOverride = std::vector<AttentionProjections>;

template <class S> class WeightStore {
public:
    // `config` is the checkpoint's own (tensor names and shapes); with `attention` given, layer l's
    // projections are replaced by attention[l] after conversion.
    WeightStore(const ModelConfig& config, const Checkpoint& checkpoint, std::size_t budgetBytes,
                std::shared_ptr<const AttentionOverride> attention = nullptr);

    const GlobalWeights<S>& global() const { return m_global; }
    // Converted weights of layer l: from the cache, or freshly converted (and cached if within
    // budget).
    std::shared_ptr<const LayerWeights<S>> layer(int l) const;

private:
    std::shared_ptr<LayerWeights<S>> convertLayer(int l) const;
    std::shared_ptr<LayerWeights<S>> convertCheckpointLayer(int l) const;
    MatrixT<S> matrix(const std::string& name, bool transpose) const;
    RowVectorT<S> vector(const std::string& name) const;
    std::string describeTensor(const std::string& name) const; // "FILE: tensor 'NAME'"

    const ModelConfig& m_config;
    const Checkpoint& m_checkpoint;
    TensorNames m_names;
    std::size_t m_budget;
    GlobalWeights<S> m_global;
    mutable std::mutex m_mutex;
    mutable std::map<int, std::shared_ptr<const LayerWeights<S>>> m_cache;
    mutable std::size_t m_cachedBytes = 0;
    std::shared_ptr<const AttentionOverride> m_attention;
};

} // namespace kvs
