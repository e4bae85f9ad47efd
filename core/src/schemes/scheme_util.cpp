// SPDX-License-Identifier: MIT
#include "scheme_util.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kvs::schemes {

double param(const ParamValues& p, const std::string& key) {
    const auto it = p.find(key);
    if (it == p.end())
        throw Error(ErrorCode::Internal, "scheme parameter '" + key + "' not resolved");
    return it->second;
}

ParamSpec precisionParam(int defaultBits) {
    return {"precision",
            "Stored precision",
            16,
            32,
            static_cast<double>(defaultBits),
            false,
            true,
            "bits",
            "16 stores kept keys and values in fp16 (what a real cache does), 32 in fp32",
            {16, 32}};
}
ParamSpec sinksParam() {
    return {"sinks",
            "Attention sinks",
            0,
            1024,
            static_cast<double>(kDefaultSinks),
            false,
            true,
            "tokens",
            "the first tokens, always kept exactly (attention sinks)"};
}
ParamSpec windowParam() {
    return {"window",
            "Recent window",
            0,
            1 << 16,
            static_cast<double>(kDefaultWindow),
            false,
            true,
            "tokens",
            "the most recent context tokens, always kept exactly"};
}
ParamSpec seedParam() {
    return {"seed", "Seed", 0, 1e9, 1, false, true, "", "random seed (same seed, same result)"};
}

Precision precisionOf(const ParamValues& p) {
    return param(p, "precision") <= 16 ? Precision::F16 : Precision::F32;
}

CompressedHead allTokens(const HeadInput& head, Precision precision) {
    std::vector<std::int32_t> all(static_cast<std::size_t>(head.tokens()));
    std::iota(all.begin(), all.end(), 0);
    return selectTokens(head, std::move(all), {}, precision);
}

std::mt19937_64 rngFor(const HeadInput& h, const ParamValues& p) {
    std::seed_seq seq{static_cast<std::uint64_t>(param(p, "seed")), h.seed,
                      static_cast<std::uint64_t>(h.layer), static_cast<std::uint64_t>(h.kvHead)};
    return std::mt19937_64(seq);
}

double perTokenBytes(const HeadInput& head, Precision precision, bool weighted) {
    const double e = bytesPerElement(precision);
    const double values = head.valuesSharedWithKeys ? 0.0 : e * head.values.cols();
    return e * head.headDim() + values + 4.0 + (weighted ? 2.0 : 0.0);
}

ExactSplit splitExact(int n, int m, int sinks, int window, const char* windowName) {
    m = std::clamp(m, 0, n);
    const int askedSinks = std::max(0, sinks), askedWindow = std::max(0, window);
    sinks = std::clamp(sinks, 0, std::min(n, m));
    window = std::clamp(window, 0, std::min(n - sinks, m - sinks));
    ExactSplit s;
    if (m < n && askedSinks + askedWindow >= m) {
        const std::string asked = "budget " + std::to_string(m) + " tokens " +
                                  (askedSinks + askedWindow > m ? "<" : "=") + " sinks " +
                                  std::to_string(askedSinks) + " + " + windowName + " " +
                                  std::to_string(askedWindow);
        s.degenerate = askedSinks + askedWindow > m
                           ? asked + ": cut to " + std::to_string(sinks) + " + " +
                                 std::to_string(window) + ", nothing chosen"
                           : asked + ": nothing left to choose";
    }
    for (int i = 0; i < sinks; ++i)
        s.exact.push_back(i);
    for (int i = n - window; i < n; ++i)
        s.exact.push_back(i);
    for (int i = sinks; i < n - window; ++i)
        s.middle.push_back(i);
    s.middleBudget = std::min(m - sinks - window, static_cast<int>(s.middle.size()));
    return s;
}

std::vector<double> receivedAttention(const HeadInput& head, int firstQuery) {
    const int n = head.tokens();
    std::vector<double> received(static_cast<std::size_t>(n), 0.0);
    const float scale = head.attentionScale();
    constexpr int kRows = 256; // bounded memory for long contexts
    for (const Matrix& q : head.queries) {
        for (int r0 = std::max(0, firstQuery); r0 < n; r0 += kRows) {
            const int rows = std::min(kRows, n - r0);
            Matrix s = (q.middleRows(r0, rows) * head.keys.topRows(r0 + rows).transpose()) * scale;
            for (int i = 0; i < rows; ++i) {
                const int visible = r0 + i + 1;
                auto row = s.row(i).head(visible);
                const float mx = row.maxCoeff();
                Eigen::ArrayXf e = (row.array() - mx).exp();
                const double z = e.sum();
                for (int j = 0; j < visible; ++j)
                    received[static_cast<std::size_t>(j)] += e(j) / z;
            }
        }
    }
    return received;
}

std::vector<std::int32_t> topByScore(const std::vector<std::int32_t>& candidates,
                                     const std::vector<double>& score, int count) {
    std::vector<std::int32_t> c = candidates;
    count = std::clamp(count, 0, static_cast<int>(c.size()));
    std::stable_sort(c.begin(), c.end(), [&](std::int32_t a, std::int32_t b) {
        return score[static_cast<std::size_t>(a)] > score[static_cast<std::size_t>(b)];
    });
    c.resize(static_cast<std::size_t>(count));
    return c;
}

CompressedHead assemble(const HeadInput& head, const ExactSplit& split,
                        const std::vector<std::int32_t>& chosen,
                        const std::vector<float>& chosenLogWeights, Precision precision) {
    std::vector<std::int32_t> positions = split.exact;
    std::vector<float> weights(split.exact.size(), 0.0f);
    positions.insert(positions.end(), chosen.begin(), chosen.end());
    if (chosenLogWeights.empty())
        weights.resize(positions.size(), 0.0f);
    else
        weights.insert(weights.end(), chosenLogWeights.begin(), chosenLogWeights.end());
    CompressedHead out = selectTokens(head, std::move(positions), std::move(weights), precision);
    out.degenerate = split.degenerate;
    return out;
}

StreamBudget streamBudget(int m, int sinks, int window) {
    StreamBudget b;
    m = std::max(0, m);
    b.sinks = std::clamp(sinks, 0, m);
    b.window = std::clamp(window, 0, m - b.sinks);
    b.middle = m - b.sinks - b.window;
    return b;
}

std::string streamDegenerate(int m, int sinks, int window, const char* windowName) {
    m = std::max(0, m);
    sinks = std::max(0, sinks);
    window = std::max(0, window);
    if (sinks + window < m)
        return {};
    const std::string asked = "budget " + std::to_string(m) + " tokens " +
                              (sinks + window > m ? "<" : "=") + " sinks " + std::to_string(sinks) +
                              " + " + windowName + " " + std::to_string(window);
    const StreamBudget b = streamBudget(m, sinks, window);
    return sinks + window > m ? asked + ": cut to " + std::to_string(b.sinks) + " + " +
                                    std::to_string(b.window) + ", nothing chosen"
                              : asked + ": nothing left to choose";
}

void ProtectedStream::observe(const HeadInput&, int) {}

void ProtectedStream::append(const HeadInput& stream, int position) {
    observe(stream, position);
    if (static_cast<int>(m_sinks.size()) < m_budget.sinks && position < m_budget.sinks) {
        m_sinks.push_back(position);
        return;
    }
    m_window.push_back(position);
    if (static_cast<int>(m_window.size()) <= m_budget.window)
        return;
    const std::int32_t leaving = m_window.front();
    m_window.pop_front();
    admit(stream, leaving);
}

std::vector<std::int32_t> ProtectedStream::cached() const {
    StreamSummary s = summary();
    return std::move(s.positions);
}

StreamSummary ProtectedStream::summary() const {
    StreamSummary s;
    s.positions = m_sinks;
    s.positions.insert(s.positions.end(), m_window.begin(), m_window.end());
    s.logWeights.assign(s.positions.size(), 0.0f);
    addMiddle(s);
    s.logWeights.resize(s.positions.size(), 0.0f);
    return s;
}

std::vector<double> groupAttention(const HeadInput& stream, int position,
                                   const std::vector<std::int32_t>& keys) {
    std::vector<double> total(keys.size(), 0.0);
    const double scale = stream.attentionScale();
    std::vector<double> s(keys.size());
    for (const Matrix& q : stream.queries) {
        const auto query = q.row(position).cast<double>();
        double mx = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < keys.size(); ++j) {
            s[j] = scale * query.dot(stream.keys.row(keys[j]).cast<double>());
            mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& x : s)
            z += (x = std::exp(x - mx));
        for (std::size_t j = 0; j < keys.size(); ++j)
            total[j] += s[j] / z;
    }
    return total;
}

int streamBudgetTokens(const HeadInput& stream, const StreamStart& start, const ParamValues& p,
                       bool weighted) {
    return streamTokenBudget(p, start, perTokenBytes(stream, precisionOf(p), weighted));
}

} // namespace kvs::schemes

namespace kvs {

std::string pinEarlierDefaults(const std::string& text, int generation) {
    struct Earlier {
        const char* id;
        const char* key;
        double value;
    };
    // Generation 1 (before issue #15's equal footing): what changed, at its old default.
    static const Earlier kGeneration1[] = {
        {"select.uniform", "sinks", 0},
        {"select.uniform", "window", 0},
        {"select.norm_importance", "sinks", 0},
        {"select.norm_importance", "window", 0},
        {"select.h2o", "sinks", 0},
        {"select.h2o", "window", 0}, // no floor under recent_share · m then
        {"select.tova", "sinks", 0},
        {"select.tova", "window", 0},
        {"select.snapkv", "sinks", 0},
        {"select.key_norm", "sinks", 0},
        {"select.key_norm", "window", 0},
        {"select.expected_attention", "sinks", 0},
        {"select.expected_attention", "window", 0},
        {"coreset.halving", "window", 16},
        {"coreset.streaming", "window", 16},
    };
    if (generation >= 2)
        return text;
    auto parsed = SchemeSetting::parse(text);
    if (!parsed.ok())
        return text;
    SchemeSetting setting = std::move(parsed).value();
    const std::vector<std::string> stages = splitSchemeChain(setting.id);
    bool changed = false;
    for (const std::string& stage : stages)
        for (const Earlier& e : kGeneration1) {
            if (stage != e.id)
                continue;
            const std::string key = (stages.size() > 1 ? stage + "." : std::string()) + e.key;
            changed = setting.params.emplace(key, e.value).second || changed;
        }
    return changed ? setting.toString() : text;
}

} // namespace kvs
