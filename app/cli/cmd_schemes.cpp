// SPDX-License-Identifier: MIT
// kvstudio-cli schemes and eval: the scheme registry and the evaluation protocol.
#include "cli.h"
#include "cli_json.h"

#include "kvs/capture.h"
#include "kvs/evaluator.h"
#include "kvs/file_util.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/metrics.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/spectrum.h"
#include "kvs/statistics.h"
#include "kvs/sweep.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>

namespace kvs::cli {
namespace {

using nlohmann::json;

json paramJson(const ParamSpec& p) {
    return {{"key", p.key},
            {"label", p.label},
            {"min", p.minimum},
            {"max", p.maximum},
            {"default", p.defaultValue},
            {"log_scale", p.logScale},
            {"integer", p.integer},
            {"unit", p.unit},
            {"choices", p.choices},
            {"divides_kv_heads", p.dividesKvHeads},
            {"help", p.help}};
}

json bytesJson(const CacheBytes& b) {
    return {{"keys", b.keys}, {"values", b.values}, {"metadata", b.metadata}, {"total", b.total()}};
}

// Entropy-coded codecs: bits per element coded and the empirical entropy; null otherwise.
json rateJson(const EvalResult& result) {
    const CacheRate r = cacheRate(result);
    if (!r.entropyCoded())
        return nullptr;
    return {{"bits_per_element", r.codedBitsPerElement},
            {"stream_bits_per_element", r.streamBitsPerElement},
            {"side_bits_per_element", r.sideBitsPerElement},
            {"entropy_bits_per_element", r.entropyBitsPerElement},
            {"gap_bits_per_element", r.gapBitsPerElement()},
            {"elements", r.codedElements}};
}

json qualityJson(const ModelQuality& q);

// A degenerate budget (EvalResult::degenerate): how many heads and the first one's reason; null
// when the scheme chose what it keeps on every head.
json degenerateJson(const EvalResult& r) {
    if (r.degenerateHeads == 0)
        return nullptr;
    return {{"heads", r.degenerateHeads}, {"reason", r.degenerate}};
}

// What eval and sweep report of a result, the headline first (docs/schemes.md "Metrics").
json metricsJson(const EvalResult& r) {
    return {{"quality", r.quality ? qualityJson(*r.quality) : json(nullptr)},
            {"degenerate", degenerateJson(r)},
            {"head_output_error", r.outputError},
            {"total_variation", r.totalVariation},
            {"mass_lost", r.massLost},
            {"context_error", r.contextError},
            {"logit_error", r.logitError},
            {"rate", rateJson(r)},
            {"compress_ms", r.compressMilliseconds},
            {"attend_ms", r.attendMilliseconds}};
}

json qualityJson(const ModelQuality& q) {
    return {{"kl_mean", q.klMean},
            {"perplexity_exact", q.perplexityExact},
            {"perplexity_compressed", q.perplexityCompressed},
            {"perplexity_change_percent", q.perplexityChangePercent},
            {"top1_agreement", q.top1Agreement},
            {"positions", q.positions}};
}

// A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
std::string csvField(const std::string& text) {
    if (text.find_first_of(",\"\n\r") == std::string::npos)
        return text;
    std::string out = "\"";
    for (const char c : text)
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

// Four significant digits, for tables.
std::string number(double v) {
    std::ostringstream os;
    os << std::setprecision(4) << v;
    return os.str();
}

double meanKept(const EvalResult& r) {
    double kept = 0;
    for (const auto& h : r.heads)
        kept += h.keptTokens;
    return r.heads.empty() ? 0.0 : kept / static_cast<double>(r.heads.size());
}

} // namespace

json finiteOrNull(double v) {
    return std::isfinite(v) ? json(v) : json(nullptr);
}

std::unique_ptr<AttentionBackend> makeBackend(const std::string& name, Streams io) {
    if (name != "auto" && name != "cpu" && name != "vulkan")
        throw UsageError("--backend must be auto, cpu or vulkan, got '" + name + "'");
    auto choice = gpu::makeAttentionBackend(name == "auto" ? "" : name);
    if (name == "vulkan" && !choice.vulkan)
        throw Error(ErrorCode::Unsupported, "no Vulkan backend: " + choice.description);
    if (name == "auto" && !choice.vulkan)
        io.err << "note: " << choice.description << "\n";
    return std::move(choice.backend);
}

int runSchemes(const Args& args, Streams io) {
    args.allowOnly({"json"});
    if (args.has("json")) {
        json arr = json::array();
        for (const auto& s : schemeRegistry()) {
            const SchemeInfo& i = s->info();
            json params = json::array();
            for (const auto& p : i.params)
                params.push_back(paramJson(p));
            arr.push_back({{"id", i.id},
                           {"family", i.family},
                           {"name", i.displayName},
                           {"explanation", i.explanation},
                           {"params", params}});
        }
        io.out << json{{"schemes", arr}}.dump(2) << "\n";
        return 0;
    }
    for (const auto& s : schemeRegistry()) {
        const SchemeInfo& i = s->info();
        io.out << i.id << "  (" << i.family << ") " << i.displayName << "\n";
        for (const auto& p : i.params)
            io.out << "    " << std::left << std::setw(14) << p.key << p.label << ", " << p.minimum
                   << " … " << p.maximum << ", default " << p.defaultValue
                   << (p.unit.empty() ? "" : " " + p.unit) << "\n";
    }
    io.out << "\nName a scheme as ID:key=value,... e.g. coreset.halving:keep=0.25,seed=2\n";
    return 0;
}

namespace {

struct EvalInput {
    std::optional<Model> model;
    Capture capture;
};

// MODEL (a folder, with --prompt-file or --prompt) or CAPTURE (a capture file).
EvalInput loadEvalInput(const Args& args) {
    EvalInput in;
    const std::filesystem::path input = args.positional(0, "MODEL or CAPTURE");
    std::error_code ec;
    if (!std::filesystem::exists(input, ec))
        throw Error(ErrorCode::Io, input.string() + ": no such model folder or capture file");
    if (std::filesystem::is_directory(input, ec)) {
        in.model.emplace(Model::load(input).valueOrThrow());
        in.capture = in.model->capture(readPrompt(args)).valueOrThrow();
    } else {
        if (args.get("prompt-file") || args.get("prompt"))
            throw UsageError(input.string() +
                             " is a file, so a capture, which holds its prompt: drop "
                             "--prompt/--prompt-file (or name a model folder)");
        in.capture = loadCapture(input).valueOrThrow();
    }
    return in;
}

EvalOptions evalOptions(const Args& args) {
    EvalOptions options;
    options.contextTokens = args.getInt("context", 0, 0, 1 << 24);
    options.modelQuality = !args.has("no-quality");
    options.perLayerQuality = args.has("per-layer");
    options.seed = static_cast<std::uint64_t>(args.getInt("seed", 0, 0, 1 << 30));
    if (const auto mode = args.get("mode")) {
        const auto parsed = parseEvalMode(*mode);
        if (!parsed)
            throw UsageError("--mode is post-prefill or streaming, got '" + *mode + "'");
        options.mode = *parsed;
    }
    return options;
}

} // namespace

// The prompt files of a prompt set: every regular *.txt file of the folder, in name order.
std::vector<std::filesystem::path> promptSetFiles(const std::filesystem::path& folder) {
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec))
        throw Error(ErrorCode::Io, folder.string() + ": not a folder of prompt files (*.txt)");
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(folder, ec))
        if (e.path().extension() == ".txt" && e.is_regular_file(ec))
            files.push_back(e.path());
    if (ec)
        throw Error(ErrorCode::Io, folder.string() + ": cannot list the folder: " + ec.message());
    std::sort(files.begin(), files.end());
    if (files.size() < 2)
        throw Error(ErrorCode::InvalidArgument,
                    folder.string() +
                        ": a prompt set needs at least two prompt files (*.txt), found " +
                        std::to_string(files.size()));
    return files;
}

json intervalJson(const MeanInterval& m, const char* over) {
    return {{"mean", m.mean},
            {"half_width", finiteOrNull(m.halfWidth)},
            {"lower", finiteOrNull(m.lower())},
            {"upper", finiteOrNull(m.upper())},
            {"sd", m.sd},
            {"n", m.n},
            {"level", m.level},
            {"over", over}};
}

namespace {

// eval --prompt-set DIR: one scheme over every prompt of a set (and over seeds 1…N with
// --seeds N), each prompt's figures the mean over its seeds, summarized as the mean over prompts
// with a 95% Student-t interval over prompts.
int runEvalPromptSet(const Args& args, Streams io, const SchemeSetting& setting) {
    if (args.get("prompt") || args.get("prompt-file"))
        throw UsageError(
            "--prompt-set evaluates the folder's prompts; drop --prompt/--prompt-file");
    if (args.get("seed") && args.get("seeds"))
        throw UsageError("give either --seed S (one seed) or --seeds N (seeds 1 to N)");
    if (args.has("no-quality") || args.has("per-layer"))
        throw UsageError("--prompt-set reports next-token KL per prompt; drop --no-quality and "
                         "--per-layer");
    const std::filesystem::path input = args.positional(0, "MODEL");
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec))
        throw UsageError(input.string() + ": --prompt-set needs a model folder (a capture holds "
                                          "one prompt)");
    const auto files = promptSetFiles(args.require("prompt-set"));
    const int seeds = args.getInt("seeds", 1, 1, 100);
    const Model model = Model::load(input).valueOrThrow();
    EvalOptions options = evalOptions(args);
    auto backend = makeBackend(args.get("backend").value_or("auto"), io);

    struct Figures {
        std::vector<double> kl, ppl, headError, memory;
    } perPrompt;
    std::vector<double> seedSd;          // per prompt: the KL's spread over seeds
    std::vector<std::string> degenerate; // per prompt: the budget's reason, if degenerate
    json prompts = json::array();
    for (const auto& file : files) {
        const std::string text = readFile(file);
        if (text.empty())
            throw Error(ErrorCode::InvalidArgument, file.string() + ": empty prompt");
        auto captured = model.capture(text);
        if (!captured.ok())
            throw Error(captured.error().code(), file.string() + ": " + captured.message());
        Figures runs;
        json seedRows = json::array();
        EvalResult last;
        for (int s = 1; s <= seeds; ++s) {
            if (args.get("seeds"))
                options.seed = static_cast<std::uint64_t>(s);
            auto r = evaluate(captured.value(), &model, setting, *backend, options);
            if (!r.ok())
                throw Error(r.error().code(), file.string() + ": " + r.message());
            last = std::move(r).value();
            runs.kl.push_back(last.quality->klMean);
            runs.ppl.push_back(last.quality->perplexityChangePercent);
            runs.headError.push_back(last.outputError);
            runs.memory.push_back(last.memoryFraction);
            seedRows.push_back(
                {{"seed", options.seed},
                 {"kl_mean", last.quality->klMean},
                 {"perplexity_change_percent", last.quality->perplexityChangePercent},
                 {"head_output_error", last.outputError},
                 {"memory_fraction", last.memoryFraction}});
        }
        const auto mean = [](const std::vector<double>& v) { return meanInterval(v).mean; };
        perPrompt.kl.push_back(mean(runs.kl));
        perPrompt.ppl.push_back(mean(runs.ppl));
        perPrompt.headError.push_back(mean(runs.headError));
        perPrompt.memory.push_back(mean(runs.memory));
        if (seeds > 1)
            seedSd.push_back(meanInterval(runs.kl).sd);
        prompts.push_back({{"file", file.filename().string()},
                           {"context_tokens", last.contextTokens},
                           {"probe_tokens", last.probeTokens},
                           {"kl_mean", perPrompt.kl.back()},
                           {"perplexity_change_percent", perPrompt.ppl.back()},
                           {"head_output_error", perPrompt.headError.back()},
                           {"memory_fraction", perPrompt.memory.back()},
                           {"degenerate", degenerateJson(last)},
                           {"seeds", seedRows}});
        degenerate.push_back(last.degenerate);
    }
    const MeanInterval kl = meanInterval(perPrompt.kl);
    const MeanInterval ppl = meanInterval(perPrompt.ppl);
    const MeanInterval headError = meanInterval(perPrompt.headError);
    const MeanInterval memory = meanInterval(perPrompt.memory);
    if (args.has("json")) {
        json j = {
            {"scheme", setting.toString()},
            {"model", model.name()},
            {"prompt_set", std::filesystem::path(*args.get("prompt-set")).filename().string()},
            {"seeds", seeds},
            {"prompts", prompts},
            {"summary",
             {{"kl_nats_per_token", intervalJson(kl, "prompts")},
              {"perplexity_change_percent", intervalJson(ppl, "prompts")},
              {"head_output_error", intervalJson(headError, "prompts")},
              {"memory_fraction", intervalJson(memory, "prompts")}}}};
        if (!seedSd.empty())
            j["summary"]["kl_sd_over_seeds_mean"] = meanInterval(seedSd).mean;
        io.out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    io.out << setting.toString() << " on " << model.name() << ", " << files.size() << " prompts of "
           << *args.get("prompt-set")
           << (seeds > 1 ? ", seeds 1-" + std::to_string(seeds) + " each" : std::string()) << "\n"
           << std::defaultfloat << std::setprecision(4);
    for (std::size_t i = 0; i < files.size(); ++i)
        io.out << "  " << files[i].filename().string() << ": KL " << perPrompt.kl[i]
               << " nats/token, perplexity " << std::showpos << perPrompt.ppl[i] << std::noshowpos
               << " %, head output error " << perPrompt.headError[i] << ", memory "
               << 100 * perPrompt.memory[i] << " %"
               << (degenerate[i].empty() ? std::string() : " [degenerate: " + degenerate[i] + "]")
               << "\n";
    const auto line = [&](const char* what, const MeanInterval& m, double scale, const char* unit) {
        io.out << "  " << what << " " << m.mean * scale << unit << " +/- " << m.halfWidth * scale
               << " (95% t-interval over " << m.n << " prompts; sd " << m.sd * scale << ")\n";
    };
    io.out << "mean over prompts:\n";
    line("next-token KL    ", kl, 1, " nats/token");
    line("perplexity change", ppl, 1, " %");
    line("head output error", headError, 1, "");
    line("memory (of fp16) ", memory, 100, " %");
    if (!seedSd.empty())
        io.out << "  KL spread over seeds: sd " << meanInterval(seedSd).mean
               << " nats/token (mean over prompts)\n";
    return 0;
}

} // namespace

int runEval(const Args& args, Streams io) {
    args.allowOnly({"prompt-file", "prompt", "prompt-set", "seeds", "context", "scheme", "backend",
                    "json", "per-layer", "no-quality", "seed", "mode"});
    const auto setting = SchemeSetting::parse(args.require("scheme"));
    if (!setting.ok())
        throw UsageError(setting.message());
    if (args.get("prompt-set"))
        return runEvalPromptSet(args, io, setting.value());
    if (args.get("seeds"))
        throw UsageError("--seeds goes with --prompt-set; for one prompt give --seed S");
    EvalInput in = loadEvalInput(args);
    Capture& capture = in.capture;
    std::optional<Model>& model = in.model;
    const EvalOptions options = evalOptions(args);
    if (options.mode == EvalMode::Streaming && options.perLayerQuality)
        throw UsageError("--per-layer measures one layer compressed after the prefill; drop it "
                         "with --mode streaming");
    auto backend = makeBackend(args.get("backend").value_or("auto"), io);
    const EvalResult r =
        evaluate(capture, model ? &*model : nullptr, setting.value(), *backend, options)
            .valueOrThrow();

    if (args.has("json")) {
        json heads = json::array();
        for (const auto& h : r.heads)
            heads.push_back(
                {{"layer", h.layer},
                 {"kv_head", h.kvHead},
                 {"kept_tokens", h.keptTokens},
                 {"bytes", bytesJson(h.bytes)},
                 {"fp16_bytes", h.fp16Bytes},
                 {"head_output_error", h.outputError},
                 {"total_variation", h.totalVariation},
                 {"mass_lost", h.massLost},
                 {"context_error", h.contextError},
                 {"max_context_error", h.maxContextError},
                 {"logit_error", h.logitError},
                 {"degenerate", h.degenerate.empty() ? json(nullptr) : json(h.degenerate)},
                 {"rho_eff", h.rhoEff},
                 {"value_scaled_error", h.valueScaledError},
                 {"mean_value_scaled_error", h.meanValueScaledError},
                 {"bound_tokens", finiteOrNull(h.boundTokens)}});
        json j = {{"scheme", r.scheme},
                  {"mode", evalModeName(r.mode)},
                  {"backend", r.backend},
                  {"context_tokens", r.contextTokens},
                  {"probe_tokens", r.probeTokens},
                  {"memory",
                   {{"bytes", bytesJson(r.bytes)},
                    {"fp16_bytes", r.fp16Bytes},
                    {"fraction_of_fp16", r.memoryFraction}}},
                  {"heads", heads}};
        j.update(metricsJson(r));
        if (!r.perLayerQuality.empty()) {
            json per = json::array();
            for (const auto& q : r.perLayerQuality)
                per.push_back(qualityJson(q));
            j["quality_per_layer"] = per;
        }
        io.out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    io.out << r.scheme << " on " << r.backend << ": context " << r.contextTokens
           << " tokens, probe " << r.probeTokens
           << (r.mode == EvalMode::Streaming ? ", streaming (each probe token sees the summary of "
                                               "every token before it)"
                                             : "")
           << "\n"
           << "  kept tokens     " << meanKept(r) << " of " << r.contextTokens
           << " per head (mean)\n"
           << (r.degenerateHeads > 0 ? "  DEGENERATE      " + std::to_string(r.degenerateHeads) +
                                           " of " + std::to_string(r.heads.size()) + " heads: " +
                                           r.degenerate + " (another method runs: sinks + window)\n"
                                     : std::string())
           << "  memory          " << r.bytes.total() << " B of " << r.fp16Bytes << " B fp16 ("
           << std::fixed << std::setprecision(1) << 100.0 * r.memoryFraction << " %): keys "
           << r.bytes.keys << ", values " << r.bytes.values << ", metadata " << r.bytes.metadata
           << "\n"
           << std::defaultfloat << std::setprecision(4);
    // The headline first: next-token KL ranks schemes of every family.
    if (r.quality)
        io.out << "  next-token KL   " << r.quality->klMean << " nats/token (mean over "
               << r.quality->positions << " probe positions)\n"
               << "  perplexity      " << r.quality->perplexityExact << " -> "
               << r.quality->perplexityCompressed << " per token (" << std::showpos
               << r.quality->perplexityChangePercent << std::noshowpos << " %)\n"
               << "  top-1 agreement " << r.quality->top1Agreement << "\n";
    io.out << "  head output err " << r.outputError
           << " (||O^ - O||_F / ||O||_F, context merged with the probe's own attention)\n"
           << "  total variation " << r.totalVariation << " (mean over heads and probe rows)\n"
           << "  mass lost       " << r.massLost << "\n"
           << "  context error   " << r.contextError
           << " (diagnostic: mean relative error of the context-only output)\n"
           << "  logit error     " << r.logitError << " (diagnostic)\n";
    if (r.codedElements > 0) {
        const double n = static_cast<double>(r.codedElements);
        io.out << "  rate            " << (r.streamBits + r.sideBits) / n
               << " bits/element: stream " << r.streamBits / n << " (empirical entropy "
               << r.entropyBits / n << ", gap "
               << 100.0 * (r.streamBits / std::max(r.entropyBits, 1.0) - 1.0)
               << " %) + side information " << r.sideBits / n << "\n";
    }
    for (std::size_t l = 0; l < r.perLayerQuality.size(); ++l)
        io.out << "  layer " << l << " only: KL " << r.perLayerQuality[l].klMean << ", Δppl "
               << r.perLayerQuality[l].perplexityChangePercent << " %, top-1 "
               << r.perLayerQuality[l].top1Agreement << "\n";
    io.out << "  time            compress " << r.compressMilliseconds << " ms, attend "
           << r.attendMilliseconds << " ms\n";
    return 0;
}

// --scheme: several settings separated by spaces (a setting never contains one).
std::vector<SchemeSetting> parseSchemeList(const std::string& text) {
    std::vector<SchemeSetting> settings;
    std::istringstream list(text);
    std::string one;
    while (list >> one) {
        auto s = SchemeSetting::parse(one);
        if (!s.ok())
            throw UsageError(s.message());
        settings.push_back(s.value());
    }
    if (settings.empty())
        throw UsageError("--scheme names no scheme");
    return settings;
}

double parseNumber(const std::string& text, const std::string& what) {
    std::size_t used = 0;
    double x = 0;
    try {
        x = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    // stod reads "nan" and "inf": numbers to it, never a setting to sweep or an epsilon.
    if (used == 0 || used != text.size() || !std::isfinite(x))
        throw UsageError(what + ": '" + text + "' is not a finite number");
    return x;
}

// --values a,b,c, or --range lo:hi:count (geometric).
std::vector<double> sweepValues(const Args& args) {
    std::vector<double> values;
    if (auto v = args.get("values")) {
        std::istringstream list(*v);
        std::string item;
        while (std::getline(list, item, ','))
            values.push_back(parseNumber(item, "--values"));
        if (values.empty())
            throw UsageError("--values names no value (give a,b,... or --range lo:hi:count)");
        return values;
    }
    const std::string r = args.get("range").value_or("0.03125:1:6");
    double lo = 0, hi = 0;
    int count = 0;
    char c1 = 0, c2 = 0;
    std::istringstream rs(r);
    if (!(rs >> lo >> c1 >> hi >> c2 >> count) || c1 != ':' || c2 != ':' || lo <= 0 || hi < lo ||
        count < 1 || count > 1000 || !std::isfinite(hi) || !rs.eof())
        throw UsageError("--range must be lo:hi:count with 0 < lo <= hi and count from 1 to "
                         "1000, got '" +
                         r + "'");
    return geometricValues(lo, hi, count, false);
}

namespace {

void printCsvHeader(std::ostream& out) {
    out << "scheme,param,value,mean_kept_tokens,memory_fraction,bytes,kl_nats,"
           "perplexity_change_percent,top1_agreement,head_output_error,total_variation,mass_lost,"
           "context_error,logit_error,compress_ms,attend_ms,degenerate_heads,degenerate\n";
}

void printCsvRow(std::ostream& out, const std::string& scheme, const std::string& param,
                 const SweepPoint& p) {
    const EvalResult& r = p.result;
    const auto& q = r.quality;
    out << scheme << "," << param << "," << p.value << "," << p.meanKeptTokens << ","
        << r.memoryFraction << "," << r.bytes.total() << "," << (q ? number(q->klMean) : "") << ","
        << (q ? number(q->perplexityChangePercent) : "") << ","
        << (q ? number(q->top1Agreement) : "") << "," << r.outputError << "," << r.totalVariation
        << "," << r.massLost << "," << r.contextError << "," << r.logitError << ","
        << r.compressMilliseconds << "," << r.attendMilliseconds << "," << r.degenerateHeads << ","
        << csvField(r.degenerate) << "\n";
}

json sweepPointJson(const SweepPoint& p) {
    const EvalResult& r = p.result;
    json j = {{"value", p.value},
              {"mean_kept_tokens", p.meanKeptTokens},
              {"memory_fraction", r.memoryFraction},
              {"bytes", r.bytes.total()}};
    j.update(metricsJson(r));
    return j;
}

// The metric a sweep's slope is fitted to: --fit ID, else the headline KL where the model was
// run, else the head output error.
Metric slopeMetric(const Sweep& sw, const std::optional<std::string>& fit) {
    if (fit) {
        std::string known;
        for (const MetricInfo& info : kMetricInfos) {
            if (info.id == *fit)
                return info.metric;
            known += (known.empty() ? "" : ", ") + std::string(info.id);
        }
        throw UsageError("--fit: unknown metric '" + *fit + "' (one of " + known + ")");
    }
    const bool quality = !sw.points.empty() && sw.points.front().result.quality.has_value();
    return quality ? Metric::NextTokenKl : Metric::HeadOutputError;
}

void printSweepTable(std::ostream& out, const Sweep& sw, Metric fitted, const SlopeFit& fit) {
    // One space between columns at least, so that wide values never run together.
    auto cell = [&](const std::string& text, int width) { out << ' ' << std::setw(width) << text; };
    out << sw.scheme << " over " << sw.parameter << ":\n "; // rows start with a space
    for (const auto& [title, width] : std::vector<std::pair<std::string, int>>{{sw.parameter, 10},
                                                                               {"kept", 8},
                                                                               {"memory", 9},
                                                                               {"KL nats", 11},
                                                                               {"dppl %", 9},
                                                                               {"head err", 11},
                                                                               {"TV", 11},
                                                                               {"mass lost", 11},
                                                                               {"ctx err", 11}})
        cell(title, width);
    out << "\n";
    bool anyDegenerate = false;
    for (const auto& p : sw.points) {
        out << ' ';
        const auto& q = p.result.quality;
        // A degenerate budget is marked on its value and explained below the table.
        anyDegenerate = anyDegenerate || p.result.degenerateHeads > 0;
        cell(number(p.value) + (p.result.degenerateHeads > 0 ? "*" : ""), 10);
        cell(number(p.meanKeptTokens), 8);
        cell(number(p.result.memoryFraction), 9);
        cell(q ? number(q->klMean) : "n/a", 11);
        cell(q ? number(q->perplexityChangePercent) : "n/a", 9);
        cell(number(p.result.outputError), 11);
        cell(number(p.result.totalVariation), 11);
        cell(number(p.result.massLost), 11);
        cell(number(p.result.contextError), 11);
        out << "\n";
    }
    for (const auto& p : sw.points)
        if (p.result.degenerateHeads > 0)
            out << "  * " << sw.parameter << " = " << number(p.value) << ": degenerate on "
                << p.result.degenerateHeads << " of " << p.result.heads.size()
                << " heads: " << p.result.degenerate << "\n";
    for (const auto& [value, why] : sw.skipped)
        out << "  skipped " << sw.parameter << " = " << value << ": " << why << "\n";
    out << "  slope of log(" << metricInfo(fitted).id << ") vs log(kept tokens): " << fit.slope
        << " (R² " << fit.r2 << ", " << fit.points << " points"
        << (anyDegenerate ? ", degenerate budgets left out" : "") << ")\n";
}

// --epsilon: the coreset size check of every head (bound against the tokens needed).
json sizeCheckJson(const std::vector<HeadSizeCheck>& checks, double epsilon) {
    json heads = json::array();
    for (const auto& c : checks)
        heads.push_back({{"layer", c.layer},
                         {"kv_head", c.kvHead},
                         {"rho_eff", c.rhoEff},
                         {"bound_tokens", c.boundTokens},
                         {"needed_tokens", c.neededTokens},
                         {"context_tokens", c.contextTokens}});
    return {{"epsilon", epsilon}, {"heads", heads}};
}

// The bound's order of magnitude ("1e15"): its constants are unknown, so more digits would claim
// a precision it does not have.
std::string magnitude(double tokens) {
    if (std::isinf(tokens))
        return "inf";
    if (!(tokens > 0))
        return "-";
    const long exponent = std::lround(std::log10(tokens));
    return (tokens >= 1e300 ? ">=1e" : "1e") + std::to_string(exponent);
}

void printSizeCheck(std::ostream& out, const std::vector<HeadSizeCheck>& checks, double epsilon) {
    out << "  tokens for the worst probe query's error <= " << epsilon
        << " (values centred, scaled by\n"
           "  their spread; rho_eff on centred keys): the bound sqrt(d)*e^rho/eps as an order of\n"
           "  magnitude (its constants are unknown) against the fewest tokens on the grid that\n"
           "  reached it\n";
    out << "    layer  head   rho_eff      bound     needed  of context\n";
    for (const auto& c : checks)
        out << "    " << std::setw(5) << c.layer << ' ' << std::setw(5) << c.kvHead << ' '
            << std::setw(9) << number(c.rhoEff) << ' ' << std::setw(10) << magnitude(c.boundTokens)
            << ' ' << std::setw(10)
            << (c.neededTokens < 0 ? std::string("> context") : std::to_string(c.neededTokens))
            << ' ' << std::setw(11) << c.contextTokens << "\n";
}

} // namespace

int runSpectrum(const Args& args, Streams io) {
    args.allowOnly({"prompt-file", "prompt", "context", "rank", "json"});
    EvalInput in = loadEvalInput(args);
    const int n = in.capture.tokenCount();
    const int ctx = args.getInt("context", (3 * n) / 4, 1, n);
    const int d = in.capture.config.headDim;
    const int rank = args.getInt("rank", std::max(1, d / 4), 1, d);
    const auto spectra =
        keySpectra(in.capture, in.model ? &*in.model : nullptr, ctx).valueOrThrow();
    if (args.has("json")) {
        json heads = json::array();
        for (const HeadSpectrum& s : spectra)
            heads.push_back({{"layer", s.layer},
                             {"kv_head", s.kvHead},
                             {"key_projection", s.keyProjection},
                             {"keys", s.keys},
                             {"scores", s.scores},
                             {"energy_kept",
                              {{"key_projection", s.keyProjection.empty()
                                                      ? json(nullptr)
                                                      : json(energyKept(s.keyProjection, rank))},
                               {"keys", energyKept(s.keys, rank)},
                               {"scores", energyKept(s.scores, rank)}}}});
        io.out << json{{"context_tokens", ctx}, {"head_dim", d}, {"rank", rank}, {"heads", heads}}
                      .dump(2)
               << "\n";
        return 0;
    }
    io.out << "energy kept at rank " << rank << " of d = " << d << " (Σ_{i<r} σ² / Σ σ²), context "
           << ctx << " tokens\n";
    io.out << "layer  kv_head  W_K     keys    scores QKᵀ\n";
    char line[120];
    for (const HeadSpectrum& s : spectra) {
        const std::string w = s.keyProjection.empty()
                                  ? std::string("  —   ")
                                  : std::to_string(energyKept(s.keyProjection, rank)).substr(0, 6);
        std::snprintf(line, sizeof line, "%5d  %7d  %s  %.4f  %.4f\n", s.layer, s.kvHead, w.c_str(),
                      energyKept(s.keys, rank), energyKept(s.scores, rank));
        io.out << line;
    }
    if (!in.model)
        io.out << "(a capture has no weights: W_K's spectrum needs the model folder)\n";
    return 0;
}

int runSweep(const Args& args, Streams io) {
    args.allowOnly({"prompt-file", "prompt",    "context",    "scheme",   "backend", "json",
                    "csv",         "fit",       "no-quality", "seed",     "param",   "values",
                    "range",       "epsilon",   "prompt-set", "seeds",    "journal", "shard",
                    "jobs",        "max-hours", "force",      "progress", "mode"});
    if (args.get("prompt-set"))
        return runSweepStudy(args, io);
    for (const char* study : {"seeds", "journal", "shard", "jobs", "max-hours"})
        if (args.get(study))
            throw UsageError(std::string("--") + study + " goes with --prompt-set DIR");
    for (const char* study : {"force", "progress"})
        if (args.has(study))
            throw UsageError(std::string("--") + study + " goes with --prompt-set DIR");
    const std::vector<SchemeSetting> settings = parseSchemeList(args.require("scheme"));
    const std::optional<std::string> paramArg = args.get("param");
    slopeMetric(Sweep{}, args.get("fit")); // an unknown --fit fails before the work
    const bool explicitValues = args.get("values") || args.get("range");
    const std::vector<double> givenValues = sweepValues(args); // checks --values / --range
    const std::optional<double> epsilon =
        args.get("epsilon") ? std::optional(parseNumber(*args.get("epsilon"), "--epsilon"))
                            : std::nullopt;
    if (epsilon && !(*epsilon > 0))
        throw UsageError("--epsilon must be a positive number, got '" + *args.get("epsilon") + "'");
    // Every scheme's parameter and values before any work: a mistake in the third scheme must
    // not surface after the first two have run.
    for (const SchemeSetting& base : settings) {
        const auto plan = sweepPlan(base, 1 << 20); // its parameter does not depend on the context
        const std::string param = paramArg ? *paramArg : plan ? plan->parameter : "keep";
        if (explicitValues || !plan || plan->parameter != param)
            if (const auto checked = checkSweep(base, param, givenValues); !checked.ok())
                throw UsageError(checked.message());
    }
    EvalInput in = loadEvalInput(args);
    const EvalOptions options = evalOptions(args);
    auto backend = makeBackend(args.get("backend").value_or("auto"), io);
    const bool csv = args.has("csv");
    const bool table = !csv && !args.has("json");

    json out = json::array();
    int resolvedContext = options.contextTokens;
    if (csv)
        printCsvHeader(io.out);
    for (const SchemeSetting& base : settings) {
        // Without --param, the scheme's own budget (rank, bits, KV heads, …); without --values or
        // --range, the values the studio's trade-off curve visits (sweepPlan).
        const int n = in.capture.tokenCount();
        const auto plan =
            sweepPlan(base, options.contextTokens > 0 ? options.contextTokens : 3 * n / 4, 7,
                      in.capture.config.kvHeads);
        const std::string param = paramArg ? *paramArg : plan ? plan->parameter : "keep";
        const std::vector<double> values =
            !explicitValues && plan && plan->parameter == param ? plan->values : givenValues;
        const Sweep sw = runSweep(in.capture, in.model ? &*in.model : nullptr, base, param, values,
                                  *backend, options)
                             .valueOrThrow();
        json points = json::array();
        for (const auto& p : sw.points) {
            points.push_back(sweepPointJson(p));
            if (csv)
                printCsvRow(io.out, base.toString(), param, p);
        }
        if (!sw.points.empty())
            resolvedContext = sw.points.front().result.contextTokens;
        const Metric fitted = slopeMetric(sw, args.get("fit"));
        const SlopeFit fit = sweepSlope(sw, resolvedContext, fitted);
        json skipped = json::array();
        for (const auto& [value, why] : sw.skipped)
            skipped.push_back({{"value", value}, {"reason", why}});
        out.push_back({{"scheme", sw.scheme},
                       {"param", param},
                       {"points", points},
                       {"skipped", skipped},
                       {"slope_vs_kept",
                        {{"metric", metricInfo(fitted).id},
                         {"slope", fit.slope},
                         {"r2", fit.r2},
                         {"points", fit.points}}}});
        if (table)
            printSweepTable(io.out, sw, fitted, fit);
        if (epsilon) {
            const auto checks =
                coresetSizeCheck(in.capture, base, *epsilon, *backend, options).valueOrThrow();
            out.back()["size_check"] = sizeCheckJson(checks, *epsilon);
            if (table)
                printSizeCheck(io.out, checks, *epsilon);
        }
    }
    if (args.has("json"))
        io.out << json{{"backend", backend->name()},
                       {"mode", evalModeName(options.mode)},
                       {"context_tokens", resolvedContext},
                       {"sweeps", out}}
                      .dump(2, ' ', false, json::error_handler_t::replace)
               << "\n";
    return 0;
}

} // namespace kvs::cli
