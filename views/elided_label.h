// SPDX-License-Identifier: MIT
// A one-line label that elides its text in the middle to fit and shows the full text as tooltip.
#pragma once

#include <QLabel>
#include <QString>

namespace kvs::views {

class ElidedLabel : public QLabel {
    Q_OBJECT
public:
    explicit ElidedLabel(QWidget* parent = nullptr);

    void setFullText(const QString& text);
    QString fullText() const { return m_full; }

    QSize minimumSizeHint() const override;
    QSize sizeHint() const override;

protected:
    void resizeEvent(QResizeEvent* event) override;
    void changeEvent(QEvent* event) override;

private:
    void refresh();
    QString m_full;
};

} // namespace kvs::views
