// SPDX-License-Identifier: MIT
// The CPU reference backend (Eigen, fp32) and mergeAttention. The identity scheme computes
// softmax(Q Kᵀ · scale) V exactly as written in attendOne() below, with coefficient-wise
// (lazyProduct) matrix products: their summation order does not depend on the thread count or
// GEMM blocking (kvs_core is built with OpenMP, a caller's test may not be), so exact attention
// is reproduced bit for bit (tests/core/test_attention_cpu.cpp).
#include "kvs/attention_backend.h"

#include "kvs/status.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

namespace kvs {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The keys and values attention multiplies by, decoded to fp32 (fp16 data is already rounded).
struct Decoded {
    const Matrix* keys = nullptr;
    const Matrix* values = nullptr;
    Matrix keyStorage;
    Matrix valueStorage;
};

Decoded decode(const CompressedHead& head) {
    Decoded d;
    // Rotated codes are turned back (H_b is its own inverse): the reference reads the keys and
    // values the codec meant, a backend may instead rotate the queries and the output.
    if (hasPreRopeQuantizedKeys(head)) { // decoded, then turned by position
        d.keyStorage = rotatedKeys(head);
        d.keys = &d.keyStorage;
    } else if (head.keyForm == CompressedHead::KeyForm::Quantized) {
        d.keyStorage = head.quantizedKeys.dequantize();
        if (head.keysRotated())
            hadamardRotate(d.keyStorage, head.hadamardBlock);
        d.keys = &d.keyStorage;
    } else if (hasPreRopeLowRankKeys(head)) { // rebuilt and rotated, then read as dense keys
        d.keyStorage = rotatedKeys(head);
        d.keys = &d.keyStorage;
    } else {
        d.keys = &head.keys;
    }
    if (head.valueForm == CompressedHead::ValueForm::Quantized) {
        d.valueStorage = head.quantizedValues.dequantize();
        if (head.valuesRotated())
            hadamardRotate(d.valueStorage, head.hadamardBlock);
        d.values = &d.valueStorage;
    } else {
        d.values = &head.values;
    }
    if (head.recentCount() > 0) { // the window's dense rows follow the older tokens'
        const auto append = [](const Matrix& older, const Matrix& recent) {
            Matrix all(older.rows() + recent.rows(), older.cols());
            all << older, recent;
            return all;
        };
        d.keyStorage = append(*d.keys, head.recentKeys);
        d.keys = &d.keyStorage;
        d.valueStorage = append(*d.values, head.recentValues);
        d.values = &d.valueStorage;
    }
    return d;
}

void checkQueries(const CompressedHead& head, const Matrix& queries, const AttendOptions& options) {
    if (queries.cols() != head.headDim)
        throw Error(ErrorCode::InvalidArgument,
                    "attend: queries have " + std::to_string(queries.cols()) +
                        " columns, the head dimension is " + std::to_string(head.headDim));
    if (!options.queryPositions.empty() &&
        static_cast<Eigen::Index>(options.queryPositions.size()) != queries.rows())
        throw Error(ErrorCode::InvalidArgument,
                    "attend: " + std::to_string(options.queryPositions.size()) +
                        " query positions for " + std::to_string(queries.rows()) + " queries");
}

AttendResult attendOne(const CompressedHead& head, const Matrix& queries,
                       const AttendOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    head.validate();
    checkQueries(head, queries, options);
    const Decoded kv = decode(head);
    const float scale = attentionScale(head, options);
    const Eigen::Index nq = queries.rows();
    const Eigen::Index m = head.keptCount();

    // Scores: ŝ = (q̂ K̂ᵀ) · scale + b, −inf where the causal mask hides a token.
    Matrix scores;
    if (head.keyForm == CompressedHead::KeyForm::LowRank && !hasPreRopeLowRankKeys(head)) {
        const Matrix projected = queries.lazyProduct(head.queryProjection);
        scores = projected.lazyProduct(kv.keys->transpose()) * scale;
    } else {
        scores = queries.lazyProduct(kv.keys->transpose()) * scale;
    }
    if (!head.logWeights.empty())
        for (Eigen::Index i = 0; i < nq; ++i)
            for (Eigen::Index j = 0; j < m; ++j)
                scores(i, j) += head.logWeights[static_cast<std::size_t>(j)];
    if (!options.queryPositions.empty())
        for (Eigen::Index i = 0; i < nq; ++i)
            for (Eigen::Index j = 0; j < m; ++j)
                if (head.positions[static_cast<std::size_t>(j)] >
                    options.queryPositions[static_cast<std::size_t>(i)])
                    scores(i, j) = kNegInf;

    // Softmax per row: subtract the row maximum, exponentiate, divide by the row sum.
    AttendResult result;
    result.logSumExp.assign(static_cast<std::size_t>(nq), kNegInf);
    Matrix probabilities(nq, m);
    for (Eigen::Index i = 0; i < nq; ++i) {
        const float rowMax = m > 0 ? scores.row(i).maxCoeff() : kNegInf;
        if (rowMax == kNegInf) { // nothing visible: output 0, ln Σ = −inf
            probabilities.row(i).setZero();
            continue;
        }
        probabilities.row(i) = (scores.row(i).array() - rowMax).exp();
        const float sum = probabilities.row(i).sum();
        probabilities.row(i) /= sum;
        result.logSumExp[static_cast<std::size_t>(i)] = rowMax + std::log(sum);
    }
    if (m > 0)
        result.outputs = probabilities.lazyProduct(*kv.values);
    else
        result.outputs = Matrix::Zero(nq, kv.values->cols());
    if (options.wantProbabilities)
        result.probabilities = std::move(probabilities);
    if (options.wantScores)
        result.scores = std::move(scores);
    result.wallMicroseconds =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    return result;
}

class CpuBackend final : public AttentionBackend {
public:
    std::string name() const override { return "CPU (Eigen)"; }
    bool isCpuEmulation() const override { return true; }

    Result<AttendResult> attend(const CompressedHead& head, const Matrix& queries,
                                const AttendOptions& options) override {
        return catchErrors([&] { return attendOne(head, queries, options); });
    }

    Result<std::vector<AttendResult>> attendLayer(const LayerAttendRequest& request) override {
        return catchErrors([&] {
            checkLayerRequest(request);
            // Query heads in parallel (a layer of an 8B model is 32 heads of thousands of keys);
            // the first error in head order is the layer's.
            const int n = static_cast<int>(request.queries.size());
            std::vector<AttendResult> results(request.queries.size());
            std::vector<std::optional<Error>> errors(request.queries.size());
            // A layer worth the threads: the streaming evaluation attends one probe row at a
            // time (thousands of calls of a few thousand multiply-adds), and waking the team for
            // each cost more than the work (78% of its time in the barrier's spin).
            double work = 0;
            for (std::size_t q = 0; q < request.queries.size(); ++q)
                work +=
                    static_cast<double>(request.queries[q].rows()) *
                    static_cast<double>(request.queries[q].cols()) *
                    static_cast<double>(
                        request.heads[q / static_cast<std::size_t>(request.groupSize)].keptCount());
            const bool parallel = n > 1 && work > 2e5;
#pragma omp parallel for schedule(dynamic) if (parallel)
            for (int q = 0; q < n; ++q) {
                const auto i = static_cast<std::size_t>(q);
                try {
                    results[i] =
                        attendOne(request.heads[i / static_cast<std::size_t>(request.groupSize)],
                                  request.queries[i], request.options);
                } catch (const Error& e) {
                    errors[i].emplace(e.code(), e.what());
                } catch (const std::bad_alloc&) {
                    errors[i].emplace(ErrorCode::OutOfMemory,
                                      "out of memory attending query head " + std::to_string(q));
                }
            }
            for (auto& e : errors)
                if (e)
                    throw *e;
            return results;
        });
    }
};

} // namespace

float attentionScale(const CompressedHead& head, const AttendOptions& options) {
    return options.scale != 0.0f ? options.scale
                                 : 1.0f / std::sqrt(static_cast<float>(head.headDim));
}

void checkLayerRequest(const LayerAttendRequest& request) {
    if (request.groupSize < 1)
        throw Error(ErrorCode::InvalidArgument, "attendLayer: group size must be at least 1, got " +
                                                    std::to_string(request.groupSize));
    if (request.queries.size() !=
        request.heads.size() * static_cast<std::size_t>(request.groupSize))
        throw Error(ErrorCode::InvalidArgument,
                    "attendLayer: " + std::to_string(request.queries.size()) + " query heads for " +
                        std::to_string(request.heads.size()) + " KV heads in groups of " +
                        std::to_string(request.groupSize));
}

std::unique_ptr<AttentionBackend> makeCpuBackend() {
    return std::make_unique<CpuBackend>();
}

void mergeAttention(Matrix& outputs, std::vector<float>& logSumExp, const Matrix& otherOutputs,
                    const std::vector<float>& otherLogSumExp) {
    if (outputs.rows() != otherOutputs.rows() || outputs.cols() != otherOutputs.cols() ||
        logSumExp.size() != static_cast<std::size_t>(outputs.rows()) ||
        otherLogSumExp.size() != logSumExp.size())
        throw Error(ErrorCode::InvalidArgument,
                    "mergeAttention: shapes differ (" + std::to_string(outputs.rows()) + " x " +
                        std::to_string(outputs.cols()) + " with " +
                        std::to_string(logSumExp.size()) + " log-sums vs " +
                        std::to_string(otherOutputs.rows()) + " x " +
                        std::to_string(otherOutputs.cols()) + " with " +
                        std::to_string(otherLogSumExp.size()) + ")");
    for (Eigen::Index i = 0; i < outputs.rows(); ++i) {
        const float l1 = logSumExp[static_cast<std::size_t>(i)];
        const float l2 = otherLogSumExp[static_cast<std::size_t>(i)];
        const float top = std::max(l1, l2);
        if (top == kNegInf)
            continue; // neither side saw anything: stays 0 with ln Σ = −inf
        // Weights relative to the larger log-sum: exp never overflows, one side weighs 1.
        const float w1 = std::exp(l1 - top);
        const float w2 = std::exp(l2 - top);
        const float total = w1 + w2;
        outputs.row(i) = (outputs.row(i) * w1 + otherOutputs.row(i) * w2) / total;
        logSumExp[static_cast<std::size_t>(i)] = top + std::log(total);
    }
}

void mergeRecentWindow(AttendResult& older, const AttendResult& recent) {
    const std::vector<float> olderLse = older.logSumExp;
    mergeAttention(older.outputs, older.logSumExp, recent.outputs, recent.logSumExp);
    // Each part's probabilities sum to 1 over its own tokens: weigh them by e^{l_part − l}.
    const auto concatenate = [](Matrix& left, const Matrix& right) {
        if (left.size() == 0 && right.size() == 0)
            return;
        if (left.rows() != right.rows())
            throw Error(ErrorCode::InvalidArgument, "mergeRecentWindow: maps of " +
                                                        std::to_string(left.rows()) + " and " +
                                                        std::to_string(right.rows()) + " rows");
        Matrix joined(left.rows(), left.cols() + right.cols());
        joined << left, right;
        left = std::move(joined);
    };
    if (older.probabilities.size() != 0 || recent.probabilities.size() != 0) {
        Matrix right = recent.probabilities;
        for (Eigen::Index i = 0; i < older.probabilities.rows(); ++i) {
            const float l = older.logSumExp[static_cast<std::size_t>(i)];
            if (l == kNegInf)
                continue;
            older.probabilities.row(i) *= std::exp(olderLse[static_cast<std::size_t>(i)] - l);
            if (i < right.rows())
                right.row(i) *= std::exp(recent.logSumExp[static_cast<std::size_t>(i)] - l);
        }
        concatenate(older.probabilities, right);
    }
    concatenate(older.scores, recent.scores);
    older.timings.insert(older.timings.end(), recent.timings.begin(), recent.timings.end());
    older.allocation += recent.allocation;
    older.wallMicroseconds += recent.wallMicroseconds;
}

} // namespace kvs
