// SPDX-License-Identifier: MIT
// How low-rank a head's keys are (ALGORITHMS.md §2): per layer and KV head, the singular values of
// the key projection (what the weight SVD truncates), of the context's post-RoPE keys, and of the
// score matrix Q Kᵀ of the context (what the data-aware fit truncates), and the energy a rank
// keeps. The numbers behind the spectrum view and `kvstudio-cli spectrum`.
#pragma once

#include "kvs/capture.h"
#include "kvs/model.h"
#include "kvs/status.h"

#include <vector>

namespace kvs {

struct HeadSpectrum {
    int layer = 0;
    int kvHead = 0;
    // σ of [W_K; b_K] ((D + 1) × d), descending; empty without the model.
    std::vector<double> keyProjection;
    // σ of the context's keys (n × d, post-RoPE).
    std::vector<double> keys;
    // σ of Q Kᵀ over the context, Q the context queries of every query head of the group: the
    // score error of the best rank-r fit is √(Σ_{i>r} σ_i²) (computed through the d × d core
    // S_q V_qᵀ V_k S_k, never the n × n product).
    std::vector<double> scores;
};

// Fraction of Σ σ² the first `rank` singular values hold (1 for an all-zero spectrum).
double energyKept(const std::vector<double>& sigma, int rank);

// Every layer and KV head of the capture's first `contextTokens` tokens. Errors: a context of
// fewer than one token or beyond the capture; K=V models (their keys are the values: reported,
// with no scores).
Result<std::vector<HeadSpectrum>> keySpectra(const Capture& capture, const Model* model,
                                             int contextTokens);

} // namespace kvs
