// SPDX-License-Identifier: MIT
// The one observer interface every studio view implements; the session calls it on the GUI thread.
#pragma once

#include "snapshots.h"

#include <QString>
#include <memory>

namespace kvs::studio {

// Register with Session::addView(). Calls arrive on the GUI thread, in publication order. The
// snapshots are never null and never change; a view may keep the pointer as long as it likes.
class ISessionView {
public:
    virtual ~ISessionView() = default;

    virtual void onModelLoading(const QString& /*folder*/) {}
    virtual void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) = 0;
    // Loading `folder` failed; the previously loaded model (if any) stays current.
    virtual void onModelLoadFailed(const QString& /*folder*/, const QString& /*message*/) {}
    virtual void onModelCleared() = 0;
    virtual void onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) = 0;
    virtual void onTokenizeFailed(const QString& /*message*/) {}
};

} // namespace kvs::studio
