// SPDX-License-Identifier: MIT
// The undoable setting changes of the studio window: scheme settings and the context / probe
// split.
#include "undo_commands.h"

#include "schemes_panel.h"

#include <QObject>

namespace kvs::studio {

SettingsCommand::SettingsCommand(SchemesPanel* panel, QStringList before, QStringList after,
                                 int control)
    : m_panel(panel), m_before(std::move(before)), m_after(std::move(after)), m_control(control) {
    setText(QObject::tr("Change scheme settings"));
}

bool SettingsCommand::mergeWith(const QUndoCommand* other) {
    const auto* o = static_cast<const SettingsCommand*>(other);
    if (o->m_control != m_control)
        return false;
    m_after = o->m_after;
    return true;
}

void SettingsCommand::redo() {
    if (m_first) { // the panel already shows the change
        m_first = false;
        return;
    }
    m_panel->setSettings(m_after);
}

void SettingsCommand::undo() {
    m_panel->setSettings(m_before);
}

SplitCommand::SplitCommand(SchemesPanel* panel, bool* applying, int before, int after)
    : m_panel(panel), m_applying(applying), m_before(before), m_after(after) {
    setText(QObject::tr("Move the context / probe split"));
}

bool SplitCommand::mergeWith(const QUndoCommand* other) {
    m_after = static_cast<const SplitCommand*>(other)->m_after;
    return true;
}

void SplitCommand::redo() {
    if (m_first) {
        m_first = false;
        return;
    }
    apply(m_after);
}

void SplitCommand::undo() {
    apply(m_before);
}

void SplitCommand::apply(int value) {
    *m_applying = true;
    m_panel->setContextTokens(value);
    *m_applying = false;
}

} // namespace kvs::studio
