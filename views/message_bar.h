// SPDX-License-Identifier: MIT
// A non-blocking message strip (error, warning or information) with a close button.
#pragma once

#include <QFrame>
#include <QString>

class QLabel;
class QToolButton;

namespace kvs::views {

class MessageBar : public QFrame {
    Q_OBJECT
public:
    enum class Kind { Info, Warning, Error };

    explicit MessageBar(QWidget* parent = nullptr);

    void showMessage(Kind kind, const QString& text);
    void showError(const QString& text) { showMessage(Kind::Error, text); }
    void showInfo(const QString& text) { showMessage(Kind::Info, text); }
    void clearMessage();

    QString text() const;
    Kind kind() const { return m_kind; }
    bool hasMessage() const { return !isHidden(); }

signals:
    void dismissed();

private:
    void applyColours();

    QLabel* m_label = nullptr;
    QToolButton* m_close = nullptr;
    Kind m_kind = Kind::Info;
};

} // namespace kvs::views
