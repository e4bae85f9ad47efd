// SPDX-License-Identifier: MIT
// The scheme registry: adding a scheme means adding it to one of the add*Schemes lists.
#include "registry_parts.h"

namespace kvs {
namespace schemes {
namespace {

// Why a scheme without an online form cannot stream, where its registration gives no reason of
// its own.
std::string familyNoStreamReason(const SchemeInfo& info) {
    if (info.transformsWeights)
        return "it rewrites the model's weights, fitted on the whole context at once";
    if (info.family == "codec")
        return "a codec keeps every token and changes only its form, so its cache grows with the "
               "stream instead of staying within a fixed budget";
    if (info.family == "factored")
        return "it keeps every token and changes the keys' form (a basis chosen for the whole "
               "context), so its cache grows with the stream instead of staying within a budget";
    return "it has no online form";
}

class FunctionScheme final : public Scheme {
public:
    FunctionScheme(SchemeInfo info, CompressFn fn, RewriteFn rewrite = {}, StreamFn stream = {})
        : m_info(std::move(info)), m_fn(std::move(fn)), m_rewrite(std::move(rewrite)),
          m_stream(std::move(stream)) {
        m_info.transformsWeights = static_cast<bool>(m_rewrite);
        m_info.canStream = static_cast<bool>(m_stream);
        if (m_info.canStream)
            m_info.noStreamReason.clear();
        else if (m_info.noStreamReason.empty())
            m_info.noStreamReason = familyNoStreamReason(m_info);
    }
    const SchemeInfo& info() const override { return m_info; }
    CompressedHead compress(const HeadInput& head, const ParamValues& params) const override {
        const ParamValues all = withDefaults(params);
        if (head.tokens() == 0)
            throw Error(ErrorCode::InvalidArgument, m_info.id + ": the context is empty");
        CompressedHead c = m_fn(head, all);
        c.validate();
        return c;
    }
    WeightRewrite rewriteWeights(const Model& model, const Capture& capture, int contextTokens,
                                 const ParamValues& params) const override {
        if (!m_rewrite)
            return Scheme::rewriteWeights(model, capture, contextTokens, params);
        return m_rewrite(model, capture, contextTokens, withDefaults(params));
    }
    std::unique_ptr<StreamingState> startStream(const HeadInput& stream, const StreamStart& start,
                                                const ParamValues& params) const override {
        if (!m_stream)
            return Scheme::startStream(stream, start, params);
        return m_stream(stream, start, withDefaults(params));
    }

private:
    ParamValues withDefaults(const ParamValues& params) const {
        ParamValues all;
        for (const auto& p : m_info.params)
            all[p.key] = p.defaultValue;
        for (const auto& [k, v] : params)
            all[k] = v;
        return all;
    }

    SchemeInfo m_info;
    CompressFn m_fn;
    RewriteFn m_rewrite;
    StreamFn m_stream;
};

} // namespace

std::unique_ptr<Scheme> makeScheme(SchemeInfo info, CompressFn compress, StreamFn stream) {
    return std::make_unique<FunctionScheme>(std::move(info), std::move(compress), RewriteFn{},
                                            std::move(stream));
}

std::unique_ptr<Scheme> makeWeightScheme(SchemeInfo info, RewriteFn rewrite, CompressFn compress) {
    return std::make_unique<FunctionScheme>(std::move(info), std::move(compress),
                                            std::move(rewrite));
}

} // namespace schemes

namespace {

std::vector<std::unique_ptr<Scheme>>& mutableRegistry() {
    static std::vector<std::unique_ptr<Scheme>> registry = [] {
        std::vector<std::unique_ptr<Scheme>> r;
        schemes::addSelectionSchemes(r);
        schemes::addCoresetSchemes(r);
        schemes::addFactoredSchemes(r);
        schemes::addSharingSchemes(r);
        schemes::addCodecSchemes(r);
        return r;
    }();
    return registry;
}

} // namespace

const std::vector<std::unique_ptr<Scheme>>& schemeRegistry() {
    return mutableRegistry();
}

Result<const Scheme*> registerScheme(std::unique_ptr<Scheme> scheme) {
    if (!scheme)
        return Error(ErrorCode::InvalidArgument, "registerScheme: no scheme given");
    const std::string& id = scheme->info().id;
    if (findScheme(id))
        return Error(ErrorCode::InvalidArgument,
                     "registerScheme: the scheme id '" + id + "' is already registered");
    mutableRegistry().push_back(std::move(scheme));
    return mutableRegistry().back().get();
}

} // namespace kvs

namespace kvs {

WeightRewrite Scheme::rewriteWeights(const Model&, const Capture&, int, const ParamValues&) const {
    throw Error(ErrorCode::Internal, info().id + " does not transform the model's weights");
}

std::unique_ptr<StreamingState> Scheme::startStream(const HeadInput&, const StreamStart&,
                                                    const ParamValues&) const {
    const std::string& why = info().noStreamReason;
    throw Error(ErrorCode::InvalidArgument,
                info().id + " cannot stream: " + (why.empty() ? "it has no online form" : why));
}

} // namespace kvs
