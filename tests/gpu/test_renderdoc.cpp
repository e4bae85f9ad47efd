// SPDX-License-Identifier: MIT
// The RenderDoc wrapper (kvs/gpu/renderdoc.h) where RenderDoc is not running, as in CI: it says
// "not available" and why, a capture does not start and its finish() fails with that reason, a
// Vulkan backend still works. With KVS_TEST_RENDERDOC=1 (a manual check on a machine with the
// renderdoc package; CI never sets it) a child process started with KVS_RENDERDOC=1 captures
// one layer call on the Vulkan device, and the file RenderDoc names must exist.
#include "kvs/gpu/renderdoc.h"
#include "kvs/gpu/vulkan_backend.h"
#include "kvs_test.h"

#include <QCoreApplication>
#include <QFileInfo>
#include <QProcess>
#include <QtTest>
#include <iostream>

using namespace kvs;
using namespace kvs::gpu;

namespace {

constexpr const char* kChildArgument = "--kvs-child-capture";

// Child: one attention call captured; prints "capture <path>" or "error <why>".
int runChild() {
    VulkanBackendOptions options;
    options.instance.validation = false;
    auto vulkan = makeVulkanBackend(options);
    if (!vulkan) {
        std::cout << "error no Vulkan: " << vulkan.message() << std::endl;
        return 0;
    }
    const CompressedHead head = exactHead(Matrix::Ones(64, 32), Matrix::Ones(64, 32));
    const Matrix queries[] = {Matrix::Ones(2, 32)};
    RenderDocCapture capture((*vulkan)->nativeInstance());
    if (!capture.active()) {
        std::cout << "error " << capture.error() << std::endl;
        return 0;
    }
    const auto out =
        (*vulkan)->attendLayer({std::span<const CompressedHead>(&head, 1), queries, 1, {}});
    const auto path = capture.finish();
    if (!out.ok())
        std::cout << "error attend: " << out.message() << std::endl;
    else if (!path.ok())
        std::cout << "error " << path.message() << std::endl;
    else
        std::cout << "capture " << path.value() << std::endl;
    return 0;
}

} // namespace

class TestRenderDoc : public QObject {
    Q_OBJECT

private slots:
    void notAvailableWithoutRenderDoc() {
        if (qEnvironmentVariableIsSet("KVS_RENDERDOC"))
            QSKIP("KVS_RENDERDOC is set: RenderDoc may be loaded on purpose");
        const RenderDocStatus status = renderDocStatus();
        QVERIFY(!status.available);
        QVERIFY(status.version.empty());
        const QString reason = QString::fromStdString(status.reason);
        if (status.compiledIn)
            QVERIFY2(reason.contains("RenderDoc is not loaded") &&
                         reason.contains("KVS_RENDERDOC=1"),
                     qPrintable(reason));
        else
            QVERIFY2(reason.contains("renderdoc_app.h") && reason.contains("librenderdoc-dev"),
                     qPrintable(reason));

        RenderDocCapture none(nullptr);
        QVERIFY(!none.active());
        QCOMPARE(none.error(), status.reason);
        KVS_VERIFY_ERROR(none.finish(), status.reason.c_str());

        // With a real instance it does not start either, and the backend keeps working.
        VulkanBackendOptions options;
        options.instance.validation = true;
        auto vulkan = makeVulkanBackend(options);
        if (!vulkan)
            return; // no Vulkan here: the part above is what can be tested
        QVERIFY((*vulkan)->nativeInstance() != nullptr);
        {
            RenderDocCapture capture((*vulkan)->nativeInstance());
            QVERIFY(!capture.active());
            QCOMPARE(capture.error(), status.reason);
            const CompressedHead head = exactHead(Matrix::Ones(8, 4), Matrix::Ones(8, 4));
            const auto out = (*vulkan)->attend(head, Matrix::Ones(1, 4), {});
            KVS_VERIFY_OK(out);
            QCOMPARE(out->outputs(0, 0), 1.0f);
        } // the destructor of an inactive capture does nothing
        QVERIFY(!renderDocStatus().available);
        QVERIFY((*vulkan)->validationMessages().empty());
    }

    // Manual: KVS_TEST_RENDERDOC=1 on a machine with `apt-get install renderdoc`.
    void realCaptureWhenAsked() {
        if (qEnvironmentVariable("KVS_TEST_RENDERDOC") != "1")
            QSKIP("set KVS_TEST_RENDERDOC=1 to capture with an installed RenderDoc");
        if (!renderDocStatus().compiledIn)
            QSKIP("built without renderdoc_app.h");
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("KVS_RENDERDOC", "1");
        QProcess child;
        child.setProcessEnvironment(env);
        child.start(QCoreApplication::applicationFilePath(), {kChildArgument});
        QVERIFY(child.waitForFinished(120000));
        QCOMPARE(child.exitCode(), 0);
        const QString out = QString::fromLocal8Bit(child.readAllStandardOutput()).trimmed();
        qInfo("child: %s", qPrintable(out));
        QVERIFY2(out.startsWith("capture "), qPrintable(out));
        const QFileInfo file(out.mid(8));
        QVERIFY2(file.exists() && file.size() > 0, qPrintable(file.filePath()));
    }
};

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == kChildArgument)
        return runChild();
    QCoreApplication app(argc, argv);
    TestRenderDoc test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "test_renderdoc.moc"
