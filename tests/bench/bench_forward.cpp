// SPDX-License-Identifier: MIT
// Forward pass of a GPT-2-small-shaped random model on 512 tokens: tokens/s and GFLOP/s next to
// this machine's own Eigen matrix-multiply peak on one core and on every core, measured in the same
// run, with the load average at the start (the machine is shared). Also a whole capture at 1,000
// tokens (forward + copies + the capture file), the `kvstudio-cli capture` row of issue #14.
#include "kvs/capture.h"
#include "kvs/model.h"
#include "kvs/synthetic_model.h"

#include <Eigen/Core>
#include <benchmark/benchmark.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace {

constexpr int kTokens = 512;

// FLOPs of one forward pass (multiply-adds counted as 2): projections, MLP, attention, output head
// (every position's logits, as Model::forward returns them).
double forwardFlops(const kvs::ModelConfig& c, int n) {
    const double D = c.width, F = c.intermediate, d = c.headDim, H = c.heads, Hkv = c.kvHeads,
                 V = c.vocab;
    const double proj = 2.0 * n * D * (H * d + 2 * Hkv * d + H * d);
    const double mlp = 2.0 * n * D * F * (c.mlp == kvs::MlpKind::SwiGlu ? 3 : 2);
    // Scores and weighted values over the causal triangle (what a causal pass must compute).
    const double attn = 2.0 * 2.0 * H * d * n * (n + 1) / 2.0;
    return c.layers * (proj + mlp + attn) + 2.0 * n * D * V;
}

const kvs::Model& gpt2Small() {
    static const kvs::Model model = [] {
        const auto folder = std::filesystem::temp_directory_path() / "kvs-bench-gpt2-small";
        if (!std::filesystem::exists(folder / "config.json"))
            kvs::writeSyntheticModel(kvs::syntheticPreset("gpt2-small"), folder).valueOrThrow();
        return kvs::Model::load(folder).valueOrThrow();
    }();
    return model;
}

// Argument: threads for Eigen's product (0 = every core, as the forward pass runs).
void BM_EigenMatmulPeak(benchmark::State& state) {
    const int n = 1024;
    const kvs::Matrix a = kvs::Matrix::Random(n, n), b = kvs::Matrix::Random(n, n);
    kvs::Matrix c(n, n);
    const int before = Eigen::nbThreads();
    Eigen::setNbThreads(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["threads"] = Eigen::nbThreads();
    Eigen::setNbThreads(before);
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
}
BENCHMARK(BM_EigenMatmulPeak)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

void BM_ForwardGpt2Small512(benchmark::State& state) {
    const auto& model = gpt2Small();
    std::vector<kvs::TokenId> tokens(kTokens);
    for (int i = 0; i < kTokens; ++i)
        tokens[static_cast<std::size_t>(i)] = (i * 7919) % model.config().vocab;
    model.forward(tokens); // converts and caches the weights outside the timed loop
    for (auto _ : state) {
        auto logits = model.forward(tokens);
        benchmark::DoNotOptimize(logits.data());
    }
    state.counters["tokens/s"] =
        benchmark::Counter(kTokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(forwardFlops(model.config(), kTokens),
                                                   benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ForwardGpt2Small512)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);

// What `kvstudio-cli capture` does after loading: capture 1,000 tokens (no logits, the default)
// and write the capture file.
void BM_CaptureGpt2Small1000(benchmark::State& state) {
    const auto& model = gpt2Small();
    std::vector<kvs::TokenId> tokens(1000);
    for (std::size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = static_cast<kvs::TokenId>((i * 7919) % 256); // the synthetic byte tokenizer
    const auto out = std::filesystem::temp_directory_path() / "kvs-bench-capture.safetensors";
    model.forward(std::span(tokens).first(16)); // converts the weights outside the timed loop
    for (auto _ : state) {
        auto capture = model.captureTokens(tokens).valueOrThrow();
        kvs::saveCapture(capture, out).valueOrThrow();
    }
    std::filesystem::remove(out);
    state.counters["tokens/s"] =
        benchmark::Counter(1000, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CaptureGpt2Small1000)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);

std::string loadAverage() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen + " on " +
           std::to_string(std::thread::hardware_concurrency()) + " cores";
}

} // namespace

int main(int argc, char** argv) {
    benchmark::AddCustomContext("load average at start", loadAverage());
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
