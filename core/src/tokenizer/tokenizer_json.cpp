// SPDX-License-Identifier: MIT
// Hugging Face tokenizer.json BPE models: the model (vocabulary, merges, unknown token, byte
// fallback), added tokens, and the normalizer, pre-tokenizer and decoder chains.
#include "kvs/file_util.h"
#include "kvs/tokenizer.h"
#include "tokenizer/bpe_files.h"

namespace kvs {

namespace {

using namespace bpe;

Pattern readPattern(const FileContext& file, const json& object, const std::string& where) {
    if (!object.is_object())
        file.fail(ErrorCode::Format, where + " is not an object");
    if (const auto literal = file.stringField(object, "String", where))
        return Pattern{nullptr, *literal};
    if (const auto regex = file.stringField(object, "Regex", where)) {
        try {
            return Pattern{std::make_shared<const Regex>(*regex), {}};
        } catch (const RegexError& e) {
            file.fail(ErrorCode::Format, where + ": regular expression /" + *regex +
                                             "/ does not compile: " + e.what());
        }
    }
    file.fail(ErrorCode::Format, where + " has neither \"String\" nor \"Regex\"");
}

// The step's required "pattern" field.
Pattern readPatternField(const FileContext& file, const json& step, const std::string& where) {
    const auto pattern = step.find("pattern");
    if (pattern == step.end())
        file.fail(ErrorCode::Format, where + " has no pattern");
    return readPattern(file, *pattern, where + ".pattern");
}

// A Sequence's members (object[key], a list), each handed to read with its place in the file.
template <typename Read>
void readSequence(const FileContext& file, const json& object, const char* key,
                  const std::string& where, Read read) {
    const auto it = object.find(key);
    if (it == object.end() || !it->is_array())
        file.fail(ErrorCode::Format, where + "." + key + " is not a list");
    for (std::size_t i = 0; i < it->size(); ++i)
        read((*it)[i], where + "." + key + "[" + std::to_string(i) + "]");
}

// The type of one pipeline component at `where`, or nothing when there is nothing more to read
// here: the component is null, or a "Sequence" whose members (object[listKey]) `read` has read.
template <typename Step>
using ReadComponent = void (*)(const FileContext&, const json&, const std::string&,
                               std::vector<Step>&);
template <typename Step>
std::optional<std::string> componentType(const FileContext& file, const json& object,
                                         const char* listKey, const std::string& where,
                                         std::vector<Step>& steps, ReadComponent<Step> read) {
    if (object.is_null())
        return std::nullopt;
    std::string type = file.typeOf(object, where);
    if (type != "Sequence")
        return type;
    readSequence(file, object, listKey, where,
                 [&](const json& member, const std::string& at) { read(file, member, at, steps); });
    return std::nullopt;
}

void readMerges(const FileContext& file, const json& merges, BpeSpec& spec) {
    if (merges.is_null())
        return;
    if (!merges.is_array())
        file.fail(ErrorCode::Format, "model.merges is not a list");
    spec.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
        const json& merge = merges[i];
        const std::string where = "merge #" + std::to_string(i + 1);
        if (merge.is_string()) {
            addMergeLine(file, spec, merge.get_ref<const std::string&>(), where);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                   merge[1].is_string() && !merge[0].get_ref<const std::string&>().empty() &&
                   !merge[1].get_ref<const std::string&>().empty()) {
            addMerge(file, spec, merge[0].get<std::string>(), merge[1].get<std::string>(), where);
        } else {
            file.fail(ErrorCode::Format, where + " (" + merge.dump() +
                                             ") is neither \"a b\" nor a list of two symbols");
        }
    }
}

PrependScheme readPrependScheme(const FileContext& file, const json& object,
                                const std::string& where) {
    if (const auto scheme = file.stringField(object, "prepend_scheme", where)) {
        if (*scheme == "first")
            return PrependScheme::First;
        if (*scheme == "always")
            return PrependScheme::Always;
        if (*scheme == "never")
            return PrependScheme::Never;
        file.fail(ErrorCode::Format,
                  where + ".prepend_scheme \"" + *scheme + "\" is not first, always or never");
    }
    // Files written before prepend_scheme existed say add_prefix_space.
    return file.boolField(object, "add_prefix_space", true, where) ? PrependScheme::Always
                                                                   : PrependScheme::Never;
}

std::string readReplacement(const FileContext& file, const json& object, const std::string& where) {
    const std::string replacement =
        file.stringField(object, "replacement", where).value_or("\u2581");
    if (replacement.empty())
        file.fail(ErrorCode::Format, where + ".replacement is empty");
    return replacement;
}

void readNormalizer(const FileContext& file, const json& object, const std::string& where,
                    std::vector<NormalizerStep>& steps) {
    const auto component =
        componentType(file, object, "normalizers", where, steps, &readNormalizer);
    if (!component)
        return;
    const std::string& type = *component;
    if (type == "Prepend") {
        NormalizerStep step{NormalizerStep::Kind::Prepend, {}, {}};
        step.text = file.stringField(object, "prepend", where).value_or("");
        steps.push_back(std::move(step));
    } else if (type == "Replace") {
        NormalizerStep step{NormalizerStep::Kind::Replace, {}, {}};
        step.pattern = readPatternField(file, object, where);
        step.text = file.stringField(object, "content", where).value_or("");
        steps.push_back(std::move(step));
    } else if (type == "NFC") {
        // Canonical composition is left out (it needs the Unicode composition tables): text that
        // is already NFC, as nearly all text is, is unchanged by it.
        steps.push_back({NormalizerStep::Kind::Identity, {}, {}});
    } else {
        file.fail(ErrorCode::Unsupported, where + " type \"" + type + "\" is not supported");
    }
}

SplitBehavior readBehavior(const FileContext& file, const json& object, const std::string& where) {
    const std::string behavior = file.stringField(object, "behavior", where).value_or("Isolated");
    if (behavior == "Removed")
        return SplitBehavior::Removed;
    if (behavior == "Isolated")
        return SplitBehavior::Isolated;
    if (behavior == "MergedWithPrevious")
        return SplitBehavior::MergedWithPrevious;
    if (behavior == "MergedWithNext")
        return SplitBehavior::MergedWithNext;
    if (behavior == "Contiguous")
        return SplitBehavior::Contiguous;
    file.fail(ErrorCode::Format, where + ".behavior \"" + behavior + "\" is not known");
}

void readPreTokenizer(const FileContext& file, const json& object, const std::string& where,
                      std::vector<PreTokenizerStep>& steps) {
    const auto component =
        componentType(file, object, "pretokenizers", where, steps, &readPreTokenizer);
    if (!component)
        return;
    const std::string& type = *component;
    PreTokenizerStep step;
    if (type == "ByteLevel") {
        step.kind = PreTokenizerStep::Kind::ByteLevel;
        step.addPrefixSpace = file.boolField(object, "add_prefix_space", false, where);
        step.useRegex = file.boolField(object, "use_regex", true, where);
    } else if (type == "Split") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = readPatternField(file, object, where);
        step.behavior = readBehavior(file, object, where);
        step.invert = file.boolField(object, "invert", false, where);
    } else if (type == "Metaspace") {
        step.kind = PreTokenizerStep::Kind::Metaspace;
        step.replacement = readReplacement(file, object, where);
        step.prependScheme = readPrependScheme(file, object, where);
        step.split = file.boolField(object, "split", true, where);
    } else if (type == "Digits") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = Pattern{std::make_shared<const Regex>(R"(\p{N})"), {}};
        step.behavior = file.boolField(object, "individual_digits", false, where)
                            ? SplitBehavior::Isolated
                            : SplitBehavior::Contiguous;
    } else if (type == "WhitespaceSplit") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = Pattern{std::make_shared<const Regex>(R"(\s+)"), {}};
        step.behavior = SplitBehavior::Removed;
    } else if (type == "Whitespace") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = Pattern{std::make_shared<const Regex>(R"(\w+|[^\w\s]+)"), {}};
        step.behavior = SplitBehavior::Removed;
        step.invert = true;
    } else {
        file.fail(ErrorCode::Unsupported, where + " type \"" + type + "\" is not supported");
    }
    steps.push_back(std::move(step));
}

void readDecoder(const FileContext& file, const json& object, const std::string& where,
                 std::vector<DecoderStep>& steps) {
    const auto component = componentType(file, object, "decoders", where, steps, &readDecoder);
    if (!component)
        return;
    const std::string& type = *component;
    DecoderStep step;
    if (type == "ByteLevel") {
        step.kind = DecoderStep::Kind::ByteLevel;
    } else if (type == "Metaspace") {
        step.kind = DecoderStep::Kind::Metaspace;
        step.replacement = readReplacement(file, object, where);
        step.prependScheme = readPrependScheme(file, object, where);
    } else if (type == "Replace") {
        step.kind = DecoderStep::Kind::Replace;
        step.pattern = readPatternField(file, object, where);
        step.content = file.stringField(object, "content", where).value_or("");
    } else if (type == "ByteFallback") {
        step.kind = DecoderStep::Kind::ByteFallback;
    } else if (type == "Fuse") {
        step.kind = DecoderStep::Kind::Fuse;
    } else if (type == "Strip") {
        step.kind = DecoderStep::Kind::Strip;
        step.content = file.stringField(object, "content", where).value_or(" ");
        const auto count = [&](const char* key) -> std::size_t {
            const auto it = object.find(key);
            if (it == object.end() || it->is_null())
                return 0;
            if (!it->is_number_unsigned())
                file.fail(ErrorCode::Format, where + "." + key + " is not a count");
            return it->get<std::size_t>();
        };
        step.stripStart = count("start");
        step.stripStop = count("stop");
    } else {
        file.fail(ErrorCode::Unsupported, where + " type \"" + type + "\" is not supported");
    }
    steps.push_back(std::move(step));
}

void readAddedTokens(const FileContext& file, const json& list, BpeSpec& spec) {
    if (list.is_null())
        return;
    if (!list.is_array())
        file.fail(ErrorCode::Format, "added_tokens is not a list");
    for (std::size_t i = 0; i < list.size(); ++i) {
        const json& entry = list[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        if (!entry.is_object())
            file.fail(ErrorCode::Format, where + " is not an object");
        AddedToken token;
        token.content = file.stringField(entry, "content", where).value_or("");
        if (token.content.empty())
            file.fail(ErrorCode::Format, where + " has no content");
        const auto id = entry.find("id");
        if (id == entry.end())
            file.fail(ErrorCode::Format, where + " (\"" + token.content + "\") has no id");
        token.id = parseId(file, *id, where + " (\"" + token.content + "\")");
        token.lstrip = file.boolField(entry, "lstrip", false, where);
        token.rstrip = file.boolField(entry, "rstrip", false, where);
        token.singleWord = file.boolField(entry, "single_word", false, where);
        token.special = file.boolField(entry, "special", false, where);
        spec.added.push_back(std::move(token));
    }
}

std::unique_ptr<Tokenizer> readTokenizerJson(const std::filesystem::path& path) {
    const FileContext file(path);
    const json root = file.parseJson(readFile(path, kMaxTokenizerBytes));
    if (!root.is_object())
        file.fail(ErrorCode::Format, "is not a JSON object");
    const auto model = root.find("model");
    if (model == root.end() || !model->is_object())
        file.fail(ErrorCode::Format, "has no \"model\" object");
    std::string type = file.stringField(*model, "type", "model").value_or("");
    if (type.empty() && model->contains("merges"))
        type = "BPE"; // early tokenizer.json files leave the BPE type implicit
    if (type != "BPE")
        file.fail(ErrorCode::Unsupported,
                  "model type \"" + type +
                      "\" is not supported (tokenizer.json models must be BPE; SentencePiece "
                      "models load from tokenizer.model)");

    BpeSpec spec;
    spec.source = file.name();
    const auto vocab = model->find("vocab");
    if (vocab == model->end())
        file.fail(ErrorCode::Format, "model has no vocab");
    readVocab(file, *vocab, "model.vocab", spec);
    if (const auto merges = model->find("merges"); merges != model->end())
        readMerges(file, *merges, spec);
    if (const auto unk = file.stringField(*model, "unk_token", "model")) {
        const auto it = spec.vocab.find(*unk);
        if (it == spec.vocab.end())
            file.fail(ErrorCode::Format,
                      "model.unk_token \"" + *unk + "\" is not in the vocabulary");
        spec.unk = it->second;
    }
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (const auto value = file.stringField(*model, affix, "model"); value && !value->empty())
            file.fail(ErrorCode::Unsupported,
                      std::string("model.") + affix + " (\"" + *value + "\") is not supported");
    spec.fuseUnk = file.boolField(*model, "fuse_unk", false, "model");
    spec.byteFallback = file.boolField(*model, "byte_fallback", false, "model");
    spec.ignoreMerges = file.boolField(*model, "ignore_merges", false, "model");

    const auto section = [&](const char* key) -> const json& {
        static const json null;
        const auto it = root.find(key);
        return it == root.end() ? null : *it;
    };
    readAddedTokens(file, section("added_tokens"), spec);
    readNormalizer(file, section("normalizer"), "normalizer", spec.normalizers);
    readPreTokenizer(file, section("pre_tokenizer"), "pre_tokenizer", spec.preTokenizers);
    readDecoder(file, section("decoder"), "decoder", spec.decoders);

    auto tokenizer = makeBpeTokenizer(std::move(spec));
    guessSpecialIds(*tokenizer);
    return tokenizer;
}

} // namespace

Result<std::unique_ptr<Tokenizer>> loadTokenizerJson(const std::filesystem::path& tokenizerJson) {
    return catchErrors([&] { return readTokenizerJson(tokenizerJson); });
}

} // namespace kvs
