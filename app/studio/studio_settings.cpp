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

QStringList RecentModels::load(QSettings& settings) {
    const QStringList stored = settings.value(QLatin1String(kKeyRecentModels)).toStringList();
    QStringList kept;
    for (const QString& folder : stored)
        if (QFileInfo(folder).isDir() && !kept.contains(folder) && kept.size() < kMax)
            kept << folder;
    if (kept != stored)
        settings.setValue(QLatin1String(kKeyRecentModels), kept);
    return kept;
}

void RecentModels::add(QSettings& settings, const QString& folder) {
    const QString clean = QDir::cleanPath(QFileInfo(folder).absoluteFilePath());
    QStringList list = load(settings);
    list.removeAll(clean);
    list.prepend(clean);
    while (list.size() > kMax)
        list.removeLast();
    settings.setValue(QLatin1String(kKeyRecentModels), list);
}

void RecentModels::clear(QSettings& settings) {
    settings.remove(QLatin1String(kKeyRecentModels));
}

} // namespace kvs::studio
