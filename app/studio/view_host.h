// SPDX-License-Identifier: MIT
// The window's tabs: creates every registered view, feeds them the session's events through the
// one StudioView interface, repaints only the visible view (the others when shown), and hands
// out their charts for export.
#pragma once

#include "session_view.h"
#include "view_registry.h"

#include <QObject>
#include <QPointer>
#include <functional>
#include <memory>
#include <vector>

class QTabWidget;

namespace kvs::studio {

class Session;

class ViewHost : public QObject, public ISessionView {
    Q_OBJECT
public:
    // `focusedRun` is the scheme (run index) the views draw. Registers with the session.
    ViewHost(Session* session, QTabWidget* tabs, std::function<int()> focusedRun,
             QObject* parent = nullptr);

    // Creates the registered views (studioViews()) as tabs, in order.
    void createViews();
    const std::vector<views::StudioView*>& views() const { return m_views; }
    views::StudioView* view(const QString& name) const;
    // The first view of type V (the app's hooks into a particular view), or null.
    template <class V> V* find() const {
        for (views::StudioView* v : m_views)
            if (auto* typed = dynamic_cast<V*>(v))
                return typed;
        return nullptr;
    }
    QStringList names() const;
    int indexOf(const QString& name) const; // -1 when unknown
    bool show(const QString& name);
    views::StudioView* current() const;

    // Runs before a view draws new results (e.g. the Attention view's baseline difference).
    void setBeforeDraw(views::StudioView* view,
                       std::function<void(const views::AnalysisData&, int run)> hook);
    // Every view (or one) draws again when next visible; refresh(true) draws them all now.
    void markStale();
    void markStale(views::StudioView* view);
    void refresh(bool all);
    void applyTheme();
    // Repaints of the visible views since the last results arrived (benchmarks).
    quint64 resultsShown() const { return m_resultsShown; }

    // ISessionView
    void onModelCleared() override;
    void onJobStarted(views::StudioJob job) override;
    void onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>& analysis) override;
    void onSweepsChanged(const std::shared_ptr<const views::SweepData>& sweeps) override;
    void onScalingChanged(const std::shared_ptr<const views::ScalingData>& scaling) override;
    void onJobFailed(views::StudioJob job, const kvs::Error& error) override;

private:
    QPointer<Session> m_session; // the window destroys the session before its children
    QTabWidget* m_tabs;
    std::function<int()> m_focusedRun;
    std::vector<views::StudioView*> m_views;
    std::vector<bool> m_stale;
    std::vector<std::function<void(const views::AnalysisData&, int)>> m_beforeDraw;
    quint64 m_resultsShown = 0;
    SessionSubscription m_subscription;
};

} // namespace kvs::studio
