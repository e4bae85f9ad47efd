// SPDX-License-Identifier: MIT
// Bad model folders and bad inputs: each gives one clear error naming the file and the problem.
#include "kvs/dtype.h"
#include "kvs/model.h"
#include "kvs/safetensors.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QElapsedTimer>
#include <QtTest>
#include <nlohmann/json.hpp>

using nlohmann::json;
using namespace kvs;
namespace fs = std::filesystem;

namespace {

// Rewrites a safetensors file without one tensor (metadata kept).
void rewriteWithout(const fs::path& file, const std::string& drop) {
    SafetensorsWriter w;
    {
        auto opened = SafetensorsFile::open(file);
        const SafetensorsFile& f = opened.valueOrThrow();
        for (const auto& [k, v] : f.metadata())
            w.setMetadata(k, v);
        for (const auto& name : f.names()) {
            if (name == drop)
                continue;
            const auto& info = f.info(name);
            w.add(name, info.dtype, info.shape, f.bytes(name));
        }
    }
    w.write(file).valueOrThrow();
}

void editConfig(const fs::path& folder, const std::string& key, const json& value) {
    json j = json::parse(test::readBytes(folder / "config.json"));
    j[key] = value;
    test::writeBytes(folder / "config.json", j.dump(2));
}

// Rewrites a model so that its vocabulary has `vocab` rows: the embedding (and output head) are
// declared in the header at that size and the file is extended sparsely, so a checkpoint that
// promises hundreds of GB takes no disk space and no time to write.
void promiseHugeVocabulary(const fs::path& folder, std::int64_t vocab) {
    const fs::path file = folder / "model.safetensors";
    json header = json::object();
    std::string data;
    std::vector<std::pair<std::string, TensorInfo>> huge;
    {
        auto opened = SafetensorsFile::open(file);
        const SafetensorsFile& f = opened.valueOrThrow();
        for (const auto& name : f.names()) {
            TensorInfo info = f.info(name);
            if (name.find("embed") != std::string::npos || name == "lm_head.weight" ||
                name.find("wte") != std::string::npos) {
                info.shape[0] = vocab;
                huge.emplace_back(name, info);
                continue;
            }
            const auto bytes = f.bytes(name);
            header[name] = {{"dtype", std::string(dtypeName(info.dtype))},
                            {"shape", info.shape},
                            {"data_offsets", {data.size(), data.size() + bytes.size()}}};
            data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        }
    }
    std::uint64_t end = data.size();
    for (const auto& [name, info] : huge) {
        const std::uint64_t size = static_cast<std::uint64_t>(info.shape[0]) *
                                   static_cast<std::uint64_t>(info.shape[1]) *
                                   dtypeSize(info.dtype);
        header[name] = {{"dtype", std::string(dtypeName(info.dtype))},
                        {"shape", info.shape},
                        {"data_offsets", {end, end + size}}};
        end += size;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i)
        out[static_cast<std::size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
    out += text + data;
    test::writeBytes(file, out);
    fs::resize_file(file, out.size() + (end - data.size())); // sparse: zeros, not written
    editConfig(folder, "vocab_size", vocab);
}

} // namespace

class TestModelErrors : public QObject {
    Q_OBJECT

private slots:
    // A checkpoint whose header promises more than the machine has (500 million vocabulary rows
    // of width 64: 119 GiB per matrix as fp32) is refused at load, with the numbers, before
    // anything is converted; the same model within a stated limit loads, and a prompt whose capture
    // would exceed the limit is refused before the model runs.
    void modelBeyondTheMachineIsRefusedWithNumbers() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "huge", syntheticPreset("tiny-llama"));
        QCOMPARE(syntheticPreset("tiny-llama").config.width, 64);
        promiseHugeVocabulary(folder, 500'000'000);
        QElapsedTimer timer;
        timer.start();
        const auto r = Model::load(folder);
        QVERIFY(!r.ok());
        QVERIFY2(r.error().code() == ErrorCode::OutOfMemory, r.message().c_str());
        const MemoryNeed need = memoryNeed(loadModelConfig(folder / "config.json").value(), 0);
        QVERIFY(need.globalWeights >= (std::uint64_t(119) << 30));
        char expected[64];
        std::snprintf(expected, sizeof expected, "needs about %.1f GiB",
                      static_cast<double>(need.total()) / (1u << 30));
        QVERIFY2(r.message().find(folder.string() + ": running this model " + expected) == 0,
                 r.message().c_str());
        QVERIFY2(r.message().find("GiB is available; nothing was allocated") != std::string::npos,
                 r.message().c_str());
        QVERIFY(timer.elapsed() < 10000); // refused up front, not after converting
    }

    void captureBeyondTheLimitIsRefused() {
        test::TempDir dir;
        const auto spec = syntheticPreset("tiny-llama");
        const auto folder = test::writeModel(dir, "m", spec);
        const std::vector<TokenId> tokens(100, 5);
        const MemoryNeed empty = memoryNeed(spec.config, 0);
        const MemoryNeed full = memoryNeed(spec.config, 100);
        QVERIFY(full.capture > 0 && full.activations > 0);
        LoadOptions options;
        options.memoryLimitBytes = empty.total() + full.capture / 2; // the model fits, not 100
        auto m = Model::load(folder, options);
        KVS_VERIFY_OK(m);
        const auto refused = m->captureTokens(tokens);
        QVERIFY(!refused.ok());
        KVS_COMPARE_ENUM(refused.error().code(), ErrorCode::OutOfMemory);
        QVERIFY2(refused.message().find("capturing 100 tokens with " + folder.string()) == 0,
                 refused.message().c_str());
        KVS_VERIFY_OK(m->captureTokens(std::vector<TokenId>(4, 5))); // a short prompt fits
        // Below the model itself: refused at load.
        options.memoryLimitBytes = empty.total() / 2;
        const auto tooSmall = Model::load(folder, options);
        KVS_COMPARE_ENUM(tooSmall.error().code(), ErrorCode::OutOfMemory);
        QVERIFY2(tooSmall.message().find("may be used") != std::string::npos,
                 tooSmall.message().c_str());
        // Described only (kvstudio-cli info): the same limit does not stop a description, nothing
        // is converted, and running it is refused with the reason.
        options.describeOnly = true;
        const auto described = Model::load(folder, options);
        KVS_VERIFY_OK(described);
        QCOMPARE(described->config().layers, spec.config.layers);
        QCOMPARE(described->convertedWeightBytes(), std::size_t(0));
        QVERIFY(described->tokenizer());
        const auto run = described->captureTokens(std::vector<TokenId>(4, 5));
        KVS_COMPARE_ENUM(run.error().code(), ErrorCode::InvalidArgument);
        QVERIFY2(run.message().find("described only") != std::string::npos, run.message().c_str());
        QVERIFY_THROWS_EXCEPTION(Error, described->attentionProjections(0));
    }

    // The estimate against the checkpoint itself (fp32): the embeddings plus every layer is the
    // file's size, up to the norms and biases it rounds.
    void memoryNeedMatchesTheCheckpoint_data() {
        QTest::addColumn<QString>("preset");
        for (const char* p : {"tiny-llama", "tiny-llama-gqa", "tiny-gpt2", "tiny-qwen2"})
            QTest::newRow(p) << QString(p);
    }
    void memoryNeedMatchesTheCheckpoint() {
        QFETCH(QString, preset);
        test::TempDir dir;
        auto spec = syntheticPreset(preset.toStdString());
        spec.dtype = DType::F32;
        const auto folder = test::writeModel(dir, "m", spec);
        const MemoryNeed need = memoryNeed(spec.config, 0);
        const double estimate = static_cast<double>(need.globalWeights) +
                                spec.config.layers * static_cast<double>(need.largestLayer);
        double file = 0;
        for (const auto& entry : fs::directory_iterator(folder))
            if (entry.path().extension() == ".safetensors")
                file += static_cast<double>(entry.file_size());
        QVERIFY2(std::abs(estimate / file - 1.0) < 0.03,
                 qPrintable(QString("estimate %1, file %2").arg(estimate).arg(file)));
    }

    void nonexistentFolder() {
        test::TempDir dir;
        const std::string where = (dir / "nope").string();
        KVS_VERIFY_ERROR(Model::load(dir / "nope"), where.c_str(), "no such model folder");
    }

    void fileInsteadOfFolder() {
        test::TempDir dir;
        test::writeBytes(dir / "model.bin", "hello");
        const std::string where = (dir / "model.bin").string();
        KVS_VERIFY_ERROR(Model::load(dir / "model.bin"), where.c_str(), "not a folder");
    }

    void noConfig() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-gpt2"));
        fs::remove(folder / "config.json");
        const std::string where = folder.string();
        KVS_VERIFY_ERROR(Model::load(folder), where.c_str(), "no config.json");
    }

    void malformedConfig() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-gpt2"));
        test::writeBytes(folder / "config.json", "{\"n_layer\": 2,,}");
        const std::string where = (folder / "config.json").string();
        KVS_VERIFY_ERROR(Model::load(folder), where.c_str(), "malformed JSON");
    }

    void missingTensor_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("tensor");
        QTest::newRow("gpt2 attn") << "tiny-gpt2"
                                   << "transformer.h.1.attn.c_attn.weight";
        QTest::newRow("llama k_proj") << "tiny-llama"
                                      << "model.layers.0.self_attn.k_proj.weight";
    }
    void missingTensor() {
        QFETCH(QString, preset);
        QFETCH(QString, tensor);
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset(preset.toStdString()));
        const std::string name = tensor.toStdString();
        {
            auto ck = Checkpoint::open(folder);
            KVS_VERIFY_OK(ck);
            QVERIFY2(ck.value().contains(name), name.c_str());
        }
        rewriteWithout(folder / "model.safetensors", name);
        const std::string config = (folder / "config.json").string();
        const std::string quoted = "missing tensor '" + name + "'";
        KVS_VERIFY_ERROR(Model::load(folder), "model.safetensors", quoted.c_str(), config.c_str());
    }

    void wrongShape_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("key");
        QTest::addColumn<int>("value");
        QTest::newRow("gpt2 width") << "tiny-gpt2"
                                    << "n_embd" << 128;
        QTest::newRow("gpt2 vocab") << "tiny-gpt2"
                                    << "vocab_size" << 300;
        QTest::newRow("llama vocab") << "tiny-llama"
                                     << "vocab_size" << 200;
        QTest::newRow("llama intermediate") << "tiny-llama"
                                            << "intermediate_size" << 96;
    }
    void wrongShape() {
        QFETCH(QString, preset);
        QFETCH(QString, key);
        QFETCH(int, value);
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset(preset.toStdString()));
        editConfig(folder, key.toStdString(), value);
        const std::string file = (folder / "model.safetensors").string();
        const std::string config = (folder / "config.json").string();
        const auto r = Model::load(folder);
        KVS_VERIFY_ERROR(r, file.c_str(), "has shape", "implies", config.c_str());
        QCOMPARE(r.error().code(), ErrorCode::Format);
    }

    void truncatedSafetensors() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-gpt2"));
        const auto file = folder / "model.safetensors";
        const std::string bytes = test::readBytes(file);
        test::writeBytes(file, bytes.substr(0, bytes.size() / 2));
        const std::string where = file.string();
        const auto r = Model::load(folder);
        KVS_VERIFY_ERROR(r, where.c_str());
        QCOMPARE(r.error().code(), ErrorCode::Format);
    }

    void missingShard() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-gpt2-untied"));
        QVERIFY(fs::exists(folder / "model.safetensors.index.json"));
        const std::string shard = "model-00002-of-00002.safetensors";
        QVERIFY(fs::exists(folder / shard));
        fs::remove(folder / shard);
        KVS_VERIFY_ERROR(Model::load(folder), shard.c_str());
    }

    void emptyPrompt() {
        test::TempDir dir;
        const auto m = Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-gpt2")));
        KVS_VERIFY_OK(m);
        KVS_VERIFY_ERROR(m.value().capture(""), "empty prompt");
        KVS_VERIFY_ERROR(m.value().captureTokens({}), "empty prompt");
    }

    void promptTooLong() {
        test::TempDir dir;
        const auto m = Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-gpt2")));
        KVS_VERIFY_OK(m);
        QCOMPARE(m.value().config().maxPositions, 128);
        const std::string prompt(200, 'a'); // byte-level vocabulary: one token per character
        KVS_VERIFY_ERROR(m.value().capture(prompt), "200 tokens", "at most 128 positions");
        KVS_VERIFY_ERROR(m.value().captureTokens(std::vector<TokenId>(129, 5)), "129 tokens",
                         "at most 128 positions");
        KVS_VERIFY_OK(m.value().captureTokens(std::vector<TokenId>(128, 5)));
    }

    void tokenOutsideVocabulary() {
        test::TempDir dir;
        const auto m = Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-gpt2")));
        KVS_VERIFY_OK(m);
        KVS_VERIFY_ERROR(m.value().captureTokens({1, 2, 256}), "token id 256 at index 2",
                         "vocabulary of 256");
        KVS_VERIFY_ERROR(m.value().captureTokens({-1}), "token id -1 at index 0");
        KVS_VERIFY_OK(m.value().captureTokens({0, 255}));
    }

    void noTokenizer() {
        test::TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-gpt2"));
        QVERIFY(fs::remove(folder / "tokenizer.json"));
        const auto m = Model::load(folder);
        KVS_VERIFY_OK(m);
        QVERIFY(m.value().tokenizer() == nullptr);
        const std::string where = folder.string();
        KVS_VERIFY_ERROR(m.value().capture("hello"), where.c_str(), "no tokenizer");
        KVS_VERIFY_OK(m.value().captureTokens({1, 2, 3})); // ids still work
    }

    void generateBeyondPositions() {
        test::TempDir dir;
        const auto m = Model::load(test::writeModel(dir, "m", syntheticPreset("tiny-gpt2")));
        KVS_VERIFY_OK(m);
        const std::vector<TokenId> prompt(100, 7);
        KVS_VERIFY_ERROR(m.value().generateGreedy(prompt, 29), "100 tokens", "29 new tokens",
                         "128 positions");
        const auto ok = m.value().generateGreedy(prompt, 28);
        KVS_VERIFY_OK(ok);
        QCOMPARE(ok.value().size(), std::size_t(28));
        KVS_VERIFY_ERROR(m.value().generateGreedy(prompt, -1), "must not be negative");
    }
};

QTEST_APPLESS_MAIN(TestModelErrors)
#include "test_model_errors.moc"
