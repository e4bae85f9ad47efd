// SPDX-License-Identifier: MIT
// The tokenized prompt as chips in a wrapping flow, whitespace made visible, one painted widget.
#include "token_chips_view.h"

#include <QAbstractScrollArea>
#include <QContextMenuEvent>
#include <QEvent>
#include <QFontMetrics>
#include <QHelpEvent>
#include <QLabel>
#include <QMenu>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QScrollBar>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <limits>

namespace kvs::views {

namespace {

constexpr int kPadX = 5;   // inside a chip, left and right of the text
constexpr int kPadY = 2;   // inside a chip, above and below the text
constexpr int kGap = 3;    // between chips and between rows
constexpr int kMargin = 4; // around the flow
constexpr int kMinChip = 14;
constexpr qreal kRadius = 4.0;

// The picture that stands for an invisible character, or a null QChar when it is visible.
QChar markerFor(QChar c) {
    switch (c.unicode()) {
    case u' ':
        return QChar(0x00B7); // middle dot
    case u'\n':
        return QChar(0x21B5); // downwards arrow with corner leftwards
    case u'\t':
        return QChar(0x2192); // rightwards arrow
    case u'\r':
        return QChar(0x240D); // symbol for carriage return
    case 0x00A0:
        return QChar(0x2423); // open box for a no-break space
    default:
        break;
    }
    if (c.unicode() < 0x20)
        return QChar(0x2400 + c.unicode());
    if (c.unicode() == 0x7F)
        return QChar(0x2421);
    return QChar();
}

QColor mix(const QColor& a, const QColor& b, qreal t) {
    return QColor::fromRgbF(static_cast<float>(a.redF() * (1 - t) + b.redF() * t),
                            static_cast<float>(a.greenF() * (1 - t) + b.greenF() * t),
                            static_cast<float>(a.blueF() * (1 - t) + b.blueF() * t));
}

// A stretch of displayed text drawn in one colour: markers are drawn muted.
struct Run {
    QString text;
    bool marker = false;
};

struct Chip {
    TokenChip token;
    QString display;
    std::vector<Run> runs;
    QRect rect;        // in content coordinates (before scrolling)
    int textWidth = 0; // horizontal advance of `display` in the current font
};

} // namespace

QString visibleWhitespace(const QString& text) {
    if (text.isEmpty())
        return QString(QChar(0x2205)); // empty set
    QString out;
    out.reserve(text.size());
    for (QChar c : text) {
        const QChar m = markerFor(c);
        out += m.isNull() ? c : m;
    }
    return out;
}

// The scrolling surface that lays out and paints the chips.
class ChipArea : public QAbstractScrollArea {
public:
    explicit ChipArea(TokenChipsView* owner) : QAbstractScrollArea(owner), m_owner(owner) {
        setObjectName(QStringLiteral("tokenChipsArea"));
        setFrameShape(QFrame::StyledPanel);
        setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
        setVerticalScrollBarPolicy(Qt::ScrollBarAsNeeded);
        viewport()->setMouseTracking(true);
        viewport()->setBackgroundRole(QPalette::Base);
        setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    }

    void setTokens(std::vector<TokenChip> tokens) {
        m_chips.clear();
        m_chips.reserve(tokens.size());
        for (auto& t : tokens) {
            Chip chip;
            chip.display = visibleWhitespace(t.text);
            if (t.text.isEmpty()) {
                chip.runs.push_back({chip.display, true});
            } else {
                for (QChar c : t.text) {
                    const QChar m = markerFor(c);
                    const bool isMarker = !m.isNull();
                    if (chip.runs.empty() || chip.runs.back().marker != isMarker)
                        chip.runs.push_back({QString(), isMarker});
                    chip.runs.back().text += isMarker ? m : c;
                }
            }
            chip.token = std::move(t);
            m_chips.push_back(std::move(chip));
        }
        m_hover = -1;
        m_selected = -1;
        m_split = clampSplit(m_split);
        m_placeholder.clear();
        measure();
        relayout();
    }

    void clear(const QString& placeholder) {
        m_chips.clear();
        m_hover = m_selected = -1;
        m_placeholder = placeholder;
        relayout();
    }

    const std::vector<Chip>& chips() const { return m_chips; }
    int selected() const { return m_selected; }
    void setSelected(int index) {
        m_selected = (index >= 0 && index < static_cast<int>(m_chips.size())) ? index : -1;
        viewport()->update();
    }

    int split() const { return m_split; }
    void setSplit(int contextTokens) {
        m_split = clampSplit(contextTokens);
        m_dragSplit = -1;
        viewport()->update();
    }

    // The split marker in viewport coordinates: a bar in the gap before chip `split` (the first
    // probe), as tall as its row, widened by a few pixels so that it is easy to grab.
    QRect markerViewportRect(int split) const {
        if (split <= 0 || split >= static_cast<int>(m_chips.size()))
            return {};
        const QRect chip = m_chips[static_cast<std::size_t>(split)].rect;
        const int x = chip.left() - (kGap + 1) / 2;
        return QRect(x - kGrab, chip.top() - 2, 2 * kGrab + 1, chip.height() + 4)
            .translated(0, -verticalScrollBar()->value());
    }

    // The split a drag to `p` (viewport coordinates) would set: before the chip under the
    // pointer when it is in that chip's left half, after it otherwise.
    int splitAtViewport(const QPoint& p) const {
        if (m_chips.size() < 2)
            return 0;
        const QPoint content = p + QPoint(0, verticalScrollBar()->value());
        // The row under the pointer (or the nearest one above/below the flow).
        int best = 0;
        int bestDistance = std::numeric_limits<int>::max();
        for (std::size_t i = 0; i < m_chips.size(); ++i) {
            const QRect& r = m_chips[i].rect;
            const int dy = content.y() < r.top()      ? r.top() - content.y()
                           : content.y() > r.bottom() ? content.y() - r.bottom()
                                                      : 0;
            const int dx = content.x() < r.left()    ? r.left() - content.x()
                           : content.x() > r.right() ? content.x() - r.right()
                                                     : 0;
            const int d = dy * 4096 + dx; // same row first, then the horizontally nearest
            if (d < bestDistance) {
                bestDistance = d;
                best = static_cast<int>(i);
            }
        }
        const QRect& r = m_chips[static_cast<std::size_t>(best)].rect;
        return clampSplit(content.x() < r.center().x() ? best : best + 1);
    }

    // Rectangle of a chip in viewport coordinates.
    QRect viewportRect(int index) const {
        return m_chips[static_cast<std::size_t>(index)].rect.translated(
            0, -verticalScrollBar()->value());
    }

    int chipAtViewport(const QPoint& p) const {
        const QPoint content = p + QPoint(0, verticalScrollBar()->value());
        // Rows are in order: find the first chip whose bottom is below the point, then scan the
        // row.
        auto it = std::lower_bound(m_chips.begin(), m_chips.end(), content.y(),
                                   [](const Chip& c, int y) { return c.rect.bottom() < y; });
        for (; it != m_chips.end() && it->rect.top() <= content.y(); ++it)
            if (it->rect.contains(content))
                return static_cast<int>(it - m_chips.begin());
        return -1;
    }

    QSize sizeHint() const override {
        const int rowH = fontMetrics().height() + 2 * kPadY + kGap;
        return {320, 2 * kMargin + 4 * rowH + 2 * frameWidth()};
    }
    QSize minimumSizeHint() const override {
        const int rowH = fontMetrics().height() + 2 * kPadY + kGap;
        return {80, 2 * kMargin + 2 * rowH + 2 * frameWidth()};
    }

protected:
    void resizeEvent(QResizeEvent* event) override {
        QAbstractScrollArea::resizeEvent(event);
        relayout();
    }

    void changeEvent(QEvent* event) override {
        QAbstractScrollArea::changeEvent(event);
        if (event->type() == QEvent::FontChange || event->type() == QEvent::StyleChange) {
            measure();
            relayout();
        }
    }

    bool viewportEvent(QEvent* event) override {
        if (event->type() == QEvent::ToolTip) {
            auto* help = static_cast<QHelpEvent*>(event);
            if (markerViewportRect(m_split).contains(help->pos())) {
                QToolTip::showText(
                    help->globalPos(),
                    TokenChipsView::tr("Context: %1 tokens (compressed) | probes: %2 tokens.\n"
                                       "Drag to move the split.")
                        .arg(m_split)
                        .arg(static_cast<int>(m_chips.size()) - m_split),
                    viewport(), markerViewportRect(m_split));
                return true;
            }
            const int index = chipAtViewport(help->pos());
            if (index >= 0)
                QToolTip::showText(help->globalPos(), m_owner->chipToolTip(index), viewport(),
                                   viewportRect(index));
            else
                QToolTip::hideText();
            return true;
        }
        if (event->type() == QEvent::Leave)
            setHover(-1);
        return QAbstractScrollArea::viewportEvent(event);
    }

    void mouseMoveEvent(QMouseEvent* event) override {
        const QPoint pos = event->position().toPoint();
        if (m_dragSplit >= 0) {
            const int s = splitAtViewport(pos);
            if (s != m_dragSplit) {
                m_dragSplit = s;
                viewport()->update();
            }
            return;
        }
        viewport()->setCursor(markerViewportRect(m_split).contains(pos) ? Qt::SplitHCursor
                                                                        : Qt::ArrowCursor);
        setHover(chipAtViewport(pos));
        QAbstractScrollArea::mouseMoveEvent(event);
    }

    void mouseReleaseEvent(QMouseEvent* event) override {
        if (event->button() == Qt::LeftButton && m_dragSplit >= 0) {
            const int s = m_dragSplit;
            m_dragSplit = -1;
            viewport()->update();
            if (s != m_split) {
                m_split = s;
                emit m_owner->splitChanged(s);
            }
            return;
        }
        QAbstractScrollArea::mouseReleaseEvent(event);
    }

    void contextMenuEvent(QContextMenuEvent* event) override {
        const int index = chipAtViewport(event->pos());
        if (index < 1 || m_split <= 0)
            return;
        QMenu menu(this);
        QAction* here = menu.addAction(
            TokenChipsView::tr("Split here: %1 context tokens, probes from token %1").arg(index));
        here->setEnabled(clampSplit(index) == index && index != m_split);
        if (menu.exec(event->globalPos()) == here)
            m_owner->moveSplit(index);
    }

    void mousePressEvent(QMouseEvent* event) override {
        if (event->button() == Qt::LeftButton &&
            markerViewportRect(m_split).contains(event->position().toPoint())) {
            m_dragSplit = m_split;
            viewport()->update();
            return;
        }
        if (event->button() == Qt::LeftButton) {
            const int index = chipAtViewport(event->position().toPoint());
            setSelected(index);
            emit m_owner->chipClicked(index);
        }
        QAbstractScrollArea::mousePressEvent(event);
    }

    void paintEvent(QPaintEvent* event) override {
        QPainter p(viewport());
        p.setRenderHint(QPainter::Antialiasing);
        const QPalette& pal = palette();
        if (m_chips.empty()) {
            p.setPen(pal.color(QPalette::PlaceholderText));
            p.drawText(viewport()->rect().adjusted(kMargin, kMargin, -kMargin, -kMargin),
                       Qt::AlignCenter | Qt::TextWordWrap, m_placeholder);
            return;
        }
        const QColor base = pal.color(QPalette::Base);
        const QColor accent = pal.color(QPalette::Highlight);
        const QColor fills[2] = {mix(base, accent, 0.10), mix(base, accent, 0.22)};
        // Probe chips in the Okabe-Ito orange, distinct from the context's accent tint for
        // every kind of colour vision.
        const QColor probe(0xE6, 0x9F, 0x00);
        const QColor probeFills[2] = {mix(base, probe, 0.16), mix(base, probe, 0.30)};
        const QColor border = mix(base, pal.color(QPalette::Text), 0.25);
        const QColor text = pal.color(QPalette::Text);
        const QColor muted = mix(base, text, 0.45);
        const QFontMetrics fm = fontMetrics();
        const int scroll = verticalScrollBar()->value();
        const QRect visible = event->rect().translated(0, scroll);

        p.translate(0, -scroll);
        for (std::size_t i = 0; i < m_chips.size(); ++i) {
            const Chip& chip = m_chips[i];
            if (chip.rect.bottom() < visible.top())
                continue;
            if (chip.rect.top() > visible.bottom())
                break;
            const int index = static_cast<int>(i);
            const bool hot = index == m_hover || index == m_selected;
            QPainterPath path;
            path.addRoundedRect(QRectF(chip.rect).adjusted(0.5, 0.5, -0.5, -0.5), kRadius, kRadius);
            const bool isProbe = m_split > 0 && index >= m_split;
            p.fillPath(path, isProbe ? probeFills[i % 2] : fills[i % 2]);
            p.setPen(QPen(hot ? accent : border, hot ? 1.5 : 1.0));
            p.drawPath(path);

            const QRect textRect = chip.rect.adjusted(kPadX, kPadY, -kPadX, -kPadY);
            const int full = chip.textWidth;
            if (full > textRect.width()) {
                p.setPen(text);
                p.drawText(textRect, Qt::AlignLeft | Qt::AlignVCenter,
                           fm.elidedText(chip.display, Qt::ElideRight, textRect.width()));
                continue;
            }
            int x = textRect.left() + (textRect.width() - full) / 2;
            for (const Run& run : chip.runs) {
                const int w = fm.horizontalAdvance(run.text);
                p.setPen(run.marker ? muted : text);
                p.drawText(QRect(x, textRect.top(), w + 1, textRect.height()),
                           Qt::AlignLeft | Qt::AlignVCenter, run.text);
                x += w;
            }
        }
        p.resetTransform();
        paintSplitMarker(p, m_split, accent, m_dragSplit >= 0 ? 0.35 : 1.0);
        if (m_dragSplit >= 0)
            paintSplitMarker(p, m_dragSplit, accent, 1.0);
    }

private:
    static constexpr int kGrab = 4; // half-width of the marker's grab area, pixels

    int clampSplit(int split) const {
        const int n = static_cast<int>(m_chips.size());
        if (split <= 0 || n < 2)
            return split <= 0 ? 0 : split;
        return std::clamp(split, 1, n - 1);
    }

    void paintSplitMarker(QPainter& p, int split, const QColor& colour, qreal opacity) {
        const QRect r = markerViewportRect(split);
        if (!r.isValid())
            return;
        p.save();
        p.setOpacity(opacity);
        const qreal cx = r.center().x() + 0.5;
        p.setPen(QPen(colour, 3.0, Qt::SolidLine, Qt::RoundCap));
        p.drawLine(QPointF(cx, r.top() + 1), QPointF(cx, r.bottom() - 1));
        // A small grip at the top so the bar reads as something to drag.
        QPainterPath grip;
        grip.moveTo(cx - 4, r.top() - 1);
        grip.lineTo(cx + 4, r.top() - 1);
        grip.lineTo(cx, r.top() + 4);
        grip.closeSubpath();
        p.fillPath(grip, colour);
        p.restore();
    }

    void setHover(int index) {
        if (index == m_hover)
            return;
        m_hover = index;
        viewport()->update();
        emit m_owner->chipHovered(index);
    }

    void measure() {
        const QFontMetrics fm = fontMetrics();
        for (Chip& chip : m_chips)
            chip.textWidth = fm.horizontalAdvance(chip.display);
    }

    void relayout() {
        const QFontMetrics fm = fontMetrics();
        const int chipH = fm.height() + 2 * kPadY;
        const int available = std::max(kMinChip, viewport()->width() - 2 * kMargin);
        int x = kMargin;
        int y = kMargin;
        for (Chip& chip : m_chips) {
            const int w = std::clamp(chip.textWidth + 2 * kPadX, kMinChip, available);
            if (x > kMargin && x + w > kMargin + available) {
                x = kMargin;
                y += chipH + kGap;
            }
            chip.rect = QRect(x, y, w, chipH);
            x += w + kGap;
        }
        const int contentH = m_chips.empty() ? 0 : y + chipH + kMargin;
        verticalScrollBar()->setPageStep(viewport()->height());
        verticalScrollBar()->setSingleStep(chipH + kGap);
        verticalScrollBar()->setRange(0, std::max(0, contentH - viewport()->height()));
        viewport()->update();
    }

    TokenChipsView* m_owner;
    std::vector<Chip> m_chips;
    QString m_placeholder;
    int m_hover = -1;
    int m_selected = -1;
    int m_split = 0;      // 0: no marker
    int m_dragSplit = -1; // where a drag would put the split; -1 when not dragging
};

TokenChipsView::TokenChipsView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    m_count = new QLabel(this);
    m_count->setObjectName(QStringLiteral("tokenChipsCount"));
    m_area = new ChipArea(this);
    layout->addWidget(m_count);
    layout->addWidget(m_area, 1);
    setToolTip(tr("The prompt as the model's tokenizer splits it. Whitespace is drawn visible: "
                  "· space, ↵ newline, → tab. Hover a chip for its index and id."));
    clear();
}

TokenChipsView::~TokenChipsView() = default;

void TokenChipsView::setTokens(std::vector<TokenChip> tokens) {
    m_area->setTokens(std::move(tokens));
    updateCount();
}

void TokenChipsView::clear(const QString& placeholder) {
    m_area->clear(placeholder.isEmpty() ? tr("No tokens") : placeholder);
    updateCount();
}

int TokenChipsView::chipCount() const {
    return static_cast<int>(m_area->chips().size());
}

QString TokenChipsView::chipText(int index) const {
    if (index < 0 || index >= chipCount())
        return {};
    return m_area->chips()[static_cast<std::size_t>(index)].display;
}

QString TokenChipsView::tokenText(int index) const {
    if (index < 0 || index >= chipCount())
        return {};
    return m_area->chips()[static_cast<std::size_t>(index)].token.text;
}

int TokenChipsView::tokenId(int index) const {
    if (index < 0 || index >= chipCount())
        return -1;
    return m_area->chips()[static_cast<std::size_t>(index)].token.id;
}

QString TokenChipsView::chipToolTip(int index) const {
    if (index < 0 || index >= chipCount())
        return {};
    return tr("Token %1 of %2\nid %3\ntext \u201C%4\u201D")
        .arg(index)
        .arg(chipCount())
        .arg(tokenId(index))
        .arg(chipText(index));
}

QRect TokenChipsView::chipRect(int index) const {
    if (index < 0 || index >= chipCount())
        return {};
    const QRect r = m_area->viewportRect(index);
    if (!m_area->viewport()->rect().intersects(r))
        return {};
    return r.translated(m_area->viewport()->mapTo(this, QPoint(0, 0)));
}

int TokenChipsView::chipAt(const QPoint& pos) const {
    return m_area->chipAtViewport(m_area->viewport()->mapFrom(this, pos));
}

QString TokenChipsView::countText() const {
    return m_count->text();
}

void TokenChipsView::setCountVisible(bool visible) {
    m_count->setVisible(visible);
}

int TokenChipsView::selectedChip() const {
    return m_area->selected();
}

void TokenChipsView::setSelectedChip(int index) {
    m_area->setSelected(index);
}

void TokenChipsView::setSplit(int contextTokens) {
    m_area->setSplit(contextTokens);
}

int TokenChipsView::split() const {
    return m_area->split();
}

QRect TokenChipsView::splitMarkerRect() const {
    const QRect r = m_area->markerViewportRect(m_area->split());
    if (!r.isValid() || !m_area->viewport()->rect().intersects(r))
        return {};
    return r.translated(m_area->viewport()->mapTo(this, QPoint(0, 0)));
}

void TokenChipsView::moveSplit(int contextTokens) {
    const int before = split();
    m_area->setSplit(contextTokens);
    if (split() != before)
        emit splitChanged(split());
}

void TokenChipsView::updateCount() {
    const int n = chipCount();
    m_count->setText(n == 1 ? tr("1 token") : tr("%n tokens", nullptr, n));
}

} // namespace kvs::views
