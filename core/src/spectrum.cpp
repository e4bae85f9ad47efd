// SPDX-License-Identifier: MIT
#include "kvs/spectrum.h"

#include "kvs/scheme.h"
#include "score_svd.h"

#include <Eigen/SVD>
#include <algorithm>
#include <numeric>
#include <string>

namespace kvs {

namespace {

using MatrixD = Eigen::MatrixXd;

std::vector<double> toVector(const Eigen::VectorXd& v) {
    return {v.data(), v.data() + v.size()};
}

std::vector<double> singularValues(const MatrixD& x) {
    return toVector(Eigen::BDCSVD<MatrixD>(x).singularValues());
}

std::vector<double> scoreSingularValues(const MatrixD& q, const MatrixD& k) {
    return singularValues(detail::scoreCore(q, k).core);
}

} // namespace

double energyKept(const std::vector<double>& sigma, int rank) {
    double total = 0.0, kept = 0.0;
    for (std::size_t i = 0; i < sigma.size(); ++i) {
        total += sigma[i] * sigma[i];
        if (static_cast<int>(i) < rank)
            kept += sigma[i] * sigma[i];
    }
    return total > 0.0 ? kept / total : 1.0;
}

SpectrumSummary summarizeSpectra(const std::vector<HeadSpectrum>& spectra) {
    SpectrumSummary out;
    out.heads = static_cast<int>(spectra.size());
    const auto summarize = [&](auto member, SpectrumSummary::Band& band) {
        std::size_t ranks = 0;
        for (const HeadSpectrum& s : spectra)
            ranks = std::max(ranks, (s.*member).size());
        for (std::size_t r = 1; r <= ranks; ++r) {
            double sum = 0.0, lo = 1.0, hi = 0.0;
            int count = 0;
            for (const HeadSpectrum& s : spectra) {
                if ((s.*member).empty())
                    continue;
                const double e = energyKept(s.*member, static_cast<int>(r));
                sum += e;
                lo = std::min(lo, e);
                hi = std::max(hi, e);
                ++count;
            }
            if (count == 0)
                continue;
            band.mean.push_back(sum / count);
            band.minimum.push_back(lo);
            band.maximum.push_back(hi);
        }
    };
    summarize(&HeadSpectrum::keyProjection, out.keyProjection);
    summarize(&HeadSpectrum::keys, out.keys);
    summarize(&HeadSpectrum::scores, out.scores);
    return out;
}

Result<std::vector<HeadSpectrum>> keySpectra(const Capture& capture, const Model* model,
                                             int contextTokens) {
    return catchErrors([&] {
        const int n = capture.tokenCount();
        if (contextTokens < 1 || contextTokens > n)
            throw Error(ErrorCode::InvalidArgument,
                        "spectrum: context of " + std::to_string(contextTokens) +
                            " tokens; the prompt has " + std::to_string(n) + " (choose 1 … " +
                            std::to_string(n) + ")");
        const ModelConfig& c = capture.config;
        std::vector<Matrix> projections;
        if (model)
            projections = keyProjectionsWithBias(*model);
        std::vector<HeadSpectrum> out;
        for (int l = 0; l < c.layers; ++l)
            for (int h = 0; h < c.kvHeads; ++h) {
                const KvHeadCapture& hc = capture.layers[static_cast<std::size_t>(l)]
                                              .kvHeads[static_cast<std::size_t>(h)];
                HeadSpectrum s;
                s.layer = l;
                s.kvHead = h;
                const MatrixD keys = hc.keys.topRows(contextTokens).cast<double>();
                s.keys = singularValues(keys);
                if (!projections.empty())
                    s.keyProjection =
                        singularValues(projections[static_cast<std::size_t>(l)]
                                           .middleCols(Eigen::Index(h) * c.headDim, c.headDim)
                                           .cast<double>());
                const MatrixD queries = detail::stackQueries(hc.queries, contextTokens);
                if (queries.rows() > 0)
                    s.scores = scoreSingularValues(queries, keys);
                out.push_back(std::move(s));
            }
        return out;
    });
}

} // namespace kvs
