// SPDX-License-Identifier: MIT
// The output writer and every core writer: foreign files, symbolic links, devices and folders are
// refused unless forced, studio files are replaced, and a failed write leaves no temporary behind.
#include "kvs/capture.h"
#include "kvs/model.h"
#include "kvs/output_writer.h"
#include "kvs/safetensors.h"
#include "kvs/synthetic_model.h"
#include "kvs/train.h"
#include "kvs_test.h"

#include <QtTest>
#include <csignal>
#include <functional>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace kvs;
using kvs::test::readBytes;
using kvs::test::TempDir;
using kvs::test::writeBytes;
namespace fs = std::filesystem;

namespace {

Result<bool> attempt(const std::function<void()>& fn) {
    return catchErrors([&]() -> bool {
        fn();
        return true;
    });
}

std::span<const std::byte> bytesOf(const std::string& s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Names in `dir` other than `keep`: temporaries a failed write left behind.
QStringList strayFiles(const fs::path& dir, const std::vector<std::string>& keep) {
    QStringList stray;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (std::find(keep.begin(), keep.end(), name) == keep.end())
            stray << QString::fromStdString(name);
    }
    return stray;
}

#define KVS_VERIFY_CODE(result, expected)                                                          \
    do {                                                                                           \
        QVERIFY2(!(result).ok(), "expected an error, got success");                                \
        KVS_COMPARE_ENUM((result).error().code(), expected);                                       \
    } while (0)

// One writer of the studio: writes its output at `path` (a file, or a folder for model folders).
struct Writer {
    std::string name;
    std::function<Result<bool>(const fs::path& path, Overwrite overwrite)> write;
    // The file inside `path` that a foreign file, link or device stands in for.
    std::function<fs::path(const fs::path& path)> target = [](const fs::path& p) { return p; };
};

Capture tinyCapture(const TempDir& dir) {
    static std::optional<Capture> cached;
    if (!cached) {
        const auto folder = test::writeModel(dir, "cap-model", syntheticPreset("tiny-gpt2"));
        auto m = Model::load(folder).valueOrThrow();
        cached = m.capture("abc abc").valueOrThrow();
    }
    return *cached;
}

} // namespace

class TestOutputWriter : public QObject {
    Q_OBJECT

    TempDir m_fixtures;
    std::vector<Writer> m_writers;

private slots:
    void initTestCase() {
        const Capture c = tinyCapture(m_fixtures);
        m_writers = {
            {"output writer",
             [](const fs::path& p, Overwrite o) {
                 return attempt([&] {
                     writeOutput(p, std::string(R"({"kvstudio_file": "test", "x": 1})"), "test", o);
                 });
             }},
            {"safetensors (marked)",
             [](const fs::path& p, Overwrite o) {
                 SafetensorsWriter w;
                 w.addFloat("t", DType::F32, {2}, std::vector<float>{1.0f, 2.0f});
                 return w.write(p, "test-tensors", o);
             }},
            {"capture", [c](const fs::path& p, Overwrite o) { return saveCapture(c, p, true, o); }},
            {"model folder",
             [](const fs::path& p, Overwrite o) {
                 return writeSyntheticModel(syntheticPreset("tiny-gpt2"), p, o);
             },
             [](const fs::path& p) { return p / "config.json"; }},
            {"sharded model folder",
             [](const fs::path& p, Overwrite o) {
                 return writeSyntheticModel(syntheticPreset("tiny-llama-gqa"), p, o);
             },
             [](const fs::path& p) { return p / "model-00002-of-00003.safetensors"; }},
        };
    }

    void fnvMatchesPublishedVectors() {
        // The FNV-1a 64 test vectors of the algorithm's authors.
        QCOMPARE(hex64(fnv1a64Bytes(bytesOf(""))), std::string("cbf29ce484222325"));
        QCOMPARE(hex64(fnv1a64Bytes(bytesOf("a"))), std::string("af63dc4c8601ec8c"));
        QCOMPARE(hex64(fnv1a64Bytes(bytesOf("foobar"))), std::string("85944171f73967e8"));
    }

    void writesNewAndReplacesOwnFiles() {
        TempDir dir;
        for (const auto& w : m_writers) {
            const fs::path p = dir / ("new-" + std::to_string(&w - m_writers.data()));
            KVS_VERIFY_OK(w.write(p, Overwrite::OursOnly));
            QVERIFY2(fs::is_regular_file(w.target(p)), w.name.c_str());
            // The studio wrote it: a second write needs no force.
            const auto again = w.write(p, Overwrite::OursOnly);
            QVERIFY2(again.ok(), (w.name + ": " + again.message()).c_str());
        }
    }

    void refusesForeignFileUnlessForced() {
        TempDir dir;
        for (const auto& w : m_writers) {
            // A folder of its own, so that stray files are this writer's.
            const fs::path p = dir / ("w" + std::to_string(&w - m_writers.data())) / "out";
            const fs::path t = w.target(p);
            fs::create_directories(t.parent_path());
            const std::string mine = "my thesis, chapter 3\n";
            writeBytes(t, mine);
            const auto r = w.write(p, Overwrite::OursOnly);
            KVS_VERIFY_CODE(r, ErrorCode::Exists);
            const std::string ts = t.string(); // named: the macro keeps only the pointer
            KVS_VERIFY_ERROR(r, "refusing to overwrite", ts.c_str(), "not written by KV Studio",
                             "--force");
            QCOMPARE(readBytes(t), mine);
            // A refused folder writer wrote none of its files (all are checked first).
            QCOMPARE(strayFiles(t.parent_path(), {t.filename().string()}), QStringList());
            const auto forced = w.write(p, Overwrite::Force);
            QVERIFY2(forced.ok(), (w.name + ": " + forced.message()).c_str());
            QVERIFY2(readBytes(t) != mine, w.name.c_str());
        }
    }

    void refusesSymlinkUnlessForced() {
        TempDir dir;
        for (const auto& w : m_writers) {
            const fs::path p = dir / ("link-" + std::to_string(&w - m_writers.data()));
            const fs::path t = w.target(p);
            fs::create_directories(t.parent_path());
            const fs::path victim = dir / ("victim-" + std::to_string(&w - m_writers.data()));
            writeBytes(victim, "precious");
            fs::create_symlink(victim, t);
            const auto r = w.write(p, Overwrite::OursOnly);
            KVS_VERIFY_CODE(r, ErrorCode::Exists);
            const std::string ts = t.string();
            KVS_VERIFY_ERROR(r, ts.c_str(), "symbolic link");
            KVS_VERIFY_OK(w.write(p, Overwrite::Force));
            // Forced, the link is replaced by a file; what it pointed to is untouched.
            QVERIFY(!fs::is_symlink(t));
            QVERIFY(fs::is_regular_file(t));
            QCOMPARE(readBytes(victim), std::string("precious"));
        }
    }

    void refusesDeviceUnlessForced() {
        for (const auto& w : m_writers) {
            if (w.target("/x") != "/x")
                continue; // a folder writer cannot be pointed at /dev/null (its files are inside)
            const auto r = w.write("/dev/null", Overwrite::OursOnly);
            KVS_VERIFY_CODE(r, ErrorCode::Exists);
            KVS_VERIFY_ERROR(r, "/dev/null", "device");
            // Forced, the bytes go into the device; the device stays a device.
            KVS_VERIFY_OK(w.write("/dev/null", Overwrite::Force));
            struct stat st {};
            QCOMPARE(::stat("/dev/null", &st), 0);
            QVERIFY(S_ISCHR(st.st_mode));
        }
        // A fifo inside a model folder is refused the same way.
        TempDir dir;
        fs::create_directories(dir / "m");
        QCOMPARE(::mkfifo((dir / "m" / "config.json").c_str(), 0600), 0);
        const auto r = writeSyntheticModel(syntheticPreset("tiny-gpt2"), dir / "m");
        KVS_VERIFY_CODE(r, ErrorCode::Exists);
        KVS_VERIFY_ERROR(r, "config.json", "fifo");
    }

    void refusesFolderEvenForced() {
        TempDir dir;
        fs::create_directories(dir / "f" / "inner");
        for (const auto o : {Overwrite::OursOnly, Overwrite::Force}) {
            const auto r = attempt([&] { writeOutput(dir / "f", std::string("{}"), "test", o); });
            KVS_VERIFY_CODE(r, ErrorCode::Exists);
            KVS_VERIFY_ERROR(r, "is a folder");
        }
        QVERIFY(fs::is_directory(dir / "f" / "inner"));
    }

    // A studio file of another kind is not this writer's to replace: a capture over the weights.
    void refusesStudioFileOfAnotherKind() {
        TempDir dir;
        const auto folder = test::writeModel(dir, "m", syntheticPreset("tiny-gpt2"));
        const std::string weights = readBytes(folder / "model.safetensors");
        const auto r = saveCapture(tinyCapture(m_fixtures), folder / "model.safetensors");
        KVS_VERIFY_CODE(r, ErrorCode::Exists);
        KVS_VERIFY_ERROR(r, "model-weights written by KV Studio, not a capture");
        QCOMPARE(readBytes(folder / "model.safetensors"), weights);
    }

    // Files written before the mark existed are recognised by their old marks.
    void recognisesEarlierMarks() {
        TempDir dir;
        SafetensorsWriter old;
        old.setMetadata("format", "kvstudio-capture");
        old.addFloat("t", DType::F32, {1}, std::vector<float>{1.0f});
        KVS_VERIFY_OK(old.write(dir / "old.safetensors")); // plain: no kvstudio_file key
        QVERIFY(checkOutput(dir / "old.safetensors", "capture").replaceable);
        QVERIFY(!checkOutput(dir / "old.safetensors", "train-checkpoint").replaceable);
        writeBytes(dir / "s.kvsession", R"({"kvstudio_session": 1})");
        QVERIFY(checkOutput(dir / "s.kvsession", "session").replaceable);
        writeBytes(dir / "hf.json", R"({"architectures": ["LlamaForCausalLM"]})");
        const auto hf = checkOutput(dir / "hf.json", "model-config");
        QVERIFY(!hf.replaceable && hf.forceable);
        QCOMPARE(hf.reason, std::string("it was not written by KV Studio"));
    }

    // An export without room for a mark is ours while its sidecar names it with its size and hash.
    void sidecarVouchesForExports() {
        TempDir dir;
        const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + "pixels";
        writeBytes(dir / "chart.png", png);
        QVERIFY(!checkOutput(dir / "chart.png", "export").replaceable);
        nlohmann::json sidecar = {{"kvstudio_file", "export-sidecar"},
                                  {"file", "chart.png"},
                                  {"bytes", png.size()},
                                  {"fnv1a64", hex64(fnv1a64Bytes(bytesOf(png)))}};
        writeBytes(dir / "chart.png.json", sidecar.dump());
        QVERIFY(checkOutput(dir / "chart.png", "export").replaceable);
        QVERIFY(checkOutput(dir / "chart.png.json", kSidecarKind).replaceable);
        // Changed since: no longer ours.
        writeBytes(dir / "chart.png", png + "edited by hand");
        QVERIFY(!checkOutput(dir / "chart.png", "export").replaceable);
        writeBytes(dir / "chart.png", png);
        sidecar["file"] = "other.png";
        writeBytes(dir / "chart.png.json", sidecar.dump());
        QVERIFY(!checkOutput(dir / "chart.png", "export").replaceable);
    }

    // A write that fails after the temporary exists removes it and leaves the old file.
    void failedWriteLeavesNoTemporary() {
        TempDir dir;
        const auto path = dir / "big.json";
        const std::string before = R"({"kvstudio_file": "test", "v": 1})";
        writeBytes(path, before);
        // (No raw string here: moc misreads one that ends in a quote.)
        const std::string big =
            "{\"kvstudio_file\": \"test\", \"pad\": \"" + std::string(1 << 16, 'x') + "\"}";
        // The file size limit makes write() fail with EFBIG half way (root included).
        struct rlimit old {};
        QCOMPARE(::getrlimit(RLIMIT_FSIZE, &old), 0);
        const auto oldHandler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit small = old;
        small.rlim_cur = 4096;
        QCOMPARE(::setrlimit(RLIMIT_FSIZE, &small), 0);
        const auto r = attempt([&] { writeOutput(path, big, "test", Overwrite::OursOnly); });
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, oldHandler);
        KVS_VERIFY_CODE(r, ErrorCode::Io);
        const std::string ps = path.string();
        KVS_VERIFY_ERROR(r, ps.c_str(), "write failed");
        QCOMPARE(readBytes(path), before);
        QCOMPARE(strayFiles(dir.path(), {"big.json"}), QStringList());

        // A folder that is gone: nothing can be created, nothing is left.
        const auto gone = dir / "gone" / "x.json";
        const auto g = attempt([&] { writeOutput(gone, before, "test", Overwrite::OursOnly); });
        KVS_VERIFY_CODE(g, ErrorCode::Io);
        const std::string gs = gone.string();
        KVS_VERIFY_ERROR(g, gs.c_str(), "temporary");
        QCOMPARE(strayFiles(dir.path(), {"big.json"}), QStringList());

        // A read-only folder (only meaningful when permissions apply, i.e. not as root).
        if (::geteuid() != 0) {
            fs::create_directories(dir / "ro");
            fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
            const auto ro = attempt(
                [&] { writeOutput(dir / "ro" / "x.json", before, "test", Overwrite::Force); });
            fs::permissions(dir / "ro", fs::perms::owner_all);
            KVS_VERIFY_CODE(ro, ErrorCode::Io);
            QCOMPARE(strayFiles(dir / "ro", {}), QStringList());
        }
    }

    // Free space, as std::filesystem reports it; an output larger than it is refused before a
    // byte is written, with both numbers and the caller's way out.
    void largeOutputsAreRefusedUpFront() {
        TempDir dir;
        const auto free = freeDiskBytes(dir / "not" / "yet" / "made.safetensors");
        QVERIFY(free.has_value());
        const auto reference = fs::space(dir.path()).available;
        // Other processes write meanwhile: equal to within 64 MiB.
        QVERIFY2((*free > reference ? *free - reference : reference - *free) < (64u << 20),
                 qPrintable(QString("%1 vs %2").arg(*free).arg(reference)));
        const auto path = dir / "capture.safetensors";
        const std::uint64_t tooMuch = *free + (std::uint64_t(1) << 30);
        const auto r = attempt([&] { requireDiskSpace(path, tooMuch, "--f16 halves it"); });
        KVS_VERIFY_CODE(r, ErrorCode::Io);
        const std::string ps = path.string();
        const std::string needs = "needs " + std::to_string((tooMuch + (1u << 19)) >> 20) + " MB";
        KVS_VERIFY_ERROR(r, ps.c_str(), needs.c_str(), "MB free", "--f16 halves it");
        QVERIFY(!fs::exists(path));
        KVS_VERIFY_OK(attempt([&] { requireDiskSpace(path, 1 << 20, ""); }));
    }

    // The trainer's checkpoints and export go through the writer too.
    void trainerRefusesForeignFiles() {
        TempDir dir;
        ModelConfig c = defaultTrainConfig(11);
        c.layers = 1;
        c.width = 16;
        c.heads = c.kvHeads = 4;
        c.headDim = 4;
        c.intermediate = 24;
        c.maxPositions = 8;
        TrainOptions o;
        o.steps = 1;
        Trainer t(c, o);
        writeBytes(dir / "ckpt.safetensors", "not a checkpoint");
        const auto r = t.save(dir / "ckpt.safetensors");
        KVS_VERIFY_CODE(r, ErrorCode::Exists);
        QCOMPARE(readBytes(dir / "ckpt.safetensors"), std::string("not a checkpoint"));
        KVS_VERIFY_OK(t.save(dir / "ckpt.safetensors", Overwrite::Force));
        KVS_VERIFY_OK(t.save(dir / "ckpt.safetensors")); // now it is a checkpoint of ours
        KVS_VERIFY_OK(Trainer::resume(dir / "ckpt.safetensors"));

        fs::create_directories(dir / "export");
        writeBytes(dir / "export" / "tokenizer.json", "{}");
        const auto e = exportHfModel(t.model(), "abcdefghij\n", DType::F32, dir / "export");
        KVS_VERIFY_CODE(e, ErrorCode::Exists);
        KVS_VERIFY_ERROR(e, "tokenizer.json");
        QVERIFY(!fs::exists(dir / "export" / "config.json")); // nothing written
        KVS_VERIFY_OK(
            exportHfModel(t.model(), "abcdefghij\n", DType::F32, dir / "export", Overwrite::Force));
        QVERIFY(Model::load(dir / "export").ok());
    }

    void cleanupTestCase() { m_writers.clear(); }
};

QTEST_GUILESS_MAIN(TestOutputWriter)
#include "test_output_writer.moc"
