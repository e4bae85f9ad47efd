// SPDX-License-Identifier: MIT
// A BPE tokenizer's parts (vocabulary, merges, added tokens, pipeline) and the tokenizer made of
// them; the file readers fill a BpeSpec, makeBpeTokenizer runs it.
#pragma once

#include "kvs/tokenizer.h"
#include "tokenizer/bpe_pipeline.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvs::bpe {

struct AddedToken {
    std::string content;
    TokenId id = 0;
    bool lstrip = false, rstrip = false, singleWord = false, special = false;
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using PieceMap = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

struct MergeResult {
    std::int32_t rank;
    TokenId result;
};

constexpr std::uint64_t pairKey(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
}

// Everything a BPE tokenizer is made of; filled by the loaders, validated there.
struct BpeSpec {
    std::string source; // the file named in errors
    std::vector<std::string> pieces;
    std::vector<bool> present; // pieces[id] is a vocabulary entry
    PieceMap vocab;
    std::unordered_map<std::uint64_t, MergeResult> merges;
    std::vector<AddedToken> added;
    std::optional<TokenId> unk;
    bool fuseUnk = false;
    bool byteFallback = false;
    bool ignoreMerges = false;
    std::vector<NormalizerStep> normalizers;
    std::vector<PreTokenizerStep> preTokenizers;
    std::vector<DecoderStep> decoders;
};

// The tokenizer over a validated spec (special ids are left for the caller to set).
std::unique_ptr<Tokenizer> makeBpeTokenizer(BpeSpec spec);

} // namespace kvs::bpe
