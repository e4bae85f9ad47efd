// SPDX-License-Identifier: MIT
// loadTokenizer: picks a model folder's tokenizer file and applies tokenizer_config.json's bos/eos.
#include "kvs/tokenizer.h"
#include "kvs/file_util.h"

#include <nlohmann/json.hpp>

namespace kvs {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// tokenizer_config.json names bos/eos as strings or as {"content": "...", ...} objects (the
// serialized AddedToken); null says there is none. A name the vocabulary lacks changes nothing.
void applyTokenizerConfig(const fs::path& configPath, Tokenizer& tokenizer) {
    std::error_code ec;
    if (!fs::exists(configPath, ec)) // present but not a file (a fifo, a folder): readFile says so
        return;
    json config;
    try {
        const std::string text = readFile(configPath, kMaxConfigBytes);
        checkJsonNesting(text, configPath.string());
        config = json::parse(text);
    } catch (const json::exception& e) { // parse_error, or out_of_range for 1e505
        throw Error(ErrorCode::Format, configPath.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!config.is_object())
        throw Error(ErrorCode::Format, configPath.string() + ": is not a JSON object");
    const auto special = [&](const char* key,
                             std::optional<TokenId> current) -> std::optional<TokenId> {
        const auto it = config.find(key);
        if (it == config.end())
            return current;
        if (it->is_null())
            return std::nullopt;
        const json* name = &*it;
        if (it->is_object()) {
            const auto content = it->find("content");
            if (content == it->end())
                return current;
            name = &*content;
        }
        if (!name->is_string())
            throw Error(ErrorCode::Format, configPath.string() + ": " + key +
                                               " is neither a string nor a token object");
        const auto id = tokenizer.tokenId(name->get<std::string>());
        return id ? id : current;
    };
    const auto bos = special("bos_token", tokenizer.bosId());
    const auto eos = special("eos_token", tokenizer.eosId());
    tokenizer.setSpecialIds(bos, eos);
}

std::unique_ptr<Tokenizer> readTokenizer(const fs::path& folder) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec))
        throw Error(ErrorCode::Missing, folder.string() + ": no such folder");
    // Present in any form: a tokenizer.json that is a folder or a fifo is an error naming it (by
    // readFile), not a model without a tokenizer.
    const auto has = [&](const char* name) { return fs::exists(folder / name, ec); };
    Result<std::unique_ptr<Tokenizer>> loaded = Error(ErrorCode::Internal, "");
    if (has("tokenizer.json")) {
        loaded = loadTokenizerJson(folder / "tokenizer.json");
        // A Unigram or WordPiece tokenizer.json beside the SentencePiece model it was converted
        // from (T5, many Llama-2 folders): the model is the tokenizer we can read.
        if (!loaded.ok() && loaded.error().code() == ErrorCode::Unsupported &&
            has("tokenizer.model"))
            loaded = loadSentencePiece(folder / "tokenizer.model");
    } else if (has("vocab.json") && has("merges.txt")) {
        loaded = loadGpt2VocabMerges(folder / "vocab.json", folder / "merges.txt");
    } else if (has("tokenizer.model")) {
        loaded = loadSentencePiece(folder / "tokenizer.model");
    } else {
        std::string message = folder.string() +
                              ": no tokenizer (tokenizer.json, vocab.json + merges.txt, or "
                              "tokenizer.model)";
        if (has("vocab.json"))
            message += "; vocab.json is there but merges.txt is not";
        else if (has("merges.txt"))
            message += "; merges.txt is there but vocab.json is not";
        throw Error(ErrorCode::Missing, message);
    }
    std::unique_ptr<Tokenizer> tokenizer = std::move(loaded.valueOrThrow());
    applyTokenizerConfig(folder / "tokenizer_config.json", *tokenizer);
    return tokenizer;
}

} // namespace

Result<std::unique_ptr<Tokenizer>> loadTokenizer(const std::filesystem::path& modelFolder) {
    return catchErrors([&] { return readTokenizer(modelFolder); });
}

} // namespace kvs
