// SPDX-License-Identifier: MIT
// The probe attention layer loop (kvs/probe_attention.h).
#include "kvs/probe_attention.h"

#include "kvs/evaluator.h"

#include <string>

namespace kvs {

Result<std::vector<std::vector<AttendResult>>> probeAttention(const ProbeRequest& request,
                                                              AttentionBackend& backend) {
    return catchErrors([&] {
        if (request.heads.size() != request.queries.size())
            throw Error(ErrorCode::InvalidArgument,
                        "probe attention: " + std::to_string(request.heads.size()) +
                            " layers of heads but " + std::to_string(request.queries.size()) +
                            " layers of queries");
        if (!request.scales.empty() && request.scales.size() != request.heads.size())
            throw Error(ErrorCode::InvalidArgument,
                        "probe attention: " + std::to_string(request.scales.size()) +
                            " layer scales for " + std::to_string(request.heads.size()) +
                            " layers");
        std::vector<std::vector<AttendResult>> out;
        out.reserve(request.heads.size());
        for (std::size_t l = 0; l < request.heads.size(); ++l) {
            if (request.cancel && request.cancel->load())
                throw Error(ErrorCode::Cancelled, "probe attention cancelled");
            LayerAttendRequest r;
            r.heads = std::span<const CompressedHead>(request.heads[l]);
            r.queries = std::span<const Matrix>(request.queries[l]);
            r.groupSize = request.groupSize;
            r.options.scale = request.scales.empty() ? 0.0f : request.scales[l];
            r.options.wantProbabilities = request.probabilities;
            r.options.wantScores = request.scores;
            auto layer = backend.attendLayer(r);
            if (!layer.ok())
                throw Error(layer.error().code(),
                            "layer " + std::to_string(l) + ": " + layer.message());
            out.push_back(std::move(layer).value());
        }
        return out;
    });
}

std::vector<std::vector<Matrix>> probeQueries(const Capture& capture, int contextTokens) {
    const int n = capture.tokenCount();
    std::vector<std::vector<Matrix>> out(capture.layers.size());
    for (std::size_t l = 0; l < capture.layers.size(); ++l)
        for (const KvHeadCapture& kv : capture.layers[l].kvHeads)
            for (const Matrix& q : kv.queries)
                out[l].push_back(q.bottomRows(n - contextTokens));
    return out;
}

std::vector<float> layerAttentionScales(const ModelConfig& config) {
    std::vector<float> scales;
    for (int l = 0; l < config.layers; ++l)
        scales.push_back(layerAttentionScale(config, l));
    return scales;
}

ProbeRequest probeRequest(const ModelConfig& config,
                          std::span<const std::vector<CompressedHead>> heads,
                          std::span<const std::vector<Matrix>> queries,
                          const std::atomic<bool>* cancel) {
    ProbeRequest r;
    r.heads = heads;
    r.queries = queries;
    r.groupSize = config.groupSize();
    r.scales = layerAttentionScales(config);
    r.cancel = cancel;
    return r;
}

} // namespace kvs
