// SPDX-License-Identifier: MIT
// What the BPE readers share: JSON fields, vocabulary, merges, default special ids.
#include "tokenizer/bpe_files.h"

#include "kvs/file_util.h"

namespace kvs::bpe {

json FileContext::parseJson(const std::string& text) const {
    // Before parsing: the component readers recurse into nested Sequences.
    checkJsonNesting(text, name());
    try {
        return json::parse(text);
    } catch (const json::exception& e) { // parse_error, or out_of_range for 1e505
        // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
        std::string what = e.what();
        if (const auto bracket = what.find("] ");
            what.starts_with("[json.") && bracket != std::string::npos)
            what.erase(0, bracket + 2);
        fail(ErrorCode::Format, "not valid JSON (" + what + ")");
    }
}

bool FileContext::boolField(const json& object, const char* key, bool fallback,
                            const std::string& where) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return fallback;
    if (!it->is_boolean())
        fail(ErrorCode::Format, where + "." + key + " is not true or false");
    return it->get<bool>();
}

std::optional<std::string> FileContext::stringField(const json& object, const char* key,
                                                    const std::string& where) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return std::nullopt;
    if (!it->is_string())
        fail(ErrorCode::Format, where + "." + key + " is not a string");
    return it->get<std::string>();
}

std::string FileContext::typeOf(const json& object, const std::string& where) const {
    if (!object.is_object())
        fail(ErrorCode::Format, where + " is not an object");
    const auto type = stringField(object, "type", where);
    if (!type)
        fail(ErrorCode::Format, where + " has no \"type\"");
    return *type;
}

TokenId parseId(const FileContext& file, const json& value, const std::string& what) {
    if (!value.is_number_integer())
        file.fail(ErrorCode::Format,
                  what + " has an id that is not an integer (" + value.dump() + ")");
    const auto id = value.get<std::int64_t>();
    // Ids index dense tables; a vocabulary beyond 16M entries is a corrupt file, not a model.
    constexpr std::int64_t kMaxId = (std::int64_t{1} << 24) - 1;
    if (id < 0 || id > kMaxId)
        file.fail(ErrorCode::Format, what + " has id " + std::to_string(id) + ", outside 0.." +
                                         std::to_string(kMaxId));
    return static_cast<TokenId>(id);
}

void readVocab(const FileContext& file, const json& vocab, const std::string& where,
               BpeSpec& spec) {
    if (!vocab.is_object())
        file.fail(ErrorCode::Format, where + " is not an object mapping pieces to ids");
    if (vocab.empty())
        file.fail(ErrorCode::Format, where + " is empty");
    spec.vocab.reserve(vocab.size());
    for (const auto& [piece, value] : vocab.items()) {
        const TokenId id = parseId(file, value, "vocabulary entry \"" + piece + "\"");
        const auto index = static_cast<std::size_t>(id);
        if (index >= spec.pieces.size()) {
            spec.pieces.resize(index + 1);
            spec.present.resize(index + 1, false);
        }
        if (spec.present[index])
            file.fail(ErrorCode::Format, "vocabulary ids are not unique: \"" + spec.pieces[index] +
                                             "\" and \"" + piece + "\" both have id " +
                                             std::to_string(id));
        spec.pieces[index] = piece;
        spec.present[index] = true;
        spec.vocab.emplace(piece, id);
    }
}

void addMerge(const FileContext& file, BpeSpec& spec, const std::string& left,
              const std::string& right, const std::string& where) {
    const auto describe = [&] { return where + " (\"" + left + " " + right + "\")"; };
    const auto l = spec.vocab.find(left);
    if (l == spec.vocab.end())
        file.fail(ErrorCode::Format,
                  describe() + " names \"" + left + "\", which is not in the vocabulary");
    const auto r = spec.vocab.find(right);
    if (r == spec.vocab.end())
        file.fail(ErrorCode::Format,
                  describe() + " names \"" + right + "\", which is not in the vocabulary");
    const auto result = spec.vocab.find(left + right);
    if (result == spec.vocab.end())
        file.fail(ErrorCode::Format,
                  describe() + " makes \"" + left + right + "\", which is not in the vocabulary");
    // A repeated merge keeps its first (best) rank.
    spec.merges.try_emplace(
        pairKey(l->second, r->second),
        MergeResult{static_cast<std::int32_t>(spec.merges.size()), result->second});
}

void addMergeLine(const FileContext& file, BpeSpec& spec, std::string_view line,
                  const std::string& where) {
    const auto space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
        file.fail(ErrorCode::Format, where + " (\"" + std::string(line) +
                                         "\") is not two symbols separated by one space");
    addMerge(file, spec, std::string(line.substr(0, space)), std::string(line.substr(space + 1)),
             where);
}

void guessSpecialIds(Tokenizer& tokenizer) {
    const auto first = [&](std::initializer_list<const char*> names) -> std::optional<TokenId> {
        for (const char* name : names)
            if (const auto id = tokenizer.tokenId(name))
                return id;
        return std::nullopt;
    };
    auto bos = first({"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"});
    const auto eos = first({"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"});
    // GPT-2 begins and ends documents with <|endoftext|>.
    if (!bos && tokenizer.kind() == "gpt2-bpe")
        bos = tokenizer.tokenId("<|endoftext|>");
    tokenizer.setSpecialIds(bos, eos);
}

} // namespace kvs::bpe
