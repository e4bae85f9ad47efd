// SPDX-License-Identifier: MIT
// kvs::gpu::Instance: owns a VkInstance and, with validation on, a messenger that records messages.
#pragma once

#include "kvs/status.h"

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace kvs::gpu {

// KVS_VK_VALIDATION: unset, "", "0", "off", "false" or "no" mean off; any other value means on.
bool validationRequestedByEnv();

struct InstanceOptions {
    // Enables VK_LAYER_KHRONOS_validation and VK_EXT_debug_utils with a messenger that records
    // every warning and error (Instance::validationMessages()). If the layer is not installed,
    // Instance::create fails with Error(Unsupported) instead of running unvalidated.
    bool validation = validationRequestedByEnv();
    // With validation: also the layer's synchronization validation (VK_EXT_validation_features).
    // Skipped when the installed layer lacks that extension; see synchronizationValidation().
    bool synchronizationValidation = true;
};

// One message the validation layer or the loader reported through VK_EXT_debug_utils.
struct ValidationMessage {
    enum class Severity { Warning, Error };
    Severity severity = Severity::Warning;
    std::string type; // "validation", "performance" or "general"
    std::string id; // the message id name, e.g. "VUID-vkCreateDevice-ppEnabledExtensionNames-01387"
    std::string text;
};

// "error [VUID-...] text": one line for logs and test failures.
std::string toString(const ValidationMessage& message);

// A Vulkan instance (the loader opened with dlopen, see kvs/gpu/devices.h) plus, when validation
// is on, a debug-utils messenger. Move-only; a moved-from Instance may only be destroyed or
// assigned to. Destroying it destroys the messenger, then the instance.
class Instance {
public:
    // Errors: Unsupported when there is no loader, no driver or (validation on) no validation
    // layer; the message says which. Vulkan call failures name the call and the VkResult.
    static Result<Instance> create(const InstanceOptions& options = {});

    Instance(Instance&&) noexcept;
    Instance& operator=(Instance&&) noexcept;
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;
    ~Instance();

    // The loader's instance version, e.g. "1.3.239".
    std::string loaderVersion() const;
    bool validation() const;
    bool synchronizationValidation() const;

    // Every warning and error reported since creation (or the last clear), creation included.
    // Thread-safe: the layer may report from any thread.
    std::vector<ValidationMessage> validationMessages() const;
    std::size_t validationMessageCount() const;
    void clearValidationMessages();

    // Sends a message through vkSubmitDebugUtilsMessageEXT, so it reaches the messenger like a
    // layer's message would (tests use it to prove the messenger is wired up). Returns false, doing
    // nothing, when validation is off.
    bool submitDebugMessage(ValidationMessage::Severity severity, const std::string& text) const;

    // The Vulkan handles and entry points; defined in gpu/vk/instance_impl.h for gpu/'s own code.
    struct Impl;
    Impl& impl() const { return *m_impl; }

private:
    explicit Instance(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace kvs::gpu
