// SPDX-License-Identifier: MIT
// libFuzzer target: a model folder's config.json (GPT-2 and Llama families, RoPE scaling, sliding
// windows, projection sharing); an accepted config is summarised and written back.
#include "fuzz_util.h"

#include "kvs/model_config.h"

#include <nlohmann/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto path = fuzz::writeScratch("config.json", fuzz::asText(data, size));
    const auto config = loadModelConfig(path);
    fuzz::checkResult(config);
    if (config.ok()) {
        const ModelConfig& c = config.value();
        (void)c.contextLimit();
        (void)c.kvBytesPerTokenFp16();
        (void)c.parameterCount();
        (void)c.summary();
        (void)c.toJson().dump();
        // What the generator writes from it is read again.
        const auto again = parseModelConfig(toHfConfigJson(c), "round trip");
        fuzz::checkResult(again);
        for (int layer = 0; layer < c.layers && layer < 64; ++layer)
            (void)c.windowApplies(layer);
    }
    return 0;
}
