// SPDX-License-Identifier: MIT
// What the tokenizer targets do with a tokenizer a fuzzed file produced: encode a fixed text
// (ASCII, accents, CJK, an emoji, digits, whitespace runs, special-looking tokens), decode it back,
// and label every token as the views do.
#pragma once

#include "fuzz_util.h"

#include "kvs/tokenizer.h"

#include <algorithm>
#include <memory>

namespace kvs::fuzz {

inline void exerciseTokenizer(const Tokenizer& tokenizer) {
    static constexpr std::string_view kTexts[] = {
        "In the beginning God created the heaven and the earth.\n",
        "  Hello,\tworld!  123 4567 it's we'll <s></s><|endoftext|> caf\xc3\xa9 \xe4\xbd\xa0\xe5"
        "\xa5\xbd \xf0\x9f\x98\x80\r\n\n",
        "",
    };
    (void)tokenizer.kind();
    const std::size_t vocab = tokenizer.vocabSize();
    for (const std::string_view text : kTexts) {
        std::vector<TokenId> ids;
        try {
            ids = tokenizer.encode(text);
        } catch (const Error&) {
            continue; // text the vocabulary cannot represent: a clean refusal
        }
        for (const TokenId id : ids)
            if (id < 0 || static_cast<std::size_t>(id) >= vocab)
                __builtin_trap(); // an id outside the vocabulary it claims
        (void)tokenizer.decode(ids);
    }
    const std::size_t shown = std::min<std::size_t>(vocab, 512);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto id = static_cast<TokenId>(i);
        try {
            const std::string piece = tokenizer.tokenPiece(id);
            (void)tokenizer.tokenText(id);
            (void)tokenizer.tokenId(piece);
        } catch (const Error&) {
            // an id in a gap of the vocabulary: refused by name
        }
    }
}

} // namespace kvs::fuzz
