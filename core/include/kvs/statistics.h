// SPDX-License-Identifier: MIT
// Summaries of a figure measured over several prompts or seeds: the mean and a Student-t
// confidence interval, so a cited number carries its spread (issue #15).
#pragma once

#include <span>

namespace kvs {

// Student's t distribution with `nu` > 0 degrees of freedom: P(T ≤ t).
double studentTCdf(double t, double nu);
// The p-quantile (0 < p < 1) of Student's t with `nu` > 0 degrees of freedom.
double studentTQuantile(double p, double nu);

struct MeanInterval {
    int n = 0;
    double mean = 0;
    double sd = 0;        // sample standard deviation (n − 1 in the denominator); 0 when n < 2
    double halfWidth = 0; // t_{(1+level)/2, n−1} · sd / √n; infinite when n < 2
    double level = 0.95;
    double lower() const { return mean - halfWidth; }
    double upper() const { return mean + halfWidth; }
};

// The mean of `values` with a two-sided `level` t-interval over them (the values taken as
// independent draws: prompts of a prompt set, seeds of a random scheme). Throws InvalidArgument
// for no values, a non-finite value or a level outside (0, 1).
MeanInterval meanInterval(std::span<const double> values, double level = 0.95);

} // namespace kvs
