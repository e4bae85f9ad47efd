// SPDX-License-Identifier: MIT
// Shared pieces of the selection and coreset schemes: parameter specs, the exact sinks + recent
// window split, and attention statistics of the context queries.
#pragma once

#include "kvs/scheme.h"

#include <random>
#include <vector>

namespace kvs::schemes {

double param(const ParamValues& p, const std::string& key);
ParamSpec precisionParam(int defaultBits);
ParamSpec sinksParam(int def);
ParamSpec windowParam(int def);
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
// `middleBudget` how many of them may be kept.
struct ExactSplit {
    std::vector<std::int32_t> exact;
    std::vector<std::int32_t> middle;
    int middleBudget = 0;
};
ExactSplit splitExact(int n, int m, int sinks, int window);

// Sum over the group's query heads of the causal attention each context token receives from the
// context queries in rows [firstQuery, n) (column sums of the attention matrix).
std::vector<double> receivedAttention(const HeadInput& head, int firstQuery);

// Indices of the `count` largest scores among `candidates` (ties: earlier position first).
std::vector<std::int32_t> topByScore(const std::vector<std::int32_t>& candidates,
                                     const std::vector<double>& score, int count);

CompressedHead assemble(const HeadInput& head, const ExactSplit& split,
                        const std::vector<std::int32_t>& chosen,
                        const std::vector<float>& chosenLogWeights, Precision precision);

} // namespace kvs::schemes
