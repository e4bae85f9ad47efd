// SPDX-License-Identifier: MIT
// Crash recovery: a window with unsaved changes writes them to its own recovery file every few
// seconds (atomically, through the session writer); a clean close removes it. At start-up the
// files of windows whose process is gone are offered back: restored, the session is unsaved
// (marked modified) so the user still chooses where it goes.
#include "main_window.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QLocale>
#include <QMessageBox>
#include <QStandardPaths>
#include <QTimer>
#include <QUndoStack>
#include <unistd.h>

namespace kvs::studio {

namespace {

// "session-<pid>.kvsession": the process that writes it; its file is left alone while it runs.
qint64 writerPid(const QString& fileName) {
    const QString base = QFileInfo(fileName).completeBaseName();
    return base.startsWith(QLatin1String("session-")) ? base.mid(8).toLongLong() : -1;
}

bool processAlive(qint64 pid) {
    return pid > 0 && (pid == QCoreApplication::applicationPid() ||
                       QFileInfo::exists(QStringLiteral("/proc/%1").arg(pid)));
}

} // namespace

QString MainWindow::recoveryFolder() const {
    if (!m_options.recoveryFolder.isEmpty())
        return m_options.recoveryFolder;
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) +
           QStringLiteral("/recovery");
}

bool MainWindow::autosaveNow() {
    if (!isSessionModified()) {
        removeRecoveryFile(); // saved (or undone to the saved state) since the last autosave
        return false;
    }
    const QString folder = recoveryFolder();
    if (!QDir().mkpath(folder))
        return false;
    const QString path = QDir(folder).filePath(
        QStringLiteral("session-%1.kvsession").arg(QCoreApplication::applicationPid()));
    QString error;
    // The recovery file is the studio's own session file: the writer replaces it atomically.
    if (!writeSessionFile(
            path, sessionJson(currentDocument(), path), [](const QString&) { return false; },
            &error)) {
        qWarning("kvstudio: could not write the recovery file: %s", qPrintable(error));
        return false;
    }
    m_recoveryFile = path;
    return true;
}

void MainWindow::removeRecoveryFile() {
    if (!m_recoveryFile.isEmpty())
        QFile::remove(m_recoveryFile);
    m_recoveryFile.clear();
}

void MainWindow::offerRecoveredSessions() {
    const QDir folder(recoveryFolder());
    const QFileInfoList files =
        folder.entryInfoList({QStringLiteral("session-*.kvsession")}, QDir::Files, QDir::Time);
    for (const QFileInfo& file : files) {
        if (processAlive(writerPid(file.fileName())))
            continue; // another window's, still running
        bool restore = false;
        if (m_options.offerRecovery) {
            restore = m_options.offerRecovery(file.absoluteFilePath());
        } else {
            restore = QMessageBox::question(
                          this, tr("Restore unsaved session?"),
                          tr("KV Studio did not close normally. Restore the unsaved session it "
                             "kept at %1?")
                              .arg(QLocale().toString(file.lastModified(), QLocale::ShortFormat)),
                          QMessageBox::Yes | QMessageBox::No, QMessageBox::Yes) == QMessageBox::Yes;
        }
        if (restore) {
            QString error;
            if (!openSession(file.absoluteFilePath(), &error)) {
                showInfo(tr("The unsaved session could not be restored: %1").arg(error));
            } else {
                // Not a file the user chose: the restored work is unsaved, under no name.
                m_sessionPath.clear();
                setSessionModified(true);
                updateTitle();
            }
        }
        QFile::remove(file.absoluteFilePath());
        break; // one session per window; older leftovers stay for the next start
    }
}

void MainWindow::startAutosave() {
    if (m_options.autosaveSeconds <= 0)
        return;
    m_autosave = new QTimer(this);
    m_autosave->setInterval(m_options.autosaveSeconds * 1000);
    connect(m_autosave, &QTimer::timeout, this, [this] { autosaveNow(); });
    m_autosave->start();
}

} // namespace kvs::studio
