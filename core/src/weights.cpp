// SPDX-License-Identifier: MIT
// Tensor names and shapes of Hugging Face GPT-2 / Llama checkpoints, validation, lazy conversion.
#include "weights.h"

#include "kvs/finite.h"
#include "kvs/status.h"

#include <cstdint>
#include <sstream>
#include <type_traits>

namespace kvs {
namespace {

std::string shapeString(const std::vector<std::int64_t>& shape) {
    std::ostringstream ss;
    ss << "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        ss << (i ? ", " : "") << shape[i];
    ss << "]";
    return ss.str();
}

} // namespace

bool ownsQuery(const ModelConfig& c) {
    return c.sharing == ProjectionSharing::Qkv || c.sharing == ProjectionSharing::KEqV;
}
bool ownsValue(const ModelConfig& c) {
    return c.sharing == ProjectionSharing::Qkv || c.sharing == ProjectionSharing::QEqK;
}

template <class S> std::size_t LayerWeights<S>::bytes() const {
    std::size_t n = 0;
    for (const auto* v :
         {&bq, &bk, &bv, &bo, &norm1, &norm1Bias, &norm2, &norm2Bias, &bUp, &bGate, &bDown})
        n += static_cast<std::size_t>(v->size());
    n *= sizeof(S);
    for (const auto* m : {&wq, &wk, &wv, &wo, &wUp, &wGate, &wDown})
        n += m->ownedBytes();
    return n;
}

TensorNames::TensorNames(const ModelConfig& config, const Checkpoint& checkpoint)
    : m_config(config) {
    const std::string probe = config.family == Family::Gpt2 ? "wte.weight" : "embed_tokens.weight";
    const std::string usual = config.family == Family::Gpt2 ? "transformer." : "model.";
    m_prefix = checkpoint.contains(usual + probe) || !checkpoint.contains(probe) ? usual : "";
}

std::string TensorNames::layer(int l, const std::string& suffix) const {
    const char* stem = m_config.family == Family::Gpt2 ? "h." : "layers.";
    return m_prefix + stem + std::to_string(l) + "." + suffix;
}

std::string TensorNames::global(const std::string& suffix) const {
    return m_prefix + suffix;
}

std::vector<TensorNames::Expected> TensorNames::expected() const {
    const auto& c = m_config;
    const std::int64_t D = c.width, V = c.vocab, F = c.intermediate;
    const std::int64_t Hd = static_cast<std::int64_t>(c.heads) * c.headDim;
    const std::int64_t KVd = static_cast<std::int64_t>(c.kvHeads) * c.headDim;
    std::vector<Expected> out;
    if (c.family == Family::Gpt2) {
        out.push_back({global("wte.weight"), {V, D}});
        out.push_back({global("wpe.weight"), {c.maxPositions, D}});
        for (int l = 0; l < c.layers; ++l) {
            for (const char* ln : {"ln_1", "ln_2"}) {
                out.push_back({layer(l, std::string(ln) + ".weight"), {D}});
                out.push_back({layer(l, std::string(ln) + ".bias"), {D}});
            }
            out.push_back({layer(l, "attn.c_attn.weight"), {D, 3 * D}});
            out.push_back({layer(l, "attn.c_attn.bias"), {3 * D}});
            out.push_back({layer(l, "attn.c_proj.weight"), {D, D}});
            out.push_back({layer(l, "attn.c_proj.bias"), {D}});
            out.push_back({layer(l, "mlp.c_fc.weight"), {D, F}});
            out.push_back({layer(l, "mlp.c_fc.bias"), {F}});
            out.push_back({layer(l, "mlp.c_proj.weight"), {F, D}});
            out.push_back({layer(l, "mlp.c_proj.bias"), {D}});
        }
        out.push_back({global("ln_f.weight"), {D}});
        out.push_back({global("ln_f.bias"), {D}});
    } else {
        out.push_back({global("embed_tokens.weight"), {V, D}});
        for (int l = 0; l < c.layers; ++l) {
            out.push_back({layer(l, "input_layernorm.weight"), {D}});
            out.push_back({layer(l, "post_attention_layernorm.weight"), {D}});
            // An attention projection's weight (rows × cols) and, where the model has one, its
            // bias (rows).
            const auto projection = [&](const std::string& name, std::int64_t rows,
                                        std::int64_t cols, bool bias) {
                out.push_back({layer(l, "self_attn." + name + ".weight"), {rows, cols}});
                if (bias)
                    out.push_back({layer(l, "self_attn." + name + ".bias"), {rows}});
            };
            if (ownsQuery(c))
                projection("q_proj", Hd, D, c.qkvBias);
            projection("k_proj", KVd, D, c.qkvBias);
            if (ownsValue(c))
                projection("v_proj", KVd, D, c.qkvBias);
            projection("o_proj", D, Hd, c.outputBias);
            out.push_back({layer(l, "mlp.gate_proj.weight"), {F, D}});
            out.push_back({layer(l, "mlp.up_proj.weight"), {F, D}});
            out.push_back({layer(l, "mlp.down_proj.weight"), {D, F}});
            if (c.mlpBias) {
                out.push_back({layer(l, "mlp.gate_proj.bias"), {F}});
                out.push_back({layer(l, "mlp.up_proj.bias"), {F}});
                out.push_back({layer(l, "mlp.down_proj.bias"), {D}});
            }
        }
        out.push_back({global("norm.weight"), {D}});
    }
    if (!c.tiedEmbeddings)
        out.push_back({lmHead(), {V, D}});
    return out;
}

void validateCheckpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                        const std::string& configSource) {
    const TensorNames names(config, checkpoint);
    // The last layer first: the list of expected tensors is as long as the config claims, and a
    // config that claims 1,000,000,000 layers must fail here, not after gigabytes of names.
    if (config.layers > 0) {
        const std::string last =
            names.layer(config.layers - 1,
                        config.family == Family::Gpt2 ? "ln_1.weight" : "input_layernorm.weight");
        if (!checkpoint.contains(last))
            throw Error(ErrorCode::Missing,
                        checkpoint.describe() + ": missing tensor '" + last + "' that " +
                            configSource + " implies (it says " + std::to_string(config.layers) +
                            " layers; the checkpoint holds " +
                            std::to_string(checkpoint.names().size()) + " tensors)");
    }
    for (const auto& e : names.expected()) {
        if (!checkpoint.contains(e.name))
            throw Error(ErrorCode::Missing, checkpoint.describe() + ": missing tensor '" + e.name +
                                                "' that " + configSource + " implies");
        const auto& info = checkpoint.info(e.name);
        const auto where = checkpoint.fileOf(e.name).path().string();
        if (!isFloating(info.dtype) || info.dtype == DType::F8E4M3 || info.dtype == DType::F8E5M2)
            throw Error(ErrorCode::Unsupported, where + ": tensor '" + e.name + "' has dtype " +
                                                    std::string(dtypeName(info.dtype)) +
                                                    "; weights must be F32, F16, BF16 or F64");
        if (info.shape != e.shape)
            throw Error(ErrorCode::Format, where + ": tensor '" + e.name + "' has shape " +
                                               shapeString(info.shape) + " but " + configSource +
                                               " implies " + shapeString(e.shape));
    }
}

template <class S>
WeightStore<S>::WeightStore(const ModelConfig& config, const Checkpoint& checkpoint,
                            std::size_t budgetBytes,
                            std::shared_ptr<const AttentionOverride> attention)
    : m_config(config), m_checkpoint(checkpoint), m_names(config, checkpoint),
      m_budget(budgetBytes), m_attention(std::move(attention)) {
    const auto& c = m_config;
    if (c.family == Family::Gpt2) {
        m_global.embed = matrix(m_names.global("wte.weight"), false);
        m_global.positions = matrix(m_names.global("wpe.weight"), false);
        m_global.finalNorm = vector(m_names.global("ln_f.weight"));
        m_global.finalNormBias = vector(m_names.global("ln_f.bias"));
    } else {
        m_global.embed = matrix(m_names.global("embed_tokens.weight"), false);
        m_global.finalNorm = vector(m_names.global("norm.weight"));
    }
    if (!c.tiedEmbeddings)
        m_global.lmHead = matrix(m_names.lmHead(), false);
}

template <class S>
WeightMatrix<S> WeightStore<S>::matrix(const std::string& name, bool transpose) const {
    const auto& info = m_checkpoint.info(name);
    const auto bytes = m_checkpoint.bytes(name);
    const auto rows = info.shape.size() > 0 ? info.shape[0] : 1;
    const auto cols = info.shape.size() > 1 ? info.shape[1] : 1;
    if constexpr (std::is_same_v<S, float>) {
        // Stored as the forward pass reads it: read it in place (checked, not copied).
        if (info.dtype == DType::F32 && !transpose &&
            reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(float) == 0) {
            const auto* data = reinterpret_cast<const float*>(bytes.data());
            auto view = WeightMatrix<S>::mapped(data, rows, cols, cols);
            if (!allFinite(data, static_cast<std::size_t>(rows * cols)))
                checkFinite(MatrixT<S>(view.view()), describeTensor(name)); // names the element
            return view;
        }
    }
    MatrixT<S> m(rows, cols);
    if constexpr (std::is_same_v<S, float>)
        convertToFloat(info.dtype, bytes.data(), static_cast<std::size_t>(m.size()), m.data());
    else
        convertToDouble(info.dtype, bytes.data(), static_cast<std::size_t>(m.size()), m.data());
    checkFinite(m, describeTensor(name)); // [row, col] as stored, before any transpose
    if (transpose)
        return WeightMatrix<S>(MatrixT<S>(m.transpose()));
    return WeightMatrix<S>(std::move(m));
}

template <class S> RowVectorT<S> WeightStore<S>::vector(const std::string& name) const {
    const auto& info = m_checkpoint.info(name);
    const auto bytes = m_checkpoint.bytes(name);
    RowVectorT<S> v(info.numel());
    if constexpr (std::is_same_v<S, float>)
        convertToFloat(info.dtype, bytes.data(), static_cast<std::size_t>(v.size()), v.data());
    else
        convertToDouble(info.dtype, bytes.data(), static_cast<std::size_t>(v.size()), v.data());
    checkFinite(v, describeTensor(name));
    return v;
}

template <class S> std::string WeightStore<S>::describeTensor(const std::string& name) const {
    return m_checkpoint.fileOf(name).path().string() + ": tensor '" + name + "'";
}

template <class S> std::shared_ptr<LayerWeights<S>> WeightStore<S>::convertLayer(int l) const {
    auto w = convertCheckpointLayer(l);
    if (m_attention) {
        const AttentionProjections& a = m_attention->at(static_cast<std::size_t>(l));
        w->wq = WeightMatrix<S>(a.wq.cast<S>());
        w->wk = WeightMatrix<S>(a.wk.cast<S>());
        w->wv = WeightMatrix<S>(a.wv.cast<S>());
        w->wo = WeightMatrix<S>(a.wo.cast<S>());
        w->bq = a.bq.cast<S>();
        w->bk = a.bk.cast<S>();
        w->bv = a.bv.cast<S>();
        w->bo = a.bo.cast<S>();
    }
    return w;
}

template <class S>
std::shared_ptr<LayerWeights<S>> WeightStore<S>::convertCheckpointLayer(int l) const {
    const auto& c = m_config;
    auto w = std::make_shared<LayerWeights<S>>();
    auto name = [&](const std::string& suffix) { return m_names.layer(l, suffix); };
    if (c.family == Family::Gpt2) {
        // Conv1D stores weights input-major already: [in, out].
        const WeightMatrix<S> qkv = matrix(name("attn.c_attn.weight"), false);
        const RowVectorT<S> qkvBias = vector(name("attn.c_attn.bias"));
        const Eigen::Index D = c.width;
        w->wq = qkv.middleCols(0, D);
        w->wk = qkv.middleCols(D, D);
        w->wv = qkv.middleCols(2 * D, D);
        w->bq = qkvBias.head(D);
        w->bk = qkvBias.segment(D, D);
        w->bv = qkvBias.tail(D);
        w->wo = matrix(name("attn.c_proj.weight"), false);
        w->bo = vector(name("attn.c_proj.bias"));
        w->norm1 = vector(name("ln_1.weight"));
        w->norm1Bias = vector(name("ln_1.bias"));
        w->norm2 = vector(name("ln_2.weight"));
        w->norm2Bias = vector(name("ln_2.bias"));
        w->wUp = matrix(name("mlp.c_fc.weight"), false);
        w->bUp = vector(name("mlp.c_fc.bias"));
        w->wDown = matrix(name("mlp.c_proj.weight"), false);
        w->bDown = vector(name("mlp.c_proj.bias"));
        return w;
    }
    // nn.Linear stores [out, in]; transpose once so the forward pass multiplies x · W.
    const auto projection = [&](const std::string& proj, auto& weight, auto& bias, bool hasBias) {
        weight = matrix(name("self_attn." + proj + ".weight"), true);
        if (hasBias)
            bias = vector(name("self_attn." + proj + ".bias"));
    };
    if (ownsQuery(c))
        projection("q_proj", w->wq, w->bq, c.qkvBias);
    projection("k_proj", w->wk, w->bk, c.qkvBias);
    if (ownsValue(c))
        projection("v_proj", w->wv, w->bv, c.qkvBias);
    projection("o_proj", w->wo, w->bo, c.outputBias);
    w->norm1 = vector(name("input_layernorm.weight"));
    w->norm2 = vector(name("post_attention_layernorm.weight"));
    w->wGate = matrix(name("mlp.gate_proj.weight"), true);
    w->wUp = matrix(name("mlp.up_proj.weight"), true);
    w->wDown = matrix(name("mlp.down_proj.weight"), true);
    if (c.mlpBias) {
        w->bGate = vector(name("mlp.gate_proj.bias"));
        w->bUp = vector(name("mlp.up_proj.bias"));
        w->bDown = vector(name("mlp.down_proj.bias"));
    }
    return w;
}

template <class S> std::shared_ptr<const LayerWeights<S>> WeightStore<S>::layer(int l) const {
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_cache.find(l); it != m_cache.end())
            return it->second;
    }
    std::shared_ptr<const LayerWeights<S>> converted = convertLayer(l);
    std::lock_guard lock(m_mutex);
    if (auto it = m_cache.find(l); it != m_cache.end())
        return it->second;
    // Keep it only while the resident total fits: larger models stream from the mapping.
    if (m_cachedBytes + converted->bytes() <= m_budget) {
        m_cachedBytes += converted->bytes();
        m_cache.emplace(l, converted);
    }
    return converted;
}

template <class S> std::size_t WeightStore<S>::convertedBytes() const {
    std::size_t n =
        m_global.embed.ownedBytes() + m_global.positions.ownedBytes() +
        m_global.lmHead.ownedBytes() +
        static_cast<std::size_t>(m_global.finalNorm.size() + m_global.finalNormBias.size()) *
            sizeof(S);
    std::lock_guard lock(m_mutex);
    return n + m_cachedBytes;
}

template struct LayerWeights<float>;
template struct LayerWeights<double>;
template class WeightStore<float>;
template class WeightStore<double>;

} // namespace kvs
