// SPDX-License-Identifier: MIT
// What the tokenizer.json and GPT-2 vocab.json/merges.txt readers share: errors that name the
// file, JSON fields checked by type, the vocabulary, merges and the default special ids.
#pragma once

#include "kvs/status.h"
#include "tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace kvs::bpe {

using json = nlohmann::json;

// Errors while reading one file: every message starts with the file's name.
class FileContext {
public:
    explicit FileContext(const std::filesystem::path& path) : m_name(path.string()) {}
    const std::string& name() const { return m_name; }
    [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
        throw Error(code, m_name + ": " + what);
    }

    json parseJson(const std::string& text) const;
    // object[key]: fallback where absent or null, an error where not a boolean.
    bool boolField(const json& object, const char* key, bool fallback,
                   const std::string& where) const;
    // object[key]: nothing where absent or null, an error where not a string.
    std::optional<std::string> stringField(const json& object, const char* key,
                                           const std::string& where) const;
    // The "type" of an object that must have one.
    std::string typeOf(const json& object, const std::string& where) const;

private:
    std::string m_name;
};

// A token id in 0..2^24-1; `what` names the entry in errors.
TokenId parseId(const FileContext& file, const json& value, const std::string& what);

// A {"piece": id, ...} object into spec's vocabulary; ids must be unique.
void readVocab(const FileContext& file, const json& vocab, const std::string& where, BpeSpec& spec);

// The merge left + right, ranked after those before it; all three pieces must be in the
// vocabulary.
void addMerge(const FileContext& file, BpeSpec& spec, const std::string& left,
              const std::string& right, const std::string& where);

// A merge spelt "a b": exactly two symbols separated by one space (symbols with spaces need
// tokenizer.json's list spelling).
void addMergeLine(const FileContext& file, BpeSpec& spec, std::string_view line,
                  const std::string& where);

// Special ids when nothing says otherwise (loadTokenizer applies tokenizer_config.json on top).
void guessSpecialIds(Tokenizer& tokenizer);

} // namespace kvs::bpe
