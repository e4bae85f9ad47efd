// SPDX-License-Identifier: MIT
// Composed schemes (ALGORITHMS.md §5, composition): "select.h2o:keep=0.25+factor.data_aware:
// rank=16+codec.uniform:bits=4" applies its stages in the one order the compressed form can hold
// — a post-hoc sharing (it rewrites the model), a token selection, a key factorization, a codec —
// at most one of each. Every stage after the first sees only what the stages before it kept, and
// its result is put back at the original positions, so byte counts compose exactly: they are the
// final form's. A codec after a key factorization codes the values: low-rank keys that are also
// quantized are not a form the kernels read.
#include "kvs/scheme.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>

namespace kvs {
namespace {

enum class StageKind { Sharing, Selection, Factored, Codec };

const char* kindName(StageKind k) {
    switch (k) {
    case StageKind::Sharing:
        return "post-hoc sharing";
    case StageKind::Selection:
        return "token selection";
    case StageKind::Factored:
        return "key factorization";
    case StageKind::Codec:
        return "codec";
    }
    return "";
}

std::optional<StageKind> stageKind(const SchemeInfo& info) {
    if (info.transformsWeights)
        return StageKind::Sharing;
    if (info.family == "selection" || info.family == "coreset")
        return StageKind::Selection;
    if (info.family == "factored")
        return StageKind::Factored;
    if (info.family == "codec")
        return StageKind::Codec;
    return std::nullopt;
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos)
        return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

struct Stage {
    const Scheme* scheme = nullptr;
    StageKind kind = StageKind::Selection;
    std::string prefix; // "select.h2o.": the chain's parameter keys of this stage
};

// What the next stage compresses: the head as `current` holds it, the kept rows only. Queries,
// weights and the rotation stay the head's: calibration still sees every context query.
HeadInput keptInput(const HeadInput& head, const CompressedHead& current) {
    HeadInput in;
    in.layer = head.layer;
    in.kvHead = head.kvHead;
    in.keyRotation = head.keyRotation;
    in.keyProjection = head.keyProjection;
    in.queries = head.queries;
    in.scale = head.scale;
    in.seed = head.seed;
    in.valuesSharedWithKeys = head.valuesSharedWithKeys;
    // Keys the next stage can read as d-wide rows: low-rank ones rebuilt (c · Pᵀ, before RoPE
    // where the latents are pre-RoPE). Only a codec follows a factorization, and it keeps the
    // factorization's keys (mergeStage).
    in.keys = current.keyForm == CompressedHead::KeyForm::LowRank
                  ? Matrix(current.keys * current.queryProjection.transpose())
                  : current.keys;
    in.values = current.values;
    if (head.keysPreRope.rows() == head.tokens())
        in.keysPreRope = head.keysPreRope(current.positions, Eigen::placeholders::all);
    return in;
}

// The stage's result `next` (over the kept rows of `current`) put back at the original positions.
CompressedHead mergeStage(const CompressedHead& current, CompressedHead next, StageKind kind) {
    for (auto& p : next.positions)
        p = current.positions[static_cast<std::size_t>(p)];
    next.contextLength = current.contextLength;
    if (next.degenerate.empty()) // a selection stage whose budget left it nothing to choose
        next.degenerate = current.degenerate;
    if (!current.logWeights.empty()) {
        const std::size_t m = next.positions.size();
        std::vector<float> combined(m, 0.0f);
        for (std::size_t i = 0; i < m; ++i) {
            const auto it = std::lower_bound(current.positions.begin(), current.positions.end(),
                                             next.positions[i]);
            combined[i] =
                current.logWeights[static_cast<std::size_t>(it - current.positions.begin())] +
                (next.logWeights.empty() ? 0.0f : next.logWeights[i]);
        }
        next.logWeights.clear();
        for (const float w : combined)
            next.logWeights.push_back(roundToHalf(w));
    }
    if (kind == StageKind::Codec && current.keyForm != CompressedHead::KeyForm::Dense) {
        if (next.recentCount() > 0)
            throw Error(ErrorCode::Unsupported,
                        "a codec's recent window after a key factorization: the window's keys "
                        "would be stored dense beside the latents, not a form the kernels read "
                        "(allowed: recent = 0)");
        // The factorization's keys stay; the codec's key codes (and their stream) are dropped.
        next.keyForm = current.keyForm;
        next.keys = current.keys;
        next.keyPrecision = current.keyPrecision;
        next.queryProjection = current.queryProjection;
        next.keyRotation = current.keyRotation;
        next.quantizedKeys = {};
        if (next.entropyCoded) {
            next.entropyCoded->elements -= next.entropyCoded->keyElements;
            next.entropyCoded->keyElements = 0;
            next.entropyCoded->sideBytes -= next.entropyCoded->keySideBytes;
            next.entropyCoded->keySideBytes = 0;
            next.entropyCoded->keyStreamBytes = 0;
            next.entropyCoded->keyEntropyBits = 0.0;
        }
    }
    return next;
}

class ChainScheme final : public Scheme {
public:
    ChainScheme(SchemeInfo info, std::vector<Stage> stages)
        : m_info(std::move(info)), m_stages(std::move(stages)) {}

    const SchemeInfo& info() const override { return m_info; }

    CompressedHead compress(const HeadInput& head, const ParamValues& params) const override {
        std::optional<CompressedHead> current;
        for (const Stage& stage : m_stages) {
            const ParamValues own = stageParams(stage, params);
            if (!current) {
                current = stage.scheme->compress(head, own);
                continue;
            }
            const HeadInput kept = keptInput(head, *current);
            CompressedHead next;
            try {
                next = stage.scheme->compress(kept, own);
                next.validate(); // its positions index `current`'s rows: check before merging
            } catch (const Error& e) {
                // After a model rewrite the message speaks of the rewritten model (a K=V tie
                // makes the values the keys): say which stage made it so.
                const Stage& first = m_stages.front();
                throw Error(e.code(), first.kind == StageKind::Sharing
                                          ? std::string(e.what()) + " (the model as " +
                                                first.scheme->info().id + " rewrote it)"
                                          : std::string(e.what()));
            }
            current = mergeStage(*current, std::move(next), stage.kind);
        }
        current->validate();
        return std::move(*current);
    }

    WeightRewrite rewriteWeights(const Model& model, const Capture& capture, int contextTokens,
                                 const ParamValues& params) const override {
        const Stage& first = m_stages.front();
        if (first.kind != StageKind::Sharing)
            return Scheme::rewriteWeights(model, capture, contextTokens, params);
        return first.scheme->rewriteWeights(model, capture, contextTokens,
                                            stageParams(first, params));
    }

private:
    static ParamValues stageParams(const Stage& stage, const ParamValues& params) {
        ParamValues own;
        for (const auto& [key, value] : params)
            if (key.rfind(stage.prefix, 0) == 0)
                own[key.substr(stage.prefix.size())] = value;
        return own;
    }

    SchemeInfo m_info;
    std::vector<Stage> m_stages;
};

Result<std::unique_ptr<Scheme>> buildChain(const std::string& chainId) {
    return catchErrors([&]() -> std::unique_ptr<Scheme> {
        const auto fail = [&](const std::string& what) {
            throw Error(ErrorCode::InvalidArgument, "scheme chain '" + chainId + "': " + what);
        };
        std::vector<Stage> stages;
        for (const std::string& id : splitSchemeChain(chainId)) {
            // Registry entries only: a stage is never itself a chain.
            const Scheme* scheme = id.find('+') == std::string::npos ? findScheme(id) : nullptr;
            if (!scheme)
                fail("unknown scheme id '" + id + "'");
            const auto kind = stageKind(scheme->info());
            if (!kind)
                fail(id + " (" + scheme->info().family +
                     ") is not a stage: a chain joins a post-hoc sharing, a token selection, a key "
                     "factorization and a codec");
            for (const Stage& s : stages) {
                if (s.kind == *kind)
                    fail("two stages of one kind (" + std::string(kindName(*kind)) +
                         "): " + s.scheme->info().id + " and " + id +
                         "; a chain holds at most one of each");
                if (s.scheme->info().valuesBecomeKeys &&
                    (*kind == StageKind::Factored || *kind == StageKind::Codec))
                    fail(id + " after " + s.scheme->info().id +
                         ": the rewritten model caches its keys as its values (K=V); a " +
                         kindName(*kind) + " of such a cache is not supported");
                if (s.kind > *kind)
                    fail(id + " (" + kindName(*kind) + ") comes after " + s.scheme->info().id +
                         " (" + kindName(s.kind) +
                         "); the order is sharing, selection, factorization, codec");
            }
            stages.push_back({scheme, *kind, id + "."});
        }
        if (stages.size() < 2)
            fail("a chain needs at least two stages joined by '+'");

        SchemeInfo info;
        info.id = chainId;
        info.family = "composed";
        std::string explanation = "Applies, in order:";
        int number = 0;
        for (const Stage& s : stages) {
            const SchemeInfo& si = s.scheme->info();
            info.displayName += (info.displayName.empty() ? "" : " + ") + si.displayName;
            explanation += " (" + std::to_string(++number) + ") " + si.displayName + ", " +
                           kindName(s.kind) + ";";
            info.needsWeights = info.needsWeights || si.needsWeights;
            info.transformsWeights = info.transformsWeights || si.transformsWeights;
            for (ParamSpec p : si.params) {
                p.key = s.prefix + p.key; // the label stays: the dock heads it by stage
                for (auto& o : p.overriddenBy)
                    o = s.prefix + o;
                info.params.push_back(std::move(p));
            }
        }
        explanation += " each stage sees only what the ones before it kept. A codec after a key "
                       "factorization codes the values only. The bytes are the final form's.";
        info.explanation = explanation;
        info.noStreamReason = "a chain streams only once each of its stages has an online form "
                              "that hands the next stage its kept tokens as they change; chains "
                              "do not stream yet";
        // The sweep varies the first stage that is not a model rewrite (its budget).
        for (const Stage& s : stages)
            if (s.kind != StageKind::Sharing) {
                info.budgetParam = s.prefix + s.scheme->info().budgetParam;
                if (s.kind == StageKind::Selection)
                    info.theory = s.scheme->info().theory;
                break;
            }
        return std::make_unique<ChainScheme>(std::move(info), std::move(stages));
    });
}

} // namespace

std::vector<std::string> splitSchemeChain(const std::string& text) {
    // '+' joins stages where a scheme id follows it; in "1e+06" a digit does.
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '+')
            continue;
        std::size_t j = i + 1;
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t'))
            ++j;
        if (j < text.size() && !std::isalpha(static_cast<unsigned char>(text[j])))
            continue;
        parts.push_back(trim(text.substr(start, i - start)));
        start = i + 1;
    }
    parts.push_back(trim(text.substr(start)));
    return parts;
}

std::string bareKey(const std::string& key) {
    const auto dot = key.rfind('.');
    return dot == std::string::npos ? key : key.substr(dot + 1);
}

Result<const Scheme*> composedScheme(const std::string& chainId) {
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<Scheme>> chains;
    const std::lock_guard lock(mutex);
    if (const auto it = chains.find(chainId); it != chains.end())
        return it->second.get();
    auto built = buildChain(chainId);
    if (!built)
        return built.error();
    const Scheme* scheme = built.value().get();
    chains.emplace(chainId, std::move(built.value()));
    return scheme;
}

} // namespace kvs
