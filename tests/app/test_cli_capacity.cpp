// SPDX-License-Identifier: MIT
// `kvstudio-cli capacity`: the worked numbers through the command line, a model folder as the
// preset, and usage errors caught before any output.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs/model_config.h"
#include "kvs_test.h"

#include <QTemporaryDir>
#include <QtTest>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using nlohmann::json;

namespace {

using kvs::test::CliRun;
using kvs::test::run;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

} // namespace

class TestCliCapacity : public QObject {
    Q_OBJECT

private slots:
    void workedExampleAsJson() {
        const CliRun r = run({"capacity", "--preset", "llama-2-7b", "--context", "128K",
                              "--key-ratio", "thin keys=0.25", "--json"});
        QCOMPARE(r.code, 0);
        const json j = json::parse(r.out);
        QCOMPARE(j["context"].get<long long>(), 131072LL);
        QVERIFY(j["hypothetical"].get<bool>());
        QCOMPARE(j["rows"].size(), std::size_t(2));
        QCOMPARE(j["rows"][0]["kv_bytes_per_token"].get<double>(), 524288.0);
        QCOMPARE(j["rows"][0]["kv_bytes_per_user"].get<double>(), 64 * kGiB);
        QCOMPARE(j["rows"][1]["name"].get<std::string>(), std::string("thin keys"));
        QCOMPARE(j["rows"][1]["saved_bytes_per_user"].get<double>(), 24 * kGiB);
        QVERIFY(std::abs(j["rows"][1]["users_vs_exact"].get<double>() - 1.6) < 1e-12);
        QCOMPARE(j["rows"][0]["users"].get<long long>(), 0LL);
        QCOMPARE(j["rows"][1]["users"].get<long long>(), 1LL);
        QVERIFY(j["notes"].dump().find("no whole user fits") != std::string::npos);
    }

    void textNamesTheWindow() {
        const CliRun r = run(
            {"capacity", "--preset", "mistral-7b-v0.1", "--context", "32768", "--ratio", "0.25"});
        QCOMPARE(r.code, 0);
        QVERIFY2(r.out.find("sliding window of 4096 tokens caps the cache") != std::string::npos,
                 r.out.c_str());
        QVERIFY(r.out.find("any (window)") != std::string::npos);
        QVERIFY(r.out.find("0.50 GiB") != std::string::npos); // 4,096 × 128 KiB
    }

    void modelFolderAsPreset() {
        // A folder with a config.json is planned like a preset, under its folder's name.
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string folder = dir.filePath("my-llama").toStdString();
        QVERIFY(QDir().mkpath(QString::fromStdString(folder)));
        kvs::ModelConfig c;
        c.architecture = "LlamaForCausalLM";
        c.modelType = "llama";
        c.layers = 4;
        c.heads = 8;
        c.kvHeads = 2;
        c.width = 256;
        c.headDim = 32;
        c.intermediate = 512;
        c.vocab = 1000;
        c.maxPositions = 2048;
        std::ofstream(folder + "/config.json") << kvs::toHfConfigJson(c).dump();
        const CliRun r = run({"capacity", "--preset", folder, "--context", "2048", "--json"});
        QCOMPARE(r.code, 0);
        const json j = json::parse(r.out);
        QCOMPARE(j["model"].get<std::string>(), std::string("my-llama"));
        // 2 × 4 layers × 2 KV heads × 32 × 2 bytes = 1,024 bytes per token.
        QCOMPARE(j["rows"][0]["kv_bytes_per_token"].get<double>(), 1024.0);
        QCOMPARE(j["rows"][0]["kv_bytes_per_user"].get<double>(), 2048.0 * 1024);
        QVERIFY(!j["hypothetical"].get<bool>());
    }

    void listsPresets() {
        const CliRun r = run({"capacity", "--list", "--json"});
        QCOMPARE(r.code, 0);
        const json j = json::parse(r.out);
        QCOMPARE(j["presets"].size(), std::size_t(7));
        QCOMPARE(j["presets"][0]["id"].get<std::string>(), std::string("gpt2"));
    }

    void usageErrors_data() {
        QTest::addColumn<QStringList>("argv");
        QTest::addColumn<QString>("message");
        QTest::newRow("unknown preset")
            << QStringList{"capacity", "--preset", "llama-9", "--context", "1024"}
            << "neither a preset";
        QTest::newRow("context with m")
            << QStringList{"capacity", "--preset", "gpt2", "--context", "16m"} << "--context";
        QTest::newRow("context negative")
            << QStringList{"capacity", "--preset", "gpt2", "--context", "-5"} << "--context";
        QTest::newRow("ratio above 1")
            << QStringList{"capacity", "--preset", "gpt2", "--context", "1024", "--ratio", "1.5"}
            << "fraction from 0 to 1";
        QTest::newRow("ratio nan")
            << QStringList{"capacity", "--preset", "gpt2", "--context", "1024", "--ratio", "nan"}
            << "finite number";
        QTest::newRow("empty ratio entry")
            << QStringList{"capacity", "--preset", "gpt2", "--context", "1024", "--ratio", "0.5,"}
            << "empty";
        QTest::newRow("dtype") << QStringList{"capacity", "--preset", "gpt2", "--context",
                                              "1024",     "--dtype",  "fp7"}
                               << "--dtype must be";
        QTest::newRow("reserve above gpu")
            << QStringList{"capacity",  "--preset", "gpt2",          "--context", "1024",
                           "--gpu-gib", "24",       "--reserve-gib", "30"}
            << "--reserve-gib";
        QTest::newRow("gpu zero") << QStringList{"capacity", "--preset",  "gpt2", "--context",
                                                 "1024",     "--gpu-gib", "0"}
                                  << "--gpu-gib";
        QTest::newRow("no context") << QStringList{"capacity", "--preset", "gpt2"} << "context";
    }
    void usageErrors() {
        QFETCH(QStringList, argv);
        QFETCH(QString, message);
        std::vector<std::string> args;
        for (const QString& a : argv)
            args.push_back(a.toStdString());
        const CliRun r = run(args);
        QCOMPARE(r.code, 2);
        QVERIFY(r.out.empty());
        QVERIFY2(QString::fromStdString(r.err).contains(message), r.err.c_str());
    }
};

QTEST_GUILESS_MAIN(TestCliCapacity)
#include "test_cli_capacity.moc"
