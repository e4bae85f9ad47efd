// SPDX-License-Identifier: MIT
// Scheme settings ("ID:key=value,..."), budgets, and the token-selection helper every selection
// method shares.
#include "kvs/scheme.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace kvs {

const ParamSpec* SchemeInfo::findParam(const std::string& key) const {
    for (const auto& p : params)
        if (p.key == key)
            return &p;
    return nullptr;
}

float HeadInput::attentionScale() const {
    return scale > 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(headDim()));
}

const Scheme* findScheme(const std::string& id) {
    // A chain only where '+' joins stages ("a+b"); "x+8" is no chain (and no registered id).
    if (splitSchemeChain(id).size() > 1) {
        const auto chain = composedScheme(id);
        return chain ? chain.value() : nullptr;
    }
    for (const auto& s : schemeRegistry())
        if (s->info().id == id)
            return s.get();
    return nullptr;
}

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos)
        return {};
    const auto e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

std::string formatNumber(double v) {
    std::ostringstream os;
    os.precision(10);
    os << v;
    return os.str();
}

} // namespace

namespace {

// "A:x=1+B:y=2" → id "A+B", params "A.x", "B.y"; each stage parsed on its own.
Result<SchemeSetting> parseChain(const std::string& text) {
    return catchErrors([&] {
        SchemeSetting chain;
        std::vector<SchemeSetting> stages;
        int number = 0;
        for (const std::string& part : splitSchemeChain(text)) {
            ++number;
            if (part.empty())
                throw Error(ErrorCode::InvalidArgument, "scheme '" + text + "': stage " +
                                                            std::to_string(number) +
                                                            " is empty (stages are joined by '+')");
            auto parsed = SchemeSetting::parse(part);
            if (!parsed)
                throw Error(parsed.error().code(), "scheme chain '" + text + "': stage " +
                                                       std::to_string(number) + ": " +
                                                       parsed.error().what());
            SchemeSetting stage = std::move(parsed.value());
            chain.id += (chain.id.empty() ? "" : "+") + stage.id;
            for (const auto& [k, v] : stage.params)
                chain.params[stage.id + "." + k] = v;
            stages.push_back(std::move(stage));
        }
        if (const auto composed = composedScheme(chain.id); !composed)
            throw composed.error(); // it names the chain
        // Low-rank keys cannot also be quantized: a codec there codes the values only.
        const SchemeSetting* factored = nullptr;
        for (const SchemeSetting& s : stages) {
            if (findScheme(s.id)->info().family == "factored")
                factored = &s;
            else if (factored && s.params.count("key_bits"))
                throw Error(ErrorCode::InvalidArgument,
                            "scheme '" + text + "': " + s.id + ": key_bits = " +
                                formatNumber(s.params.at("key_bits")) + " after " + factored->id +
                                ": its keys are low-rank, and low-rank keys that are also "
                                "quantized are not a form the kernels read (the codec codes the "
                                "values; set value_bits or bits)");
            else if (factored && s.params.count("recent") && s.params.at("recent") > 0)
                throw Error(ErrorCode::InvalidArgument,
                            "scheme '" + text + "': " + s.id + ": recent = " +
                                formatNumber(s.params.at("recent")) + " after " + factored->id +
                                ": the window's keys would be stored dense beside the low-rank "
                                "latents, not a form the kernels read (allowed: recent = 0)");
        }
        return chain;
    });
}

} // namespace

Result<SchemeSetting> SchemeSetting::parse(const std::string& text) {
    if (splitSchemeChain(text).size() > 1)
        return parseChain(text);
    return catchErrors([&] {
        const auto fail = [&](const std::string& what) -> void {
            throw Error(ErrorCode::InvalidArgument, "scheme '" + text + "': " + what);
        };
        SchemeSetting s;
        const auto colon = text.find(':');
        s.id = trim(text.substr(0, colon));
        const Scheme* scheme = findScheme(s.id);
        if (!scheme) {
            std::string known;
            for (const auto& r : schemeRegistry())
                known += (known.empty() ? "" : ", ") + r->info().id;
            fail("unknown scheme id '" + s.id + "' (known: " + known + ")");
        }
        if (colon == std::string::npos)
            return s;
        std::stringstream rest(text.substr(colon + 1));
        std::string item;
        while (std::getline(rest, item, ',')) {
            item = trim(item);
            if (item.empty())
                continue;
            const auto eq = item.find('=');
            if (eq == std::string::npos)
                fail("'" + item + "' is not key=value");
            const std::string key = trim(item.substr(0, eq));
            const std::string value = trim(item.substr(eq + 1));
            const ParamSpec* spec = scheme->info().findParam(key);
            if (!spec) {
                std::string keys;
                for (const auto& p : scheme->info().params)
                    keys += (keys.empty() ? "" : ", ") + p.key;
                fail("unknown parameter '" + key + "' (" + s.id + " has: " + keys + ")");
            }
            double v = 0.0;
            std::size_t used = 0;
            try {
                v = std::stod(value, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used == 0 || used != value.size() || !std::isfinite(v))
                fail(key + " = '" + value + "' is not a number");
            if (spec->integer && v != std::floor(v))
                fail(key + " = " + value + " must be an integer");
            if (v < spec->minimum || v > spec->maximum)
                fail(key + " = " + value + " is outside [" + formatNumber(spec->minimum) + ", " +
                     formatNumber(spec->maximum) + "]");
            if (!spec->choices.empty() &&
                std::find(spec->choices.begin(), spec->choices.end(), v) == spec->choices.end()) {
                std::string allowed;
                for (const double c : spec->choices)
                    allowed += (allowed.empty() ? "" : ", ") + formatNumber(c);
                fail(key + " = " + value + " is not supported (one of " + allowed + ")");
            }
            s.params[key] = v;
        }
        return s;
    });
}

std::string SchemeSetting::toString() const {
    if (splitSchemeChain(id).size() > 1) { // a chain: each stage with its own parameters
        std::string out;
        for (const std::string& stage : splitSchemeChain(id)) {
            SchemeSetting own{stage, {}};
            for (const auto& [k, v] : params)
                if (k.rfind(stage + ".", 0) == 0)
                    own.params[k.substr(stage.size() + 1)] = v;
            out += (out.empty() ? "" : "+") + own.toString();
        }
        return out;
    }
    std::string out = id;
    char sep = ':';
    for (const auto& [k, v] : params) {
        out += sep + k + "=" + formatNumber(v);
        sep = ',';
    }
    return out;
}

ParamValues SchemeSetting::resolved() const {
    ParamValues out;
    if (const Scheme* s = findScheme(id))
        for (const auto& p : s->info().params)
            out[p.key] = p.defaultValue;
    for (const auto& [k, v] : params)
        out[k] = v;
    return out;
}

std::vector<ParamSpec> budgetParams(double defaultKeep) {
    ParamSpec keep{"keep",
                   "Kept fraction",
                   0.001,
                   1.0,
                   defaultKeep,
                   true,
                   false,
                   "",
                   "fraction of the context tokens kept (used when tokens and bytes are 0)"};
    keep.overriddenBy = {"tokens", "bytes"};
    ParamSpec tokens{"tokens",
                     "Kept tokens",
                     0,
                     1 << 20,
                     0,
                     false,
                     true,
                     "tokens",
                     "number of context tokens kept; 0 = use the kept fraction"};
    ParamSpec bytes{"bytes",
                    "Byte budget",
                    0,
                    1e12,
                    0,
                    false,
                    true,
                    "bytes",
                    "cache bytes per head, metadata included; 0 = use tokens or the kept fraction"};
    // One budget in three units: the studio shows one control with a unit selector.
    for (ParamSpec* p : {&keep, &tokens, &bytes})
        p->budgetGroup = "budget";
    return {keep, tokens, bytes};
}

namespace {

// The tokens a budget asks for, unclamped: bytes, else tokens, else the kept fraction of `basis`.
double requestedTokens(const ParamValues& params, double basis, double perTokenBytes) {
    auto get = [&](const char* k) {
        const auto it = params.find(k);
        return it == params.end() ? 0.0 : it->second;
    };
    if (get("bytes") > 0)
        return std::floor(get("bytes") / perTokenBytes);
    if (get("tokens") > 0)
        return get("tokens");
    return std::round(get("keep") * basis);
}

} // namespace

int tokenBudget(const ParamValues& params, int n, double perTokenBytes, int minimum) {
    const double m = requestedTokens(params, n, perTokenBytes);
    return static_cast<int>(
        std::clamp(m, static_cast<double>(std::min(minimum, n)), static_cast<double>(n)));
}

int streamTokenBudget(const ParamValues& params, const StreamStart& start, double perTokenBytes) {
    // Never clamped to the prompt: a stream's budget does not know how long the stream will be.
    const double m = requestedTokens(params, start.budgetBasis, perTokenBytes);
    return static_cast<int>(std::clamp(m, 0.0, 1e9));
}

CompressedHead selectTokens(const HeadInput& head, std::vector<std::int32_t> positions,
                            std::vector<float> logWeights, Precision precision) {
    const int n = head.tokens();
    std::vector<std::size_t> order(positions.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return positions[a] < positions[b]; });
    CompressedHead c;
    c.headDim = head.headDim();
    c.contextLength = n;
    const bool weighted =
        std::any_of(logWeights.begin(), logWeights.end(), [](float w) { return w != 0.0f; });
    const auto m = static_cast<Eigen::Index>(positions.size());
    c.keys.resize(m, head.headDim());
    c.values.resize(m, head.values.cols());
    for (Eigen::Index i = 0; i < m; ++i) {
        const auto src = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
        const int p = positions[src];
        if (p < 0 || p >= n || (i > 0 && c.positions.back() >= p))
            throw Error(ErrorCode::Internal,
                        "selectTokens: position " + std::to_string(p) +
                            " out of range or repeated (n = " + std::to_string(n) + ")");
        c.positions.push_back(p);
        if (weighted) // stored as fp16 (2 bytes) at any key/value precision
            c.logWeights.push_back(roundToHalf(logWeights[src]));
        c.keys.row(i) = head.keys.row(p);
        c.values.row(i) = head.values.row(p);
    }
    c.keyPrecision = precision;
    c.valuePrecision = precision;
    c.valueForm = head.valuesSharedWithKeys ? CompressedHead::ValueForm::SharedWithKeys
                                            : CompressedHead::ValueForm::Dense;
    if (head.valuesSharedWithKeys)
        c.keyRotation = head.keyRotation;
    if (precision == Precision::F16) {
        roundToHalf(c.values);
        // K=V: the cache holds only the (pre-RoPE) keys; attention's keys are those, rounded,
        // turned by position — not a second, separately rounded copy.
        if (c.valueForm == CompressedHead::ValueForm::SharedWithKeys && !c.keyRotation.empty())
            c.keys = rotatedKeys(c);
        else
            roundToHalf(c.keys);
    }
    return c;
}

} // namespace kvs
