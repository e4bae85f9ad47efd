// SPDX-License-Identifier: MIT
// The command palette (Ctrl+Shift+P): every action of the window with its shortcut, filtered as
// you type; Enter triggers the chosen one. Hand-built: KCommandBar needs KF5 / Qt 5.
#pragma once

#include <QDialog>
#include <QList>

class QAction;
class QLineEdit;
class QListWidget;

namespace kvs::studio {

class CommandPalette : public QDialog {
    Q_OBJECT
public:
    CommandPalette(QList<QAction*> actions, QWidget* parent = nullptr);
    void setFilter(const QString& text);
    int visibleCount() const;
    // Triggers the first visible entry (what Enter does).
    bool triggerCurrent();

private:
    void refill();
    QList<QAction*> m_actions;
    QLineEdit* m_filter = nullptr;
    QListWidget* m_list = nullptr;
};

} // namespace kvs::studio
