// SPDX-License-Identifier: MIT
// Instance creation: version choice, the validation layer and the debug-utils messenger.
#include "instance_impl.h"

#include "check.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace kvs::gpu {

bool validationRequestedByEnv() {
    const char* value = std::getenv("KVS_VK_VALIDATION");
    if (!value)
        return false;
    const std::string_view v(value);
    return !(v.empty() || v == "0" || v == "off" || v == "false" || v == "no");
}

std::string toString(const ValidationMessage& message) {
    std::string line = message.severity == ValidationMessage::Severity::Error ? "error" : "warning";
    if (!message.type.empty())
        line += " (" + message.type + ")";
    if (!message.id.empty())
        line += " [" + message.id + "]";
    return line + " " + message.text;
}

namespace vk {

void MessageLog::add(ValidationMessage message) {
    std::lock_guard lock(m_mutex);
    m_messages.push_back(std::move(message));
}

std::vector<ValidationMessage> MessageLog::all() const {
    std::lock_guard lock(m_mutex);
    return m_messages;
}

std::size_t MessageLog::size() const {
    std::lock_guard lock(m_mutex);
    return m_messages.size();
}

void MessageLog::clear() {
    std::lock_guard lock(m_mutex);
    m_messages.clear();
}

} // namespace vk

namespace {

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

VKAPI_ATTR VkBool32 VKAPI_CALL onDebugMessage(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT types,
                                              const VkDebugUtilsMessengerCallbackDataEXT* data,
                                              void* user) {
    try {
        ValidationMessage message;
        message.severity = (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)
                               ? ValidationMessage::Severity::Error
                               : ValidationMessage::Severity::Warning;
        message.type = (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT)    ? "validation"
                       : (types & VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT) ? "performance"
                                                                                   : "general";
        if (data && data->pMessageIdName)
            message.id = data->pMessageIdName;
        if (data && data->pMessage)
            message.text = data->pMessage;
        static_cast<vk::MessageLog*>(user)->add(std::move(message));
    } catch (...) {
        // Out of memory while recording: nothing sensible to do inside a driver callback.
    }
    return VK_FALSE; // never abort the call that triggered the message
}

VkDebugUtilsMessengerCreateInfoEXT messengerInfo(vk::MessageLog& log) {
    VkDebugUtilsMessengerCreateInfoEXT info{};
    info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
    info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    info.pfnUserCallback = &onDebugMessage;
    info.pUserData = &log;
    return info;
}

bool contains(const std::vector<VkExtensionProperties>& list, const char* name) {
    return std::any_of(list.begin(), list.end(), [&](const VkExtensionProperties& e) {
        return std::strcmp(e.extensionName, name) == 0;
    });
}

std::vector<VkExtensionProperties> instanceExtensions(const vk::GlobalFunctions& g,
                                                      const char* layer) {
    return vk::enumerateAll<VkExtensionProperties>(
        "vkEnumerateInstanceExtensionProperties",
        [&](std::uint32_t* count, VkExtensionProperties* items) {
            return g.vkEnumerateInstanceExtensionProperties(layer, count, items);
        });
}

std::string versionString(std::uint32_t version) {
    return std::to_string(VK_API_VERSION_MAJOR(version)) + "." +
           std::to_string(VK_API_VERSION_MINOR(version)) + "." +
           std::to_string(VK_API_VERSION_PATCH(version));
}

} // namespace

Instance::Impl::~Impl() {
    if (messenger != VK_NULL_HANDLE && fns.vkDestroyDebugUtilsMessengerEXT)
        fns.vkDestroyDebugUtilsMessengerEXT(instance, messenger, nullptr);
    if (instance != VK_NULL_HANDLE && fns.vkDestroyInstance)
        fns.vkDestroyInstance(instance, nullptr);
}

Instance::Instance(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Instance::Instance(Instance&&) noexcept = default;
Instance& Instance::operator=(Instance&&) noexcept = default;
Instance::~Instance() = default;

Result<Instance> Instance::create(const InstanceOptions& options) {
    return catchErrors([&]() -> Instance {
        const vk::GlobalFunctions& g = vk::globalFunctions();
        auto impl = std::make_unique<Impl>();
        impl->global = &g;

        if (g.vkEnumerateInstanceVersion)
            KVS_VK_CHECK(g.vkEnumerateInstanceVersion(&impl->loaderVersion));
        // A 1.0 loader rejects any other apiVersion; newer ones accept 1.3 and give us
        // min(loader, 1.3) at instance level.
        const std::uint32_t requested =
            impl->loaderVersion >= VK_API_VERSION_1_1 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_0;
        impl->apiVersion =
            std::min(requested, VK_MAKE_API_VERSION(0, VK_API_VERSION_MAJOR(impl->loaderVersion),
                                                    VK_API_VERSION_MINOR(impl->loaderVersion), 0));

        const auto available = instanceExtensions(g, nullptr);
        std::vector<const char*> extensions;
        std::vector<const char*> layers;
        VkInstanceCreateFlags flags = 0;
        // Lets the loader list portability (MoltenVK-style) drivers too; harmless elsewhere.
        if (contains(available, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
            extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
            flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
        }

        VkDebugUtilsMessengerCreateInfoEXT chainedMessenger = messengerInfo(impl->log);
        const VkValidationFeatureEnableEXT syncValidation =
            VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
        VkValidationFeaturesEXT features{};
        features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT;
        features.enabledValidationFeatureCount = 1;
        features.pEnabledValidationFeatures = &syncValidation;
        const void* chain = nullptr;

        if (options.validation) {
            const auto installed = vk::enumerateAll<VkLayerProperties>(
                "vkEnumerateInstanceLayerProperties",
                [&](std::uint32_t* count, VkLayerProperties* items) {
                    return g.vkEnumerateInstanceLayerProperties(count, items);
                });
            const bool hasLayer =
                std::any_of(installed.begin(), installed.end(), [](const VkLayerProperties& l) {
                    return std::strcmp(l.layerName, kValidationLayer) == 0;
                });
            if (!hasLayer)
                throw Error(ErrorCode::Unsupported,
                            std::string("Vulkan validation was requested (KVS_VK_VALIDATION or "
                                        "InstanceOptions::validation) but the layer ") +
                                kValidationLayer +
                                " is not installed (Debian/Ubuntu: apt install "
                                "vulkan-validationlayers; or the LunarG SDK); install it or turn "
                                "validation off");
            const auto fromLayer = instanceExtensions(g, kValidationLayer);
            if (!contains(available, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) &&
                !contains(fromLayer, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
                throw Error(ErrorCode::Unsupported,
                            "Vulkan validation was requested but neither the loader nor the "
                            "validation layer offers " VK_EXT_DEBUG_UTILS_EXTENSION_NAME
                            ", so its messages could not be recorded");
            layers.push_back(kValidationLayer);
            extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
            chain = &chainedMessenger;
            if (options.synchronizationValidation &&
                contains(fromLayer, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
                extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
                chainedMessenger.pNext = &features;
                impl->synchronizationValidation = true;
            }
            impl->validation = true;
        }

        VkApplicationInfo app{};
        app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
        app.pApplicationName = "KV Studio";
        app.pEngineName = "kvs_gpu";
        app.apiVersion = requested;

        VkInstanceCreateInfo info{};
        info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
        info.pNext = chain;
        info.flags = flags;
        info.pApplicationInfo = &app;
        info.enabledLayerCount = static_cast<std::uint32_t>(layers.size());
        info.ppEnabledLayerNames = layers.data();
        info.enabledExtensionCount = static_cast<std::uint32_t>(extensions.size());
        info.ppEnabledExtensionNames = extensions.data();

        try {
            KVS_VK_CHECK(g.vkCreateInstance(&info, nullptr, &impl->instance));
        } catch (const Error& e) {
            // With validation on, the loader usually said why ("Found no drivers!"): keep it.
            std::string message = e.what();
            for (const auto& m : impl->log.all())
                message += "; loader: " + m.text;
            throw Error(e.code(), message);
        }
        impl->fns.load(g.vkGetInstanceProcAddr, impl->instance);

        if (impl->validation) {
            if (!impl->fns.vkCreateDebugUtilsMessengerEXT)
                throw Error(ErrorCode::Internal,
                            "VK_EXT_debug_utils is enabled but vkCreateDebugUtilsMessengerEXT is "
                            "missing");
            VkDebugUtilsMessengerCreateInfoEXT persistent = messengerInfo(impl->log);
            KVS_VK_CHECK(impl->fns.vkCreateDebugUtilsMessengerEXT(impl->instance, &persistent,
                                                                  nullptr, &impl->messenger));
        }
        return Instance(std::move(impl));
    });
}

std::string Instance::loaderVersion() const {
    return versionString(m_impl->loaderVersion);
}

bool Instance::validation() const {
    return m_impl->validation;
}

bool Instance::synchronizationValidation() const {
    return m_impl->synchronizationValidation;
}

std::vector<ValidationMessage> Instance::validationMessages() const {
    return m_impl->log.all();
}

std::size_t Instance::validationMessageCount() const {
    return m_impl->log.size();
}

void Instance::clearValidationMessages() {
    m_impl->log.clear();
}

bool Instance::submitDebugMessage(ValidationMessage::Severity severity,
                                  const std::string& text) const {
    if (!m_impl->validation || !m_impl->fns.vkSubmitDebugUtilsMessageEXT)
        return false;
    VkDebugUtilsMessengerCallbackDataEXT data{};
    data.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CALLBACK_DATA_EXT;
    data.pMessageIdName = "kvs-submitted";
    data.pMessage = text.c_str();
    m_impl->fns.vkSubmitDebugUtilsMessageEXT(m_impl->instance,
                                             severity == ValidationMessage::Severity::Error
                                                 ? VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT
                                                 : VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
                                             VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT, &data);
    return true;
}

} // namespace kvs::gpu
