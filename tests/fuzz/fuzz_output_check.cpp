// SPDX-License-Identifier: MIT
// libFuzzer target: the output writer's ownership check, which reads whatever file is at an output
// path (a safetensors header's __metadata__, a JSON object's mark, an export's JSON sidecar). The
// first byte picks what the rest is: even, the file at the path; odd, the sidecar of an export
// ("figure.png.json") beside a fixed figure.png.
#include "fuzz_util.h"

#include "kvs/output_writer.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    kvs::fuzz::writeScratch("figure.png", "\x89PNG\r\n\x1a\nnot really a picture");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    if (size == 0)
        return 0;
    const std::string_view rest = fuzz::asText(data + 1, size - 1);
    if ((data[0] & 1) == 0) {
        const auto path = fuzz::writeScratch("output", rest);
        for (const char* kind : {"capture", "session", "train-checkpoint", "model"})
            (void)checkOutput(path, kind);
    } else {
        fuzz::writeScratch("figure.png.json", rest);
        (void)checkOutput(fuzz::scratchDir() / "figure.png", "export");
    }
    return 0;
}
