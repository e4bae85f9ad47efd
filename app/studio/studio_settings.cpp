// SPDX-License-Identifier: MIT
// Where the studio keeps its settings (QSettings "KVStudio"/"kvstudio") and the recent-models list.
#include "studio_settings.h"

#include <QDir>
#include <QFileInfo>

namespace kvs::studio {

std::unique_ptr<QSettings> openSettings() {
    return std::make_unique<QSettings>(QString::fromLatin1(kOrganization),
                                       QString::fromLatin1(kApplication));
}

namespace {

// A most-recent-first list of paths under `key`: entries that no longer exist (as a folder or
// as a file, per `folders`) and duplicates are pruned, at most `max` kept.
QStringList loadRecent(QSettings& settings, const char* key, bool folders, int max) {
    const QStringList stored = settings.value(QLatin1String(key)).toStringList();
    QStringList kept;
    for (const QString& path : stored) {
        const QFileInfo info(path);
        if ((folders ? info.isDir() : info.isFile()) && !kept.contains(path) && kept.size() < max)
            kept << path;
    }
    if (kept != stored)
        settings.setValue(QLatin1String(key), kept);
    return kept;
}

void addRecent(QSettings& settings, const char* key, bool folders, int max, const QString& path) {
    const QString clean = QDir::cleanPath(QFileInfo(path).absoluteFilePath());
    QStringList list = loadRecent(settings, key, folders, max);
    list.removeAll(clean);
    list.prepend(clean);
    while (list.size() > max)
        list.removeLast();
    settings.setValue(QLatin1String(key), list);
}

} // namespace

QStringList RecentModels::load(QSettings& settings) {
    return loadRecent(settings, kKeyRecentModels, true, kMax);
}

void RecentModels::add(QSettings& settings, const QString& folder) {
    addRecent(settings, kKeyRecentModels, true, kMax, folder);
}

QStringList RecentSessions::load(QSettings& settings) {
    return loadRecent(settings, kKeyRecentSessions, false, kMax);
}

void RecentSessions::add(QSettings& settings, const QString& file) {
    addRecent(settings, kKeyRecentSessions, false, kMax, file);
}

void RecentModels::clear(QSettings& settings) {
    settings.remove(QLatin1String(kKeyRecentModels));
}

} // namespace kvs::studio
