// SPDX-License-Identifier: MIT
#include "kvs/sweep.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kvs {

Result<Sweep> runSweep(const Capture& capture, const Model* model, const SchemeSetting& base,
                       const std::string& parameter, const std::vector<double>& values,
                       AttentionBackend& backend, const EvalOptions& options) {
    return catchErrors([&] {
        const Scheme* scheme = findScheme(base.id);
        if (!scheme)
            throw Error(ErrorCode::InvalidArgument, "unknown scheme '" + base.id + "'");
        const ParamSpec* spec = scheme->info().findParam(parameter);
        if (!spec)
            throw Error(ErrorCode::InvalidArgument,
                        base.id + " has no parameter '" + parameter + "' to sweep");
        // A budget parameter with higher priority set in the base would make every point equal.
        const auto baseValue = [&](const char* k) {
            const auto it = base.params.find(k);
            return it == base.params.end() ? 0.0 : it->second;
        };
        if ((parameter == "keep" && (baseValue("tokens") > 0 || baseValue("bytes") > 0)) ||
            (parameter == "tokens" && baseValue("bytes") > 0))
            throw Error(ErrorCode::InvalidArgument,
                        "sweeping '" + parameter + "' of " + base.toString() +
                            " changes nothing: a tokens or bytes budget in the setting wins");
        Sweep sweep;
        sweep.scheme = base.toString();
        sweep.parameter = parameter;
        const ExactReference reference =
            computeExactReference(capture, model, backend, options).valueOrThrow();
        for (const double v : values) {
            if (v < spec->minimum || v > spec->maximum)
                throw Error(ErrorCode::InvalidArgument, parameter + " = " + std::to_string(v) +
                                                            " is outside the range of " + base.id);
            SchemeSetting s = base;
            s.params[parameter] = spec->integer ? std::round(v) : v;
            if (spec->integer && s.params[parameter] == 0 && spec->minimum == 0)
                throw Error(ErrorCode::InvalidArgument,
                            parameter + " = " + std::to_string(v) +
                                " rounds to 0, which means 'not set' for " + base.id +
                                ": give values of at least 1");
            SweepPoint p;
            p.value = s.params[parameter];
            auto r = evaluate(capture, model, s, backend, options, &reference);
            if (!r.ok() && r.error().code() == ErrorCode::InvalidArgument) {
                sweep.skipped.emplace_back(p.value, r.message());
                continue;
            }
            p.result = std::move(r).valueOrThrow();
            double kept = 0;
            for (const auto& h : p.result.heads)
                kept += h.keptTokens;
            p.meanKeptTokens =
                kept / static_cast<double>(std::max<std::size_t>(1, p.result.heads.size()));
            sweep.points.push_back(std::move(p));
        }
        return sweep;
    });
}

Result<std::vector<HeadSizeCheck>> coresetSizeCheck(const Capture& capture,
                                                    const SchemeSetting& scheme, double epsilon,
                                                    AttentionBackend& backend,
                                                    const EvalOptions& options, int gridPoints) {
    return catchErrors([&] {
        if (!(epsilon > 0))
            throw Error(ErrorCode::InvalidArgument,
                        "epsilon must be positive, got " + std::to_string(epsilon));
        EvalOptions o = options;
        o.modelQuality = false;
        o.attentionMaps = false;
        const ExactReference reference =
            computeExactReference(capture, nullptr, backend, o).valueOrThrow();
        const int n = reference.contextTokens;
        const auto grid = geometricValues(1, n, gridPoints, true);
        std::vector<HeadSizeCheck> out;
        for (const double m : grid) {
            SchemeSetting s = scheme;
            s.params.erase("keep");
            s.params.erase("bytes");
            s.params["tokens"] = m;
            const EvalResult r =
                evaluate(capture, nullptr, s, backend, o, &reference).valueOrThrow();
            if (out.empty())
                for (const auto& h : r.heads) {
                    HeadSizeCheck c;
                    c.layer = h.layer;
                    c.kvHead = h.kvHead;
                    c.rhoEff = h.rhoEff;
                    c.contextTokens = n;
                    c.boundTokens = coresetBoundTokens(capture.config.headDim, h.rhoEff, epsilon);
                    out.push_back(c);
                }
            for (std::size_t i = 0; i < r.heads.size(); ++i)
                if (out[i].neededTokens < 0 && r.heads[i].valueScaledError <= epsilon)
                    out[i].neededTokens = r.heads[i].keptTokens;
        }
        return out;
    });
}

std::vector<double> geometricValues(double lo, double hi, int count, bool integer) {
    std::vector<double> v;
    if (count <= 0 || lo <= 0 || hi < lo)
        return v;
    for (int i = 0; i < count; ++i) {
        const double t = count == 1 ? 0.0 : static_cast<double>(i) / (count - 1);
        double x = lo * std::pow(hi / lo, t);
        if (integer)
            x = std::round(x);
        if (v.empty() || x != v.back())
            v.push_back(x);
    }
    return v;
}

SlopeFit fitLogLog(const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> lx, ly;
    for (std::size_t i = 0; i < std::min(x.size(), y.size()); ++i)
        if (x[i] > 0 && y[i] > 0 && std::isfinite(x[i]) && std::isfinite(y[i])) {
            lx.push_back(std::log(x[i]));
            ly.push_back(std::log(y[i]));
        }
    SlopeFit f;
    f.points = static_cast<int>(lx.size());
    if (f.points < 2)
        return f;
    const double n = static_cast<double>(lx.size());
    const double mx = std::accumulate(lx.begin(), lx.end(), 0.0) / n;
    const double my = std::accumulate(ly.begin(), ly.end(), 0.0) / n;
    double sxx = 0, sxy = 0, syy = 0;
    for (std::size_t i = 0; i < lx.size(); ++i) {
        sxx += (lx[i] - mx) * (lx[i] - mx);
        sxy += (lx[i] - mx) * (ly[i] - my);
        syy += (ly[i] - my) * (ly[i] - my);
    }
    if (sxx == 0)
        return f;
    f.slope = sxy / sxx;
    f.intercept = my - f.slope * mx;
    f.r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1.0;
    return f;
}

std::vector<std::size_t> paretoFront(const std::vector<double>& cost,
                                     const std::vector<double>& error) {
    std::vector<std::size_t> order(std::min(cost.size(), error.size()));
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return cost[a] < cost[b] || (cost[a] == cost[b] && error[a] < error[b]);
    });
    std::vector<std::size_t> front;
    double best = std::numeric_limits<double>::infinity();
    for (const std::size_t i : order)
        if (error[i] < best) {
            front.push_back(i);
            best = error[i];
        }
    return front;
}

} // namespace kvs
