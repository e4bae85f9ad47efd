// SPDX-License-Identifier: MIT
// The generator of random model folders in exact Hugging Face layout (config, safetensors,
// tokenizer).
#include "kvs/synthetic_model.h"

#include "config_presets.h"
#include "kvs/output_writer.h"
#include "kvs/safetensors.h"
#include "weights.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

namespace kvs {
namespace {

using nlohmann::json;

ModelConfig llamaBase(const std::string& type, const std::string& arch) {
    ModelConfig c = llamaBlocks(type, arch);
    setShape(c, 2, 4, 4, 64, 16, 128);
    c.vocab = 256;
    c.normEps = 1e-6;
    c.bosTokenId = 1;
    c.eosTokenId = 2;
    return c;
}

ModelConfig gpt2Base() {
    ModelConfig c;
    c.family = Family::Gpt2;
    c.modelType = "gpt2";
    c.architecture = "GPT2LMHeadModel";
    setShape(c, 2, 4, 4, 64, 16, 256);
    c.vocab = 256;
    c.maxPositions = 128;
    c.positions = PositionKind::Learned;
    c.norm = NormKind::LayerNorm;
    c.normEps = 1e-5;
    c.mlp = MlpKind::GeluTanh;
    c.tiedEmbeddings = true;
    c.qkvBias = c.outputBias = c.mlpBias = true;
    c.bosTokenId = 255;
    c.eosTokenId = 255;
    return c;
}

// GPT-2's byte-to-symbol table: printable Latin-1 bytes stand for themselves, the rest are shifted
// past 255 so that every byte has a visible symbol.
std::string byteSymbol(int b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!printable) {
        int shift = 0;
        for (int x = 0; x < b; ++x)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)))
                ++shift;
        cp = 256 + shift;
    }
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

// Splits UTF-8 text into code points (as strings); duplicates removed, order kept.
std::vector<std::string> distinctCharacters(const std::string& text) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        const std::size_t len = c < 0x80           ? 1
                                : (c >> 5) == 0x6  ? 2
                                : (c >> 4) == 0xE  ? 3
                                : (c >> 3) == 0x1E ? 4
                                                   : 0;
        if (len == 0 || i + len > text.size())
            throw Error(ErrorCode::InvalidArgument, "the tokenizer alphabet is not valid UTF-8");
        std::string ch = text.substr(i, len);
        if (std::find(out.begin(), out.end(), ch) == out.end())
            out.push_back(ch);
        i += len;
    }
    return out;
}

// Tensor i's own random stream (splitmix64 of the model's seed and i): each tensor is generated
// on its own, while its file is written, in whatever order the file lays the tensors out.
std::uint64_t tensorSeed(std::uint64_t seed, std::size_t index) {
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(index) + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

class WeightWriter {
public:
    WeightWriter(const SyntheticModelSpec& spec) : m_spec(spec) {}

    void normal(const std::string& name, std::vector<std::int64_t> shape, float stddev,
                float mean = 0.0f) {
        HfTensor t{name, std::move(shape), {}, {}};
        t.fill = [rng = std::mt19937_64(tensorSeed(m_spec.seed, m_tensors.size())),
                  dist =
                      std::normal_distribution<float>(mean, stddev)](std::span<float> out) mutable {
            for (float& v : out)
                v = dist(rng);
        };
        m_tensors.push_back(std::move(t));
    }

    // Projection weights: stddev from the spec, or 1/sqrt(fan-in) so activations stay O(1).
    void projection(const std::string& name, std::vector<std::int64_t> shape, std::int64_t fanIn) {
        const float s = m_spec.weightScale > 0 ? m_spec.weightScale
                                               : 1.0f / std::sqrt(static_cast<float>(fanIn));
        normal(name, std::move(shape), s);
    }

    const std::vector<HfTensor>& tensors() const { return m_tensors; }

private:
    const SyntheticModelSpec& m_spec;
    std::vector<HfTensor> m_tensors;
};

} // namespace

std::string tokenizerConfigJson(const ModelConfig& config) {
    // Without this file AutoTokenizer picks the architecture's tokenizer class (for Llama,
    // LlamaTokenizerFast), which adds <s>, </s> and <unk> past the end of the vocabulary and
    // prepends <s> to every text. No special tokens: naming an ordinary character or byte here
    // would make transformers encode that character as a special token and drop it on decode.
    const json tc = {
        {"tokenizer_class", "PreTrainedTokenizerFast"},
        {"bos_token", nullptr},
        {"eos_token", nullptr},
        {"unk_token", nullptr},
        {"pad_token", nullptr},
        {"add_bos_token", false},
        {"add_eos_token", false},
        {"clean_up_tokenization_spaces", false},
        {"model_max_length", config.maxPositions},
    };
    return tc.dump(2);
}

std::string characterTokenizerJson(const std::string& alphabet) {
    json vocab = json::object();
    const bool byteLevel = alphabet.empty();
    if (byteLevel) {
        for (int b = 0; b < 256; ++b)
            vocab[byteSymbol(b)] = b;
    } else {
        int id = 0;
        for (const auto& ch : distinctCharacters(alphabet))
            vocab[ch] = id++;
    }
    const json byteLevelPre = {{"type", "ByteLevel"},
                               {"add_prefix_space", false},
                               {"trim_offsets", true},
                               {"use_regex", false}};
    const json byteLevelDec = {{"type", "ByteLevel"},
                               {"add_prefix_space", true},
                               {"trim_offsets", true},
                               {"use_regex", true}};
    const json tok = {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", json::array()},
        {"normalizer", nullptr},
        {"pre_tokenizer", byteLevel ? byteLevelPre : json(nullptr)},
        {"post_processor", nullptr},
        // Fuse: tokenizers joins decoded tokens with spaces when there is no decoder.
        {"decoder", byteLevel ? byteLevelDec : json{{"type", "Fuse"}}},
        {"model",
         {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr},
          {"fuse_unk", false},
          {"byte_fallback", false},
          {"vocab", vocab},
          {"merges", json::array()}}},
    };
    return tok.dump(1);
}

namespace {

constexpr const char* kIndexFile = "model.safetensors.index.json";

// The weight files a loader would read in `folder`: model.safetensors, the index, and shards
// named as save_pretrained names them (model-00001-of-00003.safetensors).
std::vector<std::filesystem::path> weightFilesIn(const std::filesystem::path& folder) {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
        const std::string name = entry.path().filename().string();
        const bool shard = name.starts_with("model-") && name.ends_with(".safetensors") &&
                           name.find("-of-") != std::string::npos;
        if (name == "model.safetensors" || name == kIndexFile || shard)
            found.push_back(entry.path());
    }
    return found;
}

// A JSON document of the model folder, marked as the studio's (kvs/output_writer.h).
std::string markedJson(const std::string& text, const char* kind, int indent) {
    json j = json::parse(text);
    j[kOwnerKey] = kind;
    return j.dump(indent);
}

} // namespace

Result<bool> writeModelFolder(const ModelConfig& config, const std::vector<HfTensor>& tensors,
                              DType dtype, int shardCount, const std::string& alphabet,
                              const std::filesystem::path& folder, Overwrite overwrite) {
    return catchErrors([&]() -> bool {
        const int shards = std::max(1, shardCount);
        auto shardName = [&](int s) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", s + 1, shards);
            return std::string(buf);
        };
        // Every file is checked before the first is written, so a refusal changes nothing.
        std::vector<std::pair<std::string, const char*>> files = {
            {"config.json", "model-config"},
            {"tokenizer.json", "tokenizer"},
            {"tokenizer_config.json", "tokenizer-config"}};
        if (shards > 1)
            files.emplace_back("model.safetensors.index.json", "model-index");
        for (int s = 0; s < shards; ++s)
            files.emplace_back(shards > 1 ? shardName(s) : "model.safetensors", "model-weights");
        for (const auto& [name, kind] : files)
            requireWritable(folder / name, kind, overwrite);
        // Weight files of an earlier layout that the new one does not replace: the loader prefers
        // an index over model.safetensors, so a stale index (and its shards) would be loaded
        // instead of the new weights. They are checked like the new files and removed at the end.
        std::vector<std::filesystem::path> stale;
        for (const std::filesystem::path& old : weightFilesIn(folder)) {
            const std::string name = old.filename().string();
            if (std::any_of(files.begin(), files.end(),
                            [&](const auto& f) { return f.first == name; }))
                continue;
            requireWritable(old, name == kIndexFile ? "model-index" : "model-weights", overwrite);
            stale.push_back(old);
        }

        std::error_code ec;
        std::filesystem::create_directories(folder, ec);
        if (ec)
            throw Error(ErrorCode::Io,
                        folder.string() + ": cannot create the folder (" + ec.message() + ")");
        std::vector<SafetensorsWriter> writers(static_cast<std::size_t>(shards));
        json weightMap = json::object();
        std::size_t totalBytes = 0;
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            const auto& t = tensors[i];
            // Contiguous runs of tensors per shard, as save_pretrained produces.
            const int s = static_cast<int>(i * static_cast<std::size_t>(shards) / tensors.size());
            auto& writer = writers[static_cast<std::size_t>(s)];
            std::size_t elements = 1;
            for (const std::int64_t d : t.shape)
                elements *= static_cast<std::size_t>(d);
            if (t.fill)
                writer.addFloatGenerated(t.name, dtype, t.shape, t.fill);
            else
                writer.addFloat(t.name, dtype, t.shape, t.data);
            totalBytes += elements * dtypeSize(dtype);
            if (shards > 1)
                weightMap[t.name] = shardName(s);
        }
        requireDiskSpace(folder / "model.safetensors", totalBytes,
                         "write it to another disk, or store it in a narrower dtype");
        for (int s = 0; s < shards; ++s) {
            auto& w = writers[static_cast<std::size_t>(s)];
            w.setMetadata("format", "pt");
            w.write(folder / (shards > 1 ? shardName(s) : std::string("model.safetensors")),
                    "model-weights", overwrite)
                .valueOrThrow();
        }
        if (shards > 1) {
            const json index = {{"metadata", {{"total_size", totalBytes}}},
                                {"weight_map", weightMap},
                                {kOwnerKey, "model-index"}};
            writeOutput(folder / "model.safetensors.index.json", index.dump(2), "model-index",
                        overwrite);
        }
        json hf = toHfConfigJson(config);
        hf["torch_dtype"] = dtype == DType::F32   ? "float32"
                            : dtype == DType::F16 ? "float16"
                                                  : "bfloat16";
        hf[kOwnerKey] = "model-config";
        writeOutput(folder / "config.json", hf.dump(2), "model-config", overwrite);
        writeOutput(folder / "tokenizer.json",
                    markedJson(characterTokenizerJson(alphabet), "tokenizer", 1), "tokenizer",
                    overwrite);
        writeOutput(folder / "tokenizer_config.json",
                    markedJson(tokenizerConfigJson(config), "tokenizer-config", 2),
                    "tokenizer-config", overwrite);
        // The index first: until it is gone, a kill leaves the old index with all its shards.
        std::sort(stale.begin(), stale.end(), [](const auto& a, const auto& b) {
            return (a.filename() == kIndexFile) > (b.filename() == kIndexFile);
        });
        for (const auto& old : stale)
            if (std::error_code ec; !std::filesystem::remove(old, ec) && ec)
                throw Error(ErrorCode::Io, old.string() +
                                               ": cannot remove this weight file of "
                                               "the folder's earlier model (" +
                                               ec.message() + ")");
        return true;
    });
}

std::vector<std::string> syntheticPresetNames() {
    return {"tiny-gpt2",    "tiny-gpt2-untied", "tiny-llama", "tiny-llama-gqa", "tiny-qwen2",
            "tiny-mistral", "studio-demo",      "gpt2-small", "llama-3-8b"};
}

SyntheticModelSpec syntheticPreset(const std::string& name) {
    SyntheticModelSpec s;
    if (name == "tiny-gpt2") {
        s.config = gpt2Base();
    } else if (name == "tiny-gpt2-untied") {
        s.config = gpt2Base();
        s.config.tiedEmbeddings = false;
        s.config.scaleAttnByInverseLayerIdx = true;
        s.dtype = DType::BF16;
        s.shards = 2;
    } else if (name == "tiny-llama") {
        s.config = llamaBase("llama", "LlamaForCausalLM");
    } else if (name == "tiny-llama-gqa") {
        // GQA 4:1 with a head dim that is not width / heads, tied, llama3 rope scaling, sharded
        // bf16.
        s.config = llamaBase("llama", "LlamaForCausalLM");
        s.config.heads = 8;
        s.config.kvHeads = 2;
        s.config.headDim = 12;
        s.config.tiedEmbeddings = true;
        s.config.qkvBias = s.config.outputBias = true;
        s.config.mlpBias = true;
        s.config.ropeScaling.kind = RopeScaling::Kind::Llama3;
        s.config.ropeScaling.factor = 8.0;
        s.config.ropeScaling.lowFreqFactor = 1.0;
        s.config.ropeScaling.highFreqFactor = 4.0;
        s.config.ropeScaling.originalMaxPositions = 64;
        s.config.ropeTheta = 500000.0;
        s.dtype = DType::BF16;
        s.shards = 3;
    } else if (name == "tiny-qwen2") {
        s.config = llamaBase("qwen2", "Qwen2ForCausalLM");
        s.config.kvHeads = 2;
        s.config.qkvBias = true;
        s.config.ropeScaling.kind = RopeScaling::Kind::Yarn;
        s.config.ropeScaling.factor = 4.0;
        s.config.ropeScaling.originalMaxPositions = 256;
        s.config.ropeTheta = 1000000.0;
        s.dtype = DType::F16;
    } else if (name == "tiny-mistral") {
        s.config = llamaBase("mistral", "MistralForCausalLM");
        s.config.kvHeads = 1;
        s.config.slidingWindow = 16;
        s.config.slidingLayers.assign(static_cast<std::size_t>(s.config.layers), true);
        s.config.ropeScaling.kind = RopeScaling::Kind::Linear;
        s.config.ropeScaling.factor = 2.0;
    } else if (name == "studio-demo") {
        // The studio's start-up model until the trained one ships: small, GQA, character
        // vocabulary.
        s.config = llamaBase("llama", "LlamaForCausalLM");
        setShape(s.config, 4, 8, 4, 128, 16, 256);
        s.config.maxPositions = 512;
        s.config.tiedEmbeddings = true;
        s.config.bosTokenId.reset();
        s.config.eosTokenId.reset();
        for (char ch = ' '; ch <= '~'; ++ch)
            s.alphabet += ch;
        s.alphabet += '\n';
        s.config.vocab = static_cast<int>(s.alphabet.size());
    } else if (name == "gpt2-small") {
        s.config = gpt2Base();
        setShape(s.config, 12, 12, 12, 768, 64, 3072);
        s.config.vocab = 50257;
        s.config.maxPositions = 1024;
        s.config.bosTokenId = s.config.eosTokenId = 50256;
    } else if (name == "llama-3-8b") {
        // Meta-Llama-3-8B's public configuration (bf16, 16 GB): the shape of the hand run of
        // docs/performance.md. Generated tensor by tensor while written, never whole in memory.
        s.config = llamaBase("llama", "LlamaForCausalLM");
        setShape(s.config, 32, 32, 8, 4096, 128, 14336);
        s.config.vocab = 128256;
        s.config.maxPositions = 8192;
        s.config.normEps = 1e-5;
        s.config.ropeTheta = 500000.0;
        s.config.tiedEmbeddings = false;
        s.config.bosTokenId = 128000;
        s.config.eosTokenId = 128001;
        s.dtype = DType::BF16;
        s.shards = 4;
    } else {
        std::string known;
        for (const auto& n : syntheticPresetNames())
            known += (known.empty() ? "" : ", ") + n;
        throw Error(ErrorCode::InvalidArgument,
                    "unknown model preset '" + name + "' (known: " + known + ")");
    }
    if (s.config.slidingLayers.empty() && s.config.slidingWindow)
        s.config.slidingLayers.assign(static_cast<std::size_t>(s.config.layers), true);
    return s;
}

Result<bool> writeSyntheticModel(const SyntheticModelSpec& spec,
                                 const std::filesystem::path& folder, Overwrite overwrite) {
    return catchErrors([&]() -> bool {
        const auto& c = spec.config;
        if (c.layers <= 0 || c.heads <= 0 || c.kvHeads <= 0 || c.heads % c.kvHeads != 0 ||
            c.headDim <= 0)
            throw Error(ErrorCode::InvalidArgument,
                        "synthetic model: inconsistent head configuration");
        const std::size_t alphabetSize =
            spec.alphabet.empty() ? 256 : distinctCharacters(spec.alphabet).size();
        if (static_cast<std::size_t>(c.vocab) < alphabetSize)
            throw Error(ErrorCode::InvalidArgument, "synthetic model: vocabulary of " +
                                                        std::to_string(c.vocab) +
                                                        " is smaller than the tokenizer's " +
                                                        std::to_string(alphabetSize) + " symbols");
        // A trained model's weights are hours of work, random ones a second: without --force,
        // make-model does not replace a folder the trainer wrote (its train_results.json says so).
        if (overwrite != Overwrite::Force) {
            const auto record = folder / "train_results.json";
            std::error_code ec;
            if (std::filesystem::exists(std::filesystem::symlink_status(record, ec)))
                throw Error(ErrorCode::Exists, "refusing to overwrite " + folder.string() +
                                                   ": it holds a trained model (" +
                                                   record.string() +
                                                   "), and make-model writes random weights (use "
                                                   "--force to replace it)");
        }
        // Generate tensors in the order of the expected list so names and shapes match the loader.
        Checkpoint none;
        const TensorNames names(c, none);
        WeightWriter w(spec);
        for (const auto& e : names.expected()) {
            const std::string& n = e.name;
            const bool isVector = e.shape.size() == 1;
            const bool isNorm =
                n.find("ln_") != std::string::npos || n.find("norm") != std::string::npos;
            if (isVector && isNorm && n.find(".bias") == std::string::npos)
                w.normal(n, e.shape, 0.1f, 1.0f); // norm gains around 1, not exactly 1
            else if (isVector)
                w.normal(n, e.shape, 0.05f);
            else if (n.find("wte") != std::string::npos ||
                     n.find("embed_tokens") != std::string::npos ||
                     n.find("lm_head") != std::string::npos)
                w.normal(n, e.shape, c.family == Family::Gpt2 ? 0.1f : 1.0f);
            else if (n.find("wpe") != std::string::npos)
                w.normal(n, e.shape, 0.1f);
            else {
                // GPT-2 Conv1D is [in, out]; nn.Linear is [out, in].
                const std::int64_t fanIn = c.family == Family::Gpt2 ? e.shape[0] : e.shape[1];
                w.projection(n, e.shape, fanIn);
            }
        }
        writeModelFolder(c, w.tensors(), spec.dtype, spec.shards, spec.alphabet, folder, overwrite)
            .valueOrThrow();
        return true;
    });
}

} // namespace kvs
