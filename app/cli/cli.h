// SPDX-License-Identifier: MIT
// kvstudio-cli: the engine without a window. runCli() is the entry point used by main() and tests.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/output_writer.h"
#include "kvs/status.h"

#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvs::cli {

// Parsed arguments of one sub-command: positionals, `--key value` options and `--flag` switches.
class Args {
public:
    // `switches` lists the options that take no value (e.g. "json"); every other --name takes one.
    Args(const std::vector<std::string>& argv, const std::vector<std::string>& switches);

    const std::vector<std::string>& positionals() const { return m_positionals; }
    bool has(const std::string& name) const;
    std::optional<std::string> get(const std::string& name) const;
    std::string require(const std::string& name) const; // throws UsageError
    int getInt(const std::string& name, int fallback) const;
    // getInt that also rejects values outside [minimum, maximum] with a UsageError.
    int getInt(const std::string& name, int fallback, int minimum, int maximum) const;
    std::string positional(std::size_t index, const std::string& what) const;
    // Throws for options not in `known` (a typo must not be ignored).
    void allowOnly(const std::vector<std::string>& known) const;

private:
    std::vector<std::string> m_positionals;
    std::map<std::string, std::string> m_options;
    std::vector<std::string> m_switches;
};

// A mistake in the command line itself (unknown option, missing argument, malformed number): exit
// code 2 and error code "usage". Everything else the command rejects is an ordinary kvs::Error,
// exit code 1.
class UsageError : public Error {
public:
    explicit UsageError(const std::string& message) : Error(ErrorCode::InvalidArgument, message) {}
};

struct Streams {
    std::ostream& out;
    std::ostream& err;
};

using CommandFn = int (*)(const Args& args, Streams io);

struct Command {
    std::string name;
    std::string usage;   // "info MODEL [--json]"
    std::string summary; // one line
    std::vector<std::string> switches;
    CommandFn run;
};

const std::vector<Command>& commands();

// Runs `kvstudio-cli <argv...>` (argv excludes the program name). Returns the exit code: 0 success,
// 1 failure with a message on err (JSON {"error": {...}} when --json was given), 2 usage error.
int runCli(const std::vector<std::string>& argv, Streams io);

// The prompt from --prompt-file F or --prompt T; a usage error without either, an error naming
// the source when it is empty.
std::string readPrompt(const Args& args);

// Overwrite::Force when --force was given: outputs may then replace files the studio did not
// write (kvs/output_writer.h).
Overwrite overwriteFrom(const Args& args);

// The attention backend named by --backend (auto, cpu, vulkan); auto falls back to the CPU and
// says so on err.
std::unique_ptr<AttentionBackend> makeBackend(const std::string& name, Streams io);

// `render` lives in the studio (it draws the studio's charts): kvstudio-cli's main() installs it
// when the studio is built; without it the command fails with ErrorCode::Unsupported.
void setRenderHandler(CommandFn handler);
int runRender(const Args& args, Streams io);

// The commands, one file each.
using CommandHandler = int(const Args& args, Streams io);
CommandHandler runInfo, runTokenize, runCapture, runGenerate, runMakeModel, runSchemes, runEval,
    runSweep, runSpectrum, runDevices, runTrain, runBench, runCapacity;

} // namespace kvs::cli
