// SPDX-License-Identifier: MIT
// The Setup dock's contents: the model row, messages, the configuration sheet, the prompt editor
// and the tokenized prompt; forwards edits to the session and shows its snapshots.
#include "setup_panel.h"

#include "elided_label.h"
#include "message_bar.h"
#include "model_config_view.h"
#include "session.h"
#include "startup.h"
#include "token_chips_view.h"

#include <QAction>
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSplitter>
#include <QTextCursor>
#include <QVBoxLayout>

namespace kvs::studio {

namespace {

QLabel* heading(const QString& text, QWidget* parent) {
    auto* label = new QLabel(text, parent);
    QFont f = label->font();
    f.setBold(true);
    label->setFont(f);
    return label;
}

} // namespace

SetupPanel::SetupPanel(Session* session, QAction* openAction, QWidget* parent)
    : QWidget(parent), m_session(session), m_subscription(session, this) {
    setObjectName(QStringLiteral("setupPanel"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);
    layout->setSpacing(6);

    // Model row: where the model comes from, and the button to choose another.
    auto* modelRow = new QHBoxLayout;
    modelRow->setSpacing(6);
    auto* modelLabel = heading(tr("Model"), this);
    m_path = new views::ElidedLabel(this);
    m_path->setObjectName(QStringLiteral("modelPathLabel"));
    m_path->setFullText(tr("No model loaded"));
    m_open = new QPushButton(tr("Open model\u2026"), this);
    m_open->setObjectName(QStringLiteral("openModelButton"));
    m_open->setToolTip(tr("Choose a Hugging Face model folder (config.json + *.safetensors + "
                          "tokenizer). You can also drop a folder onto the window."));
    if (openAction)
        connect(m_open, &QPushButton::clicked, openAction, &QAction::trigger);
    modelRow->addWidget(modelLabel);
    modelRow->addWidget(m_path, 1);
    modelRow->addWidget(m_open);
    layout->addLayout(modelRow);

    m_message = new views::MessageBar(this);
    m_message->setObjectName(QStringLiteral("messageBar"));
    layout->addWidget(m_message);

    // Configuration sheet, scrollable when the dock is short.
    m_config = new views::ModelConfigView;
    m_config->setObjectName(QStringLiteral("modelConfigView"));
    auto* configScroll = new QScrollArea;
    configScroll->setObjectName(QStringLiteral("modelConfigScroll"));
    configScroll->setWidget(m_config);
    configScroll->setWidgetResizable(true);
    configScroll->setFrameShape(QFrame::NoFrame);
    configScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);

    // Prompt editor with its token count.
    m_prompt = new QPlainTextEdit;
    m_prompt->setObjectName(QStringLiteral("promptEdit"));
    m_prompt->setPlaceholderText(tr("Type a prompt; it is tokenized as you type."));
    m_prompt->setToolTip(tr("The prompt whose keys and values the studio captures and "
                            "compresses. It is re-tokenized shortly after each edit."));
    m_prompt->setTabStopDistance(m_prompt->fontMetrics().horizontalAdvance(QLatin1Char(' ')) * 4);
    m_prompt->setMinimumHeight(m_prompt->fontMetrics().lineSpacing() * 3 + 12);
    m_tokenCount = new QLabel;
    m_tokenCount->setObjectName(QStringLiteral("tokenCountLabel"));
    m_tokenCount->setToolTip(tr("Tokens in the prompt, and the longest sequence the model takes."));
    connect(m_prompt, &QPlainTextEdit::textChanged, this, [this] {
        if (m_session)
            m_session->setPrompt(m_prompt->toPlainText());
    });
    // A prompt longer than the model takes (the start-up prompt on a 256-token variant) is
    // refused by the analysis; one click keeps the tokens that fit, as an ordinary (undoable) edit.
    m_fit = new QPushButton(tr("Fit to model"));
    m_fit->setObjectName(QStringLiteral("fitPromptButton"));
    m_fit->setToolTip(tr("Keep the prompt's first tokens, as many as the model takes"));
    m_fit->setVisible(false);
    connect(m_fit, &QPushButton::clicked, this, [this] {
        const auto tokens = m_session ? m_session->tokens() : nullptr;
        if (!tokens || tokens->contextLimit <= 0 || tokens->count() <= tokens->contextLimit)
            return;
        const QString kept = m_session->promptPrefix(tokens->contextLimit);
        if (kept.isEmpty())
            return;
        QTextCursor cursor(m_prompt->document());
        cursor.select(QTextCursor::Document);
        cursor.insertText(kept); // one undo step in the editor
    });
    auto* countRow = new QWidget;
    auto* countLayout = new QHBoxLayout(countRow);
    countLayout->setContentsMargins(0, 0, 0, 0);
    countLayout->addWidget(m_tokenCount);
    countLayout->addWidget(m_fit);

    m_chips = new views::TokenChipsView;
    m_chips->setObjectName(QStringLiteral("tokenChipsView"));
    m_chips->setCountVisible(false); // the prompt's heading shows the count

    m_splitter = new QSplitter(Qt::Vertical, this);
    m_splitter->setObjectName(QStringLiteral("setupSplitter"));
    m_splitter->setChildrenCollapsible(false);
    m_splitter->addWidget(section(tr("Configuration"), configScroll));
    m_splitter->addWidget(section(tr("Prompt"), m_prompt, countRow));
    m_splitter->addWidget(section(tr("Tokens"), m_chips));
    m_splitter->setStretchFactor(0, 5);
    m_splitter->setStretchFactor(1, 2);
    m_splitter->setStretchFactor(2, 3);
    resetSplitter();
    layout->addWidget(m_splitter, 1);

    onModelCleared();
}

QWidget* SetupPanel::section(const QString& title, QWidget* body, QWidget* trailing) {
    auto* box = new QWidget;
    auto* v = new QVBoxLayout(box);
    v->setContentsMargins(0, 4, 0, 0);
    v->setSpacing(3);
    auto* head = new QHBoxLayout;
    head->addWidget(heading(title, box));
    head->addStretch(1);
    if (trailing)
        head->addWidget(trailing);
    v->addLayout(head);
    v->addWidget(body, 1);
    return box;
}

void SetupPanel::setPrompt(const QString& prompt) {
    if (m_prompt->toPlainText() != prompt)
        m_prompt->setPlainText(prompt);
    else if (m_session)
        m_session->setPrompt(prompt);
}

QString SetupPanel::prompt() const {
    return m_prompt->toPlainText();
}

void SetupPanel::showInfo(const QString& text) {
    m_message->showInfo(text);
}

QString SetupPanel::modelPath() const {
    return m_modelFolder;
}

void SetupPanel::resetSplitter() {
    // The sheet scrolls; the prompt and its tokens are what the user works with.
    m_splitter->setSizes({440, 110, 250});
}

QByteArray SetupPanel::splitterState() const {
    return m_splitter->saveState();
}

void SetupPanel::restoreSplitterState(const QByteArray& state) {
    if (!state.isEmpty())
        m_splitter->restoreState(state);
}

void SetupPanel::onModelLoading(const QString& folder) {
    m_message->clearMessage();
    if (!m_hasModel)
        m_path->setFullText(tr("Loading %1\u2026").arg(QFileInfo(folder).fileName()));
}

void SetupPanel::onModelLoaded(const std::shared_ptr<const ModelSnapshot>& snapshot) {
    const ModelSnapshot& model = *snapshot;
    m_hasModel = true;
    // The folder's name, its full path on hover: screenshots and exports of the window then show
    // no path of the machine they were made on.
    m_modelFolder = QDir::toNativeSeparators(model.facts.folder);
    m_path->setFullText(modelDisplayName(model.facts.folder, QCoreApplication::applicationDirPath()));
    m_path->setToolTip(m_modelFolder);
    m_config->setFacts(model.facts);
    m_chips->clear(tr("Tokenizing\u2026"));
    m_tokenCount->clear();
    m_fit->setVisible(false);
}

void SetupPanel::onModelLoadFailed(const QString& /*folder*/, const QString& message) {
    m_message->showError(message);
    if (!m_hasModel)
        m_path->setFullText(tr("No model loaded"));
}

void SetupPanel::onModelCleared() {
    m_hasModel = false;
    m_modelFolder.clear();
    m_path->setFullText(tr("No model loaded"));
    m_config->clear();
    m_chips->clear(tr("Open a model to see how it tokenizes the prompt."));
    m_tokenCount->clear();
    m_fit->setVisible(false);
}

void SetupPanel::onTokensChanged(const std::shared_ptr<const TokensSnapshot>& snapshot) {
    const TokensSnapshot& tokens = *snapshot;
    std::vector<views::TokenChip> chips;
    chips.reserve(tokens.ids.size());
    for (std::size_t i = 0; i < tokens.ids.size(); ++i)
        chips.push_back({tokens.ids[i], tokens.texts.value(static_cast<qsizetype>(i))});
    m_chips->setTokens(std::move(chips));
    if (tokens.ids.empty())
        m_chips->clear(tr("The prompt is empty."));

    const QLocale locale;
    const int n = tokens.count();
    const QString count = n == 1 ? tr("1 token") : tr("%1 tokens").arg(locale.toString(n));
    if (tokens.contextLimit > 0 && n > tokens.contextLimit) {
        m_tokenCount->setText(tr("%1 \u2014 over the model's limit of %2")
                                  .arg(count, locale.toString(tokens.contextLimit)));
        m_tokenCount->setStyleSheet(QStringLiteral("color: #D55E00;"));
        m_fit->setVisible(true);
    } else {
        m_fit->setVisible(false);
        m_tokenCount->setText(tokens.contextLimit > 0
                                  ? tr("%1 of %2").arg(count, locale.toString(tokens.contextLimit))
                                  : count);
        m_tokenCount->setStyleSheet(QString());
    }
    if (m_message->kind() == views::MessageBar::Kind::Warning)
        m_message->clearMessage(); // a tokenizer warning no longer applies
}

void SetupPanel::onTokenizeFailed(const QString& message) {
    m_chips->clear(tr("The prompt could not be tokenized."));
    m_tokenCount->clear();
    m_fit->setVisible(false);
    m_message->showMessage(views::MessageBar::Kind::Warning, message);
}

} // namespace kvs::studio
