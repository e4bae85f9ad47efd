// SPDX-License-Identifier: MIT
// The Explain panel's texts (assets/explain): where they are read from, how their placeholders
// are filled and paragraphs kept or dropped, and the glossary's entries. Text, not numbers: the
// panel hands in the values, already formatted.
#pragma once

#include <QMap>
#include <QSet>
#include <QString>
#include <QStringList>
#include <vector>

namespace kvs::studio::explain {

// The folder that overrides the compiled-in texts file by file, or "" when none: $KVS_EXPLAIN_DIR,
// else the source tree's assets/explain when the program runs from its build tree (a
// CMakeCache.txt above the program's folder), so that a corrected text shows on the next start.
QString overrideFolder();
// The text at `relative` ("views/attention.md"): the override folder's file, else the resource
// :/kvs/explain/<relative>; "" when neither has it. `from` receives the file or resource read.
QString readText(const QString& relative, QString* from = nullptr);
// The compiled-in text alone (tests compare the two).
QString resourceText(const QString& relative);

inline QString viewFile(const QString& view) {
    return QStringLiteral("views/%1.md").arg(view);
}
inline QString familyFile(const QString& family) {
    return QStringLiteral("schemes/%1.md").arg(family);
}
inline const QString kGlossaryFile = QStringLiteral("glossary.md");
inline const QString kStatusFile = QStringLiteral("status.md");

// What fills a text: placeholders {name} with formatted values, and flags for conditions.
struct Values {
    QMap<QString, QString> text; // name → value (Markdown-safe); a missing name has no value
    QSet<QString> flags;
    void set(const QString& name, const QString& value) {
        if (!value.isEmpty())
            text.insert(name, value);
    }
    void flag(const QString& name, bool on) {
        if (on)
            flags.insert(name);
    }
};

// Fills `markdown`: each paragraph (and each list item on its own) may begin with conditions
// {?flag} (shown only with the flag) and {!flag} (only without it); a unit that names a
// placeholder without a value is left out whole, so that a sentence never shows "{kept}".
QString fill(const QString& markdown, const Values& values);
// The placeholders `markdown` names (with or without values), for checks.
QStringList placeholders(const QString& markdown);
// Backslash-escapes Markdown's inline marks in a value shown as text.
QString escapeMarkdown(const QString& text);

// The glossary: "## Term" headings, each followed by its text. The id of an entry is its term
// in lower case with runs of other characters than letters and digits as one "-": texts link to
// it as [words](glossary:id).
struct GlossaryEntry {
    QString id;
    QString term;
    QString markdown; // the body, without the heading
};
std::vector<GlossaryEntry> parseGlossary(const QString& markdown);
QString glossaryId(const QString& term);
// Every glossary:id a text links to.
QStringList glossaryLinks(const QString& markdown);

// Numbers as the texts show them: a fraction as a percentage that never rounds to 0% or 100%
// unless it is exactly that ("0.42%", "2.3%", "30%", "99.6%"); "" for a non-finite value.
QString percent(double fraction);
// A count with the locale's grouping ("1,024").
QString count(long long n);
// A number to `significant` digits ("0.0078", "1.3"); "" when not finite.
QString number(double value, int significant = 2);
// Bytes as B, KiB, MiB or GiB.
QString bytes(double n);

} // namespace kvs::studio::explain
