// SPDX-License-Identifier: MIT
// Vulkan device discovery: real devices (lavapipe in CI), validation, the device choice, failures.
#include "kvs/gpu/devices.h"
#include "kvs_test.h"

#include <QCoreApplication>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <cstdlib>
#include <iostream>
#include <regex>

using namespace kvs;
using namespace kvs::gpu;

namespace {

// The test binary re-runs itself with this argument to try discovery under a changed
// environment: the Vulkan loader reads its variables once per process and is never unloaded.
constexpr const char* kChildArgument = "--kvs-child-enumerate";

// Prints "devices N" or "error CODE: MESSAGE" and exits 0: the parent checks the output, and any
// crash shows up as a non-zero exit or a signal.
int runChild() {
    const auto devices = enumerateDevices();
    if (devices.ok())
        std::cout << "devices " << devices->size() << std::endl;
    else
        std::cout << "error " << toString(devices.error().code()) << ": " << devices.message()
                  << std::endl;
    return 0;
}

struct ChildOutcome {
    bool exitedNormally = false;
    int exitCode = -1;
    QString out;
    QString err;
};

ChildOutcome runChildWith(const QMap<QString, QString>& set, const QStringList& unset = {}) {
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    for (const auto& name : unset)
        env.remove(name);
    for (auto it = set.begin(); it != set.end(); ++it)
        env.insert(it.key(), it.value());
    QProcess child;
    child.setProcessEnvironment(env);
    child.start(QCoreApplication::applicationFilePath(), {kChildArgument});
    ChildOutcome outcome;
    if (!child.waitForFinished(60000)) {
        child.kill();
        child.waitForFinished();
        return outcome;
    }
    outcome.exitedNormally = child.exitStatus() == QProcess::NormalExit;
    outcome.exitCode = child.exitCode();
    outcome.out = QString::fromLocal8Bit(child.readAllStandardOutput()).trimmed();
    outcome.err = QString::fromLocal8Bit(child.readAllStandardError());
    return outcome;
}

DeviceInfo fakeDevice(std::size_t index, const std::string& name, DeviceType type) {
    DeviceInfo d;
    d.index = index;
    d.name = name;
    d.type = type;
    d.hasCompute = true;
    return d;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

} // namespace

class TestDevices : public QObject {
    Q_OBJECT

    // The devices of this machine. No device fails the suite (CI has lavapipe, and "no device"
    // must not pass silently) unless KVS_TEST_ALLOW_NO_VULKAN=1, which turns it into a skip.
    std::vector<DeviceInfo> m_devices;
    std::string m_discoveryError;

private slots:
    void initTestCase() {
        auto devices = enumerateDevices(InstanceOptions{.validation = false});
        if (devices.ok())
            m_devices = *devices;
        else
            m_discoveryError = devices.message();
    }

    void findsADevice() {
        if (m_devices.empty() && qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") == "1")
            QSKIP(qPrintable(
                QString("no Vulkan device: %1").arg(QString::fromStdString(m_discoveryError))));
        QVERIFY2(m_discoveryError.empty(), m_discoveryError.c_str());
        QVERIFY2(!m_devices.empty(), "the Vulkan loader works but lists no device");
        for (const auto& d : m_devices)
            qInfo("%s", summaryLine(d).c_str());
    }

    // What the Vulkan spec guarantees for every device, so these hold on any machine.
    void everyDeviceIsPlausible() {
        const std::regex version(R"(\d+\.\d+\.\d+)");
        for (std::size_t i = 0; i < m_devices.size(); ++i) {
            const DeviceInfo& d = m_devices[i];
            QCOMPARE(d.index, i);
            QVERIFY(!d.name.empty());
            QVERIFY2(std::regex_match(d.apiVersion, version), d.apiVersion.c_str());
            QVERIFY(!d.driverVersion.empty());
            QVERIFY(!d.memoryHeaps.empty());
            QVERIFY2(std::any_of(d.memoryHeaps.begin(), d.memoryHeaps.end(),
                                 [](const MemoryHeap& h) { return h.deviceLocal && h.size > 0; }),
                     "the spec requires a device-local heap");
            QVERIFY(d.maxStorageBufferRange >= (1u << 27));
            QVERIFY(d.maxComputeSharedMemorySize >= 16384);
            QVERIFY(d.maxWorkgroupInvocations >= 128);
            if (d.timestampsSupported)
                QVERIFY(d.timestampPeriod > 0.0);
            if (d.subgroupSize != 0)
                QVERIFY2((d.subgroupSize & (d.subgroupSize - 1)) == 0, "power of two");
            if (d.type == DeviceType::Cpu)
                QVERIFY(d.isCpuEmulation());
            QVERIFY(contains(summaryLine(d), d.name));
        }
    }

    // Mesa lavapipe as measured in docs (shared/GPU.md): checked only where it is present.
    void lavapipeSpecifics() {
        bool seen = false;
        for (const auto& d : m_devices) {
            if (!contains(d.name, "llvmpipe"))
                continue;
            seen = true;
            QCOMPARE(d.type, DeviceType::Cpu);
            QVERIFY(d.isCpuEmulation());
            QCOMPARE(d.driverName, std::string("llvmpipe"));
            QVERIFY(contains(d.driverInfo, "Mesa"));
            QCOMPARE(d.vendorId, 0x10005u); // VK_VENDOR_ID_MESA
            QVERIFY(d.hasCompute);
            QCOMPARE(d.subgroupSize, 8u);
            QVERIFY(d.timestampsSupported);
            QVERIFY(d.timestampPeriod > 0.0);
            QVERIFY(!d.memoryHeaps.empty());
            QVERIFY(d.float16);
            QVERIFY(d.int8);
            QVERIFY(d.storage16bit);
            QVERIFY(d.apiVersion.rfind("1.", 0) == 0);
        }
        if (!seen)
            QSKIP("no lavapipe device on this machine");
    }

    void validationRecordsNothingWhileEnumerating() {
        auto instance = Instance::create(InstanceOptions{.validation = true});
        if (!instance.ok() && contains(instance.message(), "VK_LAYER_KHRONOS_validation"))
            QSKIP(instance.message().c_str());
        KVS_VERIFY_OK(instance);
        QVERIFY(instance->validation());
        QVERIFY(!instance->loaderVersion().empty());
        qInfo("loader %s, synchronization validation %s", instance->loaderVersion().c_str(),
              instance->synchronizationValidation() ? "on" : "off (layer lacks it)");

        auto devices = enumerateDevices(*instance);
        KVS_VERIFY_OK(devices);
        QCOMPARE(devices->size(), m_devices.size());
        QString all;
        for (const auto& m : instance->validationMessages())
            all += QString::fromStdString(toString(m)) + "\n";
        QVERIFY2(instance->validationMessageCount() == 0, qPrintable(all));

        // The messenger is really listening: a submitted message arrives and is recorded.
        QVERIFY(instance->submitDebugMessage(ValidationMessage::Severity::Error, "probe 42"));
        const auto messages = instance->validationMessages();
        QVERIFY(!messages.empty());
        QVERIFY(std::any_of(messages.begin(), messages.end(), [](const ValidationMessage& m) {
            return m.severity == ValidationMessage::Severity::Error && m.text == "probe 42";
        }));
        instance->clearValidationMessages();
        QCOMPARE(instance->validationMessageCount(), std::size_t(0));
    }

    void withoutValidationNothingIsRecorded() {
        auto instance = Instance::create(InstanceOptions{.validation = false});
        if (m_devices.empty())
            QSKIP("no Vulkan");
        KVS_VERIFY_OK(instance);
        QVERIFY(!instance->validation());
        QVERIFY(!instance->submitDebugMessage(ValidationMessage::Severity::Error, "unheard"));
        QCOMPARE(instance->validationMessageCount(), std::size_t(0));
    }

    void instanceIsMovable() {
        auto created = Instance::create(InstanceOptions{.validation = false});
        if (m_devices.empty())
            QSKIP("no Vulkan");
        KVS_VERIFY_OK(created);
        Instance a = std::move(created).value();
        Instance b = std::move(a);
        auto other = Instance::create(InstanceOptions{.validation = false});
        KVS_VERIFY_OK(other);
        b = std::move(other).value(); // destroys b's first instance
        auto devices = enumerateDevices(b);
        KVS_VERIFY_OK(devices);
        QCOMPARE(devices->size(), m_devices.size());
    }

    void typeNames() {
        QCOMPARE(std::string(toString(DeviceType::Discrete)), std::string("discrete"));
        QCOMPARE(std::string(toString(DeviceType::Integrated)), std::string("integrated"));
        QCOMPARE(std::string(toString(DeviceType::Virtual)), std::string("virtual"));
        QCOMPARE(std::string(toString(DeviceType::Cpu)), std::string("cpu"));
        QCOMPARE(std::string(toString(DeviceType::Other)), std::string("other"));
    }

    void cpuEmulationIsRecognised() {
        QVERIFY(fakeDevice(0, "anything", DeviceType::Cpu).isCpuEmulation());
        QVERIFY(fakeDevice(0, "LLVMpipe (old driver)", DeviceType::Other).isCpuEmulation());
        QVERIFY(fakeDevice(0, "SwiftShader Device", DeviceType::Other).isCpuEmulation());
        QVERIFY(!fakeDevice(0, "NVIDIA H100 80GB HBM3", DeviceType::Discrete).isCpuEmulation());
    }

    void automaticChoiceRanksTypes() {
        const std::vector<DeviceInfo> all = {
            fakeDevice(0, "llvmpipe (LLVM 15.0.6, 256 bits)", DeviceType::Cpu),
            fakeDevice(1, "Intel(R) UHD Graphics 630", DeviceType::Integrated),
            fakeDevice(2, "NVIDIA GeForce RTX 3090", DeviceType::Discrete),
            fakeDevice(3, "NVIDIA H100 80GB HBM3", DeviceType::Discrete),
            fakeDevice(4, "Virtio-GPU Venus", DeviceType::Virtual),
        };
        QCOMPARE(chooseDevice(all, ""), std::optional<std::size_t>(2)); // first discrete
        QCOMPARE(chooseDevice(all, "  "), std::optional<std::size_t>(2));
        const std::vector<DeviceInfo> noDiscrete = {all[0], all[4], all[1]};
        QCOMPARE(chooseDevice(noDiscrete, ""), std::optional<std::size_t>(2)); // integrated
        const std::vector<DeviceInfo> virtualOrCpu = {all[0], all[4]};
        QCOMPARE(chooseDevice(virtualOrCpu, ""), std::optional<std::size_t>(1));
        const std::vector<DeviceInfo> cpuOnly = {all[0]};
        QCOMPARE(chooseDevice(cpuOnly, ""), std::optional<std::size_t>(0));
        QCOMPARE(chooseDevice({}, ""), std::optional<std::size_t>());

        // A device without a compute queue is never chosen automatically.
        std::vector<DeviceInfo> withoutCompute = {all[2], all[0]};
        withoutCompute[0].hasCompute = false;
        QCOMPARE(chooseDevice(withoutCompute, ""), std::optional<std::size_t>(1));
    }

    void explicitChoice() {
        const std::vector<DeviceInfo> all = {
            fakeDevice(0, "llvmpipe (LLVM 15.0.6, 256 bits)", DeviceType::Cpu),
            fakeDevice(1, "NVIDIA H100 80GB HBM3", DeviceType::Discrete),
            fakeDevice(2, "NVIDIA H200", DeviceType::Discrete),
        };
        QCOMPARE(chooseDevice(all, "0"), std::optional<std::size_t>(0));
        QCOMPARE(chooseDevice(all, " 2 "), std::optional<std::size_t>(2));
        QCOMPARE(chooseDevice(all, "3"), std::optional<std::size_t>());
        QCOMPARE(chooseDevice(all, "99999999999999999999"), std::optional<std::size_t>());
        QCOMPARE(chooseDevice(all, "LLVMPIPE"), std::optional<std::size_t>(0));
        QCOMPARE(chooseDevice(all, "nvidia"), std::optional<std::size_t>(1)); // lowest index
        QCOMPARE(chooseDevice(all, "h200"), std::optional<std::size_t>(2));
        QCOMPARE(chooseDevice(all, "radeon"), std::optional<std::size_t>());
        QCOMPARE(chooseDevice({}, "0"), std::optional<std::size_t>());

        // The index is DeviceInfo::index, not the position in a filtered list.
        const std::vector<DeviceInfo> filtered = {all[2]};
        QCOMPARE(chooseDevice(filtered, "2"), std::optional<std::size_t>(0));
        QCOMPARE(chooseDevice(filtered, "0"), std::optional<std::size_t>());
    }

    void preferenceComesFromTheEnvironment() {
        const QByteArray saved = qgetenv("KVS_VULKAN_DEVICE");
        const bool wasSet = qEnvironmentVariableIsSet("KVS_VULKAN_DEVICE");
        qputenv("KVS_VULKAN_DEVICE", "llvmpipe");
        QCOMPARE(devicePreferenceFromEnv(), std::string("llvmpipe"));
        qunsetenv("KVS_VULKAN_DEVICE");
        QCOMPARE(devicePreferenceFromEnv(), std::string());
        if (wasSet)
            qputenv("KVS_VULKAN_DEVICE", saved);
    }

    void validationSwitchReadsTheEnvironment() {
        const QByteArray saved = qgetenv("KVS_VK_VALIDATION");
        const bool wasSet = qEnvironmentVariableIsSet("KVS_VK_VALIDATION");
        for (const char* on : {"1", "yes", "gpuav"}) {
            qputenv("KVS_VK_VALIDATION", on);
            QVERIFY2(validationRequestedByEnv(), on);
            QVERIFY(InstanceOptions{}.validation);
        }
        for (const char* off : {"", "0", "off", "false", "no"}) {
            qputenv("KVS_VK_VALIDATION", off);
            QVERIFY2(!validationRequestedByEnv(), off);
        }
        qunsetenv("KVS_VK_VALIDATION");
        QVERIFY(!validationRequestedByEnv());
        QVERIFY(!InstanceOptions{}.validation);
        if (wasSet)
            qputenv("KVS_VK_VALIDATION", saved);
    }

    // Discovery failures are values, never crashes; each runs in a fresh process.
    void missingDriverIsAnErrorOrAnEmptyList() {
        const QString missing = "/nonexistent/kvs-no-such-icd.json";
        const auto child = runChildWith({{"VK_ICD_FILENAMES", missing},
                                         {"VK_DRIVER_FILES", missing},
                                         {"KVS_VK_VALIDATION", "0"}},
                                        {"VK_ADD_DRIVER_FILES"});
        QVERIFY2(child.exitedNormally && child.exitCode == 0, qPrintable(child.err));
        QVERIFY2(child.out == "devices 0" || child.out.startsWith("error "), qPrintable(child.out));
        if (child.out.startsWith("error ")) {
            // The loader refuses vkCreateInstance; KVS_VK_CHECK names the call, result and place.
            QVERIFY2(child.out.contains("vkCreateInstance failed: VK_ERROR_"),
                     qPrintable(child.out));
            QVERIFY2(child.out.contains("[gpu/vk/instance.cpp:"), qPrintable(child.out));
        }
    }

    void missingLoaderIsUnsupported() {
        const auto child = runChildWith(
            {{"KVS_VULKAN_LOADER", "/nonexistent/libvulkan.so.1"}, {"KVS_VK_VALIDATION", "0"}});
        QVERIFY2(child.exitedNormally && child.exitCode == 0, qPrintable(child.err));
        QVERIFY2(child.out.startsWith(
                     "error unsupported: no Vulkan loader (/nonexistent/libvulkan.so.1) found: "),
                 qPrintable(child.out));
    }

    void missingValidationLayerIsAnError() {
        if (m_devices.empty())
            QSKIP("no Vulkan");
        QTemporaryDir emptyLayerDir;
        QVERIFY(emptyLayerDir.isValid());
        // VK_LAYER_PATH replaces the loader's search path for explicit layers.
        const auto child =
            runChildWith({{"VK_LAYER_PATH", emptyLayerDir.path()}, {"KVS_VK_VALIDATION", "1"}},
                         {"VK_ADD_LAYER_PATH", "VK_INSTANCE_LAYERS", "VK_LOADER_LAYERS_ENABLE"});
        QVERIFY2(child.exitedNormally && child.exitCode == 0, qPrintable(child.err));
        QVERIFY2(child.out.startsWith("error unsupported: ") &&
                     child.out.contains("VK_LAYER_KHRONOS_validation is not installed"),
                 qPrintable(child.out));
    }
};

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == kChildArgument)
        return runChild();
    QCoreApplication app(argc, argv);
    TestDevices test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "test_devices.moc"
