// SPDX-License-Identifier: MIT
// The project's own generator of model folders in exact Hugging Face layout with random weights:
// test fixtures for every loader path and the studio's start-up model until a trained one ships.
#pragma once

#include "kvs/dtype.h"
#include "kvs/model_config.h"
#include "kvs/output_writer.h"
#include "kvs/status.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace kvs {

struct SyntheticModelSpec {
    ModelConfig config;
    DType dtype = DType::F32; // F32, F16 or BF16 storage
    int shards = 1;           // > 1 writes model-0000i-of-0000n.safetensors + index.json
    std::uint64_t seed = 1;
    float weightScale = 0.0f; // stddev of projection weights; 0 = 1/sqrt(fan-in)
    // Character vocabulary for the tokenizer; empty = the 256 byte-level GPT-2 symbols.
    std::string alphabet;
};

// Named presets: "tiny-gpt2", "tiny-gpt2-untied", "tiny-llama", "tiny-llama-gqa", "tiny-qwen2",
// "tiny-mistral", "gpt2-small" (12 layers, width 768), "llama-3-8b" (Meta-Llama-3-8B's shape,
// bf16, 16 GB in 4 shards). Throws kvs::Error for unknown names. Every tensor has its own random
// stream, so the generator holds one chunk of a tensor at a time, whatever the model's size.
SyntheticModelSpec syntheticPreset(const std::string& name);
std::vector<std::string> syntheticPresetNames();

// One tensor of a model folder, in Hugging Face naming and shape ([out, in] for nn.Linear).
struct HfTensor {
    std::string name;
    std::vector<std::int64_t> shape;
    std::vector<float> data;
    // Instead of `data`: fills consecutive chunks of the elements while the file is written
    // (SafetensorsWriter::addFloatGenerated), so a generated model is never whole in memory.
    std::function<void(std::span<float>)> fill = {};
};

// Writes a model folder: config.json (with torch_dtype), the tensors in `dtype` (model.safetensors,
// or `shards` files + index.json, contiguous runs in the given order as save_pretrained does) and
// tokenizer.json for `alphabet` (see characterTokenizerJson) with its tokenizer_config.json.
// Creates the folder. Used by the generator and the trainer's export. Each file carries the
// studio's mark (kvs/output_writer.h); an existing file of the folder is replaced only when the
// studio wrote it as the same file, unless forced, and all are checked before any is written.
Result<bool> writeModelFolder(const ModelConfig& config, const std::vector<HfTensor>& tensors,
                              DType dtype, int shards, const std::string& alphabet,
                              const std::filesystem::path& folder,
                              Overwrite overwrite = Overwrite::OursOnly);

// Writes config.json, the safetensors file(s) and tokenizer.json into `folder` (created), as
// writeModelFolder does.
Result<bool> writeSyntheticModel(const SyntheticModelSpec& spec,
                                 const std::filesystem::path& folder,
                                 Overwrite overwrite = Overwrite::OursOnly);

// A tokenizer.json (Hugging Face format) for a character vocabulary with no merges, or for the 256
// byte-level symbols when `alphabet` is empty.
std::string characterTokenizerJson(const std::string& alphabet);

// The tokenizer_config.json beside it: PreTrainedTokenizerFast, no special tokens, nothing added to
// the text, so that transformers tokenizes exactly as the studio does.
std::string tokenizerConfigJson(const ModelConfig& config);

} // namespace kvs
