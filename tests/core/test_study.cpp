// SPDX-License-Identifier: MIT
// Studies (kvs/study.h): jobs and shards by hand, the journal's resume rules, the summary over
// prompts against hand-computed intervals, and on a real model: shards merged = one run,
// cancelled + resumed = one run, the up-front estimate's refusal.
#include "kvs/attention_backend.h"
#include "kvs/model.h"
#include "kvs/study.h"
#include "kvs/synthetic_model.h"
#include "kvs_test.h"

#include <QTemporaryDir>
#include <QTest>
#include <atomic>
#include <cmath>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

using namespace kvs;
namespace fs = std::filesystem;

// `expr` throws kvs::Error with `code` and a message holding every fragment.
#define VERIFY_THROWS(expr, expectedCode, ...)                                                     \
    do {                                                                                           \
        const auto r_ = kvs::catchErrors([&] { return (expr); });                                  \
        KVS_VERIFY_ERROR(r_, __VA_ARGS__);                                                         \
        KVS_COMPARE_ENUM(r_.error().code(), expectedCode);                                         \
    } while (0)

namespace {

StudySpec smallSpec() {
    StudySpec spec;
    spec.model = "m";
    spec.modelFingerprint = "0123456789abcdef";
    spec.prompts = {"a.txt", "b.txt", "c.txt"};
    spec.promptHashes = {"1", "2", "3"};
    spec.seeds = 2;
    spec.backend = "cpu";
    spec.curves = {{"select.uniform", "keep", {0.25, 0.5, 1.0}}, {"codec.uniform", "bits", {2, 4}}};
    return spec;
}

std::string readAll(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void appendRaw(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out << bytes;
}

StudyRecord fakeRecord(std::size_t index, double kl) {
    StudyRecord r;
    r.index = index;
    r.klMean = kl;
    r.perplexityChangePercent = 100 * kl;
    r.top1Agreement = 0.9;
    r.headOutputError = kl / 2;
    r.memoryFraction = 0.25;
    r.meanKeptTokens = 10;
    r.bytes = 1000;
    r.contextTokens = 30;
    r.probeTokens = 10;
    return r;
}

std::vector<std::string> asJson(const std::vector<StudyRecord>& records) {
    std::vector<std::string> out;
    for (const StudyRecord& r : records)
        out.push_back(studyRecordJson(r));
    return out;
}

} // namespace

class TestStudy : public QObject {
    Q_OBJECT

private slots:
    void jobsArePromptMajorAndShardsCoverThemOnce() {
        const StudySpec spec = smallSpec();
        const auto jobs = studyJobs(spec);
        // Uniform sampling is random: 3 values × 2 seeds; the codec is not: 2 values once.
        QCOMPARE(jobs.size(), std::size_t(3 * (3 * 2 + 2)));
        for (std::size_t i = 0; i < jobs.size(); ++i)
            QCOMPARE(jobs[i].index, i);
        // Prompt 0: seed 1 with the five settings, then seed 2 with uniform sampling's three.
        QCOMPARE(jobs[0].prompt, 0);
        QCOMPARE(jobs[0].seed, 1);
        QCOMPARE(jobs[4].curve, 1);
        QCOMPARE(jobs[4].valueIndex, 1);
        QCOMPARE(jobs[5].seed, 2);
        QCOMPARE(jobs[5].curve, 0);
        QCOMPARE(jobs[7].valueIndex, 2);
        QCOMPARE(jobs[8].prompt, 1);
        QCOMPARE(jobs[8].seed, 1);
        QCOMPARE(jobs[23].prompt, 2);
        QVERIFY(studyCurveIsRandom(spec.curves[0]));
        QVERIFY(!studyCurveIsRandom(spec.curves[1]));
        QVERIFY(!studyCurveIsRandom({"select.uniform:seed=3", "keep", {0.5}})); // fixed seed
        QVERIFY(!studyCurveIsRandom({"select.snapkv", "keep", {0.5}}));
        QVERIFY(studyCurveIsRandom({"coreset.halving", "keep", {0.5}}));
        StudySpec unseeded = spec;
        unseeded.seeds = 0;
        QCOMPARE(studyJobs(unseeded).size(), std::size_t(15));
        QCOMPARE(studyJobs(unseeded)[0].seed, 0);

        for (const int n : {1, 2, 4, 7, 24, 25}) {
            std::vector<std::size_t> seen;
            for (int i = 1; i <= n; ++i) {
                const auto part = shardJobs(jobs, {i, n});
                for (std::size_t k = 1; k < part.size(); ++k)
                    QCOMPARE(part[k].index, part[k - 1].index + 1); // contiguous
                for (const auto& j : part)
                    seen.push_back(j.index);
            }
            QCOMPARE(seen.size(), jobs.size());
            for (std::size_t i = 0; i < seen.size(); ++i)
                QCOMPARE(seen[i], i);
        }
    }

    // A grid beyond kMaxStudyJobs is refused before any job is listed; a journal asking for one
    // is malformed (a hostile header must not make the reader allocate gigabytes).
    void hugeGridsAreRefused() {
        StudySpec spec = smallSpec();
        spec.seeds = 100;
        spec.prompts.assign(1000, "p.txt");
        spec.promptHashes.assign(1000, "0");
        spec.curves[0].values.assign(200, 0.5); // random: 1000 × 100 × 200 = 2e7 jobs
        VERIFY_THROWS(studyJobs(spec), ErrorCode::InvalidArgument, "10000000");
        VERIFY_THROWS(studySpecFromJson(studySpecJson(spec), "j.jsonl: line 1"), ErrorCode::Format,
                      "j.jsonl: line 1", "more than the");
        spec.curves[0].values.assign(50, 0.5); // 5e6 + 2 000: allowed, counted without listing
        QCOMPARE(studyJobCount(spec), std::size_t(1000 * (100 * 50 + 2)));
    }

    void shardArguments_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("valid");
        QTest::newRow("2/8") << "2/8" << true;
        QTest::newRow("1/1") << "1/1" << true;
        QTest::newRow("8/8") << "8/8" << true;
        QTest::newRow("0/3") << "0/3" << false;
        QTest::newRow("4/3") << "4/3" << false;
        QTest::newRow("1/0") << "1/0" << false;
        QTest::newRow("-1/2") << "-1/2" << false;
        QTest::newRow("3") << "3" << false;
        QTest::newRow("a/b") << "a/b" << false;
        QTest::newRow("1/2/3") << "1/2/3" << false;
        QTest::newRow("empty") << "" << false;
    }
    void shardArguments() {
        QFETCH(QString, text);
        QFETCH(bool, valid);
        const auto shard = parseStudyShard(text.toStdString());
        QCOMPARE(shard.ok(), valid);
        if (!valid)
            QVERIFY(shard.message().find(text.toStdString()) != std::string::npos);
    }

    void theIdChangesWithEveryPartOfTheSpec() {
        const StudySpec spec = smallSpec();
        const std::string id = studyId(spec);
        QCOMPARE(studyId(spec), id);
        QCOMPARE(studyId(studySpecFromJson(studySpecJson(spec), "x")), id);
        std::vector<StudySpec> variants(8, spec);
        variants[0].model = "n";
        variants[1].modelFingerprint = "fedcba9876543210";
        variants[2].promptHashes[1] = "9";
        variants[3].seeds = 3;
        variants[4].contextTokens = 12;
        variants[5].backend = "vulkan";
        variants[6].curves[0].values[0] = 0.125;
        variants[7].curves[1].scheme = "codec.uniform:group=64";
        std::set<std::string> ids{id};
        for (const auto& v : variants)
            ids.insert(studyId(v));
        QCOMPARE(ids.size(), variants.size() + 1);
    }

    void recordsRoundTripExactly() {
        StudyRecord r = fakeRecord(7, 0.1 + 0.2); // not a short decimal
        r.meanKeptTokens = 1.0 / 3.0;
        const StudyRecord back = studyRecordFromJson(studyRecordJson(r), "x");
        QCOMPARE(back.index, r.index);
        QCOMPARE(back.klMean, r.klMean); // bit for bit
        QCOMPARE(back.meanKeptTokens, r.meanKeptTokens);
        QCOMPARE(studyRecordJson(back), studyRecordJson(r));
        StudyRecord skipped;
        skipped.index = 3;
        skipped.skipped = true;
        skipped.reason = "budget below the window";
        const StudyRecord s = studyRecordFromJson(studyRecordJson(skipped), "x");
        QVERIFY(s.skipped);
        QCOMPARE(s.reason, skipped.reason);
        VERIFY_THROWS(studyRecordFromJson("{\"job\": 1}", "j.jsonl: line 2"), ErrorCode::Format,
                      "j.jsonl: line 2", "kl_mean");
    }

    void theJournalResumesAndRefusesWhatIsNotItsOwn() {
        QTemporaryDir tmp;
        const fs::path dir = tmp.path().toStdString();
        const fs::path path = dir / "study.jsonl";
        const StudySpec spec = smallSpec();
        {
            StudyJournal j = StudyJournal::open(path, spec, false);
            QVERIFY(j.records().empty());
            j.append(fakeRecord(0, 0.5));
            j.append(fakeRecord(1, 0.25));
            j.append(fakeRecord(2, 0.125));
        }
        {
            StudyJournal j = StudyJournal::open(path, spec, false);
            QCOMPARE(j.records().size(), std::size_t(3));
            QCOMPARE(j.records()[2].klMean, 0.125);
        }
        // A kill in the middle of a write leaves a line without its newline: dropped and cut off,
        // so the next record starts on a line of its own.
        const auto sizeBefore = fs::file_size(path);
        appendRaw(path, "{\"job\": 3, \"kl_me");
        {
            StudyJournal j = StudyJournal::open(path, spec, false);
            QCOMPARE(j.records().size(), std::size_t(3));
            QCOMPARE(fs::file_size(path), sizeBefore);
            j.append(fakeRecord(3, 1.0));
        }
        QCOMPARE(readStudyJournal(path).records.size(), std::size_t(4));

        // Another study's journal, another program's file, a folder, a link: refused.
        StudySpec other = spec;
        other.seeds = 5;
        VERIFY_THROWS(StudyJournal::open(path, other, false), ErrorCode::Exists, "study.jsonl",
                      "another study", "--force");
        const fs::path notes = dir / "notes.txt";
        appendRaw(notes, "my notes\nline two\n");
        VERIFY_THROWS(StudyJournal::open(notes, spec, false), ErrorCode::Exists, "notes.txt",
                      "not written by KV Studio");
        QCOMPARE(readAll(notes), std::string("my notes\nline two\n"));
        fs::create_directory(dir / "folder");
        VERIFY_THROWS(StudyJournal::open(dir / "folder", spec, true), ErrorCode::Exists, "folder");
        fs::create_symlink(notes, dir / "link.jsonl");
        VERIFY_THROWS(StudyJournal::open(dir / "link.jsonl", spec, false), ErrorCode::Exists,
                      "link.jsonl");
        QCOMPARE(readAll(notes), std::string("my notes\nline two\n"));

        // Forced: started afresh.
        {
            StudyJournal j = StudyJournal::open(path, other, true);
            QVERIFY(j.records().empty());
        }
        QCOMPARE(readStudyJournal(path).spec.seeds, 5);
        QVERIFY(readStudyJournal(path).records.empty());
    }

    void theSummaryIsTheMeanOverPromptsOfSeedMeans() {
        StudySpec spec = smallSpec();
        spec.curves = {{"select.uniform", "keep", {0.25, 0.5}}};
        const auto jobs = studyJobs(spec); // 3 prompts × 2 seeds × 2 values
        std::vector<StudyRecord> records;
        for (const StudyJob& job : jobs) {
            // KL at keep 0.25: prompt p seed s gives (p + 1) + (s == 1 ? -0.1 : +0.1); the second
            // value is skipped on prompt 2 only.
            if (job.valueIndex == 1 && job.prompt == 2) {
                StudyRecord r;
                r.index = job.index;
                r.skipped = true;
                r.reason = "too short";
                records.push_back(r);
                continue;
            }
            const double kl = (job.prompt + 1) + (job.seed == 1 ? -0.1 : 0.1) +
                              (job.valueIndex == 1 ? 10.0 : 0.0);
            records.push_back(fakeRecord(job.index, kl));
        }
        const auto curves = summarizeStudy(spec, records);
        QCOMPARE(curves.size(), std::size_t(1));
        QCOMPARE(curves[0].points.size(), std::size_t(2));
        const StudyPoint& p = curves[0].points[0];
        // Prompt means 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) · 1/√3.
        QCOMPARE(p.prompts, 3);
        QVERIFY(std::abs(p.kl.mean - 2.0) < 1e-12);
        QVERIFY(std::abs(p.kl.sd - 1.0) < 1e-12);
        QVERIFY(std::abs(p.kl.halfWidth - 4.3026527 / std::sqrt(3.0)) < 1e-6);
        QVERIFY(std::abs(p.klSeedSd - std::sqrt(0.02)) < 1e-12); // sd of {x−0.1, x+0.1}
        QVERIFY(std::abs(p.perplexityChangePercent.mean - 200.0) < 1e-9);
        // The second value ran on two prompts (11 and 12): mean 11.5, t(0.975, 1) · sd / √2.
        const StudyPoint& q = curves[0].points[1];
        QCOMPARE(q.prompts, 2);
        QVERIFY(std::abs(q.kl.mean - 11.5) < 1e-12);
        QVERIFY(std::abs(q.kl.halfWidth - 12.7062047 * std::sqrt(0.5) / std::sqrt(2.0)) < 1e-5);
        QCOMPARE(q.skippedReasons, std::vector<std::string>{"too short"});

        // Incomplete or out-of-order results are refused.
        auto fewer = records;
        fewer.pop_back();
        VERIFY_THROWS(summarizeStudy(spec, fewer), ErrorCode::InvalidArgument, "jobs");
    }

    void mergingJoinsShardsAndNamesWhatIsMissing() {
        const StudySpec spec = smallSpec();
        const auto jobs = studyJobs(spec);
        StudyJournalContents a{spec, studyId(spec), {}}, b{spec, studyId(spec), {}};
        for (const StudyJob& job : jobs)
            (job.index < 13 ? a : b).records.push_back(fakeRecord(job.index, 0.01 * job.index));
        std::vector<std::size_t> missing;
        const auto merged = mergeStudyRecords({b, a}, &missing);
        QVERIFY(missing.empty());
        QCOMPARE(merged.size(), jobs.size());
        for (std::size_t i = 0; i < merged.size(); ++i)
            QCOMPARE(merged[i].index, i);
        // A job in both, agreeing, is fine; disagreeing is not.
        b.records.push_back(a.records[3]);
        QCOMPARE(mergeStudyRecords({a, b}, nullptr).size(), jobs.size());
        b.records.back().klMean += 1e-15;
        VERIFY_THROWS(mergeStudyRecords({a, b}, nullptr), ErrorCode::InvalidArgument, "job 3");
        b.records.pop_back();
        a.records.erase(a.records.begin() + 5);
        missing.clear();
        QCOMPARE(mergeStudyRecords({a, b}, &missing).size(), jobs.size() - 1);
        QCOMPARE(missing, std::vector<std::size_t>{5});
        StudySpec other = spec;
        other.seeds = 1;
        const StudyJournalContents c{other, studyId(other), {}};
        VERIFY_THROWS(mergeStudyRecords({a, c}, nullptr), ErrorCode::InvalidArgument,
                      "another study");
    }

    // On a real (small) model: the shards' records are the single run's, bit for bit, and a run
    // stopped half-way and resumed from its journal ends with the same records too.
    void shardsAndResumeReproduceOneRun() {
        QTemporaryDir tmp;
        const fs::path dir = tmp.path().toStdString();
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-gpt2"), dir / "model"));
        const Model model = Model::load(dir / "model").valueOrThrow();
        StudySpec spec;
        spec.model = model.name();
        spec.modelFingerprint = studyModelFingerprint(model);
        spec.prompts = {"one.txt", "two.txt", "three.txt"};
        spec.promptHashes = {"1", "2", "3"};
        const std::vector<std::string> texts = {
            "In the beginning was the word, and the word was with the keys and the values.",
            "Vanity of vanities, saith the preacher; all is vanity under the sun, every day.",
            "The quick brown fox jumps over the lazy dog while the cache keeps every token."};
        spec.seeds = 2;
        spec.backend = "cpu";
        // Short prompts: no exact part, so that the budgets leave uniform sampling (and its
        // seeds) something to choose.
        spec.curves = {{"select.uniform:sinks=0,window=0", "keep", {0.25, 0.5}},
                       {"select.snapkv:observation=4", "keep", {0.1, 0.5}},
                       {"codec.uniform:bits=2", "group", {8, 32}}};
        StudyRunOptions options;
        options.makeBackend = [] { return makeCpuBackend(); };
        const auto jobs = studyJobs(spec);

        const auto whole = runStudy(spec, model, texts, jobs, nullptr, options);
        KVS_VERIFY_OK(whole);
        QCOMPARE(whole.value().size(), jobs.size());
        std::size_t skipped = 0;
        for (const auto& r : whole.value())
            skipped += r.skipped ? 1 : 0;
        // Groups of 32 do not divide the head dimension of 16: skipped on every prompt (the codec
        // is deterministic, so it runs at one seed).
        QCOMPARE(jobs.size(), std::size_t(3 * (6 + 2)));
        QCOMPARE(skipped, std::size_t(3));
        // Seeds matter to uniform sampling: the two seeds of a prompt differ.
        QCOMPARE(jobs[6].seed, 2);
        QCOMPARE(jobs[6].curve, 0);
        QVERIFY(whole.value()[0].klMean != whole.value()[6].klMean);

        // Three shards, each with its own journal, two workers each: merged = the whole run.
        std::vector<StudyJournalContents> journals;
        for (int i = 1; i <= 3; ++i) {
            const fs::path path = dir / ("shard-" + std::to_string(i) + ".jsonl");
            StudyJournal journal = StudyJournal::open(path, spec, false);
            StudyRunOptions two = options;
            two.workers = 2;
            KVS_VERIFY_OK(runStudy(spec, model, texts, shardJobs(jobs, {i, 3}), &journal, two));
            journals.push_back(readStudyJournal(path));
        }
        std::vector<std::size_t> missing;
        QCOMPARE(asJson(mergeStudyRecords(journals, &missing)), asJson(whole.value()));
        QVERIFY(missing.empty());

        // Cancelled after five jobs, then resumed: the journal ends with every job once and the
        // records equal the whole run's.
        const fs::path path = dir / "resumed.jsonl";
        std::atomic<bool> cancel{false};
        {
            StudyJournal journal = StudyJournal::open(path, spec, false);
            StudyRunOptions stopping = options;
            stopping.cancel = &cancel;
            stopping.progress = [&](const StudyProgress& p) {
                if (p.done >= 5)
                    cancel = true;
            };
            const auto stopped = runStudy(spec, model, texts, jobs, &journal, stopping);
            QVERIFY(!stopped.ok());
            QCOMPARE(stopped.error().code(), ErrorCode::Cancelled);
        }
        const std::size_t kept = readStudyJournal(path).records.size();
        QVERIFY2(kept >= 5 && kept < jobs.size(), qPrintable(QString::number(kept)));
        std::size_t ranAgain = 0;
        {
            StudyJournal journal = StudyJournal::open(path, spec, false);
            QCOMPARE(journal.records().size(), kept);
            StudyRunOptions counting = options;
            counting.progress = [&](const StudyProgress& p) {
                ranAgain = p.done;
                QCOMPARE(p.total, jobs.size());
            };
            const auto resumed = runStudy(spec, model, texts, jobs, &journal, counting);
            KVS_VERIFY_OK(resumed);
            QCOMPARE(asJson(resumed.value()), asJson(whole.value()));
        }
        QCOMPARE(ranAgain, jobs.size()); // counted from the journal's, so the last is the total
        QCOMPARE(readStudyJournal(path).records.size(), jobs.size()); // nothing ran twice

        // The up-front estimate: refused runs stop after the calibration, whose records stay.
        const fs::path refusedPath = dir / "refused.jsonl";
        StudyJournal journal = StudyJournal::open(refusedPath, spec, false);
        StudyRunOptions refusing = options;
        StudyEstimate seen;
        refusing.accept = [&](const StudyEstimate& e) -> std::optional<std::string> {
            seen = e;
            return "too long";
        };
        const auto refused = runStudy(spec, model, texts, jobs, &journal, refusing);
        QVERIFY(!refused.ok());
        QCOMPARE(refused.error().code(), ErrorCode::InvalidArgument);
        QCOMPARE(refused.message(), std::string("too long"));
        QCOMPARE(seen.jobs, jobs.size());
        QCOMPARE(seen.prompts, std::size_t(3));
        QCOMPARE(seen.jobSeconds.size(), std::size_t(3));
        for (const double s : seen.jobSeconds)
            QVERIFY(s >= 0);
        QVERIFY(seen.captureSeconds > 0 && seen.totalSeconds > seen.captureSeconds);
        // The calibration ran the first job of each curve on the first prompt.
        const auto calibrated = readStudyJournal(refusedPath).records;
        QCOMPARE(calibrated.size(), std::size_t(3));
        QCOMPARE(calibrated[0].index, std::size_t(0));
        QCOMPARE(calibrated[1].index, std::size_t(2));
        QCOMPARE(calibrated[2].index, std::size_t(4));
    }

    void theFingerprintFollowsTheWeights() {
        QTemporaryDir tmp;
        const fs::path dir = tmp.path().toStdString();
        auto spec = syntheticPreset("tiny-gpt2");
        KVS_VERIFY_OK(writeSyntheticModel(spec, dir / "a"));
        KVS_VERIFY_OK(writeSyntheticModel(spec, dir / "b"));
        spec.seed = 2; // same shape and config, other weights
        KVS_VERIFY_OK(writeSyntheticModel(spec, dir / "c"));
        const auto print = [&](const char* name) {
            return studyModelFingerprint(Model::load(dir / name).valueOrThrow());
        };
        QCOMPARE(print("a"), print("b"));
        QVERIFY(print("a") != print("c"));
        QCOMPARE(print("a").size(), std::size_t(16));
    }
};

QTEST_GUILESS_MAIN(TestStudy)
#include "test_study.moc"
