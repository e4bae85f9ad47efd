// SPDX-License-Identifier: MIT
// The undoable setting changes of the studio window: scheme settings and the context / probe
// split; consecutive moves of one control merge into one step, as a slider drag should.
#pragma once

#include <QStringList>
#include <QUndoCommand>

namespace kvs::studio {

class SchemesPanel;

// One change of the scheme settings; consecutive moves of one control merge into one step.
class SettingsCommand : public QUndoCommand {
public:
    SettingsCommand(SchemesPanel* panel, QStringList before, QStringList after, int control);
    int id() const override { return m_control >= 0 ? 1 : -1; }
    bool mergeWith(const QUndoCommand* other) override;
    void redo() override;
    void undo() override;

private:
    SchemesPanel* m_panel;
    QStringList m_before;
    QStringList m_after;
    int m_control;
    bool m_first = true;
};

// Moving the context / probe split (from the Schemes dock or the token chips). `applying` is set
// while undo/redo moves the split, so that the move is not recorded as a new edit.
class SplitCommand : public QUndoCommand {
public:
    SplitCommand(SchemesPanel* panel, bool* applying, int before, int after);
    int id() const override { return 2; }
    bool mergeWith(const QUndoCommand* other) override;
    void redo() override;
    void undo() override;

private:
    void apply(int value);
    SchemesPanel* m_panel;
    bool* m_applying;
    int m_before;
    int m_after;
    bool m_first = true;
};

} // namespace kvs::studio
