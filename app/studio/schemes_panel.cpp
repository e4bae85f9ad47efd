// SPDX-License-Identifier: MIT
// The Schemes dock.
#include "schemes_panel.h"

#include "plot_style.h"

#include <QButtonGroup>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QMenu>
#include <QPushButton>
#include <QRadioButton>
#include <QScrollArea>
#include <QSlider>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>
#include <cmath>

namespace kvs::studio {

namespace {

constexpr int kSliderSteps = 1000;
constexpr int kMaxRows = 6;

QString qs(const std::string& s) {
    return QString::fromStdString(s);
}

QString tooltipFor(const ParamSpec& p) {
    QString range = QStringLiteral("%1 \u2026 %2").arg(p.minimum).arg(p.maximum);
    if (!p.unit.empty())
        range += QLatin1Char(' ') + qs(p.unit);
    return QStringLiteral("<b>%1</b> (<code>%2</code>)<br>%3<br>Range %4, default %5%6")
        .arg(qs(p.label).toHtmlEscaped(), qs(p.key), qs(p.help).toHtmlEscaped(), range)
        .arg(p.defaultValue)
        .arg(p.logScale ? QStringLiteral(", log scale") : QString());
}

} // namespace

QStringList SchemesPanel::defaultSettings() {
    // Two families at about a quarter of the fp16 cache: a coreset against its theory's
    // baseline (uniform sampling), and KIVI's K4/V2 codec (25.5% with its scales).
    return {QStringLiteral("coreset.halving:keep=0.25"), QStringLiteral("select.uniform:keep=0.25"),
            QStringLiteral("codec.uniform:key_bits=4,value_bits=2")};
}

SchemesPanel::SchemesPanel(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("schemesPanel"));
    setMinimumWidth(300);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);

    auto* splitBox = new QGroupBox(tr("Context / probe split"), this);
    auto* splitLayout = new QHBoxLayout(splitBox);
    m_split = new QSlider(Qt::Horizontal, splitBox);
    m_split->setObjectName(QStringLiteral("splitSlider"));
    m_split->setRange(1, 1);
    m_splitSpin = new QSpinBox(splitBox);
    m_splitSpin->setObjectName(QStringLiteral("splitSpin"));
    m_splitSpin->setRange(1, 1);
    m_splitSpin->setSuffix(tr(" ctx tokens"));
    const QString splitTip =
        tr("The first tokens form the context whose cache is compressed; the rest are probe "
           "queries that attend to it");
    m_split->setToolTip(splitTip);
    m_splitSpin->setToolTip(splitTip);
    m_splitLabel = new QLabel(splitBox);
    splitLayout->addWidget(m_split, 1);
    splitLayout->addWidget(m_splitSpin);
    splitLayout->addWidget(m_splitLabel);
    layout->addWidget(splitBox);
    connect(m_split, &QSlider::valueChanged, this, [this](int v) {
        if (m_updating)
            return;
        m_splitSpin->setValue(v);
    });
    connect(m_splitSpin, qOverload<int>(&QSpinBox::valueChanged), this, [this](int v) {
        if (m_updating)
            return;
        m_updating = true;
        m_split->setValue(v);
        m_updating = false;
        m_splitLabel->setText(tr("%1 probe").arg(m_splitSpin->maximum() + 1 - v));
        emit contextTokensChanged(v);
    });

    auto* scroll = new QScrollArea(this);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    auto* inner = new QWidget(scroll);
    m_rowsLayout = new QVBoxLayout(inner);
    m_rowsLayout->setContentsMargins(0, 0, 0, 0);
    m_rowsLayout->addStretch(1);
    scroll->setWidget(inner);
    layout->addWidget(scroll, 1);

    auto* add = new QPushButton(tr("Add a scheme to compare"), this);
    add->setObjectName(QStringLiteral("addSchemeButton"));
    connect(add, &QPushButton::clicked, this, &SchemesPanel::addScheme);
    layout->addWidget(add);

    m_focusGroup = new QButtonGroup(this);
    connect(m_focusGroup, &QButtonGroup::idClicked, this, [this](int id) {
        if (m_updating)
            return;
        m_focused = id;
        emit focusedRowChanged(id);
    });
    rebuild(defaultSettings());
}

void SchemesPanel::setTokenCount(int tokens, int contextTokens) {
    m_updating = true;
    const int maxCtx = std::max(1, tokens - 1);
    m_split->setRange(1, maxCtx);
    m_splitSpin->setRange(1, maxCtx);
    m_split->setValue(std::clamp(contextTokens, 1, maxCtx));
    m_splitSpin->setValue(std::clamp(contextTokens, 1, maxCtx));
    m_splitLabel->setText(tr("%1 probe").arg(std::max(0, tokens - m_splitSpin->value())));
    m_updating = false;
}

int SchemesPanel::requestedContextTokens() const {
    return m_splitSpin->value();
}

void SchemesPanel::setContextTokens(int tokens) {
    m_splitSpin->setValue(tokens); // clamps to the range; valueChanged does the rest
}

int SchemesPanel::sliderFor(const ParamSpec& spec, double value) {
    const double lo = spec.minimum;
    const double hi = spec.maximum;
    double t = 0;
    if (spec.logScale && lo > 0)
        t = std::log(std::max(value, lo) / lo) / std::log(hi / lo);
    else if (hi > lo)
        t = (value - lo) / (hi - lo);
    return static_cast<int>(std::lround(std::clamp(t, 0.0, 1.0) * kSliderSteps));
}

double SchemesPanel::valueFor(const ParamSpec& spec, int slider) {
    const double t = static_cast<double>(slider) / kSliderSteps;
    double v = spec.logScale && spec.minimum > 0
                   ? spec.minimum * std::pow(spec.maximum / spec.minimum, t)
                   : spec.minimum + t * (spec.maximum - spec.minimum);
    if (spec.integer)
        v = std::round(v);
    else // three significant digits: what a slider position can mean
        v = std::stod(QString::number(v, 'g', 3).toStdString());
    return nearestChoice(spec, std::clamp(v, spec.minimum, spec.maximum));
}

double SchemesPanel::nearestChoice(const ParamSpec& spec, double value) {
    if (spec.choices.empty())
        return value;
    double best = spec.choices.front();
    for (const double c : spec.choices)
        if (std::abs(c - value) < std::abs(best - value))
            best = c;
    return best;
}

QStringList SchemesPanel::settings() const {
    QStringList out;
    for (const Row& row : m_rows)
        out << rowSetting(row);
    return out;
}

QString SchemesPanel::rowSetting(const Row& row) const {
    SchemeSetting s;
    s.id = row.id;
    const Scheme* scheme = findScheme(row.id);
    for (const auto& [key, value] : row.values) {
        const ParamSpec* spec = scheme ? scheme->info().findParam(key) : nullptr;
        if (spec && value == spec->defaultValue)
            continue;
        s.params[key] = value;
    }
    return qs(s.toString());
}

void SchemesPanel::setSettings(const QStringList& settings) {
    rebuild(settings);
    emit settingsChanged(this->settings());
}

void SchemesPanel::rebuild(const QStringList& settings) {
    m_updating = true;
    for (Row& row : m_rows)
        delete row.box;
    m_rows.clear();
    for (QAbstractButton* b : m_focusGroup->buttons())
        m_focusGroup->removeButton(b);
    int index = 0;
    for (const QString& text : settings) {
        auto parsed = SchemeSetting::parse(text.toStdString());
        if (!parsed.ok())
            continue;
        addRowWidget(parsed.value(), index++);
    }
    m_focused = std::clamp(m_focused, 0, std::max(0, rowCount() - 1));
    if (auto* b = m_focusGroup->button(m_focused))
        b->setChecked(true);
    m_updating = false;
}

void SchemesPanel::addRowWidget(const SchemeSetting& setting, int index) {
    Row row;
    row.id = setting.id;
    row.values = setting.resolved();
    auto* box = new QGroupBox(this);
    box->setObjectName(QStringLiteral("schemeRow%1").arg(index));
    row.box = box;
    auto* v = new QVBoxLayout(box);
    v->setContentsMargins(6, 4, 6, 4);
    auto* head = new QHBoxLayout;
    auto* focus = new QRadioButton(box);
    focus->setObjectName(QStringLiteral("focus%1").arg(index));
    focus->setToolTip(tr("Show this scheme in the Attention, Cache and Profile views"));
    m_focusGroup->addButton(focus, index);
    row.swatch = new QLabel(box);
    row.swatch->setFixedSize(14, 14);
    row.swatch->setStyleSheet(QStringLiteral("background:%1; border-radius:3px;")
                                  .arg(views::categoricalColor(index).name()));
    row.swatch->setToolTip(tr("This scheme's colour in the charts"));
    row.scheme = new QComboBox(box);
    row.scheme->setObjectName(QStringLiteral("schemeCombo%1").arg(index));
    QString family;
    for (const auto& s : schemeRegistry()) {
        const SchemeInfo& info = s->info();
        if (qs(info.family) != family && row.scheme->count() > 0)
            row.scheme->insertSeparator(row.scheme->count());
        family = qs(info.family);
        row.scheme->addItem(QStringLiteral("%1 \u2014 %2").arg(family, qs(info.displayName)),
                            qs(info.id));
        row.scheme->setItemData(row.scheme->count() - 1, qs(info.explanation), Qt::ToolTipRole);
    }
    const Scheme* scheme = findScheme(setting.id);
    if (scheme && row.scheme->findData(qs(setting.id)) < 0) { // a chain: itself, on top
        row.scheme->insertItem(0, tr("chain \u2014 %1").arg(qs(scheme->info().displayName)),
                               qs(setting.id));
        row.scheme->setItemData(0, qs(scheme->info().explanation), Qt::ToolTipRole);
        row.scheme->insertSeparator(1);
    }
    row.scheme->setCurrentIndex(row.scheme->findData(qs(setting.id)));
    row.scheme->setMinimumContentsLength(12);
    row.scheme->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    auto* stage = new QToolButton(box);
    stage->setText(QStringLiteral("+"));
    stage->setObjectName(QStringLiteral("addStage%1").arg(index));
    stage->setToolTip(tr("Chain a further stage after this scheme: a token selection, a key "
                         "factorization or a codec, in that order (keep \u00BC of the tokens, "
                         "rank-16 keys, 4-bit values)"));
    stage->setPopupMode(QToolButton::InstantPopup);
    stage->setMenu(stageMenu(setting.id, index, stage));
    stage->setEnabled(!stage->menu()->isEmpty());
    auto* remove = new QToolButton(box);
    remove->setText(QStringLiteral("\u2715"));
    remove->setObjectName(QStringLiteral("removeScheme%1").arg(index));
    remove->setToolTip(tr("Stop comparing this scheme"));
    head->addWidget(focus);
    head->addWidget(row.swatch);
    head->addWidget(row.scheme, 1);
    head->addWidget(stage);
    head->addWidget(remove);
    v->addLayout(head);
    connect(row.scheme, qOverload<int>(&QComboBox::activated), this, [this, index](int i) {
        changeScheme(index, m_rows[static_cast<std::size_t>(index)].scheme->itemData(i).toString());
    });
    connect(remove, &QToolButton::clicked, this, [this, index] { removeScheme(index); });

    auto* form = new QFormLayout;
    form->setContentsMargins(0, 0, 0, 0);
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    int paramIndex = 0;
    const bool chain = splitSchemeChain(setting.id).size() > 1;
    std::string stageOf;
    for (const ParamSpec& spec : scheme ? scheme->info().params : std::vector<ParamSpec>{}) {
        // A chain's parameters under their stage's name ("select.h2o.keep" under H2O).
        const std::string prefix = spec.key.substr(0, spec.key.size() - bareKey(spec.key).size());
        if (chain && prefix != stageOf) {
            stageOf = prefix;
            const Scheme* part = findScheme(prefix.substr(0, prefix.size() - 1));
            auto* title = new QLabel(box);
            title->setText(
                QStringLiteral("<b>%1</b>")
                    .arg(part ? qs(part->info().displayName).toHtmlEscaped() : qs(prefix)));
            if (part)
                title->setToolTip(qs(part->info().explanation));
            form->addRow(title);
        }
        ParamControl c;
        c.spec = spec;
        auto* line = new QHBoxLayout;
        c.slider = new QSlider(Qt::Horizontal, box);
        c.slider->setObjectName(QStringLiteral("slider:%1:%2").arg(index).arg(qs(spec.key)));
        c.slider->setRange(0, kSliderSteps);
        c.spin = new QDoubleSpinBox(box);
        c.spin->setObjectName(QStringLiteral("spin:%1:%2").arg(index).arg(qs(spec.key)));
        c.spin->setRange(spec.minimum, spec.maximum);
        c.spin->setDecimals(spec.integer ? 0 : (spec.logScale ? 4 : 3));
        c.spin->setKeyboardTracking(false);
        if (!spec.unit.empty())
            c.spin->setSuffix(QLatin1Char(' ') + qs(spec.unit));
        c.spin->setMinimumWidth(84);
        c.spin->setMaximumWidth(104);
        c.slider->setMinimumWidth(60);
        const double initial =
            row.values.count(spec.key) ? row.values.at(spec.key) : spec.defaultValue;
        c.slider->setValue(sliderFor(spec, initial));
        c.spin->setValue(initial);
        const QString tip = tooltipFor(spec);
        c.slider->setToolTip(tip);
        c.spin->setToolTip(tip);
        line->addWidget(c.slider, 1);
        line->addWidget(c.spin);
        auto* label = new QLabel(box);
        label->setMaximumWidth(118);
        label->setText(label->fontMetrics().elidedText(qs(spec.label), Qt::ElideRight, 118));
        label->setToolTip(tip);
        form->addRow(label, line);
        const int control = index * 100 + paramIndex++;
        const std::string key = spec.key;
        connect(c.slider, &QSlider::valueChanged, this, [this, index, key, control](int pos) {
            editParameter(index, key, control, [pos](const ParamControl& pc) {
                const double value = valueFor(pc.spec, pos);
                pc.spin->setValue(value);
                return value;
            });
        });
        connect(c.spin, qOverload<double>(&QDoubleSpinBox::valueChanged), this,
                [this, index, key, control](double value) {
                    editParameter(index, key, control, [value](const ParamControl& pc) {
                        const double allowed = nearestChoice(pc.spec, value);
                        if (allowed != value) // 5 bits typed: the nearest supported width
                            pc.spin->setValue(allowed);
                        pc.slider->setValue(sliderFor(pc.spec, allowed));
                        return allowed;
                    });
                });
        row.params.push_back(c);
    }
    v->addLayout(form);
    if (scheme)
        box->setToolTip(qs(scheme->info().explanation));
    m_rowsLayout->insertWidget(m_rowsLayout->count() - 1, box);
    m_rows.push_back(std::move(row));
}

void SchemesPanel::editParameter(int index, const std::string& key, int control,
                                 const std::function<double(const ParamControl&)>& syncOther) {
    if (m_updating)
        return;
    Row& r = m_rows[static_cast<std::size_t>(index)];
    for (ParamControl& pc : r.params)
        if (pc.spec.key == key) {
            const QStringList before = settings();
            m_updating = true; // the other control follows without a second edit
            const double value = syncOther(pc);
            m_updating = false;
            r.values[key] = value;
            userEdit(before, control);
        }
}

void SchemesPanel::userEdit(const QStringList& before, int control) {
    const QStringList after = settings();
    if (after == before)
        return;
    emit edited(before, after, control);
    emit settingsChanged(after);
}

void SchemesPanel::setParameter(int row, const QString& key, double value) {
    if (row < 0 || row >= rowCount())
        return;
    for (ParamControl& pc : m_rows[static_cast<std::size_t>(row)].params)
        if (qs(pc.spec.key) == key)
            pc.spin->setValue(value); // goes through the spin box's edit path
}

double SchemesPanel::parameter(int row, const QString& key) const {
    if (row < 0 || row >= rowCount())
        return std::nan("");
    const auto& values = m_rows[static_cast<std::size_t>(row)].values;
    const auto it = values.find(key.toStdString());
    return it == values.end() ? std::nan("") : it->second;
}

void SchemesPanel::setFocusedRow(int row) {
    if (row < 0 || row >= rowCount())
        return;
    m_focused = row;
    if (auto* b = m_focusGroup->button(row))
        b->setChecked(true);
    emit focusedRowChanged(row);
}

void SchemesPanel::addScheme() {
    if (rowCount() >= kMaxRows)
        return;
    const QStringList before = settings();
    QStringList after = before;
    // The first registered scheme not yet compared.
    for (const auto& s : schemeRegistry()) {
        const QString id = qs(s->info().id);
        bool used = false;
        for (const Row& r : m_rows)
            used = used || qs(r.id) == id;
        if (!used && id != QLatin1String("identity")) {
            after << id;
            break;
        }
    }
    if (after == before)
        return;
    rebuild(after);
    emit edited(before, after, -1);
    emit settingsChanged(after);
}

QMenu* SchemesPanel::stageMenu(const std::string& id, int row, QWidget* parent) {
    auto* menu = new QMenu(parent);
    // What core's chain rules accept after this row's last stage, family by family.
    QString family;
    for (const auto& s : schemeRegistry()) {
        const SchemeInfo& info = s->info();
        if (!composedScheme(id + "+" + info.id).ok())
            continue;
        if (qs(info.family) != family && !menu->isEmpty())
            menu->addSeparator();
        family = qs(info.family);
        QAction* a =
            menu->addAction(QStringLiteral("%1 \u2014 %2").arg(family, qs(info.displayName)));
        a->setToolTip(qs(info.explanation));
        const QString stage = qs(info.id);
        connect(a, &QAction::triggered, this, [this, row, stage] { appendStage(row, stage); });
    }
    const auto stages = splitSchemeChain(id);
    if (stages.size() > 1) {
        menu->addSeparator();
        QAction* drop = menu->addAction(tr("Remove the last stage (%1)").arg(qs(stages.back())));
        connect(drop, &QAction::triggered, this, [this, row] { appendStage(row, {}); });
    }
    return menu;
}

void SchemesPanel::appendStage(int row, const QString& stage) {
    const QStringList before = settings();
    QStringList after = before;
    QString text = after[row];
    if (stage.isEmpty()) { // drop the last stage and its parameters
        const auto stages = splitSchemeChain(text.toStdString());
        QStringList kept;
        for (std::size_t i = 0; i + 1 < stages.size(); ++i)
            kept << qs(stages[i]);
        text = kept.join(QLatin1Char('+'));
    } else {
        text += QLatin1Char('+') + stage;
    }
    if (!SchemeSetting::parse(text.toStdString()).ok())
        return;
    after[row] = text;
    applyLater(before, after);
}

void SchemesPanel::removeScheme(int row) {
    if (rowCount() <= 1)
        return;
    const QStringList before = settings();
    QStringList after = before;
    after.removeAt(row);
    if (m_focused >= row && m_focused > 0)
        --m_focused;
    rebuild(after);
    emit edited(before, after, -1);
    emit settingsChanged(after);
    emit focusedRowChanged(m_focused);
}

void SchemesPanel::changeScheme(int row, const QString& id) {
    const QStringList before = settings();
    QStringList after = before;
    // Keep the budget when the new scheme has the same parameter.
    QString text = id;
    const Row& old = m_rows[static_cast<std::size_t>(row)];
    const Scheme* scheme = findScheme(id.toStdString());
    if (scheme && old.values.count("keep") && scheme->info().findParam("keep"))
        text += QStringLiteral(":keep=%1").arg(old.values.at("keep"));
    after[row] = text;
    applyLater(before, after);
}

void SchemesPanel::applyLater(const QStringList& before, const QStringList& after) {
    QMetaObject::invokeMethod(
        this,
        [this, before, after] {
            rebuild(after);
            emit edited(before, after, -1);
            emit settingsChanged(settings());
        },
        Qt::QueuedConnection);
}

} // namespace kvs::studio
