// SPDX-License-Identifier: MIT
// What a slider drag costs in the studio: compressing and evaluating every layer and head of the
// bundled model at one setting, end to end, on the CPU reference and on the Vulkan backend. The
// exact reference is computed once per prompt (as the studio does); "per-head" is the per-head
// metrics a drag refreshes, "with quality" adds the teacher-forced probe decode.
//
//   KVS_BENCH_MODEL=DIR   the model (default: assets/models/default of the source tree, else a
//                         generated studio-demo model)
#include "kvs/evaluator.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/model.h"
#include "kvs/synthetic_model.h"

#include <benchmark/benchmark.h>
#include <cstdlib>
#include <filesystem>
#include <map>

namespace {

namespace fs = std::filesystem;

constexpr const char* kPrompt =
    "In the beginning God created the heaven and the earth. And the earth was without form, and "
    "void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face "
    "of the waters. And God said, Let there be light: and there was light. And God saw the light";

struct Fixture {
    std::optional<kvs::Model> model;
    std::optional<kvs::Capture> capture;
    std::map<std::string, std::unique_ptr<kvs::AttentionBackend>> backends;
    std::map<std::string, kvs::ExactReference> references;
};

fs::path modelFolder() {
    if (const char* env = std::getenv("KVS_BENCH_MODEL"))
        return env;
    const fs::path bundled = fs::path(KVS_SOURCE_DIR) / "assets/models/default";
    if (fs::exists(bundled / "config.json"))
        return bundled;
    const fs::path generated = fs::temp_directory_path() / "kvs-bench-studio-demo";
    if (!fs::exists(generated / "config.json"))
        kvs::writeSyntheticModel(kvs::syntheticPreset("studio-demo"), generated).valueOrThrow();
    return generated;
}

Fixture& fixture() {
    static Fixture f = [] {
        Fixture x;
        x.model.emplace(kvs::Model::load(modelFolder()).valueOrThrow());
        std::string prompt = kPrompt;
        prompt.resize(std::min<std::size_t>(
            prompt.size(), static_cast<std::size_t>(x.model->config().contextLimit())));
        x.capture.emplace(x.model->capture(prompt).valueOrThrow());
        x.backends["cpu"] = kvs::makeCpuBackend();
        auto choice = kvs::gpu::makeAttentionBackend("vulkan");
        if (choice.vulkan)
            x.backends["vulkan"] = std::move(choice.backend);
        std::printf("model %s: %s\nprompt %d tokens; vulkan: %s\n", x.model->name().c_str(),
                    x.model->config().summary().c_str(), x.capture->tokenCount(),
                    choice.description.c_str());
        return x;
    }();
    return f;
}

void BM_Evaluate(benchmark::State& state, const std::string& backendName, const std::string& scheme,
                 bool quality) {
    Fixture& f = fixture();
    const auto it = f.backends.find(backendName);
    if (it == f.backends.end()) {
        state.SkipWithError("backend not available");
        return;
    }
    kvs::EvalOptions o;
    o.contextTokens = f.capture->tokenCount() * 3 / 4;
    o.modelQuality = quality;
    const std::string key = backendName + (quality ? "+q" : "");
    if (!f.references.count(key))
        f.references[key] =
            kvs::computeExactReference(*f.capture, &*f.model, *it->second, o).valueOrThrow();
    const auto setting = kvs::SchemeSetting::parse(scheme).valueOrThrow();
    double compressMs = 0, attendMs = 0;
    for (auto _ : state) {
        const auto r =
            kvs::evaluate(*f.capture, &*f.model, setting, *it->second, o, &f.references[key])
                .valueOrThrow();
        compressMs += r.compressMilliseconds;
        attendMs += r.attendMilliseconds;
        benchmark::DoNotOptimize(r.contextError);
    }
    state.counters["compress_ms"] = compressMs / static_cast<double>(state.iterations());
    state.counters["attend_ms"] = attendMs / static_cast<double>(state.iterations());
    state.counters["heads"] = f.model->config().layers * f.model->config().kvHeads;
}

void registerAll() {
    for (const char* backend : {"cpu", "vulkan"})
        for (const char* scheme : {"identity", "select.sinks_window:keep=0.25",
                                   "select.snapkv:keep=0.25", "coreset.halving:keep=0.25"})
            for (const bool quality : {false, true})
                benchmark::RegisterBenchmark(
                    (std::string("evaluate/") + backend + "/" + scheme +
                     (quality ? "/with-quality" : "/per-head"))
                        .c_str(),
                    [=](benchmark::State& s) { BM_Evaluate(s, backend, scheme, quality); })
                    ->Unit(benchmark::kMillisecond)
                    ->MinTime(0.5);
}

} // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    registerAll();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
