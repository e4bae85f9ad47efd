// SPDX-License-Identifier: MIT
// Help › Keyboard Shortcuts: every shortcut of the window, read from its actions when the dialog
// opens (so the list cannot drift from the keys), grouped by menu and filtered as you type.
#pragma once

#include <QDialog>
#include <QList>
#include <QString>

class QAction;
class QLineEdit;
class QMainWindow;
class QTreeWidget;

namespace kvs::studio {

class ShortcutsDialog : public QDialog {
    Q_OBJECT
public:
    struct Entry {
        QString menu;   // "File", "View"; "Window" for actions in no menu
        QString action; // "Open Model…" without its mnemonic
        QString keys;   // "Ctrl+O", several joined by ", " (native text)
    };

    explicit ShortcutsDialog(QMainWindow* window, QWidget* parent = nullptr);
    // Every action of `window` that has a shortcut: the menu bar's, menu by menu (submenus under
    // their menu), then the window's own actions that no menu shows.
    static QList<Entry> collect(QMainWindow* window);
    const QList<Entry>& entries() const { return m_entries; }
    // Shows the entries whose action, keys or menu contain `text` (case-insensitive).
    void setFilter(const QString& text);
    // Entries shown under the current filter.
    int visibleCount() const;

private:
    void refill();
    QList<Entry> m_entries;
    QLineEdit* m_filter = nullptr;
    QTreeWidget* m_tree = nullptr;
};

// The Help menu's "Keyboard Shortcuts" action for `window`: F1 (the platform's help key) unless
// an action of the window already uses it; opens one ShortcutsDialog, raised if already open.
QAction* createShortcutsAction(QMainWindow* window);

} // namespace kvs::studio
