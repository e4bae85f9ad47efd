// SPDX-License-Identifier: MIT
// Per-thread limits on OpenMP's team size (Eigen's threaded products read the same setting).
#include "kvs/threads.h"

#include <algorithm>
#include <omp.h>

namespace kvs {

int hardwareThreads() {
    return std::max(1, omp_get_num_procs());
}

int threadLimit() {
    return omp_get_max_threads();
}

ScopedThreadLimit::ScopedThreadLimit(int threads) : m_previous(omp_get_max_threads()) {
    omp_set_num_threads(std::max(1, threads));
}

ScopedThreadLimit::~ScopedThreadLimit() {
    omp_set_num_threads(m_previous);
}

} // namespace kvs
