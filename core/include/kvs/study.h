// SPDX-License-Identifier: MIT
// Studies: sweeps at scale (issue #15). A study is schemes × parameter values × prompts × seeds,
// cut into independent jobs with stable indices. Each finished job is appended to a journal
// (one JSON line, flushed to disk), so a killed run resumes where it stopped, a study splits
// into shards (`--shard i/n`) that run anywhere, and the shards' journals merge into the table
// an uninterrupted run prints: the summary is computed from the records alone, in job order.
#pragma once

#include "kvs/scheme.h"
#include "kvs/statistics.h"
#include "kvs/status.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kvs {

// One trade-off curve: a base scheme setting swept over one parameter.
struct StudyCurve {
    std::string scheme; // the base setting, SchemeSetting::toString()
    std::string parameter;
    std::vector<double> values;
};

// What a study runs. Two studies with the same spec have the same jobs and the same id.
struct StudySpec {
    std::string model;                     // the model folder's name
    std::string modelFingerprint;          // studyModelFingerprint(): config and weights
    std::vector<std::string> prompts;      // prompt file names, in order
    std::vector<std::string> promptHashes; // fnv1a64 of each prompt's text
    int seeds = 0;                         // 0: one run per prompt at seed 0; N: seeds 1…N
    int contextTokens = 0; // EvalOptions::contextTokens (0: three quarters of each prompt)
    std::string backend;   // the attention backend's name (results depend on it slightly)
    std::string mode = "post-prefill"; // evalModeName(): post-prefill or streaming
    std::vector<StudyCurve> curves;
    // The scheme defaults the curves' settings were written under (kSchemeDefaultsGeneration):
    // part of the study's id, so that a journal of earlier defaults is another study (never
    // resumed or merged with today's runs). Specs that do not name it are of generation 1; a
    // run of such a spec pins the changed parameters at their earlier values.
    int schemeDefaults = kSchemeDefaultsGeneration;
};

// A job: one scheme setting on one prompt at one seed.
struct StudyJob {
    std::size_t index = 0; // position in studyJobs()
    int curve = 0;         // into StudySpec::curves
    int valueIndex = 0;    // into the curve's values
    int prompt = 0;        // into StudySpec::prompts
    int seed = 0;          // the evaluation's seed (0 without --seeds)
};

// Whether a curve's scheme draws random numbers: it has a "seed" parameter that its setting
// leaves open. Only such curves run once per seed; the others run once per prompt (at the first
// seed), since every seed would give the same result.
bool studyCurveIsRandom(const StudyCurve& curve);

// The most jobs one study may have (about 4 GB of journal): a larger grid is refused up front,
// and a journal whose spec asks for more is malformed (it cannot have been written).
inline constexpr std::size_t kMaxStudyJobs = 10'000'000;
// The job count of `spec`, without listing the jobs; InvalidArgument above kMaxStudyJobs.
std::size_t studyJobCount(const StudySpec& spec);

// Every job of a study, prompt-major (a prompt's jobs are adjacent, so one capture serves them),
// then seed, curve and value.
std::vector<StudyJob> studyJobs(const StudySpec& spec);

// The study's identity: fnv1a64 (hex) of its canonical JSON. Journals of different ids never mix.
std::string studyId(const StudySpec& spec);

// The spec as JSON text and back (journals keep it in their first line).
std::string studySpecJson(const StudySpec& spec);
StudySpec studySpecFromJson(const std::string& text, const std::string& source);

// Shard i of n (1 ≤ i ≤ n): a contiguous block of the jobs, so that each shard captures only the
// prompts its jobs need. The blocks of 1/n … n/n cover every job exactly once.
struct StudyShard {
    int index = 1;
    int count = 1;
};
// Parses "i/n"; InvalidArgument naming the text otherwise.
Result<StudyShard> parseStudyShard(const std::string& text);
std::vector<StudyJob> shardJobs(const std::vector<StudyJob>& jobs, StudyShard shard);

// What a job measured (the figures the study's table reports), or why the setting was skipped.
struct StudyRecord {
    std::size_t index = 0;
    bool skipped = false;
    std::string reason; // when skipped: the scheme's InvalidArgument message
    double klMean = 0, perplexityChangePercent = 0, top1Agreement = 0;
    double headOutputError = 0, totalVariation = 0, massLost = 0, contextError = 0;
    double memoryFraction = 0, meanKeptTokens = 0;
    std::uint64_t bytes = 0;
    int contextTokens = 0, probeTokens = 0;
    std::string degenerate; // EvalResult::degenerate: the budget left the scheme nothing to choose
};
std::string studyRecordJson(const StudyRecord& record);
StudyRecord studyRecordFromJson(const std::string& text, const std::string& source);

// The journal of one run (or one shard): a text file whose first line holds the kind mark
// ("kvstudio_file": "sweep-journal"), the study's id and spec, and whose other lines are records.
class StudyJournal {
public:
    // Opens `path` for `spec`. Absent: created with its header. A journal of the same study:
    // its records are read back (a last line cut short by a kill is dropped and cut off the file)
    // and new records are appended. Anything else — another study's journal, another program's
    // file, a link, a folder — is refused with ErrorCode::Exists unless `force`, which starts the
    // journal afresh (atomically replacing the file).
    static StudyJournal open(const std::filesystem::path& path, const StudySpec& spec, bool force);

    StudyJournal(StudyJournal&&) noexcept;
    StudyJournal& operator=(StudyJournal&&) noexcept;
    ~StudyJournal();

    const std::vector<StudyRecord>& records() const { return m_records; } // as read at open
    // Appends one record and flushes it to the disk (fdatasync) before returning; thread-safe.
    void append(const StudyRecord& record);
    const std::filesystem::path& path() const { return m_path; }

private:
    StudyJournal() = default;
    std::filesystem::path m_path;
    int m_fd = -1;
    std::vector<StudyRecord> m_records;
    std::unique_ptr<std::mutex> m_mutex = std::make_unique<std::mutex>();
};

// A journal read whole (for merging): its spec, id and records. Format errors name the file and
// the line.
struct StudyJournalContents {
    StudySpec spec;
    std::string id;
    std::vector<StudyRecord> records;
};
StudyJournalContents readStudyJournal(const std::filesystem::path& path);

// The records of several journals of one study, one per job, in job order. Throws
// InvalidArgument when the journals belong to different studies or disagree about a job.
// `missing` receives the indices of jobs no journal holds.
std::vector<StudyRecord> mergeStudyRecords(const std::vector<StudyJournalContents>& journals,
                                           std::vector<std::size_t>* missing);

// One point of a study's curve: the figures over prompts (each prompt's figure the mean over its
// seeds), with 95% Student-t intervals over prompts.
struct StudyPoint {
    double value = 0;
    int prompts = 0; // prompts that ran the setting (the rest were skipped)
    int seeds = 0;   // runs per prompt (most over prompts): 1 for a deterministic scheme
    MeanInterval kl, perplexityChangePercent, headOutputError, memoryFraction, keptTokens, bytes;
    double contextTokens = 0; // mean over prompts
    double klSeedSd = 0;      // the KL's sd over seeds, mean over prompts (0 with one seed)
    std::vector<std::string> skippedReasons; // distinct reasons, for the prompts that skipped it
    // Prompts on which the budget was degenerate for the scheme (StudyRecord::degenerate) and
    // the distinct reasons.
    int degeneratePrompts = 0;
    std::vector<std::string> degenerateReasons;
};
struct StudySummaryCurve {
    StudyCurve curve;
    std::vector<StudyPoint> points; // in the curve's value order; values no prompt ran are absent
    std::vector<std::pair<double, std::string>> skipped; // values every prompt skipped
};
// Summarizes complete records (one per job of `spec`, in job order): InvalidArgument otherwise.
std::vector<StudySummaryCurve> summarizeStudy(const StudySpec& spec,
                                              const std::vector<StudyRecord>& records);

class AttentionBackend;
class Model;

// Running a study's jobs.
struct StudyProgress {
    std::size_t done = 0;    // jobs finished, this run and earlier runs of the journal
    std::size_t skipped = 0; // of those, settings the scheme could not meet
    std::size_t total = 0;   // jobs of this run (the shard)
    double elapsedSeconds = 0;
    double remainingSeconds = -1; // an estimate at the pace so far; −1 before the first job
};
// The up-front estimate, from timing one prompt's capture and the first job of every curve.
struct StudyEstimate {
    std::size_t jobs = 0;           // left to run, including the calibration's
    std::size_t prompts = 0;        // left to capture, including the calibration's
    double captureSeconds = 0;      // one prompt: capture and exact reference
    std::vector<double> jobSeconds; // per curve: one evaluation
    double totalSeconds = 0;        // the whole run, one job after another
};
struct StudyRunOptions {
    int workers = 1; // prompts evaluated at once; the cores are shared out between them
    const std::atomic<bool>* cancel = nullptr;
    std::function<std::unique_ptr<AttentionBackend>()> makeBackend;
    // Called once after the calibration, before the rest of the work: a message refuses the run
    // (the calibration's records stay in the journal).
    std::function<std::optional<std::string>(const StudyEstimate&)> accept;
    std::function<void(const StudyProgress&)> progress; // after every job, from any worker
};
// Runs `jobs` (a shard of studyJobs(spec), or all) of the study on `model`, whose prompt texts
// are `promptTexts` (parallel to spec.prompts), skipping jobs the journal already holds and
// appending every new record to it. Returns the records of `jobs`, in job order. A setting the
// scheme cannot meet is a skipped record; any other error stops the run (Cancelled when the
// cancel flag was raised) and names the prompt and the setting.
Result<std::vector<StudyRecord>> runStudy(const StudySpec& spec, const Model& model,
                                          const std::vector<std::string>& promptTexts,
                                          const std::vector<StudyJob>& jobs, StudyJournal* journal,
                                          const StudyRunOptions& options);

// fnv1a64 (hex) of a model folder's config.json text and of every tensor's name, shape and bytes:
// a retrained model, even of the same shape, gets another fingerprint.
std::string studyModelFingerprint(const Model& model);

} // namespace kvs
