// SPDX-License-Identifier: MIT
// Tokenizers the model folders people have: byte-level BPE (GPT-2 vocab.json + merges.txt, or
// tokenizer.json with either merge spelling, including Llama-3/Qwen2 style Split regexes),
// SentencePiece tokenizer.model, and plain character/byte vocabularies for small models (a
// tokenizer.json whose BPE model has no merges). Every token decodes back to display text.
#pragma once

#include "kvs/status.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvs {

using TokenId = std::int32_t;

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // "gpt2-bpe", "bpe" (non byte-level, e.g. character vocabularies), "sentencepiece"
    virtual std::string kind() const = 0;
    virtual std::size_t vocabSize() const = 0;
    // Text -> ids. Special/added tokens that occur literally in the text are matched as themselves
    // (as Hugging Face does). Throws kvs::Error(InvalidArgument) for text the vocabulary cannot
    // represent (a character outside a character vocabulary with no unknown token).
    virtual std::vector<TokenId> encode(std::string_view text) const = 0;
    // Ids -> text, exactly inverting encode for round-trippable text.
    virtual std::string decode(std::span<const TokenId> ids) const = 0;
    // The text one token stands for, for axis labels: decode({id}) where that is valid UTF-8,
    // otherwise a readable escape such as "<0xE2>" (a partial UTF-8 byte of a byte-level token).
    // A word-start marker shows as its space ("▁the" -> " the") even where decode would drop it at
    // the start of a text; special tokens show as themselves ("<s>").
    virtual std::string tokenText(TokenId id) const = 0;
    // The raw vocabulary string of a token (e.g. "Ġthe" in GPT-2, "▁the" in SentencePiece).
    virtual std::string tokenPiece(TokenId id) const = 0;
    virtual std::optional<TokenId> tokenId(std::string_view piece) const = 0;

    std::optional<TokenId> bosId() const { return m_bos; }
    std::optional<TokenId> eosId() const { return m_eos; }
    void setSpecialIds(std::optional<TokenId> bos, std::optional<TokenId> eos) {
        m_bos = bos;
        m_eos = eos;
    }

private:
    std::optional<TokenId> m_bos, m_eos;
};

// Loads the tokenizer of a model folder. Preference: tokenizer.json, then vocab.json + merges.txt,
// then tokenizer.model; a tokenizer.json whose model is not BPE (Unigram, WordPiece) gives way to a
// tokenizer.model beside it. bos/eos come from tokenizer_config.json where it names them. Errors
// name the file and the problem.
Result<std::unique_ptr<Tokenizer>> loadTokenizer(const std::filesystem::path& modelFolder);

// The individual loaders, for tests and for folders with unusual names.
Result<std::unique_ptr<Tokenizer>> loadTokenizerJson(const std::filesystem::path& tokenizerJson);
Result<std::unique_ptr<Tokenizer>> loadGpt2VocabMerges(const std::filesystem::path& vocabJson,
                                                       const std::filesystem::path& mergesTxt);
Result<std::unique_ptr<Tokenizer>> loadSentencePiece(const std::filesystem::path& tokenizerModel);

// GPT-2's pre-tokenization pattern (PCRE2 syntax, Unicode classes).
extern const char* const kGpt2SplitPattern;

} // namespace kvs
