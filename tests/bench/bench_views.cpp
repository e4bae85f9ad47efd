// SPDX-License-Identifier: MIT
// The views at real scale, without the engine: the attention view on a model-sized grid (default
// 32 layers × 32 query heads of 8 KV heads, 2,048 context keys, 32 probe rows — a Llama-3-8B
// shape) and the token chips with 4,000 tokens. Prints median and 95th percentile (ms) of: new
// results drawn (grid and maps), another head opened, a zoom into 100 keys and back, 4,000 chips
// set and painted, a hover over a chip, with the load average beside them.
// `bench_views [--layers N] [--heads N] [--kv-heads N] [--context N] [--probe N] [--tokens N]
// [--reps N]`; run with QT_QPA_PLATFORM=offscreen or under xvfb.
#include "attention_view.h"
#include "gui_bench_util.h"
#include "token_chips_view.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QStyleFactory>
#include <QTest>
#include <QThread>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <qcustomplot.h>
#include <random>
#include <vector>

using namespace kvs::views;

using kvs::bench::loadAverage;
using kvs::bench::percentile;

namespace {

// Softmax-like rows: a sink at key 0, a recent band, noise elsewhere.
kvs::Matrix attentionLike(int probe, int ctx, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(0, 1);
    kvs::Matrix m(probe, ctx);
    for (int r = 0; r < probe; ++r) {
        for (int k = 0; k < ctx; ++k)
            m(r, k) = u(rng) * u(rng) * u(rng) + (k > ctx - 64 ? 2.0f : 0.0f);
        m(r, 0) = static_cast<float>(ctx) * 0.1f;
        m.row(r) /= m.row(r).sum();
    }
    return m;
}

std::shared_ptr<AnalysisData> makeAnalysis(int layers, int heads, int kvHeads, int ctx, int probe,
                                           quint64 generation) {
    auto a = std::make_shared<AnalysisData>();
    a->generation = generation;
    a->layers = layers;
    a->heads = heads;
    a->kvHeads = kvHeads;
    a->headDim = 128;
    a->contextTokens = ctx;
    a->probeTokens = probe;
    for (int i = 0; i < ctx + probe; ++i)
        a->tokenTexts << QStringLiteral("tok%1").arg(i % 977);
    std::mt19937 rng(static_cast<unsigned>(generation));
    const int g = heads / kvHeads;
    SchemeRun run;
    run.displayName = QStringLiteral("Keep a quarter");
    run.setting = QStringLiteral("select.uniform:keep=0.25");
    auto reference = std::make_shared<kvs::ExactReference>();
    reference->attention.resize(static_cast<std::size_t>(layers));
    std::vector<HeadMaps> maps;
    for (int l = 0; l < layers; ++l) {
        for (int q = 0; q < heads; ++q) {
            kvs::AttendResult r;
            r.probabilities = attentionLike(probe, ctx, rng);
            reference->attention[static_cast<std::size_t>(l)].push_back(std::move(r));
        }
        for (int kv = 0; kv < kvHeads; ++kv) {
            kvs::HeadMetrics h;
            h.layer = l;
            h.kvHead = kv;
            h.contextTokens = ctx;
            h.keptTokens = ctx / 4;
            run.eval.heads.push_back(h);
            HeadMaps hm;
            hm.reference = reference;
            hm.layer = l;
            hm.firstQueryHead = kv * g;
            hm.groupSize = g;
            KeptTokens kept;
            for (int k = 0; k < ctx; k += 4) {
                kept.positions.push_back(k);
                kept.weights.push_back(1.0f);
            }
            for (int j = 0; j < g; ++j) {
                const kvs::Matrix& e = reference
                                           ->attention[static_cast<std::size_t>(l)]
                                                      [static_cast<std::size_t>(kv * g + j)]
                                           .probabilities;
                kvs::Matrix c = kvs::Matrix::Zero(probe, ctx);
                for (int k = 0; k < ctx; k += 4)
                    c.col(k) = e.col(k);
                for (int r = 0; r < probe; ++r)
                    c.row(r) /= c.row(r).sum();
                hm.difference.push_back(c - e);
                hm.compressed.push_back(std::move(c));
                hm.rowMass.push_back(std::vector<double>(static_cast<std::size_t>(probe), 0.75));
            }
            maps.push_back(std::move(hm));
            run.kept.push_back(std::move(kept));
        }
    }
    run.maps = std::make_shared<const std::vector<HeadMaps>>(std::move(maps));
    a->runs.push_back(std::move(run));
    return a;
}

// Runs `step` `reps` times, each followed by a synchronous repaint of `widget`; returns times.
std::vector<double> timeRepeated(int reps, const std::function<void(int)>& step, QWidget* widget) {
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        QElapsedTimer t;
        t.start();
        step(i);
        QCoreApplication::processEvents(); // queued replots and pooling
        widget->repaint();
        ms.push_back(static_cast<double>(t.nsecsElapsed()) * 1e-6);
    }
    return ms;
}

void report(const char* what, const std::vector<double>& ms) {
    std::printf("%-58s median %8.1f ms, p95 %8.1f ms\n", what, percentile(ms, 0.5),
                percentile(ms, 0.95));
}

} // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    int layers = 32, heads = 32, kvHeads = 8, ctx = 2048, probe = 32, tokens = 4000, reps = 10;
    const QStringList args = QApplication::arguments();
    for (int i = 1; i + 1 < args.size(); i += 2) {
        const int v = args[i + 1].toInt();
        if (args[i] == QLatin1String("--layers"))
            layers = v;
        else if (args[i] == QLatin1String("--heads"))
            heads = v;
        else if (args[i] == QLatin1String("--kv-heads"))
            kvHeads = v;
        else if (args[i] == QLatin1String("--context"))
            ctx = v;
        else if (args[i] == QLatin1String("--probe"))
            probe = v;
        else if (args[i] == QLatin1String("--tokens"))
            tokens = v;
        else if (args[i] == QLatin1String("--reps"))
            reps = v;
        else {
            std::fprintf(stderr, "bench_views: unknown option %s\n", qPrintable(args[i]));
            return 2;
        }
    }
    if (layers < 1 || heads < 1 || kvHeads < 1 || heads % kvHeads || ctx < 2 || probe < 1 ||
        tokens < 2 || reps < 1) {
        std::fprintf(stderr, "bench_views: sizes must be positive, heads a multiple of kv-heads\n");
        return 2;
    }
    std::printf("load average at start: %s on %d cores; %s platform\n", qPrintable(loadAverage()),
                QThread::idealThreadCount(), qPrintable(QGuiApplication::platformName()));
    std::printf("attention view: %d layers x %d query heads (%d KV), %d context keys x %d probe "
                "rows; 1600 x 1000 window\n",
                layers, heads, kvHeads, ctx, probe);
    std::vector<std::shared_ptr<AnalysisData>> data;
    for (int i = 0; i < 2; ++i)
        data.push_back(
            makeAnalysis(layers, heads, kvHeads, ctx, probe, static_cast<quint64>(i + 1)));

    AttentionView view;
    view.resize(1600, 1000);
    view.show();
    if (!QTest::qWaitForWindowExposed(&view))
        std::fprintf(stderr, "bench_views: the window was not exposed; paints may be skipped\n");
    view.setData(data[0], 0);
    QCoreApplication::processEvents();
    view.repaint();
    report(
        "attention: new results (grid + maps) drawn",
        timeRepeated(
            reps, [&](int i) { view.setData(data[static_cast<std::size_t>(i % 2)], 0); }, &view));
    std::printf("  thumbnail keys per drawn cell %d, large map keys per drawn cell %d\n",
                view.gridKeysPerCell(), view.keysPerCell(0));
    report("attention: another head opened",
           timeRepeated(
               reps, [&](int i) { view.setSelection((i * 7) % layers, (i * 5) % heads); }, &view));
    report("attention: zoom into 100 keys, or back out",
           timeRepeated(
               reps,
               [&](int i) {
                   if (i % 2 == 0)
                       view.mapPlot(0)->xAxis->setRange(ctx / 2 - 50.5, ctx / 2 + 49.5);
                   else
                       view.mapPlot(0)->xAxis->setRange(-0.5, ctx - 0.5);
               },
               &view));
    view.hide();

    TokenChipsView chips;
    chips.resize(1600, 400);
    chips.show();
    if (!QTest::qWaitForWindowExposed(&chips))
        std::fprintf(stderr, "bench_views: the chips window was not exposed\n");
    std::vector<std::vector<TokenChip>> sets(2);
    for (int s = 0; s < 2; ++s)
        for (int i = 0; i < tokens; ++i)
            sets[static_cast<std::size_t>(s)].push_back(
                {i,
                 s == 0 ? QStringLiteral(" word%1").arg(i % 313) : QStringLiteral("w%1\n").arg(i)});
    std::printf("token chips: %d tokens, 1600 x 400 window\n", tokens);
    report(
        "chips: tokens set and painted",
        timeRepeated(
            reps, [&](int i) { chips.setTokens(sets[static_cast<std::size_t>(i % 2)]); }, &chips));
    chips.setTokens(sets[0]);
    chips.setSplit(tokens - 32);
    QCoreApplication::processEvents();
    report("chips: hover moves to another chip",
           timeRepeated(
               reps * 5,
               [&](int i) {
                   const int index = (i * 37) % 40;
                   const QRect r = chips.chipRect(index);
                   if (!r.isValid())
                       return;
                   QWidget* target = chips.childAt(r.center());
                   if (!target)
                       return;
                   QTest::mouseMove(target, target->mapFrom(&chips, r.center()));
               },
               &chips));
    report("chips: context/probe split moved",
           timeRepeated(
               reps, [&](int i) { chips.setSplit(tokens - 32 - i); }, &chips));
    std::printf("load average at the end: %s\n", qPrintable(loadAverage()));
    return 0;
}
