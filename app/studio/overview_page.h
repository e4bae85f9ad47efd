// SPDX-License-Identifier: MIT
// The "Overview" tab: what the studio does, and the facts of the current model and prompt.
#pragma once

#include "session_view.h"

#include <QPointer>
#include <QWidget>

class QLabel;
class QTextBrowser;

namespace kvs::studio {

class Session;

class OverviewPage : public QWidget, public ISessionView, public views::StudioView {
    Q_OBJECT
public:
    explicit OverviewPage(Session* session, QWidget* parent = nullptr);

    QString factsText() const; // the "current model and prompt" paragraph, as plain text

    void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) override;
    void onModelCleared() override;
    void onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) override;

    // StudioView: the page shows the model and prompt (from the session), no analysis, no charts.
    QString viewName() const override { return QStringLiteral("overview"); }
    QString viewTitle() const override { return tr("Overview"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const views::AnalysisData>&, int) override {}
    void clear(const QString&) override {}

private:
    void refreshFacts();

    QPointer<Session> m_session;
    QTextBrowser* m_intro = nullptr;
    QLabel* m_facts = nullptr;
    std::shared_ptr<const ModelSnapshot> m_model;
    std::shared_ptr<const TokensSnapshot> m_tokens;
    SessionSubscription m_subscription;
};

} // namespace kvs::studio
