// SPDX-License-Identifier: MIT
// The guided tour: lessons as data (assets/lessons/tour.json, compiled in), each step a text, one
// thing to try, and the studio state it sets up — a model, schemes, a view and its selection —
// which the window applies (MainWindow::applyStudioSetup), so a step shows the real views.
#pragma once

#include "attention_view.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>
#include <optional>

namespace kvs::studio {

// A state of the studio to set up; unset fields keep what the window has.
struct StudioSetup {
    QString model;          // "bundled:NAME" (a bundled model), a folder, or "" (keep)
    QString prompt;         // "default" (the start-up prompt), other text, or "" (keep)
    bool fitPrompt = false; // keep only the prompt tokens the model takes (a short context)
    QStringList schemes;    // scheme settings, "id:key=value,..."; empty: keep
    int focusedScheme = -1; // the Schemes dock row to focus; -1: keep
    QString view;           // a registered view's name; "": keep
    int layer = -1;         // the Attention view's selection; -1: keep
    int head = -1;
    std::optional<views::AttentionView::Mode> attentionMode;
    std::optional<bool> colourByFamily; // the Trade-offs chart
    QString capacityPreset; // the Capacity tab's model: a preset id, "loaded", or "" (keep)
    long long capacityContext = 0;
};

struct LessonStep {
    QString id;
    QString title;
    QString text;    // Markdown; {model}, {tokens}, {kv_per_token}, {cache} are filled in
    QString tryThis; // Markdown: the one action the step invites
    StudioSetup setup;
};

struct Lesson {
    QString title;
    QList<LessonStep> steps;
};

// Parses a lesson file; false with `error` naming `source` and the step or field that is wrong.
bool parseLesson(const QByteArray& json, const QString& source, Lesson* lesson, QString* error);
// The built-in tour (":/kvs/lessons/tour.json"); a broken resource is a programming error that
// the tests catch, reported in `error`.
Lesson builtInTour(QString* error = nullptr);

// The values a lesson's placeholders take; a missing one reads "…" rather than "{tokens}".
struct LessonFacts {
    QString model;
    QString tokens;
    QString kvPerToken;
    QString cache;
};
QString fillLessonText(QString text, const LessonFacts& facts);

} // namespace kvs::studio
