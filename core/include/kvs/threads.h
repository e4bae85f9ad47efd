// SPDX-License-Identifier: MIT
// How many cores the calling thread's numeric work (OpenMP regions, Eigen's products) may use.
// Background jobs take fewer so that the interactive work keeps cores of its own.
#pragma once

namespace kvs {

// The cores this machine offers the process.
int hardwareThreads();
// The most threads parallel work started from this thread uses now.
int threadLimit();

// Within its scope, parallel work started from this thread uses at most `threads` threads;
// the previous limit comes back at the end of the scope. Per thread: other threads are unaffected.
class ScopedThreadLimit {
public:
    explicit ScopedThreadLimit(int threads);
    ~ScopedThreadLimit();
    ScopedThreadLimit(const ScopedThreadLimit&) = delete;
    ScopedThreadLimit& operator=(const ScopedThreadLimit&) = delete;

private:
    int m_previous;
};

} // namespace kvs
