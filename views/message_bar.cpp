// SPDX-License-Identifier: MIT
// A non-blocking message strip (error, warning or information) with a close button.
#include "message_bar.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QToolButton>

namespace kvs::views {

namespace {

QColor mix(const QColor& a, const QColor& b, qreal t) {
    return QColor::fromRgbF(static_cast<float>(a.redF() * (1 - t) + b.redF() * t),
                            static_cast<float>(a.greenF() * (1 - t) + b.greenF() * t),
                            static_cast<float>(a.blueF() * (1 - t) + b.blueF() * t));
}

} // namespace

MessageBar::MessageBar(QWidget* parent) : QFrame(parent) {
    setFrameShape(QFrame::StyledPanel);
    setAutoFillBackground(true);
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(8, 4, 4, 4);
    m_label = new QLabel(this);
    m_label->setObjectName(QStringLiteral("messageText"));
    m_label->setWordWrap(true);
    m_label->setTextFormat(Qt::PlainText);
    m_label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_label->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    m_close = new QToolButton(this);
    m_close->setObjectName(QStringLiteral("messageClose"));
    m_close->setAutoRaise(true);
    m_close->setText(QStringLiteral("\u00D7"));
    m_close->setToolTip(tr("Dismiss this message"));
    layout->addWidget(m_label, 1);
    layout->addWidget(m_close, 0, Qt::AlignTop);
    connect(m_close, &QToolButton::clicked, this, [this] {
        clearMessage();
        emit dismissed();
    });
    hide();
}

void MessageBar::showMessage(Kind kind, const QString& text) {
    m_kind = kind;
    m_label->setText(text);
    applyColours();
    show();
}

void MessageBar::clearMessage() {
    m_label->clear();
    hide();
}

QString MessageBar::text() const {
    return m_label->text();
}

void MessageBar::applyColours() {
    QColor accent;
    switch (m_kind) {
    case Kind::Info:
        accent = QColor(0x00, 0x72, 0xB2); // Okabe-Ito blue
        break;
    case Kind::Warning:
        accent = QColor(0xE6, 0x9F, 0x00); // Okabe-Ito orange
        break;
    case Kind::Error:
        accent = QColor(0xD5, 0x5E, 0x00); // Okabe-Ito vermillion
        break;
    }
    const QPalette parentPalette = parentWidget() ? parentWidget()->palette() : QPalette();
    QPalette pal = palette();
    pal.setColor(QPalette::Window, mix(parentPalette.color(QPalette::Base), accent, 0.15));
    pal.setColor(QPalette::WindowText, parentPalette.color(QPalette::Text));
    setPalette(pal);
}

} // namespace kvs::views
