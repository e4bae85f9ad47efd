// SPDX-License-Identifier: MIT
// kvstudio-cli capacity: KV bytes per token and per user, and the users that fit on one GPU next
// to the weights, exact and under compression ratios (kvs/capacity.h, docs/capacity.md).
#include "cli.h"
#include "kvs/capacity.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace kvs::cli {

namespace {

using nlohmann::json;

// Tokens: an integer, or an integer with K (×1,024: "128K" is the 131,072 of "128K context").
long long parseContext(const std::string& text) {
    std::string digits = text;
    long long scale = 1;
    if (!digits.empty() && (digits.back() == 'k' || digits.back() == 'K')) {
        digits.pop_back();
        scale = 1024;
    }
    long long value = 0;
    const char* end = digits.data() + digits.size();
    auto [ptr, ec] = std::from_chars(digits.data(), end, value);
    if (digits.empty() || ec != std::errc() || ptr != end || value < 1 ||
        value > (1LL << 40) / scale)
        throw UsageError("--context must be a whole number of tokens from 1 to 2^40, optionally "
                         "with K for ×1,024 (128K = 131,072), got '" +
                         text + "'");
    return value * scale;
}

// "0.25" or "name=0.25,other=0.5": the fractions of the exact cache (or of its key bytes) kept.
std::vector<CapacitySetting> parseRatios(const std::string& text, bool keysOnly) {
    const std::string option = keysOnly ? "--key-ratio" : "--ratio";
    std::vector<CapacitySetting> out;
    // Split by hand: getline drops a trailing empty entry ("0.5,"), which must be refused.
    std::vector<std::string> items{""};
    for (char c : text) {
        if (c == ',')
            items.emplace_back();
        else
            items.back().push_back(c);
    }
    for (const std::string& item : items) {
        if (item.empty())
            throw UsageError(option + " has an empty entry in '" + text + "'");
        std::string name, number = item;
        if (const auto eq = item.rfind('='); eq != std::string::npos) {
            name = item.substr(0, eq);
            number = item.substr(eq + 1);
            if (name.empty())
                throw UsageError(option + " entry '" + item + "' has an empty name");
        }
        const double f = parseNumber(number, option + " '" + item + "'");
        if (f < 0 || f > 1)
            throw UsageError(option + " '" + item +
                             "' must be a fraction from 0 to 1 of the exact " +
                             (keysOnly ? "key bytes" : "cache bytes") + " kept");
        std::ostringstream label;
        label << (name.empty() ? (keysOnly ? "keys ×" : "cache ×") : name + " ") << f;
        out.push_back({name.empty() ? label.str() : name, f, keysOnly ? 1.0 : f, "typed"});
    }
    if (out.empty())
        throw UsageError(option + " is empty");
    return out;
}

std::string kib(double bytes) {
    std::ostringstream ss;
    ss << std::fixed << std::setprecision(1) << bytes / 1024.0 << " KiB";
    return ss.str();
}

} // namespace

int runCapacity(const Args& args, Streams io) {
    args.allowOnly({"preset", "context", "gpu-gib", "dtype", "cache-dtype", "reserve-gib", "ratio",
                    "key-ratio", "json", "list"});
    if (args.has("list")) {
        if (args.has("json")) {
            json arr = json::array();
            for (const CapacityPreset& p : capacityPresets())
                arr.push_back({{"id", p.id},
                               {"name", p.name},
                               {"source", p.source},
                               {"config", p.config.toJson()}});
            io.out << json{{"presets", arr}}.dump(2) << "\n";
        } else {
            for (const CapacityPreset& p : capacityPresets())
                io.out << std::left << std::setw(18) << p.id << p.name << "  (" << p.source
                       << ")\n";
        }
        return 0;
    }
    const std::string model = args.require("preset");
    CapacityInputs in;
    if (const CapacityPreset* preset = findCapacityPreset(model)) {
        in.model = preset->config;
        in.modelName = preset->name;
    } else {
        namespace fs = std::filesystem;
        const fs::path path(model);
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            std::string ids;
            for (const CapacityPreset& p : capacityPresets())
                ids += (ids.empty() ? "" : ", ") + p.id;
            throw UsageError("--preset '" + model + "' is neither a preset (" + ids +
                             ") nor an existing model folder or config.json");
        }
        const fs::path config = fs::is_directory(path, ec) ? path / "config.json" : path;
        in.model = loadModelConfig(config).valueOrThrow();
        in.modelName = fs::is_directory(path, ec) ? path.filename().string() : model;
        if (in.modelName.empty())
            in.modelName = fs::absolute(path).parent_path().filename().string();
    }
    in.context = parseContext(args.require("context"));
    if (auto g = args.get("gpu-gib"))
        in.gpuGiB = parseNumber(*g, "--gpu-gib");
    if (auto d = args.get("dtype"))
        in.weightDtype = *d;
    if (weightBytesPerParameter(in.weightDtype) <= 0)
        throw UsageError("--dtype must be fp32, bf16, fp16, int8 or int4, got '" + in.weightDtype +
                         "'");
    if (auto d = args.get("cache-dtype"))
        in.cacheDtype = *d;
    if (cacheBytesPerElement(in.cacheDtype) <= 0)
        throw UsageError("--cache-dtype must be fp32, bf16, fp16 or fp8, got '" + in.cacheDtype +
                         "'");
    if (in.gpuGiB <= 0 || in.gpuGiB > 1e6)
        throw UsageError("--gpu-gib must be above 0 and at most 1,000,000, got " +
                         *args.get("gpu-gib"));
    if (auto r = args.get("reserve-gib")) {
        in.reserveGiB = parseNumber(*r, "--reserve-gib");
        if (in.reserveGiB < 0 || in.reserveGiB > in.gpuGiB)
            throw UsageError("--reserve-gib must be from 0 to the GPU's memory (--gpu-gib), got " +
                             *r);
    }
    if (auto r = args.get("ratio"))
        for (auto& s : parseRatios(*r, false))
            in.settings.push_back(s);
    if (auto r = args.get("key-ratio"))
        for (auto& s : parseRatios(*r, true))
            in.settings.push_back(s);

    const CapacityReport report = planCapacity(in).valueOrThrow();
    if (args.has("json")) {
        json rows = json::array();
        for (const CapacityRow& row : report.rows)
            rows.push_back({{"name", row.setting.name},
                            {"origin", row.setting.origin},
                            {"key_fraction", row.setting.keyFraction},
                            {"value_fraction", row.setting.valueFraction},
                            {"cache_fraction", row.cacheFraction},
                            {"kv_bytes_per_token", row.bytesPerToken},
                            {"kv_bytes_per_user", row.bytesPerUser},
                            {"saved_bytes_per_user", row.savedPerUser},
                            {"users", row.users},
                            {"continuous_users", row.continuousUsers},
                            {"users_vs_exact", row.usersVsExact},
                            {"longest_context_one_user", row.longestContext},
                            {"gpus_for_one_user", row.gpusForOneUser}});
        io.out << json{{"model", report.modelName},
                       {"context", report.context},
                       {"cached_tokens", report.cachedTokens},
                       {"context_limit", report.contextLimit},
                       {"hypothetical", report.hypothetical},
                       {"sliding_window", report.window > 0 ? json(report.window) : json()},
                       {"window_caps", report.windowCaps},
                       {"parameters", report.parameters},
                       {"weight_dtype", in.weightDtype},
                       {"cache_dtype", in.cacheDtype},
                       {"weight_bytes", report.weightBytes},
                       {"gpu_bytes", report.gpuBytes},
                       {"reserve_bytes", report.reserveBytes},
                       {"free_bytes", report.freeBytes},
                       {"rows", rows},
                       {"notes", report.notes}}
                      .dump(2)
               << "\n";
        return 0;
    }
    io.out << report.modelName << ": " << report.parameters << " parameters, " << in.model.layers
           << " layers, " << in.model.kvHeads << " KV heads of " << in.model.headDim
           << ", context limit " << report.contextLimit
           << (report.window > 0 ? ", sliding window " + std::to_string(report.window) : "")
           << "\n";
    io.out << "GPU " << gibText(report.gpuBytes) << " = weights " << gibText(report.weightBytes)
           << " (" << in.weightDtype << ") + reserve " << gibText(report.reserveBytes) << " + "
           << gibText(report.freeBytes) << " for the cache (" << in.cacheDtype << ")\n";
    io.out << "context " << report.context << " tokens per user"
           << (report.hypothetical ? " (hypothetical)" : "") << "\n\n";
    io.out << std::left << std::setw(26) << "setting" << std::right << std::setw(9) << "cache"
           << std::setw(14) << "KV/token" << std::setw(12) << "KV/user" << std::setw(12)
           << "saved/user" << std::setw(8) << "users" << std::setw(10) << "vs exact"
           << std::setw(16) << "longest 1 user"
           << "\n";
    for (const CapacityRow& row : report.rows) {
        std::ostringstream frac, ratio;
        frac << std::fixed << std::setprecision(3) << row.cacheFraction;
        ratio << std::fixed << std::setprecision(2) << row.usersVsExact << "×";
        io.out << std::left << std::setw(26) << row.setting.name.substr(0, 25) << std::right
               << std::setw(9) << frac.str() << std::setw(14) << kib(row.bytesPerToken)
               << std::setw(12) << gibText(row.bytesPerUser) << std::setw(12)
               << gibText(row.savedPerUser) << std::setw(8) << row.users << std::setw(11)
               << ratio.str() << std::setw(16)
               << (row.longestContext < 0 ? std::string("any (window)")
                                          : std::to_string(row.longestContext))
               << "\n";
    }
    for (const std::string& note : report.notes)
        io.out << "note: " << note << "\n";
    return 0;
}

} // namespace kvs::cli
