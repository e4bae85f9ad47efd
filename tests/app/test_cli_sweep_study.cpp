// SPDX-License-Identifier: MIT
// `kvstudio-cli sweep --prompt-set` and `sweep-merge`: a study's points against eval
// --prompt-set (another path through the engine), shards merged = one run, a process killed with
// SIGKILL and rerun = one run, Ctrl+C keeps the finished jobs, the up-front time limit, and usage
// errors before any work.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using kvs::test::CliRun;
using kvs::test::run;

std::size_t lineCount(const fs::path& p) {
    std::ifstream in(p);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);)
        ++n;
    return n;
}

std::string readText(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

class TestCliSweepStudy : public QObject {
    Q_OBJECT

    QTemporaryDir m_tmp;
    fs::path m_dir, m_model, m_set;

    // The study the tests share: 3 prompts × (2 seeds × 2 settings of the random scheme + 2 of
    // the deterministic one, which runs at one seed) = 18 jobs.
    std::vector<std::string> study(std::vector<std::string> extra = {}) const {
        std::vector<std::string> argv = {
            "sweep",        m_model.string(),
            "--prompt-set", m_set.string(),
            "--seeds",      "2",
            "--backend",    "cpu",
            "--scheme",     "select.uniform select.snapkv:observation=4",
            "--values",     "0.25,0.5"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    }

    // A longer study for the process tests: 3 prompts × (6 seeds × 6 values + 6 values) = 126
    // jobs.
    QStringList longStudy(const fs::path& journal) const {
        return {"sweep",        QString::fromStdString(m_model.string()),
                "--prompt-set", QString::fromStdString(m_set.string()),
                "--seeds",      "6",
                "--backend",    "cpu",
                "--scheme",     "select.uniform select.h2o",
                "--range",      "0.05:1:6",
                "--jobs",       "2",
                "--journal",    QString::fromStdString(journal.string()),
                "--json"};
    }

    static QString cli() { return qEnvironmentVariable("KVS_CLI"); }

    // Starts the long study and waits until its journal holds `lines` lines.
    void startAndWait(QProcess& p, const fs::path& journal, std::size_t lines) {
        p.start(cli(), longStudy(journal));
        QVERIFY2(p.waitForStarted(10000), qPrintable(p.errorString()));
        for (int i = 0; i < 60000 && lineCount(journal) < lines; ++i) {
            QVERIFY2(p.state() == QProcess::Running, "the study ended before it could be stopped");
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        QVERIFY(lineCount(journal) >= lines);
    }

private slots:
    void initTestCase() {
        QVERIFY(m_tmp.isValid());
        QVERIFY2(!cli().isEmpty() && fs::exists(cli().toStdString()), "KVS_CLI names no binary");
        m_dir = m_tmp.path().toStdString();
        m_model = m_dir / "tiny";
        KVS_VERIFY_OK(kvs::writeSyntheticModel(kvs::syntheticPreset("tiny-gpt2"), m_model));
        m_set = m_dir / "prompts";
        fs::create_directory(m_set);
        std::ofstream(m_set / "1-genesis.txt")
            << "In the beginning God created the heaven and the earth, and the earth was void.";
        std::ofstream(m_set / "2-preacher.txt")
            << "Vanity of vanities, saith the Preacher, vanity of vanities; all is vanity.";
        std::ofstream(m_set / "3-psalm.txt")
            << "The LORD is my shepherd; I shall not want. He maketh me to lie down in green.";
        std::ofstream(m_set / "notes.md") << "not a prompt: only *.txt files are";
    }

    // Each point is the mean over prompts of the seeds' mean, with a 95% t-interval over the
    // three prompts: the same figures eval --prompt-set computes for that one setting.
    void pointsMatchEvalPromptSet() {
        const CliRun r = run(study({"--json"}));
        QCOMPARE(r.code, 0);
        const json j = json::parse(r.out);
        QCOMPARE(j["prompts"].size(), std::size_t(3)); // notes.md is not a prompt
        QCOMPARE(j["sweeps"].size(), std::size_t(2));
        const json& point = j["sweeps"][0]["points"][0];
        QCOMPARE(j["sweeps"][0]["scheme"].get<std::string>(), std::string("select.uniform"));
        QCOMPARE(point["value"].get<double>(), 0.25);
        QCOMPARE(point["prompts"].get<int>(), 3);
        const json& kl = point["kl_nats_per_token"];
        QCOMPARE(kl["n"].get<int>(), 3);
        QCOMPARE(kl["over"].get<std::string>(), std::string("prompts"));
        QVERIFY(kl["mean"].get<double>() > 0);

        const CliRun e =
            run({"eval", m_model.string(), "--prompt-set", m_set.string(), "--seeds", "2",
                 "--backend", "cpu", "--scheme", "select.uniform:keep=0.25", "--json"});
        QCOMPARE(e.code, 0);
        const json s = json::parse(e.out)["summary"];
        for (const char* key : {"mean", "half_width", "sd"}) {
            const double a = kl[key].get<double>();
            const double b = s["kl_nats_per_token"][key].get<double>();
            QVERIFY2(std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b)),
                     qPrintable(QString("%1: %2 vs %3").arg(key).arg(a).arg(b)));
        }
        QCOMPARE(point["memory_fraction"]["mean"].get<double>(),
                 s["memory_fraction"]["mean"].get<double>());

        // The text table says what the figures are.
        const CliRun t = run(study());
        QCOMPARE(t.code, 0);
        QVERIFY2(t.out.find("95% Student-t interval over prompts") != std::string::npos,
                 t.out.c_str());
        QVERIFY(t.out.find("KL (nats/token)") != std::string::npos);
        QVERIFY(t.out.find(" ± ") != std::string::npos);
        const CliRun c = run(study({"--csv"}));
        QCOMPARE(c.code, 0);
        QVERIFY(c.out.rfind("scheme,param,value,prompts,", 0) == 0);
        QCOMPARE(std::count(c.out.begin(), c.out.end(), '\n'), 5L); // header + 4 settings
    }

    // Shards with their journals, merged: the table of one run, byte for byte.
    void shardsMergeIntoOneRun() {
        const CliRun whole = run(study({"--json"}));
        QCOMPARE(whole.code, 0);
        std::vector<std::string> journals;
        for (int i = 1; i <= 3; ++i) {
            journals.push_back((m_dir / ("shard-" + std::to_string(i) + ".jsonl")).string());
            const CliRun s = run(study({"--shard", std::to_string(i) + "/3", "--journal",
                                        journals.back(), "--jobs", "2", "--progress"}));
            QCOMPARE(s.code, 0);
            QVERIFY2(s.err.find("progress: 6/6 jobs") != std::string::npos, s.err.c_str());
            QVERIFY2(s.err.find("shard " + std::to_string(i) + "/3 done: 6 jobs") !=
                         std::string::npos,
                     s.err.c_str());
        }
        std::vector<std::string> merge = {"sweep-merge", journals[2], journals[0], journals[1],
                                          "--json"};
        const CliRun merged = run(merge);
        QCOMPARE(merged.code, 0);
        QCOMPARE(merged.out, whole.out);
        // A shard missing: the merge names the jobs and how to get them.
        const CliRun partial = run({"sweep-merge", journals[0], journals[2]});
        QCOMPARE(partial.code, 1);
        QVERIFY2(partial.err.find("6 of 18 jobs are in none of the journals (jobs 6, 7") !=
                     std::string::npos,
                 partial.err.c_str());
        // Rerunning a finished shard does no work and keeps its journal as it was.
        const std::string before = readText(journals[1]);
        const CliRun again = run(study({"--shard", "2/3", "--journal", journals[1], "--json"}));
        QCOMPARE(again.code, 0);
        QVERIFY(again.err.find("6 of 6 jobs already done") != std::string::npos);
        QCOMPARE(readText(journals[1]), before);
        // Another study's journal does not merge with these.
        const auto other = (m_dir / "other.jsonl").string();
        QCOMPARE(run({"sweep", m_model.string(), "--prompt-set", m_set.string(), "--backend", "cpu",
                      "--scheme", "select.uniform", "--values", "0.5", "--journal", other})
                     .code,
                 0);
        const CliRun mixed = run({"sweep-merge", journals[0], other});
        QCOMPARE(mixed.code, 1);
        QVERIFY(mixed.err.find("another study") != std::string::npos);
    }

    // SIGKILL in the middle (two workers appending): the rerun resumes from the journal and
    // prints what an uninterrupted run prints.
    void killedRunResumesToTheSameTable() {
        const fs::path journal = m_dir / "killed.jsonl";
        QProcess p;
        startAndWait(p, journal, 30);
        ::kill(static_cast<pid_t>(p.processId()), SIGKILL);
        QVERIFY(p.waitForFinished(10000));
        QCOMPARE(p.exitStatus(), QProcess::CrashExit);
        const std::size_t kept = lineCount(journal) - 1;
        QVERIFY2(kept >= 29 && kept < 126, qPrintable(QString::number(kept)));

        std::vector<std::string> argv;
        for (const QString& a : longStudy(journal))
            argv.push_back(a.toStdString());
        const CliRun resumed = run(argv);
        QCOMPARE(resumed.code, 0);
        QVERIFY2(resumed.err.find("resuming from") != std::string::npos, resumed.err.c_str());
        QCOMPARE(lineCount(journal), std::size_t(127)); // the header and every job once

        // The same study without a journal, in one go.
        std::vector<std::string> fresh;
        for (std::size_t i = 0; i < argv.size(); ++i)
            if (argv[i] == "--journal")
                ++i; // and its file
            else
                fresh.push_back(argv[i]);
        const CliRun whole = run(fresh);
        QCOMPARE(whole.code, 0);
        QCOMPARE(resumed.out, whole.out);
    }

    // Ctrl+C: the jobs under way stop (unrecorded), the journal keeps the finished ones, exit 130
    // with how to resume.
    void interruptKeepsFinishedJobs() {
        const fs::path journal = m_dir / "interrupted.jsonl";
        QProcess p;
        startAndWait(p, journal, 10);
        ::kill(static_cast<pid_t>(p.processId()), SIGINT);
        QVERIFY(p.waitForFinished(30000));
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 130);
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QVERIFY2(err.contains("run the same command again to resume"), qPrintable(err));
        const std::size_t kept = lineCount(journal) - 1;
        QVERIFY(kept >= 9 && kept < 126);
        QCOMPARE(readText(journal).back(), '\n'); // no torn line after a clean stop
    }

    // The up-front estimate: over the limit, the run stops after the calibration with the
    // numbers and the options, and the calibration's jobs stay in the journal.
    void aSweepOverTheTimeLimitIsRefusedUpFront() {
        const fs::path journal = m_dir / "limit.jsonl";
        const CliRun r = run(study({"--journal", journal.string(), "--max-hours", "1e-9"}));
        QCOMPARE(r.code, 1);
        for (const char* fragment : {"this sweep would take about", "18 jobs over 3 prompts",
                                     "--max-hours 1", "--shard i/n", "limit.jsonl"})
            QVERIFY2(r.err.find(fragment) != std::string::npos, r.err.c_str());
        QCOMPARE(lineCount(journal), std::size_t(3)); // header + one job per curve
        // Allowed, it resumes after the calibration.
        const CliRun ok = run(study({"--journal", journal.string()}));
        QCOMPARE(ok.code, 0);
        QVERIFY(ok.err.find("2 of 18 jobs already done") != std::string::npos);
    }

    void journalsAreNeverAUsersFile() {
        const fs::path mine = m_dir / "results.txt";
        std::ofstream(mine) << "my results, typed by hand\n";
        const CliRun r = run(study({"--journal", mine.string()}));
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.find("not written by KV Studio") != std::string::npos, r.err.c_str());
        QCOMPARE(readText(mine), std::string("my results, typed by hand\n"));
        QCOMPARE(run(study({"--journal", mine.string(), "--force"})).code, 0);
        QVERIFY(readText(mine).find("sweep-journal") != std::string::npos);
    }

    // A prompt longer than the model accepts fails the study before any work, naming the file.
    void aTooLongPromptIsRefusedUpFront() {
        const fs::path set = m_dir / "long-set";
        fs::create_directory(set);
        std::ofstream(set / "a.txt") << "short";
        std::ofstream(set / "b.txt") << std::string(400, 'x'); // tiny-gpt2 has 128 positions
        const fs::path journal = m_dir / "long.jsonl";
        const CliRun r = run({"sweep", m_model.string(), "--prompt-set", set.string(), "--scheme",
                              "select.uniform", "--journal", journal.string()});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.find("b.txt: the prompt has 400 tokens but the model accepts at most 128") !=
                     std::string::npos,
                 r.err.c_str());
        QVERIFY(!fs::exists(journal));
    }

    // Streaming over a prompt set: the mode is part of the study (its id, its JSON), and with a
    // budget larger than every prompt streaming is exact on every prompt.
    void streamingStudies() {
        const auto argv = [&](const std::string& mode, const std::string& values) {
            return std::vector<std::string>{"sweep",        m_model.string(),
                                            "--prompt-set", m_set.string(),
                                            "--backend",    "cpu",
                                            "--scheme",     "select.sinks_window coreset.streaming",
                                            "--param",      "tokens",
                                            "--values",     values,
                                            "--mode",       mode,
                                            "--json"};
        };
        const CliRun streamed = run(argv("streaming", "8,1000"));
        QCOMPARE(streamed.code, 0);
        const json j = json::parse(streamed.out);
        QCOMPARE(j["mode"].get<std::string>(), std::string("streaming"));
        for (const json& curve : j["sweeps"]) {
            const json& all = curve["points"][1]; // 1,000 tokens: more than any prompt
            QCOMPARE(all["value"].get<double>(), 1000.0);
            QVERIFY2(all["kl_nats_per_token"]["mean"].get<double>() < 1e-6, all.dump().c_str());
            QVERIFY(curve["points"][0]["kl_nats_per_token"]["mean"].get<double>() > 1e-4);
        }
        const CliRun prefill = run(argv("post-prefill", "8,1000"));
        QCOMPARE(prefill.code, 0);
        const json p = json::parse(prefill.out);
        QCOMPARE(p["mode"].get<std::string>(), std::string("post-prefill"));
        QVERIFY(p["study_id"] != j["study_id"]);
        // A journal of one mode is not resumed by the other.
        const auto journal = (m_dir / "modes.jsonl").string();
        auto a = argv("streaming", "8");
        a.insert(a.end(), {"--journal", journal});
        QCOMPARE(run(a).code, 0);
        auto b = argv("post-prefill", "8");
        b.insert(b.end(), {"--journal", journal});
        const CliRun other = run(b);
        QCOMPARE(other.code, 1);
        QVERIFY(other.err.find("another study") != std::string::npos);
        // A scheme without an online form is refused before any work, with why.
        const CliRun refused = run(study({"--mode", "streaming"}));
        QCOMPARE(refused.code, 2);
        QVERIFY2(refused.err.find("select.snapkv cannot stream") != std::string::npos,
                 refused.err.c_str());
    }

    void usageErrorsBeforeAnyWork_data() {
        QTest::addColumn<QStringList>("extra");
        QTest::addColumn<QString>("fragment");
        QTest::newRow("shard without journal") << QStringList{"--shard", "1/2"} << "--journal";
        QTest::newRow("shard 0/2") << QStringList{"--shard", "0/2", "--journal", "j"} << "0/2";
        QTest::newRow("jobs 0") << QStringList{"--jobs", "0"} << "--jobs";
        QTest::newRow("max-hours -1") << QStringList{"--max-hours", "-1"} << "--max-hours";
        QTest::newRow("max-hours nan") << QStringList{"--max-hours", "nan"} << "--max-hours";
        QTest::newRow("json and csv") << QStringList{"--json", "--csv"} << "--csv";
        QTest::newRow("prompt too") << QStringList{"--prompt", "x"} << "--prompt";
        QTest::newRow("epsilon") << QStringList{"--epsilon", "0.1"} << "--epsilon";
    }
    void usageErrorsBeforeAnyWork() {
        QFETCH(QStringList, extra);
        QFETCH(QString, fragment);
        std::vector<std::string> e;
        for (const QString& s : extra)
            e.push_back(s.toStdString());
        const CliRun r = run(study(e));
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.find(fragment.toStdString()) != std::string::npos, r.err.c_str());
        QVERIFY(!fs::exists("j"));
        // Study options without a prompt set.
        QCOMPARE(run({"sweep", m_model.string(), "--prompt", "abc", "--scheme", "select.uniform",
                      "--seeds", "2"})
                     .code,
                 2);
    }
};

QTEST_GUILESS_MAIN(TestCliSweepStudy)
#include "test_cli_sweep_study.moc"
