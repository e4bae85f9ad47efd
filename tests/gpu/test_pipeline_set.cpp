// SPDX-License-Identifier: MIT
// The pipeline set keeps at most its capacity of pipelines and destroys the least recently used
// one for a new key (the studio's soak: docs/soak.md), while a key asked for again is served
// without a new compile. Copy-kernel pipelines of distinct workgroup sizes are the keys; runs
// under the Khronos validation layer, any message fails the test.
#include "kernels/pipelines.h"
#include "kvs_test.h"

#include <QtTest>

using namespace kvs::gpu;
using kernels::Kernel;
using kernels::PipelineKey;
using kernels::PipelineSet;

namespace {

PipelineKey copyKey(std::uint32_t wg) {
    PipelineKey key;
    key.kernel = Kernel::Copy;
    key.wg = wg;
    return key;
}

} // namespace

class TestPipelineSet : public QObject {
    Q_OBJECT

    std::unique_ptr<vk::Context> m_context;
    std::string m_error;

    void requireVulkan() {
        if (!m_context && qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") == "1")
            QSKIP(qPrintable(QString("no Vulkan: %1").arg(QString::fromStdString(m_error))));
        QVERIFY2(m_context, m_error.c_str());
    }

private slots:
    void initTestCase() {
        vk::ContextOptions options;
        options.instance.validation = true;
        try {
            m_context = vk::Context::create(options);
        } catch (const std::exception& e) {
            m_error = e.what();
        }
    }

    void cleanup() {
        if (!m_context)
            return;
        const auto messages = m_context->instance().validationMessages();
        m_context->instance().clearValidationMessages();
        QString all;
        for (const auto& m : messages)
            all += QString::fromStdString(toString(m)) + "\n";
        QVERIFY2(messages.empty(), qPrintable(all));
    }

    void keysAreBuiltOnce() {
        requireVulkan();
        PipelineSet set(*m_context);
        const vk::Pipeline& first = set.get(copyKey(64));
        QCOMPARE(&set.get(copyKey(64)), &first);
        QCOMPARE(set.created(), std::size_t{1});
        set.get(copyKey(128));
        QCOMPARE(set.size(), std::size_t{2});
        QCOMPARE(set.created(), std::size_t{2});
    }

    void theLeastRecentlyUsedGoesBeyondTheCapacity() {
        requireVulkan();
        PipelineSet set(*m_context, 8);
        QCOMPARE(set.capacity(), std::size_t{8});
        for (std::uint32_t i = 1; i <= 8; ++i)
            set.get(copyKey(32 * i));
        QCOMPARE(set.size(), std::size_t{8});
        set.get(copyKey(32)); // used again: now the most recent, 64 the least
        QCOMPARE(set.created(), std::size_t{8});
        set.get(copyKey(32 * 9)); // a ninth key: 64 goes
        QCOMPARE(set.size(), std::size_t{8});
        QCOMPARE(set.created(), std::size_t{9});
        set.get(copyKey(32)); // kept
        QCOMPARE(set.created(), std::size_t{9});
        set.get(copyKey(64)); // destroyed above: built again (and 96 goes)
        QCOMPARE(set.created(), std::size_t{10});
        QCOMPARE(set.size(), std::size_t{8});
        for (std::uint32_t i = 1; i <= 24; ++i) // more keys: the set stays at its capacity
            set.get(copyKey(512 + 8 * i));
        QCOMPARE(set.size(), std::size_t{8});
    }
};

QTEST_GUILESS_MAIN(TestPipelineSet)
#include "test_pipeline_set.moc"
