// SPDX-License-Identifier: MIT
// libFuzzer target: a sharded checkpoint's model.safetensors.index.json, in a folder holding two
// small valid shards (model-0000{1,2}-of-00002.safetensors) that the seeds name.
#include "fuzz_util.h"

#include "kvs/safetensors.h"

#include <cstring>

namespace {

// A safetensors file of F32 tensors, each of `floats` zeros.
std::string shard(const std::vector<std::pair<std::string, int>>& tensors) {
    std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
    std::size_t offset = 0;
    for (const auto& [name, floats] : tensors) {
        const std::size_t bytes = static_cast<std::size_t>(floats) * 4;
        header += ",\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(floats) +
                  "],\"data_offsets\":[" + std::to_string(offset) + "," +
                  std::to_string(offset + bytes) + "]}";
        offset += bytes;
    }
    header += "}";
    std::string file(8, '\0');
    std::uint64_t length = header.size();
    for (int i = 0; i < 8; ++i)
        file[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
    return file + header + std::string(offset, '\0');
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    kvs::fuzz::writeScratch("model-00001-of-00002.safetensors",
                            shard({{"wte.weight", 8}, {"h.0.attn.c_attn.weight", 4}}));
    kvs::fuzz::writeScratch("model-00002-of-00002.safetensors",
                            shard({{"h.0.mlp.c_fc.weight", 4}, {"ln_f.weight", 2}}));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto index = fuzz::writeScratch("model.safetensors.index.json", fuzz::asText(data, size));
    const auto checkpoint = Checkpoint::open(index);
    fuzz::checkResult(checkpoint);
    if (checkpoint.ok()) {
        for (const auto& name : checkpoint.value().names())
            (void)checkpoint.value().bytes(name);
        (void)checkpoint.value().totalBytes();
        (void)checkpoint.value().describe();
    }
    return 0;
}
