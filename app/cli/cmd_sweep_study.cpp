// SPDX-License-Identifier: MIT
// kvstudio-cli sweep --prompt-set: studies at scale (kvs/study.h) — schemes × values × prompts ×
// seeds, in parallel, with a progress bar, an up-front time estimate, cancel, a journal to resume
// from, shards, and sweep-merge to join the shards' journals into one table.
#include "cli.h"
#include "cli_json.h"

#include "kvs/file_util.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/model.h"
#include "kvs/output_writer.h"
#include "kvs/study.h"
#include "kvs/sweep.h"
#include "kvs/threads.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <ostream>
#include <sstream>
#include <unistd.h>

namespace kvs::cli {
namespace {

using nlohmann::json;

// Ctrl+C (SIGINT) and SIGTERM during a study: the jobs under way stop between layers and are
// not recorded; the finished ones are in the journal already.
std::atomic<bool> g_cancelStudy{false};

extern "C" void onStudySignal(int) {
    g_cancelStudy.store(true);
}

class StudySignals {
public:
    StudySignals() {
        g_cancelStudy.store(false);
        struct sigaction action {};
        action.sa_handler = onStudySignal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &m_int);
        sigaction(SIGTERM, &action, &m_term);
    }
    ~StudySignals() {
        sigaction(SIGINT, &m_int, nullptr);
        sigaction(SIGTERM, &m_term, nullptr);
    }
    StudySignals(const StudySignals&) = delete;
    StudySignals& operator=(const StudySignals&) = delete;

private:
    struct sigaction m_int {};
    struct sigaction m_term {};
};

std::string duration(double seconds) {
    if (!(seconds >= 0) || !std::isfinite(seconds))
        return "?";
    const long s = std::lround(seconds);
    char text[32];
    if (s >= 3600)
        std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60)
        std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
    else
        std::snprintf(text, sizeof text, "%lds", s);
    return text;
}

// The progress of a study on the terminal: a bar redrawn in place when stderr is a terminal,
// otherwise (with --progress) a line at every tenth of the work.
class ProgressBar {
public:
    ProgressBar(std::ostream& err, bool terminal, bool lines)
        : m_err(err), m_terminal(terminal), m_lines(lines) {}

    void update(const StudyProgress& p) {
        const std::lock_guard lock(m_mutex);
        const auto now = std::chrono::steady_clock::now();
        const bool last = p.done == p.total;
        if (m_terminal) {
            if (!last && now - m_drawn < std::chrono::milliseconds(200))
                return;
            m_drawn = now;
            constexpr int width = 30;
            const int filled = p.total ? static_cast<int>(width * p.done / p.total) : width;
            m_err << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
                  << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << p.done
                  << "/" << p.total << " jobs";
            if (p.skipped)
                m_err << " (" << p.skipped << " skipped)";
            m_err << ", " << duration(p.elapsedSeconds) << " elapsed";
            if (!last)
                m_err << ", about " << duration(p.remainingSeconds) << " left";
            m_err << "   " << std::flush;
            m_open = true;
        } else if (m_lines) {
            const std::size_t tenth = p.total ? 10 * p.done / p.total : 10;
            if (tenth == m_lastTenth && !last)
                return;
            m_lastTenth = tenth;
            m_err << "progress: " << p.done << "/" << p.total << " jobs, "
                  << duration(p.elapsedSeconds) << " elapsed"
                  << (last ? std::string() : ", about " + duration(p.remainingSeconds) + " left")
                  << "\n"
                  << std::flush;
        }
    }
    // Ends the bar's line (before any other message).
    void finish() {
        const std::lock_guard lock(m_mutex);
        if (m_open)
            m_err << "\n";
        m_open = false;
    }

private:
    std::ostream& m_err;
    bool m_terminal, m_lines;
    std::mutex m_mutex;
    std::chrono::steady_clock::time_point m_drawn{};
    std::size_t m_lastTenth = 11;
    bool m_open = false;
};

std::string shortNumber(double v) {
    std::ostringstream os;
    os << std::setprecision(4) << v;
    return os.str();
}

// "0.0123 ± 0.0021" (the 95% interval's half-width; "n/a" for one prompt).
std::string withInterval(const MeanInterval& m, double scale = 1.0) {
    return shortNumber(m.mean * scale) + " ± " +
           (std::isfinite(m.halfWidth) ? shortNumber(m.halfWidth * scale) : std::string("n/a"));
}

// `text` padded with spaces to `width` columns (UTF-8: "±" and "Δ" take one), on the left when
// `right`-aligned.
std::string padded(const std::string& text, int width, bool right) {
    int columns = 0;
    for (const char ch : text)
        columns += (static_cast<unsigned char>(ch) & 0xC0) != 0x80 ? 1 : 0;
    const std::string fill(static_cast<std::size_t>(std::max(0, width - columns)), ' ');
    return right ? fill + text : text + fill;
}

SlopeFit curveSlope(const StudySummaryCurve& curve) {
    std::vector<double> kept, kl;
    for (const StudyPoint& p : curve.points)
        // A point that keeps everything has no error to fit (its KL is rounding noise); one
        // whose budget is degenerate on any prompt measures sinks + window, not the scheme.
        if (p.keptTokens.mean < p.contextTokens && p.degeneratePrompts == 0) {
            kept.push_back(p.keptTokens.mean);
            kl.push_back(p.kl.mean);
        }
    return fitLogLog(kept, kl);
}

void printStudyTable(std::ostream& out, const StudySpec& spec,
                     const std::vector<StudySummaryCurve>& curves) {
    out << spec.model << ", " << spec.prompts.size() << " prompts"
        << (spec.seeds > 0 ? " x seeds 1-" + std::to_string(spec.seeds) : std::string())
        << ", backend " << spec.backend
        << (spec.mode == "streaming" ? ", streaming (each probe token sees the summary as it "
                                       "stands when it is decoded)"
                                     : "")
        << "\n"
        << "each figure: mean over prompts ± half-width of its 95% Student-t interval over "
           "prompts (each prompt's figure the mean over its seeds)\n";
    for (const StudySummaryCurve& c : curves) {
        out << "\n" << c.curve.scheme << " over " << c.curve.parameter << "\n";
        const std::vector<int> widths = {9, 8, 9, 26, 24, 24, 0};
        const auto line = [&](const std::vector<std::string>& cells) {
            out << " ";
            for (std::size_t i = 0; i < cells.size(); ++i)
                out << ' ' << padded(cells[i], widths[i], i == 1 || i == 2);
            out << "\n";
        };
        line({c.curve.parameter, "kept", "memory", "KL (nats/token)", "Δ perplexity (%)",
              "head output error", "prompts"});
        for (const StudyPoint& p : c.points) {
            line({shortNumber(p.value) + (p.degeneratePrompts > 0 ? "*" : ""),
                  shortNumber(p.keptTokens.mean), shortNumber(100 * p.memoryFraction.mean) + "%",
                  withInterval(p.kl), withInterval(p.perplexityChangePercent),
                  withInterval(p.headOutputError), std::to_string(p.prompts)});
            if (p.seeds > 1)
                out << "             KL sd over seeds " << shortNumber(p.klSeedSd)
                    << " (mean over prompts)\n";
            for (const std::string& why : p.skippedReasons)
                out << "             skipped on some prompts: " << why << "\n";
            for (const std::string& why : p.degenerateReasons)
                out << "           * degenerate on " << p.degeneratePrompts << " of " << p.prompts
                    << " prompts: " << why << "\n";
        }
        for (const auto& [value, why] : c.skipped)
            out << "  skipped " << c.curve.parameter << " = " << shortNumber(value) << ": " << why
                << "\n";
        const SlopeFit fit = curveSlope(c);
        if (fit.points < 2)
            out << "  slope of log(mean KL) vs log(mean kept tokens): n/a (fewer than two points "
                   "drop tokens)\n";
        else
            out << "  slope of log(mean KL) vs log(mean kept tokens): " << shortNumber(fit.slope)
                << " (R² " << shortNumber(fit.r2) << ", " << fit.points << " points)\n";
    }
}

void printStudyCsv(std::ostream& out, const std::vector<StudySummaryCurve>& curves) {
    out << "scheme,param,value,prompts,mean_kept_tokens,memory_fraction,bytes_mean,kl_nats_mean,"
           "kl_nats_half_width,kl_nats_sd,kl_sd_over_seeds,perplexity_change_percent_mean,"
           "perplexity_change_percent_half_width,head_output_error_mean,"
           "head_output_error_half_width,degenerate_prompts\n";
    const auto hw = [](const MeanInterval& m) {
        return std::isfinite(m.halfWidth) ? shortNumber(m.halfWidth) : std::string();
    };
    out << std::setprecision(10);
    for (const StudySummaryCurve& c : curves)
        for (const StudyPoint& p : c.points)
            out << c.curve.scheme << "," << c.curve.parameter << "," << p.value << "," << p.prompts
                << "," << p.keptTokens.mean << "," << p.memoryFraction.mean << "," << p.bytes.mean
                << "," << p.kl.mean << "," << hw(p.kl) << "," << p.kl.sd << "," << p.klSeedSd << ","
                << p.perplexityChangePercent.mean << "," << hw(p.perplexityChangePercent) << ","
                << p.headOutputError.mean << "," << hw(p.headOutputError) << ","
                << p.degeneratePrompts << "\n";
}

json studyJson(const StudySpec& spec, const std::vector<StudySummaryCurve>& curves) {
    json out = json::array();
    for (const StudySummaryCurve& c : curves) {
        json points = json::array();
        for (const StudyPoint& p : c.points)
            points.push_back(
                {{"value", p.value},
                 {"prompts", p.prompts},
                 {"mean_kept_tokens", intervalJson(p.keptTokens, "prompts")},
                 {"memory_fraction", intervalJson(p.memoryFraction, "prompts")},
                 {"bytes", intervalJson(p.bytes, "prompts")},
                 {"kl_nats_per_token", intervalJson(p.kl, "prompts")},
                 {"seeds", p.seeds},
                 {"kl_sd_over_seeds", p.klSeedSd},
                 {"perplexity_change_percent", intervalJson(p.perplexityChangePercent, "prompts")},
                 {"head_output_error", intervalJson(p.headOutputError, "prompts")},
                 {"skipped_on_some_prompts", p.skippedReasons},
                 {"degenerate",
                  p.degeneratePrompts == 0
                      ? json(nullptr)
                      : json{{"prompts", p.degeneratePrompts}, {"reasons", p.degenerateReasons}}}});
        json skipped = json::array();
        for (const auto& [value, why] : c.skipped)
            skipped.push_back({{"value", value}, {"reason", why}});
        const SlopeFit fit = curveSlope(c);
        out.push_back({{"scheme", c.curve.scheme},
                       {"param", c.curve.parameter},
                       {"points", points},
                       {"skipped", skipped},
                       {"slope_vs_kept",
                        {{"metric", "kl_mean"},
                         {"slope", fit.points >= 2 ? finiteOrNull(fit.slope) : json(nullptr)},
                         {"r2", finiteOrNull(fit.r2)},
                         {"points", fit.points}}}});
    }
    return {{"model", spec.model},
            {"study_id", studyId(spec)},
            {"prompts", spec.prompts},
            {"seeds", spec.seeds},
            {"context_tokens", spec.contextTokens},
            {"backend", spec.backend},
            {"mode", spec.mode},
            {"sweeps", out}};
}

void printStudy(const Args& args, Streams io, const StudySpec& spec,
                const std::vector<StudyRecord>& records) {
    const auto curves = summarizeStudy(spec, records);
    if (args.has("json"))
        io.out << studyJson(spec, curves).dump(2, ' ', false, json::error_handler_t::replace)
               << "\n";
    else if (args.has("csv"))
        printStudyCsv(io.out, curves);
    else
        printStudyTable(io.out, spec, curves);
}

std::string fnvHex(const std::string& text) {
    return hex64(fnv1a64Bytes(std::as_bytes(std::span(text.data(), text.size()))));
}

} // namespace

int runSweepStudy(const Args& args, Streams io) {
    // Everything the command line says is checked before any work (exit 2).
    if (args.get("prompt") || args.get("prompt-file"))
        throw UsageError("--prompt-set sweeps the folder's prompts; drop --prompt/--prompt-file");
    for (const char* single : {"no-quality", "epsilon", "fit", "seed"})
        if (args.has(single) || args.get(single))
            throw UsageError(std::string("--") + single +
                             " goes with a one-prompt sweep; a prompt-set sweep reports KL per "
                             "prompt with seeds 1 to N (--seeds N)");
    if (args.has("json") && args.has("csv"))
        throw UsageError("give either --json or --csv");
    const std::vector<SchemeSetting> settings = parseSchemeList(args.require("scheme"));
    const std::optional<std::string> paramArg = args.get("param");
    const bool explicitValues = args.get("values") || args.get("range");
    const std::vector<double> givenValues = sweepValues(args);
    for (const SchemeSetting& base : settings) {
        const auto plan = sweepPlan(base, 1 << 20);
        const std::string param = paramArg ? *paramArg : plan ? plan->parameter : "keep";
        if (explicitValues || !plan || plan->parameter != param)
            if (const auto checked = checkSweep(base, param, givenValues); !checked.ok())
                throw UsageError(checked.message());
    }
    EvalMode mode = EvalMode::PostPrefill;
    if (const auto m = args.get("mode")) {
        const auto parsed = parseEvalMode(*m);
        if (!parsed)
            throw UsageError("--mode is post-prefill or streaming, got '" + *m + "'");
        mode = *parsed;
    }
    if (mode == EvalMode::Streaming)
        for (const SchemeSetting& base : settings)
            if (const Scheme* scheme = findScheme(base.id); scheme && !scheme->info().canStream)
                throw UsageError(base.id + " cannot stream: " + scheme->info().noStreamReason);
    const int seeds = args.getInt("seeds", 1, 1, 100);
    const int workers = args.getInt("jobs", 1, 1, 64);
    std::optional<StudyShard> shard;
    if (const auto s = args.get("shard")) {
        auto parsed = parseStudyShard(*s);
        if (!parsed.ok())
            throw UsageError(parsed.message());
        shard = parsed.value();
        if (!args.get("journal"))
            throw UsageError("--shard needs --journal FILE: a shard's results are merged from "
                             "its journal (kvstudio-cli sweep-merge)");
    }
    double maxHours = 2.0;
    if (const auto h = args.get("max-hours")) {
        maxHours = parseNumber(*h, "--max-hours");
        if (!(maxHours > 0))
            throw UsageError("--max-hours must be positive, got '" + *h + "'");
    }
    const std::filesystem::path input = args.positional(0, "MODEL");
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec))
        throw UsageError(input.string() +
                         ": --prompt-set needs a model folder (a capture holds one prompt)");
    const auto files = promptSetFiles(args.require("prompt-set"));

    const Model model = Model::load(input).valueOrThrow();
    std::vector<std::string> texts;
    int shortest = 0;
    StudySpec spec;
    spec.model = model.name();
    for (const auto& file : files) {
        texts.push_back(readFile(file, kMaxPromptBytes));
        if (texts.back().empty())
            throw Error(ErrorCode::InvalidArgument, file.string() + ": empty prompt");
        const int tokens = model.tokenizer()
                               ? static_cast<int>(model.tokenizer()->encode(texts.back()).size())
                               : static_cast<int>(texts.back().size());
        // Every prompt is checked before any work: a long one must not fail the run an hour in.
        if (tokens > model.config().contextLimit())
            throw Error(ErrorCode::InvalidArgument,
                        file.string() + ": the prompt has " + std::to_string(tokens) +
                            " tokens but the model accepts at most " +
                            std::to_string(model.config().contextLimit()) +
                            " positions (shorten it or drop it from the prompt set)");
        shortest = shortest == 0 ? tokens : std::min(shortest, tokens);
        spec.prompts.push_back(file.filename().string());
        spec.promptHashes.push_back(fnvHex(texts.back()));
    }
    spec.modelFingerprint = studyModelFingerprint(model);
    spec.seeds = args.get("seeds") ? seeds : 0;
    spec.contextTokens = args.getInt("context", 0, 0, 1 << 24);
    spec.mode = evalModeName(mode);
    const std::string backendName = args.get("backend").value_or("auto");
    spec.backend = makeBackend(backendName, io)->name();
    // The values of each curve: the same for every prompt (a curve averages over prompts), from
    // the shortest prompt's context when the scheme's plan depends on it.
    const int planContext = spec.contextTokens > 0 ? spec.contextTokens : 3 * shortest / 4;
    for (const SchemeSetting& base : settings) {
        const auto plan = sweepPlan(base, planContext, 7, model.config().kvHeads);
        const std::string param = paramArg ? *paramArg : plan ? plan->parameter : "keep";
        spec.curves.push_back(
            {sweepBase(base, param).toString(), param,
             !explicitValues && plan && plan->parameter == param ? plan->values : givenValues});
    }
    const std::vector<StudyJob> all = studyJobs(spec);
    const std::vector<StudyJob> jobs = shard ? shardJobs(all, *shard) : all;

    std::optional<StudyJournal> journal;
    if (const auto path = args.get("journal")) {
        journal.emplace(StudyJournal::open(*path, spec, args.has("force")));
        std::size_t held = 0;
        for (const StudyRecord& r : journal->records())
            held += std::any_of(jobs.begin(), jobs.end(),
                                [&](const StudyJob& j) { return j.index == r.index; })
                        ? 1
                        : 0;
        if (held > 0)
            io.err << "resuming from " << *path << ": " << held << " of " << jobs.size()
                   << " jobs already done\n";
    }
    io.err << "study " << studyId(spec) << ": " << all.size() << " jobs (" << spec.curves.size()
           << " curves x " << spec.prompts.size() << " prompts"
           << (spec.seeds ? ", random schemes x " + std::to_string(spec.seeds) + " seeds"
                          : std::string())
           << ")";
    if (shard)
        io.err << ", shard " << shard->index << "/" << shard->count << ": " << jobs.size()
               << " jobs";
    io.err << "\n";

    const bool terminal = &io.err == &std::cerr && ::isatty(STDERR_FILENO);
    ProgressBar bar(io.err, terminal, args.has("progress"));
    StudySignals signals;
    StudyRunOptions options;
    options.workers = workers;
    options.cancel = &g_cancelStudy;
    options.makeBackend = [&] {
        std::ostringstream quiet; // the fallback note was printed once above
        return makeBackend(backendName, Streams{io.out, quiet});
    };
    options.progress = [&](const StudyProgress& p) { bar.update(p); };
    options.accept = [&](const StudyEstimate& e) -> std::optional<std::string> {
        double fastest = 1e300, slowest = 0;
        for (const double s : e.jobSeconds)
            if (s >= 0) {
                fastest = std::min(fastest, s);
                slowest = std::max(slowest, s);
            }
        std::ostringstream what;
        what << e.jobs << " jobs over " << e.prompts << " prompts: " << duration(e.captureSeconds)
             << " per prompt's capture, " << duration(fastest) << " to " << duration(slowest)
             << " per job";
        io.err << "estimate: about " << duration(e.totalSeconds) << " one job after another ("
               << what.str() << ")\n";
        if (e.totalSeconds <= maxHours * 3600)
            return std::nullopt;
        std::ostringstream refusal;
        refusal << "this sweep would take about " << duration(e.totalSeconds)
                << " on this machine at the pace of its first jobs (" << what.str()
                << "), more than the limit of " << shortNumber(maxHours)
                << " h: allow it with --max-hours "
                << static_cast<long>(std::ceil(e.totalSeconds / 3600.0))
                << ", split it across machines with --shard i/n (and sweep-merge), or ask for "
                   "fewer prompts, values (--values) or seeds";
        if (journal)
            refusal << "; the jobs timed so far are kept in " << journal->path().string();
        return refusal.str();
    };
    auto result = runStudy(spec, model, texts, jobs, journal ? &*journal : nullptr, options);
    bar.finish();
    if (!result.ok()) {
        if (result.error().code() == ErrorCode::Cancelled) {
            io.err << "cancelled: "
                   << (journal ? "the finished jobs are in " + journal->path().string() +
                                     "; run the same command again to resume"
                               : std::string("nothing kept (give --journal FILE to keep "
                                             "finished jobs and resume)"))
                   << "\n";
            return 130;
        }
        throw result.error();
    }
    if (shard && shard->count > 1) {
        io.err << "shard " << shard->index << "/" << shard->count << " done: " << jobs.size()
               << " jobs in " << journal->path().string()
               << "; when every shard is done, kvstudio-cli sweep-merge JOURNAL... prints the "
                  "table\n";
        if (args.has("json"))
            io.out << json{{"study_id", studyId(spec)},
                           {"shard",
                            std::to_string(shard->index) + "/" + std::to_string(shard->count)},
                           {"jobs", jobs.size()},
                           {"journal", journal->path().string()}}
                          .dump(2)
                   << "\n";
        return 0;
    }
    printStudy(args, io, spec, result.value());
    return 0;
}

int runSweepMerge(const Args& args, Streams io) {
    args.allowOnly({"json", "csv"});
    if (args.has("json") && args.has("csv"))
        throw UsageError("give either --json or --csv");
    if (args.positionals().empty())
        throw UsageError("sweep-merge needs the journals of a study's shards");
    std::vector<StudyJournalContents> journals;
    for (const std::string& path : args.positionals())
        journals.push_back(readStudyJournal(path));
    std::vector<std::size_t> missing;
    const std::vector<StudyRecord> records = mergeStudyRecords(journals, &missing);
    if (!missing.empty()) {
        std::ostringstream list;
        for (std::size_t i = 0; i < missing.size() && i < 10; ++i)
            list << (i ? ", " : "") << missing[i];
        if (missing.size() > 10)
            list << ", …";
        throw Error(ErrorCode::Missing,
                    std::to_string(missing.size()) + " of " +
                        std::to_string(studyJobCount(journals.front().spec)) +
                        " jobs are in none of the journals (jobs " + list.str() +
                        "): run the missing shards, or rerun a killed one with the same "
                        "command to resume it");
    }
    printStudy(args, io, journals.front().spec, records);
    return 0;
}

} // namespace kvs::cli
