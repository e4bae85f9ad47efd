// SPDX-License-Identifier: MIT
// The Explain dock: the current view's and the focused scheme family's texts, filled with the
// chosen head's numbers from the analysis (formatted here, never recomputed), and the glossary.
#include "explain_panel.h"

#include "attention_view.h"
#include "schemes_panel.h"
#include "session.h"
#include "view_host.h"

#include "plot_style.h"

#include "kvs/scheme.h"

#include <QDesktopServices>
#include <QEvent>
#include <QScrollBar>
#include <QTabWidget>
#include <QTextBlock>
#include <QTextBrowser>
#include <QTextCursor>
#include <QTextDocument>
#include <QUrl>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

namespace kvs::studio {

namespace {

using explain::Values;

// What the Schemes dock's focused row is, from the registry: display name and family.
struct SchemeFacts {
    QString setting;
    QString name;
    QString family;
    QStringList stages; // display names of a chain's stages
};

SchemeFacts schemeFacts(const QString& setting) {
    SchemeFacts f;
    f.setting = setting;
    const auto parsed = kvs::SchemeSetting::parse(setting.toStdString());
    if (!parsed)
        return f;
    if (const kvs::Scheme* scheme = kvs::findScheme(parsed->id)) {
        f.name = QString::fromStdString(scheme->info().displayName);
        f.family = QString::fromStdString(scheme->info().family);
    }
    for (const std::string& stage : kvs::splitSchemeChain(parsed->id))
        if (const kvs::Scheme* s = kvs::findScheme(stage))
            f.stages << QString::fromStdString(s->info().displayName);
    if (f.stages.size() > 1 && f.family.isEmpty())
        f.family = QStringLiteral("composed");
    return f;
}

QString signedPercent(double fraction) {
    const QString p = explain::percent(fraction);
    return fraction > 0 && !p.isEmpty() ? QStringLiteral("+") + p : p;
}

// The energy a rank keeps from one head's spectrum band (index r − 1), or NaN.
double energyAt(const std::vector<double>& mean, int rank) {
    if (rank < 1 || mean.empty())
        return std::nan("");
    return mean[static_cast<std::size_t>(std::min<int>(rank, static_cast<int>(mean.size())) - 1)];
}

} // namespace

ExplainPanel::ExplainPanel(Session* session, ViewHost* views, QTabWidget* tabs,
                           SchemesPanel* schemes, QWidget* parent)
    : QWidget(parent), m_session(session), m_views(views), m_tabs(tabs), m_schemes(schemes),
      m_subscription(session, this) {
    setObjectName(QStringLiteral("explainPanel"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_browser = new QTextBrowser(this);
    m_browser->setObjectName(QStringLiteral("explainText"));
    m_browser->setOpenLinks(false); // glossary links are ours; others go to the desktop
    m_browser->setFrameShape(QFrame::NoFrame);
    m_browser->document()->setDocumentMargin(10);
    layout->addWidget(m_browser);
    connect(m_browser, &QTextBrowser::anchorClicked, this, &ExplainPanel::openLink);

    if (m_tabs)
        connect(m_tabs, &QTabWidget::currentChanged, this, &ExplainPanel::contextChanged);
    if (m_schemes) {
        connect(m_schemes, &SchemesPanel::focusedRowChanged, this, &ExplainPanel::contextChanged);
        connect(m_schemes, &SchemesPanel::settingsChanged, this, &ExplainPanel::contextChanged);
    }
    m_attention = attention();
    if (m_attention)
        connect(m_attention, &views::AttentionView::selectionChanged, this,
                &ExplainPanel::contextChanged);
    refresh();
}

views::AttentionView* ExplainPanel::attention() const {
    return m_views ? m_views->find<views::AttentionView>() : nullptr;
}

QString ExplainPanel::currentView() const {
    const views::StudioView* view = m_views ? m_views->current() : nullptr;
    return view ? view->viewName() : QString();
}

QString ExplainPanel::text() const {
    return m_browser->toPlainText();
}

void ExplainPanel::onModelLoaded(const std::shared_ptr<const ModelSnapshot>&) {
    refresh();
}

void ExplainPanel::onModelCleared() {
    refresh();
}

void ExplainPanel::onJobStarted(views::StudioJob job) {
    if (job != views::StudioJob::Analysis)
        return;
    m_failure.clear();
    refresh(); // the numbers may now be for other settings: "computing" until they arrive
}

void ExplainPanel::onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>&) {
    m_failure.clear();
    refresh();
}

void ExplainPanel::onJobFailed(views::StudioJob job, const kvs::Error& error) {
    if (job != views::StudioJob::Analysis)
        return;
    m_failure = jobFailureText(job, error); // rather than "computing" for ever
    refresh();
}

void ExplainPanel::contextChanged() {
    m_glossaryEntry.clear();
    refresh();
}

void ExplainPanel::refresh() {
    if (!m_session) // the window is closing: the session went first
        return;
    if (isShowingGlossary()) {
        m_stale = true;
        return;
    }
    m_stale = false;
    const QString view = currentView();
    m_values = gatherValues(view);
    showMarkdown(explanationMarkdown(view));
}

QString ExplainPanel::explanationMarkdown(const QString& view) const {
    const Values values = view == currentView() ? m_values : gatherValues(view);
    QStringList parts;
    parts << explain::fill(explain::readText(explain::viewFile(view)), values);
    const QString family = values.text.value(QStringLiteral("family_id"));
    if (!family.isEmpty())
        parts << explain::fill(explain::readText(explain::familyFile(family)), values);
    parts << explain::fill(explain::readText(explain::kStatusFile), values);
    parts.removeAll(QString());
    return parts.join(QStringLiteral("\n\n"));
}

void ExplainPanel::showMarkdown(const QString& markdown) {
    const int scroll = m_browser->verticalScrollBar()->value();
    const bool same = markdown == m_markdown;
    m_markdown = markdown;
    QTextDocument* doc = m_browser->document();
    doc->setMarkdown(markdown);
    // Markdown's headings come out poster-sized in a narrow dock: a little above the body text.
    const qreal base = m_browser->font().pointSizeF();
    for (QTextBlock block = doc->begin(); block.isValid(); block = block.next()) {
        const int level = block.blockFormat().headingLevel();
        if (level == 0)
            continue;
        for (auto it = block.begin(); !it.atEnd(); ++it) {
            const QTextFragment fragment = it.fragment();
            QTextCursor cursor(doc);
            cursor.setPosition(fragment.position());
            cursor.setPosition(fragment.position() + fragment.length(), QTextCursor::KeepAnchor);
            QTextCharFormat format = fragment.charFormat();
            format.clearProperty(QTextFormat::FontSizeAdjustment);
            format.setFontPointSize(base * (level <= 2 ? 1.2 : 1.1));
            cursor.setCharFormat(format);
        }
    }
    if (same) // new numbers for the same text: keep the reader's place
        m_browser->verticalScrollBar()->setValue(scroll);
}

void ExplainPanel::changeEvent(QEvent* event) {
    QWidget::changeEvent(event);
    if (event->type() == QEvent::PaletteChange && !m_markdown.isEmpty()) {
        const QString markdown = m_markdown;
        const int scroll = m_browser->verticalScrollBar()->value();
        m_markdown.clear();
        showMarkdown(markdown);
        m_browser->verticalScrollBar()->setValue(scroll);
    }
}

void ExplainPanel::openLink(const QUrl& url) {
    const QString scheme = url.scheme();
    if (scheme == QLatin1String("glossary")) {
        showGlossary(url.path());
    } else if (url.toString() == QLatin1String("explain:back")) {
        m_glossaryEntry.clear();
        m_markdown.clear(); // scroll to the top again
        refresh();
    } else if (scheme == QLatin1String("http") || scheme == QLatin1String("https")) {
        QDesktopServices::openUrl(url);
    }
}

void ExplainPanel::showGlossary(const QString& id) {
    const auto entries = explain::parseGlossary(explain::readText(explain::kGlossaryFile));
    const QString back = tr("[\u2190 Back to the explanation](explain:back)");
    QString markdown;
    if (id.isEmpty() || id == QLatin1String("all")) {
        QStringList terms;
        for (const explain::GlossaryEntry& e : entries)
            terms << QStringLiteral("[%1](glossary:%2)").arg(e.term, e.id);
        markdown = back + QStringLiteral("\n\n## ") + tr("Glossary") + QStringLiteral("\n\n") +
                   terms.join(QStringLiteral(" \u00B7 "));
    } else {
        const auto it = std::find_if(entries.begin(), entries.end(),
                                     [&](const explain::GlossaryEntry& e) { return e.id == id; });
        if (it == entries.end())
            markdown = back + QStringLiteral("\n\n") +
                       tr("The glossary has no entry \u201C%1\u201D.").arg(id);
        else
            markdown = back + QStringLiteral("\n\n## ") + it->term + QStringLiteral("\n\n") +
                       it->markdown + QStringLiteral("\n\n") + tr("[All terms](glossary:all)");
    }
    m_glossaryEntry = id.isEmpty() ? QStringLiteral("all") : id;
    m_markdown.clear();
    showMarkdown(markdown);
}

explain::Values ExplainPanel::gatherValues(const QString& view) const {
    Values v;
    const views::StudioView* shown = m_views ? m_views->view(view) : nullptr;
    v.set(QStringLiteral("view"), view);
    v.set(QStringLiteral("view_title"), explain::escapeMarkdown(shown ? shown->viewTitle() : view));

    // The focused scheme as the Schemes dock has it now (the analysis may still be computing).
    const QStringList settings = m_schemes ? m_schemes->settings() : QStringList();
    const int row = m_schemes ? m_schemes->focusedRow() : 0;
    SchemeFacts scheme;
    if (row >= 0 && row < settings.size())
        scheme = schemeFacts(settings[row]);
    v.set(QStringLiteral("setting"), scheme.setting); // shown in code spans
    v.set(QStringLiteral("scheme"), explain::escapeMarkdown(scheme.name));
    v.set(QStringLiteral("family_id"), scheme.family);
    v.set(QStringLiteral("stages"),
          explain::escapeMarkdown(scheme.stages.join(QStringLiteral(" \u2192 "))));
    v.flag(QStringLiteral("chain"), scheme.stages.size() > 1);

    // Raw pointers, read once: the QPointers could change between a check and a use.
    const Session* session = m_session.data();
    const views::AttentionView* attention = m_attention.data();
    const auto model = session ? session->model() : nullptr;
    v.flag(QStringLiteral("model"), model != nullptr);
    if (model) {
        const kvs::ModelConfig& c = model->facts.config;
        v.set(QStringLiteral("model"), explain::escapeMarkdown(model->facts.name));
        v.set(QStringLiteral("layers"), explain::count(c.layers));
        v.set(QStringLiteral("heads"), explain::count(c.heads));
        v.set(QStringLiteral("kv_heads"), explain::count(c.kvHeads));
        v.set(QStringLiteral("head_dim"), explain::count(c.headDim));
        v.set(QStringLiteral("context_limit"), explain::count(model->facts.contextLimit));
        v.set(QStringLiteral("kv_bytes_token"),
              explain::bytes(static_cast<double>(model->facts.kvBytesPerTokenFp16)));
        v.flag(QStringLiteral("gqa"), c.kvHeads > 0 && c.kvHeads < c.heads);
    }

    const auto a = session ? session->analysis() : nullptr;
    // Numbers only for the setting the dock shows: while its analysis computes, none rather than
    // another setting's.
    const bool current = a && row >= 0 && row < static_cast<int>(a->runs.size()) &&
                         a->runs[static_cast<std::size_t>(row)].setting == scheme.setting;
    v.flag(QStringLiteral("computing"), model && !current && m_failure.isEmpty());
    v.flag(QStringLiteral("failed"), !current && !m_failure.isEmpty());
    v.set(QStringLiteral("failure"), explain::escapeMarkdown(m_failure));
    if (!current)
        return v;
    const views::SchemeRun& run = a->runs[static_cast<std::size_t>(row)];
    v.set(QStringLiteral("context"), explain::count(a->contextTokens));
    v.set(QStringLiteral("probe"), explain::count(a->probeTokens));
    v.set(QStringLiteral("tokens"), explain::count(a->contextTokens + a->probeTokens));
    if (!run.error.isEmpty()) {
        v.flag(QStringLiteral("refused"), true);
        v.set(QStringLiteral("error"), explain::escapeMarkdown(run.error));
        return v;
    }
    v.flag(QStringLiteral("analysis"), true);
    const kvs::EvalResult& e = run.eval;
    v.set(QStringLiteral("memory"), explain::percent(e.memoryFraction));
    if (e.memoryFraction > 0) // the Capacity tab's "users vs exact" when the cache limits
        v.set(QStringLiteral("users_factor"), explain::number(1.0 / e.memoryFraction, 3));
    v.set(QStringLiteral("cache_bytes"), explain::bytes(static_cast<double>(e.bytes.total())));
    v.set(QStringLiteral("fp16_bytes"), explain::bytes(static_cast<double>(e.fp16Bytes)));
    v.set(QStringLiteral("output_error"), explain::number(e.outputError));
    if (e.quality) {
        v.flag(QStringLiteral("quality"), true);
        v.set(QStringLiteral("kl"), explain::number(e.quality->klMean));
        v.set(QStringLiteral("ppl_change"),
              signedPercent(e.quality->perplexityChangePercent / 100));
        v.set(QStringLiteral("top1"), explain::percent(e.quality->top1Agreement));
    }
    v.flag(QStringLiteral("quality_pending"), a->qualityPending && !e.quality);
    const double bitsAll = e.fp16Bytes ? 16.0 * e.bytes.total() / e.fp16Bytes : std::nan("");
    v.set(QStringLiteral("bits_all"), explain::number(bitsAll, 3));
    v.flag(QStringLiteral("quantized"), run.quantizes);
    if (run.attendWallMicroseconds > 0)
        v.set(QStringLiteral("attend_ms"), explain::number(run.attendWallMicroseconds / 1000, 3));
    v.set(QStringLiteral("dispatches"),
          run.dispatches.empty() ? QString()
                                 : explain::count(static_cast<long long>(run.dispatches.size())));
    v.set(QStringLiteral("backend"), explain::escapeMarkdown(a->backendName));
    if (a->deviceBandwidthGBs > 0)
        v.set(QStringLiteral("bandwidth"), explain::number(a->deviceBandwidthGBs, 3));
    v.flag(QStringLiteral("emulation"), a->cpuEmulation);

    // The head chosen in the Attention view: the KV head its query head reads in this run.
    if (a->layers <= 0 || a->heads <= 0)
        return v;
    const int layer = std::clamp(attention ? attention->selectedLayer() : 0, 0, a->layers - 1);
    const int head = std::clamp(attention ? attention->selectedHead() : 0, 0, a->heads - 1);
    const int runKv = run.kvHeads(a->layers);
    const std::size_t index = run.headIndex(layer, head, a->layers, a->heads);
    v.set(QStringLiteral("layer"), QString::number(layer));
    v.set(QStringLiteral("head"), QString::number(head));
    v.set(QStringLiteral("run_kv_heads"), explain::count(runKv));
    v.flag(QStringLiteral("shared"), runKv > 0 && runKv < a->kvHeads);
    v.flag(QStringLiteral("group"), runKv > 0 && a->heads / runKv > 1);
    if (runKv > 0)
        v.set(QStringLiteral("group_size"), explain::count(a->heads / runKv));
    if (index >= e.heads.size())
        return v;
    const kvs::HeadMetrics& h = e.heads[index];
    v.flag(QStringLiteral("numbers"), true);
    v.set(QStringLiteral("kv_head"), QString::number(h.kvHead));
    const int n = h.contextTokens;
    v.set(QStringLiteral("kept"), explain::count(h.keptTokens));
    v.set(QStringLiteral("head_context"), explain::count(n));
    if (n > 0)
        v.set(QStringLiteral("kept_pct"), explain::percent(double(h.keptTokens) / n));
    v.flag(QStringLiteral("evicts"), h.keptTokens < n);
    v.flag(QStringLiteral("keeps_all"), h.keptTokens >= n);
    v.flag(QStringLiteral("weighted"), h.weighted);
    v.set(QStringLiteral("mass_kept"), explain::percent(1.0 - h.massLost));
    v.set(QStringLiteral("mass_lost"), explain::percent(h.massLost));
    v.set(QStringLiteral("tv"), explain::percent(h.totalVariation));
    v.set(QStringLiteral("head_error"), explain::number(h.outputError));
    v.set(QStringLiteral("head_bytes"), explain::bytes(static_cast<double>(h.bytes.total())));
    v.set(QStringLiteral("head_fp16"), explain::bytes(static_cast<double>(h.fp16Bytes)));
    if (h.fp16Bytes > 0) {
        const double fraction = double(h.bytes.total()) / double(h.fp16Bytes);
        v.set(QStringLiteral("head_memory"), explain::percent(fraction));
        // fp16 is 16 bits per element over 2·n·d elements (keys and values).
        v.set(QStringLiteral("bits"), explain::number(16.0 * fraction, 3));
        const double half = h.fp16Bytes / 2.0; // keys alone, or values alone, at fp16
        v.set(QStringLiteral("key_bits"), explain::number(16.0 * h.bytes.keys / half, 3));
        v.set(QStringLiteral("value_bits"), explain::number(16.0 * h.bytes.values / half, 3));
        v.set(QStringLiteral("meta_bits"), explain::number(16.0 * h.bytes.metadata / half / 2, 2));
    }
    if (h.rhoEff > 0)
        v.set(QStringLiteral("rho"), explain::number(h.rhoEff));
    // The bound at the measured error; beyond the context it says nothing about this head.
    const bool vacuous = !(h.boundTokens <= n);
    v.flag(QStringLiteral("bound_vacuous"), h.rhoEff > 0 && vacuous);
    if (h.boundTokens > 0 && !vacuous)
        v.set(QStringLiteral("bound_tokens"), views::orderOfMagnitude(h.boundTokens));
    if (h.rhoEff > 0)
        v.set(QStringLiteral("epsilon"), explain::number(h.valueScaledError));
    if (h.codedElements > 0) {
        v.flag(QStringLiteral("entropy"), true);
        const double elements = static_cast<double>(h.codedElements);
        v.set(QStringLiteral("entropy_bits"), explain::number(h.entropyBits / elements, 3));
        v.set(QStringLiteral("stream_bits"), explain::number(h.streamBits / elements, 3));
        v.set(QStringLiteral("side_bits"), explain::number(h.sideBits / elements, 2));
        v.set(QStringLiteral("gap_bits"),
              explain::number((h.streamBits - h.entropyBits) / elements, 2));
    }
    // Factored keys: r numbers per key instead of d, and what that rank keeps of the spectra.
    v.set(QStringLiteral("rank"), h.keyRank > 0 ? explain::count(h.keyRank) : QString());
    v.flag(QStringLiteral("factored"), h.keyRank > 0 && h.keyRank < a->headDim);
    if (a->headSpectra && h.keyRank > 0 && !v.flags.contains(QStringLiteral("shared")))
        for (const views::HeadSpectrumCurves& s : *a->headSpectra)
            if (s.layer == h.layer && s.kvHead == h.kvHead) {
                v.set(QStringLiteral("energy_wk"),
                      explain::percent(energyAt(s.energy.keyProjection.mean, h.keyRank)));
                v.set(QStringLiteral("energy_keys"),
                      explain::percent(energyAt(s.energy.keys.mean, h.keyRank)));
                v.set(QStringLiteral("energy_scores"),
                      explain::percent(energyAt(s.energy.scores.mean, h.keyRank)));
            }
    // Shared heads fitted per original KV head: R² of the head this query head read before.
    const int modelKv = a->kvHeads > 0 ? a->kvHeads : runKv;
    const std::size_t original = static_cast<std::size_t>(head / std::max(1, a->heads / modelKv));
    if (static_cast<std::size_t>(layer) < e.fitR2.size() &&
        original < e.fitR2[static_cast<std::size_t>(layer)].size())
        v.set(QStringLiteral("r2"),
              explain::number(e.fitR2[static_cast<std::size_t>(layer)][original], 3));
    return v;
}

} // namespace kvs::studio
