// SPDX-License-Identifier: MIT
// Shared pieces of the selection and coreset schemes: parameter specs, the exact sinks + recent
// window split, and attention statistics of the context queries.
#pragma once

#include "kvs/scheme.h"

#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace kvs::schemes {

// Equal footing (issue #15): the exact part every token-selection and coreset scheme keeps by
// default — the first kDefaultSinks tokens (attention sinks, StreamingLLM's 4) and the last
// kDefaultWindow ones (SnapKV's default observation window, which SnapKV keeps exactly) — so
// that schemes compared at one budget differ only in how they choose the rest. The one place
// these values live: sinksParam, windowParam and SnapKV's observation default read them.
inline constexpr int kDefaultSinks = 4;
inline constexpr int kDefaultWindow = 32;

double param(const ParamValues& p, const std::string& key);
ParamSpec precisionParam(int defaultBits);
ParamSpec sinksParam();  // default kDefaultSinks
ParamSpec windowParam(); // default kDefaultWindow
ParamSpec seedParam();
Precision precisionOf(const ParamValues& p);
// Every context token, dense keys and values at `precision`: the identity scheme, and the start of
// the schemes that keep every token but change its form (codecs, factored keys).
CompressedHead allTokens(const HeadInput& head, Precision precision);
// The random stream of one head: seeded by the `seed` parameter, the evaluation seed, the layer and
// the KV head, so the same seed gives the same result in any thread order.
std::mt19937_64 rngFor(const HeadInput& h, const ParamValues& p);

// Bytes one kept token costs: keys and values at the precision (values free when shared with
// keys), 4 for its position, 2 for a log-weight when the method weights tokens.
double perTokenBytes(const HeadInput& head, Precision precision, bool weighted);

// The exact part of a budget of m tokens: the first `sinks` and the last `window` context tokens,
// shrunk (window first) when m cannot hold them. `middle` gets the positions in between and
// `middleBudget` how many of them may be kept. When the budget compresses (m < n) but leaves
// the scheme nothing to choose (m ≤ sinks + window: the exact part is all that runs, cut when
// it does not fit), `degenerate` says so (CompressedHead::degenerate); `windowName` names the
// window in that reason ("observation window" for SnapKV).
struct ExactSplit {
    std::vector<std::int32_t> exact;
    std::vector<std::int32_t> middle;
    int middleBudget = 0;
    std::string degenerate;
};
ExactSplit splitExact(int n, int m, int sinks, int window, const char* windowName = "window");

// Sum over the group's query heads of the causal attention each context token receives from the
// context queries in rows [firstQuery, n) (column sums of the attention matrix).
std::vector<double> receivedAttention(const HeadInput& head, int firstQuery);

// Indices of the `count` largest scores among `candidates` (ties: earlier position first).
std::vector<std::int32_t> topByScore(const std::vector<std::int32_t>& candidates,
                                     const std::vector<double>& score, int count);

// The split's exact tokens and `chosen` (with their log-weights, or none) as a CompressedHead;
// the split's degenerate reason comes along.
CompressedHead assemble(const HeadInput& head, const ExactSplit& split,
                        const std::vector<std::int32_t>& chosen,
                        const std::vector<float>& chosenLogWeights, Precision precision);

// Streaming mode: the exact part of a fixed budget of m tokens, as splitExact shrinks it — the
// first `sinks` tokens and the last `window` ones — and the `middle` tokens left for the scheme's
// own policy.
struct StreamBudget {
    int sinks = 0;
    int window = 0;
    int middle = 0;
};
StreamBudget streamBudget(int m, int sinks, int window);
// The streaming form of splitExact's reason: a budget of m tokens that the requested sinks and
// window fill (sinks + window ≥ m) leaves the scheme nothing to choose; "" otherwise.
std::string streamDegenerate(int m, int sinks, int window, const char* windowName = "window");

// The online form shared by the selection schemes: the first sinks stay, a FIFO holds the recent
// window, and a token leaving the window is handed to the scheme's policy (admit), which keeps
// at most budget().middle of them. The summary never exceeds sinks + window + middle tokens.
class ProtectedStream : public StreamingState {
public:
    explicit ProtectedStream(StreamBudget budget) : m_budget(budget) {}
    void append(const HeadInput& stream, int position) final;
    StreamSummary summary() const final;
    std::string degenerate() const final { return m_degenerate; }
    void setDegenerate(std::string reason) { m_degenerate = std::move(reason); }

protected:
    const StreamBudget& budget() const { return m_budget; }
    // Every position the cache holds now (sinks, window, middle), for attention-scored policies.
    std::vector<std::int32_t> cached() const;
    // A token arrives, before the cache changes (H2O and TOVA score its query here).
    virtual void observe(const HeadInput& stream, int position);
    // A token leaves the window (or arrives, without one): keep it or evict something.
    virtual void admit(const HeadInput& stream, int position) = 0;
    // The policy's kept tokens with their log-weights.
    virtual void addMiddle(StreamSummary& out) const = 0;

private:
    StreamBudget m_budget;
    std::string m_degenerate;
    std::vector<std::int32_t> m_sinks;
    std::deque<std::int32_t> m_window;
};

// The attention the query of token `position` (each query head of the group) gives to `keys` —
// the cache as it stands plus the token itself — summed over the group, one entry per key.
std::vector<double> groupAttention(const HeadInput& stream, int position,
                                   const std::vector<std::int32_t>& keys);

// The kept-token budget of a streaming selection scheme (streamTokenBudget at `precision`).
int streamBudgetTokens(const HeadInput& stream, const StreamStart& start, const ParamValues& p,
                       bool weighted);

} // namespace kvs::schemes
