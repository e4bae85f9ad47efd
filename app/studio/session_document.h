// SPDX-License-Identifier: MIT
// The session document (.kvsession): versioned JSON with the model (relative and absolute path),
// the prompt, the split, the schemes and the view state. The window and `kvstudio-cli render`
// read and write sessions through it.
#pragma once

#include "attention_view.h"
#include "studio_files.h"

#include <QByteArray>
#include <QString>
#include <QStringList>

namespace kvs::studio {

inline constexpr int kSessionVersion = 1;

struct SessionDocument {
    QString modelFolder; // absolute; "" for none. Read: the relative path when it exists.
    QString modelCheckpoint;
    QString prompt;
    int contextTokens = 0;
    // As written (only the parameters set); read from a file of earlier scheme defaults
    // ("scheme_defaults" absent or below kvs::kSchemeDefaultsGeneration) with the parameters
    // whose default changed pinned at their earlier values (kvs::pinEarlierDefaults).
    QStringList schemes;
    // View state.
    int tab = 0;
    int focusedScheme = 0;
    int layer = 0;
    int head = 0;
    views::AttentionView::Mode attentionMode = views::AttentionView::Mode::SideBySide;
    views::AttentionView::ColourScale attentionColourScale =
        views::AttentionView::ColourScale::Linear;
    views::Metric metric = views::Metric::NextTokenKl;
    bool colourByFamily = false; // the Trade-offs chart's colouring
    bool streamingCurves =
        false;              // the Trade-offs chart's streaming curves (Session::setStreamingCurves)
    int spectrumLayer = -1; // the Cache view's chosen head (-1: none)
    int spectrumKvHead = -1;
    bool dark = false;
};

// The document as the JSON file `path` holds it (the model relative to the file's folder).
QByteArray sessionJson(const SessionDocument& document, const QString& path);
// Reads `path`; false with `error` naming the file and the field when it is not a valid session.
bool readSessionDocument(const QString& path, SessionDocument* document, QString* error);
// Writes `bytes` to `path` atomically (studio_files.h: a foreign file only when confirmReplace
// agrees); false with `error` naming the file.
bool writeSessionFile(const QString& path, const QByteArray& bytes,
                      const ConfirmReplace& confirmReplace, QString* error);

} // namespace kvs::studio
