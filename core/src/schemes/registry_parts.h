// SPDX-License-Identifier: MIT
// How the scheme files hand their schemes to the registry.
#pragma once

#include "kvs/scheme.h"

#include <functional>
#include <memory>
#include <vector>

namespace kvs::schemes {

using CompressFn = std::function<CompressedHead(const HeadInput&, const ParamValues&)>;
// A scheme's online form (Scheme::startStream); params come with their defaults filled in.
using StreamFn = std::function<std::unique_ptr<StreamingState>(const HeadInput&, const StreamStart&,
                                                               const ParamValues&)>;
// With `stream` the scheme can stream (SchemeInfo::canStream); without it, info.noStreamReason
// says why not (a reason by family is filled in where it is empty).
std::unique_ptr<Scheme> makeScheme(SchemeInfo info, CompressFn compress, StreamFn stream = {});
using RewriteFn =
    std::function<WeightRewrite(const Model&, const Capture&, int, const ParamValues&)>;
// A weight-transforming scheme: `rewrite` makes the model, `compress` stores its cache.
std::unique_ptr<Scheme> makeWeightScheme(SchemeInfo info, RewriteFn rewrite, CompressFn compress);

void addSelectionSchemes(std::vector<std::unique_ptr<Scheme>>& out);
void addCoresetSchemes(std::vector<std::unique_ptr<Scheme>>& out);
void addCodecSchemes(std::vector<std::unique_ptr<Scheme>>& out);
void addFactoredSchemes(std::vector<std::unique_ptr<Scheme>>& out);
void addSharingSchemes(std::vector<std::unique_ptr<Scheme>>& out);

} // namespace kvs::schemes
