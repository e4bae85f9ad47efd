// SPDX-License-Identifier: MIT
// The Schemes dock.
#include "schemes_panel.h"

#include "analysis_data.h"
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
#include <algorithm>
#include <cmath>
#include <limits>

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

// "select.h2o." for a chain stage's "select.h2o.keep"; empty for a plain scheme's key.
std::string stagePrefix(const std::string& key) {
    return key.substr(0, key.size() - bareKey(key).size());
}

// Two parameters of one budget group (of one chain stage).
bool sameBudget(const ParamSpec& a, const ParamSpec& b) {
    return !a.budgetGroup.empty() && a.budgetGroup == b.budgetGroup &&
           stagePrefix(a.key) == stagePrefix(b.key);
}

// Tokens per unit of a budget member: a fraction counts the context's tokens, bytes count what a
// kept token costs. NaN where the context size or the cost is unknown (0).
double tokensPerUnit(const ParamSpec& spec, int contextTokens, double bytesPerToken) {
    constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
    if (spec.unit == "tokens")
        return 1.0;
    if (spec.unit == "bytes")
        return bytesPerToken > 0 ? 1.0 / bytesPerToken : kUnknown;
    if (spec.unit.empty() && !spec.integer) // a fraction of the context
        return contextTokens > 0 ? contextTokens : kUnknown;
    return kUnknown;
}

// The smallest value that states a budget: a member after the first is "unused" at 0.
double usedMinimum(const ParamSpec& spec, int member) {
    return member == 0 ? spec.minimum : std::max(spec.minimum, 1.0);
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
        refreshBudgets(); // a tokens slider spans the context
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
    add->setToolTip(tr("Add a row with the next scheme not yet compared (at most %1); every view "
                       "and chart shows it beside the others")
                        .arg(kMaxRows));
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
    m_tokensKnown = true;
    m_updating = false;
    refreshBudgets();
}

int SchemesPanel::contextTokens() const {
    return m_tokensKnown ? m_splitSpin->value() : 0;
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
    row.scheme->setToolTip(
        tr("The compression scheme of this row: %1. Choosing another keeps the budget when the "
           "new scheme has the same one.")
            .arg(scheme ? qs(scheme->info().displayName).toHtmlEscaped() : qs(setting.id)));
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
    const std::vector<ParamSpec> specs = scheme ? scheme->info().params : std::vector<ParamSpec>{};
    for (const ParamSpec& spec : specs) {
        // A chain's parameters under their stage's name ("select.h2o.keep" under H2O).
        const std::string prefix = stagePrefix(spec.key);
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
        if (!spec.budgetGroup.empty()) {
            // One control for the group, made at its first member.
            if (std::any_of(row.params.begin(), row.params.end(), [&](const ParamControl& o) {
                    return sameBudget(o.spec, spec) && !o.members.empty();
                }))
                continue;
            for (const ParamSpec& m : specs)
                if (sameBudget(m, spec))
                    c.members.push_back(m);
            c.active = activeMember(c, row.values);
            c.spec = c.members[static_cast<std::size_t>(c.active)];
        }
        const bool budget = !c.members.empty();
        const QString name = QStringLiteral("%1:%2").arg(index).arg(qs(spec.key));
        auto* line = new QHBoxLayout;
        c.slider = new QSlider(Qt::Horizontal, box);
        c.slider->setObjectName(
            (budget ? QStringLiteral("budgetSlider:") : QStringLiteral("slider:")) + name);
        c.slider->setRange(0, kSliderSteps);
        c.spin = new QDoubleSpinBox(box);
        c.spin->setObjectName((budget ? QStringLiteral("budgetSpin:") : QStringLiteral("spin:")) +
                              name);
        c.spin->setKeyboardTracking(false);
        c.spin->setMinimumWidth(84);
        c.spin->setMaximumWidth(104);
        c.slider->setMinimumWidth(60);
        line->addWidget(c.slider, 1);
        line->addWidget(c.spin);
        if (budget) {
            // The unit selector stands where a parameter's name would: it names the budget.
            c.mode = new QComboBox(box);
            c.mode->setObjectName(QStringLiteral("budgetMode:") + name);
            for (const ParamSpec& m : c.members) {
                c.mode->addItem(qs(m.label), qs(m.key));
                c.mode->setItemData(c.mode->count() - 1, qs(m.help), Qt::ToolTipRole);
            }
            c.mode->setMaximumWidth(118);
            c.mode->setSizeAdjustPolicy(QComboBox::AdjustToContents);
            form->addRow(c.mode, line);
            showBudget(row, c);
        } else {
            c.spin->setRange(spec.minimum, spec.maximum);
            c.spin->setDecimals(spec.integer ? 0 : (spec.logScale ? 4 : 3));
            if (!spec.unit.empty())
                c.spin->setSuffix(QLatin1Char(' ') + qs(spec.unit));
            const double initial =
                row.values.count(spec.key) ? row.values.at(spec.key) : spec.defaultValue;
            c.slider->setValue(sliderFor(spec, initial));
            c.spin->setValue(initial);
            const QString tip = tooltipFor(spec);
            c.slider->setToolTip(tip);
            c.spin->setToolTip(tip);
            auto* label = new QLabel(box);
            label->setMaximumWidth(118);
            label->setText(label->fontMetrics().elidedText(qs(spec.label), Qt::ElideRight, 118));
            label->setToolTip(tip);
            form->addRow(label, line);
        }
        const int control = index * 100 + paramIndex++;
        const int param = static_cast<int>(row.params.size());
        connect(c.slider, &QSlider::valueChanged, this, [this, index, param, control](int pos) {
            editParameter(index, param, control, [this, pos](const Row& r, const ParamControl& pc) {
                const double value = valueFor(sliderSpec(r, pc), pos);
                pc.spin->setValue(value);
                return pc.spin->value(); // as the spin box rounds it
            });
        });
        connect(c.spin, qOverload<double>(&QDoubleSpinBox::valueChanged), this,
                [this, index, param, control](double value) {
                    editParameter(index, param, control,
                                  [this, value](const Row& r, const ParamControl& pc) {
                                      const double allowed = nearestChoice(pc.spec, value);
                                      if (allowed != value) // 5 bits typed: the nearest width
                                          pc.spin->setValue(allowed);
                                      pc.slider->setValue(sliderFor(sliderSpec(r, pc), allowed));
                                      return allowed;
                                  });
                });
        if (budget)
            connect(c.mode, qOverload<int>(&QComboBox::activated), this,
                    [this, index, param](int member) { carryBudget(index, param, member); });
        row.params.push_back(c);
    }
    v->addLayout(form);
    if (scheme)
        box->setToolTip(qs(scheme->info().explanation));
    m_rowsLayout->insertWidget(m_rowsLayout->count() - 1, box);
    m_rows.push_back(std::move(row));
}

void SchemesPanel::editParameter(
    int index, int param, int control,
    const std::function<double(const Row&, const ParamControl&)>& syncOther) {
    if (m_updating)
        return;
    Row& r = m_rows[static_cast<std::size_t>(index)];
    const ParamControl& pc = r.params[static_cast<std::size_t>(param)];
    const QStringList before = settings();
    m_updating = true; // the other control follows without a second edit
    const double value = syncOther(r, pc);
    m_updating = false;
    if (pc.members.empty())
        r.values[pc.spec.key] = value;
    else
        writeBudget(pc, pc.active, value, r.values);
    userEdit(before, control);
}

int SchemesPanel::activeMember(const ParamControl& pc, const ParamValues& values) {
    int active = 0;
    for (std::size_t i = 1; i < pc.members.size(); ++i) {
        const auto it = values.find(pc.members[i].key);
        if (it != values.end() && it->second != 0)
            active = static_cast<int>(i);
    }
    return active;
}

void SchemesPanel::writeBudget(const ParamControl& pc, int member, double value,
                               ParamValues& values) {
    for (std::size_t i = 0; i < pc.members.size(); ++i) {
        const ParamSpec& m = pc.members[i];
        // The first member unused is its default, so that the setting does not mention it.
        values[m.key] = static_cast<int>(i) == member ? value : (i == 0 ? m.defaultValue : 0.0);
    }
}

void SchemesPanel::switchBudget(int index, int param, int member, double value) {
    Row& r = m_rows[static_cast<std::size_t>(index)];
    ParamControl& pc = r.params[static_cast<std::size_t>(param)];
    const ParamSpec& m = pc.members[static_cast<std::size_t>(member)];
    value = nearestChoice(m, std::clamp(value, usedMinimum(m, member), m.maximum));
    const QStringList before = settings();
    writeBudget(pc, member, value, r.values);
    pc.active = member;
    showBudget(r, pc);
    userEdit(before, -1); // a change of unit is its own undo step
}

void SchemesPanel::carryBudget(int index, int param, int member) {
    const Row& r = m_rows[static_cast<std::size_t>(index)];
    const ParamControl& pc = r.params[static_cast<std::size_t>(param)];
    if (member == pc.active)
        return;
    double value = carriedBudget(r, pc, member);
    if (std::isnan(value)) // the unit's last value, else mid-range
        value = fallbackBudget(r, pc, member);
    switchBudget(index, param, member, value);
}

double SchemesPanel::carriedBudget(const Row& row, const ParamControl& pc, int member) const {
    const ParamSpec& to = pc.members[static_cast<std::size_t>(member)];
    const double from = tokensPerUnit(pc.spec, contextTokens(), row.bytesPerToken);
    const double per = tokensPerUnit(to, contextTokens(), row.bytesPerToken);
    const auto it = row.values.find(pc.spec.key);
    if (std::isnan(from) || std::isnan(per) || it == row.values.end())
        return std::numeric_limits<double>::quiet_NaN();
    double value = it->second * from / per;
    // Whole tokens and bytes round as the schemes round a kept fraction (to the nearest token),
    // so that a change of unit keeps what is kept.
    if (to.integer)
        value = std::round(value);
    return std::clamp(value, usedMinimum(to, member), to.maximum);
}

double SchemesPanel::fallbackBudget(const Row& row, const ParamControl& pc, int member) const {
    const ParamSpec& to = pc.members[static_cast<std::size_t>(member)];
    const auto it = row.values.find(to.key);
    if (it != row.values.end() && it->second >= usedMinimum(to, member))
        return it->second;
    ParamControl as = pc;
    as.active = member;
    as.spec = to;
    return valueFor(sliderSpec(row, as), kSliderSteps / 2);
}

ParamSpec SchemesPanel::sliderSpec(const Row& row, const ParamControl& pc) const {
    ParamSpec s = pc.spec;
    if (pc.members.empty() || pc.active == 0)
        return s;
    // Tokens and bytes on a log slider from one token's worth to the whole context, where the
    // context size (and what a token costs) is known; the spin box takes any value.
    s.minimum = usedMinimum(s, pc.active);
    s.logScale = true;
    const double per = tokensPerUnit(s, contextTokens(), row.bytesPerToken);
    if (!std::isnan(per) && contextTokens() > 0) {
        s.minimum = std::max(s.minimum, std::ceil(1.0 / per));
        s.maximum = std::clamp(contextTokens() / per, s.minimum + 1, s.maximum);
    }
    return s;
}

void SchemesPanel::showBudget(const Row& row, ParamControl& pc) {
    const bool was = m_updating;
    m_updating = true;
    pc.spec = pc.members[static_cast<std::size_t>(pc.active)];
    const ParamSpec& spec = pc.spec;
    pc.mode->setCurrentIndex(pc.active);
    pc.spin->setDecimals(spec.integer ? 0 : (spec.logScale ? 4 : 3));
    pc.spin->setRange(usedMinimum(spec, pc.active), spec.maximum);
    pc.spin->setSuffix(spec.unit.empty() ? QString() : QLatin1Char(' ') + qs(spec.unit));
    const auto it = row.values.find(spec.key);
    const double value = it == row.values.end() ? spec.defaultValue : it->second;
    pc.spin->setValue(value);
    pc.slider->setValue(sliderFor(sliderSpec(row, pc), value));
    QStringList units;
    for (const ParamSpec& m : pc.members)
        units << qs(m.label).toLower();
    ParamSpec shown = spec; // the range the spin box takes: 0 would mean "unused"
    shown.minimum = usedMinimum(spec, pc.active);
    const QString tip =
        tooltipFor(shown) +
        tr("<br>The list on the left states this budget in another unit (%1); switching carries "
           "it over.")
            .arg(units.join(QStringLiteral(", ")));
    pc.slider->setToolTip(tip);
    pc.spin->setToolTip(tip);
    const int n = contextTokens();
    pc.mode->setToolTip(
        tr("The unit of this scheme's budget: %1. Only the unit shown is used; switching "
           "converts the budget into it%2.")
            .arg(units.join(QStringLiteral(", ")),
                 n > 0 ? tr(" (a fraction of the %1 context tokens)").arg(n) : QString()));
    m_updating = was;
}

void SchemesPanel::refreshBudgets() {
    for (Row& row : m_rows)
        for (ParamControl& pc : row.params)
            if (pc.mode) // a tokens or bytes slider spans the context; tooltips name its size
                showBudget(row, pc);
}

void SchemesPanel::noteAnalysis(const views::AnalysisData& analysis) {
    for (std::size_t i = 0; i < m_rows.size() && i < analysis.runs.size(); ++i) {
        Row& row = m_rows[i];
        const views::SchemeRun& run = analysis.runs[i];
        if (!run.error.isEmpty() || run.schemeId != qs(row.id) || run.eval.heads.empty())
            continue;
        double bytes = 0;
        double kept = 0;
        double fp16 = 0;
        for (const HeadMetrics& h : run.eval.heads) {
            bytes += static_cast<double>(h.bytes.total());
            kept += h.keptTokens;
            fp16 += static_cast<double>(h.fp16Bytes);
        }
        // A chain's bytes are its last stage's form, not what its selection stage counts: take
        // the fp16 cost of a token there.
        const bool chain = splitSchemeChain(row.id).size() > 1;
        if (!chain && kept > 0)
            row.bytesPerToken = bytes / kept;
        else if (analysis.contextTokens > 0)
            row.bytesPerToken =
                fp16 / (static_cast<double>(run.eval.heads.size()) * analysis.contextTokens);
    }
    refreshBudgets();
}

QString SchemesPanel::budgetMode(int row, const QString& prefix) const {
    if (row < 0 || row >= rowCount())
        return {};
    for (const ParamControl& pc : m_rows[static_cast<std::size_t>(row)].params)
        if (pc.mode && (prefix.isEmpty() || qs(stagePrefix(pc.spec.key)) == prefix))
            return qs(pc.spec.key);
    return {};
}

void SchemesPanel::setBudgetMode(int row, const QString& key) {
    if (row < 0 || row >= rowCount())
        return;
    const auto& params = m_rows[static_cast<std::size_t>(row)].params;
    for (const ParamControl& pc : params)
        for (std::size_t m = 0; m < pc.members.size(); ++m)
            if (qs(pc.members[m].key) == key && pc.mode) {
                pc.mode->setCurrentIndex(static_cast<int>(m));
                emit pc.mode->activated(static_cast<int>(m)); // as the user's choice
                return;
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
    const Row& r = m_rows[static_cast<std::size_t>(row)];
    for (std::size_t p = 0; p < r.params.size(); ++p) {
        const ParamControl& pc = r.params[p];
        if (pc.members.empty()) {
            if (qs(pc.spec.key) == key)
                pc.spin->setValue(value); // goes through the spin box's edit path
            continue;
        }
        for (std::size_t m = 0; m < pc.members.size(); ++m) {
            if (qs(pc.members[m].key) != key)
                continue;
            const int member = static_cast<int>(m);
            if (member > 0 && value == 0) { // "unused": back to the first member
                if (member == pc.active)
                    carryBudget(row, static_cast<int>(p), 0);
            } else if (member == pc.active) {
                pc.spin->setValue(value);
            } else { // a trade-off pick of the kept fraction while tokens are shown
                switchBudget(row, static_cast<int>(p), member, value);
            }
            return;
        }
    }
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
    // Keep the budget, in its unit, when the new scheme has the same budget parameters.
    SchemeSetting carried{id.toStdString(), {}};
    const Row& old = m_rows[static_cast<std::size_t>(row)];
    if (const Scheme* scheme = findScheme(carried.id))
        for (const ParamControl& pc : old.params)
            for (const ParamSpec& m : pc.members) {
                const ParamSpec* spec = scheme->info().findParam(m.key);
                const auto it = old.values.find(m.key);
                if (spec && spec->budgetGroup == m.budgetGroup && it != old.values.end() &&
                    it->second != spec->defaultValue)
                    carried.params[m.key] = it->second;
            }
    QString text = qs(carried.toString());
    if (!SchemeSetting::parse(text.toStdString()).ok())
        text = id;
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
