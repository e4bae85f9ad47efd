// SPDX-License-Identifier: MIT
// Studies (kvs/study.h): jobs, shards, the journal, merging and the summary over prompts.
#include "kvs/study.h"

#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/file_util.h"
#include "kvs/model.h"
#include "kvs/output_writer.h"
#include "kvs/scheme.h"
#include "kvs/sweep.h"
#include "kvs/threads.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace kvs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kJournalKind = "sweep-journal";
constexpr int kJournalVersion = 1;
// A record is a few hundred bytes; a line far longer is not one of ours.
constexpr std::size_t kMaxJournalLine = std::size_t(1) << 20;

json specJson(const StudySpec& spec) {
    json curves = json::array();
    for (const StudyCurve& c : spec.curves)
        curves.push_back({{"scheme", c.scheme}, {"parameter", c.parameter}, {"values", c.values}});
    json j = {{"model", spec.model},     {"model_fingerprint", spec.modelFingerprint},
              {"prompts", spec.prompts}, {"prompt_hashes", spec.promptHashes},
              {"seeds", spec.seeds},     {"context_tokens", spec.contextTokens},
              {"backend", spec.backend}, {"curves", curves}};
    // Post-prefill studies name no mode, so journals written before streaming keep their ids.
    if (spec.mode != evalModeName(EvalMode::PostPrefill))
        j["mode"] = spec.mode;
    // Likewise generation 1 of the scheme defaults (journals written before it was named).
    if (spec.schemeDefaults != 1)
        j["scheme_defaults"] = spec.schemeDefaults;
    return j;
}

template <typename T> T field(const json& j, const char* key, const std::string& source) {
    const auto it = j.find(key);
    if (it == j.end())
        throw Error(ErrorCode::Format, source + ": no \"" + key + "\"");
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        throw Error(ErrorCode::Format, source + ": \"" + key + "\" has the wrong type");
    }
}

json parseLine(std::string_view line, const std::string& source) {
    checkJsonNesting(line, source);
    try {
        json j = json::parse(line);
        if (!j.is_object())
            throw Error(ErrorCode::Format, source + ": not a JSON object");
        return j;
    } catch (const json::exception& e) {
        throw Error(ErrorCode::Format, source + ": not valid JSON (" + e.what() + ")");
    }
}

std::string headerLine(const StudySpec& spec) {
    return json{{kOwnerKey, kJournalKind},
                {"version", kJournalVersion},
                {"study_id", studyId(spec)},
                {"spec", specJson(spec)}}
               .dump() +
           "\n";
}

// The lines of a journal file: each complete line (without its newline) and where it ends.
struct JournalLines {
    std::vector<std::string> lines;
    std::vector<std::uint64_t> ends; // byte offset just past each line's newline
    bool cutShort = false;           // the file ends inside a line
};

// Reads the complete lines of `path`; only the first when `firstOnly` (to look at a header
// without reading a large file that is not a journal).
JournalLines readLines(const fs::path& path, bool firstOnly = false) {
    std::uint64_t size = 0;
    const int fd = openRegularFile(path, &size);
    JournalLines out;
    std::string pending;
    std::uint64_t offset = 0;
    std::vector<char> buffer(1 << 16);
    for (;;) {
        const ssize_t got = ::read(fd, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            const int err = errno;
            ::close(fd);
            throw Error(ErrorCode::Io, path.string() + ": cannot read: " + std::strerror(err));
        }
        if (got == 0)
            break;
        for (ssize_t i = 0; i < got; ++i) {
            ++offset;
            if (buffer[static_cast<std::size_t>(i)] == '\n') {
                out.lines.push_back(std::move(pending));
                out.ends.push_back(offset);
                pending.clear();
                if (firstOnly) {
                    ::close(fd);
                    return out;
                }
            } else {
                pending.push_back(buffer[static_cast<std::size_t>(i)]);
                if (pending.size() > kMaxJournalLine) {
                    ::close(fd);
                    throw Error(ErrorCode::Format, path.string() + ": line " +
                                                       std::to_string(out.lines.size() + 1) +
                                                       " is longer than any sweep journal's");
                }
            }
        }
    }
    ::close(fd);
    out.cutShort = !pending.empty();
    return out;
}

// 64-bit FNV-1a over 8-byte words (the tail byte-wise): a fingerprint, not a cryptographic hash,
// fast enough to run over a checkpoint's gigabytes.
struct WordHash {
    std::uint64_t h = 0xcbf29ce484222325ull;
    void bytes(std::span<const std::byte> data) {
        std::size_t i = 0;
        for (; i + 8 <= data.size(); i += 8) {
            std::uint64_t w;
            std::memcpy(&w, data.data() + i, 8);
            h = (h ^ w) * 0x100000001b3ull;
        }
        for (; i < data.size(); ++i)
            h = (h ^ static_cast<std::uint64_t>(data[i])) * 0x100000001b3ull;
    }
    void text(std::string_view s) {
        bytes(std::as_bytes(std::span(s.data(), s.size())));
        h = (h ^ 0xffu) * 0x100000001b3ull; // a separator, so "ab"+"c" differs from "a"+"bc"
    }
};

} // namespace

bool studyCurveIsRandom(const StudyCurve& curve) {
    const auto setting = SchemeSetting::parse(curve.scheme);
    if (!setting.ok() || setting.value().params.count("seed") || curve.parameter == "seed")
        return false;
    const Scheme* scheme = findScheme(setting.value().id);
    return scheme && scheme->info().findParam("seed");
}

std::size_t studyJobCount(const StudySpec& spec) {
    // In long double: a hostile spec's product must not wrap around to a small count.
    long double perPrompt = 0;
    for (const StudyCurve& c : spec.curves)
        perPrompt += static_cast<long double>(c.values.size()) *
                     (studyCurveIsRandom(c) ? std::max(1, spec.seeds) : 1);
    const long double total = perPrompt * static_cast<long double>(spec.prompts.size());
    if (total > static_cast<long double>(kMaxStudyJobs))
        throw Error(ErrorCode::InvalidArgument,
                    "the study has " + std::to_string(static_cast<double>(total)) +
                        " jobs, more than the " + std::to_string(kMaxStudyJobs) +
                        " one study may have: fewer prompts, values or seeds");
    return static_cast<std::size_t>(total);
}

std::vector<StudyJob> studyJobs(const StudySpec& spec) {
    std::vector<StudyJob> jobs;
    jobs.reserve(studyJobCount(spec));
    const int seedRuns = std::max(1, spec.seeds);
    std::vector<bool> random;
    for (const StudyCurve& c : spec.curves)
        random.push_back(studyCurveIsRandom(c));
    for (int p = 0; p < static_cast<int>(spec.prompts.size()); ++p)
        for (int s = 0; s < seedRuns; ++s)
            for (int c = 0; c < static_cast<int>(spec.curves.size()); ++c)
                for (int v = 0; v < static_cast<int>(spec.curves[c].values.size()); ++v) {
                    if (s > 0 && !random[static_cast<std::size_t>(c)])
                        break;
                    StudyJob job;
                    job.index = jobs.size();
                    job.curve = c;
                    job.valueIndex = v;
                    job.prompt = p;
                    job.seed = spec.seeds > 0 ? s + 1 : 0;
                    jobs.push_back(job);
                }
    return jobs;
}

std::string studySpecJson(const StudySpec& spec) {
    return specJson(spec).dump();
}

std::string studyId(const StudySpec& spec) {
    const std::string canonical = studySpecJson(spec); // nlohmann's objects sort their keys
    return hex64(fnv1a64Bytes(std::as_bytes(std::span(canonical.data(), canonical.size()))));
}

StudySpec studySpecFromJson(const std::string& text, const std::string& source) {
    const json j = parseLine(text, source);
    StudySpec spec;
    spec.model = field<std::string>(j, "model", source);
    spec.modelFingerprint = field<std::string>(j, "model_fingerprint", source);
    spec.prompts = field<std::vector<std::string>>(j, "prompts", source);
    spec.promptHashes = field<std::vector<std::string>>(j, "prompt_hashes", source);
    spec.seeds = field<int>(j, "seeds", source);
    spec.contextTokens = field<int>(j, "context_tokens", source);
    spec.backend = field<std::string>(j, "backend", source);
    if (j.contains("mode")) {
        spec.mode = field<std::string>(j, "mode", source);
        if (!parseEvalMode(spec.mode))
            throw Error(ErrorCode::Format,
                        source + ": unknown evaluation mode '" + spec.mode + "'");
    }
    spec.schemeDefaults =
        j.contains("scheme_defaults") ? field<int>(j, "scheme_defaults", source) : 1;
    const json curves = field<json>(j, "curves", source);
    if (!curves.is_array())
        throw Error(ErrorCode::Format, source + ": \"curves\" is not an array");
    for (const json& c : curves) {
        if (!c.is_object())
            throw Error(ErrorCode::Format, source + ": a curve is not an object");
        spec.curves.push_back({field<std::string>(c, "scheme", source),
                               field<std::string>(c, "parameter", source),
                               field<std::vector<double>>(c, "values", source)});
    }
    if (spec.prompts.size() != spec.promptHashes.size() || spec.seeds < 0 || spec.seeds > 100000 ||
        spec.contextTokens < 0)
        throw Error(ErrorCode::Format, source + ": inconsistent study (prompts, seeds or context)");
    try {
        (void)studyJobCount(spec);
    } catch (const Error& e) {
        throw Error(ErrorCode::Format, source + ": " + e.what());
    }
    return spec;
}

Result<StudyShard> parseStudyShard(const std::string& text) {
    const auto slash = text.find('/');
    const auto number = [](const std::string& s, int& out) {
        if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit))
            return false;
        out = std::stoi(s);
        return true;
    };
    StudyShard shard;
    if (slash == std::string::npos || !number(text.substr(0, slash), shard.index) ||
        !number(text.substr(slash + 1), shard.count) || shard.count < 1 || shard.index < 1 ||
        shard.index > shard.count)
        return Error(ErrorCode::InvalidArgument,
                     "--shard must be i/n with 1 <= i <= n (e.g. 2/8), got '" + text + "'");
    return shard;
}

std::vector<StudyJob> shardJobs(const std::vector<StudyJob>& jobs, StudyShard shard) {
    const std::size_t n = jobs.size();
    const auto edge = [&](int i) {
        return n * static_cast<std::size_t>(i) / static_cast<std::size_t>(shard.count);
    };
    return {jobs.begin() + static_cast<std::ptrdiff_t>(edge(shard.index - 1)),
            jobs.begin() + static_cast<std::ptrdiff_t>(edge(shard.index))};
}

std::string studyRecordJson(const StudyRecord& r) {
    json j = {{"job", r.index}};
    if (r.skipped) {
        j["skipped"] = r.reason;
    } else {
        j.update({{"kl_mean", r.klMean},
                  {"perplexity_change_percent", r.perplexityChangePercent},
                  {"top1_agreement", r.top1Agreement},
                  {"head_output_error", r.headOutputError},
                  {"total_variation", r.totalVariation},
                  {"mass_lost", r.massLost},
                  {"context_error", r.contextError},
                  {"memory_fraction", r.memoryFraction},
                  {"mean_kept_tokens", r.meanKeptTokens},
                  {"bytes", r.bytes},
                  {"context_tokens", r.contextTokens},
                  {"probe_tokens", r.probeTokens}});
        if (!r.degenerate.empty())
            j["degenerate"] = r.degenerate;
    }
    return j.dump();
}

StudyRecord studyRecordFromJson(const std::string& text, const std::string& source) {
    const json j = parseLine(text, source);
    StudyRecord r;
    r.index = field<std::size_t>(j, "job", source);
    if (j.contains("skipped")) {
        r.skipped = true;
        r.reason = field<std::string>(j, "skipped", source);
        return r;
    }
    r.klMean = field<double>(j, "kl_mean", source);
    r.perplexityChangePercent = field<double>(j, "perplexity_change_percent", source);
    r.top1Agreement = field<double>(j, "top1_agreement", source);
    r.headOutputError = field<double>(j, "head_output_error", source);
    r.totalVariation = field<double>(j, "total_variation", source);
    r.massLost = field<double>(j, "mass_lost", source);
    r.contextError = field<double>(j, "context_error", source);
    r.memoryFraction = field<double>(j, "memory_fraction", source);
    r.meanKeptTokens = field<double>(j, "mean_kept_tokens", source);
    r.bytes = field<std::uint64_t>(j, "bytes", source);
    r.contextTokens = field<int>(j, "context_tokens", source);
    r.probeTokens = field<int>(j, "probe_tokens", source);
    if (j.contains("degenerate"))
        r.degenerate = field<std::string>(j, "degenerate", source);
    for (const double v :
         {r.klMean, r.perplexityChangePercent, r.top1Agreement, r.headOutputError, r.totalVariation,
          r.massLost, r.contextError, r.memoryFraction, r.meanKeptTokens})
        if (!std::isfinite(v))
            throw Error(ErrorCode::Format, source + ": a figure is not a finite number");
    return r;
}

namespace {

// The journal in `file` (named `name`): its header and every complete line's record. A line cut
// short by a kill (no newline yet) is not among them.
StudyJournalContents parseJournal(const std::string& name, const JournalLines& file) {
    if (file.lines.empty())
        throw Error(ErrorCode::Format, name + ": empty, not a sweep journal");
    const json header = parseLine(file.lines[0], name + ": line 1");
    if (!header.contains(kOwnerKey) || header[kOwnerKey] != kJournalKind)
        throw Error(ErrorCode::Format, name + ": not a sweep journal (no \"" +
                                           std::string(kOwnerKey) + "\": \"" + kJournalKind +
                                           "\" on its first line)");
    if (field<int>(header, "version", name) != kJournalVersion)
        throw Error(ErrorCode::Unsupported, name + ": a sweep journal of another version");
    StudyJournalContents out;
    out.spec = studySpecFromJson(field<json>(header, "spec", name).dump(), name + ": line 1");
    out.id = field<std::string>(header, "study_id", name);
    if (out.id != studyId(out.spec))
        throw Error(ErrorCode::Format, name + ": the study id does not match its spec");
    const std::size_t jobCount = studyJobCount(out.spec);
    for (std::size_t i = 1; i < file.lines.size(); ++i) {
        const std::string where = name + ": line " + std::to_string(i + 1);
        out.records.push_back(studyRecordFromJson(file.lines[i], where));
        if (out.records.back().index >= jobCount)
            throw Error(ErrorCode::Format,
                        where + ": job " + std::to_string(out.records.back().index) +
                            " is not one of the study's " + std::to_string(jobCount));
    }
    return out;
}

} // namespace

StudyJournalContents readStudyJournal(const fs::path& path) {
    return parseJournal(path.string(), readLines(path));
}

StudyJournal StudyJournal::open(const fs::path& path, const StudySpec& spec, bool force) {
    StudyJournal journal;
    journal.m_path = path;
    const std::string id = studyId(spec);
    std::error_code ec;
    const auto status = fs::symlink_status(path, ec);
    bool fresh = ec || status.type() == fs::file_type::not_found;
    if (!fresh) {
        std::string refusal;
        if (status.type() != fs::file_type::regular) {
            refusal = "it is not a regular file";
        } else {
            try {
                const JournalLines first = readLines(path, true);
                json header; // stays null when the first line is not JSON: not ours
                try {
                    if (!first.lines.empty())
                        header = parseLine(first.lines[0], path.string());
                } catch (const Error&) {
                }
                const auto owner = header.is_object() ? header.find(kOwnerKey) : header.end();
                const auto studied = header.is_object() ? header.find("study_id") : header.end();
                if (!header.is_object() || owner == header.end() || *owner != kJournalKind)
                    refusal = "it was not written by KV Studio as a sweep journal";
                else if (studied == header.end() || *studied != id)
                    refusal = "it is the journal of another study (other model, prompts, schemes, "
                              "values, seeds or backend)";
                else {
                    // Ours: read the records back; a last line cut short by a kill is dropped
                    // and cut off the file, so that the next record starts on a line of its own.
                    const JournalLines file = readLines(path);
                    journal.m_records = parseJournal(path.string(), file).records;
                    if (file.cutShort &&
                        ::truncate(path.c_str(), static_cast<off_t>(file.ends.back())) != 0)
                        throw Error(ErrorCode::Io, path.string() +
                                                       ": cannot cut off a torn last line: " +
                                                       std::strerror(errno));
                }
            } catch (const Error& e) {
                if (e.code() == ErrorCode::Io)
                    throw;
                refusal = std::string("it is not a readable sweep journal (") + e.what() + ")";
            }
        }
        if (!refusal.empty()) {
            if (!force || status.type() == fs::file_type::directory)
                throw Error(ErrorCode::Exists, "refusing to use " + path.string() +
                                                   " as the sweep journal: " + refusal +
                                                   (status.type() == fs::file_type::directory
                                                        ? ""
                                                        : " (use --force to start it afresh)"));
            fresh = true;
            journal.m_records.clear();
        }
    }
    if (fresh)
        writeOutput(path, headerLine(spec), kJournalKind, Overwrite::Force);
    journal.m_fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (journal.m_fd < 0)
        throw Error(ErrorCode::Io,
                    path.string() + ": cannot open for appending: " + std::strerror(errno));
    return journal;
}

StudyJournal::StudyJournal(StudyJournal&& other) noexcept
    : m_path(std::move(other.m_path)), m_fd(std::exchange(other.m_fd, -1)),
      m_records(std::move(other.m_records)), m_mutex(std::move(other.m_mutex)) {}

StudyJournal& StudyJournal::operator=(StudyJournal&& other) noexcept {
    if (this != &other) {
        if (m_fd >= 0)
            ::close(m_fd);
        m_path = std::move(other.m_path);
        m_fd = std::exchange(other.m_fd, -1);
        m_records = std::move(other.m_records);
        m_mutex = std::move(other.m_mutex);
    }
    return *this;
}

StudyJournal::~StudyJournal() {
    if (m_fd >= 0)
        ::close(m_fd);
}

void StudyJournal::append(const StudyRecord& record) {
    const std::string line = studyRecordJson(record) + "\n";
    const std::lock_guard lock(*m_mutex);
    // One write() per line: appends of a whole line are not interleaved, and a kill leaves at
    // most one line cut short, which open() drops.
    std::size_t written = 0;
    while (written < line.size()) {
        const ssize_t n = ::write(m_fd, line.data() + written, line.size() - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw Error(ErrorCode::Io,
                        m_path.string() + ": cannot append a record: " + std::strerror(errno));
        written += static_cast<std::size_t>(n);
    }
    if (::fdatasync(m_fd) != 0)
        throw Error(ErrorCode::Io,
                    m_path.string() + ": flushing to disk failed: " + std::strerror(errno));
}

std::vector<StudyRecord> mergeStudyRecords(const std::vector<StudyJournalContents>& journals,
                                           std::vector<std::size_t>* missing) {
    if (journals.empty())
        throw Error(ErrorCode::InvalidArgument, "no journals to merge");
    const std::size_t jobCount = studyJobCount(journals.front().spec);
    std::map<std::size_t, StudyRecord> byJob; // a journal may hold a few of many jobs
    for (std::size_t j = 0; j < journals.size(); ++j) {
        if (journals[j].id != journals.front().id)
            throw Error(ErrorCode::InvalidArgument,
                        "journal " + std::to_string(j + 1) + " belongs to another study (id " +
                            journals[j].id + ", the first's is " + journals.front().id + ")");
        for (const StudyRecord& r : journals[j].records) {
            if (r.index >= jobCount)
                throw Error(ErrorCode::InvalidArgument, "job " + std::to_string(r.index) +
                                                            " is not one of the study's " +
                                                            std::to_string(jobCount));
            const auto [slot, added] = byJob.emplace(r.index, r);
            // The same job run twice (a shard rerun, two overlapping journals) must agree.
            if (!added && studyRecordJson(slot->second) != studyRecordJson(r))
                throw Error(ErrorCode::InvalidArgument,
                            "job " + std::to_string(r.index) +
                                " has different results in two journals (different builds or "
                                "machines?)");
        }
    }
    std::vector<StudyRecord> merged;
    merged.reserve(byJob.size());
    std::size_t next = 0;
    for (const auto& [index, record] : byJob) {
        for (; missing && next < index; ++next)
            missing->push_back(next);
        next = index + 1;
        merged.push_back(record);
    }
    for (; missing && next < jobCount; ++next)
        missing->push_back(next);
    return merged;
}

std::vector<StudySummaryCurve> summarizeStudy(const StudySpec& spec,
                                              const std::vector<StudyRecord>& records) {
    const std::vector<StudyJob> jobs = studyJobs(spec);
    if (records.size() != jobs.size())
        throw Error(ErrorCode::InvalidArgument, "the study has " + std::to_string(jobs.size()) +
                                                    " jobs but " + std::to_string(records.size()) +
                                                    " results");
    for (std::size_t i = 0; i < jobs.size(); ++i)
        if (records[i].index != i)
            throw Error(ErrorCode::InvalidArgument, "results out of job order");
    // [curve][value][prompt] -> the records of its seeds
    std::vector<std::vector<std::vector<std::vector<const StudyRecord*>>>> cells(
        spec.curves.size());
    for (std::size_t c = 0; c < spec.curves.size(); ++c)
        cells[c].assign(spec.curves[c].values.size(),
                        std::vector<std::vector<const StudyRecord*>>(spec.prompts.size()));
    for (const StudyJob& job : jobs)
        cells[static_cast<std::size_t>(job.curve)][static_cast<std::size_t>(job.valueIndex)]
             [static_cast<std::size_t>(job.prompt)]
                 .push_back(&records[job.index]);

    std::vector<StudySummaryCurve> out;
    for (std::size_t c = 0; c < spec.curves.size(); ++c) {
        StudySummaryCurve curve;
        curve.curve = spec.curves[c];
        for (std::size_t v = 0; v < spec.curves[c].values.size(); ++v) {
            std::vector<double> kl, ppl, headError, memory, kept, context, bytes, seedSd;
            int seedsRun = 0, degeneratePrompts = 0;
            std::set<std::string> reasons, degenerate;
            for (const auto& seedRecords : cells[c][v]) {
                std::vector<double> runKl, runPpl, runHead, runMemory, runKept, runContext,
                    runBytes;
                bool promptDegenerate = false;
                for (const StudyRecord* r : seedRecords) {
                    if (r->skipped) {
                        reasons.insert(r->reason);
                        continue;
                    }
                    if (!r->degenerate.empty()) {
                        degenerate.insert(r->degenerate);
                        promptDegenerate = true;
                    }
                    runKl.push_back(r->klMean);
                    runPpl.push_back(r->perplexityChangePercent);
                    runHead.push_back(r->headOutputError);
                    runMemory.push_back(r->memoryFraction);
                    runKept.push_back(r->meanKeptTokens);
                    runContext.push_back(r->contextTokens);
                    runBytes.push_back(static_cast<double>(r->bytes));
                }
                seedsRun = std::max(seedsRun, static_cast<int>(runKl.size()));
                degeneratePrompts += promptDegenerate ? 1 : 0;
                if (runKl.empty())
                    continue; // the prompt could not run this setting
                kl.push_back(meanInterval(runKl).mean);
                ppl.push_back(meanInterval(runPpl).mean);
                headError.push_back(meanInterval(runHead).mean);
                memory.push_back(meanInterval(runMemory).mean);
                kept.push_back(meanInterval(runKept).mean);
                context.push_back(meanInterval(runContext).mean);
                bytes.push_back(meanInterval(runBytes).mean);
                if (runKl.size() > 1)
                    seedSd.push_back(meanInterval(runKl).sd);
            }
            const double value = spec.curves[c].values[v];
            if (kl.empty()) {
                curve.skipped.emplace_back(value, reasons.empty() ? std::string("no result")
                                                                  : *reasons.begin());
                continue;
            }
            StudyPoint p;
            p.value = value;
            p.prompts = static_cast<int>(kl.size());
            p.kl = meanInterval(kl);
            p.perplexityChangePercent = meanInterval(ppl);
            p.headOutputError = meanInterval(headError);
            p.memoryFraction = meanInterval(memory);
            p.keptTokens = meanInterval(kept);
            p.contextTokens = meanInterval(context).mean;
            p.bytes = meanInterval(bytes);
            p.seeds = seedsRun;
            p.klSeedSd = seedSd.empty() ? 0.0 : meanInterval(seedSd).mean;
            p.skippedReasons.assign(reasons.begin(), reasons.end());
            p.degeneratePrompts = degeneratePrompts;
            p.degenerateReasons.assign(degenerate.begin(), degenerate.end());
            curve.points.push_back(std::move(p));
        }
        out.push_back(std::move(curve));
    }
    return out;
}

std::string studyModelFingerprint(const Model& model) {
    WordHash hash;
    hash.text(readFile(model.folder() / "config.json", kMaxConfigBytes));
    const Checkpoint& checkpoint = model.checkpoint();
    for (const std::string& name : checkpoint.names()) {
        const TensorInfo& info = checkpoint.info(name);
        hash.text(name);
        hash.text(std::to_string(static_cast<int>(info.dtype)));
        for (const std::int64_t extent : info.shape)
            hash.text(std::to_string(extent));
        hash.bytes(checkpoint.bytes(name));
    }
    return hex64(hash.h);
}

namespace {

StudyRecord recordOf(std::size_t index, const EvalResult& r) {
    StudyRecord record;
    record.index = index;
    record.klMean = r.quality ? r.quality->klMean : 0.0;
    record.perplexityChangePercent = r.quality ? r.quality->perplexityChangePercent : 0.0;
    record.top1Agreement = r.quality ? r.quality->top1Agreement : 0.0;
    record.headOutputError = r.outputError;
    record.totalVariation = r.totalVariation;
    record.massLost = r.massLost;
    record.contextError = r.contextError;
    record.memoryFraction = r.memoryFraction;
    record.meanKeptTokens = meanKeptTokens(r);
    record.bytes = r.bytes.total();
    record.contextTokens = r.contextTokens;
    record.probeTokens = r.probeTokens;
    record.degenerate = r.degenerate;
    return record;
}

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// The jobs of one prompt, with its capture and exact reference once they are made.
struct PromptWork {
    int prompt = 0;
    std::vector<StudyJob> jobs;
    std::optional<Capture> capture;
    std::optional<ExactReference> reference;
};

// Shared state of a run.
class StudyRun {
public:
    StudyRun(const StudySpec& spec, const Model& model, const std::vector<std::string>& texts,
             StudyJournal* journal, const StudyRunOptions& options, std::size_t total,
             std::size_t doneBefore, std::size_t skippedBefore)
        : m_spec(spec), m_model(model), m_texts(texts), m_journal(journal), m_options(options),
          m_start(Clock::now()) {
        m_progress.total = total;
        m_progress.done = doneBefore;
        m_progress.skipped = skippedBefore;
        m_doneBefore = doneBefore;
    }

    bool stopped() const {
        return m_failed.load() || (m_options.cancel && m_options.cancel->load());
    }

    // Capture and reference for `work` (when not made yet), on `backend`. False when stopped.
    bool prepare(PromptWork& work, AttentionBackend& backend) {
        const std::string& file = m_spec.prompts[static_cast<std::size_t>(work.prompt)];
        if (!work.capture) {
            auto captured = m_model.capture(m_texts[static_cast<std::size_t>(work.prompt)]);
            if (!captured.ok())
                return fail(Error(captured.error().code(), file + ": " + captured.message()));
            work.capture = std::move(captured).value();
        }
        if (!work.reference) {
            auto reference = computeExactReference(*work.capture, &m_model, backend, options());
            if (!reference.ok())
                return fail(Error(reference.error().code(), file + ": " + reference.message()));
            work.reference = std::move(reference).value();
        }
        return !stopped();
    }

    // Runs one job; false when the run must stop.
    bool runJob(const PromptWork& work, const StudyJob& job, AttentionBackend& backend) {
        if (stopped())
            return false;
        const StudyCurve& curve = m_spec.curves[static_cast<std::size_t>(job.curve)];
        auto setting =
            SchemeSetting::parse(pinEarlierDefaults(curve.scheme, m_spec.schemeDefaults));
        if (!setting.ok())
            return fail(setting.error());
        SchemeSetting s = setting.value();
        s.params[curve.parameter] = curve.values[static_cast<std::size_t>(job.valueIndex)];
        EvalOptions o = options();
        o.seed = static_cast<std::uint64_t>(job.seed);
        auto result = evaluate(*work.capture, &m_model, s, backend, o, &*work.reference);
        StudyRecord record;
        if (result.ok()) {
            record = recordOf(job.index, result.value());
        } else if (result.error().code() == ErrorCode::InvalidArgument) {
            record.index = job.index;
            record.skipped = true;
            record.reason = result.message();
        } else {
            return fail(
                Error(result.error().code(), m_spec.prompts[static_cast<std::size_t>(job.prompt)] +
                                                 ", " + s.toString() + ": " + result.message()));
        }
        try {
            if (m_journal)
                m_journal->append(record);
        } catch (const Error& e) {
            return fail(e);
        }
        const std::lock_guard lock(m_mutex);
        m_records.push_back(record);
        ++m_progress.done;
        m_progress.skipped += record.skipped ? 1 : 0;
        m_progress.elapsedSeconds = secondsSince(m_start);
        const std::size_t doneNow = m_progress.done - m_doneBefore;
        const std::size_t left = m_progress.total - m_progress.done;
        m_progress.remainingSeconds =
            m_progress.elapsedSeconds / static_cast<double>(doneNow) * static_cast<double>(left);
        if (m_options.progress)
            m_options.progress(m_progress);
        return true;
    }

    bool fail(const Error& e) {
        const std::lock_guard lock(m_mutex);
        if (!m_error && e.code() != ErrorCode::Cancelled)
            m_error = e;
        m_failed = true;
        return false;
    }

    EvalOptions options() const {
        EvalOptions o;
        o.contextTokens = m_spec.contextTokens;
        o.mode = parseEvalMode(m_spec.mode).value_or(EvalMode::PostPrefill);
        o.modelQuality = true;
        o.cancel = m_options.cancel;
        return o;
    }

    std::optional<Error> error() const { return m_error; }
    std::vector<StudyRecord> takeRecords() { return std::move(m_records); }

private:
    const StudySpec& m_spec;
    const Model& m_model;
    const std::vector<std::string>& m_texts;
    StudyJournal* m_journal;
    const StudyRunOptions& m_options;
    Clock::time_point m_start;
    std::mutex m_mutex;
    StudyProgress m_progress;
    std::size_t m_doneBefore = 0;
    std::vector<StudyRecord> m_records;
    std::atomic<bool> m_failed{false};
    std::optional<Error> m_error;
};

} // namespace

Result<std::vector<StudyRecord>> runStudy(const StudySpec& spec, const Model& model,
                                          const std::vector<std::string>& promptTexts,
                                          const std::vector<StudyJob>& jobs, StudyJournal* journal,
                                          const StudyRunOptions& options) {
    return catchErrors([&]() -> std::vector<StudyRecord> {
        if (promptTexts.size() != spec.prompts.size())
            throw Error(ErrorCode::InvalidArgument, "one prompt text per prompt of the study");
        if (!options.makeBackend)
            throw Error(ErrorCode::InvalidArgument, "runStudy needs a backend factory");
        // What the journal holds already (of these jobs).
        std::map<std::size_t, StudyRecord> done;
        std::set<std::size_t> wanted;
        for (const StudyJob& job : jobs)
            wanted.insert(job.index);
        if (journal)
            for (const StudyRecord& r : journal->records())
                if (wanted.count(r.index))
                    done.emplace(r.index, r);
        std::size_t skippedBefore = 0;
        for (const auto& [index, r] : done)
            skippedBefore += r.skipped ? 1 : 0;

        std::deque<PromptWork> queue;
        for (const StudyJob& job : jobs) {
            if (done.count(job.index))
                continue;
            if (queue.empty() || queue.back().prompt != job.prompt)
                queue.push_back(PromptWork{job.prompt, {}, {}, {}});
            queue.back().jobs.push_back(job);
        }
        StudyRun run(spec, model, promptTexts, journal, options, jobs.size(), done.size(),
                     skippedBefore);

        if (!queue.empty()) {
            // Calibration: the first prompt's capture and the first job of each curve in it,
            // timed, before the rest is started.
            auto backend = options.makeBackend();
            PromptWork& first = queue.front();
            const auto start = Clock::now();
            if (run.prepare(first, *backend)) {
                StudyEstimate estimate;
                estimate.captureSeconds = secondsSince(start);
                estimate.jobSeconds.assign(spec.curves.size(), -1.0);
                std::vector<StudyJob> rest;
                for (const StudyJob& job : first.jobs) {
                    auto& seconds = estimate.jobSeconds[static_cast<std::size_t>(job.curve)];
                    if (seconds >= 0 || run.stopped()) {
                        rest.push_back(job);
                        continue;
                    }
                    const auto jobStart = Clock::now();
                    run.runJob(first, job, *backend);
                    seconds = secondsSince(jobStart);
                }
                first.jobs = std::move(rest);
                double measured = 0;
                int curvesMeasured = 0;
                for (const double s : estimate.jobSeconds)
                    if (s >= 0) {
                        measured += s;
                        ++curvesMeasured;
                    }
                const double fallback = curvesMeasured ? measured / curvesMeasured : 0.0;
                estimate.prompts = queue.size();
                estimate.jobs = jobs.size() - done.size();
                estimate.totalSeconds = estimate.captureSeconds * static_cast<double>(queue.size());
                for (const StudyJob& job : jobs)
                    if (!done.count(job.index)) {
                        const double s = estimate.jobSeconds[static_cast<std::size_t>(job.curve)];
                        estimate.totalSeconds += s >= 0 ? s : fallback;
                    }
                if (!run.stopped() && options.accept)
                    if (const auto refusal = options.accept(estimate))
                        throw Error(ErrorCode::InvalidArgument, *refusal);
            }
            if (first.jobs.empty())
                queue.pop_front();

            const int workers =
                std::clamp(options.workers, 1, std::max<int>(1, static_cast<int>(queue.size())));
            const int threadsEach = std::max(1, hardwareThreads() / workers);
            std::mutex queueMutex;
            const auto workLoop = [&](AttentionBackend* given) {
                const ScopedThreadLimit limit(threadsEach);
                std::unique_ptr<AttentionBackend> own;
                AttentionBackend* backendHere = given;
                if (!backendHere) {
                    own = options.makeBackend();
                    backendHere = own.get();
                }
                for (;;) {
                    PromptWork item;
                    {
                        const std::lock_guard lock(queueMutex);
                        if (queue.empty() || run.stopped())
                            return;
                        item = std::move(queue.front());
                        queue.pop_front();
                    }
                    if (!run.prepare(item, *backendHere))
                        return;
                    for (const StudyJob& job : item.jobs)
                        if (!run.runJob(item, job, *backendHere))
                            return;
                }
            };
            // A worker's exception stops the run like an error result (never std::terminate).
            const auto work = [&](AttentionBackend* given) {
                try {
                    workLoop(given);
                } catch (const Error& e) {
                    run.fail(e);
                } catch (const std::bad_alloc&) {
                    run.fail(Error(ErrorCode::OutOfMemory, "out of memory"));
                } catch (const std::exception& e) {
                    run.fail(Error(ErrorCode::Internal, e.what()));
                }
            };
            std::vector<std::thread> threads;
            for (int w = 1; w < workers; ++w)
                threads.emplace_back(work, nullptr);
            work(backend.get());
            for (auto& t : threads)
                t.join();
        }
        if (const auto error = run.error())
            throw *error;
        if (options.cancel && options.cancel->load())
            throw Error(ErrorCode::Cancelled, "cancelled");
        std::vector<StudyRecord> records = run.takeRecords();
        for (auto& [index, r] : done)
            records.push_back(r);
        std::sort(records.begin(), records.end(),
                  [](const StudyRecord& a, const StudyRecord& b) { return a.index < b.index; });
        return records;
    });
}

} // namespace kvs
