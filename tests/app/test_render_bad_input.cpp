// SPDX-License-Identifier: MIT
// `kvstudio-cli render` and `kvstudio --session` given sessions a user may have (#17,
// docs/bad-input.md): one whose analysis can never start fails at once with the cause (it used
// to wait for the whole --timeout), a file that is not a session says what it is, and a render
// stopped half-way leaves no figures of an earlier session beside the new ones.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs_test.h"
#include "render_command.h"
#include "session_document.h"
#include "startup.h"
#include "studio_test_support.h"

#include "kvs/synthetic_model.h"

#include <QDirIterator>
#include <QElapsedTimer>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>
#include <sstream>
#include <sys/stat.h>

using namespace kvs::studio;
namespace fs = std::filesystem;
using kvs::test::qpath;

namespace {

using kvs::test::CliRun;
using kvs::test::run;

const QString kPrompt = QStringLiteral("In the beginning God created the heaven and the earth.");

} // namespace

class TestRenderBadInput : public QObject {
    Q_OBJECT

    std::unique_ptr<kvs::test::TempDir> m_dir;
    fs::path m_model; // byte-level tokenizer
    fs::path m_chars; // character tokenizer: 'In the beginning' and little else

    // A session of `model` with `prompt`, as the window writes it.
    QString writeSession(const QString& name, const QString& model, const QString& prompt) {
        QJsonObject o;
        o[QStringLiteral("kvstudio_session")] = kSessionVersion;
        o[QStringLiteral("model")] = model;
        o[QStringLiteral("prompt")] = prompt;
        o[QStringLiteral("schemes")] = QJsonArray{QStringLiteral("select.uniform:keep=0.5")};
        const QString path = qpath(m_dir->path() / name.toStdString());
        kvs::test::writeBytes(path.toStdString(), QJsonDocument(o).toJson().toStdString());
        return path;
    }

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        kvs::cli::setRenderHandler(&runRenderCommand);
        m_dir = std::make_unique<kvs::test::TempDir>();
        m_model = kvs::test::writeModel(*m_dir, "m", kvs::syntheticPreset("tiny-gpt2"));
        kvs::SyntheticModelSpec chars = kvs::syntheticPreset("tiny-llama");
        chars.alphabet = "In thebgi";
        m_chars = kvs::test::writeModel(*m_dir, "chars", chars);
    }

    // Each session fails within seconds (the --timeout is 600 s) naming the cause.
    void sessionsThatCannotRender_data() {
        QTest::addColumn<QString>("model"); // "m", "chars" or "" for none
        QTest::addColumn<QString>("prompt");
        QTest::addColumn<QString>("raw"); // the file's bytes instead of a session, when set
        QTest::addColumn<QString>("fragment");
        QTest::newRow("empty prompt") << "m"
                                      << ""
                                      << ""
                                      << "has an empty prompt: the analysis needs at least two "
                                         "tokens";
        QTest::newRow("one token") << "m"
                                   << "I"
                                   << ""
                                   << "its prompt is 1 token(s) long; the analysis needs at least "
                                      "two";
        QTest::newRow("out of the vocabulary")
            << "chars"
            << "In the beginning \u4e2d"
            << ""
            << "its prompt cannot be tokenized: Cannot tokenize the prompt: character";
        QTest::newRow("model \"\"") << "" << kPrompt << ""
                                    << "names no model (its \"model\" is empty)";
        QTest::newRow("a JSON array") << "m" << kPrompt << "[1, 2]"
                                      << "is a JSON array, not an object: a session is an object "
                                         "with \"kvstudio_session\": 1";
        QTest::newRow("not JSON") << "m" << kPrompt << "{\"kvstudio_session\": 1,"
                                  << "is not valid JSON:";
        QTest::newRow("nested 100 deep") << "m" << kPrompt << QString(100, '[') + QString(100, ']')
                                         << "JSON nested deeper than 64 levels";
    }
    void sessionsThatCannotRender() {
        QFETCH(QString, model);
        QFETCH(QString, prompt);
        QFETCH(QString, raw);
        QFETCH(QString, fragment);
        const QString folder =
            model.isEmpty() ? QString() : qpath(model == "m" ? m_model : m_chars);
        QString session = writeSession(QStringLiteral("bad.kvsession"), folder, prompt);
        if (!raw.isEmpty())
            kvs::test::writeBytes(session.toStdString(), raw.toStdString());
        const fs::path out = m_dir->path() / "bad-out";
        QElapsedTimer clock;
        clock.start();
        const CliRun r = run({"render", session.toStdString(), "--out", out.string(), "--views",
                              "tradeoffs", "--timeout", "600", "--json"});
        QCOMPARE(r.code, 1);
        const QJsonObject error = QJsonDocument::fromJson(QByteArray::fromStdString(r.out))
                                      .object()
                                      .value(QStringLiteral("error"))
                                      .toObject();
        const QString message = error.value(QStringLiteral("message")).toString();
        QVERIFY2(message.contains(fragment), qPrintable(message));
        QVERIFY2(clock.elapsed() < 30000, qPrintable(QString::number(clock.elapsed())));
        QVERIFY(!fs::exists(out / "tradeoff.png"));
    }

    // A fifo named as the session: refused by its type, never opened to wait for a writer (the
    // window's --session and --prompt-file read the same way).
    void aFifoIsNotASession() {
        const fs::path fifo = m_dir->path() / "fifo.kvsession";
        QCOMPARE(::mkfifo(fifo.c_str(), 0644), 0);
        const CliRun r =
            run({"render", fifo.string(), "--out", (m_dir->path() / "fifo-out").string()});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.find("is a fifo (named pipe), not a regular file") != std::string::npos,
                 r.err.c_str());
        SessionDocument d;
        QString error;
        QVERIFY(!readSessionDocument(qpath(fifo), &d, &error));
        QVERIFY2(error.contains(QStringLiteral("is a fifo")), qPrintable(error));
        QVERIFY(readPromptFile(qpath(fifo), &error).isEmpty());
        QVERIFY2(error.contains(QStringLiteral("is a fifo")), qPrintable(error));
    }

    // Session A rendered, then session B into the same folder, stopped in its second view by a
    // file that is not ours: every figure left is B's or the user's, none is A's.
    void aStoppedRenderLeavesNoEarlierFigures() {
        const fs::path out = m_dir->path() / "figures";
        const QString a = writeSession(QStringLiteral("a.kvsession"), qpath(m_model), kPrompt);
        CliRun r = run({"render", a.toStdString(), "--out", out.string(), "--views",
                        "tradeoffs,cache", "--dpi", "50"});
        QVERIFY2(r.code == 0, r.err.c_str());
        QVERIFY(fs::exists(out / "cache" / "cache_key_spectrum.png"));
        // The user's own file where B's second cache figure goes.
        kvs::test::writeBytes(out / "cache" / "cache_error_grid.png", "the user's picture");
        const QString promptB = QStringLiteral("And the earth was without form, and void.");
        const QString b = writeSession(QStringLiteral("b.kvsession"), qpath(m_model), promptB);
        r = run({"render", b.toStdString(), "--out", out.string(), "--views", "tradeoffs,cache",
                 "--dpi", "50", "--json"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.out.find("\"exists\"") != std::string::npos, r.out.c_str());
        QCOMPARE(kvs::test::readBytes(out / "cache" / "cache_error_grid.png"),
                 std::string("the user's picture"));
        int sidecars = 0;
        QDirIterator it(qpath(out), {QStringLiteral("*.json")}, QDir::Files,
                        QDirIterator::Subdirectories);
        while (it.hasNext()) {
            QFile f(it.next());
            QVERIFY(f.open(QIODevice::ReadOnly));
            const QString prompt = QJsonDocument::fromJson(f.readAll())
                                       .object()
                                       .value(QStringLiteral("provenance"))
                                       .toObject()
                                       .value(QStringLiteral("prompt"))
                                       .toString();
            QVERIFY2(prompt == promptB, qPrintable(it.filePath() + ": " + prompt));
            ++sidecars;
        }
        QVERIFY(sidecars >= 5); // B's trade-off figures and its first cache chart
        QVERIFY(!fs::exists(out / "cache" / "cache_key_spectrum.png")); // A's is gone
    }
};

QTEST_MAIN(TestRenderBadInput)
#include "test_render_bad_input.moc"
