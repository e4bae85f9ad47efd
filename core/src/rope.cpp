// SPDX-License-Identifier: MIT
// Rotary position embeddings, following the formulas transformers uses for each rope_type.
#include "rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace kvs {

std::vector<double> ropeInverseFrequencies(const ModelConfig& c, int sequenceLength) {
    const int dim = c.headDim;
    const int half = dim / 2;
    double base = c.ropeTheta;
    const auto& rs = c.ropeScaling;
    if (rs.kind == RopeScaling::Kind::Dynamic && sequenceLength > rs.originalMaxPositions) {
        // NTK-aware: the base grows with the sequence once it passes the trained length.
        const double ratio =
            rs.factor * sequenceLength / rs.originalMaxPositions - (rs.factor - 1.0);
        base *= std::pow(ratio, static_cast<double>(dim) / (dim - 2));
    }
    std::vector<double> inv(static_cast<std::size_t>(half));
    for (int i = 0; i < half; ++i)
        inv[static_cast<std::size_t>(i)] = 1.0 / std::pow(base, 2.0 * i / dim);

    switch (rs.kind) {
    case RopeScaling::Kind::None:
    case RopeScaling::Kind::Dynamic:
        break;
    case RopeScaling::Kind::Linear:
        for (auto& f : inv)
            f /= rs.factor;
        break;
    case RopeScaling::Kind::Llama3: {
        // Long wavelengths are interpolated by the factor, short ones kept, the middle blended.
        const double oldContext = rs.originalMaxPositions;
        const double lowWavelen = oldContext / rs.lowFreqFactor;
        const double highWavelen = oldContext / rs.highFreqFactor;
        for (auto& f : inv) {
            const double wavelen = 2.0 * std::numbers::pi / f;
            if (wavelen > lowWavelen) {
                f /= rs.factor;
            } else if (wavelen >= highWavelen) {
                const double smooth = (oldContext / wavelen - rs.lowFreqFactor) /
                                      (rs.highFreqFactor - rs.lowFreqFactor);
                f = (1.0 - smooth) * f / rs.factor + smooth * f;
            }
        }
        break;
    }
    case RopeScaling::Kind::Yarn: {
        // Dimensions that rotate fewer than beta_slow times over the original context are
        // interpolated, those rotating more than beta_fast times extrapolated, a linear ramp
        // between.
        const double orig = rs.originalMaxPositions;
        auto correctionDim = [&](double rotations) {
            return dim * std::log(orig / (rotations * 2.0 * std::numbers::pi)) /
                   (2.0 * std::log(c.ropeTheta));
        };
        double low = std::max(std::floor(correctionDim(rs.betaFast)), 0.0);
        double high = std::min(std::ceil(correctionDim(rs.betaSlow)), static_cast<double>(dim - 1));
        if (low == high)
            high += 0.001;
        for (int i = 0; i < half; ++i) {
            const double extrapolated = 1.0 / std::pow(c.ropeTheta, 2.0 * i / dim);
            const double interpolated = extrapolated / rs.factor;
            const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
            const double extrapolationWeight = 1.0 - ramp;
            inv[static_cast<std::size_t>(i)] =
                interpolated * (1.0 - extrapolationWeight) + extrapolated * extrapolationWeight;
        }
        break;
    }
    }
    return inv;
}

double ropeAttentionFactor(const ModelConfig& c) {
    const auto& rs = c.ropeScaling;
    if (rs.kind != RopeScaling::Kind::Yarn)
        return 1.0;
    if (rs.attentionFactor)
        return *rs.attentionFactor;
    return rs.factor <= 1.0 ? 1.0 : 0.1 * std::log(rs.factor) + 1.0;
}

RopeTable makeRopeTable(const ModelConfig& c, int firstPosition, int count, int sequenceLength) {
    RopeTable t;
    t.headDim = c.headDim;
    t.firstPosition = firstPosition;
    const auto inv = ropeInverseFrequencies(c, sequenceLength);
    const double scale = ropeAttentionFactor(c);
    const int half = c.headDim / 2;
    t.cos.resize(count, half);
    t.sin.resize(count, half);
    for (int p = 0; p < count; ++p)
        for (int i = 0; i < half; ++i) {
            // transformers computes the angle in fp32; the difference is far below our tolerances.
            const double angle = (firstPosition + p) * inv[static_cast<std::size_t>(i)];
            t.cos(p, i) = std::cos(angle) * scale;
            t.sin(p, i) = std::sin(angle) * scale;
        }
    return t;
}

template <class S> void applyRope(MatrixT<S>& x, const RopeTable& t, RopeLayout layout) {
    const int d = t.headDim;
    const int half = d / 2;
    const int headsInX = static_cast<int>(x.cols()) / d;
    for (int p = 0; p < x.rows(); ++p) {
        for (int h = 0; h < headsInX; ++h) {
            S* v = x.row(p).data() + static_cast<std::ptrdiff_t>(h) * d;
            for (int i = 0; i < half; ++i) {
                const S c = static_cast<S>(t.cos(p, i));
                const S s = static_cast<S>(t.sin(p, i));
                const int a = layout == RopeLayout::HalfSplit ? i : 2 * i;
                const int b = layout == RopeLayout::HalfSplit ? i + half : 2 * i + 1;
                const S x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x1 * c + x0 * s;
            }
        }
    }
}

template void applyRope<float>(MatrixT<float>&, const RopeTable&, RopeLayout);
template void applyRope<double>(MatrixT<double>&, const RopeTable&, RopeLayout);

} // namespace kvs
