// SPDX-License-Identifier: MIT
// Rotary position embeddings: inverse frequencies under each scaling kind, and the rotation itself.
#pragma once

#include "kvs/model_config.h"
#include "kvs/tensor.h"

#include <vector>

namespace kvs {

struct RopeTable {
    int headDim = 0;
    int firstPosition = 0;
    MatrixT<double> cos, sin; // positions × headDim/2, already multiplied by the attention factor
};

// Inverse frequencies (headDim/2 of them) for a sequence of `sequenceLength` tokens (dynamic NTK
// scaling depends on it), and the factor that scales cos/sin (yarn; 1 otherwise).
std::vector<double> ropeInverseFrequencies(const ModelConfig& config, int sequenceLength);
double ropeAttentionFactor(const ModelConfig& config);

RopeTable makeRopeTable(const ModelConfig& config, int firstPosition, int count,
                        int sequenceLength);

// Rotates every head (consecutive headDim-wide column blocks) of `x` (rows = positions of the
// table).
template <class S> void applyRope(MatrixT<S>& x, const RopeTable& table, RopeLayout layout);

} // namespace kvs
