// SPDX-License-Identifier: MIT
// RenderDoc's in-application API (renderdoc_app.h, Debian's librenderdoc-dev): finds the library
// and brackets GPU work in one frame capture, so a recompute can be opened in RenderDoc. Built
// only where the header was found at configure time; elsewhere every call says so.
#pragma once

#include "kvs/status.h"

#include <cstdint>
#include <string>

// Environment:
//   KVS_RENDERDOC  "1": load librenderdoc.so (dlopen) before gpu/ opens the Vulkan loader, so
//                  that RenderDoc's capture layer hooks every Vulkan instance. Without it only a
//                  process started from RenderDoc (library already loaded) can capture.

namespace kvs::gpu {

struct RenderDocStatus {
    bool compiledIn = false; // renderdoc_app.h was found when this was built
    bool available = false;  // the API is loaded and answered
    std::string reason;      // why not, in words for a tooltip; empty when available
    std::string version;     // the API version RenderDoc reports, "1.6.0"
};

// Looks for the API once per process (thread-safe, never throws): the library when it is
// already loaded (RTLD_NOLOAD), else, when KVS_RENDERDOC asks for it, loaded now. Loading it
// after a Vulkan instance exists makes the API available, but that instance is not hooked: a
// capture of it then fails with a message saying so.
RenderDocStatus renderDocStatus();

// Called by gpu/ before the Vulkan loader is opened; the same look-up as renderDocStatus().
void preloadRenderDocFromEnv();

// One frame capture of what the devices of one Vulkan instance submit between construction and
// finish(). Only one capture may run at a time in a process (RenderDoc's rule); a second one
// does not start and says why.
class RenderDocCapture {
public:
    // `vkInstance`: the VkInstance handle (VulkanBackend::nativeInstance()). Starts capturing
    // when RenderDoc is available and hooks that instance; otherwise active() is false.
    explicit RenderDocCapture(void* vkInstance);
    // Discards the capture if finish() was not called (an error cut the work short).
    ~RenderDocCapture();
    RenderDocCapture(const RenderDocCapture&) = delete;
    RenderDocCapture& operator=(const RenderDocCapture&) = delete;

    bool active() const { return m_active; }
    // Why the capture did not start (empty when it did).
    const std::string& error() const { return m_error; }
    // Ends the capture: the absolute path of the file RenderDoc wrote (its GetCapture), or an
    // Error(Unsupported) naming what went wrong.
    Result<std::string> finish();

private:
    void* m_device = nullptr;
    bool m_active = false;
    std::uint32_t m_capturesBefore = 0;
    std::string m_error;
};

} // namespace kvs::gpu
