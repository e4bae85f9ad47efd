// SPDX-License-Identifier: MIT
// Crash recovery: unsaved work goes to the window's recovery file, a clean close removes it, and
// the file of a window whose process is gone (a crash, a kill) is offered back at start-up —
// restored as unsaved work, or removed when declined; a running window's file is left alone.
#include "schemes_panel.h"
#include "studio_test_support.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>

using namespace kvs::studio;

namespace {

MainWindowOptions recoveryOptions(const QString& folder) {
    MainWindowOptions o = kvs::test::quietWindowOptions();
    o.recoveryFolder = folder;
    return o;
}

void writeRecovery(const QString& path, const QStringList& schemes, const QString& prompt) {
    SessionDocument d;
    d.schemes = schemes;
    d.prompt = prompt;
    QString error;
    QVERIFY2(writeSessionFile(
                 path, sessionJson(d, path), [](const QString&) { return false; }, &error),
             qPrintable(error));
}

} // namespace

class TestStudioRecovery : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { kvs::test::isolateSettings(); }

    void autosaveKeepsOnlyUnsavedWork() {
        kvs::test::TempDir dir;
        const QString folder = kvs::test::qpath(dir.path() / "recovery");
        MainWindow w(recoveryOptions(folder));
        QVERIFY(!w.autosaveNow()); // nothing unsaved
        QVERIFY(w.recoveryFile().isEmpty());
        w.schemesPanel()->setSettings({"select.h2o:keep=0.3"});
        w.setSessionModified(true);
        QVERIFY(w.autosaveNow());
        const QString file = w.recoveryFile();
        QCOMPARE(QFileInfo(file).fileName(),
                 QStringLiteral("session-%1.kvsession").arg(QCoreApplication::applicationPid()));
        SessionDocument d;
        QString error;
        QVERIFY2(readSessionDocument(file, &d, &error), qPrintable(error));
        QCOMPARE(d.schemes, w.schemesPanel()->settings());
        // Saved again (or undone to the saved state): the recovery file goes.
        w.setSessionModified(false);
        QVERIFY(!w.autosaveNow());
        QVERIFY(!QFile::exists(file));
        // A clean close removes it too.
        w.setSessionModified(true);
        QVERIFY(w.autosaveNow());
        QVERIFY(QFile::exists(file));
        QVERIFY(w.close());
        QVERIFY(!QFile::exists(file));
    }

    void crashedSessionIsOfferedBack() {
        kvs::test::TempDir dir;
        const QString folder = kvs::test::qpath(dir.path());
        // No process has this id (Linux pids stay below 2^22).
        const QString left = folder + QStringLiteral("/session-999999999.kvsession");
        writeRecovery(left, {"coreset.halving:keep=0.3"}, QStringLiteral("Vanity of vanities"));
        QStringList asked;
        MainWindowOptions o = recoveryOptions(folder);
        o.offerRecovery = [&](const QString& path) {
            asked << path;
            return true;
        };
        MainWindow w(o);
        w.offerRecoveredSessions();
        QCOMPARE(asked, QStringList{QFileInfo(left).absoluteFilePath()});
        QCOMPARE(w.schemesPanel()->settings(), QStringList{"coreset.halving:keep=0.3"});
        QCOMPARE(w.session()->prompt(), QStringLiteral("Vanity of vanities"));
        // Restored work is unsaved and has no file name: saving asks where.
        QVERIFY(w.isSessionModified());
        QVERIFY(w.sessionPath().isEmpty());
        QVERIFY(!QFile::exists(left));
    }

    void declinedSessionIsRemoved() {
        kvs::test::TempDir dir;
        const QString folder = kvs::test::qpath(dir.path());
        const QString left = folder + QStringLiteral("/session-999999998.kvsession");
        writeRecovery(left, {"select.uniform:keep=0.3"}, QStringLiteral("x"));
        MainWindowOptions o = recoveryOptions(folder);
        o.offerRecovery = [](const QString&) { return false; };
        MainWindow w(o);
        const QStringList before = w.schemesPanel()->settings();
        w.offerRecoveredSessions();
        QCOMPARE(w.schemesPanel()->settings(), before);
        QVERIFY(!QFile::exists(left));
    }

    void runningWindowsFileIsLeftAlone() {
        kvs::test::TempDir dir;
        const QString folder = kvs::test::qpath(dir.path());
        // This process is alive: its file belongs to a window still open.
        const QString mine =
            folder +
            QStringLiteral("/session-%1.kvsession").arg(QCoreApplication::applicationPid());
        writeRecovery(mine, {"select.uniform:keep=0.3"}, QStringLiteral("x"));
        int asked = 0;
        MainWindowOptions o = recoveryOptions(folder);
        o.offerRecovery = [&](const QString&) {
            ++asked;
            return true;
        };
        MainWindow w(o);
        w.offerRecoveredSessions();
        QCOMPARE(asked, 0);
        QVERIFY(QFile::exists(mine));
    }
};

QTEST_MAIN(TestStudioRecovery)
#include "test_studio_recovery.moc"
