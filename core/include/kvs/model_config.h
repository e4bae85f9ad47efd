// SPDX-License-Identifier: MIT
// The model configuration, parsed from a Hugging Face config.json (GPT-2 and Llama families).
#pragma once

#include "kvs/status.h"

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kvs {

enum class Family { Gpt2, Llama };
enum class PositionKind { Learned, Rope };
enum class NormKind { LayerNorm, RmsNorm };
enum class MlpKind { Gelu, GeluTanh, SwiGlu }; // GPT-2 "gelu_new" = GeluTanh; Llama = SiLU-gated
// Which projections a model shares (ALGORITHMS.md §3); k_eq_v caches only keys.
enum class ProjectionSharing { Qkv, KEqV, QEqK, QEqKEqV };
// How RoPE pairs channels: HF Llama rotates (i, i + d/2); Meta's original layout rotates (2i,
// 2i+1).
enum class RopeLayout { HalfSplit, Interleaved };

struct RopeScaling {
    enum class Kind { None, Linear, Dynamic, Yarn, Llama3 } kind = Kind::None;
    double factor = 1.0;
    int originalMaxPositions = 0;          // yarn, llama3, dynamic: the pre-extension context
    double lowFreqFactor = 1.0;            // llama3
    double highFreqFactor = 4.0;           // llama3
    double betaFast = 32.0;                // yarn
    double betaSlow = 1.0;                 // yarn
    std::optional<double> attentionFactor; // yarn: explicit mscale on cos/sin
};

struct ModelConfig {
    std::string architecture; // "GPT2LMHeadModel", "LlamaForCausalLM", ...
    std::string modelType;    // "gpt2", "llama", "mistral", "qwen2"
    Family family = Family::Llama;
    int layers = 0;
    int heads = 0;   // query heads
    int kvHeads = 0; // key/value heads (GQA when < heads)
    int width = 0;   // hidden size
    int headDim = 0; // may differ from width / heads
    int intermediate = 0;
    int vocab = 0;
    int maxPositions = 0;
    PositionKind positions = PositionKind::Rope;
    double ropeTheta = 10000.0;
    RopeScaling ropeScaling;
    RopeLayout ropeLayout = RopeLayout::HalfSplit;
    NormKind norm = NormKind::RmsNorm;
    double normEps = 1e-5;
    MlpKind mlp = MlpKind::SwiGlu;
    bool tiedEmbeddings = false;
    bool qkvBias = false; // bias on the q/k/v projections (GPT-2, Qwen2, Llama attention_bias)
    bool outputBias =
        false; // bias on the attention output projection (GPT-2, Llama attention_bias)
    bool mlpBias = false;
    std::optional<int> slidingWindow; // Mistral / Qwen2 with use_sliding_window
    std::vector<bool> slidingLayers;  // per layer: does the window apply (all true for Mistral)
    ProjectionSharing sharing = ProjectionSharing::Qkv;
    // Thin keys: every KV head's key projection has rank keyRank (a QK fine-tune stored at full
    // size so other tools still load it; "kvstudio_key_rank" in config.json). 0: not declared.
    int keyRank = 0;
    // GPT-2 attention details
    bool scaleAttnWeights = true;
    bool scaleAttnByInverseLayerIdx = false;
    std::optional<int> bosTokenId, eosTokenId;

    int groupSize() const { return heads / kvHeads; }
    // The longest sequence the model accepts: max positions (times the factor for dynamic NTK RoPE,
    // whose config keeps the pre-extension length).
    int contextLimit() const;
    bool windowApplies(int layer) const {
        return slidingWindow && layer < static_cast<int>(slidingLayers.size()) &&
               slidingLayers[layer];
    }
    // Bytes of an fp16 K+V cache per token, as this model really stores it (K=V stores keys only).
    long long kvBytesPerTokenFp16() const;
    // Parameters implied by the configuration (embeddings counted once when tied).
    long long parameterCount() const;
    std::string summary() const; // one line, for logs

    nlohmann::json toJson() const; // the documented form used by `kvstudio-cli info --json`
};

std::string toString(Family f);
std::string toString(ProjectionSharing s);
std::string toString(RopeScaling::Kind k);
std::string toString(MlpKind m);
std::string toString(NormKind n);

// Parses config.json text; `source` names the file in error messages. Validates every field it
// needs and the relations between them (heads divisible by kv heads, etc.).
Result<ModelConfig> parseModelConfig(const nlohmann::json& json, const std::string& source);
Result<ModelConfig> loadModelConfig(const std::filesystem::path& configJson);

// Writes the config in Hugging Face's spelling (used by the generator and the trainer).
nlohmann::json toHfConfigJson(const ModelConfig& config);

} // namespace kvs
