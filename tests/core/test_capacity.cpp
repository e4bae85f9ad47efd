// SPDX-License-Identifier: MIT
// The capacity planner against hand-computed figures: each preset's parameter count and KV bytes
// per token from its public config, the worked example of ALGORITHMS.md §5 row 6, sliding
// windows, GPUs too small for one user, and inputs it must refuse.
#include "kvs/capacity.h"
#include "kvs_test.h"

#include <QTest>
#include <cmath>

using namespace kvs;

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

CapacityInputs inputsFor(const char* preset, long long context) {
    const CapacityPreset* p = findCapacityPreset(preset);
    if (!p)
        qFatal("no preset %s", preset);
    CapacityInputs in;
    in.model = p->config;
    in.modelName = p->name;
    in.context = context;
    return in;
}

CapacityReport plan(const CapacityInputs& in) {
    auto r = planCapacity(in);
    if (!r)
        qFatal("planCapacity failed: %s", r.error().what());
    return r.value();
}

bool notesContain(const CapacityReport& r, const char* text) {
    for (const std::string& n : r.notes)
        if (n.find(text) != std::string::npos)
            return true;
    return false;
}

} // namespace

class TestCapacity : public QObject {
    Q_OBJECT

private slots:
    void presetsMatchPublicFigures_data() {
        QTest::addColumn<QString>("id");
        QTest::addColumn<qlonglong>("parameters");
        QTest::addColumn<qlonglong>("kvBytesPerToken");
        QTest::addColumn<int>("contextLimit");
        // Parameters by hand from each config (embeddings, attention with GQA, SwiGLU or GELU
        // MLP, norms, biases where the family has them); they are the counts the model cards
        // round to 124M, 6.74B, 7.24B, 7.25B, 8.03B, 70.6B and 7.62B. KV bytes per token in fp16:
        // 2 (K and V) × layers × KV heads × head dim × 2 bytes.
        QTest::newRow("gpt2") << "gpt2" << 124439808LL << 2LL * 12 * 12 * 64 * 2 << 1024;
        QTest::newRow("llama-2-7b")
            << "llama-2-7b" << 6738415616LL << 2LL * 32 * 32 * 128 * 2 << 4096;
        QTest::newRow("mistral-7b-v0.1")
            << "mistral-7b-v0.1" << 7241732096LL << 2LL * 32 * 8 * 128 * 2 << 32768;
        QTest::newRow("mistral-7b-v0.3")
            << "mistral-7b-v0.3" << 7248023552LL << 2LL * 32 * 8 * 128 * 2 << 32768;
        QTest::newRow("llama-3-8b")
            << "llama-3-8b" << 8030261248LL << 2LL * 32 * 8 * 128 * 2 << 8192;
        QTest::newRow("llama-3-70b")
            << "llama-3-70b" << 70553706496LL << 2LL * 80 * 8 * 128 * 2 << 8192;
        QTest::newRow("qwen2.5-7b")
            << "qwen2.5-7b" << 7615616512LL << 2LL * 28 * 4 * 128 * 2 << 131072;
    }
    void presetsMatchPublicFigures() {
        QFETCH(QString, id);
        QFETCH(qlonglong, parameters);
        QFETCH(qlonglong, kvBytesPerToken);
        QFETCH(int, contextLimit);
        const CapacityReport r = plan(inputsFor(id.toUtf8().constData(), 1));
        QCOMPARE(r.parameters, parameters);
        QCOMPARE(r.rows.front().bytesPerToken, static_cast<double>(kvBytesPerToken));
        QCOMPARE(r.contextLimit, contextLimit);
        QCOMPARE(static_cast<long long>(
                     findCapacityPreset(id.toStdString())->config.kvBytesPerTokenFp16()),
                 kvBytesPerToken);
    }

    void presetLookupIgnoresCase() {
        QVERIFY(findCapacityPreset("Llama-3-8B") != nullptr);
        QVERIFY(findCapacityPreset("llama-4") == nullptr);
        QCOMPARE(static_cast<int>(capacityPresets().size()), 7);
    }

    void workedExampleMultiHead7B() {
        // ALGORITHMS.md §5 row 6: a multi-head 7B at 128K context holds 512 KiB of KV per token,
        // 64 GiB per user; keeping a quarter of the key bytes saves 24 GiB per user and, where the
        // cache limits, fits 64 / 40 = 1.6× as many users.
        CapacityInputs in = inputsFor("llama-2-7b", 128 * 1024);
        in.settings.push_back({"thin keys", 0.25, 1.0, "typed"});
        const CapacityReport r = plan(in);
        QCOMPARE(r.rows.size(), std::size_t(2));
        QCOMPARE(r.rows[0].bytesPerToken, 512.0 * 1024);
        QCOMPARE(r.rows[0].bytesPerUser, 64 * kGiB);
        QCOMPARE(r.rows[1].savedPerUser, 24 * kGiB);
        QCOMPARE(r.rows[1].cacheFraction, 0.625);
        QVERIFY(std::abs(r.rows[1].usersVsExact - 1.6) < 1e-12);
        // Llama-2 takes 4,096 tokens: 128K is labelled, not refused.
        QVERIFY(r.hypothetical);
        QVERIFY(notesContain(r, "hypothetical"));
        // 80 GiB − 10% reserve − 6,738,415,616 × 2 bytes of weights = 63,832,580,096 bytes free:
        // no whole user at 64 GiB, one at 40 GiB.
        QCOMPARE(r.freeBytes, 72 * kGiB - 2.0 * 6738415616LL);
        QCOMPARE(r.rows[0].users, 0LL);
        QCOMPARE(r.rows[1].users, 1LL);
        QVERIFY(notesContain(r, "no whole user fits with the exact cache"));
        // The longest context one user can have: ⌊63,832,580,096 / 524,288⌋ tokens; two GPUs
        // of 72 usable GiB hold 12.55 GiB of weights and 64 GiB of cache.
        QCOMPARE(r.rows[0].longestContext, 121750LL);
        QCOMPARE(r.rows[0].gpusForOneUser, 2);
    }

    void workedExampleGroupedQueryMistral() {
        // The same cut on Mistral-7B's 8 KV heads saves 6 GiB per user at 128K (v0.3: no window).
        CapacityInputs in = inputsFor("mistral-7b-v0.3", 128 * 1024);
        in.settings.push_back({"thin keys", 0.25, 1.0, "typed"});
        const CapacityReport r = plan(in);
        QCOMPARE(r.rows[0].bytesPerUser, 16 * kGiB);
        QCOMPARE(r.rows[1].savedPerUser, 6 * kGiB);
        QVERIFY(!r.windowCaps);
        QVERIFY(r.hypothetical); // 32,768 is its maximum
    }

    void slidingWindowCapsTheCache() {
        // Mistral-7B v0.1 keeps a 4,096-token window on every layer: at any longer context one
        // user's cache is 4,096 × 128 KiB = 512 MiB, and no context is too long for one user.
        CapacityInputs in = inputsFor("mistral-7b-v0.1", 32768);
        const CapacityReport r = plan(in);
        QVERIFY(r.windowCaps);
        QCOMPARE(r.cachedTokens, 4096LL);
        QCOMPARE(r.rows[0].bytesPerUser, 512.0 * 1024 * 1024);
        QCOMPARE(r.rows[0].longestContext, -1LL);
        QVERIFY(!r.hypothetical);
        // Below the window the window changes nothing.
        in.context = 1000;
        QCOMPARE(plan(in).rows[0].bytesPerUser, 1000.0 * 128 * 1024);
        QVERIFY(!plan(in).windowCaps);
        // Qwen2.5-7B declares a window but does not use it (use_sliding_window false).
        const CapacityReport q = plan(inputsFor("qwen2.5-7b", 131072));
        QVERIFY(!q.windowCaps);
        QCOMPARE(q.rows[0].bytesPerUser, 131072.0 * 57344);
    }

    void wholeUsersByHand() {
        // Llama-2-7B at its 4,096 tokens: 2 GiB per user. With no reserve, 80 GiB − 12.55 GiB of
        // fp16 weights leaves 67.45 GiB: 33 users; the default 10% reserve leaves 59.45: 29.
        CapacityInputs in = inputsFor("llama-2-7b", 4096);
        in.reserveGiB = 0;
        CapacityReport r = plan(in);
        QCOMPARE(r.rows[0].bytesPerUser, 2 * kGiB);
        QCOMPARE(r.rows[0].users, 33LL);
        QVERIFY(std::abs(r.rows[0].continuousUsers -
                         (80 * kGiB - 2.0 * 6738415616LL) / (2 * kGiB)) < 1e-9);
        in.reserveGiB = -1;
        QCOMPARE(plan(in).rows[0].users, 29LL);
        QCOMPARE(plan(in).reserveBytes, 8 * kGiB);
        // fp8 cache and int4 weights: 1 GiB per user, (80 − 8 − 3.14) GiB free = 68 users.
        in.cacheDtype = "fp8";
        in.weightDtype = "int4";
        r = plan(in);
        QCOMPARE(r.rows[0].bytesPerUser, 1 * kGiB);
        QCOMPARE(r.weightBytes, 0.5 * 6738415616LL);
        QCOMPARE(r.rows[0].users, static_cast<long long>((72 * kGiB - 0.5 * 6738415616LL) / kGiB));
    }

    void weightsLargerThanTheGpu() {
        // Llama-3-70B in fp16 is 131.4 GiB of weights: nothing fits on one 80 GiB GPU, and the
        // report says how many GPUs of that size hold the weights and one user's cache.
        const CapacityReport r = plan(inputsFor("llama-3-70b", 8192));
        QVERIFY(r.freeBytes < 0);
        QCOMPARE(r.rows[0].users, 0LL);
        QCOMPARE(r.rows[0].longestContext, 0LL);
        const double perUser = 8192.0 * 327680;
        QCOMPARE(r.rows[0].gpusForOneUser,
                 static_cast<int>(std::ceil((2.0 * 70553706496LL + perUser) / (72 * kGiB))));
        QVERIFY(notesContain(r, "no user fits"));
    }

    void keysOnlyCacheHasNoValues() {
        // A K=V model stores keys only: half the bytes, and a value fraction changes nothing.
        CapacityInputs in = inputsFor("llama-2-7b", 1024);
        in.model.sharing = ProjectionSharing::KEqV;
        in.settings.push_back({"values ×0.5", 1.0, 0.5, "typed"});
        const CapacityReport r = plan(in);
        QCOMPARE(r.rows[0].bytesPerToken, 256.0 * 1024);
        QCOMPARE(r.rows[1].bytesPerToken, 256.0 * 1024);
    }

    void curvesFallWithContext() {
        CapacityInputs in = inputsFor("mistral-7b-v0.1", 1024);
        in.settings.push_back({"quarter", 0.25, 0.25, "typed"});
        auto curves = capacityCurves(in, 256, 1 << 20, 50);
        QVERIFY(curves.ok());
        QCOMPARE(curves.value().size(), std::size_t(2));
        const CapacityCurve& exact = curves.value()[0];
        QCOMPARE(exact.context.front(), 256.0);
        QCOMPARE(exact.context.back(), double(1 << 20));
        for (std::size_t i = 1; i < exact.users.size(); ++i) {
            QVERIFY(exact.context[i] > exact.context[i - 1]);
            QVERIFY(exact.continuousUsers[i] <= exact.continuousUsers[i - 1]);
        }
        // Past the 4,096-token window the users stop falling; a quarter of the cache fits 4×.
        QCOMPARE(exact.users.back(), std::floor(plan([&] {
                                                    CapacityInputs c = in;
                                                    c.context = 4096;
                                                    return c;
                                                }())
                                                    .rows[0]
                                                    .continuousUsers));
        QVERIFY(std::abs(curves.value()[1].continuousUsers.back() / exact.continuousUsers.back() -
                         4.0) < 1e-9);
    }

    void refusesBadInputs_data() {
        QTest::addColumn<int>("field");
        QTest::addColumn<QString>("expected");
        QTest::newRow("context 0") << 0 << "context 0";
        QTest::newRow("gpu NaN") << 1 << "GPU memory";
        QTest::newRow("reserve above the GPU") << 2 << "reserve";
        QTest::newRow("weight dtype") << 3 << "weight dtype 'fp7'";
        QTest::newRow("cache dtype") << 4 << "cache dtype 'int4'";
        QTest::newRow("fraction above 1") << 5 << "'half' key fraction";
        QTest::newRow("no layers") << 6 << "no layers";
    }
    void refusesBadInputs() {
        QFETCH(int, field);
        QFETCH(QString, expected);
        CapacityInputs in = inputsFor("gpt2", 1024);
        switch (field) {
        case 0:
            in.context = 0;
            break;
        case 1:
            in.gpuGiB = std::nan("");
            break;
        case 2:
            in.reserveGiB = 81;
            break;
        case 3:
            in.weightDtype = "fp7";
            break;
        case 4:
            in.cacheDtype = "int4";
            break;
        case 5:
            in.settings.push_back({"half", 1.5, 0.5, "typed"});
            break;
        case 6:
            in.model.layers = 0;
            break;
        }
        auto r = planCapacity(in);
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code(), ErrorCode::InvalidArgument);
        QVERIFY2(QString::fromStdString(r.error().what()).contains(expected), r.error().what());
    }
};

QTEST_GUILESS_MAIN(TestCapacity)
#include "test_capacity.moc"
