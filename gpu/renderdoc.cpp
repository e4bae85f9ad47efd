// SPDX-License-Identifier: MIT
// RenderDoc's in-application API: look-up (already loaded, or loaded when KVS_RENDERDOC asks) and
// one frame capture around a piece of GPU work.
#include "kvs/gpu/renderdoc.h"

#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#include <string_view>
#include <vector>

#if KVS_HAVE_RENDERDOC
#include <renderdoc_app.h>
#endif

namespace kvs::gpu {

namespace {

constexpr const char* kLibrary = "librenderdoc.so";

bool requestedByEnv() {
    const char* e = std::getenv("KVS_RENDERDOC");
    if (!e || !*e)
        return false;
    const std::string_view v(e);
    return v != "0" && v != "off" && v != "no" && v != "false";
}

struct State {
    std::mutex mutex;
    bool looked = false;
    bool capturing = false; // RenderDoc allows one capture at a time
    RenderDocStatus status;
#if KVS_HAVE_RENDERDOC
    RENDERDOC_API_1_4_1* api = nullptr;
#endif
};

State& state() {
    static State s;
    return s;
}

void lookLocked(State& s) {
    if (s.looked)
        return;
    s.looked = true;
#if !KVS_HAVE_RENDERDOC
    s.status.compiledIn = false;
    s.status.reason = "This build has no RenderDoc support: renderdoc_app.h was not found when it "
                      "was configured (install librenderdoc-dev and rebuild).";
#else
    s.status.compiledIn = true;
    void* library = dlopen(kLibrary, RTLD_NOW | RTLD_NOLOAD);
    if (!library && requestedByEnv()) {
        library = dlopen(kLibrary, RTLD_NOW);
        if (!library) {
            const char* why = dlerror();
            s.status.reason = std::string("KVS_RENDERDOC is set but ") + kLibrary +
                              " could not be loaded (" + (why ? why : "unknown error") +
                              "); install the renderdoc package.";
            return;
        }
    }
    if (!library) {
        s.status.reason = "RenderDoc is not loaded: start KV Studio from RenderDoc, or set "
                          "KVS_RENDERDOC=1 to load librenderdoc.so at start-up.";
        return;
    }
    const auto getApi = reinterpret_cast<pRENDERDOC_GetAPI>(dlsym(library, "RENDERDOC_GetAPI"));
    if (!getApi) {
        s.status.reason = std::string(kLibrary) + " has no RENDERDOC_GetAPI entry point.";
        return;
    }
    void* api = nullptr;
    if (getApi(eRENDERDOC_API_Version_1_4_1, &api) != 1 || !api) {
        s.status.reason = "RenderDoc refused in-application API version 1.4.1.";
        return;
    }
    s.api = static_cast<RENDERDOC_API_1_4_1*>(api);
    int major = 0, minor = 0, patch = 0;
    s.api->GetAPIVersion(&major, &minor, &patch);
    s.status.version =
        std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    s.status.available = true;
#endif
}

} // namespace

RenderDocStatus renderDocStatus() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    lookLocked(s);
    return s.status;
}

void preloadRenderDocFromEnv() {
    if (requestedByEnv())
        (void)renderDocStatus();
}

RenderDocCapture::RenderDocCapture([[maybe_unused]] void* vkInstance) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    lookLocked(s);
    if (!s.status.available) {
        m_error = s.status.reason;
        return;
    }
#if KVS_HAVE_RENDERDOC
    if (!vkInstance) {
        m_error = "There is no Vulkan instance to capture.";
        return;
    }
    if (s.capturing) {
        m_error = "Another RenderDoc capture is running.";
        return;
    }
    m_device = RENDERDOC_DEVICEPOINTER_FROM_VKINSTANCE(vkInstance);
    m_capturesBefore = s.api->GetNumCaptures();
    s.api->StartFrameCapture(m_device, nullptr);
    if (s.api->IsFrameCapturing() == 0) {
        m_error = "RenderDoc did not start capturing: this Vulkan instance is not hooked (was it "
                  "created before RenderDoc was loaded? Set KVS_RENDERDOC=1 before starting).";
        return;
    }
    s.capturing = true;
    m_active = true;
#endif
}

RenderDocCapture::~RenderDocCapture() {
#if KVS_HAVE_RENDERDOC
    if (!m_active)
        return;
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.api->DiscardFrameCapture(m_device, nullptr);
    s.capturing = false;
#endif
}

Result<std::string> RenderDocCapture::finish() {
    if (!m_active)
        return Error(ErrorCode::Unsupported,
                     m_error.empty() ? "The RenderDoc capture has already finished." : m_error);
    m_active = false;
#if KVS_HAVE_RENDERDOC
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.capturing = false;
    if (s.api->EndFrameCapture(m_device, nullptr) != 1)
        return Error(ErrorCode::Unsupported, "RenderDoc could not write the capture.");
    const std::uint32_t count = s.api->GetNumCaptures();
    if (count <= m_capturesBefore)
        return Error(ErrorCode::Unsupported,
                     "RenderDoc ended the capture but lists no new capture file.");
    std::uint32_t length = 0;
    if (s.api->GetCapture(count - 1, nullptr, &length, nullptr) != 1 || length == 0)
        return Error(ErrorCode::Unsupported, "RenderDoc does not name the capture file.");
    std::vector<char> path(length + 1, '\0');
    s.api->GetCapture(count - 1, path.data(), &length, nullptr);
    return std::string(path.data());
#else
    return Error(ErrorCode::Unsupported, m_error);
#endif
}

} // namespace kvs::gpu
