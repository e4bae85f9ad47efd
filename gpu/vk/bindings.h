// SPDX-License-Identifier: MIT
// Bindings: which buffer each binding of the shared descriptor layout gets for one dispatch, set
// by name (layout::Binding, gpu/shaders/include/attention_layout.h); unset ones get the
// context's 16-byte dummy buffer.
#pragma once

#include "shaders/include/attention_layout.h"

#include <array>

namespace kvs::gpu::vk {

class Buffer;

class Bindings {
public:
    Bindings& set(layout::Binding binding, const Buffer& buffer) {
        m_buffers[layout::index(binding)] = &buffer;
        return *this;
    }
    // The buffer at binding `index`, or nullptr where none was set.
    const Buffer* at(std::uint32_t index) const { return m_buffers.at(index); }

private:
    std::array<const Buffer*, layout::kBindingCount> m_buffers{};
};

} // namespace kvs::gpu::vk
