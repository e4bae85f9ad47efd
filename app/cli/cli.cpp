// SPDX-License-Identifier: MIT
// Argument parsing, the command table and the top-level error handling of kvstudio-cli.
#include "cli.h"

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
                    throw Error(ErrorCode::InvalidArgument, "option --" + name + " needs a value");
                m_options[name] = argv[++i];
            }
        } else {
            m_positionals.push_back(a);
        }
    }
}

bool Args::has(const std::string& name) const { return m_options.count(name) != 0; }

std::optional<std::string> Args::get(const std::string& name) const {
    auto it = m_options.find(name);
    if (it == m_options.end())
        return std::nullopt;
    return it->second;
}

std::string Args::require(const std::string& name) const {
    auto v = get(name);
    if (!v)
        throw Error(ErrorCode::InvalidArgument, "missing option --" + name);
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
        throw Error(ErrorCode::InvalidArgument,
                    "option --" + name + " needs an integer, got '" + *v + "'");
    }
}

std::string Args::positional(std::size_t index, const std::string& what) const {
    if (index >= m_positionals.size())
        throw Error(ErrorCode::InvalidArgument, "missing argument " + what);
    return m_positionals[index];
}

void Args::allowOnly(const std::vector<std::string>& known) const {
    for (const auto& [name, value] : m_options) {
        (void)value;
        if (std::find(known.begin(), known.end(), name) == known.end())
            throw Error(ErrorCode::InvalidArgument, "unknown option --" + name);
    }
}

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"info", "info MODEL [--json]", "the model's configuration, checkpoint and tokenizer",
         {"json"}, &runInfo},
        {"tokenize", "tokenize MODEL --text T [--json]", "token ids and their text", {"json"},
         &runTokenize},
        {"capture", "capture MODEL (--prompt-file F | --prompt T) --out C.safetensors [--f16]",
         "run the prompt and save every layer's queries, keys and values", {"f16", "json"},
         &runCapture},
        {"generate", "generate MODEL --prompt T --tokens N [--json]", "greedy continuation",
         {"json"}, &runGenerate},
        {"make-model", "make-model PRESET --out DIR [--dtype F32|F16|BF16] [--shards N] [--seed S]",
         "write a random model folder in Hugging Face layout (test fixtures, start-up model)", {},
         &runMakeModel},
        {"devices", "devices [--json]", "the Vulkan devices this machine has", {"json"},
         &runDevices},
    };
    return table;
}

namespace {

void printUsage(std::ostream& os) {
    os << "kvstudio-cli " << KVS_VERSION << " - KV Studio without a window\n\nusage:\n";
    for (const auto& c : commands())
        os << "  kvstudio-cli " << c.usage << "\n      " << c.summary << "\n";
    os << "\nJSON output is documented in docs/cli.md.\n";
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
    if (it == table.end()) {
        io.err << "kvstudio-cli: unknown command '" << argv[0] << "'\n";
        printUsage(io.err);
        return 2;
    }
    const std::vector<std::string> rest(argv.begin() + 1, argv.end());
    const bool json = std::find(rest.begin(), rest.end(), "--json") != rest.end();
    try {
        Args args(rest, it->switches);
        return it->run(args, io);
    } catch (const Error& e) {
        if (json) {
            nlohmann::json j = {{"error", {{"code", toString(e.code())}, {"message", e.what()}}}};
            io.out << j.dump(2) << "\n";
        }
        io.err << "kvstudio-cli " << it->name << ": " << e.what() << "\n";
        return e.code() == ErrorCode::InvalidArgument ? 2 : 1;
    } catch (const std::exception& e) {
        io.err << "kvstudio-cli " << it->name << ": " << e.what() << "\n";
        return 1;
    }
}

} // namespace kvs::cli
