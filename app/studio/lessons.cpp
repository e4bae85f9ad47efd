// SPDX-License-Identifier: MIT
#include "lessons.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace kvs::studio {

namespace {

bool parseMode(const QString& name, views::AttentionView::Mode* mode) {
    using Mode = views::AttentionView::Mode;
    if (name == QLatin1String("side-by-side"))
        *mode = Mode::SideBySide;
    else if (name == QLatin1String("exact"))
        *mode = Mode::Exact;
    else if (name == QLatin1String("compressed"))
        *mode = Mode::Compressed;
    else if (name == QLatin1String("difference"))
        *mode = Mode::Difference;
    else
        return false;
    return true;
}

} // namespace

bool parseLesson(const QByteArray& json, const QString& source, Lesson* lesson, QString* error) {
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &parseError);
    const auto fail = [&](const QString& what) {
        if (error)
            *error = source + QStringLiteral(": ") + what;
        return false;
    };
    if (parseError.error != QJsonParseError::NoError)
        return fail(QStringLiteral("not valid JSON: %1").arg(parseError.errorString()));
    if (!doc.isObject())
        return fail(QStringLiteral("a lesson is a JSON object with \"title\" and \"steps\""));
    const QJsonObject root = doc.object();
    Lesson out;
    out.title = root.value(QLatin1String("title")).toString();
    const QJsonArray steps = root.value(QLatin1String("steps")).toArray();
    if (out.title.isEmpty() || steps.isEmpty())
        return fail(QStringLiteral("a lesson needs a \"title\" and at least one step"));
    for (int i = 0; i < steps.size(); ++i) {
        const QJsonObject s = steps[i].toObject();
        LessonStep step;
        step.id = s.value(QLatin1String("id")).toString();
        step.title = s.value(QLatin1String("title")).toString();
        step.text = s.value(QLatin1String("text")).toString();
        step.tryThis = s.value(QLatin1String("try")).toString();
        const QString where = QStringLiteral("step %1 (%2)").arg(i + 1).arg(step.id);
        if (step.id.isEmpty() || step.title.isEmpty() || step.text.isEmpty())
            return fail(where + QStringLiteral(": needs \"id\", \"title\" and \"text\""));
        const QJsonObject setup = s.value(QLatin1String("setup")).toObject();
        StudioSetup& u = step.setup;
        u.model = setup.value(QLatin1String("model")).toString();
        u.prompt = setup.value(QLatin1String("prompt")).toString();
        u.fitPrompt = setup.value(QLatin1String("fit_prompt")).toBool(false);
        for (const QJsonValue& v : setup.value(QLatin1String("schemes")).toArray())
            u.schemes << v.toString();
        u.focusedScheme = setup.value(QLatin1String("focus")).toInt(-1);
        u.view = setup.value(QLatin1String("view")).toString();
        u.layer = setup.value(QLatin1String("layer")).toInt(-1);
        u.head = setup.value(QLatin1String("head")).toInt(-1);
        if (setup.contains(QLatin1String("attention_mode"))) {
            views::AttentionView::Mode mode;
            if (!parseMode(setup.value(QLatin1String("attention_mode")).toString(), &mode))
                return fail(where + QStringLiteral(": attention_mode must be side-by-side, exact, "
                                                   "compressed or difference"));
            u.attentionMode = mode;
        }
        if (setup.contains(QLatin1String("colour_by_family")))
            u.colourByFamily = setup.value(QLatin1String("colour_by_family")).toBool();
        u.capacityPreset = setup.value(QLatin1String("capacity_preset")).toString();
        u.capacityContext =
            static_cast<long long>(setup.value(QLatin1String("capacity_context")).toDouble(0));
        out.steps << step;
    }
    *lesson = out;
    return true;
}

Lesson builtInTour(QString* error) {
    const QString path = QStringLiteral(":/kvs/lessons/tour.json");
    QFile file(path);
    Lesson lesson;
    QString message;
    if (!file.open(QIODevice::ReadOnly))
        message = path + QStringLiteral(": missing from the program's resources");
    else
        parseLesson(file.readAll(), path, &lesson, &message);
    if (error)
        *error = message;
    return lesson;
}

QString fillLessonText(QString text, const LessonFacts& facts) {
    const QString unknown = QStringLiteral("\u2026");
    const auto put = [&](const char* key, const QString& value) {
        text.replace(QLatin1String(key), value.isEmpty() ? unknown : value);
    };
    put("{model}", facts.model);
    put("{tokens}", facts.tokens);
    put("{kv_per_token}", facts.kvPerToken);
    put("{cache}", facts.cache);
    return text;
}

} // namespace kvs::studio
