// SPDX-License-Identifier: MIT
// libFuzzer target: a capture file (safetensors with the capture's metadata: config, tokens,
// token texts, prompt; per layer and KV head keys, values, queries, outputs; logits).
#include "fuzz_util.h"

#include "kvs/capture.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto path = fuzz::writeScratch("capture.safetensors", fuzz::asText(data, size));
    const auto capture = loadCapture(path);
    fuzz::checkResult(capture);
    if (capture.ok()) {
        const Capture& c = capture.value();
        // What the evaluator relies on: one text per token, ids in the vocabulary, every head's
        // query group present.
        if (c.tokenTexts.size() != c.tokens.size() ||
            c.layers.size() != static_cast<std::size_t>(c.config.layers))
            __builtin_trap();
        for (const TokenId id : c.tokens)
            if (id < 0 || id >= c.config.vocab)
                __builtin_trap(); // the evaluator indexes logits and embeddings with it
        for (const LayerCapture& layer : c.layers)
            for (const KvHeadCapture& head : layer.kvHeads)
                if (head.queries.size() != static_cast<std::size_t>(c.config.groupSize()) ||
                    head.keys.rows() != c.tokenCount() || head.values.rows() != c.tokenCount())
                    __builtin_trap();
    }
    return 0;
}
