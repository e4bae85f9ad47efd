// SPDX-License-Identifier: MIT
// kvstudio-cli given what a user mistypes or misnames (#17, docs/bad-input.md): every case is
// refused before any work with one message naming the option or file, the value and what is
// allowed; usage errors exit 2, the rest 1; outputs that are not ours are left as they were.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs/model.h"
#include "kvs_test.h"

#include <QElapsedTimer>
#include <QtTest>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

using nlohmann::json;
using namespace kvs;
namespace fs = std::filesystem;

namespace {

using kvs::test::CliRun;
using kvs::test::run;

} // namespace

class TestCliBadInput : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    fs::path m_model;   // tiny-gpt2, one file
    fs::path m_capture; // a capture of it

private slots:
    void initTestCase() {
        m_model = test::writeModel(m_dir, "model", syntheticPreset("tiny-gpt2"));
        test::writeBytes(m_dir / "prompt.txt", "In the beginning God created the heaven");
        QCOMPARE(::mkfifo((m_dir / "fifo.txt").c_str(), 0644), 0);
        fs::create_directory(m_dir / "folder.txt");
        m_capture = m_dir / "c.safetensors";
        QCOMPARE(run({"capture", m_model.string(), "--prompt-file", (m_dir / "prompt.txt").string(),
                      "--out", m_capture.string()})
                     .code,
                 0);
    }

    // @ = the temporary folder, @model = the model folder, @capture = the capture file.
    void refusals_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<int>("exitCode");
        QTest::addColumn<QString>("fragment");
        const QString sweep = "sweep @model --prompt-file @/prompt.txt --backend cpu --context 24";
        const auto with = [](const QString& base, const QString& extra) {
            return (base + " " + extra).split(' ', Qt::SkipEmptyParts);
        };
        // Sweeps: every value checked before the model runs.
        QTest::newRow("sweep --values nan") << with(sweep, "--scheme select.uniform --values nan")
                                            << 2 << "--values: 'nan' is not a finite number";
        QTest::newRow("sweep --values inf")
            << with(sweep, "--scheme select.uniform --values 0.5,inf") << 2
            << "--values: 'inf' is not a finite number";
        QTest::newRow("sweep --values empty")
            << with(sweep, "--scheme select.uniform --values=") << 2 << "--values names no value";
        QTest::newRow("sweep keep = 2")
            << with(sweep, "--scheme select.uniform --values 0.5,2") << 2
            << "select.uniform: keep = 2 is outside its range [0.001, 1]";
        QTest::newRow("sweep precision = 24")
            << with(sweep, "--scheme select.uniform --param precision --values 16,24") << 2
            << "precision = 24 is not supported (one of 16, 32)";
        QTest::newRow("second scheme lacks the parameter")
            << with(sweep, "--scheme select.uniform,codec.uniform --param keep --values 0.5") << 2
            << "codec.uniform has no parameter 'keep' to sweep (it has: bits";
        QTest::newRow("second scheme's budget wins")
            << with(sweep, "--scheme select.uniform,select.uniform:tokens=4 --values 0.5") << 2
            << "changes nothing: a tokens or bytes budget in the setting wins";
        QTest::newRow("sweep --epsilon nan") << with(sweep, "--scheme select.uniform --epsilon nan")
                                             << 2 << "--epsilon: 'nan' is not a finite number";
        QTest::newRow("sweep --epsilon -1") << with(sweep, "--scheme select.uniform --epsilon -1")
                                            << 2 << "--epsilon must be a positive number, got '-1'";
        QTest::newRow("sweep --range count")
            << with(sweep, "--scheme select.uniform --range 0.1:1:5000") << 2
            << "count from 1 to 1000, got '0.1:1:5000'";
        // eval: the prompt, the input.
        QTest::newRow("eval --prompt and --prompt-file")
            << QString("eval @model --prompt x --prompt-file @/prompt.txt --scheme "
                       "select.uniform")
                   .split(' ')
            << 2 << "either with --prompt-file F or with --prompt T, not both";
        QTest::newRow("eval precision = 24")
            << QString(
                   "eval @model --prompt-file @/prompt.txt --scheme select.uniform:precision=24")
                   .split(' ')
            << 2 << "precision = 24 is not supported (one of 16, 32)";
        QTest::newRow("mistyped model with --prompt-file")
            << QString("eval @/modle --prompt-file @/prompt.txt --scheme select.uniform").split(' ')
            << 1 << "@/modle: no such model folder or capture file";
        QTest::newRow("capture with --prompt-file")
            << QString("eval @capture --prompt-file @/prompt.txt --scheme select.uniform")
                   .split(' ')
            << 2 << "@capture is a file, so a capture, which holds its prompt";
        QTest::newRow("prompt file is a folder")
            << QString("eval @model --prompt-file @/folder.txt --scheme select.uniform").split(' ')
            << 1 << "@/folder.txt: is a directory, not a file";
        QTest::newRow("prompt file is a fifo")
            << QString("capture @model --prompt-file @/fifo.txt --out @/x.safetensors").split(' ')
            << 1 << "@/fifo.txt: is a fifo (named pipe), not a regular file";
        QTest::newRow("prompt file is /dev/zero")
            << QString("eval @model --prompt-file /dev/zero --scheme select.uniform").split(' ')
            << 1 << "/dev/zero: is a device, not a regular file";
        // bench attention: every number with its range.
        const QString bench = "bench attention --backend cpu --repeats 1";
        QTest::newRow("bench --heads 100000") << with(bench, "--heads 100000") << 2
                                              << "option --heads must be between 1 and 1024, got "
                                                 "100000";
        QTest::newRow("bench --contexts 16m")
            << with(bench, "--contexts 16m") << 2
            << "--contexts: '16m' is not a whole number from 1 to 16777216";
        QTest::newRow("bench --contexts -5")
            << with(bench, "--contexts -5") << 2
            << "--contexts: '-5' is not a whole number from 1 to 16777216";
        QTest::newRow("bench --dims 1x")
            << with(bench, "--dims 1x") << 2 << "--dims: '1x' is not a whole number from 2 to 1024";
        QTest::newRow("bench --formats q3")
            << with(bench, "--formats q3") << 2 << "unknown format 'q3' in --formats (fp16, q4";
        QTest::newRow("bench --formats empty")
            << with(bench, "--formats=") << 2 << "--formats names no format";
        QTest::newRow("bench --group 3")
            << with(bench, "--group 3") << 2 << "--group 3 must divide --heads 32";
        QTest::newRow("bench beyond memory")
            << with(bench, "--heads 1024 --contexts 16M --dims 1024") << 1
            << "the largest shape needs about 335544320 MiB for its caches but";
        // Outputs that are not ours (the rest is in test_cli's
        // outputsRefuseForeignFilesWithoutForce).
        QTest::newRow("capture over the model's weights")
            << QString("capture @model --prompt-file @/prompt.txt --out @model/model.safetensors")
                   .split(' ')
            << 1 << "it is a model-weights written by KV Studio, not a capture";
        QTest::newRow("capture into a device")
            << QString("capture @model --prompt-file @/prompt.txt --out /dev/null").split(' ') << 1
            << "refusing to overwrite /dev/null: it is a device or fifo";
        QTest::newRow("make-model --seed -1")
            << QString("make-model tiny-gpt2 --out @/seeded --seed -1").split(' ') << 2
            << "option --seed must be between 0 and 2147483647, got -1";
    }
    void refusals() {
        QFETCH(QStringList, args);
        QFETCH(int, exitCode);
        QFETCH(QString, fragment);
        const auto expand = [&](QString s) {
            s.replace("@model", QString::fromStdString(m_model.string()));
            s.replace("@capture", QString::fromStdString(m_capture.string()));
            s.replace("@", QString::fromStdString(m_dir.path().string()));
            // Scheme lists are written with commas above (rows split on spaces).
            if (s.startsWith("select.uniform,"))
                s.replace(',', ' ');
            return s.toStdString();
        };
        std::vector<std::string> argv;
        for (const QString& a : args)
            argv.push_back(expand(a));
        argv.push_back("--json");
        QElapsedTimer clock;
        clock.start();
        const CliRun r = run(argv);
        QCOMPARE(r.code, exitCode);
        const json j = json::parse(r.out);
        const std::string message = j.at("error").at("message").get<std::string>();
        QVERIFY2(message.find(expand(fragment)) != std::string::npos, message.c_str());
        if (exitCode == 2)
            QCOMPARE(j.at("error").at("code").get<std::string>(), std::string("usage"));
        QVERIFY(!j.contains("sweeps")); // nothing ran before the error
        QVERIFY2(clock.elapsed() < 5000, qPrintable(QString::number(clock.elapsed())));
        QVERIFY(!fs::exists(m_dir / "x.safetensors"));
        QVERIFY(!fs::exists(m_dir / "seeded"));
        KVS_VERIFY_OK(Model::load(m_model)); // the model survived every attempt
    }

    // A usage error in the second scheme of a table sweep: no table of the first is printed.
    void sweepUsageErrorsComeBeforeTheWork() {
        const CliRun r =
            run({"sweep", m_model.string(), "--prompt-file", (m_dir / "prompt.txt").string(),
                 "--scheme", "select.uniform codec.uniform", "--param", "keep", "--values", "0.5",
                 "--backend", "cpu"});
        QCOMPARE(r.code, 2);
        QCOMPARE(r.out, std::string());
    }

    // make-model over a trained model (train_results.json beside it) is refused and changes
    // nothing; over a sharded model it leaves no old index or shard (the loader preferred them).
    void makeModelKeepsOtherModels() {
        const fs::path trained = m_dir / "trained";
        QCOMPARE(run({"make-model", "tiny-llama", "--out", trained.string()}).code, 0);
        test::writeBytes(trained / "train_results.json", "{\"steps\": 1}");
        const std::string before = test::readBytes(trained / "model.safetensors");
        const CliRun refused = run({"make-model", "tiny-gpt2", "--out", trained.string()});
        QCOMPARE(refused.code, 1);
        QVERIFY2(refused.err.find("it holds a trained model") != std::string::npos,
                 refused.err.c_str());
        QVERIFY(test::readBytes(trained / "model.safetensors") == before);

        const fs::path sharded = m_dir / "sharded";
        QCOMPARE(run({"make-model", "tiny-llama-gqa", "--out", sharded.string()}).code, 0);
        QCOMPARE(run({"make-model", "tiny-gpt2", "--out", sharded.string()}).code, 0);
        QVERIFY(!fs::exists(sharded / "model.safetensors.index.json"));
        const CliRun info = run({"info", sharded.string(), "--json"});
        QCOMPARE(info.code, 0);
        QCOMPARE(json::parse(info.out).at("config").at("architecture").get<std::string>(),
                 std::string("GPT2LMHeadModel"));
    }
};

QTEST_GUILESS_MAIN(TestCliBadInput)
#include "test_cli_bad_input.moc"
