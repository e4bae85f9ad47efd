// SPDX-License-Identifier: MIT
// The Explain panel's texts: reading them (override folder, then resources), filling their
// placeholders paragraph by paragraph, the glossary's entries, and number formatting.
#include "explain_texts.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLocale>
#include <QRegularExpression>
#include <cmath>
#include <filesystem>
#include <optional>

// The source tree's assets/ folder (app/CMakeLists.txt defines it, as for startup.cpp).
#ifndef KVS_SOURCE_ASSETS_DIR
#define KVS_SOURCE_ASSETS_DIR ""
#endif

namespace kvs::studio::explain {

namespace {

QString sourceExplainDir() {
    QString assets = QString::fromUtf8(KVS_SOURCE_ASSETS_DIR);
    if (assets.isEmpty()) {
        const std::filesystem::path self(__FILE__);
        if (!self.is_absolute())
            return {};
        assets = QString::fromStdString(
            (self.parent_path().parent_path().parent_path() / "assets").string());
    }
    return QDir(assets).filePath(QStringLiteral("explain"));
}

QString readFile(const QString& path) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    return QString::fromUtf8(file.readAll());
}

bool isListItem(const QString& line) {
    static const QRegularExpression item(QStringLiteral(R"(^\s*(?:[-*+]|\d+\.)\s+)"));
    return item.match(line).hasMatch();
}

// One paragraph or list item: its conditions checked and removed, its placeholders filled; none
// when a condition fails or a placeholder has no value.
std::optional<QString> fillUnit(QString unit, const Values& values) {
    static const QRegularExpression conditions(
        QStringLiteral(R"(^(\s*(?:(?:[-*+]|\d+\.)\s+)?)((?:\{[?!][a-z0-9_]+\}\s*)+))"));
    static const QRegularExpression condition(QStringLiteral(R"(\{([?!])([a-z0-9_]+)\})"));
    static const QRegularExpression placeholder(QStringLiteral(R"(\{([a-z0-9_]+)\})"));
    if (const auto m = conditions.match(unit); m.hasMatch()) {
        for (auto it = condition.globalMatch(m.captured(2)); it.hasNext();) {
            const auto c = it.next();
            const bool on = values.flags.contains(c.captured(2));
            if (on != (c.captured(1) == QLatin1String("?")))
                return std::nullopt;
        }
        unit = m.captured(1) + unit.mid(m.capturedEnd(2));
    }
    QString out;
    qsizetype at = 0;
    for (auto it = placeholder.globalMatch(unit); it.hasNext();) {
        const auto p = it.next();
        const auto value = values.text.constFind(p.captured(1));
        if (value == values.text.cend())
            return std::nullopt;
        out += unit.mid(at, p.capturedStart() - at) + *value;
        at = p.capturedEnd();
    }
    out += unit.mid(at);
    if (out.trimmed().isEmpty())
        return std::nullopt;
    return out;
}

QString withoutComments(const QString& markdown) {
    static const QRegularExpression comment(QStringLiteral(R"(<!--.*?-->\s*)"),
                                            QRegularExpression::DotMatchesEverythingOption);
    return QString(markdown).remove(comment);
}

} // namespace

QString overrideFolder() {
    const QString env = qEnvironmentVariable("KVS_EXPLAIN_DIR");
    if (!env.isEmpty())
        return env;
    // Run from the build tree (build/app/kvstudio): the source tree's texts, as edited.
    const QString app = QCoreApplication::applicationDirPath();
    if (!app.isEmpty() && QFileInfo::exists(app + QStringLiteral("/../CMakeCache.txt"))) {
        const QString source = sourceExplainDir();
        if (!source.isEmpty() && QFileInfo(source).isDir())
            return source;
    }
    return {};
}

QString resourceText(const QString& relative) {
    return readFile(QStringLiteral(":/kvs/explain/") + relative);
}

QString readText(const QString& relative, QString* from) {
    if (const QString folder = overrideFolder(); !folder.isEmpty()) {
        const QString path = QDir(folder).filePath(relative);
        if (QFileInfo(path).isFile()) {
            if (from)
                *from = path;
            return readFile(path);
        }
    }
    if (from)
        *from = QStringLiteral(":/kvs/explain/") + relative;
    return resourceText(relative);
}

QString fill(const QString& markdown, const Values& values) {
    static const QRegularExpression blank(QStringLiteral(R"(\n[ \t]*\n)"));
    QStringList out;
    for (const QString& block : withoutComments(markdown).split(blank)) {
        std::vector<QStringList> units;
        for (const QString& line : block.split(QLatin1Char('\n'))) {
            if (units.empty() || isListItem(line))
                units.emplace_back();
            units.back() << line;
        }
        QStringList kept;
        for (const QStringList& unit : units)
            if (auto filled = fillUnit(unit.join(QLatin1Char('\n')), values))
                kept << *filled;
        if (!kept.isEmpty())
            out << kept.join(QLatin1Char('\n'));
    }
    return out.join(QStringLiteral("\n\n"));
}

QStringList placeholders(const QString& markdown) {
    static const QRegularExpression placeholder(QStringLiteral(R"(\{[?!]?([a-z0-9_]+)\})"));
    QStringList names;
    for (auto it = placeholder.globalMatch(markdown); it.hasNext();)
        names << it.next().captured(1);
    names.removeDuplicates();
    return names;
}

QString escapeMarkdown(const QString& text) {
    QString out;
    out.reserve(text.size());
    for (const QChar c : text) {
        if (QStringLiteral("\\`*_[]<>#|{}").contains(c))
            out += QLatin1Char('\\');
        out += c;
    }
    return out;
}

QString glossaryId(const QString& term) {
    QString id;
    bool dash = false;
    for (const QChar c : term.toLower()) {
        if (c.isLetterOrNumber()) {
            if (dash && !id.isEmpty())
                id += QLatin1Char('-');
            id += c;
            dash = false;
        } else {
            dash = true;
        }
    }
    return id;
}

std::vector<GlossaryEntry> parseGlossary(const QString& markdown) {
    std::vector<GlossaryEntry> entries;
    QStringList body;
    const auto finish = [&] {
        if (!entries.empty())
            entries.back().markdown = body.join(QLatin1Char('\n')).trimmed();
        body.clear();
    };
    for (const QString& line : withoutComments(markdown).split(QLatin1Char('\n'))) {
        if (line.startsWith(QLatin1String("## "))) {
            finish();
            const QString term = line.mid(3).trimmed();
            entries.push_back({glossaryId(term), term, {}});
        } else if (!entries.empty()) {
            body << line;
        }
    }
    finish();
    return entries;
}

QStringList glossaryLinks(const QString& markdown) {
    static const QRegularExpression link(QStringLiteral(R"(\]\(glossary:([^)\s]+)\))"));
    QStringList ids;
    for (auto it = link.globalMatch(withoutComments(markdown)); it.hasNext();)
        ids << it.next().captured(1);
    ids.removeDuplicates();
    return ids;
}

QString percent(double fraction) {
    if (!std::isfinite(fraction))
        return {};
    const double v = 100.0 * fraction;
    const QLocale locale;
    if (v == 0.0 || v == 100.0)
        return locale.toString(v, 'f', 0) + QLatin1Char('%');
    if (std::abs(v) < 0.01)
        return (v > 0 ? QStringLiteral("<") : QStringLiteral(">-")) + locale.toString(0.01) +
               QLatin1Char('%');
    if (std::abs(v) < 1.0)
        return locale.toString(v, 'g', 2) + QLatin1Char('%');
    // Enough decimals that a value close to 100% does not read as all of it.
    int decimals = std::abs(v) >= 10.0 ? 0 : 1;
    const auto rounded = [&](int d) { return std::round(v * std::pow(10.0, d)) / std::pow(10, d); };
    while (decimals < 4 && std::abs(rounded(decimals)) == 100.0)
        ++decimals;
    return locale.toString(v, 'f', decimals) + QLatin1Char('%');
}

QString count(long long n) {
    return QLocale().toString(n);
}

QString number(double value, int significant) {
    if (!std::isfinite(value))
        return {};
    return QLocale().toString(value, 'g', significant);
}

QString bytes(double n) {
    if (!std::isfinite(n) || n < 0)
        return {};
    const QLocale locale;
    if (n < 1024)
        return locale.toString(static_cast<long long>(n)) + QStringLiteral(" B");
    static const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    int u = -1;
    while (n >= 1024 && u < 3) {
        n /= 1024;
        ++u;
    }
    return locale.toString(n, 'f', n < 10 ? 2 : 1) + QLatin1Char(' ') + QLatin1String(units[u]);
}

} // namespace kvs::studio::explain
