// SPDX-License-Identifier: MIT
// libFuzzer target: a .safetensors file (header length, JSON header, data buffer), opened as a
// file and as a one-file checkpoint; every accepted tensor's bytes are read and converted.
#include "fuzz_util.h"

#include "kvs/dtype.h"
#include "kvs/safetensors.h"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto path = fuzz::writeScratch("model.safetensors", fuzz::asText(data, size));
    const auto file = SafetensorsFile::open(path);
    fuzz::checkResult(file);
    if (file.ok()) {
        std::vector<float> converted;
        for (const auto& name : file.value().names()) {
            const TensorInfo& info = file.value().info(name);
            const auto bytes = file.value().bytes(name);
            if (bytes.size() != info.nbytes())
                __builtin_trap();
            // Small floating tensors are converted as the loader does (reads every byte).
            const std::size_t count = bytes.size() / dtypeSize(info.dtype);
            if (isFloating(info.dtype) && count <= (1u << 16)) {
                converted.resize(count);
                try {
                    convertToFloat(info.dtype, bytes.data(), count, converted.data());
                } catch (const Error&) {
                    // FP8 is refused by name (the loader reports it per tensor)
                }
            }
        }
    }
    const auto checkpoint = Checkpoint::open(path);
    fuzz::checkResult(checkpoint);
    if (checkpoint.ok()) {
        (void)checkpoint.value().totalBytes();
        (void)checkpoint.value().describe();
    }
    return 0;
}
