// SPDX-License-Identifier: MIT
// Forward pass of a GPT-2-small-shaped random model on 512 tokens: tokens/s and GFLOP/s next to
// this machine's own Eigen matrix-multiply peak, measured in the same run.
#include "kvs/model.h"
#include "kvs/synthetic_model.h"

#include <benchmark/benchmark.h>
#include <cstdio>
#include <filesystem>

namespace {

constexpr int kTokens = 512;

// FLOPs of one forward pass (multiply-adds counted as 2): projections, MLP, attention, output head.
double forwardFlops(const kvs::ModelConfig& c, int n) {
    const double D = c.width, F = c.intermediate, d = c.headDim, H = c.heads, Hkv = c.kvHeads,
                 V = c.vocab;
    const double proj = 2.0 * n * D * (H * d + 2 * Hkv * d + H * d);
    const double mlp = 2.0 * n * D * F * (c.mlp == kvs::MlpKind::SwiGlu ? 3 : 2);
    const double attn = 2.0 * 2.0 * H * d * n * n; // scores + weighted values, full square
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

void BM_EigenMatmulPeak(benchmark::State& state) {
    const int n = 1024;
    const kvs::Matrix a = kvs::Matrix::Random(n, n), b = kvs::Matrix::Random(n, n);
    kvs::Matrix c(n, n);
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
}
BENCHMARK(BM_EigenMatmulPeak)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

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

} // namespace

BENCHMARK_MAIN();
