// SPDX-License-Identifier: MIT
// `kvstudio-cli report SESSION --out REPORT.pdf` (#15): one PDF with the settings and the results
// table, then the charts two to a page. Read back with poppler's pdftotext (Debian's
// poppler-utils, which tools/kvs installs): the page count, the schemes, a figure equal to the
// analysis's own, the model hash; a file the studio did not write is refused without --force;
// usage errors exit 2 before any work.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs_test.h"
#include "report_command.h"
#include "session_document.h"
#include "studio_test_support.h"

#include "kvs/output_writer.h"
#include "kvs/scheme.h"
#include "kvs/synthetic_model.h"

#include <QElapsedTimer>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QStandardPaths>
#include <QTest>

using namespace kvs::studio;
namespace fs = std::filesystem;
using kvs::test::CliRun;
using kvs::test::qpath;
using kvs::test::run;

namespace {

const QString kPrompt = QStringLiteral("In the beginning God created the heaven and the earth. "
                                       "And the earth was without form, and void.");
const QStringList kSchemes = {QStringLiteral("select.uniform:keep=0.5"),
                              QStringLiteral("codec.uniform:bits=4,group=16")};

// The PDF's text as poppler reads it, pages separated by form feeds. A missing pdftotext fails
// the test: the report's contents would go unchecked.
QString pdfText(const fs::path& pdf) {
    const QString tool = QStandardPaths::findExecutable(QStringLiteral("pdftotext"));
    if (tool.isEmpty()) {
        QTest::qFail("pdftotext is missing: install poppler-utils (tools/kvs installs it)",
                     __FILE__, __LINE__);
        return {};
    }
    QProcess p;
    p.start(tool, {QStringLiteral("-layout"), qpath(pdf), QStringLiteral("-")});
    if (!p.waitForFinished(30000) || p.exitCode() != 0) {
        QTest::qFail(qPrintable(QStringLiteral("pdftotext failed on %1: %2")
                                    .arg(qpath(pdf), QString::fromUtf8(p.readAllStandardError()))),
                     __FILE__, __LINE__);
        return {};
    }
    return QString::fromUtf8(p.readAllStandardOutput());
}

} // namespace

class TestReportCommand : public QObject {
    Q_OBJECT

    std::unique_ptr<kvs::test::TempDir> m_dir;
    QString m_session;

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        kvs::cli::setReportHandler(&runReportCommand);
        m_dir = std::make_unique<kvs::test::TempDir>();
        const fs::path model =
            kvs::test::writeModel(*m_dir, "m", kvs::syntheticPreset("tiny-gpt2"));
        QJsonObject o;
        o[QStringLiteral("kvstudio_session")] = kSessionVersion;
        // Written under today's scheme defaults, as the studio writes a session.
        o[QStringLiteral("scheme_defaults")] = kvs::kSchemeDefaultsGeneration;
        o[QStringLiteral("model")] = qpath(model);
        o[QStringLiteral("prompt")] = kPrompt;
        o[QStringLiteral("schemes")] = QJsonArray::fromStringList(kSchemes);
        m_session = qpath(m_dir->path() / "study.kvsession");
        kvs::test::writeBytes(m_session.toStdString(), QJsonDocument(o).toJson().toStdString());
    }

    // Over a file the studio did not write: refused at once without --force (the file untouched),
    // written with it. The report: a PDF of 1 + 4 charts / 2 pages naming both schemes with the
    // analysis's own cache bytes and KL, and the model's content hash; known as the studio's
    // own afterwards (its sidecar vouches for it).
    void writesTheReport() {
        const fs::path pdf = m_dir->path() / "out" / "report.pdf";
        fs::create_directories(pdf.parent_path());
        kvs::test::writeBytes(pdf, "the user's own notes");
        const std::vector<std::string> argv = {
            "report",  m_session.toStdString(), "--out", pdf.string(),
            "--views", "tradeoffs,cache",       "--json"};
        QElapsedTimer clock;
        clock.start();
        const CliRun refused = run(argv);
        QCOMPARE(refused.code, 1);
        QVERIFY2(refused.out.find("\"exists\"") != std::string::npos &&
                     refused.out.find("report.pdf") != std::string::npos &&
                     refused.out.find("--force") != std::string::npos,
                 refused.out.c_str());
        QVERIFY2(clock.elapsed() < 5000, "refused only after the analysis");
        QCOMPARE(kvs::test::readBytes(pdf), std::string("the user's own notes"));

        std::vector<std::string> forced = argv;
        forced.push_back("--force");
        const CliRun r = run(forced);
        QVERIFY2(r.code == 0, (r.out + r.err).c_str());
        const QJsonObject json = QJsonDocument::fromJson(QByteArray::fromStdString(r.out)).object();
        QCOMPARE(json.value(QStringLiteral("pages")).toInt(), 3);
        QCOMPARE(json.value(QStringLiteral("charts")).toArray().size(), 4);
        QVERIFY(kvs::checkOutput(pdf, "export").replaceable);
        QCOMPARE(kvs::test::readBytes(pdf).substr(0, 5), std::string("%PDF-"));

        // The analysis's own figures: the same session in a window of the test.
        MainWindow w(kvs::test::quietWindowOptions());
        w.show();
        w.session()->setSweepsEnabled(false);
        QString error;
        QVERIFY2(w.openSession(m_session, &error), qPrintable(error));
        QVERIFY(kvs::test::waitForAnalysis(w, [](const kvs::views::AnalysisData& a) {
            return a.runs.size() == 2 && a.runs[0].eval.quality && a.runs[1].eval.quality;
        }));
        const auto analysis = w.session()->analysis();

        // Without pdftotext the report's contents would go unchecked: a failure, not a skip.
        QVERIFY2(!QStandardPaths::findExecutable(QStringLiteral("pdftotext")).isEmpty(),
                 "pdftotext is missing: install poppler-utils (tools/kvs installs it)");
        const QString text = pdfText(pdf);
        QVERIFY(!text.isEmpty());
        QCOMPARE(text.count(QLatin1Char('\f')), 3);
        const QStringList lines = text.split(QLatin1Char('\n'));
        QVERIFY2(text.contains(w.session()->modelContentHash()), qPrintable(text));
        QVERIFY(w.session()->modelContentHash().startsWith(QStringLiteral("sha256:")));
        for (const auto& run : analysis->runs) {
            // The row of the results table that names the setting holds its bytes and its KL.
            const auto row = std::find_if(lines.begin(), lines.end(), [&](const QString& l) {
                return l.trimmed().startsWith(run.setting);
            });
            QVERIFY2(row != lines.end(), qPrintable(run.setting + " not in\n" + text));
            const QStringList cells = row->simplified().split(QLatin1Char(' '));
            QVERIFY2(cells.contains(QString::number(run.eval.bytes.total())), qPrintable(*row));
            QVERIFY2(cells.contains(QString::number(run.eval.quality->klMean, 'g', 4)),
                     qPrintable(*row));
        }
        // Every chart is captioned with its view and chart (its provenance follows).
        for (const char* caption : {"view tradeoffs", "chart tradeoff", "chart cache_bytes"})
            QVERIFY2(text.simplified().contains(QLatin1String(caption)), caption);
    }

    void usageErrors_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("fragment");
        const QString s = QStringLiteral("s.kvsession");
        QTest::newRow("no session")
            << QStringList{"report", "--out", "r.pdf"} << "missing argument SESSION";
        QTest::newRow("no --out") << QStringList{"report", s} << "missing option --out";
        QTest::newRow("not a pdf")
            << QStringList{"report", s, "--out", "figures"} << "--out names the PDF to write";
        QTest::newRow("page") << QStringList{"report", s, "--out", "r.pdf", "--page", "a3"}
                              << "--page must be a4 or letter";
        QTest::newRow("views") << QStringList{"report", s, "--out", "r.pdf", "--views", "charts"}
                               << "unknown view 'charts'";
        QTest::newRow("font") << QStringList{"report", s, "--out", "r.pdf", "--font-pt", "2"}
                              << "option --font-pt must be a number from 4 to 24";
        QTest::newRow("option") << QStringList{"report", s, "--out", "r.pdf", "--dpi", "300"}
                                << "unknown option --dpi";
    }
    void usageErrors() {
        QFETCH(QStringList, args);
        QFETCH(QString, fragment);
        std::vector<std::string> argv;
        for (const QString& a : args)
            argv.push_back(a.toStdString());
        const CliRun r = run(argv);
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.find(fragment.toStdString()) != std::string::npos, r.err.c_str());
    }

    // A session that is not there: exit 1 naming it, nothing written.
    void missingSession() {
        const fs::path pdf = m_dir->path() / "missing.pdf";
        const CliRun r =
            run({"report", (m_dir->path() / "nowhere.kvsession").string(), "--out", pdf.string()});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.find("nowhere.kvsession: no such file") != std::string::npos, r.err.c_str());
        QVERIFY(!fs::exists(pdf));
    }
};

QTEST_MAIN(TestReportCommand)
#include "test_report_command.moc"
