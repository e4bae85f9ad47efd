// SPDX-License-Identifier: MIT
// The session document (.kvsession): versioned JSON read and written for the window and
// `kvstudio-cli render`.
#include "session_document.h"

#include "kvs/status.h"

#include "kvs/file_util.h"
#include "kvs/scheme.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <array>
#include <optional>

namespace kvs::studio {

namespace {

// The attention view's modes as a session names them (version 1 files may hold the index).
constexpr std::array<const char*, 4> kAttentionModes = {"side_by_side", "exact", "compressed",
                                                        "difference"};

// The Trade-offs metric menu of version-1 sessions, which stored the index into it.
constexpr std::array<views::Metric, 5> kVersion1Metrics = {
    views::Metric::ContextError, views::Metric::LogitError, views::Metric::NextTokenKl,
    views::Metric::PerplexityChange, views::Metric::MassLost};

// A view-state choice stored by name: `names[i]` is choice i. Earlier sessions stored an index,
// read through `byIndex` (choice i when empty). Nothing (absent) gives `fallback`; anything
// else, an error.
template <class Enum, std::size_t N, std::size_t M = 0>
std::optional<Enum> readChoice(const QJsonValue& value, const std::array<QString, N>& names,
                               Enum fallback, const std::array<Enum, M>& byIndex = {}) {
    if (value.isUndefined() || value.isNull())
        return fallback;
    if (value.isDouble()) {
        const double index = value.toDouble();
        const std::size_t count = M > 0 ? M : N;
        for (std::size_t i = 0; i < count; ++i)
            if (index == static_cast<double>(i))
                return M > 0 ? byIndex[i] : static_cast<Enum>(i);
        return std::nullopt;
    }
    for (std::size_t i = 0; i < N; ++i)
        if (value.toString() == names[i])
            return static_cast<Enum>(i);
    return std::nullopt;
}

std::array<QString, views::kMetricCount> metricNames() {
    std::array<QString, views::kMetricCount> names;
    for (int i = 0; i < views::kMetricCount; ++i)
        names[static_cast<std::size_t>(i)] = views::metricCsvColumn(static_cast<views::Metric>(i));
    return names;
}

constexpr std::array<const char*, 3> kColourScales = {"linear", "sqrt", "log"};

std::array<QString, kColourScales.size()> colourScaleNames() {
    std::array<QString, kColourScales.size()> names;
    for (std::size_t i = 0; i < kColourScales.size(); ++i)
        names[i] = QString::fromLatin1(kColourScales[i]);
    return names;
}

std::array<QString, kAttentionModes.size()> attentionModeNames() {
    std::array<QString, kAttentionModes.size()> names;
    for (std::size_t i = 0; i < kAttentionModes.size(); ++i)
        names[i] = QString::fromLatin1(kAttentionModes[i]);
    return names;
}

template <std::size_t N> QString joined(const std::array<QString, N>& names) {
    return QStringList(names.begin(), names.end()).join(QStringLiteral(", "));
}

} // namespace

QByteArray sessionJson(const SessionDocument& d, const QString& path) {
    QJsonObject o;
    o[QStringLiteral("kvstudio_session")] = kSessionVersion;
    o[QStringLiteral("version")] = QStringLiteral(KVS_VERSION);
    const QString& folder = d.modelFolder;
    o[QStringLiteral("model")] =
        folder.isEmpty() ? QString() : QFileInfo(path).absoluteDir().relativeFilePath(folder);
    o[QStringLiteral("model_absolute")] = folder;
    o[QStringLiteral("model_checkpoint")] = d.modelCheckpoint;
    o[QStringLiteral("prompt")] = d.prompt;
    o[QStringLiteral("context_tokens")] = d.contextTokens;
    o[QStringLiteral("schemes")] = QJsonArray::fromStringList(d.schemes);
    // The settings name only the parameters they set: the defaults they were written under.
    o[QStringLiteral("scheme_defaults")] = kSchemeDefaultsGeneration;
    QJsonObject view;
    view[QStringLiteral("tab")] = d.tab;
    view[QStringLiteral("focused_scheme")] = d.focusedScheme;
    view[QStringLiteral("layer")] = d.layer;
    view[QStringLiteral("head")] = d.head;
    view[QStringLiteral("attention_mode")] =
        attentionModeNames()[static_cast<std::size_t>(d.attentionMode)];
    view[QStringLiteral("attention_colour_scale")] =
        colourScaleNames()[static_cast<std::size_t>(d.attentionColourScale)];
    view[QStringLiteral("metric")] = views::metricCsvColumn(d.metric);
    view[QStringLiteral("theme")] = d.dark ? QStringLiteral("dark") : QStringLiteral("light");
    view[QStringLiteral("spectrum_head")] = QJsonArray{d.spectrumLayer, d.spectrumKvHead};
    view[QStringLiteral("colour_by")] =
        d.colourByFamily ? QStringLiteral("family") : QStringLiteral("scheme");
    view[QStringLiteral("streaming_curves")] = d.streamingCurves;
    o[QStringLiteral("view")] = view;
    o[QString::fromLatin1(kOwnerKey)] = QStringLiteral("session");
    return QJsonDocument(o).toJson(QJsonDocument::Indented);
}

bool readSessionDocument(const QString& path, SessionDocument* d, QString* error) {
    const auto fail = [error](const QString& message) {
        if (error)
            *error = message;
        return false;
    };
    // Through core's reader: a fifo or device is refused by its type (QFile would wait on a fifo
    // and read /dev/zero without end), the size is capped and deep nesting refused.
    QByteArray bytes;
    const auto read = catchErrors([&] {
        const std::string text = readFile(path.toStdString(), kMaxConfigBytes);
        checkJsonNesting(text, path.toStdString());
        bytes = QByteArray::fromStdString(text);
        return true;
    });
    if (!read.ok())
        return fail(
            QObject::tr("Cannot open the session: %1").arg(QString::fromStdString(read.message())));
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(bytes, &parseError);
    if (parseError.error != QJsonParseError::NoError)
        return fail(QObject::tr("The session %1 is not valid JSON: %2 (at byte %3)")
                        .arg(path, parseError.errorString())
                        .arg(parseError.offset));
    if (!doc.isObject())
        return fail(QObject::tr("The session %1 is a JSON %2, not an object: a session is an "
                                "object with \"kvstudio_session\": %3")
                        .arg(path, doc.isArray() ? QObject::tr("array") : QObject::tr("value"))
                        .arg(kSessionVersion));
    const QJsonObject o = doc.object();
    if (o.value(QStringLiteral("kvstudio_session")).toInt() != kSessionVersion)
        return fail(QObject::tr("The session %1 has no field kvstudio_session = %2 (not a KV "
                                "Studio session, or a newer one)")
                        .arg(path)
                        .arg(kSessionVersion));
    // Files without "scheme_defaults" were written before issue #15's common sinks and window:
    // their settings get the parameters whose default changed since, at the earlier value, so
    // that they keep their meaning.
    const int generation = o.value(QStringLiteral("scheme_defaults")).toInt(1);
    QStringList schemes;
    for (const QJsonValue& v : o.value(QStringLiteral("schemes")).toArray()) {
        const QString s = v.toString();
        if (!SchemeSetting::parse(s.toStdString()).ok())
            return fail(QObject::tr("The session %1 has an invalid scheme in field schemes: %2")
                            .arg(path, s));
        schemes << QString::fromStdString(pinEarlierDefaults(s.toStdString(), generation));
    }
    QString model = o.value(QStringLiteral("model")).toString();
    if (!model.isEmpty())
        model = QFileInfo(path).absoluteDir().absoluteFilePath(model);
    if (model.isEmpty() || !QFileInfo(model).isDir())
        model = o.value(QStringLiteral("model_absolute")).toString();
    const QJsonObject view = o.value(QStringLiteral("view")).toObject();
    d->modelFolder = model;
    d->modelCheckpoint = o.value(QStringLiteral("model_checkpoint")).toString();
    d->prompt = o.value(QStringLiteral("prompt")).toString();
    d->contextTokens = o.value(QStringLiteral("context_tokens")).toInt();
    d->schemes = schemes;
    d->tab = view.value(QStringLiteral("tab")).toInt();
    d->focusedScheme = view.value(QStringLiteral("focused_scheme")).toInt();
    d->layer = view.value(QStringLiteral("layer")).toInt();
    d->head = view.value(QStringLiteral("head")).toInt();
    const auto mode = readChoice(view.value(QStringLiteral("attention_mode")), attentionModeNames(),
                                 views::AttentionView::Mode::SideBySide);
    if (!mode)
        return fail(QObject::tr("The session %1 has an unknown view.attention_mode (one of %2)")
                        .arg(path, joined(attentionModeNames())));
    const auto metric = readChoice(view.value(QStringLiteral("metric")), metricNames(),
                                   views::Metric::NextTokenKl, kVersion1Metrics);
    if (!metric)
        return fail(QObject::tr("The session %1 has an unknown view.metric (one of %2)")
                        .arg(path, joined(metricNames())));
    // Absent in files written before the colour scale existed: linear, as they were drawn.
    const auto scale = readChoice(view.value(QStringLiteral("attention_colour_scale")),
                                  colourScaleNames(), views::AttentionView::ColourScale::Linear);
    if (!scale || view.value(QStringLiteral("attention_colour_scale")).isDouble())
        return fail(
            QObject::tr("The session %1 has an unknown view.attention_colour_scale (one of %2)")
                .arg(path, joined(colourScaleNames())));
    d->attentionColourScale = *scale;
    d->attentionMode = *mode;
    d->metric = *metric;
    d->dark = view.value(QStringLiteral("theme")).toString() == QLatin1String("dark");
    const QString colourBy =
        view.value(QStringLiteral("colour_by")).toString(QStringLiteral("scheme"));
    if (colourBy != QLatin1String("scheme") && colourBy != QLatin1String("family"))
        return fail(
            QObject::tr("The session %1 has an unknown view.colour_by '%2' (scheme or family)")
                .arg(path, colourBy));
    d->colourByFamily = colourBy == QLatin1String("family");
    // Absent in files written before the streaming curves existed: off, as they were drawn.
    const QJsonValue streaming = view.value(QStringLiteral("streaming_curves"));
    if (!streaming.isUndefined() && !streaming.isBool())
        return fail(QObject::tr("The session %1 has a view.streaming_curves that is not true or "
                                "false")
                        .arg(path));
    d->streamingCurves = streaming.toBool(false);
    const QJsonArray spectrumHead = view.value(QStringLiteral("spectrum_head")).toArray();
    d->spectrumLayer = spectrumHead.size() == 2 ? spectrumHead[0].toInt(-1) : -1;
    d->spectrumKvHead = spectrumHead.size() == 2 ? spectrumHead[1].toInt(-1) : -1;
    return true;
}

bool writeSessionFile(const QString& path, const QByteArray& bytes,
                      const ConfirmReplace& confirmReplace, QString* error) {
    const auto written = catchErrors([&] {
        writeStudioFile(path, bytes, "session", confirmReplace);
        return true;
    });
    if (!written.ok() && error)
        *error = QObject::tr("Cannot write the session %1: %2")
                     .arg(path, QString::fromStdString(written.message()));
    return written.ok();
}

} // namespace kvs::studio
