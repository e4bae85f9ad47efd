// SPDX-License-Identifier: MIT
#include "kvs/sweep.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>

namespace kvs {

namespace {

std::string formatValue(double v) {
    if (std::isnan(v))
        return "nan";
    std::ostringstream os;
    os << v;
    return os.str();
}

} // namespace

Result<bool> checkSweep(const SchemeSetting& base, const std::string& parameter,
                        const std::vector<double>& values) {
    return catchErrors([&] {
        const Scheme* scheme = findScheme(base.id);
        if (!scheme)
            throw Error(ErrorCode::InvalidArgument, "unknown scheme '" + base.id + "'");
        const ParamSpec* spec = scheme->info().findParam(parameter);
        if (!spec) {
            std::string keys;
            for (const auto& p : scheme->info().params)
                keys += (keys.empty() ? "" : ", ") + p.key;
            throw Error(ErrorCode::InvalidArgument, base.id + " has no parameter '" + parameter +
                                                        "' to sweep (it has: " + keys + ")");
        }
        // A budget parameter with higher priority set in the base would make every point equal.
        // In a chain the keys carry their stage's prefix ("select.h2o.keep").
        const std::string stage = parameter.substr(0, parameter.size() - bareKey(parameter).size());
        const auto baseValue = [&](const char* k) {
            const auto it = base.params.find(stage + k);
            return it == base.params.end() ? 0.0 : it->second;
        };
        const std::string bare = bareKey(parameter);
        if ((bare == "keep" && (baseValue("tokens") > 0 || baseValue("bytes") > 0)) ||
            (bare == "tokens" && baseValue("bytes") > 0))
            throw Error(ErrorCode::InvalidArgument,
                        "sweeping '" + parameter + "' of " + base.toString() +
                            " changes nothing: a tokens or bytes budget in the setting wins");
        if (values.empty())
            throw Error(ErrorCode::InvalidArgument,
                        "no values of " + parameter + " to sweep for " + base.id);
        const std::string range =
            "[" + formatValue(spec->minimum) + ", " + formatValue(spec->maximum) + "]";
        for (const double v : values) {
            // NaN fails every comparison: checked on its own, it would pass a range check.
            if (!std::isfinite(v) || v < spec->minimum || v > spec->maximum)
                throw Error(ErrorCode::InvalidArgument, base.id + ": " + parameter + " = " +
                                                            formatValue(v) +
                                                            " is outside its range " + range);
            if (!spec->choices.empty() &&
                std::find(spec->choices.begin(), spec->choices.end(), v) == spec->choices.end()) {
                std::string allowed;
                for (const double c : spec->choices)
                    allowed += (allowed.empty() ? "" : ", ") + formatValue(c);
                throw Error(ErrorCode::InvalidArgument,
                            base.id + ": " + parameter + " = " + formatValue(v) +
                                " is not supported (one of " + allowed + ")");
            }
            if (spec->integer && std::round(v) == 0 && spec->minimum == 0)
                throw Error(ErrorCode::InvalidArgument,
                            parameter + " = " + formatValue(v) +
                                " rounds to 0, which means 'not set' for " + base.id +
                                ": give values of at least 1");
        }
        return true;
    });
}

Result<Sweep> runSweep(const Capture& capture, const Model* model, const SchemeSetting& base,
                       const std::string& parameter, const std::vector<double>& values,
                       AttentionBackend& backend, const EvalOptions& options,
                       const ExactReference* reference) {
    return catchErrors([&] {
        checkSweep(base, parameter, values).valueOrThrow(); // before the exact reference
        const ParamSpec* spec = findScheme(base.id)->info().findParam(parameter);
        Sweep sweep;
        sweep.scheme = base.toString();
        sweep.parameter = parameter;
        std::optional<ExactReference> computed;
        if (!reference) {
            computed = computeExactReference(capture, model, backend, options).valueOrThrow();
            reference = &*computed;
        }
        for (const double v : values) {
            SchemeSetting s = base;
            s.params[parameter] = spec->integer ? std::round(v) : v;
            SweepPoint p;
            p.value = s.params[parameter];
            auto r = evaluate(capture, model, s, backend, options, reference);
            if (!r.ok() && r.error().code() == ErrorCode::InvalidArgument) {
                sweep.skipped.emplace_back(p.value, r.message());
                continue;
            }
            p.result = std::move(r).valueOrThrow();
            p.meanKeptTokens = meanKeptTokens(p.result);
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

std::optional<SweepPlan> sweepPlan(const SchemeSetting& setting, int contextTokens, int points,
                                   int kvHeads) {
    const Scheme* scheme = findScheme(setting.id);
    if (!scheme)
        return std::nullopt;
    const SchemeInfo& info = scheme->info();
    const ParamSpec* spec = info.findParam(info.budgetParam);
    for (std::size_t i = 0; !spec && i < info.params.size(); ++i)
        if (info.params[i].key != "seed")
            spec = &info.params[i];
    if (!spec)
        return std::nullopt;
    SweepPlan plan;
    plan.parameter = spec->key;
    if (!spec->choices.empty()) {
        plan.values = spec->choices; // every supported value (bit widths)
    } else if (spec->dividesKvHeads && kvHeads > 0) {
        for (int k = 1; k <= kvHeads; ++k)
            if (kvHeads % k == 0)
                plan.values.push_back(k);
    } else if (bareKey(spec->key) == "keep") {
        // From about two tokens to the whole context.
        const double lo = std::clamp(2.0 / std::max(1, contextTokens), spec->minimum, 0.5);
        plan.values = geometricValues(lo, 1.0, points, false);
    } else if (spec->logScale && spec->minimum > 0) {
        plan.values = geometricValues(spec->minimum, spec->maximum, points, spec->integer);
    } else {
        for (int i = 0; i < points; ++i) {
            const double v = spec->minimum + (spec->maximum - spec->minimum) * i / (points - 1);
            plan.values.push_back(spec->integer ? std::round(v) : v);
        }
        plan.values.erase(std::unique(plan.values.begin(), plan.values.end()), plan.values.end());
    }
    return plan;
}

SchemeSetting sweepBase(SchemeSetting setting, const std::string& parameter) {
    setting.params.erase(parameter);
    if (const Scheme* scheme = findScheme(setting.id))
        if (const ParamSpec* spec = scheme->info().findParam(parameter))
            for (const std::string& other : spec->overriddenBy)
                setting.params.erase(other);
    return setting;
}

double median(std::vector<double> values) {
    if (values.empty())
        return std::numeric_limits<double>::quiet_NaN();
    const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
    std::nth_element(values.begin(), mid, values.end());
    return *mid;
}

double meanKeptTokens(const EvalResult& result) {
    double tokens = 0;
    for (const HeadMetrics& h : result.heads)
        tokens += h.keptTokens;
    return tokens / static_cast<double>(std::max<std::size_t>(1, result.heads.size()));
}

SlopeFit sweepSlope(const Sweep& sweep, int contextTokens, Metric metric) {
    std::map<double, std::vector<double>> byKept;
    for (const SweepPoint& p : sweep.points)
        if (p.meanKeptTokens < contextTokens && p.result.degenerateHeads == 0)
            byKept[p.meanKeptTokens].push_back(metricValue(p.result, metric));
    std::vector<double> kept;
    std::vector<double> error;
    for (auto& [tokens, values] : byKept) {
        kept.push_back(tokens);
        error.push_back(median(std::move(values)));
    }
    return fitLogLog(kept, error);
}

TheoryOverlay theoryOverlay(const Sweep& sweep, const ScalingTheory& theory, int contextTokens) {
    TheoryOverlay overlay;
    std::vector<const SweepPoint*> compressed; // in increasing bytes
    for (const SweepPoint& p : sweep.points)
        if (p.meanKeptTokens < contextTokens && p.result.contextError > 0 &&
            p.result.bytes.total() > 0)
            compressed.push_back(&p);
    if (compressed.empty())
        return overlay;
    const SweepPoint& anchor = *compressed.back();
    std::vector<double> rho;
    std::vector<double> bound;
    for (const HeadMetrics& h : anchor.result.heads) {
        rho.push_back(h.rhoEff);
        bound.push_back(h.boundTokens);
    }
    overlay.boundRho = median(rho);
    overlay.boundTokens = median(bound);
    overlay.boundKeptTokens = anchor.meanKeptTokens;
    overlay.coresetBound = theory.coresetBound;
    if (!std::isfinite(theory.exponent))
        return overlay;
    overlay.slope = theory.exponent;
    overlay.name = theory.name;
    const double xa = static_cast<double>(anchor.result.bytes.total());
    const double ya = anchor.result.contextError;
    const double x0 = static_cast<double>(compressed.front()->result.bytes.total());
    overlay.guideX1 = xa;
    overlay.guideY1 = ya;
    overlay.guideX0 = x0 < xa ? x0 : 0.5 * xa;
    overlay.guideY0 = ya * std::pow(overlay.guideX0 / xa, overlay.slope);
    return overlay;
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
