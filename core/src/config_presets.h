// SPDX-License-Identifier: MIT
// Inside core: the building blocks of the small configs the studio makes itself (the synthetic
// presets and the trainer's default model).
#pragma once

#include "kvs/model_config.h"

#include <string>
#include <utility>

namespace kvs {

// In the order a config lists them: layers, query heads, KV heads, width, head dim, MLP size.
inline void setShape(ModelConfig& c, int layers, int heads, int kvHeads, int width, int headDim,
                     int intermediate) {
    c.layers = layers;
    c.heads = heads;
    c.kvHeads = kvHeads;
    c.width = width;
    c.headDim = headDim;
    c.intermediate = intermediate;
}

// A Llama-family block: RoPE (θ = 10⁴), RMSNorm, SwiGLU, 256 positions, untied; sizes unset.
inline ModelConfig llamaBlocks(std::string modelType, std::string architecture) {
    ModelConfig c;
    c.family = Family::Llama;
    c.modelType = std::move(modelType);
    c.architecture = std::move(architecture);
    c.maxPositions = 256;
    c.positions = PositionKind::Rope;
    c.ropeTheta = 10000.0;
    c.norm = NormKind::RmsNorm;
    c.mlp = MlpKind::SwiGlu;
    c.tiedEmbeddings = false;
    return c;
}

} // namespace kvs
