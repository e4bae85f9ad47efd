// SPDX-License-Identifier: MIT
// `kvstudio-cli bench attention`: decode-style attention (one query per head, many keys) over fp16
// and 4-bit caches on the Vulkan backend and the CPU reference: time per call, bytes read, GB/s,
// and the fraction of the device's copy bandwidth measured in the same run.
#include "cli.h"

#include "kvs/attention_backend.h"
#include "kvs/compressed_head.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs/model.h"
#include "kvs/probe_attention.h"
#include "kvs/status.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace kvs::cli {

namespace {

// Cache formats the bench lays out: fp16; q4 (4-bit keys per channel, values per token); k4v2
// (KIVI's K4/V2); lowrank (post-RoPE keys as d/4 coefficients, queries projected); lowrank_rope
// (pre-RoPE latents of rank d/4 rebuilt and rotated on load, as the weight SVD stores them);
// q4_outliers (q4 with 1% of the elements kept dense, KVQuant's dense-and-sparse).
const char* const kBenchFormats[] = {"fp16",         "q4",          "k4v2",    "lowrank",
                                     "lowrank_rope", "q4_hadamard", "q4_rope", "q4_outliers"};

struct Shape {
    int n = 1024;
    int d = 128;
    std::string format = "fp16";
};

struct Stats {
    double median = 0, p10 = 0, p90 = 0;
};

Stats stats(std::vector<double> v) {
    Stats s;
    if (v.empty())
        return s;
    std::sort(v.begin(), v.end());
    const auto at = [&](double f) {
        return v[std::min(v.size() - 1, static_cast<std::size_t>(f * (v.size() - 1) + 0.5))];
    };
    s.median = at(0.5);
    s.p10 = at(0.1);
    s.p90 = at(0.9);
    return s;
}

// Cheap deterministic data (a bench needs bytes, not statistics): uniform in [-1, 1).
Matrix noise(int rows, int cols, std::uint64_t seed) {
    Matrix x(rows, cols);
    std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (Eigen::Index i = 0; i < x.size(); ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        x.data()[i] = static_cast<float>(static_cast<std::int32_t>(state >> 32)) * 0x1p-31f;
    }
    return x;
}

// A comma-separated list of whole numbers, each optionally with k (x 1024) or M (x 1024^2), each
// from `lo` to `hi`: anything else is a usage error naming the option, the item and the range
// (std::stoi took "16m" as 16 and "-5" as a negative size).
std::vector<int> parseList(const std::string& text, const char* option, long long lo,
                           long long hi) {
    const auto bad = [&](const std::string& item) {
        return UsageError("bench attention: " + std::string(option) + ": '" + item +
                          "' is not a whole number from " + std::to_string(lo) + " to " +
                          std::to_string(hi) + " (k = 1024, M = 1024^2)");
    };
    std::vector<int> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        std::string digits = item;
        long long scale = 1;
        if (!digits.empty() && (digits.back() == 'k' || digits.back() == 'K')) {
            scale = 1024;
            digits.pop_back();
        } else if (!digits.empty() && digits.back() == 'M') {
            scale = 1024 * 1024;
            digits.pop_back();
        }
        if (digits.empty() || digits.size() > 9 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            throw bad(item);
        const long long value = std::stoll(digits) * scale;
        if (value < lo || value > hi)
            throw bad(item);
        out.push_back(static_cast<int>(value));
    }
    if (out.empty())
        throw bad(text);
    return out;
}

std::string humanBytes(double bytes) {
    char text[32];
    if (bytes >= 1 << 30)
        std::snprintf(text, sizeof text, "%.2f GiB", bytes / (1 << 30));
    else
        std::snprintf(text, sizeof text, "%.1f MiB", bytes / (1 << 20));
    return text;
}

struct BenchOptions {
    bool json = false;
    std::string backend = "both"; // both, vulkan, cpu
    std::vector<Shape> shapes;
    int heads = 32; // query heads
    int group = 1;  // query heads per KV head (GQA)
    int repeats = 10;
    int warmup = 3;
    int cpuRepeats = 3;
    int kvHeads() const { return heads / group; }
};

BenchOptions parseBenchOptions(const Args& args) {
    args.allowOnly({"json", "backend", "contexts", "dims", "heads", "formats", "max-keys",
                    "repeats", "warmup", "cpu-repeats", "group"});
    if (args.positionals().size() != 1 || args.positionals()[0] != "attention")
        throw UsageError("bench: the only benchmark is 'attention' (bench attention [--json])");
    BenchOptions o;
    o.json = args.has("json");
    o.backend = args.get("backend").value_or("both");
    if (o.backend != "both" && o.backend != "vulkan" && o.backend != "cpu")
        throw UsageError("bench attention: --backend must be both, vulkan or cpu");
    const std::vector<int> contexts =
        parseList(args.get("contexts").value_or("1k,4k,16k,64k"), "--contexts", 1, 1 << 24);
    const std::vector<int> dims = parseList(args.get("dims").value_or("64,128"), "--dims", 2, 1024);
    o.heads = args.getInt("heads", 32, 1, 1024);
    o.group = args.getInt("group", 1, 1, o.heads);
    if (o.heads % o.group != 0)
        throw UsageError("bench attention: --group " + std::to_string(o.group) +
                         " must divide --heads " + std::to_string(o.heads));
    const int maxKeys = args.getInt("max-keys", 1 << 30, 1, 1 << 30);
    o.repeats = args.getInt("repeats", 10, 1, 100000);
    o.warmup = args.getInt("warmup", 3, 0, 100000);
    o.cpuRepeats = args.getInt("cpu-repeats", 3, 1, 100000);
    std::vector<std::string> formats;
    std::stringstream list(args.get("formats").value_or("fp16,q4"));
    for (std::string f; std::getline(list, f, ',');) {
        if (std::find(std::begin(kBenchFormats), std::end(kBenchFormats), f) ==
            std::end(kBenchFormats))
            throw UsageError(
                "bench attention: unknown format '" + f +
                "' in --formats (fp16, q4, k4v2, lowrank, lowrank_rope, q4_hadamard, q4_rope, "
                "q4_outliers)");
        formats.push_back(f);
    }
    if (formats.empty())
        throw UsageError("bench attention: --formats names no format (fp16, q4, k4v2, lowrank, "
                         "lowrank_rope, q4_hadamard, q4_rope, q4_outliers)");
    for (int n : contexts)
        for (int d : dims)
            for (const std::string& f : formats)
                if (n <= maxKeys)
                    o.shapes.push_back({n, d, f});
    // Before the first allocation: the largest shape's caches (fp32 noise and the fp16 copy of
    // keys and values per KV head) and queries must fit in the memory the machine has.
    std::uint64_t need = 0;
    for (const Shape& s : o.shapes)
        need = std::max(need, static_cast<std::uint64_t>(s.n) * static_cast<std::uint64_t>(s.d) *
                                  static_cast<std::uint64_t>(o.kvHeads()) * 2 * (4 + 4 + 2));
    if (need > availableMemoryBytes())
        throw Error(ErrorCode::OutOfMemory,
                    "bench attention: the largest shape needs about " + std::to_string(need >> 20) +
                        " MiB for its caches but " + std::to_string(availableMemoryBytes() >> 20) +
                        " MiB are available; give fewer --heads, shorter --contexts or smaller "
                        "--dims");
    return o;
}

// One layer of `kvHeads` exact caches of the shape (fp16, or 4-bit keys per channel and values
// per token). Distinct seeds keep caches from being identical.
// RoPE's pair frequencies θ^(−2i/d), θ = 10000, for the rotated-on-load formats.
std::vector<float> ropeFrequencies(int d) {
    std::vector<float> out;
    for (int i = 0; i < d / 2; ++i)
        out.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / static_cast<float>(d)));
    return out;
}

std::vector<CompressedHead> benchLayer(const Shape& s, int kvHeads) {
    std::vector<CompressedHead> layer;
    layer.reserve(static_cast<std::size_t>(kvHeads));
    for (int h = 0; h < kvHeads; ++h) {
        CompressedHead head =
            exactHead(noise(s.n, s.d, 2 * h + 1), noise(s.n, s.d, 2 * h + 2), Precision::F16);
        if (s.format == "q4" || s.format == "k4v2" || s.format == "q4_hadamard" ||
            s.format == "q4_rope" || s.format == "q4_outliers") {
            const double outliers = s.format == "q4_outliers" ? 0.01 : 0.0;
            if (s.format == "q4_hadamard") { // the largest power-of-two block dividing d
                head.hadamardBlock = s.d & -s.d;
                hadamardRotate(head.keys, head.hadamardBlock);
                hadamardRotate(head.values, head.hadamardBlock);
            }
            head.keyForm = CompressedHead::KeyForm::Quantized;
            head.quantizedKeys =
                quantize(head.keys, 4, 32, QuantizedMatrix::Grouping::PerChannel, outliers);
            head.valueForm = CompressedHead::ValueForm::Quantized;
            head.quantizedValues = quantize(head.values, s.format == "k4v2" ? 2 : 4, 32,
                                            QuantizedMatrix::Grouping::PerToken, outliers);
            head.keys = Matrix();
            head.values = Matrix();
            if (s.format == "q4_rope") // the codes are pre-RoPE keys: decoded and turned on load
                head.keyRotation.frequencies = ropeFrequencies(s.d);
        } else if (s.format == "lowrank" || s.format == "lowrank_rope") {
            const int r = std::max(1, s.d / 4);
            head.keyForm = CompressedHead::KeyForm::LowRank;
            head.keys = noise(s.n, r, 2 * h + 101);
            head.queryProjection = noise(s.d, r, 2 * h + 102);
            roundToHalf(head.keys);
            roundToHalf(head.queryProjection);
            if (s.format == "lowrank_rope")
                head.keyRotation.frequencies = ropeFrequencies(s.d);
        }
        layer.push_back(std::move(head));
    }
    return layer;
}

// The device's copy bandwidth over the largest binding (128 MiB on lavapipe; ≥ 1 GiB would be
// better on a large GPU, the binding range limits it): the reference GB/s are set against.
double copyBandwidth(gpu::VulkanBackend& vulkan, const BenchOptions& o,
                     nlohmann::ordered_json& report) {
    const std::size_t copyBytes =
        std::min<std::size_t>(std::size_t(1) << 30, vulkan.device().maxStorageBufferRange);
    auto copy = vulkan.measureCopyBandwidth(copyBytes, o.warmup + o.repeats);
    if (!copy)
        throw copy.error();
    std::vector<double> measured(copy->begin() + std::min<int>(o.warmup, int(copy->size())),
                                 copy->end());
    const double gbps = stats(measured).median;
    report["copy"] = {{"bytes", copyBytes}, {"gbps_median", gbps}};
    return gbps;
}

// The Vulkan backend's timestamps for the layer: medians of the whole call and of the probe
// kernels, bytes read and GB/s against the copy bandwidth.
nlohmann::ordered_json benchVulkan(gpu::VulkanBackend& vulkan, const LayerAttendRequest& request,
                                   const BenchOptions& o, double copyGbps) {
    auto timings = vulkan.benchmarkLayer(request, o.warmup, o.repeats);
    if (!timings)
        return {{"error", timings.message()}};
    std::vector<double> total, probe;
    std::size_t bytesRead = 0;
    int dispatches = 0;
    for (const auto& t : *timings) {
        total.push_back(t.totalMicroseconds());
        double p = 0;
        for (const auto& d : t.dispatches)
            if (d.kernel.rfind("probe_split", 0) == 0)
                p += d.microseconds;
        probe.push_back(p);
        bytesRead = t.bytesRead();
        dispatches = static_cast<int>(t.dispatches.size());
    }
    const Stats st = stats(total);
    const double gbps = static_cast<double>(bytesRead) / (st.median * 1e3);
    return {{"us_median", st.median},
            {"us_p10", st.p10},
            {"us_p90", st.p90},
            {"probe_us_median", stats(probe).median},
            {"dispatches", dispatches},
            {"bytes_read", bytesRead},
            {"gbps", gbps},
            {"fraction_of_copy", copyGbps > 0 ? gbps / copyGbps : 0.0}};
}

// The CPU reference's wall time for the layer, through the evaluator's probe-attention path.
nlohmann::ordered_json benchCpu(AttentionBackend& cpu, const std::vector<CompressedHead>& layer,
                                const std::vector<Matrix>& queries, const BenchOptions& o) {
    ProbeRequest probe;
    probe.heads = std::span<const std::vector<CompressedHead>>(&layer, 1);
    probe.queries = std::span<const std::vector<Matrix>>(&queries, 1);
    probe.groupSize = o.group;
    std::vector<double> us;
    for (int r = 0; r < o.cpuRepeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        probeAttention(probe, cpu).valueOrThrow();
        us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count());
    }
    const Stats st = stats(us);
    return {{"us_median", st.median}, {"us_p10", st.p10}, {"us_p90", st.p90}};
}

void printHeader(std::ostream& out, const nlohmann::ordered_json& report, const BenchOptions& o,
                 bool vulkan, double copyGbps) {
    out << "device: " << report["device"].get<std::string>() << "\n";
    if (vulkan)
        out << "copy kernel: " << copyGbps << " GB/s (read + write, median)\n";
    out << "decode attention, " << o.heads << " query heads, " << o.kvHeads()
        << " KV heads, 1 query per head; times are medians\n\n";
    char head[200];
    std::snprintf(head, sizeof head, "%-6s %4s %-12s %10s %10s %8s %7s %12s %8s\n", "n", "d",
                  "cache", "bytes", "vk us", "vk GB/s", "of copy", "cpu us", "cpu/vk");
    out << head;
}

void printRow(std::ostream& out, const Shape& s, const nlohmann::ordered_json& row) {
    const auto& v = row.contains("vulkan") ? row["vulkan"] : nlohmann::ordered_json();
    const double vkUs = v.is_null() ? 0.0 : v["us_median"].get<double>();
    const double cpuUs = row.contains("cpu") ? row["cpu"]["us_median"].get<double>() : 0.0;
    char line[240];
    std::snprintf(line, sizeof line, "%-6d %4d %-12s %10s %10.0f %8.2f %6.0f%% %12.0f %8.2f\n", s.n,
                  s.d, s.format.c_str(), humanBytes(row["cache_bytes"].get<double>()).c_str(), vkUs,
                  v.is_null() ? 0.0 : v["gbps"].get<double>(),
                  v.is_null() ? 0.0 : 100.0 * v["fraction_of_copy"].get<double>(), cpuUs,
                  vkUs > 0 && cpuUs > 0 ? cpuUs / vkUs : 0.0);
    out << line << std::flush;
    if (row.contains("vulkan_error"))
        out << "    vulkan: " << row["vulkan_error"].get<std::string>() << "\n";
}

} // namespace

int runBench(const Args& args, Streams io) {
    const BenchOptions o = parseBenchOptions(args);
    std::unique_ptr<gpu::VulkanBackend> vulkan;
    if (o.backend != "cpu") {
        auto made = gpu::makeVulkanBackend();
        if (made)
            vulkan = std::move(made).value();
        else
            io.err << "bench attention: Vulkan is not available (" << made.message()
                   << "); measuring the CPU backend only\n";
    }
    const auto cpu = makeCpuBackend();

    nlohmann::ordered_json report;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    report["date"] = date;
    report["device"] = vulkan ? gpu::summaryLine(vulkan->device()) : "none";
    report["cpu_emulation"] = vulkan ? vulkan->isCpuEmulation() : true;
    const double copyGbps = vulkan ? copyBandwidth(*vulkan, o, report) : 0.0;
    if (!o.json)
        printHeader(io.out, report, o, vulkan != nullptr, copyGbps);

    report["rows"] = nlohmann::ordered_json::array();
    for (const Shape& s : o.shapes) {
        const std::vector<CompressedHead> layer = benchLayer(s, o.kvHeads());
        std::vector<Matrix> queries;
        for (int h = 0; h < o.heads; ++h)
            queries.push_back(noise(1, s.d, 1000 + h));
        std::size_t cacheBytes = 0;
        for (const auto& h : layer)
            cacheBytes += h.bytes().keys + h.bytes().values + h.bytes().metadata;
        nlohmann::ordered_json row = {{"n", s.n},          {"d", s.d},
                                      {"heads", o.heads},  {"kv_heads", o.kvHeads()},
                                      {"cache", s.format}, {"cache_bytes", cacheBytes}};
        double vkUs = 0.0;
        if (vulkan) {
            const LayerAttendRequest request{layer, queries, o.group, {}};
            nlohmann::ordered_json v = benchVulkan(*vulkan, request, o, copyGbps);
            if (v.contains("error")) {
                row["vulkan_error"] = v["error"];
            } else {
                vkUs = v["us_median"].get<double>();
                row["vulkan"] = std::move(v);
            }
        }
        if (o.backend != "vulkan") {
            row["cpu"] = benchCpu(*cpu, layer, queries, o);
            if (vkUs > 0)
                row["cpu_over_vulkan"] = row["cpu"]["us_median"].get<double>() / vkUs;
        }
        report["rows"].push_back(row);
        if (!o.json)
            printRow(io.out, s, row);
    }
    if (o.json)
        io.out << report.dump(2) << "\n";
    return 0;
}

} // namespace kvs::cli
