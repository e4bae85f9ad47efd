// SPDX-License-Identifier: MIT
// Where the studio keeps its settings (QSettings "KVStudio"/"kvstudio") and the recent-models list.
#pragma once

#include <QSettings>
#include <QString>
#include <QStringList>
#include <memory>

namespace kvs::studio {

inline constexpr char kOrganization[] = "KVStudio";
inline constexpr char kApplication[] = "kvstudio";

// Settings keys.
inline constexpr char kKeyGeometry[] = "window/geometry";
inline constexpr char kKeyState[] = "window/state";
inline constexpr char kKeySetupSplitter[] = "window/setupSplitter";
inline constexpr char kKeyRecentModels[] = "models/recent";
inline constexpr char kKeyLastOpenDir[] = "models/lastOpenDir";
inline constexpr char kKeyRecentSessions[] = "session/recent";

// The studio's settings store (the platform's native format, per user).
std::unique_ptr<QSettings> openSettings();

// Most recently opened model folders, newest first, at most kMax, folders that vanished pruned.
class RecentModels {
public:
    static constexpr int kMax = 10;
    static QStringList load(QSettings& settings);
    static void add(QSettings& settings, const QString& folder);
    static void clear(QSettings& settings);
};

// Most recently opened or saved session files, newest first, at most kMax, vanished files pruned.
class RecentSessions {
public:
    static constexpr int kMax = 10;
    static QStringList load(QSettings& settings);
    static void add(QSettings& settings, const QString& file);
};

} // namespace kvs::studio
