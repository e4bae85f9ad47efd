// SPDX-License-Identifier: MIT
// kvstudio-cli info, tokenize, capture, generate and make-model: the model commands.
#include "cli.h"

#include "kvs/capture.h"
#include "kvs/file_util.h"
#include "kvs/model.h"
#include "kvs/synthetic_model.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>

namespace kvs::cli {
namespace {

using nlohmann::json;

Model loadModel(const Args& args, LoadOptions options = {}) {
    return Model::load(args.positional(0, "MODEL (a model folder)"), options).valueOrThrow();
}

const Tokenizer& requireTokenizer(const Model& m) {
    if (!m.tokenizer())
        throw Error(ErrorCode::Missing,
                    m.folder().string() + ": the model folder has no tokenizer");
    return *m.tokenizer();
}

json tokensJson(const Tokenizer& tok, const std::vector<TokenId>& ids) {
    json arr = json::array();
    for (TokenId id : ids)
        arr.push_back({{"id", id}, {"text", tok.tokenText(id)}});
    return arr;
}

} // namespace

int runInfo(const Args& args, Streams io) {
    args.allowOnly({"json"});
    // Describing needs no weights: nothing is converted, so a 16 GB checkpoint is described in a
    // moment, even on a machine that could not run it.
    LoadOptions describe;
    describe.describeOnly = true;
    const Model m = loadModel(args, describe);
    const auto& c = m.config();
    json j;
    j["model"] = {{"folder", m.folder().string()}, {"name", m.name()}};
    j["config"] = c.toJson();
    std::map<std::string, std::uint64_t> bytesPerDtype;
    for (const auto& name : m.checkpoint().names()) {
        const auto& info = m.checkpoint().info(name);
        bytesPerDtype[std::string(dtypeName(info.dtype))] += info.nbytes();
    }
    j["checkpoint"] = {{"files", m.checkpoint().files().size()},
                       {"describe", m.checkpoint().describe()},
                       {"tensors", m.checkpoint().names().size()},
                       {"bytes", m.checkpoint().totalBytes()},
                       {"bytes_per_dtype", bytesPerDtype}};
    if (const Tokenizer* t = m.tokenizer())
        j["tokenizer"] = {{"kind", t->kind()},
                          {"vocab_size", t->vocabSize()},
                          {"bos_id", t->bosId() ? json(*t->bosId()) : json(nullptr)},
                          {"eos_id", t->eosId() ? json(*t->eosId()) : json(nullptr)}};
    else
        j["tokenizer"] = nullptr;
    if (args.has("json")) {
        io.out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    io.out << m.name() << " (" << m.folder().string() << ")\n  " << c.summary() << "\n";
    for (auto it = j["config"].begin(); it != j["config"].end(); ++it)
        io.out << "  " << it.key() << ": " << it.value().dump() << "\n";
    io.out << "  checkpoint: " << m.checkpoint().describe() << ", " << m.checkpoint().names().size()
           << " tensors, " << m.checkpoint().totalBytes() << " bytes\n";
    io.out << "  tokenizer: " << (m.tokenizer() ? m.tokenizer()->kind() : std::string("none"))
           << "\n";
    return 0;
}

int runTokenize(const Args& args, Streams io) {
    args.allowOnly({"json", "text"});
    LoadOptions describe; // tokenizing needs no weights
    describe.describeOnly = true;
    const Model m = loadModel(args, describe);
    const Tokenizer& tok = requireTokenizer(m);
    const auto ids = tok.encode(args.require("text"));
    if (args.has("json")) {
        io.out << json{{"count", ids.size()}, {"tokens", tokensJson(tok, ids)}}.dump(
                      2, ' ', false, json::error_handler_t::replace)
               << "\n";
        return 0;
    }
    for (std::size_t i = 0; i < ids.size(); ++i)
        io.out << i << "\t" << ids[i] << "\t"
               << json(tok.tokenText(ids[i])).dump(-1, ' ', false, json::error_handler_t::replace)
               << "\n";
    io.out << ids.size() << " tokens\n";
    return 0;
}

int runCapture(const Args& args, Streams io) {
    args.allowOnly({"prompt-file", "prompt", "out", "f16", "logits", "force", "json"});
    const std::string out = args.require("out");
    const Overwrite overwrite = overwriteFrom(args);
    requireWritable(out, "capture", overwrite); // before the model runs
    const Model m = loadModel(args);
    const std::string prompt = readPrompt(args);
    const std::string source = args.get("prompt-file").value_or("prompt");
    const auto start = std::chrono::steady_clock::now();
    const Tokenizer& tok = requireTokenizer(m);
    auto ids = tok.encode(prompt);
    validateTokens(m.config(), ids, source);
    Capture c = m.captureTokens(std::move(ids), {.logits = args.has("logits")}).valueOrThrow();
    c.prompt = prompt;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    saveCapture(c, out, args.has("f16"), overwrite).valueOrThrow();
    if (args.has("json"))
        io.out << json{{"out", out},
                       {"tokens", c.tokenCount()},
                       {"layers", c.layers.size()},
                       {"seconds", seconds}}
                      .dump(2, ' ', false, json::error_handler_t::replace)
               << "\n";
    else
        io.out << "captured " << c.tokenCount() << " tokens x " << c.layers.size() << " layers in "
               << seconds << " s -> " << out << "\n";
    return 0;
}

int runGenerate(const Args& args, Streams io) {
    args.allowOnly({"prompt", "tokens", "json"});
    const Model m = loadModel(args);
    const Tokenizer& tok = requireTokenizer(m);
    const std::string prompt = args.require("prompt");
    if (prompt.empty())
        throw Error(ErrorCode::InvalidArgument, "empty prompt");
    const int count = args.getInt("tokens", 32, 1, 1 << 20);
    const auto ids = tok.encode(prompt);
    const auto generated = m.generateGreedy(ids, count).valueOrThrow();
    const std::string text = tok.decode(generated);
    if (args.has("json")) {
        io.out << json{{"prompt", prompt},
                       {"prompt_tokens", ids.size()},
                       {"tokens", tokensJson(tok, generated)},
                       {"text", text}}
                      .dump(2, ' ', false, json::error_handler_t::replace)
               << "\n";
        return 0;
    }
    io.out << prompt << text << "\n";
    return 0;
}

int runMakeModel(const Args& args, Streams io) {
    args.allowOnly({"out", "dtype", "shards", "seed", "force", "json"});
    const std::string preset = args.positional(0, "PRESET");
    const auto names = syntheticPresetNames();
    if (std::find(names.begin(), names.end(), preset) == names.end()) {
        std::string known;
        for (const auto& n : names)
            known += (known.empty() ? "" : ", ") + n;
        throw UsageError("unknown preset '" + preset + "' (presets: " + known + ")");
    }
    SyntheticModelSpec spec = syntheticPreset(preset);
    if (auto d = args.get("dtype")) {
        auto t = parseDType(*d);
        if (!t || (*t != DType::F32 && *t != DType::F16 && *t != DType::BF16))
            throw UsageError("--dtype must be F32, F16 or BF16, got '" + *d + "'");
        spec.dtype = *t;
    }
    spec.shards = args.getInt("shards", spec.shards, 1, 64);
    spec.seed = static_cast<std::uint64_t>(
        args.getInt("seed", static_cast<int>(spec.seed), 0, std::numeric_limits<int>::max()));
    const std::string out = args.require("out");
    writeSyntheticModel(spec, out, overwriteFrom(args)).valueOrThrow();
    if (args.has("json"))
        io.out << json{{"out", out}, {"preset", preset}, {"summary", spec.config.summary()}}.dump(2)
               << "\n";
    else
        io.out << "wrote " << preset << " (" << spec.config.summary() << ") to " << out << "\n";
    return 0;
}

} // namespace kvs::cli
