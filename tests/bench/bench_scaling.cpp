// SPDX-License-Identifier: MIT
// The scaling check of ALGORITHMS.md §1c on a smooth kernel, where the theory applies: one head
// of n Gaussian keys with small norms (so ρ is small), the error of fresh probe queries against
// kept tokens m for m ≤ n/8 only (the asymptotic regime), and the log-log slope per method. It is
// an experiment that prints a table (docs/scaling-check.md), not a timed benchmark:
//
//     build/tests/bench/bench_scaling [--n 8192] [--d 8] [--seeds 3] [--probes 64]
//
// Every kept token is chosen by the method (no sinks or window, fp32 storage), and each row
// varies one knob of discrepancy halving from its defaults: the kernel the walk balances (the
// query-sampled one, kernel=64, or the theory's key kernel, kernel=0) and the block (one walk
// over the whole context, or independent blocks of 2,048). Two errors per point, both with the
// values centred and scaled by their spread (the bound's units): the mean over probe queries of
// ‖o − ô‖, and the theorem's own, the worst probe query's. (‖o − ô‖/‖o‖ would exceed 1 here:
// zero-mean values make ‖o‖ small for every query that attends broadly.)
#include "kvs/attention_backend.h"
#include "kvs/compressed_head.h"
#include "kvs/scheme.h"
#include "kvs/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace kvs;

namespace {

Matrix gaussian(int rows, int cols, std::uint64_t seed, float sd) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, sd);
    Matrix m(rows, cols);
    for (Eigen::Index i = 0; i < m.rows(); ++i)
        for (Eigen::Index j = 0; j < m.cols(); ++j)
            m(i, j) = normal(rng);
    return m;
}

struct Errors {
    double meanScaled = 0; // mean over probes of ‖o − ô‖ / max‖v − v̄‖, averaged over seeds
    double worstScaled = 0; // max over probes of ‖o − ô‖ / max‖v − v̄‖, averaged over seeds
};

} // namespace

int main(int argc, char** argv) {
    int n = 8192, d = 8, seeds = 3, probeCount = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string option = argv[i];
        const int value = std::atoi(argv[i + 1]);
        if (option == "--n")
            n = value;
        else if (option == "--d")
            d = value;
        else if (option == "--seeds")
            seeds = value;
        else if (option == "--probes")
            probeCount = value;
        else {
            std::fprintf(stderr, "bench_scaling: unknown option %s\n", option.c_str());
            return 2;
        }
    }
    if (n < 64 || d < 1 || seeds < 1 || probeCount < 1) {
        std::fprintf(stderr, "bench_scaling: need n >= 64, d, seeds, probes >= 1\n");
        return 2;
    }
    const float sd = 0.5f; // keys and queries N(0, 0.5²): ρ stays small
    HeadInput head;
    head.keys = gaussian(n, d, 21, sd);
    head.values = gaussian(n, d, 22, 1.0f);
    head.queries = {gaussian(n, d, 23, sd)}; // the context's own queries (the sampled kernel's)
    const Matrix probes = gaussian(probeCount, d, 24, sd);
    auto backend = makeCpuBackend();
    const AttendResult exact =
        backend->attend(exactHead(head.keys, head.values), probes, {}).value();
    const Eigen::RowVectorXd valueMean = head.values.cast<double>().colwise().mean();
    const double spread =
        (head.values.cast<double>().rowwise() - valueMean).rowwise().norm().maxCoeff();
    const double rho =
        probes.rowwise().norm().maxCoeff() *
        (head.keys.cast<double>().rowwise() - head.keys.cast<double>().colwise().mean())
            .rowwise()
            .norm()
            .maxCoeff() *
        head.attentionScale();

    const std::string common = ",sinks=0,window=0,precision=32";
    const std::string wholeBlock = ",block=" + std::to_string(n);
    const std::vector<std::pair<std::string, std::string>> methods = {
        {"uniform sampling", "select.uniform:" + common.substr(1)},
        {"halving, sampled kernel, one walk", "coreset.halving:kernel=64" + wholeBlock + common},
        {"halving, key kernel, one walk", "coreset.halving:kernel=0" + wholeBlock + common},
        {"halving, sampled kernel, blocks of 2048 (default)",
         "coreset.halving:kernel=64,block=2048" + common},
    };
    std::vector<int> sizes;
    for (int m = 16; m <= n / 8; m *= 2)
        sizes.push_back(m);

    std::printf("smooth kernel: n = %d keys, d = %d, keys/queries N(0, %.1f^2), values N(0, 1), "
                "%d fresh probe queries, %d seeds; rho_eff = %.2f (centred keys); m <= n/8\n\n",
                n, d, static_cast<double>(sd), probeCount, seeds, rho);
    std::printf("| method | setting |");
    for (int m : sizes)
        std::printf(" m = %d |", m);
    std::printf(" slope, mean probe | slope, worst probe (theorem's) | seconds |\n|---|---|");
    for (std::size_t i = 0; i < sizes.size(); ++i)
        std::printf("---|");
    std::printf("---|---|---|\n");
    for (const auto& [name, base] : methods) {
        const auto start = std::chrono::steady_clock::now();
        std::vector<double> ms, mean, worst;
        std::string cells;
        for (int m : sizes) {
            Errors e;
            for (int seed = 1; seed <= seeds; ++seed) {
                const std::string text =
                    base + ",tokens=" + std::to_string(m) + ",seed=" + std::to_string(seed);
                const auto setting = SchemeSetting::parse(text);
                if (!setting.ok()) {
                    std::fprintf(stderr, "bench_scaling: %s\n", setting.message().c_str());
                    return 1;
                }
                const CompressedHead c =
                    findScheme(setting.value().id)->compress(head, setting.value().resolved());
                const AttendResult r = backend->attend(c, probes, {}).value();
                double sum = 0, worstAbs = 0;
                for (Eigen::Index i = 0; i < probes.rows(); ++i) {
                    const double diff =
                        (r.outputs.row(i).cast<double>() - exact.outputs.row(i).cast<double>())
                            .norm();
                    sum += diff;
                    worstAbs = std::max(worstAbs, diff);
                }
                e.meanScaled += sum / static_cast<double>(probes.rows()) / spread / seeds;
                e.worstScaled += worstAbs / spread / seeds;
            }
            ms.push_back(m);
            mean.push_back(e.meanScaled);
            worst.push_back(e.worstScaled);
            char cell[64];
            std::snprintf(cell, sizeof cell, " %.4f / %.4f |", e.meanScaled, e.worstScaled);
            cells += cell;
        }
        const SlopeFit fm = fitLogLog(ms, mean), fw = fitLogLog(ms, worst);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("| %s | `%s` |%s **%.3f** (R² %.3f) | **%.3f** (R² %.3f) | %.1f |\n",
                    name.c_str(), base.c_str(), cells.c_str(), fm.slope, fm.r2, fw.slope, fw.r2,
                    seconds);
        std::fflush(stdout);
    }
    std::printf("\n(cells: value-scaled error, mean probe / worst probe; theory: "
                "uniform -1/2, discrepancy halving -1 while the kernel is smooth)\n");
    return 0;
}
