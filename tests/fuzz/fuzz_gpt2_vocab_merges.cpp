// SPDX-License-Identifier: MIT
// libFuzzer target: GPT-2's vocab.json + merges.txt. The input is vocab.json, a line "=====MERGES"
// and merges.txt (no marker: all of it is vocab.json and merges.txt is empty).
#include "tokenizer_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    static constexpr std::string_view kMarker = "\n=====MERGES\n";
    const std::string_view input = fuzz::asText(data, size);
    const auto split = input.find(kMarker);
    const std::string_view vocab = input.substr(0, split);
    const std::string_view merges =
        split == std::string_view::npos ? std::string_view() : input.substr(split + kMarker.size());
    const auto vocabPath = fuzz::writeScratch("vocab.json", vocab);
    const auto mergesPath = fuzz::writeScratch("merges.txt", merges);
    const auto tokenizer = loadGpt2VocabMerges(vocabPath, mergesPath);
    fuzz::checkResult(tokenizer);
    if (tokenizer.ok())
        fuzz::exerciseTokenizer(*tokenizer.value());
    return 0;
}
