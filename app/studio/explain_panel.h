// SPDX-License-Identifier: MIT
// The Explain dock: what the current view shows and what the focused scheme does to the cache,
// in plain words with the key formula (texts from assets/explain, explain_texts.h), with the
// numbers of the head chosen in the Attention view filled in from the current analysis; terms
// link to a glossary shown in the same panel. It formats results; it computes no analysis.
#pragma once

#include "explain_texts.h"
#include "session_view.h"

#include <QPointer>
#include <QWidget>
#include <functional>

class QLabel;
class QTabWidget;
class QTextBrowser;
class QUrl;

namespace kvs::views {
class AttentionView;
}

namespace kvs::studio {

class SchemesPanel;
class Session;
class ViewHost;

class ExplainPanel : public QWidget, public ISessionView {
    Q_OBJECT
public:
    // Follows the session's results, the tabs of `views`, the Schemes dock's focused row and
    // settings, and the Attention view's chosen head.
    ExplainPanel(Session* session, ViewHost* views, QTabWidget* tabs, SchemesPanel* schemes,
                 QWidget* parent = nullptr);

    // What the panel shows, as plain text, and the Markdown it was made from.
    QString text() const;
    QString markdown() const { return m_markdown; }
    // The values and flags of the last explanation (tests compare them with the analysis).
    const explain::Values& values() const { return m_values; }
    // The explanation for `view` and the focused scheme, as the panel would show it now.
    QString explanationMarkdown(const QString& view) const;
    // Glossary: the entry shown ("" while the explanation is shown).
    QString glossaryEntry() const { return m_glossaryEntry; }
    bool isShowingGlossary() const { return !m_glossaryEntry.isEmpty(); }
    // Follows a link as a click would: glossary:id, "back" or "glossary" (every term).
    void openLink(const QUrl& url);
    QTextBrowser* browser() const { return m_browser; }

    // ISessionView
    void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) override;
    void onModelCleared() override;
    void onJobStarted(views::StudioJob job) override;
    void onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>& analysis) override;
    void onJobFailed(views::StudioJob job, const kvs::Error& error) override;

public slots:
    // The view, the focused scheme or the chosen head changed: back to the explanation.
    void contextChanged();
    // New results: the explanation is redone (a glossary entry being read stays).
    void refresh();

protected:
    // The theme changed: the links take the palette's colour when the text is laid out again.
    void changeEvent(QEvent* event) override;

private:
    explain::Values gatherValues(const QString& view) const;
    void showMarkdown(const QString& markdown);
    void showGlossary(const QString& id);
    QString currentView() const;
    views::AttentionView* attention() const;

    QPointer<Session> m_session;
    ViewHost* m_views;
    QTabWidget* m_tabs;
    SchemesPanel* m_schemes;
    QPointer<views::AttentionView> m_attention;
    QTextBrowser* m_browser = nullptr;
    QString m_markdown;
    explain::Values m_values;
    QString m_glossaryEntry;
    bool m_stale = false; // results arrived while a glossary entry was shown
    QString m_failure;    // why the last analysis failed, until the next one starts
    SessionSubscription m_subscription;
};

} // namespace kvs::studio
