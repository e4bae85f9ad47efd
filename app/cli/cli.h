// SPDX-License-Identifier: MIT
// kvstudio-cli: the engine without a window. runCli() is the entry point used by main() and tests.
#pragma once

#include "kvs/attention_backend.h"
#include "kvs/output_writer.h"
#include "kvs/scheme.h"
#include "kvs/status.h"

#include <filesystem>
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

// --scheme "S1 S2 ...": the settings, separated by spaces; a usage error for a malformed one.
std::vector<SchemeSetting> parseSchemeList(const std::string& text);
// A finite number, or a usage error naming `what` and the text.
double parseNumber(const std::string& text, const std::string& what);
// --values a,b,c or --range lo:hi:count (geometric; 0.03125:1:6 when neither is given).
std::vector<double> sweepValues(const Args& args);
// The prompt files of a prompt set: every regular *.txt file of the folder, in name order (at
// least two).
std::vector<std::filesystem::path> promptSetFiles(const std::filesystem::path& folder);

// The attention backend named by --backend (auto, cpu, vulkan); auto falls back to the CPU and
// says so on err.
std::unique_ptr<AttentionBackend> makeBackend(const std::string& name, Streams io);

// `render` lives in the studio (it draws the studio's charts): kvstudio-cli's main() installs it
// when the studio is built; without it the command fails with ErrorCode::Unsupported.
void setRenderHandler(CommandFn handler);
int runRender(const Args& args, Streams io);
// `report` too (app/studio/report_command.h), the same way.
void setReportHandler(CommandFn handler);
int runReport(const Args& args, Streams io);

// sweep --prompt-set DIR: the study of schemes × values × prompts × seeds, journaled, sharded
// and resumable (cmd_sweep_study.cpp).
int runSweepStudy(const Args& args, Streams io);

// The commands, one file each.
using CommandHandler = int(const Args& args, Streams io);
CommandHandler runInfo, runTokenize, runCapture, runGenerate, runMakeModel, runSchemes, runEval,
    runSweep, runSweepMerge, runSpectrum, runDevices, runTrain, runBench, runCapacity, runAllocate;

} // namespace kvs::cli
