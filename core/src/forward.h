// SPDX-License-Identifier: MIT
// The decoder forward pass of both families, templated on the scalar so fp32 can be checked
// against fp64 on the same weights.
#pragma once

#include "kvs/capture.h"
#include "kvs/model.h"
#include "weights.h"

#include <span>

namespace kvs {

// Cancellation and progress of a long forward pass (CaptureOptions' fields).
struct ForwardControl {
    const std::atomic<bool>* cancel = nullptr;               // checked before every layer
    const std::function<void(int, int)>* progress = nullptr; // after every layer: (done, layers)
};

// Runs tokens through the model after the cache's tokens, appending to the cache. Returns the
// logits of the rows asked for (× vocab). Fills capture->layers when capture is given. Throws
// kvs::Error(Cancelled) when control's cancel flag is set before a layer.
template <class S>
MatrixT<S> runForward(const ModelConfig& config, const WeightStore<S>& weights,
                      std::span<const TokenId> tokens, KvCacheT<S>* cache, Capture* capture,
                      const ContextAttention* context = nullptr, LogitRows rows = LogitRows::All,
                      const ForwardControl& control = {});

} // namespace kvs
