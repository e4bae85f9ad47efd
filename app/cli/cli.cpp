// SPDX-License-Identifier: MIT
// Argument parsing, the command table and the top-level error handling of kvstudio-cli.
#include "cli.h"

#include "kvs/file_util.h"

#include "kvs/status.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <ostream>

namespace kvs::cli {

Args::Args(const std::vector<std::string>& argv, const std::vector<std::string>& switches)
    : m_switches(switches) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.rfind("--", 0) == 0 && a.size() > 2) {
            std::string name = a.substr(2);
            if (const auto eq = name.find('='); eq != std::string::npos) {
                m_options[name.substr(0, eq)] = name.substr(eq + 1);
            } else if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
                m_options[name] = "";
            } else {
                if (i + 1 >= argv.size())
                    throw UsageError("option --" + name + " needs a value");
                m_options[name] = argv[++i];
            }
        } else {
            m_positionals.push_back(a);
        }
    }
}

bool Args::has(const std::string& name) const {
    return m_options.count(name) != 0;
}

std::optional<std::string> Args::get(const std::string& name) const {
    auto it = m_options.find(name);
    if (it == m_options.end())
        return std::nullopt;
    return it->second;
}

std::string Args::require(const std::string& name) const {
    auto v = get(name);
    if (!v)
        throw UsageError("missing option --" + name);
    return *v;
}

int Args::getInt(const std::string& name, int fallback) const {
    auto v = get(name);
    if (!v)
        return fallback;
    try {
        std::size_t used = 0;
        const int parsed = std::stoi(*v, &used);
        if (used != v->size())
            throw std::invalid_argument("trailing characters");
        return parsed;
    } catch (const std::exception&) {
        throw UsageError("option --" + name + " needs an integer, got '" + *v + "'");
    }
}

std::string readPrompt(const Args& args) {
    std::string prompt;
    std::string source = "--prompt";
    if (args.get("prompt-file") && args.get("prompt"))
        throw UsageError(
            "give the prompt either with --prompt-file F or with --prompt T, not both");
    if (auto f = args.get("prompt-file")) {
        prompt = readFile(*f, kMaxPromptBytes); // a fifo or /dev/zero is refused, not read
        source = *f;
    } else if (auto p = args.get("prompt")) {
        prompt = *p;
    } else {
        throw UsageError("give the prompt with --prompt-file F or --prompt T");
    }
    if (prompt.empty())
        throw Error(ErrorCode::InvalidArgument, source + ": empty prompt");
    return prompt;
}

Overwrite overwriteFrom(const Args& args) {
    return args.has("force") ? Overwrite::Force : Overwrite::OursOnly;
}

int Args::getInt(const std::string& name, int fallback, int minimum, int maximum) const {
    const int value = getInt(name, fallback);
    if (value < minimum || value > maximum)
        throw UsageError("option --" + name + " must be between " + std::to_string(minimum) +
                         " and " + std::to_string(maximum) + ", got " + std::to_string(value));
    return value;
}

std::string Args::positional(std::size_t index, const std::string& what) const {
    if (index >= m_positionals.size())
        throw UsageError("missing argument " + what);
    return m_positionals[index];
}

void Args::allowOnly(const std::vector<std::string>& known) const {
    for (const auto& [name, value] : m_options) {
        (void)value;
        if (std::find(known.begin(), known.end(), name) == known.end())
            throw UsageError("unknown option --" + name);
    }
}

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"info",
         "info MODEL [--json]",
         "the model's configuration, checkpoint and tokenizer",
         {"json"},
         &runInfo},
        {"tokenize",
         "tokenize MODEL --text T [--json]",
         "token ids and their text",
         {"json"},
         &runTokenize},
        {"capture",
         "capture MODEL (--prompt-file F | --prompt T) --out C.safetensors [--f16] [--logits] "
         "[--force]",
         "run the prompt and save every layer's queries, keys and values",
         {"f16", "logits", "force", "json"},
         &runCapture},
        {"generate",
         "generate MODEL --prompt T --tokens N [--json]",
         "greedy continuation",
         {"json"},
         &runGenerate},
        {"make-model",
         "make-model PRESET --out DIR [--dtype F32|F16|BF16] [--shards N] [--seed S] [--force] "
         "[--json]",
         "write a random model folder in Hugging Face layout (test fixtures, start-up model)",
         {"force", "json"},
         &runMakeModel},
        {"train",
         "train [--out DIR] [--sharing S] [--kv-heads N] [--steps N] [--resume CKPT] [--init DIR] "
         "[--train-only wq,wk] [--key-rank R] [--force] ...",
         "train a character model on the KJV (docs/bundled-model.md); --baselines: n-gram, bzip2",
         {"untied", "baselines", "force"},
         &runTrain},
        {"schemes",
         "schemes [--json]",
         "the compression schemes and their parameters",
         {"json"},
         &runSchemes},
        {"eval",
         "eval MODEL|CAPTURE [--prompt-file F | --prompt T] --scheme ID:key=value,... "
         "[--context N] [--mode post-prefill|streaming] [--backend auto|cpu|vulkan] [--per-layer] "
         "[--no-quality] [--seed S] [--json]",
         "compress the context cache and measure what is lost",
         {"json", "per-layer", "no-quality"},
         &runEval},
        {"sweep",
         "sweep MODEL|CAPTURE [--prompt-file F | --prompt T] --scheme \"S1 S2 ...\" "
         "[--param keep] [--values a,b,... | --range lo:hi:count] [--context N] "
         "[--mode post-prefill|streaming] [--backend auto|cpu|vulkan] [--no-quality] "
         "[--fit METRIC] [--epsilon E] [--json | --csv]"
         "\n               or  sweep MODEL --prompt-set DIR [--seeds N] --scheme \"S1 S2 ...\" "
         "[--param P] [--values ... | --range ...] [--journal FILE [--shard i/n]] [--jobs J] "
         "[--max-hours H] [--progress] [--force] [--json | --csv]",
         "trade-off curves: each scheme over one parameter, with the log-log slope of a metric; "
         "over a prompt set with intervals, resumable and sharded (docs/sweeps.md)",
         {"json", "csv", "no-quality", "force", "progress"},
         &runSweep},
        {"sweep-merge",
         "sweep-merge JOURNAL... [--json | --csv]",
         "the table of a study from its shards' journals (the same as one run's)",
         {"json", "csv"},
         &runSweepMerge},
        {"allocate",
         "allocate MODEL|CAPTURE [--prompt-file F | --prompt T] --scheme ID[:key=value,...] "
         "[--param P] [--values a,b,... | --range lo:hi:count] [--context N] "
         "[--backend auto|cpu|vulkan] [--seed S] [--show-plan] [--json]",
         "one byte budget for the whole model spent per head, against one setting for every "
         "head at the same bytes (docs/schemes.md)",
         {"json", "show-plan"},
         &runAllocate},
        {"spectrum",
         "spectrum MODEL|CAPTURE [--prompt-file F | --prompt T] [--context N] [--rank R] [--json]",
         "singular values of each head's key projection, keys and scores; energy kept at rank R",
         {"json"},
         &runSpectrum},
        {"capacity",
         "capacity --preset NAME|MODEL --context N[K] [--gpu-gib G] [--dtype "
         "fp16|bf16|fp32|int8|int4] "
         "[--cache-dtype fp16|fp8|fp32] [--reserve-gib R] [--ratio [NAME=]F,...] "
         "[--key-ratio [NAME=]F,...] [--list] [--json]",
         "KV bytes per token and per user, and how many users fit on one GPU next to the weights",
         {"json", "list"},
         &runCapacity},
        {"devices",
         "devices [--json]",
         "the Vulkan devices this machine has",
         {"json"},
         &runDevices},
        {"bench",
         "bench attention [--json] [--backend both|vulkan|cpu] [--max-keys N] ...",
         "decode attention timings, GB/s and copy-bandwidth fraction (docs/gpu-benchmarks.md)",
         {"json"},
         &runBench},
        {"render",
         "render SESSION.kvsession --out DIR [--dpi N] [--views "
         "attention,tradeoffs,cache,profile,rate] "
         "[--theme light|dark|session] [--timeout S] [--force] [--json]",
         "re-render a saved studio session's charts (PNG, SVG, PDF, CSV + provenance) off screen",
         {"force", "json"},
         &runRender},
        {"report",
         "report SESSION.kvsession --out REPORT.pdf [--page a4|letter] [--views "
         "attention,tradeoffs,...] [--font-pt N] [--timeout S] [--force] [--json]",
         "a saved session's settings, results table and charts with their provenance, as one PDF",
         {"force", "json"},
         &runReport},
    };
    return table;
}

namespace {

CommandFn g_renderHandler = nullptr;
CommandFn g_reportHandler = nullptr;

} // namespace

void setRenderHandler(CommandFn handler) {
    g_renderHandler = handler;
}

int runRender(const Args& args, Streams io) {
    if (!g_renderHandler)
        throw Error(ErrorCode::Unsupported,
                    "this kvstudio-cli was built without the studio (KVS_BUILD_GUI=OFF); render "
                    "draws the studio's charts and needs it");
    return g_renderHandler(args, io);
}

void setReportHandler(CommandFn handler) {
    g_reportHandler = handler;
}

int runReport(const Args& args, Streams io) {
    if (!g_reportHandler)
        throw Error(ErrorCode::Unsupported,
                    "this kvstudio-cli was built without the studio (KVS_BUILD_GUI=OFF); report "
                    "draws the studio's charts and needs it");
    return g_reportHandler(args, io);
}

namespace {

void printUsage(std::ostream& os) {
    os << "kvstudio-cli " << KVS_VERSION << " - KV Studio without a window\n\nusage:\n";
    for (const auto& c : commands())
        os << "  kvstudio-cli " << c.usage << "\n      " << c.summary << "\n";
    os << "\nOutputs never replace a file KV Studio did not write unless --force is given.\n"
          "JSON output is documented in docs/cli.md.\n";
}

} // namespace

int runCli(const std::vector<std::string>& argv, Streams io) {
    if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
        printUsage(argv.empty() ? io.err : io.out);
        return argv.empty() ? 2 : 0;
    }
    if (argv[0] == "--version") {
        io.out << "kvstudio-cli " << KVS_VERSION << "\n";
        return 0;
    }
    const auto& table = commands();
    auto it = std::find_if(table.begin(), table.end(),
                           [&](const Command& c) { return c.name == argv[0]; });
    const std::vector<std::string> rest(argv.begin() + 1, argv.end());
    const bool json = std::find(rest.begin(), rest.end(), "--json") != rest.end();
    auto fail = [&](const std::string& code, const std::string& message, int exitCode) {
        if (json) {
            const nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
            io.out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        }
        io.err << "kvstudio-cli " << (it == table.end() ? std::string() : it->name + ": ")
               << message << "\n";
        return exitCode;
    };
    if (it == table.end()) {
        fail("usage", "unknown command '" + argv[0] + "'", 2);
        printUsage(io.err);
        return 2;
    }
    try {
        Args args(rest, it->switches);
        return it->run(args, io);
    } catch (const UsageError& e) {
        return fail("usage", e.what(), 2);
    } catch (const Error& e) {
        return fail(toString(e.code()), e.what(), 1);
    } catch (const std::exception& e) {
        return fail("internal", e.what(), 1);
    }
}

} // namespace kvs::cli
