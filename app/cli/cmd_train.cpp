// SPDX-License-Identifier: MIT
// kvstudio-cli train: trains a character-level model on the KJV corpus (or a text file) with the
// core trainer, checkpoints and resumes, evaluates, and exports a Hugging Face folder.
#include "cli.h"

#include "kvs/file_util.h"
#include "kvs/model.h"
#include "kvs/output_writer.h"
#include "kvs/train.h"
#include "kvs/train_corpus.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

namespace kvs::cli {
namespace {

using nlohmann::json;

double getDouble(const Args& args, const std::string& name, double fallback) {
    const auto v = args.get(name);
    if (!v)
        return fallback;
    try {
        std::size_t used = 0;
        const double d = std::stod(*v, &used);
        if (used != v->size() || !std::isfinite(d))
            throw std::invalid_argument("trailing characters");
        return d;
    } catch (const std::exception&) {
        throw Error(ErrorCode::InvalidArgument,
                    "option --" + name + " needs a number, got '" + *v + "'");
    }
}

long long getLong(const Args& args, const std::string& name, long long fallback) {
    const auto v = args.get(name);
    if (!v)
        return fallback;
    try {
        std::size_t used = 0;
        const long long n = std::stoll(*v, &used);
        if (used != v->size())
            throw std::invalid_argument("trailing characters");
        return n;
    } catch (const std::exception&) {
        throw Error(ErrorCode::InvalidArgument,
                    "option --" + name + " needs an integer, got '" + *v + "'");
    }
}

template <class T>
T choose(const Args& args, const std::string& name, T fallback,
         const std::vector<std::pair<std::string, T>>& choices) {
    const auto v = args.get(name);
    if (!v)
        return fallback;
    std::string known;
    for (const auto& [key, value] : choices) {
        if (key == *v)
            return value;
        known += (known.empty() ? "" : ", ") + key;
    }
    throw Error(ErrorCode::InvalidArgument,
                "option --" + name + ": unknown value '" + *v + "' (known: " + known + ")");
}

ModelConfig configFromArgs(const Args& args, int vocab) {
    ModelConfig c = defaultTrainConfig(vocab);
    c.layers = args.getInt("layers", c.layers);
    c.width = args.getInt("width", c.width);
    c.heads = args.getInt("heads", c.heads);
    c.headDim = args.getInt("head-dim", c.width / c.heads);
    c.kvHeads = args.getInt("kv-heads", c.heads);
    c.intermediate = args.getInt("ffn", c.intermediate);
    c.maxPositions = args.getInt("context", c.maxPositions);
    c.sharing = choose<ProjectionSharing>(args, "sharing", ProjectionSharing::Qkv,
                                          {{"qkv", ProjectionSharing::Qkv},
                                           {"k_eq_v", ProjectionSharing::KEqV},
                                           {"q_eq_k", ProjectionSharing::QEqK},
                                           {"q_eq_k_eq_v", ProjectionSharing::QEqKEqV}});
    c.positions =
        choose<PositionKind>(args, "positions", PositionKind::Rope,
                             {{"rope", PositionKind::Rope}, {"learned", PositionKind::Learned}});
    c.norm = choose<NormKind>(args, "norm", NormKind::RmsNorm,
                              {{"rms", NormKind::RmsNorm}, {"layer", NormKind::LayerNorm}});
    c.mlp = choose<MlpKind>(
        args, "mlp", MlpKind::SwiGlu,
        {{"swiglu", MlpKind::SwiGlu}, {"gelu", MlpKind::Gelu}, {"gelu_tanh", MlpKind::GeluTanh}});
    c.tiedEmbeddings = !args.has("untied");
    checkTrainable(c);
    return c;
}

TrainOptions optionsFromArgs(const Args& args) {
    TrainOptions o;
    o.batch = args.getInt("batch", o.batch);
    o.steps = getLong(args, "steps", o.steps);
    o.warmup = args.getInt("warmup", o.warmup);
    o.lr = getDouble(args, "lr", o.lr);
    o.minLrRatio = getDouble(args, "min-lr-ratio", o.minLrRatio);
    o.weightDecay = getDouble(args, "weight-decay", o.weightDecay);
    o.clip = getDouble(args, "clip", o.clip);
    o.seed = static_cast<std::uint64_t>(getLong(args, "seed", 1));
    o.logEvery = args.getInt("log-every", o.logEvery);
    o.evalEvery = args.getInt("eval-every", o.evalEvery);
    o.evalTokens = args.getInt("eval-tokens", o.evalTokens);
    o.checkpointSeconds = 60.0 * getDouble(args, "checkpoint-minutes", 5.0);
    if (const auto only = args.get("train-only")) {
        for (std::size_t a = 0; a <= only->size();) {
            const std::size_t b = std::min(only->find(',', a), only->size());
            if (b > a)
                o.trainOnly.push_back(only->substr(a, b - a));
            a = b + 1;
        }
        static const std::vector<std::string> known{
            "wq",    "wk",    "wv",    "wo",      "w_gate",     "w_up",     "w_down",
            "norm1", "norm2", "embed", "lm_head", "final_norm", "positions"};
        for (const auto& name : o.trainOnly)
            if (std::find(known.begin(), known.end(), name) == known.end())
                throw Error(ErrorCode::InvalidArgument,
                            "option --train-only: unknown parameter '" + name +
                                "' (known: wq, wk, wv, wo, w_gate, w_up, w_down, norm1, norm2, "
                                "embed, lm_head, final_norm, positions)");
    }
    o.keyRank = args.getInt("key-rank", 0);
    return o;
}

// The fine-tune of an exported model: its architecture and weights, this corpus's characters.
Trainer fineTuneFrom(const std::string& folder, const Args& args, const std::string& alphabet) {
    for (const char* arch : {"layers", "width", "heads", "head-dim", "kv-heads", "ffn", "context",
                             "sharing", "positions", "norm", "mlp", "untied"})
        if (args.has(arch))
            throw Error(ErrorCode::InvalidArgument,
                        std::string("option --") + arch +
                            " does not go with --init: the architecture is the model's own");
    const Model model = Model::load(folder).valueOrThrow();
    const Tokenizer* tok = model.tokenizer();
    std::vector<TokenId> ids;
    if (tok && tok->vocabSize() == alphabet.size())
        ids = tok->encode(alphabet);
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        if (ids.size() != alphabet.size() || ids[i] != static_cast<TokenId>(i))
            throw Error(ErrorCode::InvalidArgument,
                        folder + ": the model's vocabulary is not this corpus's " +
                            std::to_string(alphabet.size()) +
                            " characters in order (it was trained on another text)");
    ModelConfig config = model.config();
    const TrainOptions options = optionsFromArgs(args);
    config.keyRank = options.keyRank > 0 ? options.keyRank : config.keyRank;
    return Trainer::fromModel(folder, config, options).valueOrThrow();
}

// The held-out verses that lie in the last tenth of the book (a "late books" view of the
// every-20th split, so the number is not contaminated by training verses).
std::string heldOutInLastTenth(std::string_view text) {
    const std::vector<std::string_view> verses = verseLines(text);
    std::string out;
    for (std::size_t i = verses.size() - verses.size() / 10; i < verses.size(); ++i)
        if ((i + 1) % 20 == 0)
            out.append(verses[i]);
    return out;
}

json perChar(double nats) {
    return {{"nats", nats}, {"bits", nats / std::log(2.0)}, {"perplexity", std::exp(nats)}};
}

int runBaselines(const Args& args, Streams io, const std::string& text) {
    const std::string alphabet = characterAlphabet(text);
    const int order = args.getInt("order", 6);
    json j;
    j["corpus"] = {
        {"bytes", text.size()}, {"fnv1a64", fnv1a64(text)}, {"alphabet_size", alphabet.size()}};
    for (const auto& [name, kind] : {std::pair{"every_20th_verse", SplitKind::Every20th},
                                     std::pair{"last_10_percent", SplitKind::Last10Percent},
                                     std::pair{"held_out_books", SplitKind::HeldOutBooks}}) {
        if (kind == SplitKind::HeldOutBooks && verseLines(text).size() != kKjvVerses)
            continue; // books are known for the KJV only
        const auto split = splitVerses(text, kind);
        const auto train = encodeCharacters(split.train, alphabet);
        const auto val = encodeCharacters(split.validation, alphabet);
        const double nats = kneserNeyNats(train, val, static_cast<int>(alphabet.size()), order);
        j["ngram_order_" + std::to_string(order)][name] = perChar(nats);
        io.out << "order-" << order << " interpolated modified Kneser-Ney, " << name << ": " << nats
               << " nats/char (" << nats / std::log(2.0) << " bits/char)" << std::endl;
    }
    const double bz = bzip2NatsPerByte(text);
    j["bzip2_whole_text"] = perChar(bz);
    io.out << "bzip2 -9 on the whole text: " << bz << " nats/char" << std::endl;
    if (const auto out = args.get("json-out")) {
        j[kOwnerKey] = "train-baselines";
        writeOutput(*out, j.dump(2), "train-baselines", overwriteFrom(args));
    }
    return 0;
}

} // namespace

int runTrain(const Args& args, Streams io) {
    args.allowOnly({"out",          "corpus",       "split",      "sharing",
                    "kv-heads",     "layers",       "width",      "heads",
                    "head-dim",     "ffn",          "context",    "positions",
                    "norm",         "mlp",          "untied",     "steps",
                    "batch",        "lr",           "warmup",     "min-lr-ratio",
                    "weight-decay", "clip",         "seed",       "log-every",
                    "eval-every",   "eval-tokens",  "checkpoint", "checkpoint-minutes",
                    "resume",       "export-dtype", "baselines",  "order",
                    "json-out",     "force",        "init",       "train-only",
                    "key-rank"});
    const Overwrite overwrite = overwriteFrom(args);
    const std::string text = readCorpus(args.get("corpus").value_or("kjv")).valueOrThrow();
    if (args.has("baselines"))
        return runBaselines(args, io, text);
    // Refused outputs fail now, not after hours of training (the folder's own files are checked
    // again by the export).
    if (const auto out = args.get("out"))
        requireWritable(std::filesystem::path(*out) / "train_results.json", "train-results",
                        overwrite);
    if (const auto j = args.get("json-out"))
        requireWritable(*j, "train-results", overwrite);

    const SplitKind splitKind = choose<SplitKind>(args, "split", SplitKind::Every20th,
                                                  {{"every20", SplitKind::Every20th},
                                                   {"last10", SplitKind::Last10Percent},
                                                   {"books", SplitKind::HeldOutBooks}});
    const auto split = splitVerses(text, splitKind);
    const std::string alphabet = characterAlphabet(text);
    const int vocab = static_cast<int>(alphabet.size());

    const auto checkpoint = std::filesystem::path(args.get("checkpoint").value_or(""));
    std::optional<Trainer> trainer;
    if (const auto resume = args.get("resume")) {
        std::optional<long long> steps;
        if (args.has("steps"))
            steps = getLong(args, "steps", 0);
        trainer.emplace(Trainer::resume(*resume, steps).valueOrThrow());
        if (trainer->alphabet() != alphabet)
            throw Error(ErrorCode::InvalidArgument,
                        *resume + ": the checkpoint's vocabulary differs from this corpus's");
        io.out << "resumed " << *resume << " at step " << trainer->stepsDone() << std::endl;
    } else if (const auto init = args.get("init")) {
        trainer.emplace(fineTuneFrom(*init, args, alphabet));
        trainer->setAlphabet(alphabet);
        io.out << "fine-tuning " << *init << std::endl;
    } else {
        ModelConfig config = configFromArgs(args, vocab);
        const TrainOptions options = optionsFromArgs(args);
        config.keyRank = options.keyRank; // declared in the export's config.json
        trainer.emplace(config, options);
        trainer->setAlphabet(alphabet);
    }
    const ModelConfig& c = trainer->model().config();
    const auto& o = trainer->options();
    io.out << "corpus: " << text.size() << " characters, " << vocab << " symbols, fnv1a64 "
           << std::hex << fnv1a64(text) << std::dec << "; train " << split.train.size()
           << ", validation " << split.validation.size() << "\nmodel: " << c.summary() << ", "
           << trainer->model().parameterCount() << " parameters\n"
           << "training: " << o.steps << " steps of " << o.batch << " x " << c.maxPositions
           << " tokens, lr " << o.lr << ", warmup " << o.warmup << ", seed " << o.seed << std::endl;
    trainer->setData(encodeCharacters(split.train, alphabet),
                     encodeCharacters(split.validation, alphabet));
    // A fine-tune's starting point is a result of its own: for thin keys, the post-hoc rank-r
    // model before any training.
    std::optional<double> startVal;
    if (args.has("init") && !args.has("resume")) {
        startVal = trainer->evaluate(encodeCharacters(split.validation, alphabet));
        io.out << "validation at the start: " << *startVal << " nats/char" << std::endl;
    }
    trainer->run([&](const std::string& line) { io.out << line << std::endl; }, checkpoint,
                 overwrite);

    // Final evaluation on the whole validation text.
    const auto valTokens = encodeCharacters(split.validation, alphabet);
    const double val = trainer->evaluate(valTokens);
    json result;
    result["config"] = c.toJson();
    result["parameters"] = trainer->model().parameterCount();
    result["kv_bytes_per_token_fp16"] = c.kvBytesPerTokenFp16();
    result["steps"] = trainer->stepsDone();
    result["tokens"] = trainer->tokensSeen();
    result["train_seconds"] = trainer->elapsedSeconds();
    result["options"] = {{"batch", o.batch},
                         {"lr", o.lr},
                         {"warmup", o.warmup},
                         {"steps", o.steps},
                         {"seed", o.seed},
                         {"weight_decay", o.weightDecay},
                         {"clip", o.clip},
                         {"min_lr_ratio", o.minLrRatio},
                         {"train_only", o.trainOnly},
                         {"key_rank", o.keyRank}};
    if (const auto init = args.get("init"))
        result["initialized_from"] = std::filesystem::path(*init).filename().string();
    result["split"] = splitKind == SplitKind::Every20th       ? "every20"
                      : splitKind == SplitKind::Last10Percent ? "last10"
                                                              : "books";
    if (splitKind == SplitKind::HeldOutBooks) {
        // Each held-out book on its own: which kinds of text the model finds hard.
        for (const auto book : kjvHeldOutBooks())
            result["validation_by_book"][std::string(book)] =
                perChar(trainer->evaluate(encodeCharacters(kjvBookText(text, book), alphabet)));
    }
    result["validation"] = perChar(val);
    if (startVal)
        result["validation_at_start"] = perChar(*startVal);
    result[kOwnerKey] = "train-results";
    io.out << "validation: " << val << " nats/char, " << val / std::log(2.0)
           << " bits/char, perplexity " << std::exp(val) << std::endl;
    if (splitKind == SplitKind::Every20th) {
        const auto late = encodeCharacters(heldOutInLastTenth(text), alphabet);
        const double lateNats = trainer->evaluate(late);
        result["validation_last_10_percent"] = perChar(lateNats);
        io.out << "validation verses in the last 10%: " << lateNats << " nats/char" << std::endl;
    }
    if (const auto out = args.get("out")) {
        const std::string dt = args.get("export-dtype").value_or("f16");
        const DType dtype = dt == "f32" ? DType::F32 : DType::F16;
        if (dt != "f32" && dt != "f16")
            throw Error(ErrorCode::InvalidArgument, "--export-dtype must be f16 or f32");
        exportHfModel(trainer->model(), trainer->alphabet(), dtype, *out, overwrite).valueOrThrow();
        writeOutput(std::filesystem::path(*out) / "train_results.json", result.dump(2),
                    "train-results", overwrite);
        io.out << "exported " << *out << std::endl;
    }
    if (const auto j = args.get("json-out"))
        writeOutput(*j, result.dump(2), "train-results", overwrite);
    return 0;
}

} // namespace kvs::cli
