// SPDX-License-Identifier: MIT
// The scheme registry: adding a scheme means adding it to one of the add*Schemes lists.
#include "registry_parts.h"

namespace kvs {
namespace schemes {
namespace {

class FunctionScheme final : public Scheme {
public:
    FunctionScheme(SchemeInfo info, CompressFn fn, RewriteFn rewrite = {})
        : m_info(std::move(info)), m_fn(std::move(fn)), m_rewrite(std::move(rewrite)) {
        m_info.transformsWeights = static_cast<bool>(m_rewrite);
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
};

} // namespace

std::unique_ptr<Scheme> makeScheme(SchemeInfo info, CompressFn compress) {
    return std::make_unique<FunctionScheme>(std::move(info), std::move(compress));
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

} // namespace kvs
