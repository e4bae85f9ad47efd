// SPDX-License-Identifier: MIT
// Provenance names the weights by their content: the session's SHA-256 of config.json and the
// checkpoint equals sha256sum's over the same bytes, and the results made once it is known (and
// so every export's sidecar) carry it; before, they say it is pending.
#include "session.h"
#include "startup.h"
#include "studio_test_support.h"

#include <QProcess>

using namespace kvs::studio;
namespace fs = std::filesystem;

class TestStudioProvenance : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { kvs::test::isolateSettings(); }

    void weightsNamedByTheirContent() {
        const fs::path model =
            kvs::test::sourceTestsDir().parent_path() / "assets" / "models" / "default";
        if (!fs::is_directory(model))
            QFAIL("the bundled model assets/models/default is missing");
        MainWindow w(kvs::test::quietWindowOptions());
        w.openModel(kvs::test::qpath(model));
        w.setPrompt(QStringLiteral("In the beginning God created the heaven and the earth."));
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->modelContentHash().isEmpty(),
                                 kvs::test::kStudioTimeoutMs);
        // The reference: coreutils' sha256sum over config.json then the checkpoint.
        QProcess sum;
        sum.setWorkingDirectory(kvs::test::qpath(model));
        sum.start(QStringLiteral("sh"),
                  {QStringLiteral("-c"),
                   QStringLiteral("cat config.json model.safetensors | sha256sum")});
        QVERIFY(sum.waitForFinished(30000));
        const QString expected =
            QString::fromLatin1(sum.readAllStandardOutput()).section(' ', 0, 0);
        QCOMPARE(expected.size(), 64);
        QCOMPARE(w.session()->modelContentHash(), QStringLiteral("sha256:") + expected);

        w.session()->setSchemes({QStringLiteral("select.snapkv:keep=0.5")});
        w.session()->recomputeNow();
        QVERIFY(kvs::test::waitForAnalysis(w, [](const kvs::views::AnalysisData& a) {
            return a.provenance.modelHash.startsWith(QLatin1String("sha256:"));
        }));
        QCOMPARE(w.provenance().modelHash, QStringLiteral("sha256:") + expected);

        // Another model: the old hash goes at once, the new one follows.
        w.session()->closeModel();
        QVERIFY(w.session()->modelContentHash().isEmpty());
    }
};

QTEST_MAIN(TestStudioProvenance)
#include "test_studio_provenance.moc"
