// SPDX-License-Identifier: MIT
// kvstudio-cli info / tokenize / capture / generate / make-model: the JSON that later tools read
// (docs/cli.md) agrees with the engine called directly, and bad input gives one clear error with
// the documented exit code.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs/capture.h"
#include "kvs/model.h"
#include "kvs_test.h"

#include <QtTest>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

using nlohmann::json;
using namespace kvs;

namespace {

using kvs::test::CliRun;
using kvs::test::run;

json runJson(const std::vector<std::string>& argv) {
    const CliRun r = run(argv);
    if (r.code != 0)
        throw std::runtime_error("exit " + std::to_string(r.code) + ": " + r.err + r.out);
    return json::parse(r.out);
}

} // namespace

class TestCli : public QObject {
    Q_OBJECT

    test::TempDir m_dir;
    std::filesystem::path m_model;

private slots:
    void initTestCase() {
        m_model = test::writeModel(m_dir, "gqa", syntheticPreset("tiny-llama-gqa"));
    }

    void infoJson() {
        const json j = runJson({"info", m_model.string(), "--json"});
        const json& c = j.at("config");
        QCOMPARE(c.at("architecture").get<std::string>(), std::string("LlamaForCausalLM"));
        QCOMPARE(c.at("layers").get<int>(), 2);
        QCOMPARE(c.at("heads").get<int>(), 8);
        QCOMPARE(c.at("kv_heads").get<int>(), 2);
        QCOMPARE(c.at("group_size").get<int>(), 4);
        QCOMPARE(c.at("head_dim").get<int>(), 12);
        // DESIGN.md's fp16 baseline: 2 bytes · (K and V) · d · kv heads · layers.
        QCOMPARE(c.at("kv_bytes_per_token_fp16").get<int>(), 2 * 2 * 12 * 2 * 2);
        QCOMPARE(c.at("rope").at("scaling").get<std::string>(), std::string("llama3"));
        QCOMPARE(j.at("checkpoint").at("files").get<int>(), 3);
        QCOMPARE(j.at("model").at("name").get<std::string>(), std::string("gqa"));
        QCOMPARE(j.at("tokenizer").at("vocab_size").get<int>(), 256);

        const CliRun text = run({"info", m_model.string()});
        QCOMPARE(text.code, 0);
        QVERIFY(text.out.find("8 heads (2 KV heads)") != std::string::npos);
    }

    void tokenizeMatchesTokenizer() {
        const std::string sample = "Let's see: 42 dogs,  two\tcats!";
        const json j = runJson({"tokenize", m_model.string(), "--text", sample, "--json"});
        auto model = Model::load(m_model);
        KVS_VERIFY_OK(model);
        const auto ids = model.value().tokenizer()->encode(sample);
        QCOMPARE(j.at("count").get<std::size_t>(), ids.size());
        std::string joined;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            QCOMPARE(j.at("tokens")[i].at("id").get<TokenId>(), ids[i]);
            joined += j.at("tokens")[i].at("text").get<std::string>();
        }
        QCOMPARE(joined, sample); // the byte-level vocabulary decodes every token exactly
    }

    void captureFileEqualsDirectCapture() {
        const auto promptFile = m_dir / "prompt.txt";
        const std::string prompt = "In the beginning God created";
        test::writeBytes(promptFile, prompt);
        const auto out = m_dir / "c.safetensors";
        const json j = runJson({"capture", m_model.string(), "--prompt-file", promptFile.string(),
                                "--out", out.string(), "--logits", "--json"});
        QCOMPARE(j.at("tokens").get<int>(), static_cast<int>(prompt.size()));
        QCOMPARE(j.at("layers").get<int>(), 2);

        auto loaded = loadCapture(out);
        KVS_VERIFY_OK(loaded);
        auto model = Model::load(m_model);
        KVS_VERIFY_OK(model);
        auto direct = model.value().capture(prompt, {.logits = true});
        KVS_VERIFY_OK(direct);
        const Capture& a = loaded.value();
        const Capture& b = direct.value();
        QCOMPARE(a.tokens, b.tokens);
        QCOMPARE(a.prompt, prompt);
        for (std::size_t l = 0; l < b.layers.size(); ++l)
            for (std::size_t h = 0; h < b.layers[l].kvHeads.size(); ++h) {
                const auto& x = a.layers[l].kvHeads[h];
                const auto& y = b.layers[l].kvHeads[h];
                QCOMPARE(test::maxAbsDiff(x.keys, y.keys), 0.0);
                QCOMPARE(test::maxAbsDiff(x.keysPreRope, y.keysPreRope), 0.0);
                QCOMPARE(test::maxAbsDiff(x.values, y.values), 0.0);
                QCOMPARE(x.queries.size(), std::size_t(4));
                QCOMPARE(test::maxAbsDiff(x.queries[3], y.queries[3]), 0.0);
            }
        QCOMPARE(a.logits.rows(), Eigen::Index(prompt.size()));
        QCOMPARE(test::maxAbsDiff(a.logits, b.logits), 0.0);
    }

    void generateIsGreedyDecoding() {
        const std::string prompt = "And God said";
        const json j =
            runJson({"generate", m_model.string(), "--prompt", prompt, "--tokens", "6", "--json"});
        auto model = Model::load(m_model);
        KVS_VERIFY_OK(model);
        const Model& m = model.value();
        const auto promptIds = m.tokenizer()->encode(prompt);
        QCOMPARE(j.at("prompt_tokens").get<std::size_t>(), promptIds.size());
        // Independent of the KV cache: recompute the whole sequence for every new token.
        std::vector<TokenId> seq = promptIds;
        for (int step = 0; step < 6; ++step) {
            const Matrix logits = m.forward(seq);
            Eigen::Index best = 0;
            logits.row(logits.rows() - 1).maxCoeff(&best);
            QCOMPARE(j.at("tokens")[step].at("id").get<TokenId>(), static_cast<TokenId>(best));
            seq.push_back(static_cast<TokenId>(best));
        }
    }

    // --out never replaces a file KV Studio did not write (the prompt file itself here) unless
    // --force; the refusal is exit code 1 with the code "exists" and the file is untouched.
    void outputsRefuseForeignFilesWithoutForce() {
        const auto promptFile = m_dir / "own-prompt.txt";
        const std::string prompt = "In the beginning";
        test::writeBytes(promptFile, prompt);
        const std::vector<std::string> capture = {"capture",       m_model.string(),
                                                  "--prompt-file", promptFile.string(),
                                                  "--out",         promptFile.string()};
        auto withJson = capture;
        withJson.push_back("--json");
        const CliRun refused = run(withJson);
        QCOMPARE(refused.code, 1);
        const json j = json::parse(refused.out);
        QCOMPARE(j.at("error").at("code").get<std::string>(), std::string("exists"));
        const std::string message = j.at("error").at("message").get<std::string>();
        QVERIFY2(message.find("refusing to overwrite " + promptFile.string()) != std::string::npos,
                 message.c_str());
        QVERIFY2(message.find("not written by KV Studio") != std::string::npos, message.c_str());
        QVERIFY2(message.find("--force") != std::string::npos, message.c_str());
        QCOMPARE(test::readBytes(promptFile), prompt);

        auto forced = capture;
        forced.push_back("--force");
        QCOMPARE(run(forced).code, 0);
        KVS_VERIFY_OK(loadCapture(promptFile));
        // Now a capture of ours: replaced without --force.
        QCOMPARE(
            run({"capture", m_model.string(), "--prompt", prompt, "--out", promptFile.string()})
                .code,
            0);

        // make-model into a folder holding someone's config.json: refused, nothing written.
        const auto folder = m_dir / "theirs";
        std::filesystem::create_directories(folder);
        test::writeBytes(folder / "config.json", "{\"model_type\": \"llama\"}");
        const CliRun made = run({"make-model", "tiny-gpt2", "--out", folder.string()});
        QCOMPARE(made.code, 1);
        QVERIFY2(made.err.find("config.json") != std::string::npos, made.err.c_str());
        QVERIFY(!std::filesystem::exists(folder / "model.safetensors"));
        QCOMPARE(run({"make-model", "tiny-gpt2", "--out", folder.string(), "--force"}).code, 0);
        KVS_VERIFY_OK(Model::load(folder));
    }

    // The sweep's table and JSON lead with the headline KL and fit their slope to it (or to
    // the metric --fit names); an unknown --fit is a usage error that lists the metrics.
    void sweepLeadsWithTheHeadline() {
        const std::vector<std::string> base = {
            "sweep",     m_model.string(),
            "--prompt",  "In the beginning God created the heaven",
            "--scheme",  "select.sinks_window:sinks=1",
            "--values",  "0.25,0.5,0.75",
            "--context", "24",
            "--backend", "cpu"};
        auto with = [&](std::vector<std::string> extra) {
            std::vector<std::string> argv = base;
            argv.insert(argv.end(), extra.begin(), extra.end());
            return argv;
        };
        const json j = runJson(with({"--json"}));
        const json& sweep = j.at("sweeps").at(0);
        QCOMPARE(sweep.at("slope_vs_kept").at("metric").get<std::string>(), std::string("kl_nats"));
        for (const json& p : sweep.at("points")) {
            QVERIFY(p.at("quality").at("kl_mean").get<double>() >= 0);
            // Plain eviction: the attention shift is the mass lost.
            QVERIFY(std::abs(p.at("total_variation").get<double>() -
                             p.at("mass_lost").get<double>()) < 1e-5);
            QVERIFY(p.at("head_output_error").get<double>() > 0);
        }
        const json fitted = runJson(with({"--fit", "context_error", "--json"}));
        QCOMPARE(fitted.at("sweeps").at(0).at("slope_vs_kept").at("metric").get<std::string>(),
                 std::string("context_error"));
        const CliRun table = run(base);
        QCOMPARE(table.code, 0);
        const auto header = table.out.find("KL nats");
        QVERIFY2(header != std::string::npos && header < table.out.find("head err") &&
                     table.out.find("head err") < table.out.find("ctx err"),
                 table.out.c_str());
        QVERIFY(table.out.find("slope of log(kl_nats)") != std::string::npos);
        const CliRun bad = run(with({"--fit", "accuracy"}));
        QCOMPARE(bad.code, 2);
        QVERIFY2(bad.err.find("accuracy") != std::string::npos &&
                     bad.err.find("head_output_error") != std::string::npos,
                 bad.err.c_str());
    }

    // A degenerate budget is marked wherever the point is reported: eval's text and JSON, the
    // sweep table (a * on the value and the reason below), its JSON and CSV.
    void degenerateBudgetsAreMarked() {
        const std::vector<std::string> common = {"--prompt",
                                                 "In the beginning God created the heaven and the "
                                                 "earth, and the earth was without form",
                                                 "--context",
                                                 "60",
                                                 "--backend",
                                                 "cpu",
                                                 "--no-quality"};
        const auto with = [&](std::vector<std::string> argv, std::vector<std::string> extra) {
            argv.insert(argv.end(), common.begin(), common.end());
            argv.insert(argv.end(), extra.begin(), extra.end());
            return argv;
        };
        const std::string reason =
            "budget 20 tokens < sinks 4 + window 32: cut to 4 + 16, nothing chosen";
        const CliRun text =
            run(with({"eval", m_model.string(), "--scheme", "select.tova:tokens=20"}, {}));
        QCOMPARE(text.code, 0);
        QVERIFY2(text.out.find("DEGENERATE") != std::string::npos &&
                     text.out.find(reason) != std::string::npos,
                 text.out.c_str());
        const json flagged = runJson(
            with({"eval", m_model.string(), "--scheme", "select.tova:tokens=20"}, {"--json"}));
        QCOMPARE(flagged.at("degenerate").at("reason").get<std::string>(), reason);
        QCOMPARE(flagged.at("degenerate").at("heads").get<std::size_t>(),
                 flagged.at("heads").size());
        QCOMPARE(flagged.at("heads").at(0).at("degenerate").get<std::string>(), reason);
        const json fine = runJson(
            with({"eval", m_model.string(), "--scheme", "select.tova:tokens=45"}, {"--json"}));
        QVERIFY(fine.at("degenerate").is_null());
        QVERIFY(fine.at("heads").at(0).at("degenerate").is_null());

        const std::vector<std::string> sweep = {"sweep",       m_model.string(), "--scheme",
                                                "select.tova", "--param",        "tokens",
                                                "--values",    "20,45"};
        const CliRun table = run(with(sweep, {}));
        QCOMPARE(table.code, 0);
        QVERIFY2(table.out.find("20*") != std::string::npos &&
                     table.out.find("45*") == std::string::npos &&
                     table.out.find("* tokens = 20: degenerate on") != std::string::npos &&
                     table.out.find(reason) != std::string::npos &&
                     table.out.find("degenerate budgets left out") != std::string::npos,
                 table.out.c_str());
        const json j = runJson(with(sweep, {"--json"}));
        const json& points = j.at("sweeps").at(0).at("points");
        QCOMPARE(points.at(0).at("degenerate").at("reason").get<std::string>(), reason);
        QVERIFY(points.at(1).at("degenerate").is_null());
        const CliRun csv = run(with(sweep, {"--csv"}));
        QCOMPARE(csv.code, 0);
        QVERIFY2(csv.out.find("degenerate_heads,degenerate\n") != std::string::npos &&
                     csv.out.find(",\"" + reason + "\"\n") != std::string::npos,
                 csv.out.c_str());
    }

    void makeModelWritesLoadableFolder() {
        const auto out = m_dir / "made";
        const CliRun r = run({"make-model", "tiny-gpt2", "--out", out.string(), "--dtype", "F16"});
        QCOMPARE(r.code, 0);
        auto model = Model::load(out);
        KVS_VERIFY_OK(model);
        QCOMPARE(model.value().config().architecture, std::string("GPT2LMHeadModel"));
    }

    void errors_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<int>("exitCode");
        QTest::addColumn<QString>("errorCode");
        QTest::addColumn<QString>("fragment");
        QTest::newRow("no such folder") << QStringList{"info", "@/nope", "--json"} << 1 << "io"
                                        << "@/nope: no such model folder";
        QTest::newRow("missing MODEL") << QStringList{"info", "--json"} << 2 << "usage"
                                       << "MODEL";
        QTest::newRow("unknown command") << QStringList{"frobnicate", "--json"} << 2 << "usage"
                                         << "frobnicate";
        QTest::newRow("unknown option")
            << QStringList{"info", "@model", "--bogus", "--json"} << 2 << "usage"
            << "--bogus";
        QTest::newRow("empty prompt file")
            << QStringList{"capture", "@model", "--prompt-file", "@/empty.txt",
                           "--out",   "@/x",    "--json"}
            << 1 << ""
            << "empty.txt";
        QTest::newRow("missing prompt file")
            << QStringList{"capture", "@model", "--prompt-file", "@/absent.txt",
                           "--out",   "@/x",    "--json"}
            << 1 << "io"
            << "absent.txt";
        QTest::newRow("negative token count")
            << QStringList{"generate", "@model", "--prompt", "a", "--tokens", "-3", "--json"} << 2
            << "usage"
            << "--tokens";
        QTest::newRow("unknown preset")
            << QStringList{"make-model", "tiny-nothing", "--out", "@/y", "--json"} << 2 << "usage"
            << "unknown preset 'tiny-nothing' (presets: tiny-gpt2";
    }
    void errors() {
        QFETCH(QStringList, args);
        QFETCH(int, exitCode);
        QFETCH(QString, errorCode);
        QFETCH(QString, fragment);
        test::writeBytes(m_dir / "empty.txt", "");
        auto expand = [&](QString s) {
            s.replace("@model", QString::fromStdString(m_model.string()));
            s.replace("@", QString::fromStdString(m_dir.path().string()));
            return s.toStdString();
        };
        std::vector<std::string> argv;
        for (const QString& a : args)
            argv.push_back(expand(a));
        const CliRun r = run(argv);
        QCOMPARE(r.code, exitCode);
        const json j = json::parse(r.out.empty() ? r.err : r.out);
        const std::string message = j.at("error").at("message").get<std::string>();
        QVERIFY2(message.find(expand(fragment)) != std::string::npos, message.c_str());
        if (!errorCode.isEmpty())
            QCOMPARE(j.at("error").at("code").get<std::string>(), errorCode.toStdString());
        QVERIFY(!std::filesystem::exists(m_dir / "x")); // a failed capture writes nothing
    }

    // bench attention lays out each compressed form; the byte counts follow the formulas
    // (per head: fp16 4nd; k4v2 codes nd/2 + nd/4 and 4 B per group of 32; low rank 2n(r + d) +
    // 2dr with r = d/4; the Hadamard-rotated and pre-RoPE q4 forms store what q4 stores, the
    // one with outliers 48 bits more per outlier); an
    // unknown format is a usage error.
    void benchAttentionFormats() {
        const json j = runJson({"bench", "attention", "--backend", "cpu", "--contexts", "256",
                                "--dims", "32", "--heads", "2", "--formats",
                                "fp16,k4v2,lowrank,lowrank_rope,q4,q4_hadamard,q4_rope,q4_outliers",
                                "--repeats", "1", "--warmup", "0", "--cpu-repeats", "1", "--json"});
        const int n = 256, d = 32, r = 8, heads = 2;
        const std::map<std::string, int> expected = {
            {"fp16", heads * 4 * n * d},
            {"k4v2", heads * (n * d / 2 + n * d / 4 + 4 * (n / 32) * d + 4 * n)},
            {"lowrank", heads * (2 * n * (r + d) + 2 * d * r)},
            {"lowrank_rope", heads * (2 * n * (r + d) + 2 * d * r)},
            {"q4", heads * (n * d + 4 * (n / 32) * d + 4 * n)},
            {"q4_hadamard", heads * (n * d + 4 * (n / 32) * d + 4 * n)},
            {"q4_rope", heads * (n * d + 4 * (n / 32) * d + 4 * n)},
            // + 1% of each matrix's elements (82 of 8,192) at 6 bytes: 32-bit index, fp16 value.
            {"q4_outliers", heads * (n * d + 4 * (n / 32) * d + 4 * n + 2 * 6 * 82)}};
        QCOMPARE(j["rows"].size(), expected.size());
        for (const auto& row : j["rows"]) {
            const std::string format = row["cache"].get<std::string>();
            QVERIFY2(expected.count(format), format.c_str());
            QCOMPARE(row["cache_bytes"].get<int>(), expected.at(format));
            QVERIFY(row["cpu"]["us_median"].get<double>() > 0.0);
        }
        const CliRun bad = run({"bench", "attention", "--formats", "fp8"});
        QCOMPARE(bad.code, 2);
        QVERIFY(bad.err.find("unknown format 'fp8'") != std::string::npos);
    }

    // Without --param and --values the sweep visits what the studio's curve visits: the
    // scheme's own budget parameter — the KV-head divisors for post-hoc sharing, ranks up to d
    // for factored keys (larger ones reported as skipped).
    // --mode streaming: the whole prompt streams through the scheme's online form; with a budget
    // holding the prompt it is exact; schemes that need the future are refused with the reason;
    // post-prefill stays the default.
    void evalAndSweepStreamingMode() {
        const std::vector<std::string> base = {
            "eval",      m_model.string(),
            "--prompt",  "In the beginning God created the heaven",
            "--context", "24",
            "--backend", "cpu",
            "--json"};
        auto with = [&](std::vector<std::string> extra) {
            std::vector<std::string> argv = base;
            argv.insert(argv.end(), extra.begin(), extra.end());
            return argv;
        };
        const json post = runJson(with({"--scheme", "select.sinks_window:keep=0.25"}));
        QCOMPARE(post.at("mode").get<std::string>(), std::string("post-prefill"));
        const json stream =
            runJson(with({"--scheme", "select.sinks_window:keep=0.25", "--mode", "streaming"}));
        QCOMPARE(stream.at("mode").get<std::string>(), std::string("streaming"));
        QVERIFY(stream.at("quality").at("kl_mean").get<double>() > 0);
        QVERIFY(stream.at("quality").at("kl_mean").get<double>() !=
                post.at("quality").at("kl_mean").get<double>());
        const json exact = runJson(
            with({"--scheme", "select.h2o:tokens=4096,precision=32", "--mode", "streaming"}));
        QVERIFY(exact.at("quality").at("kl_mean").get<double>() < 1e-7);
        QVERIFY(exact.at("head_output_error").get<double>() < 1e-5);

        const CliRun refused = run(with({"--scheme", "select.snapkv", "--mode", "streaming"}));
        QVERIFY(refused.code != 0);
        QVERIFY2(refused.err.find("select.snapkv cannot stream") != std::string::npos &&
                     refused.err.find("future") != std::string::npos,
                 refused.err.c_str());
        const CliRun badMode = run(with({"--scheme", "identity", "--mode", "online"}));
        QCOMPARE(badMode.code, 2);
        QVERIFY2(badMode.err.find("post-prefill or streaming") != std::string::npos,
                 badMode.err.c_str());

        const json sweep = runJson(
            {"sweep", m_model.string(), "--prompt", "In the beginning God created the heaven",
             "--scheme", "select.sinks_window coreset.streaming", "--values", "0.25,0.5",
             "--context", "24", "--backend", "cpu", "--mode", "streaming", "--json"});
        QCOMPARE(sweep.at("mode").get<std::string>(), std::string("streaming"));
        for (const json& s : sweep.at("sweeps"))
            for (const json& p : s.at("points"))
                QVERIFY(p.at("quality").at("kl_mean").get<double>() >= 0);
        // Over a prompt set (test_cli_sweep_study has the rest): a scheme that cannot stream
        // is refused before any work.
        const CliRun study =
            run({"sweep", m_model.string(), "--prompt-set", (m_dir / "prompt-set").string(),
                 "--scheme", "select.snapkv", "--mode", "streaming"});
        QCOMPARE(study.code, 2);
        QVERIFY2(study.err.find("select.snapkv cannot stream") != std::string::npos,
                 study.err.c_str());
    }

    void sweepDefaultsToTheSchemesBudget() {
        const json j = runJson({"sweep", m_model.string(), "--prompt",
                                "In the beginning God created the heaven", "--scheme",
                                "share.pool factor.weight_svd", "--context", "24", "--backend",
                                "cpu", "--json"});
        const json& pool = j.at("sweeps").at(0);
        QCOMPARE(pool.at("param").get<std::string>(), std::string("kv_heads"));
        std::vector<double> visited;
        for (const json& p : pool.at("points"))
            visited.push_back(p.at("value").get<double>());
        QCOMPARE(visited, (std::vector<double>{1, 2})); // the tiny model has 2 KV heads
        const json& svd = j.at("sweeps").at(1);
        QCOMPARE(svd.at("param").get<std::string>(), std::string("rank"));
        QVERIFY(!svd.at("points").empty());
        for (const json& p : svd.at("points"))
            QVERIFY(p.at("value").get<double>() <= 12); // d of tiny-llama-gqa
        QVERIFY(!svd.at("skipped").empty());
    }

    // eval --prompt-set: one row per prompt (each the mean over its seeds), the summary the mean
    // over prompts with a 95% Student-t interval recomputed here from the rows and the table
    // value t(0.975, 2) = 4.3026527; seeds change a random scheme's result; misuse is a usage
    // error before any work.
    // allocate: per value, the allocation within the uniform setting's bytes loses no more
    // summed projected error than the uniform setting; its plan names every head; a scheme that
    // rewrites the weights and a value out of range are usage errors (exit 2).
    void allocateAgainstUniform() {
        const std::vector<std::string> base = {"allocate",
                                               m_model.string(),
                                               "--prompt",
                                               "In the beginning God created the heaven and the "
                                               "earth, and the earth was without form",
                                               "--backend",
                                               "cpu"};
        auto with = [&](std::vector<std::string> extra) {
            std::vector<std::string> argv = base;
            argv.insert(argv.end(), extra.begin(), extra.end());
            return argv;
        };
        const json j = runJson(with({"--scheme", "select.h2o", "--values", "0.125,0.5", "--json"}));
        QCOMPARE(j.at("error_measure").get<std::string>(), std::string("projected"));
        QCOMPARE(j.at("heads").get<int>(), 4); // 2 layers × 2 KV heads
        QCOMPARE(j.at("rows").size(), std::size_t(2));
        for (const json& row : j.at("rows")) {
            const json &u = row.at("uniform"), &a = row.at("allocated");
            QVERIFY(a.at("bytes").get<std::size_t>() <= row.at("budget_bytes").get<std::size_t>());
            QVERIFY(a.at("head_error_squares").get<double>() <=
                    u.at("head_error_squares").get<double>());
            QVERIFY(u.at("kl_mean").is_number() && a.at("kl_mean").is_number());
            QCOMPARE(row.at("allocation").at("plan").size(), std::size_t(4));
        }
        const CliRun text =
            run(with({"--scheme", "select.h2o", "--values", "0.25", "--show-plan"}));
        QCOMPARE(text.code, 0);
        QVERIFY2(text.out.find("alloc KL") != std::string::npos &&
                     text.out.find("plan at the bytes of keep=0.25") != std::string::npos,
                 text.out.c_str());
        const CliRun rewrite = run(with({"--scheme", "share.pool"}));
        QCOMPARE(rewrite.code, 2);
        QVERIFY2(rewrite.err.find("rewrites the model's weights") != std::string::npos,
                 rewrite.err.c_str());
        const CliRun range = run(with({"--scheme", "select.h2o", "--values", "7"}));
        QCOMPARE(range.code, 2);
    }

    void evalOverAPromptSet() {
        const auto set = m_dir / "prompt-set";
        std::filesystem::create_directories(set);
        test::writeBytes(set / "a.txt", "In the beginning God created the heaven and the earth.");
        test::writeBytes(set / "b.txt", "And the earth was without form, and void; and darkness.");
        test::writeBytes(set / "c.txt", "And God said, Let there be light: and there was light.");
        test::writeBytes(set / "notes.md", "not a prompt");
        const json j = runJson({"eval", m_model.string(), "--prompt-set", set.string(), "--scheme",
                                // No exact part: on prompts this short the default 4 + 32 would
                                // take the whole budget and leave the seeds nothing to choose.
                                "select.uniform:keep=0.5,sinks=0,window=0", "--seeds", "3",
                                "--backend", "cpu", "--json"});
        const json& prompts = j.at("prompts");
        QCOMPARE(prompts.size(), std::size_t(3));
        QCOMPARE(prompts.at(0).at("file").get<std::string>(), std::string("a.txt"));
        std::vector<double> kl;
        bool seedsDiffer = false;
        for (const json& p : prompts) {
            const json& seeds = p.at("seeds");
            QCOMPARE(seeds.size(), std::size_t(3));
            double sum = 0;
            for (const json& s : seeds)
                sum += s.at("kl_mean").get<double>();
            QVERIFY(std::abs(p.at("kl_mean").get<double>() - sum / 3) < 1e-12);
            seedsDiffer = seedsDiffer || seeds.at(0).at("kl_mean") != seeds.at(1).at("kl_mean");
            kl.push_back(p.at("kl_mean").get<double>());
        }
        QVERIFY(seedsDiffer);
        const double mean = (kl[0] + kl[1] + kl[2]) / 3;
        double ss = 0;
        for (double v : kl)
            ss += (v - mean) * (v - mean);
        const double sd = std::sqrt(ss / 2);
        const json& s = j.at("summary").at("kl_nats_per_token");
        QVERIFY(std::abs(s.at("mean").get<double>() - mean) < 1e-12);
        QVERIFY(std::abs(s.at("sd").get<double>() - sd) < 1e-12);
        QVERIFY(std::abs(s.at("half_width").get<double>() - 4.3026527 * sd / std::sqrt(3.0)) <
                1e-6 * std::max(sd, 1e-12));
        QCOMPARE(s.at("over").get<std::string>(), std::string("prompts"));
        QCOMPARE(s.at("n").get<int>(), 3);

        const auto usage = [&](std::vector<std::string> extra) {
            std::vector<std::string> argv = {"eval",      m_model.string(),
                                             "--scheme",  "select.uniform:keep=0.5",
                                             "--backend", "cpu"};
            argv.insert(argv.end(), extra.begin(), extra.end());
            return run(argv);
        };
        QCOMPARE(usage({"--prompt-set", set.string(), "--prompt", "x"}).code, 2);
        QCOMPARE(usage({"--prompt-set", set.string(), "--seed", "1", "--seeds", "2"}).code, 2);
        QCOMPARE(usage({"--prompt", "In the beginning", "--seeds", "2"}).code, 2);
        QCOMPARE(usage({"--prompt-set", set.string(), "--seeds", "0"}).code, 2);
        const auto one = m_dir / "one-prompt";
        std::filesystem::create_directories(one);
        test::writeBytes(one / "a.txt", "In the beginning God created the heaven and the earth.");
        const CliRun single = usage({"--prompt-set", one.string()});
        QCOMPARE(single.code, 1);
        QVERIFY2(single.err.find("at least two prompt files") != std::string::npos,
                 single.err.c_str());
    }

    // spectrum: one entry per layer and KV head, each spectrum descending, energies in [0, 1]
    // and 1 at full rank.
    void spectrumJson() {
        const auto at = [&](const std::string& rank) {
            return runJson({"spectrum", m_model.string(), "--prompt",
                            "In the beginning God created the heaven", "--rank", rank, "--json"});
        };
        const json j = at("3");
        QCOMPARE(j.at("heads").size(), std::size_t(4)); // 2 layers × 2 KV heads
        for (const json& h : j.at("heads")) {
            for (const char* key : {"key_projection", "keys", "scores"}) {
                const auto sigma = h.at(key).get<std::vector<double>>();
                QVERIFY(!sigma.empty());
                QVERIFY(std::is_sorted(sigma.rbegin(), sigma.rend()));
                const double e = h.at("energy_kept").at(key).get<double>();
                QVERIFY(e > 0.0 && e < 1.0);
            }
        }
        const json full = at("12"); // named: a temporary would die before the loop runs
        for (const json& h : full.at("heads"))
            QVERIFY(std::abs(h.at("energy_kept").at("scores").get<double>() - 1.0) < 1e-12);
        QCOMPARE(run({"spectrum", m_model.string(), "--prompt", "In the beginning", "--rank", "13"})
                     .code,
                 2);
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
