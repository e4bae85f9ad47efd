// SPDX-License-Identifier: MIT
#include "kvs/capacity.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

namespace kvs {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The fields of each model's published config.json that the planner reads, in Hugging Face's
// spelling, so the same parser (and its validation) reads them as it reads a model folder.
struct PresetSource {
    const char* id;
    const char* name;
    const char* repository;
    const char* configJson;
};

const PresetSource kPresetSources[] = {
    {"gpt2", "GPT-2 (124M)", "openai-community/gpt2",
     R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768,
         "n_head": 12, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257,
         "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new"})"},
    {"llama-2-7b", "Llama-2-7B", "meta-llama/Llama-2-7b-hf",
     R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
         "intermediate_size": 11008, "max_position_embeddings": 4096, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 32, "rms_norm_eps": 1e-05,
         "tie_word_embeddings": false, "vocab_size": 32000, "hidden_act": "silu"})"},
    {"mistral-7b-v0.1", "Mistral-7B v0.1", "mistralai/Mistral-7B-v0.1",
     R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
         "intermediate_size": 14336, "max_position_embeddings": 32768, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
         "vocab_size": 32000, "hidden_act": "silu"})"},
    {"mistral-7b-v0.3", "Mistral-7B v0.3", "mistralai/Mistral-7B-v0.3",
     R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
         "intermediate_size": 14336, "max_position_embeddings": 32768, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_theta": 1000000.0, "sliding_window": null, "tie_word_embeddings": false,
         "vocab_size": 32768, "hidden_act": "silu"})"},
    {"llama-3-8b", "Llama-3-8B", "meta-llama/Meta-Llama-3-8B",
     R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
         "intermediate_size": 14336, "max_position_embeddings": 8192, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_theta": 500000.0, "tie_word_embeddings": false, "vocab_size": 128256,
         "hidden_act": "silu"})"},
    {"llama-3-70b", "Llama-3-70B", "meta-llama/Meta-Llama-3-70B",
     R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
         "intermediate_size": 28672, "max_position_embeddings": 8192, "num_attention_heads": 64,
         "num_hidden_layers": 80, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_theta": 500000.0, "tie_word_embeddings": false, "vocab_size": 128256,
         "hidden_act": "silu"})"},
    {"qwen2.5-7b", "Qwen2.5-7B", "Qwen/Qwen2.5-7B",
     R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
         "intermediate_size": 18944, "max_position_embeddings": 131072, "max_window_layers": 28,
         "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
         "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
         "use_sliding_window": false, "tie_word_embeddings": false, "vocab_size": 152064,
         "hidden_act": "silu"})"},
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The planner's numbers are finite sizes; a typed NaN or infinity must not pass a range check.
void requireRange(double value, double lo, double hi, const std::string& what,
                  const std::string& allowed) {
    if (!std::isfinite(value) || value < lo || value > hi)
        throw Error(ErrorCode::InvalidArgument,
                    what + " " + (std::isfinite(value) ? std::to_string(value) : "non-finite") +
                        " is outside " + allowed);
}

// The longest context whose cache fits in `bytes` (the window applied), by bisection on the
// monotone bytes-per-user; `limit` bounds the search.
long long longestContextWithin(const ModelConfig& model, double elementBytes,
                               const CapacitySetting& setting, double bytes, long long limit) {
    if (bytes <= 0 || cacheBytesPerUser(model, 1, elementBytes, setting) > bytes)
        return 0;
    if (cacheBytesPerUser(model, limit, elementBytes, setting) <= bytes)
        return -1;                // a sliding window on every layer: the cache stops growing
    long long lo = 1, hi = limit; // fits at lo, not at hi
    while (hi - lo > 1) {
        const long long mid = lo + (hi - lo) / 2;
        (cacheBytesPerUser(model, mid, elementBytes, setting) <= bytes ? lo : hi) = mid;
    }
    return lo;
}

} // namespace

const std::vector<CapacityPreset>& capacityPresets() {
    static const std::vector<CapacityPreset> presets = [] {
        std::vector<CapacityPreset> out;
        for (const PresetSource& s : kPresetSources) {
            auto config = parseModelConfig(nlohmann::json::parse(s.configJson),
                                           std::string("capacity preset ") + s.id);
            out.push_back({s.id, s.name, s.repository, std::move(config).value()});
        }
        return out;
    }();
    return presets;
}

const CapacityPreset* findCapacityPreset(std::string_view id) {
    const std::string wanted = lower(id);
    for (const CapacityPreset& p : capacityPresets())
        if (p.id == wanted)
            return &p;
    return nullptr;
}

namespace {

// Bytes of one stored element per dtype name, and whether weights and the cache may use it
// (packed int4 weights, scales not counted; no int4 cache).
struct DtypeBytes {
    std::string_view name;
    double bytes;
    bool weights;
    bool cache;
};
constexpr DtypeBytes kDtypes[] = {
    {"fp32", 4.0, true, true}, {"f32", 4.0, true, true},   {"fp16", 2.0, true, true},
    {"f16", 2.0, true, true},  {"bf16", 2.0, true, true},  {"int8", 1.0, true, true},
    {"fp8", 1.0, true, true},  {"int4", 0.5, true, false},
};

double dtypeBytes(std::string_view dtype, bool forWeights) {
    const std::string d = lower(dtype);
    for (const DtypeBytes& t : kDtypes)
        if (t.name == d)
            return (forWeights ? t.weights : t.cache) ? t.bytes : 0.0;
    return 0.0;
}

} // namespace

double weightBytesPerParameter(std::string_view dtype) {
    return dtypeBytes(dtype, true);
}

double cacheBytesPerElement(std::string_view dtype) {
    return dtypeBytes(dtype, false);
}

std::string gibText(double bytes) {
    std::ostringstream ss;
    ss.setf(std::ios::fixed);
    ss.precision(std::abs(bytes) >= 10 * kGiB ? 1 : 2);
    ss << bytes / kGiB << " GiB";
    return ss.str();
}

double cacheBytesPerUser(const ModelConfig& model, long long context, double elementBytes,
                         const CapacitySetting& setting) {
    const bool valuesCached =
        !(model.sharing == ProjectionSharing::KEqV || model.sharing == ProjectionSharing::QEqKEqV);
    const double perHeadToken =
        static_cast<double>(model.headDim) * elementBytes *
        (setting.keyFraction + (valuesCached ? setting.valueFraction : 0.0));
    double bytes = 0.0;
    for (int layer = 0; layer < model.layers; ++layer) {
        const long long tokens = model.windowApplies(layer)
                                     ? std::min<long long>(context, *model.slidingWindow)
                                     : context;
        bytes += perHeadToken * model.kvHeads * static_cast<double>(tokens);
    }
    return bytes;
}

Result<CapacityReport> planCapacity(const CapacityInputs& in) {
    return catchErrors([&]() -> CapacityReport {
        const ModelConfig& m = in.model;
        if (m.layers <= 0 || m.kvHeads <= 0 || m.headDim <= 0)
            throw Error(ErrorCode::InvalidArgument,
                        "capacity: the model has no layers, KV heads or head dim");
        if (in.context < 1 || in.context > (1LL << 40))
            throw Error(ErrorCode::InvalidArgument, "capacity: context " +
                                                        std::to_string(in.context) +
                                                        " is outside 1 to 2^40 tokens");
        requireRange(in.gpuGiB, 1e-3, 1e6, "capacity: GPU memory (GiB)", "0.001 to 1,000,000 GiB");
        const double weightBytesEach = weightBytesPerParameter(in.weightDtype);
        if (weightBytesEach <= 0)
            throw Error(ErrorCode::InvalidArgument,
                        "capacity: weight dtype '" + in.weightDtype +
                            "' is not one of fp32, bf16, fp16, int8, int4");
        const double elementBytes = cacheBytesPerElement(in.cacheDtype);
        if (elementBytes <= 0)
            throw Error(ErrorCode::InvalidArgument, "capacity: cache dtype '" + in.cacheDtype +
                                                        "' is not one of fp32, bf16, fp16, fp8");
        const double reserveGiB = in.reserveGiB < 0 ? 0.1 * in.gpuGiB : in.reserveGiB;
        requireRange(reserveGiB, 0, in.gpuGiB, "capacity: reserve (GiB)",
                     "0 to the GPU's memory (" + std::to_string(in.gpuGiB) + " GiB)");

        CapacityReport r;
        r.modelName = in.modelName;
        r.context = in.context;
        r.contextLimit = m.contextLimit();
        r.hypothetical = r.contextLimit > 0 && in.context > r.contextLimit;
        r.window = m.slidingWindow.value_or(0);
        r.windowCaps = false;
        r.cachedTokens = in.context;
        for (int layer = 0; layer < m.layers; ++layer)
            if (m.windowApplies(layer) && *m.slidingWindow < in.context) {
                r.windowCaps = true;
                r.cachedTokens = *m.slidingWindow;
            }
        r.parameters = m.parameterCount();
        r.weightBytes = static_cast<double>(r.parameters) * weightBytesEach;
        r.gpuBytes = in.gpuGiB * kGiB;
        r.reserveBytes = reserveGiB * kGiB;
        r.freeBytes = r.gpuBytes - r.weightBytes - r.reserveBytes;

        std::vector<CapacitySetting> settings{{"exact", 1.0, 1.0, "exact"}};
        for (const CapacitySetting& s : in.settings) {
            requireRange(s.keyFraction, 0, 1, "capacity: '" + s.name + "' key fraction",
                         "0 to 1 (the fraction of the exact key bytes kept)");
            requireRange(s.valueFraction, 0, 1, "capacity: '" + s.name + "' value fraction",
                         "0 to 1 (the fraction of the exact value bytes kept)");
            settings.push_back(s);
        }
        // The longest context the bisection considers: far past any model's limit, and past the
        // asked one.
        const long long searchLimit = std::max<long long>(in.context, 1LL << 30);
        const CapacitySetting& exact = settings.front();
        const double exactPerUser = cacheBytesPerUser(m, in.context, elementBytes, exact);
        const double exactPerToken = cacheBytesPerUser(m, 1, elementBytes, exact);
        for (const CapacitySetting& s : settings) {
            CapacityRow row;
            row.setting = s;
            row.bytesPerToken = cacheBytesPerUser(m, 1, elementBytes, s);
            row.cacheFraction = exactPerToken > 0 ? row.bytesPerToken / exactPerToken : 0.0;
            row.bytesPerUser = cacheBytesPerUser(m, in.context, elementBytes, s);
            row.savedPerUser = exactPerUser - row.bytesPerUser;
            if (r.freeBytes > 0 && row.bytesPerUser > 0) {
                row.continuousUsers = r.freeBytes / row.bytesPerUser;
                row.users = static_cast<long long>(std::floor(row.continuousUsers));
            }
            row.usersVsExact = row.bytesPerUser > 0 ? exactPerUser / row.bytesPerUser : 0.0;
            row.longestContext = longestContextWithin(m, elementBytes, s, r.freeBytes, searchLimit);
            const double perGpu = r.gpuBytes - r.reserveBytes;
            row.gpusForOneUser =
                perGpu > 0 ? static_cast<int>(std::min(
                                 1e6, std::ceil((r.weightBytes + row.bytesPerUser) / perGpu)))
                           : 0;
            r.rows.push_back(row);
        }

        if (r.hypothetical)
            r.notes.push_back("hypothetical: " + std::to_string(in.context) +
                              " tokens is beyond the model's maximum of " +
                              std::to_string(r.contextLimit) +
                              "; the figures are what a cache of that length would take");
        if (r.windowCaps)
            r.notes.push_back("the sliding window of " + std::to_string(r.window) +
                              " tokens caps the cache: " + std::to_string(r.cachedTokens) +
                              " tokens cached per windowed layer, not " +
                              std::to_string(in.context));
        if (r.freeBytes <= 0) {
            r.notes.push_back("no user fits: the weights (" + gibText(r.weightBytes) +
                              ") and the reserve (" + gibText(r.reserveBytes) +
                              ") already exceed the GPU's " + gibText(r.gpuBytes) + "; " +
                              std::to_string(r.rows.front().gpusForOneUser) +
                              " GPUs of this size hold the weights and one user's exact cache");
        } else {
            for (const CapacityRow& row : r.rows) {
                if (row.users > 0)
                    continue;
                r.notes.push_back(
                    "no whole user fits with the " + row.setting.name + " cache: one user needs " +
                    gibText(row.bytesPerUser) + ", " + gibText(r.freeBytes) +
                    " are free after the weights and the reserve; one user fits up to " +
                    std::to_string(row.longestContext) + " tokens, or the model split over " +
                    std::to_string(row.gpusForOneUser) + " GPUs of this size");
            }
        }
        return r;
    });
}

Result<std::vector<CapacityCurve>>
capacityCurves(const CapacityInputs& inputs, long long fromTokens, long long toTokens, int points) {
    return catchErrors([&]() -> std::vector<CapacityCurve> {
        if (fromTokens < 1 || toTokens <= fromTokens || points < 2 || points > 100000)
            throw Error(ErrorCode::InvalidArgument,
                        "capacity curves: need 1 <= from < to and 2 to 100,000 points");
        CapacityInputs one = inputs;
        one.context = fromTokens;
        auto base = planCapacity(one); // validates the inputs once
        if (!base)
            throw base.error();
        const double elementBytes = cacheBytesPerElement(inputs.cacheDtype);
        const double freeBytes = base.value().freeBytes;
        std::vector<CapacityCurve> curves;
        for (const CapacityRow& row : base.value().rows) {
            CapacityCurve c;
            c.name = row.setting.name;
            const double ratio = std::log(static_cast<double>(toTokens) / fromTokens);
            for (int i = 0; i < points; ++i) {
                const double ctx =
                    i + 1 == points ? static_cast<double>(toTokens)
                                    : std::round(fromTokens * std::exp(ratio * i / (points - 1)));
                const double perUser = cacheBytesPerUser(inputs.model, static_cast<long long>(ctx),
                                                         elementBytes, row.setting);
                const double users = freeBytes > 0 && perUser > 0 ? freeBytes / perUser : 0.0;
                c.context.push_back(ctx);
                c.continuousUsers.push_back(users);
                c.users.push_back(std::floor(users));
            }
            curves.push_back(std::move(c));
        }
        return curves;
    });
}

} // namespace kvs
