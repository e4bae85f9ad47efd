// SPDX-License-Identifier: MIT
// The guided tour's dock: the step's title and text, the one thing to try, "Step n of N", and
// Back / Next / Restart. Showing a step asks the window to set up its views (stepShown).
#pragma once

#include "lessons.h"

#include <QWidget>

class QLabel;
class QProgressBar;
class QPushButton;
class QTextBrowser;

namespace kvs::studio {

class LessonPanel : public QWidget {
    Q_OBJECT
public:
    explicit LessonPanel(QWidget* parent = nullptr);

    void setLesson(const Lesson& lesson);
    const Lesson& lesson() const { return m_lesson; }
    int stepCount() const { return static_cast<int>(m_lesson.steps.size()); }
    int currentStep() const { return m_step; }
    // Shows step `index` (clamped) and emits stepShown.
    void showStep(int index);
    void next() { showStep(m_step + 1); }
    void back() { showStep(m_step - 1); }
    void restart() { showStep(0); }
    // Fills the placeholders of the step on screen again (the model or prompt changed).
    void setFacts(const LessonFacts& facts);
    QString text() const;         // the step as plain text, placeholders filled
    QString progressText() const; // "Step 3 of 9"

signals:
    void stepShown(int index, const kvs::studio::StudioSetup& setup);
    void closeRequested();

private:
    void render();

    Lesson m_lesson;
    LessonFacts m_facts;
    int m_step = -1;
    QLabel* m_title = nullptr;
    QLabel* m_progressLabel = nullptr;
    QProgressBar* m_progress = nullptr;
    QTextBrowser* m_text = nullptr;
    QPushButton* m_back = nullptr;
    QPushButton* m_next = nullptr;
    QPushButton* m_restart = nullptr;
};

} // namespace kvs::studio
