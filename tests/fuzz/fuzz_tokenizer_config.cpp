// SPDX-License-Identifier: MIT
// libFuzzer target: a model folder's tokenizer_config.json (bos/eos as strings, token objects or
// null), read by loadTokenizer beside a fixed character-level tokenizer.json.
#include "tokenizer_exercise.h"

namespace {

constexpr std::string_view kTokenizerJson = R"({
  "version": "1.0",
  "added_tokens": [{"id": 0, "content": "<s>", "special": true},
                   {"id": 1, "content": "</s>", "special": true}],
  "normalizer": null, "pre_tokenizer": null, "post_processor": null,
  "decoder": {"type": "Fuse"},
  "model": {"type": "BPE", "unk_token": null,
            "vocab": {"<s>": 0, "</s>": 1, " ": 2, "a": 3, "b": 4, "c": 5},
            "merges": []}
})";

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::filesystem::create_directories(kvs::fuzz::scratchDir() / "model");
    kvs::fuzz::writeScratch("model/tokenizer.json", kTokenizerJson);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    fuzz::writeScratch("model/tokenizer_config.json", fuzz::asText(data, size));
    const auto tokenizer = loadTokenizer(fuzz::scratchDir() / "model");
    fuzz::checkResult(tokenizer);
    if (tokenizer.ok()) {
        const auto vocab = static_cast<TokenId>(tokenizer.value()->vocabSize());
        for (const auto id : {tokenizer.value()->bosId(), tokenizer.value()->eosId()})
            if (id && (*id < 0 || *id >= vocab))
                __builtin_trap();
    }
    return 0;
}
