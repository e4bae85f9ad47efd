// SPDX-License-Identifier: MIT
// The "Start" tab (view name "overview"): what the studio does in three sentences, the facts of
// the current model and prompt, "try this" actions that set up real views, the bundled and recent
// models, and the guided tour. The window carries the actions out (its signals).
#pragma once

#include "lessons.h"
#include "session_view.h"

#include <QList>
#include <QPointer>
#include <QWidget>

class QCommandLinkButton;
class QLabel;

namespace kvs::studio {

class Session;

// One "try this" action of the start page.
struct StartAction {
    QString id; // "lost-mass", "families", "sharing-variant", "capacity"
    QString title;
    QString description;
    StudioSetup setup;
};

class OverviewPage : public QWidget, public ISessionView, public views::StudioView {
    Q_OBJECT
public:
    explicit OverviewPage(Session* session, QWidget* parent = nullptr);

    QString factsText() const; // the "current model and prompt" paragraph, as plain text
    const QList<StartAction>& startActions() const { return m_actions; }
    // Presses the action's button (tests, the command palette); false when unknown.
    bool trigger(const QString& id);
    // The models listed under "Open a model": (label, folder) pairs, bundled first.
    void setModels(const QList<QPair<QString, QString>>& bundled, const QStringList& recent);
    QStringList listedModelFolders() const { return m_listedFolders; }

    void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) override;
    void onModelCleared() override;
    void onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) override;

    // StudioView: the page shows the model and prompt (from the session), no analysis, no charts.
    QString viewName() const override { return QStringLiteral("overview"); }
    QString viewTitle() const override { return tr("Start"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const views::AnalysisData>&, int) override {}
    void clear(const QString&) override {}

signals:
    void setupRequested(const kvs::studio::StudioSetup& setup);
    void tourRequested();
    void modelRequested(const QString& folder);

private:
    void refreshFacts();

    QPointer<Session> m_session;
    QLabel* m_facts = nullptr;
    QLabel* m_models = nullptr;
    QList<StartAction> m_actions;
    QList<QCommandLinkButton*> m_buttons;
    QStringList m_listedFolders;
    std::shared_ptr<const ModelSnapshot> m_model;
    std::shared_ptr<const TokensSnapshot> m_tokens;
    SessionSubscription m_subscription;
};

} // namespace kvs::studio
