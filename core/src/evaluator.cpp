// SPDX-License-Identifier: MIT
// The evaluation protocol (DESIGN.md "Data flow" and "Metrics").
#include "kvs/evaluator.h"
#include "evaluator_internal.h"
#include "kvs/finite.h"
#include "kvs/probe_attention.h"
#include "rope.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

namespace kvs {
namespace evaluation {

double msSince(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int resolveContext(const Capture& c, const EvalOptions& o) {
    const int n = c.tokenCount();
    // Sliding-window layers attend to the last `window` positions only; the protocol here attends
    // to the whole context, which is right only while the prompt fits in the window.
    for (int l = 0; l < c.config.layers; ++l)
        if (c.config.windowApplies(l) && n > *c.config.slidingWindow)
            throw Error(
                ErrorCode::Unsupported,
                c.modelName + ": layer " + std::to_string(l) +
                    " uses sliding-window "
                    "attention (window " +
                    std::to_string(*c.config.slidingWindow) + ") and the prompt has " +
                    std::to_string(n) +
                    " tokens; the evaluator handles such layers only for prompts within the "
                    "window");
    const int ctx = o.contextTokens > 0 ? o.contextTokens : (3 * n) / 4;
    if (n < 2)
        throw Error(ErrorCode::InvalidArgument,
                    "the prompt has " + std::to_string(n) +
                        " token(s); evaluation needs a context and at least one probe token");
    if (ctx < 1 || ctx >= n)
        throw Error(ErrorCode::InvalidArgument,
                    "context of " + std::to_string(ctx) + " tokens leaves no probe tokens in a " +
                        std::to_string(n) + "-token prompt (choose 1 … " + std::to_string(n - 1) +
                        ")");
    return ctx;
}

bool valuesShared(const ModelConfig& c) {
    return c.sharing == ProjectionSharing::KEqV || c.sharing == ProjectionSharing::QEqKEqV;
}

// K=V: how the keys attention uses follow from the cached ones (the values) — under RoPE, the
// rotation for the whole prompt (dynamic scaling depends on its length); with learned positions,
// none (zero angles: keys equal values). Backends use it to keep one copy.
KeyRotation keyRotationOf(const Capture& cap) {
    KeyRotation r;
    const ModelConfig& c = cap.config;
    if (c.positions != PositionKind::Rope) {
        if (valuesShared(c))
            r.frequencies.assign(static_cast<std::size_t>(c.headDim / 2), 0.0f);
        return r;
    }
    for (double f : ropeInverseFrequencies(c, cap.tokenCount()))
        r.frequencies.push_back(static_cast<float>(f));
    r.interleaved = c.ropeLayout == RopeLayout::Interleaved;
    r.scale = static_cast<float>(ropeAttentionFactor(c));
    return r;
}

HeadInput headInput(const Capture& cap, int l, int h, int ctx, std::uint64_t seed) {
    const KvHeadCapture& hc =
        cap.layers[static_cast<std::size_t>(l)].kvHeads[static_cast<std::size_t>(h)];
    HeadInput in;
    in.layer = l;
    in.kvHead = h;
    in.keys = hc.keys.topRows(ctx);
    if (hc.keysPreRope.rows() > 0)
        in.keysPreRope = hc.keysPreRope.topRows(ctx);
    in.values = hc.values.topRows(ctx);
    in.valuesSharedWithKeys = valuesShared(cap.config);
    in.keyRotation = keyRotationOf(cap);
    for (const Matrix& q : hc.queries)
        in.queries.push_back(q.topRows(ctx));
    in.scale = layerAttentionScale(cap.config, l);
    in.seed = seed;
    return in;
}

std::vector<CompressedHead> exactHeads(const Capture& cap, int l, int ctx) {
    std::vector<CompressedHead> heads;
    for (const auto& hc : cap.layers[static_cast<std::size_t>(l)].kvHeads) {
        CompressedHead e = exactHead(hc.keys.topRows(ctx), hc.values.topRows(ctx), Precision::F32);
        if (valuesShared(cap.config)) {
            e.valueForm = CompressedHead::ValueForm::SharedWithKeys;
            e.keyRotation = keyRotationOf(cap);
        }
        heads.push_back(std::move(e));
    }
    return heads;
}

// The exact prefill of the context is already in the capture (its post-RoPE keys and its values,
// as the cache holds them): the model never runs the context again.
KvCache contextPrefill(const Capture& cap, int ctx) {
    KvCache cache;
    cache.length = ctx;
    for (const LayerCapture& layer : cap.layers) {
        auto& heads = cache.layers.emplace_back();
        for (const KvHeadCapture& hc : layer.kvHeads)
            heads.push_back({hc.keys.topRows(ctx), hc.values.topRows(ctx)});
    }
    return cache;
}

Matrix probeLogits(const Model& model, const Capture& cap, int ctx, const KvCache& prefill,
                   const std::vector<std::vector<CompressedHead>>& heads,
                   const std::vector<std::vector<CompressedHead>>* exact, AttentionBackend& backend,
                   int onlyLayer) {
    const std::vector<TokenId> probe(cap.tokens.begin() + ctx, cap.tokens.end());
    KvCache cache = prefill; // forward appends the probe tokens
    const BackendContext bc(heads, exact, ctx, cap.config.groupSize(), backend, onlyLayer);
    return model.forwardWithContext(probe, cache, bc);
}

ModelQuality compareLogits(const Matrix& exact, const Matrix& compressed,
                           const std::vector<TokenId>& targets) {
    checkFinite(exact, "the exact model's probe logits"); // NaN would score as KL 0
    checkFinite(compressed, "the probe logits with the compressed cache");
    ModelQuality q;
    const Eigen::Index rows = exact.rows();
    q.positions = static_cast<int>(rows);
    double kl = 0, nllExact = 0, nllComp = 0;
    int agree = 0, withTarget = 0;
    for (Eigen::Index i = 0; i < rows; ++i) {
        const Eigen::ArrayXd a = exact.row(i).cast<double>().transpose().array();
        const Eigen::ArrayXd b = compressed.row(i).cast<double>().transpose().array();
        const double la = a.maxCoeff() + std::log((a - a.maxCoeff()).exp().sum());
        const double lb = b.maxCoeff() + std::log((b - b.maxCoeff()).exp().sum());
        const Eigen::ArrayXd logp = a - la, logq = b - lb;
        kl += (logp.exp() * (logp - logq)).sum();
        Eigen::Index ia = 0, ib = 0;
        exact.row(i).maxCoeff(&ia);
        compressed.row(i).maxCoeff(&ib);
        agree += ia == ib;
        if (static_cast<std::size_t>(i) < targets.size()) {
            const auto t = static_cast<Eigen::Index>(targets[static_cast<std::size_t>(i)]);
            nllExact -= logp(t);
            nllComp -= logq(t);
            ++withTarget;
        }
    }
    q.klMean = rows ? std::max(0.0, kl / static_cast<double>(rows)) : 0.0;
    q.top1Agreement = rows ? static_cast<double>(agree) / static_cast<double>(rows) : 1.0;
    if (withTarget) {
        q.perplexityExact = std::exp(nllExact / withTarget);
        q.perplexityCompressed = std::exp(nllComp / withTarget);
        q.perplexityChangePercent = 100.0 * (q.perplexityCompressed / q.perplexityExact - 1.0);
    }
    return q;
}

void checkCancel(const EvalOptions& o) {
    if (o.cancel && o.cancel->load())
        throw Error(ErrorCode::Cancelled, "evaluation cancelled");
}

} // namespace evaluation
using namespace evaluation;

const char* evalModeName(EvalMode mode) {
    return mode == EvalMode::Streaming ? "streaming" : "post-prefill";
}

std::optional<EvalMode> parseEvalMode(const std::string& text) {
    if (text == "post-prefill")
        return EvalMode::PostPrefill;
    if (text == "streaming")
        return EvalMode::Streaming;
    return std::nullopt;
}

double coresetBoundTokens(int headDim, double rhoEff, double epsilon) {
    if (!(epsilon > 0))
        return std::numeric_limits<double>::infinity();
    return std::min(1e300, std::sqrt(static_cast<double>(headDim)) *
                               std::exp(std::min(rhoEff, 690.0)) / epsilon);
}

float layerAttentionScale(const ModelConfig& c, int layer) {
    float s = c.family == Family::Gpt2 && !c.scaleAttnWeights
                  ? 1.0f
                  : 1.0f / std::sqrt(static_cast<float>(c.headDim));
    if (c.family == Family::Gpt2 && c.scaleAttnByInverseLayerIdx)
        s /= static_cast<float>(layer + 1);
    return s;
}

namespace evaluation {

// Every layer and KV head of `capture` through `scheme` (in parallel; the first error in
// (layer, head) order is reported, whatever the thread timing).
std::vector<std::vector<CompressedHead>>
compressHeads(const Capture& capture, const Scheme& scheme, const SchemeSetting& setting,
              int contextTokens, std::uint64_t seed, const Model* model,
              const std::vector<SchemeSetting>* perHead = nullptr) {
    const ParamValues params = setting.resolved();
    const int L = capture.config.layers, Hkv = capture.config.kvHeads;
    bool needsWeights = scheme.info().needsWeights;
    if (perHead)
        for (const SchemeSetting& s : *perHead)
            needsWeights = needsWeights || schemeOf(s).info().needsWeights;
    std::vector<Matrix> keyProjections;
    if (needsWeights) {
        if (!model)
            throw Error(ErrorCode::Unsupported,
                        setting.id + " factors the model's key projection: it needs the model's "
                                     "weights, and a capture alone has none");
        keyProjections = keyProjectionsWithBias(*model);
    }
    std::vector<std::vector<CompressedHead>> out(
        static_cast<std::size_t>(L), std::vector<CompressedHead>(static_cast<std::size_t>(Hkv)));
    std::vector<std::optional<Error>> errors(static_cast<std::size_t>(L * Hkv));
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < L * Hkv; ++i) {
        const int l = i / Hkv, h = i % Hkv;
        // EvalOptions::headSettings: this head's own setting.
        const SchemeSetting& own = perHead ? (*perHead)[static_cast<std::size_t>(i)] : setting;
        try {
            HeadInput in = headInput(capture, l, h, contextTokens, seed);
            if (!keyProjections.empty())
                in.keyProjection = keyProjections[static_cast<std::size_t>(l)].middleCols(
                    Eigen::Index(h) * in.headDim(), in.headDim());
            out[static_cast<std::size_t>(l)][static_cast<std::size_t>(h)] =
                perHead ? schemeOf(own).compress(in, own.resolved()) : scheme.compress(in, params);
        } catch (const Error& e) {
            errors[static_cast<std::size_t>(i)].emplace(e.code(), e.what());
        } catch (const std::bad_alloc&) {
            errors[static_cast<std::size_t>(i)].emplace(ErrorCode::OutOfMemory, "out of memory");
        } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(i)].emplace(ErrorCode::Internal, e.what());
        }
    }
    for (int i = 0; i < L * Hkv; ++i)
        if (const auto& e = errors[static_cast<std::size_t>(i)])
            throw Error(e->code(),
                        (perHead ? (*perHead)[static_cast<std::size_t>(i)] : setting).toString() +
                            ": layer " + std::to_string(i / Hkv) + ", KV head " +
                            std::to_string(i % Hkv) + ": " + e->what());
    return out;
}

// Layer l's output projection split per query head: rows [h·d, (h+1)·d) of W_o.
std::vector<Matrix> outputRows(const Model& model, int layer) {
    const Matrix wo = model.attentionProjections(layer).wo;
    const int d = model.config().headDim;
    std::vector<Matrix> rows;
    for (int h = 0; h < model.config().heads; ++h)
        rows.push_back(wo.middleRows(Eigen::Index(h) * d, d));
    return rows;
}

const Scheme& schemeOf(const SchemeSetting& setting) {
    const Scheme* scheme = findScheme(setting.id);
    if (!scheme)
        throw Error(ErrorCode::InvalidArgument, "unknown scheme '" + setting.id + "'");
    return *scheme;
}

// EvalOptions::headSettings: one per layer and KV head, after the prefill, none rewriting the
// weights (a rewrite changes every head of the model at once).
void checkHeadSettings(const Capture& cap, const Scheme& scheme, const EvalOptions& options) {
    const std::size_t want =
        static_cast<std::size_t>(cap.config.layers) * static_cast<std::size_t>(cap.config.kvHeads);
    if (options.headSettings.size() != want)
        throw Error(ErrorCode::InvalidArgument,
                    "per-head settings: " + std::to_string(options.headSettings.size()) +
                        " given, the capture has " + std::to_string(want) +
                        " heads (layers × KV heads, layer-major)");
    if (options.mode != EvalMode::PostPrefill)
        throw Error(ErrorCode::InvalidArgument,
                    "per-head settings are evaluated after the prefill (post-prefill mode) only");
    const auto refuse = [](const std::string& id) {
        throw Error(ErrorCode::Unsupported,
                    id + " rewrites the model's weights, which changes every head at once: it "
                         "cannot be one head's setting");
    };
    if (scheme.info().transformsWeights)
        refuse(scheme.info().id);
    for (const SchemeSetting& s : options.headSettings)
        if (schemeOf(s).info().transformsWeights)
            refuse(s.id);
}

} // namespace evaluation

Result<std::vector<std::vector<CompressedHead>>> compressAll(const Capture& capture,
                                                             const SchemeSetting& setting,
                                                             int contextTokens, std::uint64_t seed,
                                                             const Model* model) {
    return catchErrors([&] {
        const Scheme& scheme = schemeOf(setting);
        if (scheme.info().transformsWeights)
            throw Error(ErrorCode::Unsupported,
                        setting.id + " rewrites the model's weights: its cache is the rewritten "
                                     "model's, made by evaluate() with the model");
        return compressHeads(capture, scheme, setting, contextTokens, seed, model);
    });
}

namespace evaluation {

// Each probe query over the probe's own keys up to its position (causal), per layer and query
// head: keys and values as the capture holds them (values: the pre-RoPE keys under K=V).
std::vector<std::vector<AttendResult>>
probeSelfAttention(const Capture& cap, int ctx, const std::vector<std::vector<Matrix>>& queries,
                   const std::vector<float>& scales) {
    const int p = cap.tokenCount() - ctx, g = cap.config.groupSize();
    const auto cpu = makeCpuBackend();
    AttendOptions options;
    for (int i = 0; i < p; ++i)
        options.queryPositions.push_back(i);
    std::vector<std::vector<AttendResult>> out(queries.size());
    for (std::size_t l = 0; l < queries.size(); ++l) {
        options.scale = l < scales.size() ? scales[l] : 0.0f;
        const auto& kvHeads = cap.layers[l].kvHeads;
        for (std::size_t q = 0; q < queries[l].size(); ++q) {
            const KvHeadCapture& hc = kvHeads[q / static_cast<std::size_t>(g)];
            const CompressedHead probe =
                exactHead(hc.keys.middleRows(ctx, p), hc.values.middleRows(ctx, p), Precision::F32);
            out[l].push_back(cpu->attend(probe, queries[l][q], options).valueOrThrow());
        }
    }
    return out;
}

} // namespace evaluation

Result<ExactReference> computeExactReference(const Capture& cap, const Model* model,
                                             AttentionBackend& backend,
                                             const EvalOptions& options) {
    return catchErrors([&] {
        ExactReference ref;
        const int ctx = resolveContext(cap, options);
        ref.contextTokens = ctx;
        std::vector<std::vector<CompressedHead>> heads;
        for (int l = 0; l < cap.config.layers; ++l)
            heads.push_back(exactHeads(cap, l, ctx));
        const auto queries = probeQueries(cap, ctx);
        ProbeRequest r = probeRequest(cap.config, heads, queries, options.cancel);
        r.probabilities = true;
        r.scores = true;
        ref.attention = probeAttention(r, backend).valueOrThrow();
        ref.probeSelf = probeSelfAttention(cap, ctx, queries, r.scales);
        ref.mode = options.mode;
        if (options.mode == EvalMode::Streaming)
            ref.streamingAttention = streamingExactAttention(cap, ctx, backend, queries, r.scales);
        if (model && options.modelQuality) {
            checkCancel(options);
            ref.contextCache = contextPrefill(cap, ctx);
            ref.probeLogits =
                probeLogits(*model, cap, ctx, ref.contextCache, heads, nullptr, backend, -1);
        }
        return ref;
    });
}

namespace evaluation {

// ‖Δ‖ / ‖O‖ from the sums of squares (‖Δ‖ itself when O is zero).
double ratioOfNorms(double diffSquares, double normSquares) {
    return normSquares > 0 ? std::sqrt(diffSquares / normSquares) : std::sqrt(diffSquares);
}

void addHead(EvalResult& result, HeadMetrics m, std::pair<double, double>& squares) {
    checkFinite(m);
    result.bytes += m.bytes;
    result.fp16Bytes += m.fp16Bytes;
    result.contextError += m.contextError;
    result.massLost += m.massLost;
    result.totalVariation += m.totalVariation;
    result.streamBits += m.streamBits;
    result.sideBits += m.sideBits;
    result.entropyBits += m.entropyBits;
    result.codedElements += m.codedElements;
    squares.first += m.outputSquares.first;
    squares.second += m.outputSquares.second;
    result.logitError = std::max(result.logitError, m.logitError);
    if (!m.degenerate.empty() && result.degenerateHeads++ == 0)
        result.degenerate = m.degenerate;
    result.heads.push_back(std::move(m));
}

void finishTotals(EvalResult& result, const std::pair<double, double>& squares) {
    const double nh = static_cast<double>(result.heads.size());
    result.contextError /= nh;
    result.massLost /= nh;
    result.totalVariation /= nh;
    result.outputError = ratioOfNorms(squares.first, squares.second);
    result.memoryFraction =
        static_cast<double>(result.bytes.total()) / static_cast<double>(result.fp16Bytes);
}

// max_i ‖x_i − x̄‖ over the rows of x: the spread the coreset bound sees once the rows share no
// offset (a shift every key shares leaves softmax unchanged; one every value shares moves o and ô
// alike).
// Two passes over the rows without a copy: the streaming evaluation asks for it once per probe
// row and head, over every token before the row.
double centredSpread(const Eigen::Ref<const Matrix>& x) {
    const Eigen::Index rows = x.rows(), cols = x.cols();
    if (rows == 0)
        return 0.0;
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(cols);
    for (Eigen::Index i = 0; i < rows; ++i)
        for (Eigen::Index j = 0; j < cols; ++j)
            mean(j) += x(i, j);
    mean /= static_cast<double>(rows);
    double worst = 0;
    for (Eigen::Index i = 0; i < rows; ++i) {
        double squares = 0;
        for (Eigen::Index j = 0; j < cols; ++j) {
            const double v = x(i, j) - mean(j);
            squares += v * v;
        }
        worst = std::max(worst, squares);
    }
    return std::sqrt(worst);
}

// ‖x_i − μ_t‖² = ‖x_i‖² − 2·x_i·μ_t + ‖μ_t‖² for every prefix mean μ_t at once: one product of
// the rows with the prefix means, then a running maximum down each column.
std::vector<double> prefixCentredSpreads(const Matrix& x, int first, int last) {
    const int count = last - first, cols = static_cast<int>(x.cols());
    std::vector<double> out(static_cast<std::size_t>(std::max(0, count)), 0.0);
    if (count <= 0 || first < 1)
        return out;
    const Eigen::MatrixXd xd = x.topRows(last - 1).cast<double>();
    Eigen::MatrixXd means(cols, count); // column p: the mean of rows 0 … first + p − 1
    Eigen::VectorXd sum = xd.topRows(first).colwise().sum().transpose();
    for (int p = 0; p < count; ++p) {
        if (p > 0)
            sum += xd.row(first + p - 1).transpose();
        means.col(p) = sum / static_cast<double>(first + p);
    }
    const Eigen::MatrixXd dots = xd * means; // (last − 1) × count
    const Eigen::VectorXd squares = xd.rowwise().squaredNorm();
    for (int p = 0; p < count; ++p) {
        const int rows = first + p;
        double worst = -std::numeric_limits<double>::infinity();
        for (int i = 0; i < rows; ++i)
            worst = std::max(worst, squares(i) - 2.0 * dots(i, p));
        out[static_cast<std::size_t>(p)] =
            std::sqrt(std::max(0.0, worst + means.col(p).squaredNorm()));
    }
    return out;
}

// The per-head metrics of DESIGN.md "Metrics" (and, with maps, the exact, compressed and
// difference maps and the mass lost per probe row).
HeadMetrics headMetrics(const HeadProbe& in, bool maps, bool exactMaps) {
    const CompressedHead& ch = in.compressed;
    const ModelConfig& config = in.capture.config;
    const int ctx = in.contextTokens, d = config.headDim;
    HeadMetrics m;
    m.layer = in.layer;
    m.kvHead = in.kvHead;
    m.contextTokens = ctx;
    m.keptTokens = ch.keptCount();
    m.keyRank = ch.keyRank();
    m.weighted = !ch.logWeights.empty();
    m.degenerate = ch.degenerate;
    if (ch.entropyCoded) {
        const auto& coded = *ch.entropyCoded;
        m.streamBits = 8.0 * static_cast<double>(coded.keyStreamBytes + coded.valueStreamBytes);
        m.sideBits = 8.0 * static_cast<double>(coded.sideBytes);
        m.entropyBits = coded.keyEntropyBits + coded.valueEntropyBits;
        m.codedElements = coded.elements;
    }
    m.bytes = ch.bytes();
    m.fp16Bytes = in.fp16Bytes;
    double errSum = 0, absSum = 0, massSum = 0, tvSum = 0, qmax = 0;
    double outDiff2 = 0, outNorm2 = 0; // the head output error's sums of squares
    int count = 0;
    const KvHeadCapture& hc = in.capture.layers[static_cast<std::size_t>(in.layer)]
                                  .kvHeads[static_cast<std::size_t>(in.kvHead)];
    const double kmax = in.keySpread >= 0 ? in.keySpread : centredSpread(hc.keys.topRows(ctx));
    const double vmax =
        in.valueSpread >= 0 ? in.valueSpread : centredSpread(hc.values.topRows(ctx));
    double worstAbs = 0; // the worst probe query's ‖o − ô‖ over the context
    for (std::size_t j = 0; j < in.exact.size(); ++j) {
        const AttendResult& e = in.exact[j];
        const AttendResult& c = in.attended[j];
        qmax = std::max(qmax, static_cast<double>(in.queries[j].rowwise().norm().maxCoeff()));
        // The output as the model reads it: the context part merged with the probe's own part.
        Matrix exactOut = e.outputs;
        Matrix compressedOut = c.outputs;
        std::vector<float> exactLse = e.logSumExp;
        std::vector<float> compressedLse = c.logSumExp;
        const AttendResult& self = in.probeSelf[j];
        const AttendResult& compressedSelf = in.compressedProbeSelf[j];
        mergeAttention(exactOut, exactLse, self.outputs, self.logSumExp);
        mergeAttention(compressedOut, compressedLse, compressedSelf.outputs,
                       compressedSelf.logSumExp);
        const auto readout = [&](const Matrix& o, std::span<const Matrix> rows,
                                 std::span<const RowVector> offset) {
            if (rows.empty())
                return o;
            Matrix projected = o * rows[j];
            if (!offset.empty() && offset[j].size())
                projected.rowwise() += offset[j];
            return projected;
        };
        exactOut = readout(exactOut, in.exactReadout, {});
        compressedOut = readout(compressedOut, in.compressedReadout, in.compressedOffset);
        const Matrix exactContext = readout(e.outputs, in.exactReadout, {});
        const Matrix compressedContext =
            readout(c.outputs, in.compressedReadout, in.compressedOffset);
        outDiff2 += (exactOut.cast<double>() - compressedOut.cast<double>()).squaredNorm();
        outNorm2 += exactOut.cast<double>().squaredNorm();
        if (!in.errorReadout.empty())
            m.projectedSquares += ((exactOut.cast<double>() - compressedOut.cast<double>()) *
                                   in.errorReadout[j].cast<double>())
                                      .squaredNorm();
        std::vector<double> rowMass;
        std::vector<double> rowShift;
        for (Eigen::Index i = 0; i < e.outputs.rows(); ++i) {
            const double on = exactContext.row(i).cast<double>().norm();
            const double diff =
                (exactContext.row(i).cast<double>() - compressedContext.row(i).cast<double>())
                    .norm();
            const double rel = on > 0 ? diff / on : diff;
            errSum += rel;
            absSum += diff;
            worstAbs = std::max(worstAbs, diff);
            m.maxContextError = std::max(m.maxContextError, rel);
            // One pass over the kept tokens: the exact mass they hold, |p − p̂| on them (total
            // variation adds the exact mass of the rest) and the logit error.
            const double lse = c.logSumExp[static_cast<std::size_t>(i)];
            double kept = 0, shift = 0;
            for (int k = 0; k < ch.keptCount(); ++k) {
                const int pos = ch.positions[static_cast<std::size_t>(k)];
                const double p = e.probabilities(i, pos);
                const double sc = c.scores(i, k);
                kept += p;
                shift += std::abs((std::isfinite(sc) ? std::exp(sc - lse) : 0.0) - p);
                const double bias =
                    ch.logWeights.empty() ? 0.0 : ch.logWeights[static_cast<std::size_t>(k)];
                const double sExact = e.scores(i, pos);
                if (std::isfinite(sExact) && std::isfinite(sc))
                    m.logitError = std::max(m.logitError, std::abs(sExact - (sc - bias)));
            }
            const double lost = std::max(0.0, 1.0 - kept);
            const double tv = 0.5 * (lost + shift);
            massSum += lost;
            tvSum += tv;
            if (maps) {
                rowMass.push_back(lost);
                rowShift.push_back(tv);
            }
            ++count;
        }
        if (maps) {
            Matrix cm = Matrix::Zero(c.outputs.rows(), ctx);
            for (int k = 0; k < ch.keptCount(); ++k)
                cm.col(ch.positions[static_cast<std::size_t>(k)]) = c.probabilities.col(k);
            m.differenceMap.push_back(cm - e.probabilities);
            if (exactMaps)
                m.exactMap.push_back(e.probabilities);
            m.compressedMap.push_back(std::move(cm));
            m.rowMassLost.push_back(std::move(rowMass));
            m.rowTotalVariation.push_back(std::move(rowShift));
        }
    }
    m.contextError = count ? errSum / count : 0.0;
    m.massLost = count ? massSum / count : 0.0;
    m.totalVariation = count ? tvSum / count : 0.0;
    m.outputError = ratioOfNorms(outDiff2, outNorm2);
    m.outputSquares = {outDiff2, outNorm2};
    m.rhoEff = qmax * kmax * in.scale;
    // The bound is stated for every query and unit-norm values: ε = max ‖o − ô‖ / max‖v − v̄‖.
    m.valueScaledError = vmax > 0 ? worstAbs / vmax : 0.0;
    m.meanValueScaledError = count && vmax > 0 ? absSum / count / vmax : 0.0;
    m.boundTokens = coresetBoundTokens(d, m.rhoEff, m.valueScaledError);
    return m;
}

// Model-level quality: the probe decoded teacher-forced with the compressed context in every
// layer (and, when asked, in one layer at a time).
void addModelQuality(EvalResult& result, const Model& model, const Capture& cap, int ctx,
                     const ExactReference& reference, const KvCache& prefill,
                     const std::vector<std::vector<CompressedHead>>& heads,
                     AttentionBackend& backend, const EvalOptions& options, bool rewritten) {
    const std::vector<TokenId> targets(cap.tokens.begin() + ctx + 1, cap.tokens.end());
    result.quality =
        compareLogits(reference.probeLogits,
                      probeLogits(model, cap, ctx, prefill, heads, nullptr, backend, -1), targets);
    // A rewritten model changes every layer at once (its config is the whole model's): there is
    // no "only this layer compressed" to measure.
    if (!options.perLayerQuality || rewritten)
        return;
    std::vector<std::vector<CompressedHead>> exact;
    for (int l = 0; l < cap.config.layers; ++l)
        exact.push_back(exactHeads(cap, l, ctx));
    for (int l = 0; l < cap.config.layers; ++l) {
        checkCancel(options);
        result.perLayerQuality.push_back(compareLogits(
            reference.probeLogits,
            probeLogits(model, cap, ctx, reference.contextCache, heads, &exact, backend, l),
            targets));
    }
}

} // namespace evaluation

Result<EvalResult> evaluate(const Capture& cap, const Model* model, const SchemeSetting& setting,
                            AttentionBackend& backend, const EvalOptions& options,
                            const ExactReference* reference) {
    return catchErrors([&] {
        const int ctx = resolveContext(cap, options);
        const Scheme& scheme = schemeOf(setting);
        // Refused before the reference's work: the scheme cannot stream at all.
        if (options.mode == EvalMode::Streaming && !scheme.info().canStream)
            throw Error(ErrorCode::InvalidArgument,
                        setting.id + " cannot stream: " + scheme.info().noStreamReason);
        const std::vector<SchemeSetting>* perHead = nullptr;
        if (!options.headSettings.empty()) {
            checkHeadSettings(cap, scheme, options);
            perHead = &options.headSettings;
        }
        ExactReference computed;
        if (!reference || reference->contextTokens != ctx || reference->mode != options.mode ||
            (model && options.modelQuality && reference->probeLogits.rows() == 0)) {
            computed = computeExactReference(cap, model, backend, options).valueOrThrow();
            reference = &computed;
        }
        if (options.mode == EvalMode::Streaming)
            return evaluateStreaming(cap, model, setting, backend, options, *reference);
        EvalResult result;
        result.scheme = setting.toString();
        result.mode = options.mode;
        result.contextTokens = ctx;
        result.probeTokens = cap.tokenCount() - ctx;
        result.backend = backend.name();

        // The compressed side: the exact model's capture and prefill, or for a scheme that
        // rewrites the weights, the rewritten model's own prefill of the same tokens.
        const auto t0 = Clock::now();
        std::optional<Model> rewrittenModel;
        std::optional<Capture> rewrittenCapture;
        KvCache rewrittenPrefill;
        std::vector<std::vector<AttendResult>> rewrittenSelf;
        std::vector<std::vector<RowVector>> outputOffsets;
        if (scheme.info().transformsWeights) {
            if (!model)
                throw Error(ErrorCode::Unsupported,
                            setting.id + " rewrites the model's weights: evaluating it needs the "
                                         "model, not only a capture");
            WeightRewrite rewrite = scheme.rewriteWeights(*model, cap, ctx, setting.resolved());
            result.fitR2 = std::move(rewrite.fitR2);
            outputOffsets = std::move(rewrite.outputOffsets);
            rewrittenModel.emplace(
                model->withAttention(std::move(rewrite.config), std::move(rewrite.layers)));
            rewrittenCapture.emplace(rewrittenModel->captureTokens(cap.tokens).valueOrThrow());
            checkCancel(options);
        }
        const Capture& subject = rewrittenCapture ? *rewrittenCapture : cap;
        const Model* subjectModel = rewrittenModel ? &*rewrittenModel : model;
        const int L = subject.config.layers, Hkv = subject.config.kvHeads,
                  g = subject.config.groupSize();
        const auto heads =
            compressHeads(subject, scheme, setting, ctx, options.seed, subjectModel, perHead);
        result.compressMilliseconds = msSince(t0);

        const auto queries = probeQueries(subject, ctx);
        ProbeRequest probe = probeRequest(subject.config, heads, queries, options.cancel);
        probe.scores = true;
        probe.probabilities = options.attentionMaps;
        const auto ta = Clock::now();
        const auto attended = probeAttention(probe, backend).valueOrThrow();
        result.attendMilliseconds = msSince(ta);
        if (rewrittenCapture)
            rewrittenSelf = probeSelfAttention(subject, ctx, queries, probe.scales);
        const auto& subjectSelf = rewrittenCapture ? rewrittenSelf : reference->probeSelf;
        // [layer][query head]: W_o's rows per head of both models, for rewrites only.
        std::vector<std::vector<Matrix>> exactReadout, rewrittenReadout;
        if (rewrittenModel)
            for (int l = 0; l < L; ++l) {
                exactReadout.push_back(outputRows(*model, l));
                rewrittenReadout.push_back(outputRows(*rewrittenModel, l));
            }
        // Each head stands for its share of the original model's fp16 cache (keys only where
        // the original model's values are its keys).
        const std::size_t baseline =
            fp16BaselineBytes(ctx, cap.config.headDim) / (valuesShared(cap.config) ? 2 : 1) *
            static_cast<std::size_t>(cap.config.kvHeads) / static_cast<std::size_t>(Hkv);
        std::pair<double, double> squares{0, 0}; // over every head: the output error's sums
        // [layer][query head]: W_o's rows, for the projected error (EvalOptions::projectedError).
        std::vector<std::vector<Matrix>> errorReadout;
        if (options.projectedError && model && !rewrittenModel)
            for (int l = 0; l < L; ++l)
                errorReadout.push_back(outputRows(*model, l));

        // Heads in parallel (each reads only its own slices), added in (layer, head) order so that
        // the sums do not depend on the thread timing; the first error in that order is reported.
        checkCancel(options);
        std::vector<HeadMetrics> measured(static_cast<std::size_t>(L * Hkv));
        std::vector<std::optional<Error>> errors(measured.size());
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < L * Hkv; ++i) {
            const int l = i / Hkv, h = i % Hkv;
            const auto li = static_cast<std::size_t>(l);
            const auto group = static_cast<std::size_t>(h * g);
            const auto slice = [&](const auto& perQueryHead) {
                return std::span(perQueryHead[li]).subspan(group, static_cast<std::size_t>(g));
            };
            HeadProbe in{subject,
                         l,
                         h,
                         ctx,
                         heads[li][static_cast<std::size_t>(h)],
                         slice(reference->attention),
                         slice(attended),
                         slice(reference->probeSelf),
                         slice(subjectSelf),
                         slice(queries),
                         probe.scales[li],
                         baseline};
            if (rewrittenModel) {
                in.exactReadout = slice(exactReadout);
                in.compressedReadout = slice(rewrittenReadout);
                if (!outputOffsets.empty())
                    in.compressedOffset = slice(outputOffsets);
            }
            if (!errorReadout.empty())
                in.errorReadout = slice(errorReadout);
            try {
                measured[static_cast<std::size_t>(i)] =
                    headMetrics(in, options.attentionMaps, options.exactMaps);
            } catch (const Error& e) {
                errors[static_cast<std::size_t>(i)].emplace(e.code(), e.what());
            } catch (const std::bad_alloc&) {
                errors[static_cast<std::size_t>(i)].emplace(ErrorCode::OutOfMemory,
                                                            "out of memory");
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(i)].emplace(ErrorCode::Internal, e.what());
            }
        }
        for (const auto& e : errors)
            if (e)
                throw *e;
        for (HeadMetrics& m : measured)
            addHead(result, std::move(m), squares);
        finishTotals(result, squares);

        if (model && options.modelQuality) {
            if (rewrittenModel)
                rewrittenPrefill = contextPrefill(subject, ctx);
            addModelQuality(result, *subjectModel, subject, ctx, *reference,
                            rewrittenModel ? rewrittenPrefill : reference->contextCache, heads,
                            backend, options, rewrittenModel.has_value());
        }
        if (options.keepCompressed)
            result.compressed = heads;
        return result;
    });
}

std::vector<Matrix> keyProjectionsWithBias(const Model& model) {
    std::vector<Matrix> out;
    for (int l = 0; l < model.config().layers; ++l) {
        const AttentionProjections a = model.attentionProjections(l);
        Matrix w = Matrix::Zero(a.wk.rows() + 1, a.wk.cols());
        w.topRows(a.wk.rows()) = a.wk;
        if (a.bk.size() == a.wk.cols())
            w.bottomRows(1) = a.bk;
        out.push_back(std::move(w));
    }
    return out;
}

} // namespace kvs
