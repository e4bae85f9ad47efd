// SPDX-License-Identifier: MIT
// The scheme framework (DESIGN.md "Core types"): every compression method is one registered
// Scheme with an id, a family, a name, an explanation and parameter specs. The GUI builds its
// controls from the specs; the CLI parses "ID:key=value,..." against them. A scheme turns one KV
// head's context cache into a CompressedHead.
#pragma once

#include "kvs/compressed_head.h"
#include "kvs/model.h"
#include "kvs/status.h"
#include "kvs/tensor.h"

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvs {

struct ParamSpec {
    std::string key;   // "keep", "sinks", ...
    std::string label; // "Kept fraction"
    double minimum = 0.0;
    double maximum = 1.0;
    double defaultValue = 0.0;
    bool logScale = false;
    bool integer = false;
    std::string unit; // "tokens", "bytes", "" (a fraction or a plain number)
    std::string help; // one sentence for tooltips and `schemes --json`
    // The only values allowed (bit widths 2, 3, 4, 8), within [minimum, maximum]; empty: any.
    std::vector<double> choices = {};
    // Parameters that, when set, take this one's place (a token or byte budget over the kept
    // fraction, per-tensor widths over the common one): a sweep of this one drops them.
    std::vector<std::string> overriddenBy = {};
    // The value must divide the model's KV-head count (post-hoc sharing): a sweep visits the
    // divisors.
    bool dividesKvHeads = false;
    // Parameters that state one budget in different units share a group name ("budget": the
    // kept fraction, tokens and bytes), so the studio shows them as one control with a unit
    // selector instead of three. As tokenBudget reads them, a later member of the group wins
    // over the earlier ones when it is set; every member but the first is unused at 0.
    std::string budgetGroup = {};
};

// What a family's theory predicts for error against kept tokens m (ALGORITHMS.md §1c): error ∝
// m^exponent (−1 for discrepancy coresets, −½ for uniform sampling). NaN where there is none.
struct ScalingTheory {
    double exponent = std::numeric_limits<double>::quiet_NaN();
    std::string name;          // "coreset theory", for the chart's guide
    bool coresetBound = false; // the coreset size bound √d·e^ρ/ε applies to the scheme
};

struct SchemeInfo {
    std::string id;          // "coreset.halving"
    std::string family;      // "identity", "coreset", "selection", ...
    std::string displayName; // "Discrepancy halving"
    std::string explanation; // one paragraph
    std::vector<ParamSpec> params;
    // The parameter a trade-off sweep varies; when the scheme has no such parameter, the first
    // one other than "seed".
    std::string budgetParam = "keep";
    ScalingTheory theory = {};
    // The scheme changes the model, not only its cache (post-hoc sharing, weight SVD): it
    // rewrites the attention projections, the prompt is prefilled again by the rewritten model,
    // and compress() then sees that model's cache. Needs the model, not only a capture.
    bool transformsWeights = false;
    // compress() reads the head's key projection (HeadInput::keyProjection): it needs the model,
    // and a capture alone is refused with that reason.
    bool needsWeights = false;
    // A rewrite whose model caches its keys as its values (K=V tying): the codecs and key
    // factorizations refuse such a cache, so a chain refuses them after it.
    bool valuesBecomeKeys = false;
    // Streaming mode (EvalOptions::mode): the scheme has an online form (Scheme::startStream)
    // that keeps a summary within a fixed budget while tokens arrive one at a time. Otherwise
    // noStreamReason says why it cannot stream (it reads queries from the future, or the whole
    // context at once), and streaming evaluation refuses it with that reason.
    bool canStream = false;
    std::string noStreamReason = {};
    const ParamSpec* findParam(const std::string& key) const;
};

using ParamValues = std::map<std::string, double>;

// A scheme with concrete parameter values: "coreset.halving:keep=0.25,seed=3".
struct SchemeSetting {
    std::string id;
    ParamValues params; // only the ones given; defaults come from the specs

    // Parses and validates against the registry: unknown id or key, a value that is not a number,
    // outside the spec's range, or not an integer where one is required. Errors name the text.
    // A chain "A:x=1+B:y=2" parses stage by stage into id "A+B" and keys "A.x", "B.y"; a codec
    // whose key widths are set after a key factorization is refused (the keys are low-rank).
    static Result<SchemeSetting> parse(const std::string& text);
    std::string toString() const;
    // Every parameter of the scheme: the given values, else the defaults.
    ParamValues resolved() const;
};

// One KV head's context as a scheme sees it (context rows only; n = keys.rows()).
struct HeadInput {
    int layer = 0;
    int kvHead = 0;
    Matrix keys;        // n × d, as attention uses them (post-RoPE)
    Matrix keysPreRope; // n × d or empty
    Matrix values;      // n × d (for K=V models the cached pre-RoPE keys)
    bool valuesSharedWithKeys = false;
    // How post-RoPE keys follow from pre-RoPE ones (keys from values under K=V); empty for
    // learned positions, except under K=V, where zero angles say keys equal values.
    KeyRotation keyRotation;
    // With the model (SchemeInfo::needsWeights): this KV head's key projection as (D + 1) × d,
    // the last row its bias (zeros without one), so that pre-RoPE keys = [x 1] · keyProjection.
    // Empty when only a capture is evaluated.
    Matrix keyProjection;
    // The context queries of the query heads that read this KV head (n × d each, post-RoPE):
    // what attention-score based selection (H2O, TOVA, SnapKV) looks at.
    std::vector<Matrix> queries;
    float scale = 0.0f; // attention scale; 0 = 1/√d
    std::uint64_t seed = 0;

    int tokens() const { return static_cast<int>(keys.rows()); }
    int headDim() const { return static_cast<int>(keys.cols()); }
    float attentionScale() const;
};

// The kept tokens of a streaming summary: positions among the tokens streamed so far (any order)
// and one log-weight per position, or none when all are 0.
struct StreamSummary {
    std::vector<std::int32_t> positions;
    std::vector<float> logWeights;
};

// A scheme's online form for one KV head (SchemeInfo::canStream): tokens arrive in order 0, 1,
// 2, … and the state keeps a summary of those seen within a budget fixed at the start. The
// stream is a HeadInput whose rows are filled as tokens arrive (row t holds token t's key,
// value and the group's queries once it has arrived; later rows are not yet meaningful): an
// online form reads only the rows it keeps and the newest one.
class StreamingState {
public:
    virtual ~StreamingState() = default;
    // Token `position` (the next in order) has arrived: rows 0..position of `stream` are filled.
    virtual void append(const HeadInput& stream, int position) = 0;
    // What a query arriving now attends to.
    virtual StreamSummary summary() const = 0;
    // Why the budget fixed at the start leaves the scheme nothing to choose (its sinks and
    // window take it all: CompressedHead::degenerate); "" when the scheme's own rule runs.
    virtual std::string degenerate() const { return {}; }
    virtual std::unique_ptr<StreamingState> clone() const = 0;
};

// Where a stream starts: the budget's fraction (`keep`) is of `budgetBasis` tokens (the
// evaluation's context length, so that both modes are compared at one budget), while a tokens
// or bytes budget is taken as it is. The budget is fixed for the whole stream, however long.
struct StreamStart {
    int budgetBasis = 0;
};

// What a weight-transforming scheme makes of a model: the rewritten config (fewer KV heads,
// values shared with keys) and attention projections, and per [layer][KV head of the original
// model] the fraction of what the rewrite replaced (keys and values when heads are shared,
// values under K=V) that the rewritten model reproduces, measured on the probe tokens, which
// the fit never sees (R² = 1 − ‖residual‖² / ‖centred‖²; 1 = exact, below 0 = worse than the
// probe's mean).
struct WeightRewrite {
    ModelConfig config;
    std::vector<AttentionProjections> layers;
    std::vector<std::vector<double>> fitR2;
    // [layer][query head]: what the rewrite moved from that head's output into W_o's bias (a
    // value offset b with Σ p = 1 becomes b·W_o), so that head outputs compare fairly; empty
    // when nothing moved.
    std::vector<std::vector<RowVector>> outputOffsets;
};

// Each layer's key projections with the bias as a last row, (D + 1) × (KV heads · d); KV head
// h's columns are what HeadInput::keyProjection holds.
std::vector<Matrix> keyProjectionsWithBias(const Model& model);

class Scheme {
public:
    virtual ~Scheme() = default;
    virtual const SchemeInfo& info() const = 0;
    // Throws kvs::Error for parameters the head cannot satisfy.
    virtual CompressedHead compress(const HeadInput& head, const ParamValues& params) const = 0;
    // Weight-transforming schemes (SchemeInfo::transformsWeights): the rewritten model, fitted
    // on the capture's first `contextTokens` tokens only (calibration never sees the probe).
    // Throws kvs::Error for a model or parameters it cannot rewrite.
    virtual WeightRewrite rewriteWeights(const Model& model, const Capture& capture,
                                         int contextTokens, const ParamValues& params) const;
    // Streaming schemes (SchemeInfo::canStream): a fresh online state for the KV head whose
    // stream is `stream` (see StreamingState). Throws kvs::Error(InvalidArgument) naming the
    // scheme and the reason for a scheme or a setting that cannot stream.
    virtual std::unique_ptr<StreamingState>
    startStream(const HeadInput& stream, const StreamStart& start, const ParamValues& params) const;
};

const std::vector<std::unique_ptr<Scheme>>& schemeRegistry();
// A registered scheme, or for a '+'-joined chain of ids the composed scheme (built once, kept);
// nullptr when unknown or when the chain cannot be composed (composedScheme says why).
const Scheme* findScheme(const std::string& id);
// "A+B+C": a post-hoc sharing, a token selection, a key factorization and a codec, in that
// order, at most one of each, applied stage by stage, each to what the ones before it kept.
// The composed scheme's parameters are its stages' prefixed by their id ("select.h2o.keep").
// Refused with the reason: unknown ids, a scheme of no stage kind, two of one kind, wrong order.
Result<const Scheme*> composedScheme(const std::string& chainId);
// Splits "A:x=1+B:y=1e+06" into its stages ("A:x=1", "B:y=1e+06"): a '+' joins stages only
// where a letter (the next scheme id) follows it.
std::vector<std::string> splitSchemeChain(const std::string& text);
// A parameter key without its chain stage prefix: "select.h2o.keep" → "keep".
std::string bareKey(const std::string& key);
// Adds a scheme to the registry (tests inject failing schemes this way). An id already registered
// is an InvalidArgument error naming it. Not thread-safe: call before any worker uses the
// registry.
Result<const Scheme*> registerScheme(std::unique_ptr<Scheme> scheme);

// Scheme defaults by generation: 2 since issue #15 gave every token-selection and coreset scheme
// one exact part by default, 4 sinks and a 32-token recent window (docs/schemes.md "Equal
// footing"). Files that name a setting by the parameters it sets (sessions, sweep journals)
// record the generation they were written under.
inline constexpr int kSchemeDefaultsGeneration = 2;
// `text` (a setting or a chain) with every parameter whose default changed after `generation`
// set explicitly to the default it had then, so that it keeps its meaning under today's defaults
// ("select.tova:keep=0.25" of generation 1 → "select.tova:keep=0.25,sinks=0,window=0"). The text
// itself when nothing changed or it does not parse.
std::string pinEarlierDefaults(const std::string& text, int generation);

// The kept-token budget of a selection method: `bytes` > 0 wins, then `tokens` > 0, else the kept
// fraction `keep` of n. perTokenBytes is what one kept token costs (keys + values + metadata).
// The result is clamped to [minimum, n]; a byte budget below one token keeps none.
int tokenBudget(const ParamValues& params, int n, double perTokenBytes, int minimum = 0);
// The budget parameters every selection method offers, in this order: keep, tokens, bytes.
std::vector<ParamSpec> budgetParams(double defaultKeep);

// The budget of a stream (StreamStart): `bytes` > 0 wins, then `tokens` > 0, else round(keep ·
// budgetBasis); never clamped to a stream length, which a streaming algorithm does not know.
int streamTokenBudget(const ParamValues& params, const StreamStart& start, double perTokenBytes);

// A CompressedHead holding the chosen context tokens (sorted positions; logWeights empty when all
// are zero) with dense keys and values at `precision`.
CompressedHead selectTokens(const HeadInput& head, std::vector<std::int32_t> positions,
                            std::vector<float> logWeights, Precision precision);

} // namespace kvs
