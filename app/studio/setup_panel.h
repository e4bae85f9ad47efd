// SPDX-License-Identifier: MIT
// The Setup dock's contents: the model row, messages, the configuration sheet, the prompt editor
// and the tokenized prompt; forwards edits to the session and shows its snapshots.
#pragma once

#include "session_view.h"

#include <QPointer>
#include <QWidget>

class QAction;
class QLabel;
class QPlainTextEdit;
class QPushButton;
class QSplitter;

namespace kvs::views {
class ElidedLabel;
class MessageBar;
class ModelConfigView;
class TokenChipsView;
} // namespace kvs::views

namespace kvs::studio {

class Session;

class SetupPanel : public QWidget, public ISessionView {
    Q_OBJECT
public:
    // `openAction` is what the "Open model…" button triggers (the main window's File action).
    SetupPanel(Session* session, QAction* openAction, QWidget* parent = nullptr);

    void setPrompt(const QString& prompt);
    QString prompt() const;
    // A message that is not about a load (e.g. "no default model: how to get one").
    void showInfo(const QString& text);

    views::ModelConfigView* configView() const { return m_config; }
    views::TokenChipsView* chipsView() const { return m_chips; }
    views::MessageBar* messageBar() const { return m_message; }
    QPlainTextEdit* promptEdit() const { return m_prompt; }
    QLabel* tokenCountLabel() const { return m_tokenCount; }
    // Shown while the prompt is longer than the model takes: keeps its first tokens that fit.
    QPushButton* fitPromptButton() const { return m_fit; }
    QString modelPath() const;
    // The split between configuration, prompt and tokens, for the window's saved layout.
    QByteArray splitterState() const;
    void restoreSplitterState(const QByteArray& state);
    void resetSplitter();

    void onModelLoading(const QString& folder) override;
    void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) override;
    void onModelLoadFailed(const QString& folder, const QString& message) override;
    void onModelCleared() override;
    void onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) override;
    void onTokenizeFailed(const QString& message) override;

private:
    QWidget* section(const QString& title, QWidget* body, QWidget* trailing = nullptr);

    QPointer<Session> m_session;
    views::ElidedLabel* m_path = nullptr;
    QPushButton* m_open = nullptr;
    views::MessageBar* m_message = nullptr;
    views::ModelConfigView* m_config = nullptr;
    QPlainTextEdit* m_prompt = nullptr;
    QLabel* m_tokenCount = nullptr;
    QPushButton* m_fit = nullptr;
    views::TokenChipsView* m_chips = nullptr;
    QSplitter* m_splitter = nullptr;
    bool m_hasModel = false;
    QString m_modelFolder; // the loaded model's folder; the label shows its name
    SessionSubscription m_subscription;
};

} // namespace kvs::studio
