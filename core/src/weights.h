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

// A weight matrix as the forward pass reads it (input-major, row-major): either converted and
// owned, or a view of the memory-mapped checkpoint where the stored tensor already is that matrix
// (fp32, input-major: GPT-2's Conv1D weights and every embedding), so that it costs no copy and
// no resident memory beyond the page cache.
template <class S> class WeightMatrix {
public:
    using View = Eigen::Map<const MatrixT<S>, 0, Eigen::OuterStride<>>;
    WeightMatrix() = default;
    explicit WeightMatrix(MatrixT<S> owned) : m_owned(std::move(owned)) { pointAtOwned(); }
    // Rows × cols starting at `data`, consecutive rows `stride` elements apart; `data` must
    // outlive this (the checkpoint's mapping does: the store holds the checkpoint).
    static WeightMatrix mapped(const S* data, Eigen::Index rows, Eigen::Index cols,
                               Eigen::Index stride) {
        WeightMatrix w;
        w.m_data = data;
        w.m_rows = rows;
        w.m_cols = cols;
        w.m_stride = stride;
        return w;
    }
    WeightMatrix(const WeightMatrix& other) { *this = other; }
    WeightMatrix& operator=(const WeightMatrix& other) {
        if (this == &other)
            return *this;
        m_owned = other.m_owned;
        m_data = other.m_data;
        m_rows = other.m_rows;
        m_cols = other.m_cols;
        m_stride = other.m_stride;
        if (other.isOwned())
            pointAtOwned();
        return *this;
    }
    WeightMatrix(WeightMatrix&& other) noexcept { *this = std::move(other); }
    WeightMatrix& operator=(WeightMatrix&& other) noexcept {
        const bool owned = other.isOwned();
        m_owned = std::move(other.m_owned);
        m_data = other.m_data;
        m_rows = other.m_rows;
        m_cols = other.m_cols;
        m_stride = other.m_stride;
        if (owned)
            pointAtOwned();
        return *this;
    }

    View view() const { return View(m_data, m_rows, m_cols, Eigen::OuterStride<>(m_stride)); }
    Eigen::Index rows() const { return m_rows; }
    Eigen::Index cols() const { return m_cols; }
    Eigen::Index size() const { return m_rows * m_cols; }
    bool isOwned() const { return m_owned.size() != 0; }
    // Bytes this object holds itself (0 for a view of the mapping).
    std::size_t ownedBytes() const { return static_cast<std::size_t>(m_owned.size()) * sizeof(S); }
    // Columns [start, start + count): a view of the same memory when this is a view, else a copy.
    WeightMatrix middleCols(Eigen::Index start, Eigen::Index count) const {
        if (!isOwned())
            return mapped(m_data + start, m_rows, count, m_stride);
        return WeightMatrix(MatrixT<S>(view().middleCols(start, count)));
    }

private:
    void pointAtOwned() {
        m_data = m_owned.data();
        m_rows = m_owned.rows();
        m_cols = m_owned.cols();
        m_stride = m_owned.cols();
    }
    MatrixT<S> m_owned;
    const S* m_data = nullptr;
    Eigen::Index m_rows = 0, m_cols = 0, m_stride = 0;
};

template <class S> struct LayerWeights {
    // D×(H·d), D×(Hkv·d), D×(Hkv·d), (H·d)×D; wq/wv empty when shared
    WeightMatrix<S> wq, wk, wv, wo;
    RowVectorT<S> bq, bk, bv, bo;      // empty when the model has no such bias
    RowVectorT<S> norm1, norm1Bias;    // attention norm (bias only for LayerNorm)
    RowVectorT<S> norm2, norm2Bias;    // MLP norm
    WeightMatrix<S> wUp, wGate, wDown; // D×F, D×F (SwiGLU only), F×D
    RowVectorT<S> bUp, bGate, bDown;   // empty when no MLP bias
    std::size_t bytes() const;         // what the layer holds itself (views of the mapping: 0)
};

template <class S> struct GlobalWeights {
    WeightMatrix<S> embed;     // V×D token embeddings
    WeightMatrix<S> positions; // P×D learned positions (GPT-2), else empty
    RowVectorT<S> finalNorm, finalNormBias;
    WeightMatrix<S> lmHead; // V×D when untied, else empty (the embedding is used)
    const WeightMatrix<S>& outputMatrix() const { return lmHead.size() ? lmHead : embed; }
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
    // Bytes of converted weights held now: the global ones and the cached layers (views of the
    // mapping count nothing).
    std::size_t convertedBytes() const;

private:
    std::shared_ptr<LayerWeights<S>> convertLayer(int l) const;
    std::shared_ptr<LayerWeights<S>> convertCheckpointLayer(int l) const;
    WeightMatrix<S> matrix(const std::string& name, bool transpose) const;
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
