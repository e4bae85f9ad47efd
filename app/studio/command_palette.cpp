// SPDX-License-Identifier: MIT
// The command palette.
#include "command_palette.h"

#include <QAction>
#include <QKeyEvent>
#include <QLineEdit>
#include <QListWidget>
#include <QVBoxLayout>

namespace kvs::studio {

namespace {

QString plainText(const QAction* a) {
    QString t = a->text();
    t.remove(QLatin1Char('&'));
    if (t.endsWith(QStringLiteral("\u2026")))
        t.chop(1);
    return t;
}

} // namespace

CommandPalette::CommandPalette(QList<QAction*> actions, QWidget* parent)
    : QDialog(parent, Qt::Popup), m_actions(std::move(actions)) {
    setObjectName(QStringLiteral("commandPalette"));
    setWindowTitle(tr("Command palette"));
    auto* layout = new QVBoxLayout(this);
    m_filter = new QLineEdit(this);
    m_filter->setObjectName(QStringLiteral("commandFilter"));
    m_filter->setPlaceholderText(tr("Type a command\u2026"));
    m_list = new QListWidget(this);
    m_list->setObjectName(QStringLiteral("commandList"));
    layout->addWidget(m_filter);
    layout->addWidget(m_list);
    resize(520, 360);
    connect(m_filter, &QLineEdit::textChanged, this, [this] { refill(); });
    connect(m_filter, &QLineEdit::returnPressed, this, [this] { triggerCurrent(); });
    connect(m_list, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) {
        m_list->setCurrentItem(item);
        triggerCurrent();
    });
    refill();
}

void CommandPalette::setFilter(const QString& text) {
    m_filter->setText(text);
}

void CommandPalette::refill() {
    m_list->clear();
    const QString filter = m_filter->text().trimmed();
    for (int i = 0; i < m_actions.size(); ++i) {
        QAction* a = m_actions[i];
        if (!a->isEnabled() || a->text().isEmpty() || a->isSeparator())
            continue;
        const QString text = plainText(a);
        if (!filter.isEmpty() && !text.contains(filter, Qt::CaseInsensitive))
            continue;
        QString label = text;
        if (!a->shortcut().isEmpty())
            label +=
                QStringLiteral("    (%1)").arg(a->shortcut().toString(QKeySequence::NativeText));
        auto* item = new QListWidgetItem(label, m_list);
        item->setData(Qt::UserRole, i);
    }
    if (m_list->count() > 0)
        m_list->setCurrentRow(0);
}

int CommandPalette::visibleCount() const {
    return m_list->count();
}

bool CommandPalette::triggerCurrent() {
    QListWidgetItem* item = m_list->currentItem();
    if (!item)
        return false;
    QAction* a = m_actions[item->data(Qt::UserRole).toInt()];
    accept();
    a->trigger();
    return true;
}

} // namespace kvs::studio
