// SPDX-License-Identifier: MIT
// The Schemes dock: the methods to compare, one row each, with controls generated from the
// scheme's parameter specs (slider + spin box with units, ranges and help in tooltips, log
// sliders where the spec says so; a budget stated in several units is one control with a unit
// selector), the row the views focus on, and the context/probe split. It only edits settings;
// the session computes.
#pragma once

#include "kvs/scheme.h"

#include <QStringList>
#include <QWidget>
#include <functional>
#include <string>
#include <vector>

class QButtonGroup;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QMenu;
class QSlider;
class QSpinBox;
class QVBoxLayout;

namespace kvs::views {
struct AnalysisData;
}

namespace kvs::studio {

class SchemesPanel : public QWidget {
    Q_OBJECT
public:
    explicit SchemesPanel(QWidget* parent = nullptr);

    // The settings of every row, "id:key=value,..." (only values that differ from the defaults).
    QStringList settings() const;
    // Replaces the rows (undo, sessions). Emits settingsChanged, not edited.
    void setSettings(const QStringList& settings);
    int focusedRow() const { return m_focused; }
    void setFocusedRow(int row);
    int rowCount() const { return static_cast<int>(m_rows.size()); }

    // The split control: the prompt's token count sets its range; 0 = three quarters.
    void setTokenCount(int tokens, int contextTokens);
    int requestedContextTokens() const;
    // Moves the split as a user edit would (emits contextTokensChanged when it changed).
    void setContextTokens(int tokens);

    // Sets one parameter of a row as a user edit would (tests, the trade-off chart's picks). A
    // budget parameter (ParamSpec::budgetGroup) switches its control to that unit and leaves the
    // group's other members unused.
    void setParameter(int row, const QString& key, double value);
    double parameter(int row, const QString& key) const;
    // The key of the budget member a row's budget control states (the first group of the row, or
    // of its stage `stagePrefix` in a chain: "select.h2o."); empty when the row has none.
    QString budgetMode(int row, const QString& stagePrefix = {}) const;
    // Switches a row's budget control to the member `key` as the unit selector would, carrying the
    // budget over (a fraction of the context in tokens, tokens in bytes) where it can.
    void setBudgetMode(int row, const QString& key);

    // What a kept token costs in each row (cache bytes per head and kept token), read from an
    // analysis: carries a budget over between tokens and bytes.
    void noteAnalysis(const kvs::views::AnalysisData& analysis);

    static QStringList defaultSettings();

signals:
    void settingsChanged(const QStringList& settings);
    // A user edit: the settings before and after; `control` identifies the control so that a
    // drag of one slider merges into one undo step (-1: never merge).
    void edited(const QStringList& before, const QStringList& after, int control);
    void focusedRowChanged(int row);
    void contextTokensChanged(int tokens);

private:
    struct ParamControl {
        kvs::ParamSpec spec; // a budget control's: its active member's
        QSlider* slider = nullptr;
        QDoubleSpinBox* spin = nullptr;
        // A budget group (ParamSpec::budgetGroup): its members in spec order, the unit selector
        // and the member it states; empty / null for a plain parameter.
        std::vector<kvs::ParamSpec> members;
        QComboBox* mode = nullptr;
        int active = 0;
    };
    struct Row {
        QWidget* box = nullptr;
        QComboBox* scheme = nullptr;
        QLabel* swatch = nullptr;
        std::vector<ParamControl> params;
        kvs::ParamValues values;
        std::string id;
        double bytesPerToken = 0; // measured by the last analysis; 0 = unknown
    };

    void rebuild(const QStringList& settings);
    void addRowWidget(const kvs::SchemeSetting& setting, int index);
    QString rowSetting(const Row& row) const;
    // A slider or spin box of control `param` in row `index` changed: `syncOther` moves the other
    // control and returns the value, then the edit is recorded (undoable).
    void editParameter(int index, int param, int control,
                       const std::function<double(const Row&, const ParamControl&)>& syncOther);
    // A budget control: the member each row's values say is in use (the last one set).
    static int activeMember(const ParamControl& pc, const kvs::ParamValues& values);
    // Writes `value` to member `member` and the group's "unused" values to the others.
    static void writeBudget(const ParamControl& pc, int member, double value,
                            kvs::ParamValues& values);
    // States control `param` of row `index` in member `member` at `value` (one undoable edit).
    void switchBudget(int index, int param, int member, double value);
    // The unit selector of control `param` chose `member`: the budget carried over into it.
    void carryBudget(int index, int param, int member);
    // The budget of `pc` carried over into member `member`; NaN where the context size or the
    // bytes per token it needs are unknown.
    double carriedBudget(const Row& row, const ParamControl& pc, int member) const;
    // Where it cannot be carried over: the member's own value when it is in use-able range,
    // else the middle of its slider.
    double fallbackBudget(const Row& row, const ParamControl& pc, int member) const;
    // The budget controls follow a new context size or cost per token (no edit).
    void refreshBudgets();
    // The slider's spec of a budget member: tokens and bytes over what the context allows.
    kvs::ParamSpec sliderSpec(const Row& row, const ParamControl& pc) const;
    // Shows member pc.active in the unit selector, slider and spin box (no edit).
    void showBudget(const Row& row, ParamControl& pc);
    int contextTokens() const;
    void userEdit(const QStringList& before, int control);
    void addScheme();
    void removeScheme(int row);
    void changeScheme(int row, const QString& id);
    // The stages core accepts after row `row`'s scheme `id` (and, for a chain, dropping its last).
    QMenu* stageMenu(const std::string& id, int row, QWidget* parent);
    // Appends `stage` to row `row`'s chain; an empty `stage` removes the chain's last one.
    void appendStage(int row, const QString& stage);
    // Rebuilds the rows for `after` (an edit from `before`) once control returns to the event
    // loop: the widget that asked (a combo box, a menu) is deleted by the rebuild.
    void applyLater(const QStringList& before, const QStringList& after);
    static int sliderFor(const kvs::ParamSpec& spec, double value);
    static double valueFor(const kvs::ParamSpec& spec, int slider);
    // The supported value nearest `value` (ParamSpec::choices); `value` when any is allowed.
    static double nearestChoice(const kvs::ParamSpec& spec, double value);

    QVBoxLayout* m_rowsLayout = nullptr;
    QButtonGroup* m_focusGroup = nullptr;
    std::vector<Row> m_rows;
    int m_focused = 0;
    bool m_updating = false;
    QSlider* m_split = nullptr;
    QSpinBox* m_splitSpin = nullptr;
    QLabel* m_splitLabel = nullptr;
    bool m_tokensKnown = false; // setTokenCount was called: the split is the context size
};

} // namespace kvs::studio
