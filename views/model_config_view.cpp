// SPDX-License-Identifier: MIT
// The model's configuration at a glance: architecture, attention layout (GQA explicit), sizes,
// checkpoint and tokenizer, as a two-column sheet whose values can be selected and copied.
#include "model_config_view.h"

#include <QFont>
#include <QGridLayout>
#include <QLabel>
#include <QLocale>
#include <cmath>

namespace kvs::views {

namespace {

QString number(double v) {
    return QString::number(v, 'g', 10);
}

QString yesNo(bool b) {
    return b ? ModelConfigView::tr("yes") : ModelConfigView::tr("no");
}

QString familyText(const ModelConfig& c) {
    const QString family =
        c.family == Family::Gpt2 ? QStringLiteral("GPT-2") : QStringLiteral("Llama");
    if (c.modelType.empty())
        return ModelConfigView::tr("%1 family").arg(family);
    return ModelConfigView::tr("%1 family (model_type \u201C%2\u201D)")
        .arg(family, QString::fromStdString(c.modelType));
}

QString groupText(const ModelConfig& c) {
    if (c.kvHeads <= 0 || c.heads <= 0)
        return QStringLiteral("\u2014");
    const int g = c.groupSize();
    if (g == 1)
        return ModelConfigView::tr("MHA: 1 query head per KV head");
    if (c.kvHeads == 1)
        return ModelConfigView::tr("MQA: all %1 query heads share 1 KV head").arg(c.heads);
    return ModelConfigView::tr("GQA: %1 query heads share each KV head").arg(g);
}

QString sharingText(ProjectionSharing s) {
    switch (s) {
    case ProjectionSharing::Qkv:
        return ModelConfigView::tr("separate Q, K, V");
    case ProjectionSharing::KEqV:
        return ModelConfigView::tr("K = V (only keys are cached)");
    case ProjectionSharing::QEqK:
        return ModelConfigView::tr("Q = K");
    case ProjectionSharing::QEqKEqV:
        return ModelConfigView::tr("Q = K = V (only keys are cached)");
    }
    return {};
}

QString ropeScalingText(const RopeScaling& s) {
    const QString factor = QStringLiteral("\u00D7") + number(s.factor);
    const QString from = s.originalMaxPositions > 0
                             ? ModelConfigView::tr(" from %1").arg(s.originalMaxPositions)
                             : QString();
    switch (s.kind) {
    case RopeScaling::Kind::None:
        return ModelConfigView::tr("no scaling");
    case RopeScaling::Kind::Linear:
        return ModelConfigView::tr("linear %1").arg(factor);
    case RopeScaling::Kind::Dynamic:
        return ModelConfigView::tr("dynamic NTK %1").arg(factor);
    case RopeScaling::Kind::Yarn:
        return ModelConfigView::tr("YaRN %1%2").arg(factor, from);
    case RopeScaling::Kind::Llama3:
        return ModelConfigView::tr("llama3 %1%2 (low %3, high %4)")
            .arg(factor, from, number(s.lowFreqFactor), number(s.highFreqFactor));
    }
    return {};
}

QString positionsText(const ModelConfig& c) {
    if (c.positions == PositionKind::Learned)
        return ModelConfigView::tr("learned absolute embeddings");
    QString text = ModelConfigView::tr("RoPE \u03B8 = %1, %2")
                       .arg(number(c.ropeTheta), ropeScalingText(c.ropeScaling));
    if (c.ropeLayout == RopeLayout::Interleaved)
        text += ModelConfigView::tr(", interleaved pairs");
    return text;
}

QString normText(const ModelConfig& c) {
    const QString kind =
        c.norm == NormKind::LayerNorm ? QStringLiteral("LayerNorm") : QStringLiteral("RMSNorm");
    return QStringLiteral("%1 (\u03B5 = %2)").arg(kind, number(c.normEps));
}

QString mlpText(const ModelConfig& c) {
    QString kind;
    switch (c.mlp) {
    case MlpKind::Gelu:
        kind = QStringLiteral("GELU");
        break;
    case MlpKind::GeluTanh:
        kind = QStringLiteral("GELU (tanh)");
        break;
    case MlpKind::SwiGlu:
        kind = QStringLiteral("SwiGLU");
        break;
    }
    return ModelConfigView::tr("%1, intermediate %2").arg(kind).arg(c.intermediate);
}

QString biasesText(const ModelConfig& c) {
    QStringList on;
    if (c.qkvBias)
        on << QStringLiteral("q/k/v");
    if (c.outputBias)
        on << ModelConfigView::tr("output");
    if (c.mlpBias)
        on << QStringLiteral("MLP");
    return on.isEmpty() ? ModelConfigView::tr("none") : on.join(QStringLiteral(", "));
}

QString windowText(const ModelConfig& c) {
    if (!c.slidingWindow)
        return ModelConfigView::tr("none (full causal attention)");
    int applied = 0;
    for (bool b : c.slidingLayers)
        applied += b ? 1 : 0;
    return ModelConfigView::tr("%1 tokens on %2 of %3 layers")
        .arg(*c.slidingWindow)
        .arg(applied)
        .arg(c.layers);
}

} // namespace

QString formatCount(long long n) {
    const double v = static_cast<double>(n);
    const double a = std::fabs(v);
    if (a >= 1e9)
        return QStringLiteral("%1 B").arg(v / 1e9, 0, 'f', 2);
    if (a >= 1e6)
        return QStringLiteral("%1 M").arg(v / 1e6, 0, 'f', 2);
    if (a >= 1e3)
        return QStringLiteral("%1 k").arg(v / 1e3, 0, 'f', 1);
    return QString::number(n);
}

QString formatBytes(long long bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int unit = 0;
    while (std::fabs(v) >= 1024.0 && unit < 4) {
        v /= 1024.0;
        ++unit;
    }
    if (unit == 0)
        return QStringLiteral("%1 B").arg(bytes);
    return QStringLiteral("%1 %2").arg(v, 0, 'f', 1).arg(QLatin1String(units[unit]));
}

namespace {

// The rows of the table, by section: key, label, tooltip.
struct RowSpec {
    const char* key;
    const char* label;
    const char* tip;
};
struct SectionSpec {
    const char* title;
    std::vector<RowSpec> rows;
};

#define KVS_TR(text) QT_TRANSLATE_NOOP("kvs::views::ModelConfigView", text)
const std::vector<SectionSpec>& sections() {
    static const std::vector<SectionSpec> table = {
        {KVS_TR("Model"),
         {
             {"name", KVS_TR("Name"), KVS_TR("The model folder's name.")},
             {"family", KVS_TR("Family"),
              KVS_TR("Which forward pass the studio runs for this model.")},
             {"architecture", KVS_TR("Architecture"),
              KVS_TR("The \u201Carchitectures\u201D entry of config.json.")},
         }},
        {KVS_TR("Attention"),
         {
             {"layers", KVS_TR("Layers"), KVS_TR("Transformer blocks; each has its own KV cache.")},
             {"heads", KVS_TR("Query heads"), KVS_TR("Attention heads that read the cache.")},
             {"kvHeads", KVS_TR("KV heads"),
              KVS_TR("Key/value heads actually stored in the cache.")},
             {"group", KVS_TR("Grouping"),
              KVS_TR("How query heads share KV heads: MHA (one each), GQA (groups), MQA (one for "
                     "all).")},
             {"width", KVS_TR("Width"), KVS_TR("Hidden size of the residual stream (channels).")},
             {"headDim", KVS_TR("Head dim"), KVS_TR("Channels per query, key and value head.")},
             {"sharing", KVS_TR("Projections"),
              KVS_TR("Which projections the model shares; with K = V only keys are cached.")},
             {"window", KVS_TR("Sliding window"),
              KVS_TR("Local attention window, if the model uses one.")},
         }},
        {KVS_TR("Positions and blocks"),
         {
             {"positions", KVS_TR("Positions"),
              KVS_TR("Rotary embeddings (with base \u03B8 and context scaling) or learned "
                     "positions.")},
             {"maxPositions", KVS_TR("Max positions"),
              KVS_TR("Longest sequence the model accepts (tokens).")},
             {"norm", KVS_TR("Norm"), KVS_TR("Normalization before attention and MLP.")},
             {"mlp", KVS_TR("MLP"), KVS_TR("Feed-forward block and its hidden size.")},
             {"vocab", KVS_TR("Vocabulary"), KVS_TR("Rows of the token embedding (tokens).")},
             {"tiedHead", KVS_TR("Tied LM head"),
              KVS_TR("Whether the output projection reuses the token embedding matrix.")},
             {"biases", KVS_TR("Biases"), KVS_TR("Which linear layers carry a bias vector.")},
         }},
        {KVS_TR("Size"),
         {
             {"parameters", KVS_TR("Parameters"),
              KVS_TR("Parameters implied by the configuration.")},
             {"kvBytes", KVS_TR("KV cache, fp16"),
              KVS_TR(
                  "Bytes an fp16 key + value cache needs per token: 2 B \u00B7 2 \u00B7 head dim "
                  "\u00B7 KV heads \u00B7 layers (keys only when K = V).")},
         }},
        {KVS_TR("Checkpoint"),
         {
             {"checkpoint", KVS_TR("Files"),
              KVS_TR("The safetensors file(s) the weights come from.")},
             {"dtype", KVS_TR("Stored dtype"), KVS_TR("Element type of the weights on disk.")},
             {"checkpointBytes", KVS_TR("Weights on disk"), KVS_TR("Sum of the tensors' bytes.")},
             {"tokenizer", KVS_TR("Tokenizer"), KVS_TR("The tokenizer found in the folder.")},
             {"training", KVS_TR("Training"),
              KVS_TR("For models trained by KV Studio (kvstudio-cli train): the train_results.json "
                     "beside the weights — budget and loss on the held-out verses.")},
         }},
    };
    return table;
}
#undef KVS_TR

} // namespace

ModelConfigView::ModelConfigView(QWidget* parent) : QWidget(parent) {
    m_grid = new QGridLayout(this);
    m_grid->setContentsMargins(0, 0, 0, 0);
    m_grid->setHorizontalSpacing(10);
    m_grid->setVerticalSpacing(2);
    m_grid->setColumnStretch(1, 1);

    for (const SectionSpec& section : sections()) {
        addSection(tr(section.title));
        for (const RowSpec& row : section.rows)
            addRow(row.key, tr(row.label), tr(row.tip));
    }

    m_grid->setRowStretch(m_row, 1);
    clear();
}

void ModelConfigView::addSection(const QString& title) {
    auto* label = new QLabel(title, this);
    QFont f = label->font();
    f.setBold(true);
    label->setFont(f);
    label->setContentsMargins(0, m_row == 0 ? 0 : 6, 0, 1);
    m_grid->addWidget(label, m_row++, 0, 1, 2);
}

void ModelConfigView::addRow(const QString& key, const QString& label, const QString& toolTip) {
    auto* name = new QLabel(label, this);
    name->setForegroundRole(QPalette::PlaceholderText);
    name->setToolTip(toolTip);
    name->setAlignment(Qt::AlignLeft | Qt::AlignTop);
    auto* value = new QLabel(this);
    value->setObjectName(key + QStringLiteral("Value"));
    value->setTextInteractionFlags(Qt::TextSelectableByMouse);
    value->setTextFormat(Qt::PlainText);
    value->setWordWrap(true);
    value->setToolTip(toolTip);
    value->setAlignment(Qt::AlignLeft | Qt::AlignTop);
    value->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    value->setMinimumWidth(60);
    m_grid->addWidget(name, m_row, 0);
    m_grid->addWidget(value, m_row, 1);
    ++m_row;
    m_values.insert(key, value);
    m_toolTips.insert(key, toolTip);
    m_order << key;
}

void ModelConfigView::set(const QString& key, const QString& text, const QString& extraToolTip) {
    QLabel* label = m_values.value(key);
    if (!label)
        return;
    label->setText(text);
    const QString base = m_toolTips.value(key);
    label->setToolTip(extraToolTip.isEmpty() ? base : base + QStringLiteral("\n\n") + extraToolTip);
}

void ModelConfigView::clear() {
    m_hasModel = false;
    for (const QString& key : std::as_const(m_order))
        set(key, QStringLiteral("\u2014"));
}

void ModelConfigView::setFacts(const ModelFacts& facts) {
    const ModelConfig& c = facts.config;
    const QLocale locale;
    m_hasModel = true;

    set("name", facts.name, facts.folder);
    set("family", familyText(c));
    set("architecture", QString::fromStdString(c.architecture));

    set("layers", QString::number(c.layers));
    set("heads", QString::number(c.heads));
    set("kvHeads", QString::number(c.kvHeads));
    set("group", groupText(c));
    set("width", QString::number(c.width));
    QString headDimNote;
    if (c.headDim * c.heads != c.width)
        headDimNote = tr("heads \u00D7 head dim = %1, not the width %2")
                          .arg(c.headDim * c.heads)
                          .arg(c.width);
    set("headDim", QString::number(c.headDim), headDimNote);
    if (c.keyRank > 0)
        set("sharing",
            tr("%1; keys of rank %2 (thin keys)").arg(sharingText(c.sharing)).arg(c.keyRank),
            tr("Every key projection has rank %1 of %2: factor.weight_svd at rank %1 caches "
               "%1 numbers per key with no error beyond fp16.")
                .arg(c.keyRank)
                .arg(c.headDim));
    else
        set("sharing", sharingText(c.sharing));
    set("window", windowText(c));

    set("positions", positionsText(c));
    QString maxPositions = QString::number(c.maxPositions);
    if (facts.contextLimit > 0 && facts.contextLimit != c.maxPositions)
        maxPositions += tr(" (%1 with dynamic scaling)").arg(facts.contextLimit);
    set("maxPositions", maxPositions);
    set("norm", normText(c));
    set("mlp", mlpText(c));
    set("vocab", locale.toString(c.vocab));
    set("tiedHead", yesNo(c.tiedEmbeddings));
    set("biases", biasesText(c));

    set("parameters", QStringLiteral("%1 (%2)").arg(formatCount(facts.parameters),
                                                    locale.toString(facts.parameters)));
    set("kvBytes", tr("%1 per token (%2 B)")
                       .arg(formatBytes(facts.kvBytesPerTokenFp16),
                            locale.toString(facts.kvBytesPerTokenFp16)));

    set("checkpoint", facts.checkpoint, facts.checkpointFiles.join(QLatin1Char('\n')));
    set("dtype", facts.dtype);
    set("checkpointBytes", formatBytes(facts.checkpointBytes));
    if (facts.tokenizer.isEmpty())
        set("tokenizer", tr("none in this folder"));
    else
        set("tokenizer",
            tr("%1, %2 tokens").arg(facts.tokenizer, locale.toString(facts.tokenizerVocab)));
    set("training", facts.training.isEmpty() ? QStringLiteral("\u2014") : facts.training);
}

QString ModelConfigView::value(const QString& key) const {
    const QLabel* label = m_values.value(key);
    return label ? label->text() : QString();
}

QStringList ModelConfigView::keys() const {
    return m_order;
}

} // namespace kvs::views
