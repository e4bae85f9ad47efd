// SPDX-License-Identifier: MIT
// The "Overview" tab: what the studio does, and the facts of the current model and prompt.
#include "overview_page.h"

#include "model_config_view.h"
#include "session.h"

#include <QDir>
#include <QLabel>
#include <QLocale>
#include <QTextBrowser>
#include <QTextDocument>
#include <QVBoxLayout>

namespace kvs::studio {

namespace {

// Until the lesson texts live in assets/, the introduction is here. It says what exists today.
QString introHtml() {
    return OverviewPage::tr(
        "<h2>KV Studio</h2>"
        "<p>When a transformer generates text it keeps the <b>keys</b> and <b>values</b> of every "
        "earlier token, in every layer and KV head: the <i>KV cache</i>. For long prompts this "
        "cache, not the weights, is what fills GPU memory. KV-cache compression stores less "
        "&mdash; fewer tokens, thinner keys, shared heads or fewer bits &mdash; and the question "
        "is always what that costs in attention quality.</p>"
        "<p>KV Studio answers that question for a real model and a real prompt. It captures the "
        "queries, keys and values of each layer and head, compresses the cache under the scheme "
        "you choose, runs attention on the GPU with Vulkan compute shaders (or the CPU reference) "
        "and shows what was lost: attention maps side by side, error against memory, per-head "
        "cache bytes and GPU timings.</p>"
        "<h3>How to use it</h3>"
        "<ul>"
        "<li>Open a Hugging Face model folder (GPT-2 or Llama family, safetensors) with "
        "<b>File &rarr; Open Model&hellip;</b>, the Recent Models list, or by dropping the folder "
        "onto the window.</li>"
        "<li>The <b>Setup</b> panel shows its configuration at a glance &mdash; including how "
        "query heads share KV heads &mdash; and how the tokenizer splits your prompt.</li>"
        "<li>Compare schemes in the <b>Schemes</b> dock: token selection and coresets (fewer "
        "tokens), factored keys (thinner keys), codecs (fewer bits, entropy-coded). Every change "
        "re-runs the analysis live.</li>"
        "<li><b>Trade-offs</b> ranks them by next-token KL (nats per token) against the bytes "
        "each cache takes; <b>Attention</b> shows what each head lost, <b>Cache</b> where the "
        "bytes go, <b>Profile</b> what the probe attention cost on the backend.</li>"
        "</ul>");
}

} // namespace

OverviewPage::OverviewPage(Session* session, QWidget* parent)
    : QWidget(parent), m_session(session), m_subscription(session, this) {
    setObjectName(QStringLiteral("overviewPage"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(12, 12, 12, 12);
    layout->setSpacing(10);

    m_facts = new QLabel(this);
    m_facts->setObjectName(QStringLiteral("overviewFacts"));
    m_facts->setWordWrap(true);
    m_facts->setTextFormat(Qt::RichText);
    m_facts->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_facts->setFrameShape(QFrame::StyledPanel);
    m_facts->setMargin(10);
    m_facts->setBackgroundRole(QPalette::AlternateBase);
    m_facts->setAutoFillBackground(true);

    m_intro = new QTextBrowser(this);
    m_intro->setObjectName(QStringLiteral("overviewText"));
    m_intro->setOpenLinks(false);
    m_intro->setFrameShape(QFrame::NoFrame);
    m_intro->setHtml(introHtml());

    layout->addWidget(m_facts);
    layout->addWidget(m_intro, 1);

    refreshFacts();
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
        m_facts->setText(tr("<b>No model loaded.</b> Open a model folder to begin."));
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
