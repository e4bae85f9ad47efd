// SPDX-License-Identifier: MIT
// Parsing Hugging Face config.json for the GPT-2 and Llama families, with every spelling we meet.
#include "kvs/model_config.h"

#include "kvs/file_util.h"

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <utility>

namespace kvs {
namespace {

using nlohmann::json;

// Reads typed fields of one JSON object and reports problems as "<source>: <key> ...".
class Fields {
public:
    Fields(const json& j, std::string source) : m_json(j), m_source(std::move(source)) {}

    [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
        throw Error(code, m_source + ": " + what);
    }

    bool has(const char* key) const { return m_json.contains(key) && !m_json.at(key).is_null(); }

    int requireInt(const char* key, int minimum = 1) const {
        if (!has(key))
            fail(ErrorCode::Missing, std::string("missing key \"") + key + "\"");
        return intAt(key, minimum);
    }
    int optInt(const char* key, int fallback, int minimum = 0) const {
        return has(key) ? intAt(key, minimum) : fallback;
    }
    std::optional<int> maybeInt(const char* key, int minimum = 0) const {
        if (!has(key))
            return std::nullopt;
        return intAt(key, minimum);
    }
    double optDouble(const char* key, double fallback) const {
        if (!has(key))
            return fallback;
        const double d = typed(key, &json::is_number, "a number").get<double>();
        if (!std::isfinite(d))
            fail(ErrorCode::Format, std::string("\"") + key + "\" must be finite");
        return d;
    }
    bool optBool(const char* key, bool fallback) const {
        return has(key) ? typed(key, &json::is_boolean, "true or false").get<bool>() : fallback;
    }
    std::string optString(const char* key, const std::string& fallback) const {
        return has(key) ? typed(key, &json::is_string, "a string").get<std::string>() : fallback;
    }
    const json& raw() const { return m_json; }
    const std::string& source() const { return m_source; }

private:
    // The value at `key` (present) when `isType` holds for it, else a Format error.
    const json& typed(const char* key, bool (json::*isType)() const noexcept,
                      const char* expected) const {
        const auto& v = m_json.at(key);
        if (!(v.*isType)())
            fail(ErrorCode::Format,
                 std::string("\"") + key + "\" must be " + expected + ", got " + v.dump());
        return v;
    }
    int intAt(const char* key, int minimum) const {
        const auto& v = m_json.at(key);
        if (!v.is_number_integer() &&
            !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
            fail(ErrorCode::Format,
                 std::string("\"") + key + "\" must be an integer, got " + v.dump());
        const double d = v.get<double>();
        if (d < minimum || d > 1e9)
            fail(ErrorCode::Format, std::string("\"") + key + "\" = " + v.dump() +
                                        " is out of range (" + std::to_string(minimum) +
                                        " to 1000000000)");
        return static_cast<int>(d);
    }
    const json& m_json;
    std::string m_source;
};

// Token ids may be an int, null, or a list (Llama 3 lists several eos ids): take the first.
std::optional<int> tokenIdField(const Fields& f, const char* key) {
    if (!f.has(key))
        return std::nullopt;
    const auto& v = f.raw().at(key);
    if (v.is_number_integer())
        return v.get<int>();
    if (v.is_array() && !v.empty() && v.front().is_number_integer())
        return v.front().get<int>();
    return std::nullopt;
}

RopeScaling parseRopeScaling(const json& rs, const std::string& source, const ModelConfig& c) {
    RopeScaling out;
    if (!rs.is_object())
        throw Error(ErrorCode::Format,
                    source + ": rope scaling must be an object, got " + rs.dump());
    const Fields f(rs, source + " (rope scaling)");
    // Both spellings: "type" (older) and "rope_type" (newer).
    std::string type = f.optString("rope_type", f.optString("type", "default"));
    if (type == "default" || type == "none") {
        out.kind = RopeScaling::Kind::None;
        return out;
    }
    out.factor = f.optDouble("factor", 1.0);
    if (out.factor <= 0)
        f.fail(ErrorCode::Format, "\"factor\" must be positive");
    if (type == "linear") {
        out.kind = RopeScaling::Kind::Linear;
    } else if (type == "dynamic") {
        out.kind = RopeScaling::Kind::Dynamic;
        out.originalMaxPositions = f.optInt("original_max_position_embeddings", c.maxPositions, 1);
    } else if (type == "yarn") {
        out.kind = RopeScaling::Kind::Yarn;
        if (f.has("original_max_position_embeddings")) {
            // As transformers does: the ratio of the two lengths is the factor that matters.
            out.originalMaxPositions = f.optInt("original_max_position_embeddings", 0, 1);
            out.factor = static_cast<double>(c.maxPositions) / out.originalMaxPositions;
        } else {
            out.originalMaxPositions = c.maxPositions;
        }
        out.betaFast = f.optDouble("beta_fast", 32.0);
        out.betaSlow = f.optDouble("beta_slow", 1.0);
        if (f.has("attention_factor"))
            out.attentionFactor = f.optDouble("attention_factor", 1.0);
        if (f.has("mscale") || f.has("mscale_all_dim"))
            f.fail(ErrorCode::Unsupported,
                   "yarn with mscale/mscale_all_dim (DeepSeek style) is not supported");
    } else if (type == "llama3") {
        out.kind = RopeScaling::Kind::Llama3;
        out.lowFreqFactor = f.optDouble("low_freq_factor", 1.0);
        out.highFreqFactor = f.optDouble("high_freq_factor", 4.0);
        if (!f.has("original_max_position_embeddings"))
            f.fail(ErrorCode::Missing,
                   "llama3 rope scaling needs \"original_max_position_embeddings\"");
        out.originalMaxPositions = f.optInt("original_max_position_embeddings", 0, 1);
        if (out.highFreqFactor <= out.lowFreqFactor)
            f.fail(ErrorCode::Format, "\"high_freq_factor\" must exceed \"low_freq_factor\"");
    } else {
        f.fail(ErrorCode::Unsupported,
               "rope scaling type \"" + type +
                   "\" is not supported (supported: default, linear, dynamic, yarn, llama3)");
    }
    return out;
}

// The config.json spelling of each sharing, for reading and writing.
constexpr std::array<std::pair<ProjectionSharing, std::string_view>, 4> kSharingNames{{
    {ProjectionSharing::Qkv, "qkv"},
    {ProjectionSharing::KEqV, "k_eq_v"},
    {ProjectionSharing::QEqK, "q_eq_k"},
    {ProjectionSharing::QEqKEqV, "q_eq_k_eq_v"},
}};

ProjectionSharing parseSharing(const Fields& f) {
    const std::string s = f.optString("kvstudio_projection_sharing", "qkv");
    std::string known;
    for (const auto& [sharing, name] : kSharingNames) {
        if (s == name)
            return sharing;
        known += (known.empty() ? "" : ", ") + std::string(name);
    }
    f.fail(ErrorCode::Unsupported,
           "\"kvstudio_projection_sharing\" = \"" + s + "\" is not one of " + known);
}

ModelConfig parseGpt2(const Fields& f, ModelConfig c) {
    c.family = Family::Gpt2;
    c.layers = f.requireInt("n_layer");
    c.heads = f.requireInt("n_head");
    c.kvHeads = c.heads;
    c.width = f.requireInt("n_embd");
    c.vocab = f.requireInt("vocab_size");
    c.maxPositions = f.has("n_positions") ? f.requireInt("n_positions") : f.requireInt("n_ctx");
    c.intermediate = f.optInt("n_inner", 4 * c.width, 1);
    c.positions = PositionKind::Learned;
    c.norm = NormKind::LayerNorm;
    c.normEps = f.optDouble("layer_norm_epsilon", 1e-5);
    if (c.normEps < 0) // the normalization would divide by the root of a negative number
        f.fail(ErrorCode::Format, "\"layer_norm_epsilon\" must not be negative, got " +
                                      f.raw().at("layer_norm_epsilon").dump());
    const std::string act = f.optString("activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
        c.mlp = MlpKind::GeluTanh;
    else if (act == "gelu")
        c.mlp = MlpKind::Gelu;
    else
        f.fail(ErrorCode::Unsupported, "activation_function \"" + act + "\" is not supported");
    c.tiedEmbeddings = f.optBool("tie_word_embeddings", true);
    c.qkvBias = c.outputBias = c.mlpBias = true;
    c.scaleAttnWeights = f.optBool("scale_attn_weights", true);
    c.scaleAttnByInverseLayerIdx = f.optBool("scale_attn_by_inverse_layer_idx", false);
    if (c.width % c.heads != 0)
        f.fail(ErrorCode::Format, "n_embd " + std::to_string(c.width) +
                                      " is not divisible by n_head " + std::to_string(c.heads));
    c.headDim = c.width / c.heads;
    return c;
}

ModelConfig parseLlamaFamily(const Fields& f, ModelConfig c) {
    c.family = Family::Llama;
    c.layers = f.requireInt("num_hidden_layers");
    c.heads = f.requireInt("num_attention_heads");
    c.kvHeads = f.optInt("num_key_value_heads", c.heads, 1);
    c.width = f.requireInt("hidden_size");
    c.vocab = f.requireInt("vocab_size");
    c.intermediate = f.requireInt("intermediate_size");
    c.maxPositions = f.requireInt("max_position_embeddings");
    c.headDim = f.optInt("head_dim", 0, 1);
    if (c.headDim == 0) {
        if (c.width % c.heads != 0)
            f.fail(ErrorCode::Format, "hidden_size " + std::to_string(c.width) +
                                          " is not divisible by num_attention_heads " +
                                          std::to_string(c.heads) + " and no head_dim is given");
        c.headDim = c.width / c.heads;
    }
    if (c.headDim % 2 != 0)
        f.fail(ErrorCode::Format,
               "head_dim " + std::to_string(c.headDim) + " must be even for RoPE");
    c.positions = PositionKind::Rope;
    c.norm = NormKind::RmsNorm;
    c.normEps = f.optDouble("rms_norm_eps", 1e-6);
    if (c.normEps < 0) // the normalization would divide by the root of a negative number
        f.fail(ErrorCode::Format,
               "\"rms_norm_eps\" must not be negative, got " + f.raw().at("rms_norm_eps").dump());
    const std::string act = f.optString("hidden_act", "silu");
    if (act != "silu" && act != "swish")
        f.fail(ErrorCode::Unsupported, "hidden_act \"" + act + "\" is not supported (silu)");
    c.mlp = MlpKind::SwiGlu;
    c.tiedEmbeddings = f.optBool("tie_word_embeddings", false);
    if (c.modelType == "qwen2") {
        c.qkvBias = true;
        c.outputBias = false;
    } else {
        const bool bias = f.optBool("attention_bias", false);
        c.qkvBias = c.outputBias = bias;
    }
    c.mlpBias = f.optBool("mlp_bias", false);

    // RoPE: "rope_theta" at the top with "rope_scaling", or the newer "rope_parameters" holding
    // both.
    c.ropeTheta = f.optDouble("rope_theta", 10000.0);
    if (f.has("rope_parameters")) {
        const auto& rp = f.raw().at("rope_parameters");
        if (!rp.is_object())
            f.fail(ErrorCode::Format, "\"rope_parameters\" must be an object");
        const Fields r(rp, f.source() + " (rope_parameters)");
        c.ropeTheta = r.optDouble("rope_theta", c.ropeTheta);
        c.ropeScaling = parseRopeScaling(rp, f.source(), c);
    } else if (f.has("rope_scaling")) {
        c.ropeScaling = parseRopeScaling(f.raw().at("rope_scaling"), f.source(), c);
    }
    if (c.ropeTheta <= 1.0)
        f.fail(ErrorCode::Format, "rope_theta must exceed 1");
    if (f.optDouble("partial_rotary_factor", 1.0) != 1.0)
        f.fail(ErrorCode::Unsupported, "partial_rotary_factor other than 1 is not supported");
    const std::string layout = f.optString("kvstudio_rope_layout", "half_split");
    if (layout == "interleaved")
        c.ropeLayout = RopeLayout::Interleaved;
    else if (layout != "half_split")
        f.fail(ErrorCode::Format, "\"kvstudio_rope_layout\" must be half_split or interleaved");

    // Sliding windows: Mistral applies its window everywhere; Qwen2 only with use_sliding_window,
    // on layers from max_window_layers on. An explicit "layer_types" list overrides both.
    std::optional<int> window = f.maybeInt("sliding_window", 1);
    int firstWindowLayer = 0;
    if (c.modelType == "qwen2") {
        if (!f.optBool("use_sliding_window", false))
            window.reset();
        firstWindowLayer = f.optInt("max_window_layers", c.layers, 0);
    }
    if (window) {
        c.slidingWindow = window;
        c.slidingLayers.assign(static_cast<std::size_t>(c.layers), false);
        for (int l = firstWindowLayer; l < c.layers; ++l)
            c.slidingLayers[static_cast<std::size_t>(l)] = true;
        if (f.has("layer_types") && f.raw().at("layer_types").is_array()) {
            const auto& lt = f.raw().at("layer_types");
            if (static_cast<int>(lt.size()) != c.layers)
                f.fail(ErrorCode::Format, "\"layer_types\" has " + std::to_string(lt.size()) +
                                              " entries for " + std::to_string(c.layers) +
                                              " layers");
            for (std::size_t l = 0; l < lt.size(); ++l)
                c.slidingLayers[l] =
                    lt[l].is_string() && lt[l].get<std::string>() == "sliding_attention";
        }
    }
    return c;
}

} // namespace

std::string toString(Family f) {
    return f == Family::Gpt2 ? "gpt2" : "llama";
}

std::string toString(ProjectionSharing s) {
    for (const auto& [sharing, name] : kSharingNames)
        if (sharing == s)
            return std::string(name);
    return "qkv";
}

std::string toString(RopeScaling::Kind k) {
    switch (k) {
    case RopeScaling::Kind::None:
        return "default";
    case RopeScaling::Kind::Linear:
        return "linear";
    case RopeScaling::Kind::Dynamic:
        return "dynamic";
    case RopeScaling::Kind::Yarn:
        return "yarn";
    case RopeScaling::Kind::Llama3:
        return "llama3";
    }
    return "default";
}

std::string toString(MlpKind m) {
    switch (m) {
    case MlpKind::Gelu:
        return "gelu";
    case MlpKind::GeluTanh:
        return "gelu_tanh";
    case MlpKind::SwiGlu:
        return "swiglu";
    }
    return "swiglu";
}

std::string toString(NormKind n) {
    return n == NormKind::LayerNorm ? "layernorm" : "rmsnorm";
}

int ModelConfig::contextLimit() const {
    if (positions == PositionKind::Rope && ropeScaling.kind == RopeScaling::Kind::Dynamic)
        return static_cast<int>(std::floor(maxPositions * ropeScaling.factor));
    return maxPositions;
}

long long ModelConfig::kvBytesPerTokenFp16() const {
    const bool valuesCached =
        !(sharing == ProjectionSharing::KEqV || sharing == ProjectionSharing::QEqKEqV);
    const long long perHead = 2LL * headDim * (valuesCached ? 2 : 1);
    return perHead * kvHeads * layers;
}

long long ModelConfig::parameterCount() const {
    const long long D = width, d = headDim, H = heads, Hkv = kvHeads, V = vocab, F = intermediate;
    long long attn = 0;
    const bool ownQ = sharing == ProjectionSharing::Qkv || sharing == ProjectionSharing::KEqV;
    const bool ownV = sharing == ProjectionSharing::Qkv || sharing == ProjectionSharing::QEqK;
    attn += ownQ ? D * H * d : 0;
    attn += D * Hkv * d;            // keys
    attn += ownV ? D * Hkv * d : 0; // values
    attn += H * d * D;              // output projection
    if (qkvBias)
        attn += (ownQ ? H * d : 0) + Hkv * d + (ownV ? Hkv * d : 0);
    if (outputBias)
        attn += D;
    const long long mlpParams = mlp == MlpKind::SwiGlu ? 3 * D * F + (mlpBias ? 2 * F + D : 0)
                                                       : 2 * D * F + (mlpBias ? F + D : 0);
    const long long normParams = norm == NormKind::LayerNorm ? 2 * D : D;
    long long total = layers * (attn + mlpParams + 2 * normParams) + normParams + V * D;
    if (!tiedEmbeddings)
        total += V * D;
    if (positions == PositionKind::Learned)
        total += static_cast<long long>(maxPositions) * D;
    return total;
}

std::string ModelConfig::summary() const {
    std::ostringstream ss;
    ss << architecture << ": " << layers << " layers, " << heads << " heads";
    if (kvHeads != heads)
        ss << " (" << kvHeads << " KV heads)";
    ss << ", width " << width << ", head dim " << headDim << ", vocab " << vocab;
    if (sharing != ProjectionSharing::Qkv)
        ss << ", sharing " << toString(sharing);
    if (keyRank > 0)
        ss << ", keys of rank " << keyRank;
    return ss.str();
}

nlohmann::json ModelConfig::toJson() const {
    json j = {
        {"architecture", architecture},
        {"model_type", modelType},
        {"family", toString(family)},
        {"layers", layers},
        {"heads", heads},
        {"kv_heads", kvHeads},
        {"group_size", groupSize()},
        {"width", width},
        {"head_dim", headDim},
        {"intermediate", intermediate},
        {"vocab", vocab},
        {"max_positions", maxPositions},
        {"context_limit", contextLimit()},
        {"positions", positions == PositionKind::Rope ? "rope" : "learned"},
        {"norm", toString(norm)},
        {"norm_eps", normEps},
        {"mlp", toString(mlp)},
        {"tied_embeddings", tiedEmbeddings},
        {"qkv_bias", qkvBias},
        {"output_bias", outputBias},
        {"mlp_bias", mlpBias},
        {"projection_sharing", toString(sharing)},
        {"key_rank", keyRank > 0 ? json(keyRank) : json(nullptr)},
        {"parameters", parameterCount()},
        {"kv_bytes_per_token_fp16", kvBytesPerTokenFp16()},
    };
    if (positions == PositionKind::Rope) {
        json rope = {{"theta", ropeTheta},
                     {"layout", ropeLayout == RopeLayout::HalfSplit ? "half_split" : "interleaved"},
                     {"scaling", toString(ropeScaling.kind)}};
        if (ropeScaling.kind != RopeScaling::Kind::None) {
            rope["factor"] = ropeScaling.factor;
            if (ropeScaling.originalMaxPositions > 0)
                rope["original_max_positions"] = ropeScaling.originalMaxPositions;
        }
        j["rope"] = rope;
    } else {
        j["rope"] = nullptr;
    }
    j["sliding_window"] = slidingWindow ? json(*slidingWindow) : json(nullptr);
    return j;
}

Result<ModelConfig> parseModelConfig(const nlohmann::json& j, const std::string& source) {
    return catchErrors([&]() -> ModelConfig {
        if (!j.is_object())
            throw Error(ErrorCode::Format, source + ": the configuration must be a JSON object");
        const Fields f(j, source);
        ModelConfig c;
        c.modelType = f.optString("model_type", "");
        if (f.has("architectures")) {
            const auto& a = j.at("architectures");
            if (!a.is_array() || a.empty() || !a.front().is_string())
                f.fail(ErrorCode::Format, "\"architectures\" must be a non-empty list of strings");
            c.architecture = a.front().get<std::string>();
        }
        static const std::map<std::string, std::string> kArchToType = {
            {"GPT2LMHeadModel", "gpt2"},   {"GPT2Model", "gpt2"},
            {"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"},
            {"Qwen2ForCausalLM", "qwen2"}, {"LlamaModel", "llama"},
        };
        if (c.modelType.empty()) {
            auto it = kArchToType.find(c.architecture);
            if (it == kArchToType.end())
                f.fail(ErrorCode::Missing,
                       "missing \"model_type\" and no known \"architectures\" entry");
            c.modelType = it->second;
        }
        if (c.architecture.empty()) {
            static const std::map<std::string, std::string> kTypeToArch = {
                {"gpt2", "GPT2LMHeadModel"},
                {"llama", "LlamaForCausalLM"},
                {"mistral", "MistralForCausalLM"},
                {"qwen2", "Qwen2ForCausalLM"}};
            auto it = kTypeToArch.find(c.modelType);
            c.architecture = it != kTypeToArch.end() ? it->second : c.modelType;
        }
        if (c.modelType == "gpt2")
            c = parseGpt2(f, c);
        else if (c.modelType == "llama" || c.modelType == "mistral" || c.modelType == "qwen2")
            c = parseLlamaFamily(f, c);
        else
            f.fail(ErrorCode::Unsupported,
                   "model_type \"" + c.modelType + "\" (" + c.architecture +
                       ") is not supported; supported: gpt2, llama, mistral, qwen2");
        if (c.kvHeads > c.heads || c.heads % c.kvHeads != 0)
            f.fail(ErrorCode::Format, std::to_string(c.heads) +
                                          " attention heads cannot be grouped over " +
                                          std::to_string(c.kvHeads) + " key/value heads");
        c.sharing = parseSharing(f);
        if ((c.sharing == ProjectionSharing::QEqK || c.sharing == ProjectionSharing::QEqKEqV) &&
            c.kvHeads != c.heads)
            f.fail(ErrorCode::Format,
                   "shared query-key projections need as many KV heads as heads");
        c.keyRank = f.optInt("kvstudio_key_rank", 0, 1);
        if (c.keyRank > c.headDim)
            f.fail(ErrorCode::Format, "\"kvstudio_key_rank\" = " + std::to_string(c.keyRank) +
                                          " exceeds the head dim " + std::to_string(c.headDim));
        c.bosTokenId = tokenIdField(f, "bos_token_id");
        c.eosTokenId = tokenIdField(f, "eos_token_id");
        return c;
    });
}

Result<ModelConfig> loadModelConfig(const std::filesystem::path& configJson) {
    return catchErrors([&]() -> ModelConfig {
        const std::string text = readFile(configJson, kMaxConfigBytes);
        checkJsonNesting(text, configJson.string());
        json j;
        try {
            j = json::parse(text);
        } catch (const json::exception& e) { // parse_error, or out_of_range for 1e505
            throw Error(ErrorCode::Format, configJson.string() + ": malformed JSON: " + e.what());
        }
        return parseModelConfig(j, configJson.string()).valueOrThrow();
    });
}

nlohmann::json toHfConfigJson(const ModelConfig& c) {
    json j;
    j["architectures"] = {c.architecture};
    j["model_type"] = c.modelType;
    j["vocab_size"] = c.vocab;
    // Explicit nulls: transformers' config classes default them (Llama to 1 and 2, GPT-2 to 50256),
    // which would make generate() stop at an ordinary character of a character-level model.
    j["bos_token_id"] = c.bosTokenId ? json(*c.bosTokenId) : json(nullptr);
    j["eos_token_id"] = c.eosTokenId ? json(*c.eosTokenId) : json(nullptr);
    j["tie_word_embeddings"] = c.tiedEmbeddings;
    j["torch_dtype"] = "float32";
    if (c.family == Family::Gpt2) {
        j["n_layer"] = c.layers;
        j["n_head"] = c.heads;
        j["n_embd"] = c.width;
        j["n_positions"] = c.maxPositions;
        j["n_ctx"] = c.maxPositions;
        j["n_inner"] = c.intermediate == 4 * c.width ? json(nullptr) : json(c.intermediate);
        j["activation_function"] = c.mlp == MlpKind::Gelu ? "gelu" : "gelu_new";
        j["layer_norm_epsilon"] = c.normEps;
        j["scale_attn_weights"] = c.scaleAttnWeights;
        j["scale_attn_by_inverse_layer_idx"] = c.scaleAttnByInverseLayerIdx;
        j["reorder_and_upcast_attn"] = false;
        j["resid_pdrop"] = 0.0;
        j["embd_pdrop"] = 0.0;
        j["attn_pdrop"] = 0.0;
    } else {
        j["num_hidden_layers"] = c.layers;
        j["num_attention_heads"] = c.heads;
        j["num_key_value_heads"] = c.kvHeads;
        j["hidden_size"] = c.width;
        j["head_dim"] = c.headDim;
        j["intermediate_size"] = c.intermediate;
        j["max_position_embeddings"] = c.maxPositions;
        j["rms_norm_eps"] = c.normEps;
        j["hidden_act"] = "silu";
        j["rope_theta"] = c.ropeTheta;
        j["attention_dropout"] = 0.0;
        if (c.modelType == "llama") {
            j["attention_bias"] = c.qkvBias;
            j["mlp_bias"] = c.mlpBias;
        }
        if (c.modelType == "qwen2") {
            j["use_sliding_window"] = c.slidingWindow.has_value();
            j["sliding_window"] = c.slidingWindow ? json(*c.slidingWindow) : json(nullptr);
            j["max_window_layers"] = c.layers;
        } else if (c.modelType == "mistral") {
            j["sliding_window"] = c.slidingWindow ? json(*c.slidingWindow) : json(nullptr);
        }
        const auto& rs = c.ropeScaling;
        if (rs.kind != RopeScaling::Kind::None) {
            json r = {{"rope_type", toString(rs.kind)}, {"factor", rs.factor}};
            if (rs.kind == RopeScaling::Kind::Llama3) {
                r["low_freq_factor"] = rs.lowFreqFactor;
                r["high_freq_factor"] = rs.highFreqFactor;
                r["original_max_position_embeddings"] = rs.originalMaxPositions;
            } else if (rs.kind == RopeScaling::Kind::Yarn) {
                r["beta_fast"] = rs.betaFast;
                r["beta_slow"] = rs.betaSlow;
                if (rs.attentionFactor)
                    r["attention_factor"] = *rs.attentionFactor;
            }
            j["rope_scaling"] = r;
        } else {
            j["rope_scaling"] = nullptr;
        }
        if (c.ropeLayout == RopeLayout::Interleaved)
            j["kvstudio_rope_layout"] = "interleaved";
    }
    if (c.sharing != ProjectionSharing::Qkv)
        j["kvstudio_projection_sharing"] = toString(c.sharing);
    if (c.keyRank > 0)
        j["kvstudio_key_rank"] = c.keyRank;
    return j;
}

} // namespace kvs
