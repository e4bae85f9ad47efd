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

// Energy kept against rank over every head: per kind (key projection, keys, scores) and rank
// r = 1 … d, the mean, smallest and largest over heads of energyKept(σ, r). A kind no head has
// (W_K without the model) stays empty. What the Cache view's spectrum chart draws.
struct SpectrumSummary {
    struct Band {
        std::vector<double> mean, minimum, maximum; // index r − 1
    };
    Band keyProjection, keys, scores;
    int heads = 0;
};
SpectrumSummary summarizeSpectra(const std::vector<HeadSpectrum>& spectra);

// Every layer and KV head of the capture's first `contextTokens` tokens. Errors: a context of
// fewer than one token or beyond the capture; K=V models (their keys are the values: reported,
// with no scores).
Result<std::vector<HeadSpectrum>> keySpectra(const Capture& capture, const Model* model,
                                             int contextTokens);

} // namespace kvs
