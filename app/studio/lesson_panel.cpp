// SPDX-License-Identifier: MIT
#include "lesson_panel.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QTextBrowser>
#include <QTextDocument>
#include <QVBoxLayout>

namespace kvs::studio {

LessonPanel::LessonPanel(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("lessonPanel"));
    m_title = new QLabel(this);
    m_title->setObjectName(QStringLiteral("lessonTitle"));
    m_title->setWordWrap(true);
    QFont f = m_title->font();
    f.setBold(true);
    f.setPointSizeF(f.pointSizeF() * 1.15);
    m_title->setFont(f);

    m_progressLabel = new QLabel(this);
    m_progressLabel->setObjectName(QStringLiteral("lessonProgressLabel"));
    m_progress = new QProgressBar(this);
    m_progress->setObjectName(QStringLiteral("lessonProgress"));
    m_progress->setTextVisible(false);
    m_progress->setMaximumHeight(8);
    m_progress->setToolTip(tr("How far through the tour you are"));

    m_text = new QTextBrowser(this);
    m_text->setObjectName(QStringLiteral("lessonText"));
    m_text->setOpenExternalLinks(false);
    m_text->setFrameShape(QFrame::NoFrame);

    m_back = new QPushButton(tr("\u2190 Back"), this);
    m_back->setObjectName(QStringLiteral("lessonBack"));
    m_back->setToolTip(tr("The previous step, with its views set up again"));
    m_next = new QPushButton(tr("Next \u2192"), this);
    m_next->setObjectName(QStringLiteral("lessonNext"));
    m_next->setToolTip(tr("The next step: it sets up the views it talks about"));
    m_next->setDefault(true);
    m_restart = new QPushButton(tr("Restart"), this);
    m_restart->setObjectName(QStringLiteral("lessonRestart"));
    m_restart->setToolTip(tr("Back to the first step"));
    connect(m_back, &QPushButton::clicked, this, [this] { back(); });
    connect(m_next, &QPushButton::clicked, this, [this] {
        if (m_step + 1 >= stepCount())
            emit closeRequested();
        else
            next();
    });
    connect(m_restart, &QPushButton::clicked, this, [this] { restart(); });

    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_restart);
    buttons->addStretch(1);
    buttons->addWidget(m_back);
    buttons->addWidget(m_next);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addWidget(m_progressLabel);
    layout->addWidget(m_progress);
    layout->addWidget(m_title);
    layout->addWidget(m_text, 1);
    layout->addLayout(buttons);
}

void LessonPanel::setLesson(const Lesson& lesson) {
    m_lesson = lesson;
    m_step = -1;
    m_progress->setRange(0, std::max(1, stepCount()));
    render();
}

void LessonPanel::showStep(int index) {
    if (m_lesson.steps.isEmpty())
        return;
    m_step = std::clamp(index, 0, stepCount() - 1);
    render();
    emit stepShown(m_step, m_lesson.steps[m_step].setup);
}

void LessonPanel::setFacts(const LessonFacts& facts) {
    m_facts = facts;
    render();
}

QString LessonPanel::text() const {
    return m_text->toPlainText();
}

QString LessonPanel::progressText() const {
    return m_progressLabel->text();
}

void LessonPanel::render() {
    if (m_step < 0 || m_step >= stepCount()) {
        m_title->setText(m_lesson.title);
        m_progressLabel->clear();
        m_text->clear();
        m_back->setEnabled(false);
        return;
    }
    const LessonStep& step = m_lesson.steps[m_step];
    m_title->setText(step.title);
    m_progressLabel->setText(
        tr("%1 \u2014 step %2 of %3").arg(m_lesson.title).arg(m_step + 1).arg(stepCount()));
    m_progress->setValue(m_step + 1);
    QString markdown = fillLessonText(step.text, m_facts);
    if (!step.tryThis.isEmpty())
        markdown +=
            QStringLiteral("\n\n---\n\n**Try this:** ") + fillLessonText(step.tryThis, m_facts);
    m_text->setMarkdown(markdown);
    m_back->setEnabled(m_step > 0);
    m_next->setText(m_step + 1 >= stepCount() ? tr("Finish") : tr("Next \u2192"));
}

} // namespace kvs::studio
