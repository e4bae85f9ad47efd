// SPDX-License-Identifier: MIT
// VulkanBackend (AttentionBackend over the compute shaders), makeVulkanBackend, and the
// Vulkan-else-CPU choice with fallback on a lost device.
#include "kvs/gpu/vulkan_backend.h"

#include "kernels/attention_run.h"
#include "kernels/copy_benchmark.h"
#include "kernels/layer_upload.h"
#include "kernels/pipelines.h"
#include "vk/context.h"
#include "vk/instance_impl.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>

namespace kvs::gpu {

double LayerTiming::totalMicroseconds() const {
    double sum = 0.0;
    for (const auto& d : dispatches)
        sum += d.microseconds;
    return sum;
}

std::size_t LayerTiming::bytesRead() const {
    std::size_t sum = 0;
    for (const auto& d : dispatches)
        sum += d.bytesRead;
    return sum;
}

struct VulkanBackend::Impl {
    // One queue, one fence, one command pool: calls from several worker threads take turns.
    std::mutex mutex;
    std::unique_ptr<vk::Context> context;
    std::unique_ptr<kernels::PipelineSet> pipelines;
    VulkanBackendOptions options;

    kernels::RunOptions runOptions(const AttendOptions& o) const {
        kernels::RunOptions ro;
        ro.splits = options.splits;
        ro.wg = static_cast<std::uint32_t>(options.workgroupSize);
        ro.dSplit = static_cast<std::uint32_t>(options.dSplit);
        ro.subgroups = options.useSubgroups;
        ro.map = o.wantProbabilities || o.wantScores;
        return ro;
    }

    // q̂ = q · P for low-rank keys (the same product as the CPU reference), else q itself.
    static Matrix projected(const CompressedHead& head, const Matrix& queries) {
        if (head.keyForm == CompressedHead::KeyForm::LowRank && !hasPreRopeLowRankKeys(head))
            return queries.lazyProduct(head.queryProjection);
        return queries;
    }

    void check(const LayerAttendRequest& request) const {
        checkLayerRequest(request);
        for (const auto& h : request.heads)
            h.validate();
        const Eigen::Index nq = request.queries.empty() ? 0 : request.queries[0].rows();
        for (std::size_t q = 0; q < request.queries.size(); ++q) {
            const auto& head = request.heads[q / static_cast<std::size_t>(request.groupSize)];
            if (request.queries[q].cols() != head.headDim)
                throw Error(ErrorCode::InvalidArgument,
                            "attend: queries have " + std::to_string(request.queries[q].cols()) +
                                " columns, the head dimension is " + std::to_string(head.headDim));
            if (request.queries[q].rows() != nq)
                throw Error(ErrorCode::InvalidArgument,
                            "attendLayer: every query head needs the same number of queries");
        }
        if (!request.options.queryPositions.empty() &&
            static_cast<Eigen::Index>(request.options.queryPositions.size()) != nq)
            throw Error(ErrorCode::InvalidArgument,
                        "attend: " + std::to_string(request.options.queryPositions.size()) +
                            " query positions for " + std::to_string(nq) + " queries");
    }

    // Runs heads that share one storage form; appends per query head, timings to `timings`.
    std::uint64_t bindingLimit() const {
        const std::uint64_t device = context->maxStorageBufferRange();
        return options.maxBindingBytes > 0
                   ? std::min<std::uint64_t>(device, options.maxBindingBytes)
                   : device;
    }

    void runUniform(std::span<const CompressedHead> heads, std::span<const Matrix> queries,
                    int group, const AttendOptions& attendOptions, const kernels::RunOptions& ro,
                    std::vector<AttendResult>& results, std::vector<DispatchTiming>& timings,
                    DeviceAllocation& allocation) {
        const auto uploads = kernels::uploadLayer(*context, heads, bindingLimit());
        for (const auto& up : uploads) {
            allocation += up.allocation;
            std::vector<Matrix> q;
            for (int h = up.firstKvHead * group; h < (up.firstKvHead + up.kvHeads) * group; ++h)
                q.push_back(projected(heads[static_cast<std::size_t>(h / group)],
                                      queries[static_cast<std::size_t>(h)]));
            const float scale =
                attentionScale(heads[static_cast<std::size_t>(up.firstKvHead)], attendOptions);
            auto run = kernels::run(*context, *pipelines, up, q, group, attendOptions, scale, ro);
            timings.insert(timings.end(), run.timings.begin(), run.timings.end());
            allocation += run.scratch;
            for (std::size_t h = 0; h < q.size(); ++h) {
                AttendResult r;
                r.outputs = std::move(run.outputs[h]);
                r.logSumExp = std::move(run.logSumExp[h]);
                if (attendOptions.wantProbabilities)
                    r.probabilities = std::move(run.probabilities[h]);
                if (attendOptions.wantScores)
                    r.scores = std::move(run.scores[h]);
                results.push_back(std::move(r));
            }
        }
    }

    // Heads with a recent window: the kernels read one form per head, so the older tokens and
    // the fp16 window are two passes, merged on the host by log-sum-exp.
    std::vector<AttendResult> attendSplit(const LayerAttendRequest& request) {
        const auto start = std::chrono::steady_clock::now();
        const int g = request.groupSize;
        std::vector<CompressedHead> older, recent;
        std::vector<std::size_t> windowed; // KV heads that have a window
        for (std::size_t h = 0; h < request.heads.size(); ++h) {
            if (request.heads[h].recentCount() == 0) {
                older.push_back(request.heads[h]);
                continue;
            }
            auto [o, r] = splitRecentWindow(request.heads[h]);
            older.push_back(std::move(o));
            recent.push_back(std::move(r));
            windowed.push_back(h);
        }
        LayerAttendRequest olderRequest = request;
        olderRequest.heads = older;
        std::vector<AttendResult> results = attendLayer(olderRequest);
        // The windows of the heads that have one, with their query heads, as one more layer call.
        std::vector<Matrix> recentQueries;
        for (const std::size_t h : windowed)
            for (int q = 0; q < g; ++q)
                recentQueries.push_back(
                    request.queries[h * static_cast<std::size_t>(g) + static_cast<std::size_t>(q)]);
        LayerAttendRequest recentRequest = request;
        recentRequest.heads = recent;
        recentRequest.queries = recentQueries;
        std::vector<AttendResult> windows = attendLayer(recentRequest);
        // Timings and allocation of each call sit in its first result: keep them whole there.
        results.front().timings.insert(results.front().timings.end(),
                                       windows.front().timings.begin(),
                                       windows.front().timings.end());
        results.front().allocation += windows.front().allocation;
        windows.front().timings.clear();
        windows.front().allocation = {};
        for (std::size_t i = 0; i < windowed.size(); ++i)
            for (int q = 0; q < g; ++q) {
                AttendResult& window =
                    windows[i * static_cast<std::size_t>(g) + static_cast<std::size_t>(q)];
                window.wallMicroseconds = 0.0;
                mergeRecentWindow(results[windowed[i] * static_cast<std::size_t>(g) +
                                          static_cast<std::size_t>(q)],
                                  window);
            }
        results.front().wallMicroseconds =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count();
        return results;
    }

    std::vector<AttendResult> attendLayer(const LayerAttendRequest& request) {
        const auto start = std::chrono::steady_clock::now();
        check(request);
        if (std::any_of(request.heads.begin(), request.heads.end(),
                        [](const CompressedHead& h) { return h.recentCount() > 0; }))
            return attendSplit(request);
        const int g = request.groupSize;
        std::vector<AttendResult> results;
        std::vector<DispatchTiming> timings;
        DeviceAllocation allocation;
        const kernels::RunOptions ro = runOptions(request.options);
        const auto nq = request.queries.empty() ? 0 : request.queries[0].rows();
        if (nq == 0 || request.heads.empty()) {
            for (std::size_t q = 0; q < request.queries.size(); ++q) {
                AttendResult r;
                r.outputs = Matrix::Zero(0, request.heads[q / g].valueDim());
                results.push_back(std::move(r));
            }
            return results;
        }
        // Different scale per head is not expected (scale comes from headDim); forms may differ:
        // then each KV head is its own dispatch pair.
        const auto first = kernels::variantOf(request.heads[0]);
        const bool uniform =
            std::all_of(request.heads.begin(), request.heads.end(), [&](const CompressedHead& h) {
                return kernels::variantOf(h) == first && h.headDim == request.heads[0].headDim;
            });
        if (uniform) {
            runUniform(request.heads, request.queries, g, request.options, ro, results, timings,
                       allocation);
        } else {
            for (std::size_t h = 0; h < request.heads.size(); ++h)
                runUniform(request.heads.subspan(h, 1),
                           request.queries.subspan(h * static_cast<std::size_t>(g),
                                                   static_cast<std::size_t>(g)),
                           g, request.options, ro, results, timings, allocation);
        }
        results.front().timings = std::move(timings);
        results.front().allocation = allocation;
        results.front().wallMicroseconds =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count();
        return results;
    }
};

VulkanBackend::VulkanBackend(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
VulkanBackend::~VulkanBackend() = default;

std::string VulkanBackend::name() const {
    return m_impl->context->info().name;
}

bool VulkanBackend::isCpuEmulation() const {
    return m_impl->context->info().isCpuEmulation();
}

const DeviceInfo& VulkanBackend::device() const {
    return m_impl->context->info();
}

bool VulkanBackend::deviceLost() const {
    return m_impl->context->lost();
}

bool VulkanBackend::usesPushDescriptors() const {
    return m_impl->context->pushDescriptors();
}

std::vector<ValidationMessage> VulkanBackend::validationMessages() const {
    return m_impl->context->instance().validationMessages();
}

void VulkanBackend::clearValidationMessages() {
    m_impl->context->instance().clearValidationMessages();
}

Result<AttendResult> VulkanBackend::attend(const CompressedHead& head, const Matrix& queries,
                                           const AttendOptions& options) {
    return catchErrors([&] {
        std::lock_guard lock(m_impl->mutex);
        const Matrix q[] = {queries};
        LayerAttendRequest request{std::span<const CompressedHead>(&head, 1), q, 1, options};
        auto results = m_impl->attendLayer(request);
        return std::move(results.front());
    });
}

Result<std::vector<AttendResult>> VulkanBackend::attendLayer(const LayerAttendRequest& request) {
    return catchErrors([&] {
        std::lock_guard lock(m_impl->mutex);
        return m_impl->attendLayer(request);
    });
}

Result<std::vector<LayerTiming>> VulkanBackend::benchmarkLayer(const LayerAttendRequest& request,
                                                               int warmup, int repeats) {
    return catchErrors([&] {
        Impl& impl = *m_impl;
        std::lock_guard lock(impl.mutex);
        impl.check(request);
        const auto first = kernels::variantOf(request.heads[0]);
        for (const auto& h : request.heads) {
            if (kernels::variantOf(h) != first)
                throw Error(ErrorCode::InvalidArgument,
                            "benchmarkLayer: every head must have the same storage form");
            if (h.recentCount() > 0)
                throw Error(ErrorCode::InvalidArgument,
                            "benchmarkLayer: a head with a recent window runs as two passes "
                            "(splitRecentWindow); time each part as its own layer");
        }
        const int g = request.groupSize;
        const auto uploads =
            kernels::uploadLayer(*impl.context, request.heads, impl.bindingLimit());
        kernels::RunOptions ro = impl.runOptions(request.options);
        ro.map = false;
        ro.readBack = false;
        std::vector<std::vector<Matrix>> queries;
        for (const auto& up : uploads) {
            std::vector<Matrix> q;
            for (int h = up.firstKvHead * g; h < (up.firstKvHead + up.kvHeads) * g; ++h)
                q.push_back(Impl::projected(request.heads[static_cast<std::size_t>(h / g)],
                                            request.queries[static_cast<std::size_t>(h)]));
            queries.push_back(std::move(q));
        }
        const float scale = attentionScale(request.heads[0], request.options);
        std::vector<LayerTiming> timings;
        for (int r = 0; r < warmup + repeats; ++r) {
            LayerTiming t;
            for (std::size_t u = 0; u < uploads.size(); ++u) {
                auto run = kernels::run(*impl.context, *impl.pipelines, uploads[u], queries[u], g,
                                        request.options, scale, ro);
                t.dispatches.insert(t.dispatches.end(), run.timings.begin(), run.timings.end());
            }
            if (r >= warmup)
                timings.push_back(std::move(t));
        }
        return timings;
    });
}

Result<std::vector<double>> VulkanBackend::measureCopyBandwidth(std::size_t bytes, int repeats) {
    return catchErrors([&] {
        std::lock_guard lock(m_impl->mutex);
        return kernels::copyBandwidth(*m_impl->context, *m_impl->pipelines, bytes, repeats);
    });
}

Result<std::size_t> VulkanBackend::memoryRequirement(std::size_t bytes) {
    return catchErrors([&] {
        std::lock_guard lock(m_impl->mutex);
        return static_cast<std::size_t>(m_impl->context->memoryRequirement(bytes));
    });
}

void* VulkanBackend::nativeInstance() const {
    return m_impl->context->instance().impl().instance;
}

Result<std::unique_ptr<VulkanBackend>> makeVulkanBackend(const VulkanBackendOptions& options) {
    return catchErrors([&] {
        if (options.workgroupSize < 8 || options.workgroupSize > 1024 || options.dSplit < 1 ||
            options.workgroupSize % options.dSplit != 0 ||
            (options.workgroupSize & (options.workgroupSize - 1)) != 0)
            throw Error(ErrorCode::InvalidArgument,
                        "Vulkan backend: the workgroup size must be a power of two in 8..1024 "
                        "and a multiple of dSplit");
        auto impl = std::make_unique<VulkanBackend::Impl>();
        impl->options = options;
        vk::ContextOptions co;
        co.instance = options.instance;
        co.device = options.device;
        co.allowPushDescriptors = options.allowPushDescriptors;
        impl->context = vk::Context::create(co);
        impl->pipelines = std::make_unique<kernels::PipelineSet>(*impl->context);
        return std::unique_ptr<VulkanBackend>(new VulkanBackend(std::move(impl)));
    });
}

namespace {

// Vulkan first; after a lost device every call (the failed one included) runs on the CPU.
class FallbackBackend final : public AttentionBackend {
public:
    explicit FallbackBackend(std::unique_ptr<VulkanBackend> vulkan)
        : m_vulkan(std::move(vulkan)), m_cpu(makeCpuBackend()) {}

    std::string name() const override {
        return m_vulkan && !m_vulkan->deviceLost() ? m_vulkan->name()
                                                   : m_cpu->name() + " (Vulkan device lost)";
    }
    bool isCpuEmulation() const override {
        return !m_vulkan || m_vulkan->deviceLost() || m_vulkan->isCpuEmulation();
    }
    Result<AttendResult> attend(const CompressedHead& head, const Matrix& queries,
                                const AttendOptions& options) override {
        if (!m_vulkan->deviceLost()) {
            auto r = m_vulkan->attend(head, queries, options);
            if (r.ok() || !m_vulkan->deviceLost())
                return r;
        }
        return m_cpu->attend(head, queries, options);
    }
    Result<std::vector<AttendResult>> attendLayer(const LayerAttendRequest& request) override {
        if (!m_vulkan->deviceLost()) {
            auto r = m_vulkan->attendLayer(request);
            if (r.ok() || !m_vulkan->deviceLost())
                return r;
        }
        return m_cpu->attendLayer(request);
    }

private:
    std::unique_ptr<VulkanBackend> m_vulkan;
    std::unique_ptr<AttentionBackend> m_cpu;
};

} // namespace

BackendChoice makeAttentionBackend(const std::string& preference,
                                   const VulkanBackendOptions& options) {
    BackendChoice choice;
    std::string wanted = preference;
    if (wanted.empty())
        if (const char* env = std::getenv("KVS_BACKEND"))
            wanted = env;
    if (wanted == "cpu") {
        choice.backend = makeCpuBackend();
        choice.description = "CPU (Eigen): chosen (backend \"cpu\")";
        return choice;
    }
    auto vulkan = makeVulkanBackend(options);
    if (!vulkan) {
        choice.backend = makeCpuBackend();
        choice.description = "CPU (Eigen): Vulkan is not available (" + vulkan.message() + ")";
        return choice;
    }
    choice.description = "Vulkan: " + summaryLine((*vulkan)->device());
    choice.vulkan = true;
    choice.vulkanBackend = vulkan->get();
    choice.backend = std::make_unique<FallbackBackend>(std::move(vulkan).value());
    return choice;
}

} // namespace kvs::gpu
