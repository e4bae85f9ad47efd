// SPDX-License-Identifier: MIT
// The window's tabs: creates every registered view, feeds them the session's events through the
// one StudioView interface, repaints only the visible view (the others when shown), and hands
// out their charts for export.
#include "view_host.h"

#include "session.h"

#include <QTabWidget>
#include <algorithm>

namespace kvs::studio {

ViewHost::ViewHost(Session* session, QTabWidget* tabs, std::function<int()> focusedRun,
                   QObject* parent)
    : QObject(parent), m_session(session), m_tabs(tabs), m_focusedRun(std::move(focusedRun)),
      m_subscription(session, this) {
    connect(m_tabs, &QTabWidget::currentChanged, this, [this] { refresh(false); });
}

void ViewHost::createViews() {
    for (const ViewRegistration& r : studioViews()) {
        views::StudioView* v = r.create(ViewContext{m_session, m_tabs});
        if (!v)
            continue;
        if (v->viewName() != r.name)
            qWarning("kvstudio: the view registered as '%s' names itself '%s'", qPrintable(r.name),
                     qPrintable(v->viewName()));
        m_views.push_back(v);
        m_stale.push_back(false);
        m_beforeDraw.emplace_back();
        m_tabs->addTab(v->viewWidget(), v->viewTitle());
    }
}

views::StudioView* ViewHost::view(const QString& name) const {
    const int i = indexOf(name);
    return i < 0 ? nullptr : m_views[static_cast<std::size_t>(i)];
}

QStringList ViewHost::names() const {
    QStringList list;
    for (views::StudioView* v : m_views)
        list << v->viewName();
    return list;
}

int ViewHost::indexOf(const QString& name) const {
    return static_cast<int>(names().indexOf(name));
}

bool ViewHost::show(const QString& name) {
    const int i = indexOf(name);
    if (i < 0)
        return false;
    m_tabs->setCurrentIndex(m_tabs->indexOf(m_views[static_cast<std::size_t>(i)]->viewWidget()));
    return true;
}

views::StudioView* ViewHost::current() const {
    QWidget* shown = m_tabs->currentWidget();
    for (views::StudioView* v : m_views)
        if (v->viewWidget() == shown)
            return v;
    return nullptr;
}

void ViewHost::setBeforeDraw(views::StudioView* view,
                             std::function<void(const views::AnalysisData&, int)> hook) {
    const auto it = std::find(m_views.begin(), m_views.end(), view);
    if (it != m_views.end())
        m_beforeDraw[static_cast<std::size_t>(it - m_views.begin())] = std::move(hook);
}

void ViewHost::markStale() {
    std::fill(m_stale.begin(), m_stale.end(), true);
}

void ViewHost::markStale(views::StudioView* view) {
    const auto it = std::find(m_views.begin(), m_views.end(), view);
    if (it != m_views.end())
        m_stale[static_cast<std::size_t>(it - m_views.begin())] = true;
}

void ViewHost::refresh(bool all) {
    const auto analysis = m_session ? m_session->analysis() : nullptr;
    if (!analysis)
        return;
    const int run =
        std::clamp(m_focusedRun(), 0, std::max(0, static_cast<int>(analysis->runs.size()) - 1));
    const views::StudioView* shown = current();
    // The visible view now; the others when they are shown (or all of them when asked).
    for (std::size_t i = 0; i < m_views.size(); ++i) {
        if (!m_stale[i] || !(all || m_views[i] == shown))
            continue;
        m_stale[i] = false;
        if (m_beforeDraw[i])
            m_beforeDraw[i](*analysis, run);
        m_views[i]->setAnalysis(analysis, run);
    }
    ++m_resultsShown;
}

void ViewHost::applyTheme() {
    for (views::StudioView* v : m_views)
        v->applyTheme();
}

void ViewHost::onModelCleared() {
    for (views::StudioView* v : m_views)
        v->clear(tr("No model."));
}

void ViewHost::onJobStarted(views::StudioJob job) {
    for (views::StudioView* v : m_views)
        v->jobStarted(job);
}

void ViewHost::onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>&) {
    markStale();
    refresh(false);
}

void ViewHost::onSweepsChanged(const std::shared_ptr<const views::SweepData>& sweeps) {
    for (views::StudioView* v : m_views)
        v->sweepsChanged(sweeps);
}

void ViewHost::onScalingChanged(const std::shared_ptr<const views::ScalingData>& scaling) {
    for (views::StudioView* v : m_views)
        v->scalingChanged(scaling);
}

void ViewHost::onJobFailed(views::StudioJob job, const kvs::Error& error) {
    const QString message = jobFailureText(job, error);
    for (views::StudioView* v : m_views)
        v->jobFailed(job, message);
}

} // namespace kvs::studio
