// SPDX-License-Identifier: MIT
// The Schemes dock: the methods to compare, one row each, with controls generated from the
// scheme's parameter specs (slider + spin box with units, ranges and help in tooltips, log
// sliders where the spec says so), the row the views focus on, and the context/probe split.
// It only edits settings; the session computes.
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

    // Sets one parameter of a row as a user edit would (tests, the trade-off chart's picks).
    void setParameter(int row, const QString& key, double value);
    double parameter(int row, const QString& key) const;

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
        kvs::ParamSpec spec;
        QSlider* slider = nullptr;
        QDoubleSpinBox* spin = nullptr;
    };
    struct Row {
        QWidget* box = nullptr;
        QComboBox* scheme = nullptr;
        QLabel* swatch = nullptr;
        std::vector<ParamControl> params;
        kvs::ParamValues values;
        std::string id;
    };

    void rebuild(const QStringList& settings);
    void addRowWidget(const kvs::SchemeSetting& setting, int index);
    QString rowSetting(const Row& row) const;
    // A slider or spin box of parameter `key` in row `index` changed: `syncOther` moves the other
    // control and returns the value, then the edit is recorded (undoable).
    void editParameter(int index, const std::string& key, int control,
                       const std::function<double(const ParamControl&)>& syncOther);
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
};

} // namespace kvs::studio
