// SPDX-License-Identifier: MIT
// Hostile files as a user hands them over (#17): fifos, devices, folders and oversized or deeply
// nested JSON where a model file is expected, configs that promise what the checkpoint lacks,
// weights that overflow, make-model over other models, and a writer killed mid-write. Each is
// refused at once with a message naming the file and the problem (docs/bad-input.md).
#include "kvs/file_util.h"
#include "kvs/model.h"
#include "kvs/output_writer.h"
#include "kvs/safetensors.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QElapsedTimer>
#include <QtTest>
#include <csignal>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using nlohmann::json;
using namespace kvs;
namespace fs = std::filesystem;

namespace {

void editConfig(const fs::path& folder, const std::string& key, const json& value) {
    json j = json::parse(test::readBytes(folder / "config.json"));
    j[key] = value;
    test::writeBytes(folder / "config.json", j.dump(2));
}

// `depth` Sequences, each holding the next, around `leaf`: {"type": "Sequence", KEY: [...]}.
std::string nestedSequence(const std::string& key, const std::string& leaf, int depth) {
    std::string text;
    for (int i = 0; i < depth; ++i)
        text += "{\"type\": \"Sequence\", \"" + key + "\": [";
    text += leaf;
    for (int i = 0; i < depth; ++i)
        text += "]}";
    return text;
}

// Replaces the component `component` of the folder's tokenizer.json with raw JSON text.
void setTokenizerComponent(const fs::path& folder, const std::string& component,
                           const std::string& rawJson) {
    json j = json::parse(test::readBytes(folder / "tokenizer.json"));
    j[component] = "@@";
    std::string text = j.dump();
    text.replace(text.find("\"@@\""), 4, rawJson);
    test::writeBytes(folder / "tokenizer.json", text);
}

// The files of a folder whose names start with a dot (the writer's temporaries).
QStringList hiddenFiles(const fs::path& folder) {
    QStringList names;
    for (const auto& e : fs::directory_iterator(folder))
        if (e.path().filename().string().starts_with("."))
            names << QString::fromStdString(e.path().filename().string());
    return names;
}

} // namespace

class TestBadInput : public QObject {
    Q_OBJECT

private slots:
    // A model folder one of whose files is not what it should be. Each case must fail (not
    // hang, not allocate gigabytes) within a second, naming the file and what is wrong.
    void modelFolderRefusals_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("setup");
        QTest::addColumn<QString>("file");     // the file the message names
        QTest::addColumn<QString>("fragment"); // what it says
        QTest::newRow("config.json is a fifo") << "tiny-gpt2"
                                               << "fifo config.json"
                                               << "config.json"
                                               << "is a fifo (named pipe), not a regular file";
        QTest::newRow("model.safetensors is a fifo") << "tiny-gpt2"
                                                     << "fifo model.safetensors"
                                                     << "model.safetensors"
                                                     << "is a fifo";
        QTest::newRow("tokenizer.json is a fifo") << "tiny-gpt2"
                                                  << "fifo tokenizer.json"
                                                  << "tokenizer.json"
                                                  << "is a fifo";
        QTest::newRow("config.json is a folder") << "tiny-gpt2"
                                                 << "folder config.json"
                                                 << "config.json"
                                                 << "is a directory, not a file";
        QTest::newRow("tokenizer.json is a folder") << "tiny-gpt2"
                                                    << "folder tokenizer.json"
                                                    << "tokenizer.json"
                                                    << "is a directory, not a file";
        QTest::newRow("config.json is /dev/zero") << "tiny-gpt2"
                                                  << "zero config.json"
                                                  << "config.json"
                                                  << "is a device, not a regular file";
        QTest::newRow("config.json of 17 MiB")
            << "tiny-gpt2"
            << "huge config.json"
            << "config.json"
            << "the file is 17.0 MiB, more than the 16.0 MiB read whole for it";
        QTest::newRow("decoder nested 100,000 deep") << "tiny-gpt2"
                                                     << "deep decoder"
                                                     << "tokenizer.json"
                                                     << "JSON nested deeper than 64 levels";
        QTest::newRow("normalizer nested 100,000 deep") << "tiny-gpt2"
                                                        << "deep normalizer"
                                                        << "tokenizer.json"
                                                        << "JSON nested deeper than 64 levels";
        QTest::newRow("pre-tokenizer nested 3,000 deep") << "tiny-gpt2"
                                                         << "deep pre_tokenizer"
                                                         << "tokenizer.json"
                                                         << "JSON nested deeper than 64 levels";
        QTest::newRow("config.json nested 10,000 deep") << "tiny-llama"
                                                        << "deep config.json"
                                                        << "config.json"
                                                        << "JSON nested deeper than 64 levels";
        QTest::newRow("a billion layers")
            << "tiny-llama"
            << "layers 1000000000"
            << "config.json"
            << "missing tensor 'model.layers.999999999.input_layernorm.weight' that";
        QTest::newRow("negative rms_norm_eps") << "tiny-llama"
                                               << "eps -1"
                                               << "config.json"
                                               << "\"rms_norm_eps\" must not be negative, got -1";
        QTest::newRow("negative layer_norm_epsilon")
            << "tiny-gpt2"
            << "eps -1"
            << "config.json"
            << "\"layer_norm_epsilon\" must not be negative, got -1";
    }
    void modelFolderRefusals() {
        QFETCH(QString, preset);
        QFETCH(QString, setup);
        QFETCH(QString, file);
        QFETCH(QString, fragment);
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset(preset.toStdString()));
        const QStringList words = setup.split(' ');
        const fs::path target = folder / words.value(1).toStdString();
        if (words[0] == "fifo") {
            fs::remove(target);
            QCOMPARE(::mkfifo(target.c_str(), 0644), 0);
        } else if (words[0] == "folder") {
            fs::remove(target);
            fs::create_directory(target);
        } else if (words[0] == "zero") {
            fs::remove(target);
            fs::create_symlink("/dev/zero", target);
        } else if (words[0] == "huge") {
            fs::resize_file(target, std::uintmax_t(17) << 20); // sparse: no time, no disk
        } else if (words[0] == "deep" && words[1] == "config.json") {
            editConfig(folder, "rope_scaling", "@@");
            std::string text = test::readBytes(target);
            text.replace(text.find("\"@@\""), 4,
                         std::string(10000, '[') + "1" + std::string(10000, ']'));
            test::writeBytes(target, text);
        } else if (words[0] == "deep") {
            const bool pre = words[1] == "pre_tokenizer";
            const std::string key = words[1] == "decoder"      ? "decoders"
                                    : words[1] == "normalizer" ? "normalizers"
                                                               : "pretokenizers";
            const std::string leaf = words[1] == "decoder"      ? "{\"type\": \"ByteLevel\"}"
                                     : words[1] == "normalizer" ? "{\"type\": \"NFC\"}"
                                                                : "{\"type\": \"ByteLevel\", "
                                                                  "\"add_prefix_space\": false}";
            setTokenizerComponent(folder, words[1].toStdString(),
                                  nestedSequence(key, leaf, pre ? 3000 : 100000));
        } else if (words[0] == "layers") {
            editConfig(folder, "num_hidden_layers", words[1].toInt());
        } else if (words[0] == "eps") {
            editConfig(folder, preset == "tiny-gpt2" ? "layer_norm_epsilon" : "rms_norm_eps",
                       words[1].toDouble());
        }
        QElapsedTimer clock;
        clock.start();
        for (const bool describeOnly : {false, true}) {
            LoadOptions options;
            options.describeOnly = describeOnly;
            const auto r = Model::load(folder, options);
            const std::string where = (folder / file.toStdString()).string();
            const QByteArray wanted = fragment.toUtf8(); // outlives the macro's fragment list
            KVS_VERIFY_ERROR(r, where.c_str(), wanted.constData());
        }
        QVERIFY2(clock.elapsed() < 5000, qPrintable(QString::number(clock.elapsed()) + " ms"));
    }

    // The layer count is checked against the checkpoint and the message gives both numbers.
    void aBillionLayersNamesBothCounts() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-llama"));
        editConfig(folder, "num_hidden_layers", 1000000000);
        KVS_VERIFY_ERROR(Model::load(folder), "it says 1000000000 layers",
                         "the checkpoint holds 21 tensors");
    }

    // Files read whole are capped; a fifo is refused by its type without waiting for a writer.
    void readFileRefusesWhatIsNotADocument() {
        test::TempDir dir;
        const fs::path fifo = dir / "prompt.txt";
        QCOMPARE(::mkfifo(fifo.c_str(), 0644), 0);
        KVS_VERIFY_THROWS(readFile(fifo, kMaxPromptBytes), ErrorCode::Io, "is a fifo");
        KVS_VERIFY_THROWS(readFile("/dev/zero", kMaxPromptBytes), ErrorCode::Io, "is a device");
        KVS_VERIFY_THROWS(readFile(dir.path(), kMaxPromptBytes), ErrorCode::Io,
                          "is a directory, not a file");
        const fs::path big = dir / "big.txt";
        test::writeBytes(big, std::string(1001, 'x'));
        KVS_VERIFY_THROWS(readFile(big, 1000), ErrorCode::Format, "more than the");
        test::writeBytes(big, std::string(1000, 'x'));
        QCOMPARE(readFile(big, 1000).size(), std::size_t(1000));
        // Nesting: 64 levels pass, 65 do not; brackets inside strings do not count.
        const std::string deep64 = std::string(64, '[') + std::string(64, ']');
        checkJsonNesting(deep64, "x.json");
        checkJsonNesting("[\"" + std::string(100, '[') + "\\\"\"]", "x.json");
        const auto nested = [](const std::string& text) {
            return catchErrors([&] {
                checkJsonNesting(text, "x.json");
                return true;
            });
        };
        KVS_VERIFY_ERROR(nested("[" + deep64 + "]"),
                         "x.json: JSON nested deeper than 64 levels (at byte 64)");
    }

    // Finite weights whose products overflow: generate fails naming the first tensor that is
    // not finite (before the fix it printed blank tokens and exited 0).
    void generateNamesWhereValuesStopBeingFinite() {
        test::TempDir dir;
        SyntheticModelSpec spec = syntheticPreset("tiny-llama");
        spec.dtype = DType::F32;
        const auto folder = test::writeModel(dir, "m", spec);
        {
            // Layer 1's value projection at 3e38: its outputs overflow to infinity.
            SafetensorsWriter w;
            auto opened = SafetensorsFile::open(folder / "model.safetensors");
            const SafetensorsFile& f = opened.valueOrThrow();
            for (const auto& [k, v] : f.metadata())
                w.setMetadata(k, v);
            for (const auto& name : f.names()) {
                const auto& info = f.info(name);
                if (name == "model.layers.1.self_attn.v_proj.weight") {
                    std::vector<float> big(static_cast<std::size_t>(info.numel()), 3e38f);
                    w.add(name, info.dtype, info.shape, std::as_bytes(std::span<const float>(big)));
                } else {
                    w.add(name, info.dtype, info.shape, f.bytes(name));
                }
            }
            w.write(folder / "model.safetensors.new").valueOrThrow();
        }
        fs::rename(folder / "model.safetensors.new", folder / "model.safetensors");
        auto model = Model::load(folder);
        KVS_VERIFY_OK(model);
        const auto ids = model.value().tokenizer()->encode("In the");
        const auto generated = model.value().generateGreedy(ids, 3);
        KVS_VERIFY_ERROR(generated, "generating token 1",
                         "tensor 'layers.1.kv_heads.0.values' holds inf");
        QCOMPARE(generated.error().code(), ErrorCode::NotFinite);
    }

    // make-model over a sharded model: the old index and shards go (the loader would prefer
    // them), the new weights load. Over someone else's shard: refused, nothing written.
    void makeModelReplacesAShardedLayoutWhole() {
        test::TempDir dir;
        const fs::path folder = dir / "m";
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-llama-gqa"), folder)); // 3 shards
        QVERIFY(fs::exists(folder / "model.safetensors.index.json"));
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-gpt2"), folder)); // one file
        QVERIFY(!fs::exists(folder / "model.safetensors.index.json"));
        QVERIFY(!fs::exists(folder / "model-00001-of-00003.safetensors"));
        auto model = Model::load(folder);
        KVS_VERIFY_OK(model);
        QCOMPARE(model.value().config().architecture, std::string("GPT2LMHeadModel"));

        test::writeBytes(folder / "model-00001-of-00002.safetensors", "someone else's shard");
        const auto refused = writeSyntheticModel(syntheticPreset("tiny-llama"), folder);
        KVS_VERIFY_ERROR(refused, "refusing to overwrite",
                         "model-00001-of-00002.safetensors: it was not written by KV Studio");
        QCOMPARE(refused.error().code(), ErrorCode::Exists);
        QCOMPARE(Model::load(folder).value().config().architecture,
                 std::string("GPT2LMHeadModel")); // untouched
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-llama"), folder, Overwrite::Force));
        QVERIFY(!fs::exists(folder / "model-00001-of-00002.safetensors"));
        QCOMPARE(Model::load(folder).value().config().architecture,
                 std::string("LlamaForCausalLM"));
    }

    // A trained model (train_results.json beside it) is not replaced by random weights without
    // force; its files are untouched.
    void makeModelKeepsATrainedModel() {
        test::TempDir dir;
        const fs::path folder = dir / "trained";
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-llama"), folder));
        test::writeBytes(folder / "train_results.json", "{\"steps\": 2500}");
        const std::string before = test::readBytes(folder / "model.safetensors");
        const auto refused = writeSyntheticModel(syntheticPreset("tiny-gpt2"), folder);
        const std::string record = (folder / "train_results.json").string();
        KVS_VERIFY_ERROR(refused, "it holds a trained model", record.c_str(), "--force");
        QCOMPARE(refused.error().code(), ErrorCode::Exists);
        QVERIFY(test::readBytes(folder / "model.safetensors") == before);
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-gpt2"), folder, Overwrite::Force));
        QVERIFY(test::readBytes(folder / "model.safetensors") != before);
    }

    // A writer killed (SIGKILL: no handler runs) in the middle of a file leaves no temporary
    // beside it and the old file as it was.
    void killedWriterLeavesNoTemporary() {
        test::TempDir dir;
        // The guarantee rests on unnamed files; without them the writer's named temporary is
        // removed on every failure it sees, but SIGKILL is not one.
        if (const int probe = ::open(dir.path().c_str(), O_TMPFILE | O_WRONLY, 0600); probe >= 0)
            ::close(probe);
        else
            QSKIP("this file system has no O_TMPFILE");
        const fs::path out = dir / "c.safetensors";
        writeOutput(out, std::string("{\"kvstudio_file\": \"capture\"}"), "capture",
                    Overwrite::OursOnly);
        const std::string before = test::readBytes(out);
        const pid_t child = ::fork();
        QVERIFY(child >= 0);
        if (child == 0) {
            try {
                writeOutputStreamed(out, "capture", Overwrite::OursOnly,
                                    [](const OutputSink& sink) {
                                        const std::string chunk(1 << 20, 'x');
                                        sink(std::as_bytes(std::span<const char>(chunk)));
                                        ::raise(SIGKILL);
                                    });
            } catch (...) {
            }
            ::_exit(3); // not reached
        }
        int status = 0;
        QCOMPARE(::waitpid(child, &status, 0), child);
        QVERIFY(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        QCOMPARE(hiddenFiles(dir.path()), QStringList());
        QCOMPARE(test::readBytes(out), before);
    }
};

QTEST_GUILESS_MAIN(TestBadInput)
#include "test_bad_input.moc"
