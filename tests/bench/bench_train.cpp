// SPDX-License-Identifier: MIT
// Training throughput of the bundled model's recipe (6 layers, width 192, batch 16 × 256): tokens/s
// and achieved GFLOP/s next to this machine's own Eigen matrix-multiply peak, measured in the same
// run. Also one step of the Q-K=V and MQA variants.
#include "kvs/train.h"

#include <benchmark/benchmark.h>
#include <random>

namespace {

constexpr int kBatch = 16;

// FLOPs of one training step (multiply-adds counted as 2; backward = 2 × forward): projections as
// the sharing variant has them, SwiGLU MLP, attention over the full T × T square (as computed),
// the tied output head.
double stepFlops(const kvs::ModelConfig& c, int batch) {
    const double T = c.maxPositions, N = batch * T, D = c.width, F = c.intermediate, d = c.headDim,
                 H = c.heads, Hkv = c.kvHeads, V = c.vocab;
    const bool ownQ =
        c.sharing == kvs::ProjectionSharing::Qkv || c.sharing == kvs::ProjectionSharing::KEqV;
    const bool ownV =
        c.sharing == kvs::ProjectionSharing::Qkv || c.sharing == kvs::ProjectionSharing::QEqK;
    const double proj = 2.0 * N * D * ((ownQ ? H * d : 0) + Hkv * d + (ownV ? Hkv * d : 0) + H * d);
    const double mlp = 2.0 * N * D * F * (c.mlp == kvs::MlpKind::SwiGlu ? 3 : 2);
    const double attn = 2.0 * 2.0 * batch * H * d * T * T;
    return 3.0 * (c.layers * (proj + mlp + attn) + 2.0 * N * D * V);
}

void BM_EigenMatmulPeak(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
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
BENCHMARK(BM_EigenMatmulPeak)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

// The trainer's own product shape: (B·T × D) · (D × F).
void BM_EigenMatmulTrainShape(benchmark::State& state) {
    const kvs::Matrix a = kvs::Matrix::Random(kBatch * 256, 192), b = kvs::Matrix::Random(192, 512);
    kvs::Matrix c(kBatch * 256, 512);
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kBatch * 256 * 192 * 512,
                                                   benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}
BENCHMARK(BM_EigenMatmulTrainShape)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

void trainStep(benchmark::State& state, kvs::ProjectionSharing sharing, int kvHeads) {
    kvs::ModelConfig c = kvs::defaultTrainConfig(63);
    c.sharing = sharing;
    c.kvHeads = kvHeads;
    kvs::Transformer model(c);
    model.initialize(1);
    const int T = c.maxPositions;
    std::mt19937 rng(1);
    std::vector<kvs::TokenId> in(static_cast<std::size_t>(kBatch) * T), out(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        in[i] = static_cast<kvs::TokenId>(rng() % 63);
        out[i] = static_cast<kvs::TokenId>(rng() % 63);
    }
    kvs::TrainOptions o;
    kvs::AdamState adam;
    std::vector<float> grad;
    for (auto _ : state) {
        const float loss = model.loss(in, out, kBatch, &grad);
        kvs::adamwStep(model.parameters(), grad, adam, model.layout(), o, 1e-3);
        benchmark::DoNotOptimize(loss);
    }
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(in.size()),
                                                    benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(stepFlops(c, kBatch), benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
}

void BM_TrainStepQkv(benchmark::State& state) {
    trainStep(state, kvs::ProjectionSharing::Qkv, 6);
}
void BM_TrainStepKEqV(benchmark::State& state) {
    trainStep(state, kvs::ProjectionSharing::KEqV, 6);
}
void BM_TrainStepMqa(benchmark::State& state) {
    trainStep(state, kvs::ProjectionSharing::Qkv, 1);
}
BENCHMARK(BM_TrainStepQkv)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_TrainStepKEqV)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_TrainStepMqa)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

} // namespace

BENCHMARK_MAIN();
