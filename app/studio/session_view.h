// SPDX-License-Identifier: MIT
// The one observer interface through which the session's model and analysis events reach the
// window and its views; the session calls it on the GUI thread.
#pragma once

#include "snapshots.h"
#include "studio_view.h"

#include "kvs/status.h"

#include <QPointer>
#include <QString>
#include <memory>

namespace kvs::studio {

// Register with Session::addView(). Calls arrive on the GUI thread, in publication order. The
// snapshots are never null and never change; an observer may keep the pointer as long as it likes.
// Every call has an empty default: an observer overrides what it shows.
class ISessionView {
public:
    virtual ~ISessionView() = default;

    virtual void onModelLoading(const QString& /*folder*/) {}
    virtual void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& /*model*/) {}
    // Loading `folder` failed; the previously loaded model (if any) stays current.
    virtual void onModelLoadFailed(const QString& /*folder*/, const QString& /*message*/) {}
    virtual void onModelCleared() {}
    virtual void onTokensChanged(const std::shared_ptr<const TokensSnapshot>& /*tokens*/) {}
    virtual void onTokenizeFailed(const QString& /*message*/) {}

    // The analysis jobs (views::StudioJob): one started, one delivered its result, one failed
    // with the error that stopped it (its original code). A cancelled or superseded job reports
    // nothing.
    virtual void onJobStarted(views::StudioJob /*job*/) {}
    virtual void onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>& /*a*/) {}
    virtual void onSweepsChanged(const std::shared_ptr<const views::SweepData>& /*sweeps*/) {}
    virtual void onScalingChanged(const std::shared_ptr<const views::ScalingData>& /*scaling*/) {}
    virtual void onJobFailed(views::StudioJob /*job*/, const kvs::Error& /*error*/) {}
};

// "Sweep failed: <message> [<code>]": what the status bar and the view lacking the result say.
QString jobFailureText(views::StudioJob job, const kvs::Error& error);

class Session;

// Keeps a view registered with a session while both live: declare it as the view's last member,
// so it is made after, and destroyed before, everything the view's callbacks use. A session that
// dies first (a QPointer) is not called again.
class SessionSubscription {
public:
    SessionSubscription(Session* session, ISessionView* view);
    ~SessionSubscription();
    SessionSubscription(const SessionSubscription&) = delete;
    SessionSubscription& operator=(const SessionSubscription&) = delete;

private:
    QPointer<Session> m_session;
    ISessionView* m_view;
};

} // namespace kvs::studio
