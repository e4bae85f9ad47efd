// SPDX-License-Identifier: MIT
// Submission: one batch of dispatches with a timestamp pair around each, submitted and waited for.
#pragma once

#include "bindings.h"
#include "context.h"

#include <cstdint>
#include <vector>

namespace kvs::gpu::vk {

class Pipeline;

// One recorded batch of dispatches with a timestamp pair around each; run() submits and waits,
// then microseconds() holds the time of each dispatch (0 where the queue has no timestamps).
class Submission {
public:
    Submission(Context& context, std::uint32_t maxDispatches);
    ~Submission();
    Submission(const Submission&) = delete;
    Submission& operator=(const Submission&) = delete;

    // Records: barrier on previous writes, bind, push constants, dispatch, timestamps.
    void dispatch(const Pipeline& pipeline, const Bindings& bindings, const void* pushConstants,
                  std::uint32_t pushBytes, std::uint32_t x, std::uint32_t y, std::uint32_t z);
    void run();
    const std::vector<double>& microseconds() const { return m_microseconds; }

private:
    Context& m_context;
    VkQueryPool m_queries = VK_NULL_HANDLE;
    std::uint32_t m_capacity = 0;
    struct Recorded {
        const Pipeline* pipeline;
        Bindings bindings;
        std::vector<std::uint8_t> push;
        std::uint32_t x, y, z;
    };
    std::vector<Recorded> m_recorded;
    std::vector<double> m_microseconds;
};

} // namespace kvs::gpu::vk
