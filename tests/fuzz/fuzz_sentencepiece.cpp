// SPDX-License-Identifier: MIT
// libFuzzer target: a SentencePiece tokenizer.model (a serialized protobuf; BPE and unigram).
// The protobuf itself is parsed by Debian's libsentencepiece, which is not instrumented: this
// covers what our loader does with what the library accepts.
#include "tokenizer_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto path = fuzz::writeScratch("tokenizer.model", fuzz::asText(data, size));
    const auto tokenizer = loadSentencePiece(path);
    fuzz::checkResult(tokenizer);
    if (tokenizer.ok())
        fuzz::exerciseTokenizer(*tokenizer.value());
    return 0;
}
