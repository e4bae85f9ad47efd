// SPDX-License-Identifier: MIT
// What a forward pass records: per layer and KV head the keys (before and after RoPE), values, the
// queries and attention outputs of the query heads that read that KV head, the normalized hidden
// input, and the final logits. Saved as a safetensors capture file (docs/capture-format.md).
#pragma once

#include "kvs/model_config.h"
#include "kvs/output_writer.h"
#include "kvs/status.h"
#include "kvs/tensor.h"
#include "kvs/tokenizer.h"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace kvs {

struct KvHeadCapture {
    Matrix keys;        // n × headDim, as attention uses them (after RoPE where RoPE is used)
    Matrix keysPreRope; // n × headDim before rotation; empty for learned positions
    Matrix values; // n × headDim (for k_eq_v models: the pre-RoPE keys, which is what is cached)
    std::vector<Matrix> queries; // groupSize entries: query head kv*g + j, n × headDim, after RoPE
    std::vector<Matrix> queriesPreRope; // same, before RoPE; empty for learned positions
    std::vector<Matrix> outputs;        // groupSize entries: attention output of that query head
};

struct LayerCapture {
    Matrix hiddenNormed; // n × width: the normalized input of the attention block
    std::vector<KvHeadCapture> kvHeads;
};

struct Capture {
    ModelConfig config;
    std::vector<TokenId> tokens;
    std::vector<std::string> tokenTexts; // display text per token
    std::string prompt;
    std::string modelName; // folder name or "capture"
    std::vector<LayerCapture> layers;
    Matrix logits; // n × vocab (may be empty when the capture was made without logits)

    int tokenCount() const { return static_cast<int>(tokens.size()); }
    // The query head index of query j of kv head h.
    int queryHead(int kvHead, int j) const { return kvHead * config.groupSize() + j; }
};

// Writes a capture file atomically. Float tensors are stored as F32 (or F16 when asked). An
// existing file is replaced only when it is a capture the studio wrote, unless forced
// (ErrorCode::Exists, kvs/output_writer.h).
Result<bool> saveCapture(const Capture& capture, const std::filesystem::path& path,
                         bool halfPrecision = false, Overwrite overwrite = Overwrite::OursOnly);
// Throws Error(NotFinite) naming `source` and the tensor (as the capture file names it) of the
// first NaN or infinity: a forward pass that overflowed is an error, not a capture.
void checkCaptureFinite(const Capture& capture, std::string_view source);
// Reads a capture file; errors name the file and the missing/inconsistent tensor, or the first
// tensor holding a NaN or infinity (ErrorCode::NotFinite).
Result<Capture> loadCapture(const std::filesystem::path& path);

} // namespace kvs
