// SPDX-License-Identifier: MIT
// The keyboard shortcuts dialog.
#include "shortcuts_dialog.h"

#include <QAction>
#include <QDialogButtonBox>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMainWindow>
#include <QMenu>
#include <QMenuBar>
#include <QPushButton>
#include <QSet>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace kvs::studio {

namespace {

QString plainText(QString t) {
    // "&Open Model…" as the menu shows it; "&&" is a literal ampersand.
    t.replace(QStringLiteral("&&"), QStringLiteral("\u0001"));
    t.remove(QLatin1Char('&'));
    t.replace(QStringLiteral("\u0001"), QStringLiteral("&"));
    return t;
}

QString keysText(const QAction* a) {
    QStringList keys;
    for (const QKeySequence& k : a->shortcuts())
        if (!k.isEmpty())
            keys << k.toString(QKeySequence::NativeText);
    return keys.join(QStringLiteral(", "));
}

void collectMenu(const QMenu* menu, const QString& group, const QString& prefix,
                 QList<ShortcutsDialog::Entry>& out, QSet<const QAction*>& seen) {
    for (QAction* a : menu->actions()) {
        if (a->isSeparator())
            continue;
        if (a->menu()) {
            collectMenu(a->menu(), group,
                        prefix + plainText(a->text()) + QStringLiteral(" \u203A "), out, seen);
            continue;
        }
        seen.insert(a);
        const QString keys = keysText(a);
        if (!keys.isEmpty())
            out.push_back({group, prefix + plainText(a->text()), keys});
    }
}

} // namespace

QList<ShortcutsDialog::Entry> ShortcutsDialog::collect(QMainWindow* window) {
    QList<Entry> out;
    QSet<const QAction*> seen;
    for (QAction* top : window->menuBar()->actions())
        if (top->menu())
            collectMenu(top->menu(), plainText(top->text()), {}, out, seen);
    // Shortcuts the window holds without a menu entry (they work wherever the focus is).
    for (QAction* a : window->actions())
        if (!seen.contains(a) && !a->text().isEmpty() && !keysText(a).isEmpty())
            out.push_back({tr("Window"), plainText(a->text()), keysText(a)});
    return out;
}

ShortcutsDialog::ShortcutsDialog(QMainWindow* window, QWidget* parent)
    : QDialog(parent), m_entries(collect(window)) {
    setObjectName(QStringLiteral("shortcutsDialog"));
    setWindowTitle(tr("Keyboard Shortcuts"));
    auto* layout = new QVBoxLayout(this);
    m_filter = new QLineEdit(this);
    m_filter->setObjectName(QStringLiteral("shortcutsFilter"));
    m_filter->setPlaceholderText(tr("Search by command or key\u2026"));
    m_filter->setClearButtonEnabled(true);
    m_filter->setToolTip(tr("Shows only the shortcuts whose command, key or menu contains this "
                            "text"));
    m_tree = new QTreeWidget(this);
    m_tree->setObjectName(QStringLiteral("shortcutsTree"));
    m_tree->setColumnCount(2);
    m_tree->setHeaderLabels({tr("Command"), tr("Shortcut")});
    m_tree->setRootIsDecorated(false);
    m_tree->setUniformRowHeights(true);
    m_tree->header()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_tree->header()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
    m_tree->header()->setStretchLastSection(false);
    auto* note = new QLabel(
        tr("Read from the window's commands; the command palette (%1) runs any of them by name.")
            .arg(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_P).toString(QKeySequence::NativeText)),
        this);
    note->setWordWrap(true);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, this);
    buttons->button(QDialogButtonBox::Close)->setToolTip(tr("Close this list"));
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(m_filter);
    layout->addWidget(m_tree, 1);
    layout->addWidget(note);
    layout->addWidget(buttons);
    resize(460, 560);
    connect(m_filter, &QLineEdit::textChanged, this, [this] { refill(); });
    refill();
}

void ShortcutsDialog::setFilter(const QString& text) {
    m_filter->setText(text);
}

void ShortcutsDialog::refill() {
    m_tree->clear();
    const QString filter = m_filter->text().trimmed();
    QTreeWidgetItem* group = nullptr;
    for (const Entry& e : m_entries) {
        if (!filter.isEmpty() && !e.action.contains(filter, Qt::CaseInsensitive) &&
            !e.keys.contains(filter, Qt::CaseInsensitive) &&
            !e.menu.contains(filter, Qt::CaseInsensitive))
            continue;
        if (!group || group->text(0) != e.menu) {
            group = new QTreeWidgetItem(m_tree, {e.menu});
            group->setFirstColumnSpanned(true);
            QFont bold = group->font(0);
            bold.setBold(true);
            group->setFont(0, bold);
            group->setFlags(Qt::ItemIsEnabled);
        }
        auto* item = new QTreeWidgetItem(group, {e.action, e.keys});
        item->setData(0, Qt::UserRole, true); // an entry, not a menu heading
    }
    m_tree->expandAll();
}

int ShortcutsDialog::visibleCount() const {
    int n = 0;
    for (int i = 0; i < m_tree->topLevelItemCount(); ++i)
        n += m_tree->topLevelItem(i)->childCount();
    return n;
}

QAction* createShortcutsAction(QMainWindow* window) {
    auto* action = new QAction(QObject::tr("&Keyboard Shortcuts\u2026"), window);
    action->setObjectName(QStringLiteral("keyboardShortcutsAction"));
    action->setStatusTip(QObject::tr("List every keyboard shortcut of the window, by menu"));
    // The platform's help key, unless a command of the window already has it.
    const QKeySequence help(QKeySequence::HelpContents);
    bool taken = help.isEmpty();
    for (const QAction* a : window->findChildren<QAction*>())
        taken = taken || a->shortcuts().contains(help);
    if (!taken)
        action->setShortcut(help);
    QObject::connect(action, &QAction::triggered, window, [window] {
        // One list per window, read again when it opens (an action may have changed its keys).
        if (auto* old = window->findChild<ShortcutsDialog*>({}, Qt::FindDirectChildrenOnly))
            delete old;
        auto* dialog = new ShortcutsDialog(window, window);
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        dialog->show();
        dialog->raise();
        dialog->activateWindow();
    });
    return action;
}

} // namespace kvs::studio
