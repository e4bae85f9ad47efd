// SPDX-License-Identifier: MIT
// Student-t intervals (kvs/statistics.h). The t distribution function goes through the
// regularized incomplete beta function, evaluated by its continued fraction (modified Lentz);
// the quantile inverts it by bisection, which is plenty for the few intervals a report prints.
#include "kvs/statistics.h"

#include "kvs/status.h"

#include <cmath>
#include <limits>
#include <string>

namespace kvs {

namespace {

// The continued fraction of I_x(a, b), converging for x < (a + 1) / (a + b + 2).
double betaContinuedFraction(double a, double b, double x) {
    constexpr double tiny = 1e-300;
    constexpr double eps = 1e-15;
    double c = 1.0;
    double d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / (std::abs(d) < tiny ? tiny : d);
    double f = d;
    for (int m = 1; m <= 10000; ++m) {
        const double m2 = 2.0 * m;
        // Even step.
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        d = 1.0 / (std::abs(d) < tiny ? tiny : d);
        c = 1.0 + num / c;
        c = std::abs(c) < tiny ? tiny : c;
        f *= c * d;
        // Odd step.
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        d = 1.0 / (std::abs(d) < tiny ? tiny : d);
        c = 1.0 + num / c;
        c = std::abs(c) < tiny ? tiny : c;
        const double delta = c * d;
        f *= delta;
        if (std::abs(delta - 1.0) < eps)
            break;
    }
    return f;
}

// The regularized incomplete beta function I_x(a, b), 0 ≤ x ≤ 1.
double incompleteBeta(double a, double b, double x) {
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                  a * std::log(x) + b * std::log1p(-x));
    if (x < (a + 1.0) / (a + b + 2.0))
        return front * betaContinuedFraction(a, b, x) / a;
    return 1.0 - front * betaContinuedFraction(b, a, 1.0 - x) / b;
}

} // namespace

double studentTCdf(double t, double nu) {
    if (!(nu > 0) || std::isnan(t))
        throw Error(ErrorCode::InvalidArgument,
                    "Student's t: degrees of freedom must be positive, got " + std::to_string(nu));
    if (std::isinf(t))
        return t > 0 ? 1.0 : 0.0;
    const double tail = 0.5 * incompleteBeta(0.5 * nu, 0.5, nu / (nu + t * t)); // P(T > |t|)
    return t > 0 ? 1.0 - tail : tail;
}

double studentTQuantile(double p, double nu) {
    if (!(p > 0 && p < 1))
        throw Error(ErrorCode::InvalidArgument,
                    "Student's t quantile: p must lie in (0, 1), got " + std::to_string(p));
    if (p < 0.5)
        return -studentTQuantile(1.0 - p, nu);
    double lo = 0.0, hi = 1.0;
    while (studentTCdf(hi, nu) < p)
        hi *= 2.0; // one degree of freedom at p = 0.9999 needs about 3,183
    for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; ++i) {
        const double mid = 0.5 * (lo + hi);
        (studentTCdf(mid, nu) < p ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

MeanInterval meanInterval(std::span<const double> values, double level) {
    if (values.empty())
        throw Error(ErrorCode::InvalidArgument, "an interval needs at least one value");
    if (!(level > 0 && level < 1))
        throw Error(ErrorCode::InvalidArgument,
                    "the interval's level must lie in (0, 1), got " + std::to_string(level));
    MeanInterval r;
    r.n = static_cast<int>(values.size());
    r.level = level;
    double sum = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (!std::isfinite(values[i]))
            throw Error(ErrorCode::NotFinite, "value " + std::to_string(i) +
                                                  " of an interval is not finite (" +
                                                  std::to_string(values[i]) + ")");
        sum += values[i];
    }
    r.mean = sum / r.n;
    if (r.n < 2) {
        r.halfWidth = std::numeric_limits<double>::infinity();
        return r;
    }
    double squares = 0;
    for (double v : values)
        squares += (v - r.mean) * (v - r.mean);
    r.sd = std::sqrt(squares / (r.n - 1));
    r.halfWidth = studentTQuantile(0.5 * (1.0 + level), r.n - 1) * r.sd / std::sqrt(double(r.n));
    return r;
}

} // namespace kvs
