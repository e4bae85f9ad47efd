// SPDX-License-Identifier: MIT
// kvstudio-cli allocate: one byte budget for the whole model, spent per head on the setting of a
// scheme's budget parameter that loses the least (kvs/budget_allocator.h), set beside one setting
// for every head at the same bytes (docs/schemes.md "Budget allocator").
#include "cli.h"
#include "cli_json.h"

#include "kvs/budget_allocator.h"
#include "kvs/capture.h"
#include "kvs/evaluator.h"
#include "kvs/model.h"
#include "kvs/scheme.h"
#include "kvs/sweep.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>

namespace kvs::cli {
namespace {

using nlohmann::json;

// One budget: every head at `value`, and the allocation within that setting's bytes.
struct Row {
    double value = 0.0;
    EvalResult uniform;
    BudgetAllocation allocation;
    EvalResult allocated;
};

json sideJson(const EvalResult& r, bool projected) {
    return {{"bytes", r.bytes.total()},
            {"fraction_of_fp16", r.memoryFraction},
            {"kl_mean", r.quality ? json(r.quality->klMean) : json(nullptr)},
            {"perplexity_change_percent",
             r.quality ? finiteOrNull(r.quality->perplexityChangePercent) : json(nullptr)},
            {"head_error_squares", summedHeadError(r, projected)},
            {"head_output_error", r.outputError}};
}

json planJson(const BudgetCandidates& c, const BudgetAllocation& a) {
    json plan = json::array();
    for (std::size_t h = 0; h < c.heads.size(); ++h) {
        const BudgetOption& o = c.heads[h].options[a.choice[h]];
        plan.push_back({{"layer", c.heads[h].layer},
                        {"kv_head", c.heads[h].kvHead},
                        {"value", o.value},
                        {"bytes", o.bytes},
                        {"error_squares", o.error}});
    }
    return plan;
}

std::string cell(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

void printTable(std::ostream& out, const BudgetCandidates& c, const std::vector<Row>& rows,
                bool quality) {
    char line[256];
    std::snprintf(line, sizeof line, "%10s  %10s  %10s  %11s  %10s  %10s  %11s  %s\n",
                  c.parameter.c_str(), "bytes", "uniform KL", "uniform err", "alloc bytes",
                  "alloc KL", "alloc err", "allocation");
    out << line;
    for (const Row& r : rows) {
        const auto kl = [&](const EvalResult& e) {
            return quality && e.quality ? cell(e.quality->klMean) : std::string("-");
        };
        std::snprintf(line, sizeof line, "%10s  %10zu  %10s  %11s  %10zu  %10s  %11s  %s\n",
                      cell(r.value).c_str(), r.uniform.bytes.total(), kl(r.uniform).c_str(),
                      cell(summedHeadError(r.uniform, c.projected)).c_str(),
                      r.allocated.bytes.total(), kl(r.allocated).c_str(),
                      cell(summedHeadError(r.allocated, c.projected)).c_str(),
                      r.allocation.exact
                          ? (r.allocation.method + ", optimal").c_str()
                          : (r.allocation.method + ", within " +
                             cell(r.allocation.error - r.allocation.lowerBound) + " of optimal")
                                .c_str());
        out << line;
    }
}

// Per budget, a layer × KV head grid of the values chosen.
void printPlans(std::ostream& out, const BudgetCandidates& c, const std::vector<Row>& rows) {
    for (const Row& r : rows) {
        out << "\nplan at the bytes of " << c.parameter << "=" << cell(r.value) << " ("
            << r.allocation.bytes << " B): " << c.parameter << " per layer (rows) and KV head\n";
        int layer = -1;
        for (std::size_t h = 0; h < c.heads.size(); ++h) {
            if (c.heads[h].layer != layer) {
                if (layer >= 0)
                    out << "\n";
                layer = c.heads[h].layer;
                char label[16];
                std::snprintf(label, sizeof label, "%5d ", layer);
                out << label;
            }
            char v[16];
            std::snprintf(v, sizeof v, " %8s",
                          cell(c.heads[h].options[r.allocation.choice[h]].value).c_str());
            out << v;
        }
        out << "\n";
    }
}

} // namespace

int runAllocate(const Args& args, Streams io) {
    args.allowOnly({"prompt-file", "prompt", "context", "scheme", "backend", "param", "values",
                    "range", "seed", "show-plan", "json"});
    const auto parsed = SchemeSetting::parse(args.require("scheme"));
    if (!parsed.ok())
        throw UsageError(parsed.message());
    const SchemeInfo& info = findScheme(parsed.value().id)->info();
    if (info.transformsWeights)
        throw UsageError(parsed.value().id +
                         " rewrites the model's weights, so its heads cannot take settings one by "
                         "one; allocate needs a scheme that compresses the model's own cache");
    const auto defaultPlan = sweepPlan(parsed.value(), 1 << 20);
    const std::string param =
        args.get("param").value_or(defaultPlan ? defaultPlan->parameter : "keep");
    const SchemeSetting base = sweepBase(parsed.value(), param);
    const bool explicitValues = args.get("values") || args.get("range");
    const std::vector<double> givenValues = sweepValues(args);
    if (explicitValues || !defaultPlan || defaultPlan->parameter != param)
        if (const auto checked = checkSweep(base, param, givenValues); !checked.ok())
            throw UsageError(checked.message());

    // MODEL (a folder, with the prompt) or CAPTURE (a file, which holds its prompt).
    const std::filesystem::path input = args.positional(0, "MODEL or CAPTURE");
    std::optional<Model> model;
    Capture capture;
    std::error_code ec;
    if (!std::filesystem::exists(input, ec))
        throw Error(ErrorCode::Io, input.string() + ": no such model folder or capture file");
    if (std::filesystem::is_directory(input, ec)) {
        const std::string prompt = readPrompt(args); // a usage error before the model loads
        model.emplace(Model::load(input).valueOrThrow());
        capture = model->capture(prompt).valueOrThrow();
    } else {
        if (args.get("prompt-file") || args.get("prompt"))
            throw UsageError(input.string() +
                             " is a file, so a capture, which holds its prompt: drop "
                             "--prompt/--prompt-file (or name a model folder)");
        capture = loadCapture(input).valueOrThrow();
    }
    EvalOptions options;
    options.contextTokens = args.getInt("context", 0, 0, 1 << 24);
    options.seed = static_cast<std::uint64_t>(args.getInt("seed", 0, 0, 1 << 30));
    options.modelQuality = model.has_value();
    options.projectedError = model.has_value();
    auto backend = makeBackend(args.get("backend").value_or("auto"), io);
    const Model* m = model ? &*model : nullptr;

    const ExactReference reference =
        computeExactReference(capture, m, *backend, options).valueOrThrow();
    const int ctx = reference.contextTokens;
    const auto plan = sweepPlan(base, ctx, 7, capture.config.kvHeads);
    const std::vector<double> values =
        !explicitValues && plan && plan->parameter == param ? plan->values : givenValues;
    const BudgetCandidates candidates =
        measureBudgetCandidates(capture, m, base, param, values, *backend, options, &reference)
            .valueOrThrow();

    std::vector<Row> rows;
    for (std::size_t v = 0; v < candidates.values.size(); ++v) {
        Row row;
        row.value = candidates.values[v];
        SchemeSetting uniform = base;
        uniform.params[param] = row.value;
        row.uniform = evaluate(capture, m, uniform, *backend, options, &reference).valueOrThrow();
        row.allocation =
            allocateBudget(candidates.heads, candidates.uniformBytes[v]).valueOrThrow();
        EvalOptions perHead = options;
        perHead.headSettings = allocationSettings(candidates, row.allocation);
        row.allocated = evaluate(capture, m, base, *backend, perHead, &reference).valueOrThrow();
        rows.push_back(std::move(row));
    }

    const std::string measure =
        candidates.projected
            ? "the sum over probe rows and query heads of |(O^ - O) W_O,h|^2 (through the output "
              "projection)"
            : "the sum over probe rows and query heads of |O^ - O|^2 (unprojected: a capture has "
              "no output projection)";
    if (args.has("json")) {
        json out = json::array();
        for (const Row& r : rows)
            out.push_back({{"value", r.value},
                           {"budget_bytes", r.uniform.bytes.total()},
                           {"uniform", sideJson(r.uniform, candidates.projected)},
                           {"allocated", sideJson(r.allocated, candidates.projected)},
                           {"allocation",
                            {{"method", r.allocation.method},
                             {"optimal", r.allocation.exact},
                             {"error_squares", r.allocation.error},
                             {"lower_bound", r.allocation.lowerBound},
                             {"plan", planJson(candidates, r.allocation)}}}});
        json skipped = json::array();
        for (const auto& [value, why] : candidates.skipped)
            skipped.push_back({{"value", value}, {"reason", why}});
        io.out << json{{"scheme", base.toString()},
                       {"param", param},
                       {"backend", backend->name()},
                       {"context_tokens", ctx},
                       {"probe_tokens", capture.tokenCount() - ctx},
                       {"heads", candidates.heads.size()},
                       {"error_measure", candidates.projected ? "projected" : "unprojected"},
                       {"rows", out},
                       {"skipped", skipped}}
                      .dump(2, ' ', false, json::error_handler_t::replace)
               << "\n";
        return 0;
    }
    io.out << "allocate " << base.toString() << " over " << param << " on " << backend->name()
           << ": context " << ctx << " tokens, probe " << capture.tokenCount() - ctx << ", "
           << candidates.heads.size() << " heads\n"
           << "err: " << measure << ", summed over heads\n"
           << "uniform: " << param << " for every head; alloc: one " << param
           << " per head within the uniform row's bytes\n";
    if (!m)
        io.out << "(a capture without its model: no KL; the error is unprojected)\n";
    printTable(io.out, candidates, rows, m != nullptr);
    for (const auto& [value, why] : candidates.skipped)
        io.out << "skipped " << param << "=" << cell(value) << ": " << why << "\n";
    if (args.has("show-plan"))
        printPlans(io.out, candidates, rows);
    return 0;
}

} // namespace kvs::cli
