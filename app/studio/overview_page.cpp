// SPDX-License-Identifier: MIT
#include "overview_page.h"

#include "model_config_view.h"
#include "session.h"

#include <QCommandLinkButton>
#include <QDir>
#include <QFileInfo>
#include <QGridLayout>
#include <QLabel>
#include <QLocale>
#include <QScrollArea>
#include <QTextDocument>
#include <QUrl>
#include <QVBoxLayout>

namespace kvs::studio {

namespace {

QLabel* heading(const QString& text, QWidget* parent) {
    auto* label = new QLabel(text, parent);
    QFont f = label->font();
    f.setBold(true);
    f.setPointSizeF(f.pointSizeF() * 1.15);
    label->setFont(f);
    return label;
}

QList<StartAction> defaultActions() {
    using Mode = views::AttentionView::Mode;
    QList<StartAction> actions;
    {
        StartAction a{QStringLiteral("lost-mass"),
                      OverviewPage::tr("Compress to a quarter and look at the lost mass"),
                      OverviewPage::tr("SnapKV keeps 1/4 of the context; the Attention tab shows "
                                       "a diffuse head's exact and compressed maps and the "
                                       "attention each probe token lost."),
                      {}};
        a.setup.schemes = {QStringLiteral("select.snapkv:keep=0.25")};
        a.setup.focusedScheme = 0;
        a.setup.view = QStringLiteral("attention");
        a.setup.layer = 0;
        a.setup.head = 2;
        a.setup.attentionMode = Mode::SideBySide;
        actions << a;
    }
    {
        StartAction a{QStringLiteral("families"),
                      OverviewPage::tr("Compare three families on the trade-off chart"),
                      OverviewPage::tr("A coreset, thin keys and a 4/2-bit codec on one chart of "
                                       "next-token KL against cache bytes, coloured by family."),
                      {}};
        a.setup.schemes = {QStringLiteral("coreset.halving:keep=0.25"),
                           QStringLiteral("factor.data_aware:rank=8"),
                           QStringLiteral("codec.uniform:key_bits=4,value_bits=2")};
        a.setup.focusedScheme = 0;
        a.setup.view = QStringLiteral("tradeoffs");
        a.setup.colourByFamily = true;
        actions << a;
    }
    {
        StartAction a{QStringLiteral("sharing-variant"),
                      OverviewPage::tr("Open a trained sharing variant"),
                      OverviewPage::tr("The bundled GQA-2 model: 2 KV heads for 6 query heads, "
                                       "trained that way; its cache is a third of the default's."),
                      {}};
        a.setup.model = QStringLiteral("bundled:gqa2");
        a.setup.fitPrompt = true;
        a.setup.schemes = {QStringLiteral("identity:precision=16")};
        a.setup.focusedScheme = 0;
        a.setup.view = QStringLiteral("cache");
        actions << a;
    }
    {
        StartAction a{QStringLiteral("capacity"),
                      OverviewPage::tr("Plan serving capacity"),
                      OverviewPage::tr("Llama-2-7B at 128K tokens on an 80 GiB GPU: KV bytes per "
                                       "user, and how many users fit before and after a cut."),
                      {}};
        a.setup.view = QStringLiteral("capacity");
        a.setup.capacityPreset = QStringLiteral("llama-2-7b");
        a.setup.capacityContext = 131072;
        actions << a;
    }
    return actions;
}

} // namespace

OverviewPage::OverviewPage(Session* session, QWidget* parent)
    : QWidget(parent), m_session(session), m_subscription(session, this) {
    setObjectName(QStringLiteral("overviewPage"));

    auto* content = new QWidget;
    auto* layout = new QVBoxLayout(content);
    layout->setContentsMargins(16, 16, 16, 16);
    layout->setSpacing(10);

    auto* intro = new QLabel(
        tr("<h2>KV Studio</h2>"
           "<p>A transformer keeps the keys and values of every token it has read &mdash; the "
           "<b>KV cache</b> &mdash; and for long prompts that cache, not the weights, fills the "
           "GPU. KV Studio captures a real model's cache for your prompt, compresses it under "
           "the schemes you choose (fewer tokens, thinner keys, shared heads, fewer bits) and "
           "runs attention on the compressed cache with Vulkan compute shaders. It shows what "
           "was lost &mdash; attention maps, next-token KL against bytes, per-head cache use "
           "&mdash; live as you change a setting, and exports every chart for a report.</p>"),
        content);
    intro->setObjectName(QStringLiteral("overviewText"));
    intro->setWordWrap(true);
    intro->setTextFormat(Qt::RichText);

    m_facts = new QLabel(content);
    m_facts->setObjectName(QStringLiteral("overviewFacts"));
    m_facts->setWordWrap(true);
    m_facts->setTextFormat(Qt::RichText);
    m_facts->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_facts->setFrameShape(QFrame::StyledPanel);
    m_facts->setMargin(10);
    m_facts->setBackgroundRole(QPalette::AlternateBase);
    m_facts->setAutoFillBackground(true);

    layout->addWidget(intro);
    layout->addWidget(m_facts);
    layout->addWidget(heading(tr("Try this"), content));

    m_actions = defaultActions();
    auto* grid = new QGridLayout;
    grid->setHorizontalSpacing(12);
    for (int i = 0; i < m_actions.size(); ++i) {
        const StartAction& a = m_actions[i];
        auto* button = new QCommandLinkButton(a.title, a.description, content);
        button->setObjectName(QStringLiteral("start_") + a.id);
        button->setToolTip(a.description);
        const StudioSetup setup = a.setup;
        connect(button, &QCommandLinkButton::clicked, this,
                [this, setup] { emit setupRequested(setup); });
        grid->addWidget(button, i / 2, i % 2);
        m_buttons << button;
    }
    layout->addLayout(grid);

    auto* tour = new QCommandLinkButton(
        tr("Take the guided tour"),
        tr("Nine steps from what a KV cache is to choosing on the trade-off chart; each step "
           "sets up the real views and invites one thing to try."),
        content);
    tour->setObjectName(QStringLiteral("start_tour"));
    tour->setToolTip(tr("Help \u203a Guided Tour"));
    connect(tour, &QCommandLinkButton::clicked, this, [this] { emit tourRequested(); });
    layout->addWidget(tour);

    layout->addWidget(heading(tr("Open a model"), content));
    m_models = new QLabel(content);
    m_models->setObjectName(QStringLiteral("overviewModels"));
    m_models->setWordWrap(true);
    m_models->setTextFormat(Qt::RichText);
    m_models->setToolTip(tr("Click a model to open it; File \u203a Open Model opens any Hugging "
                            "Face folder (GPT-2 or Llama family, safetensors)"));
    connect(m_models, &QLabel::linkActivated, this, [this](const QString& link) {
        const int index = link.mid(QStringLiteral("model:").size()).toInt();
        if (index >= 0 && index < m_listedFolders.size())
            emit modelRequested(m_listedFolders[index]);
    });
    layout->addWidget(m_models);
    layout->addStretch(1);

    auto* scroll = new QScrollArea(this);
    scroll->setWidget(content);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    auto* outer = new QVBoxLayout(this);
    outer->setContentsMargins(0, 0, 0, 0);
    outer->addWidget(scroll);

    setModels({}, {});
    refreshFacts();
}

bool OverviewPage::trigger(const QString& id) {
    for (QCommandLinkButton* b : m_buttons)
        if (b->objectName() == QStringLiteral("start_") + id) {
            b->click();
            return true;
        }
    return false;
}

void OverviewPage::setModels(const QList<QPair<QString, QString>>& bundled,
                             const QStringList& recent) {
    m_listedFolders.clear();
    const auto link = [this](const QString& label, const QString& folder) {
        const int index = static_cast<int>(m_listedFolders.size());
        m_listedFolders << folder;
        return QStringLiteral("<a href=\"model:%1\">%2</a>").arg(index).arg(label.toHtmlEscaped());
    };
    QString html;
    if (!bundled.isEmpty()) {
        QStringList items;
        for (const auto& [label, folder] : bundled)
            items << link(label, folder);
        html += tr("<b>Bundled</b> (trained on the King James Bible, docs/bundled-model.md): ") +
                items.join(QStringLiteral(" &middot; "));
    }
    QStringList recentItems;
    for (const QString& folder : recent)
        recentItems << link(QFileInfo(folder).fileName(), folder);
    html +=
        QStringLiteral("<br><br>") + tr("<b>Recent</b>: ") +
        (recentItems.isEmpty() ? tr("none yet") : recentItems.join(QStringLiteral(" &middot; ")));
    m_models->setText(html);
}

QString OverviewPage::factsText() const {
    QTextDocument doc;
    doc.setHtml(m_facts->text());
    return doc.toPlainText();
}

void OverviewPage::onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) {
    m_model = model;
    m_tokens.reset();
    refreshFacts();
}

void OverviewPage::onModelCleared() {
    m_model.reset();
    m_tokens.reset();
    refreshFacts();
}

void OverviewPage::onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) {
    m_tokens = tokens;
    refreshFacts();
}

void OverviewPage::refreshFacts() {
    if (!m_model) {
        m_facts->setText(tr("<b>No model loaded.</b> Open one of the models below, or any "
                            "Hugging Face folder with File \u203a Open Model."));
        return;
    }
    const views::ModelFacts& f = m_model->facts;
    const ModelConfig& c = f.config;
    const QLocale locale;
    QString text = tr("<b>%1</b> &mdash; %2 layers, %3 query heads over %4 KV heads of dimension "
                      "%5, %6 parameters. An fp16 KV cache takes <b>%7 per token</b>.")
                       .arg(f.name.toHtmlEscaped())
                       .arg(c.layers)
                       .arg(c.heads)
                       .arg(c.kvHeads)
                       .arg(c.headDim)
                       .arg(views::formatCount(f.parameters))
                       .arg(views::formatBytes(f.kvBytesPerTokenFp16));
    if (m_tokens) {
        text += tr("<br>The prompt is <b>%1 tokens</b>; its exact cache is <b>%2</b> across all "
                   "layers and KV heads &mdash; the baseline every compression scheme is "
                   "measured against.")
                    .arg(locale.toString(m_tokens->count()))
                    .arg(views::formatBytes(m_tokens->kvBytesFp16));
    }
    m_facts->setText(text);
}

} // namespace kvs::studio
