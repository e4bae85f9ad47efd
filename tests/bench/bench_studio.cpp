// SPDX-License-Identifier: MIT
// The studio's liveness figures: from opening the window to the first painted attention map, and
// from a budget slider change to every visible view repainted (median and 95th percentile over
// 50 changes), with the peak resident memory and the load average beside them.
// `bench_studio [MODEL_FOLDER] [--prompt-file F] [--changes N]`; run with QT_QPA_PLATFORM=offscreen
// or under xvfb. Defaults to the start-up model of the build and its default prompt.
#include "attention_view.h"
#include "gui_bench_util.h"
#include "main_window.h"
#include "schemes_panel.h"
#include "session.h"
#include "startup.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QStyleFactory>
#include <QTest>
#include <QThread>
#include <algorithm>
#include <cstdio>
#include <qcustomplot.h>
#include <sys/resource.h>
#include <vector>

using namespace kvs::studio;

using kvs::bench::loadAverage;
using kvs::bench::percentile;

namespace {

double peakResidentMiB() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0; // KiB on Linux
}

} // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    QString folder;
    QString prompt = defaultPrompt();
    int changes = 50;
    const QStringList args = QApplication::arguments();
    for (int i = 1; i < args.size(); ++i) {
        if (args[i] == QLatin1String("--changes") && i + 1 < args.size()) {
            changes = args[++i].toInt();
        } else if (args[i] == QLatin1String("--prompt-file") && i + 1 < args.size()) {
            QFile f(args[++i]);
            if (!f.open(QIODevice::ReadOnly)) {
                std::fprintf(stderr, "bench_studio: cannot read %s\n", qPrintable(f.fileName()));
                return 2;
            }
            prompt = QString::fromUtf8(f.readAll());
        } else
            folder = args[i];
    }
    if (folder.isEmpty())
        folder = findDefaultModel(QStringLiteral(KVS_SOURCE_DIR "/build/app"));
    if (folder.isEmpty())
        folder =
            findDefaultModel(QApplication::applicationDirPath() + QStringLiteral("/../../app"));
    if (folder.isEmpty()) {
        std::fprintf(stderr, "bench_studio: no model folder (pass one)\n");
        return 2;
    }

    QElapsedTimer open;
    open.start();
    MainWindowOptions options;
    options.persistSettings = false;
    MainWindow window(options);
    window.resize(1600, 1000);
    window.session()->setSweepsEnabled(false); // the sweeps run behind; not part of liveness
    std::printf("load average at start: %s on %d cores\n", qPrintable(loadAverage()),
                QThread::idealThreadCount());
    window.setPrompt(prompt);
    window.showViewByName(QStringLiteral("attention"));
    window.show();
    window.openModel(folder);
    QCustomPlot* map = window.attentionView()->mapPlot(1);
    bool painted = false;
    QObject::connect(map, &QCustomPlot::afterReplot, &app, [&] {
        if (window.session()->analysis())
            painted = true;
    });
    if (!QTest::qWaitFor([&] { return painted; }, 120000)) {
        std::fprintf(stderr, "bench_studio: no attention map after 120 s: %s\n",
                     qPrintable(window.session()->lastError()));
        return 1;
    }
    const double openMs = static_cast<double>(open.nsecsElapsed()) * 1e-6;
    const auto a = window.session()->analysis();
    std::printf(
        "model %s: %d layers, %d heads (%d KV), %d context + %d probe tokens, %zu schemes\n",
        qPrintable(a->provenance.modelName), a->layers, a->heads, a->kvHeads, a->contextTokens,
        a->probeTokens, a->runs.size());
    std::printf("backend: %s\n", qPrintable(a->backendName));
    std::printf("open -> first painted attention map: %.0f ms, peak resident %.0f MiB\n", openMs,
                peakResidentMiB());

    window.session()->setAnalysisDelay(0); // measure the work, not the debounce
    std::vector<double> times;
    std::vector<double> compute;
    std::vector<double> views; // result delivered -> visible views repainted
    // Session::analysisDelivered splits a change's time into the part before the result reaches
    // the window (debounce, queueing, the worker) and the views' part.
    QElapsedTimer changeClock;
    qint64 delivered = -1;
    QObject::connect(window.session(), &Session::analysisDelivered, &app,
                     [&] { delivered = changeClock.nsecsElapsed(); });
    SchemesPanel* panel = window.schemesPanel();
    for (int i = 0; i < changes; ++i) {
        const double keep = 0.1 + 0.8 * ((i * 37) % 50) / 50.0;
        quint64 generation = window.session()->analysis()->generation;
        bool repainted = false;
        auto conn = QObject::connect(map, &QCustomPlot::afterReplot, &app, [&] {
            const auto now = window.session()->analysis();
            if (now && now->generation != generation)
                repainted = true;
        });
        QElapsedTimer t;
        t.start();
        changeClock.start();
        delivered = -1;
        panel->setParameter(0, QStringLiteral("keep"), keep);
        if (!QTest::qWaitFor([&] { return repainted; }, 60000)) {
            std::fprintf(stderr, "bench_studio: change %d never repainted\n", i);
            return 1;
        }
        const qint64 total = t.nsecsElapsed();
        times.push_back(static_cast<double>(total) * 1e-6);
        if (delivered >= 0)
            views.push_back(static_cast<double>(changeClock.nsecsElapsed() - delivered) * 1e-6);
        compute.push_back(window.session()->analysis()->computeMilliseconds);
        QObject::disconnect(conn);
    }
    std::printf("slider change -> visible views repainted over %d changes: median %.1f ms, p95 "
                "%.1f ms (worker compute: median %.1f ms; result delivered -> repainted: median "
                "%.1f ms)\n",
                changes, percentile(times, 0.5), percentile(times, 0.95), percentile(compute, 0.5),
                percentile(views, 0.5));
    std::printf("peak resident memory: %.0f MiB; load average at the end: %s\n", peakResidentMiB(),
                qPrintable(loadAverage()));
    return 0;
}
