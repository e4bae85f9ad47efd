// SPDX-License-Identifier: MIT
// `kvstudio-cli devices`: text and JSON output, the device choice, discovery failure as
// information.
#include "cli.h"
#include "cli_test_support.h"
#include "kvs_test.h"

#include <QCoreApplication>
#include <QProcess>
#include <QtTest>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

using nlohmann::json;

namespace {

constexpr const char* kChildArgument = "--kvs-child-devices-json";

using kvs::test::CliRun;
using kvs::test::run;

// Restores an environment variable when the test ends, however it ends.
class EnvGuard {
public:
    explicit EnvGuard(const char* name)
        : m_name(name), m_wasSet(qEnvironmentVariableIsSet(name)), m_saved(qgetenv(name)) {}
    ~EnvGuard() {
        if (m_wasSet)
            qputenv(m_name, m_saved);
        else
            qunsetenv(m_name);
    }
    EnvGuard(const EnvGuard&) = delete;
    EnvGuard& operator=(const EnvGuard&) = delete;

private:
    const char* m_name;
    bool m_wasSet;
    QByteArray m_saved;
};

} // namespace

class TestCliDevices : public QObject {
    Q_OBJECT

private slots:
    void jsonListsDevicesAndTheChoice() {
        EnvGuard guard("KVS_VULKAN_DEVICE");
        qunsetenv("KVS_VULKAN_DEVICE");
        const CliRun r = run({"devices", "--json"});
        QCOMPARE(r.code, 0);
        const json j = json::parse(r.out);
        QVERIFY(j.at("devices").is_array());
        QVERIFY(j.at("preference").is_null());
        if (j.contains("error")) {
            // Discovery failed on this machine: information, not a crash.
            QVERIFY(j.at("error").is_string());
            QVERIFY(j.at("devices").empty());
            QVERIFY(j.at("chosen").is_null());
            if (qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") != "1")
                QFAIL(j.at("error").get<std::string>().c_str());
            return;
        }
        QVERIFY(!j.at("devices").empty());
        QVERIFY(j.at("loader_version").is_string());
        for (std::size_t i = 0; i < j.at("devices").size(); ++i) {
            const json& d = j.at("devices").at(i);
            QCOMPARE(d.at("index").get<std::size_t>(), i);
            for (const char* key :
                 {"name", "type", "driver_name", "driver_info", "api_version", "driver_version"})
                QVERIFY2(d.at(key).is_string(), key);
            for (const char* key :
                 {"vendor_id", "device_id", "subgroup_size", "max_storage_buffer_range",
                  "max_compute_shared_memory_size", "max_workgroup_invocations"})
                QVERIFY2(d.at(key).is_number_unsigned(), key);
            QVERIFY(d.at("timestamp_period_ns").is_number());
            for (const char* key : {"compute_queue", "timestamps_supported", "float16", "int8",
                                    "storage_16bit", "cpu_emulation"})
                QVERIFY2(d.at(key).is_boolean(), key);
            QVERIFY(!d.at("memory_heaps").empty());
            for (const json& heap : d.at("memory_heaps")) {
                QVERIFY(heap.at("size").is_number_unsigned());
                QVERIFY(heap.at("device_local").is_boolean());
            }
            const std::string type = d.at("type");
            QVERIFY2(type == "discrete" || type == "integrated" || type == "virtual" ||
                         type == "cpu" || type == "other",
                     type.c_str());
            if (d.at("name").get<std::string>().find("llvmpipe") != std::string::npos) {
                QCOMPARE(type, std::string("cpu"));
                QCOMPARE(d.at("cpu_emulation").get<bool>(), true);
                QCOMPARE(d.at("subgroup_size").get<int>(), 8);
            }
        }
        QVERIFY(j.at("chosen").is_number_unsigned());
        QVERIFY(j.at("chosen").get<std::size_t>() < j.at("devices").size());
    }

    void textNamesTheChosenDevice() {
        EnvGuard guard("KVS_VULKAN_DEVICE");
        qunsetenv("KVS_VULKAN_DEVICE");
        const CliRun r = run({"devices"});
        QCOMPARE(r.code, 0);
        QVERIFY2(r.out.find("chosen: [") != std::string::npos ||
                     r.out.find("No Vulkan device available") != std::string::npos,
                 r.out.c_str());
        if (r.out.find("llvmpipe") != std::string::npos) {
            QVERIFY(r.out.find("subgroup size         8") != std::string::npos);
            QVERIFY(r.out.find("CPU emulation") != std::string::npos);
        }
    }

    void preferenceThatMatchesNothing() {
        EnvGuard guard("KVS_VULKAN_DEVICE");
        qputenv("KVS_VULKAN_DEVICE", "no-such-device-xyz");
        const json j = json::parse(run({"devices", "--json"}).out);
        QVERIFY(j.at("chosen").is_null());
        QCOMPARE(j.at("preference").get<std::string>(), std::string("no-such-device-xyz"));
        const CliRun text = run({"devices"});
        QCOMPARE(text.code, 0);
        if (!j.at("devices").empty())
            QVERIFY2(text.out.find("matches no device") != std::string::npos, text.out.c_str());
    }

    void preferenceByIndex() {
        EnvGuard guard("KVS_VULKAN_DEVICE");
        qputenv("KVS_VULKAN_DEVICE", "0");
        const json j = json::parse(run({"devices", "--json"}).out);
        if (j.at("devices").empty())
            QSKIP("no Vulkan device");
        QCOMPARE(j.at("chosen").get<int>(), 0);
        QCOMPARE(j.at("preference").get<std::string>(), std::string("0"));
    }

    void argumentsAreChecked() {
        QCOMPARE(run({"devices", "extra"}).code, 2);
        QCOMPARE(run({"devices", "--bogus=1"}).code, 2);
    }

    // Without a Vulkan loader the command still succeeds and says why there is no device.
    void missingLoaderIsReported() {
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("KVS_VULKAN_LOADER", "/nonexistent/libvulkan.so.1");
        QProcess child;
        child.setProcessEnvironment(env);
        child.start(QCoreApplication::applicationFilePath(), {kChildArgument});
        QVERIFY(child.waitForFinished(60000));
        QCOMPARE(child.exitStatus(), QProcess::NormalExit);
        QCOMPARE(child.exitCode(), 0);
        const json j = json::parse(child.readAllStandardOutput().toStdString());
        QVERIFY(j.at("devices").empty());
        QVERIFY(j.at("chosen").is_null());
        QVERIFY(j.at("loader_version").is_null());
        const std::string error = j.at("error");
        QVERIFY2(error.find("no Vulkan loader (/nonexistent/libvulkan.so.1) found") == 0,
                 error.c_str());
    }
};

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == kChildArgument)
        return kvs::cli::runCli({"devices", "--json"}, {std::cout, std::cerr});
    QCoreApplication app(argc, argv);
    TestCliDevices test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "test_cli_devices.moc"
