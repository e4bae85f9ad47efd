// SPDX-License-Identifier: MIT
// The tokenized prompt as chips in a wrapping flow, whitespace made visible, one painted widget.
#pragma once

#include <QString>
#include <QWidget>
#include <vector>

class QLabel;

namespace kvs::views {

class ChipArea;

// One token as the chips view receives it: the id and the text it stands for (as decoded).
struct TokenChip {
    int id = 0;
    QString text;
};

// Makes whitespace and control characters visible for display: space -> '·', newline -> '↵',
// tab -> '→', carriage return -> '␍', other C0 controls -> their U+2400 picture; "" -> '∅'.
QString visibleWhitespace(const QString& text);

// Shows a token sequence as rounded chips that wrap to the width, with alternating subtle fills,
// a tooltip per chip (index, id, text) and a count label above. Chips are painted, not widgets,
// so thousands of tokens stay cheap. It receives ready data and computes nothing.
class TokenChipsView : public QWidget {
    Q_OBJECT
public:
    explicit TokenChipsView(QWidget* parent = nullptr);
    ~TokenChipsView() override;

    void setTokens(std::vector<TokenChip> tokens);
    // Removes the chips and shows `placeholder` (e.g. "No model loaded") in their place.
    void clear(const QString& placeholder = {});

    int chipCount() const;
    QString chipText(int index) const;  // as displayed (visible whitespace)
    QString tokenText(int index) const; // as received
    int tokenId(int index) const;
    QString chipToolTip(int index) const;
    // The chip's rectangle in the coordinates of this widget (invalid when out of range or
    // scrolled out of view); for tests and for views that point at a chip.
    QRect chipRect(int index) const;
    int chipAt(const QPoint& pos) const; // -1 when no chip is there (pos in this widget's coords)
    QString countText() const;
    // The count label above the chips; hide it where the surrounding panel shows the count.
    void setCountVisible(bool visible);

    int selectedChip() const;
    void setSelectedChip(int index); // -1 clears

    // The context / probe split: chips [0, split) are the context whose cache is compressed,
    // [split, count) the probe queries. Drawn as a bar between two chips that the mouse drags
    // (or "Split here" from a chip's context menu); probe chips are tinted. 0 hides the marker.
    // Clamped to [1, count − 1] so at least one token stays on each side.
    void setSplit(int contextTokens);
    int split() const;
    // The marker's rectangle in this widget's coordinates (invalid when hidden or scrolled away).
    QRect splitMarkerRect() const;
    // Sets the split as the user would (emits splitChanged when it moved).
    void moveSplit(int contextTokens);

signals:
    void chipHovered(int index); // -1 when the pointer leaves the chips
    void chipClicked(int index);
    // The user moved the split (on release of a drag, or from the context menu).
    void splitChanged(int contextTokens);

private:
    friend class ChipArea;
    void updateCount();

    QLabel* m_count = nullptr;
    ChipArea* m_area = nullptr;
};

} // namespace kvs::views
