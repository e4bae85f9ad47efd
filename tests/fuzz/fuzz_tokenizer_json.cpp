// SPDX-License-Identifier: MIT
// libFuzzer target: a Hugging Face tokenizer.json (BPE with either merge spelling, byte-level or
// character vocabularies, Split regexes, normalizer/pre-tokenizer/decoder sequences, added tokens).
#include "tokenizer_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto path = fuzz::writeScratch("tokenizer.json", fuzz::asText(data, size));
    const auto tokenizer = loadTokenizerJson(path);
    fuzz::checkResult(tokenizer);
    if (tokenizer.ok())
        fuzz::exerciseTokenizer(*tokenizer.value());
    return 0;
}
