// SPDX-License-Identifier: MIT
// The studio engine's device-facing results without a window (lavapipe in CI): the bytes the
// timing backend allocated per layer against the bytes the heads count, the copy bandwidth the
// Profile view compares with, time against context length (the lengths asked for, positive
// times, settings reused from the cache), a RenderDoc capture request where RenderDoc is absent,
// the window's RenderDoc action, disabled with the reason, one capture shared by the engines, and
// large blocks kept in mappings of their own once a session exists (glibc).
#include "kvs_test.h"

#include "analysis.h"
#include "main_window.h"
#include "session.h"

#include "kvs/attention_backend.h"
#include "kvs/evaluator.h"
#include "kvs/gpu/renderdoc.h"
#include "kvs/model.h"
#include "kvs/synthetic_model.h"
#include "studio_test_support.h"

#include <QAction>
#include <QSignalSpy>
#include <QTest>
#include <cstdlib>

#ifdef __GLIBC__
#include <malloc.h>
#endif

using namespace kvs;
using namespace kvs::studio;

class TestStudioEngine : public QObject {
    Q_OBJECT

    std::unique_ptr<test::TempDir> m_dir;
    std::shared_ptr<const Model> m_model;

    AnalysisRequest request(const QStringList& settings) const {
        AnalysisRequest r;
        r.model = m_model;
        for (int i = 0; i < 40; ++i)
            r.tokens.push_back(static_cast<TokenId>((i * 7 + 3) % 50));
        r.contextTokens = 30;
        r.settings = settings;
        r.maps = false;
        r.modelQuality = false;
        return r;
    }

    std::shared_ptr<const Capture> loadCaptureOf(const AnalysisRequest& r) const {
        return std::make_shared<const Capture>(m_model->captureTokens(r.tokens).value());
    }

private slots:
    void initTestCase() {
        m_dir = std::make_unique<test::TempDir>();
        const auto folder =
            test::writeModel(*m_dir, "tiny-llama-gqa", syntheticPreset("tiny-llama-gqa"));
        auto model = Model::load(folder);
        KVS_VERIFY_OK(model);
        m_model = std::make_shared<const Model>(std::move(model).value());
    }

    // With a session, a freed large block does not move glibc's mmap threshold up: a block
    // allocated after a larger one was freed is still a mapping of its own (returned when freed),
    // not carved from an arena where it would stay resident (docs/soak.md). The block is larger
    // than all the arenas' free memory, so only a mapping (or, without the fix, a grown heap) can
    // hold it. First after initTestCase: the other tests leave the arenas too much free memory.
    void largeBlocksStayMappedAfterASession() {
#ifndef __GLIBC__
        QSKIP("glibc's allocator only");
#else
        Session session;
        const std::size_t size = mallinfo2().fordblks + (1 << 20);
        // glibc's threshold moves only up to 32 MiB: with more free memory in the arenas the
        // check could not tell, which must fail loudly rather than pass as a skip.
        if (size + (1 << 20) > (32u << 20))
            QFAIL("the arenas hold too much free memory to tell: run this test first");
        void* (*volatile allocate)(std::size_t) = std::malloc; // not elided by the compiler
        void* big = allocate(size + (1 << 20));
        QVERIFY(big);
        std::free(big); // without a fixed threshold: glibc's threshold is above `size` from here
        const std::size_t mappedBefore = mallinfo2().hblkhd;
        void* block = allocate(size);
        QVERIFY(block);
        const std::size_t mappedWith = mallinfo2().hblkhd;
        std::free(block);
        QVERIFY2(
            mappedWith >= mappedBefore + size,
            qPrintable(QStringLiteral("mapped bytes %1 -> %2").arg(mappedBefore).arg(mappedWith)));
#endif
    }

    void scalingLengthsAreGeometric() {
        // 8 · (100/8)^(i/4), rounded: 8, 15.04, 28.28, 53.18, 100.
        QCOMPARE(scalingLengths(100), (std::vector<int>{8, 15, 28, 53, 100}));
        QCOMPARE(scalingLengths(5), (std::vector<int>{5}));
        // From n/32 for long contexts: 31.25 · 32^(i/4) = 31, 74, 177, 420, 1000.
        QCOMPARE(scalingLengths(1000), (std::vector<int>{31, 74, 177, 420, 1000}));
        QCOMPARE(scalingLengths(9), (std::vector<int>{8, 9}));
        QVERIFY(scalingLengths(0).empty());
    }

    // The prefill runs once per (model, prompt): engines sharing a store (the live analysis, the
    // quality pass and the sweeps) capture once, a settings change captures nothing, and only a
    // new prompt runs the model again. Results are the same as an engine with its own capture.
    void captureIsSharedAcrossEnginesAndSettings() {
        auto store = std::make_shared<CaptureStore>();
        Engine live(/*cpuOnly=*/true, store), quality(/*cpuOnly=*/true, store),
            sweeps(/*cpuOnly=*/true, store);
        std::atomic<bool> cancel{false};
        AnalysisRequest r = request({QStringLiteral("select.uniform:keep=0.5")});
        r.modelQuality = true;
        const auto a = live.analyze(r, cancel).value();
        QVERIFY(a && a->qualityPending);
        QCOMPARE(store->forwardPasses(), 1);
        const auto withQuality = quality.addQuality(a, r, cancel).value();
        QVERIFY(withQuality && withQuality->runs[0].eval.quality);
        QVERIFY(sweeps.sweep(r, cancel).value());
        QCOMPARE(store->forwardPasses(), 1);
        // The exact reference too: made once without the probe logits (the live analysis), once
        // with them (the quality pass), and that one then serves every engine.
        QCOMPARE(store->referencesComputed(), 2);
        // A slider move: the same prompt, another setting.
        r.settings = {QStringLiteral("select.uniform:keep=0.25")};
        const auto b = live.analyze(r, cancel).value();
        QVERIFY(b);
        QCOMPARE(store->forwardPasses(), 1);
        QCOMPARE(store->referencesComputed(), 2);
        // The same numbers as an engine that captured on its own.
        Engine alone(/*cpuOnly=*/true);
        const auto c = alone.analyze(r, cancel).value();
        QCOMPARE(b->runs[0].eval.outputError, c->runs[0].eval.outputError);
        QCOMPARE(b->runs[0].eval.bytes.total(), c->runs[0].eval.bytes.total());
        // Another split: a new reference, the same capture.
        AnalysisRequest split = r;
        split.contextTokens = 25;
        QVERIFY(live.analyze(split, cancel).value());
        QCOMPARE(store->referencesComputed(), 3);
        QCOMPARE(store->forwardPasses(), 1);
        // A new prompt runs the model once more.
        r.tokens.back() = (r.tokens.back() + 1) % 50;
        QVERIFY(live.analyze(r, cancel).value());
        QCOMPARE(store->forwardPasses(), 2);
    }

    // A cancelled job stops the capture it started (at the next layer): nothing is delivered, no
    // capture is kept, and the next request runs the forward pass; the store reports progress.
    void cancelledCaptureStops() {
        auto store = std::make_shared<CaptureStore>();
        std::vector<int> done;
        store->setProgress([&](int d, int) { done.push_back(d); });
        Engine engine(/*cpuOnly=*/true, store);
        std::atomic<bool> cancel{false};
        const AnalysisRequest r = request({QStringLiteral("select.uniform:keep=0.5")});
        std::atomic<bool> cancelled{true};
        const auto none = engine.analyze(r, cancelled);
        QVERIFY(none.ok() && !none.value()); // cancelled: no snapshot, no error
        QCOMPARE(store->forwardPasses(), 0);
        // Cancelled by a report in the middle of the pass (as the window's Cancel would).
        store->setProgress([&](int, int) { cancelled = true; });
        cancelled = false;
        const auto midway = engine.analyze(r, cancelled);
        QVERIFY(midway.ok() && !midway.value());
        QCOMPARE(store->forwardPasses(), 0);
        store->setProgress([&](int d, int) { done.push_back(d); });
        QVERIFY(engine.analyze(r, cancel).value());
        QCOMPARE(store->forwardPasses(), 1);
        QVERIFY(!done.empty() && done.back() == r.model->config().layers);
    }

    // On an emulated device the session defers the timed attention: the analysis comes without
    // it, addTimings() adds the same dispatches an undeferred analysis has, and the next analysis
    // of the same settings has them from the cache.
    void deferredTimingsArriveLater() {
        Engine engine(/*cpuOnly=*/false);
        engine.startTimingBackend();
        std::atomic<bool> cancel{false};
        AnalysisRequest r = request({QStringLiteral("select.uniform:keep=0.5")});
        const auto direct = engine.analyze(r, cancel).value();
        QVERIFY(!direct->timingsDeferred);
        QVERIFY(!direct->runs[0].dispatches.empty());
        if (!direct->cpuEmulation && direct->backendIsGpu)
            QSKIP("a real GPU times at once: nothing is deferred");
        r.deferEmulatedTimings = true;
        r.settings = {QStringLiteral("select.uniform:keep=0.25")};
        const auto deferred = engine.analyze(r, cancel).value();
        QVERIFY(deferred->timingsDeferred);
        QVERIFY(deferred->runs[0].dispatches.empty());
        const auto timed = engine.addTimings(deferred, r, cancel).value();
        QVERIFY(timed && !timed->timingsDeferred);
        QCOMPARE(timed->runs[0].dispatches.size(), direct->runs[0].dispatches.size());
        QCOMPARE(timed->runs[0].layerAllocation.size(), direct->runs[0].layerAllocation.size());
        QCOMPARE(timed->runs[0].eval.bytes.total(), deferred->runs[0].eval.bytes.total());
        const auto again = engine.analyze(r, cancel).value();
        QVERIFY(!again->timingsDeferred);
        QCOMPARE(again->runs[0].dispatches.size(), direct->runs[0].dispatches.size());
    }

    // The exact maps are the reference's own matrices: every run of it points at them (also after
    // a settings change), equal to what the evaluator computes for a run on its own.
    void exactMapsAreSharedByRuns() {
        Engine engine(/*cpuOnly=*/true);
        std::atomic<bool> cancel{false};
        AnalysisRequest r = request({QStringLiteral("select.uniform:keep=0.5"),
                                     QStringLiteral("select.sinks_window:keep=0.25")});
        r.maps = true;
        r.timings = false;
        const auto a = engine.analyze(r, cancel).value();
        QCOMPARE(a->runs.size(), std::size_t(2));
        r.settings = {QStringLiteral("select.uniform:keep=0.75")};
        const auto b = engine.analyze(r, cancel).value();
        const auto own =
            kvs::evaluate(*loadCaptureOf(r), m_model.get(),
                          kvs::SchemeSetting::parse("select.uniform:keep=0.75").value(),
                          *kvs::makeCpuBackend(),
                          [&] {
                              kvs::EvalOptions o;
                              o.contextTokens = r.contextTokens;
                              o.modelQuality = false;
                              o.attentionMaps = true;
                              return o;
                          }())
                .value();
        const std::size_t g = static_cast<std::size_t>(a->groupSize());
        for (std::size_t k = 0; k < a->runs[0].maps->size(); ++k) {
            for (std::size_t j = 0; j < g; ++j) {
                const kvs::Matrix* shared = a->runs[0].exactMap(k, j);
                QVERIFY(shared && shared->size() > 0);
                QCOMPARE(a->runs[1].exactMap(k, j), shared);
                QCOMPARE(b->runs[0].exactMap(k, j), shared);
                QCOMPARE(test::maxAbsDiff(*shared, own.heads[k].exactMap[j]), 0.0);
            }
            QVERIFY(!a->runs[0].exactMap(k, g)); // past the group
            // and the compressed maps are each run's own
            QCOMPARE(b->runs[0].maps->at(k).compressed.size(), g);
        }
    }

    void allocationScalingAndCapture() {
        Engine engine(/*cpuOnly=*/false);
        engine.startTimingBackend();
        QVERIFY(engine.timingReady());
        std::atomic<bool> cancel{false};
        const QStringList settings = {QStringLiteral("identity"),
                                      QStringLiteral("select.uniform:keep=0.5")};
        AnalysisRequest r = request(settings);
        r.renderDocCapture = true;
        const auto a = engine.analyze(r, cancel).value();
        QVERIFY(a);
        QCOMPARE(static_cast<int>(a->runs.size()), 2);
        const int layers = a->layers;
        const int kvHeads = a->kvHeads;
        if (!a->backendIsGpu) {
            // No Vulkan here: the CPU reference timed it; nothing is allocated on a device.
            QVERIFY(qEnvironmentVariable("KVS_TEST_ALLOW_NO_VULKAN") == "1");
            QCOMPARE(a->deviceBandwidthGBs, 0.0);
            QCOMPARE(
                a->renderDocError,
                QStringLiteral("the timing backend is the CPU reference: no GPU work to capture"));
            for (const auto& run : a->runs)
                for (const DeviceAllocation& d : run.layerAllocation)
                    QCOMPARE(d.cache(), std::size_t{0});
        } else {
            QVERIFY2(a->deviceBandwidthGBs > 0, "the copy kernel's bandwidth was not measured");
            // RenderDoc is not running: the analysis says why there is no capture.
            if (!qEnvironmentVariableIsSet("KVS_RENDERDOC")) {
                QVERIFY(a->renderDocCapture.isEmpty());
                QCOMPARE(a->renderDocError, QString::fromStdString(gpu::renderDocStatus().reason));
            }
            for (const auto& run : a->runs) {
                QCOMPARE(static_cast<int>(run.layerAllocation.size()), layers);
                for (int l = 0; l < layers; ++l) {
                    std::size_t counted = 0;
                    for (const HeadMetrics& h : run.eval.heads)
                        if (h.layer == l)
                            counted += h.bytes.total();
                    const DeviceAllocation& d = run.layerAllocation[static_cast<std::size_t>(l)];
                    QVERIFY2(d.cache() >= counted,
                             qPrintable(
                                 QString("layer %1: %2 < %3").arg(l).arg(d.cache()).arg(counted)));
                    QCOMPARE(d.buffers, 7 + 5); // cache roles + scratch of one probe call
                    QVERIFY(d.scratch > 0);
                }
            }
        }

        const auto s = engine.scaling(r, cancel).value();
        QVERIFY(s);
        QCOMPARE(s->backendIsGpu, a->backendIsGpu);
        QCOMPARE(s->probeTokens, 10);
        QCOMPARE(static_cast<int>(s->series.size()), 2);
        const std::vector<int> lengths = scalingLengths(30);
        QCOMPARE(lengths, (std::vector<int>{8, 11, 15, 22, 30}));
        for (const auto& series : s->series) {
            QCOMPARE(series.points.size(), lengths.size());
            std::size_t lastBytes = 0;
            for (std::size_t i = 0; i < lengths.size(); ++i) {
                const auto& p = series.points[i];
                QCOMPARE(p.contextTokens, lengths[i]);
                QVERIFY(p.wallMicroseconds > 0);
                if (s->backendIsGpu) {
                    QVERIFY2(p.deviceMicroseconds > 0, qPrintable(series.setting));
                    QVERIFY(p.bytesRead > 0);
                }
                QVERIFY(p.cacheBytes > lastBytes); // more context, more bytes
                lastBytes = p.cacheBytes;
            }
        }
        // The identity keeps every token at fp32 (its default): keys and values = 2 · 4 · d
        // bytes per token per KV head per layer, no index, no weights.
        const auto& identity = s->series[0];
        for (const auto& p : identity.points)
            QCOMPARE(p.cacheBytes, static_cast<std::size_t>(p.contextTokens) * 8 *
                                       static_cast<std::size_t>(a->headDim * kvHeads * layers));
        // A second call reuses both series (same capture and split): the same numbers.
        const auto again = engine.scaling(r, cancel).value();
        QVERIFY(again);
        QCOMPARE(again->series[1].points[2].wallMicroseconds,
                 s->series[1].points[2].wallMicroseconds);
        // Cancelled: nothing.
        cancel = true;
        QVERIFY(
            !engine.scaling(request({QStringLiteral("select.uniform:keep=0.25")}), cancel).value());
    }

    // Session::captureNextRecompute → one recompute → renderDocCaptured with the file or why not.
    void sessionReportsTheCaptureRequest() {
        if (qEnvironmentVariableIsSet("KVS_RENDERDOC"))
            QSKIP("KVS_RENDERDOC is set");
        Session session;
        session.setAnalysisDelay(0);
        session.setSweepsEnabled(false);
        session.setSchemes({QStringLiteral("select.uniform:keep=0.5")});
        session.setPrompt(QStringLiteral("keys and values of every token"));
        session.openModel(QString::fromStdString((m_dir->path() / "tiny-llama-gqa").string()));
        // Until the timing backend is up, analyses come without timings (and without capture).
        QVERIFY(QTest::qWaitFor(
            [&] {
                const auto a = session.analysis();
                return a && !a->timingsPending && !session.isAnalysisBusy();
            },
            60000));
        QSignalSpy spy(&session, &Session::renderDocCaptured);
        session.captureNextRecompute();
        QVERIFY(spy.wait(60000));
        QCOMPARE(spy.count(), 1);
        const QString path = spy.at(0).at(0).toString();
        const QString error = spy.at(0).at(1).toString();
        QVERIFY(path.isEmpty());
        if (session.analysis()->backendIsGpu)
            QCOMPARE(error, QString::fromStdString(gpu::renderDocStatus().reason));
        else
            QVERIFY2(error.contains(QStringLiteral("CPU reference")), qPrintable(error));
        // Only that recompute: the next one asks for nothing.
        session.recomputeNow();
        QVERIFY(QTest::qWaitFor([&] { return !session.isAnalysisBusy(); }, 60000));
        QTest::qWait(50);
        QCOMPARE(spy.count(), 1);
    }

    void renderDocActionSaysWhy() {
        if (qEnvironmentVariableIsSet("KVS_RENDERDOC"))
            QSKIP("KVS_RENDERDOC is set");
        MainWindow w(kvs::test::quietWindowOptions());
        auto* action = w.findChild<QAction*>(QStringLiteral("renderDocCaptureAction"));
        QVERIFY(action);
        QVERIFY(!action->isEnabled());
        const QString reason = QString::fromStdString(gpu::renderDocStatus().reason);
        QVERIFY(!reason.isEmpty());
        QCOMPARE(action->toolTip(), reason);
        QVERIFY(w.allActions().contains(action)); // in the command palette
    }
};

QTEST_MAIN(TestStudioEngine)
#include "test_studio_engine.moc"
