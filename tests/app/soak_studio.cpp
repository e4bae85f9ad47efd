// SPDX-License-Identifier: MIT
// Soak: drives the real window through random control changes — the context split, scheme
// settings, schemes added and removed, tabs, heads, theme, undo/redo and model switches between the
// bundled default and a variant — for a given time, sampling resident memory every second, and
// beside it the heap the program holds (glibc's mallinfo2: allocated and not freed).
//   soak_studio [--seconds S] [--seed N] [--csv OUT.csv] [--plot OUT.png]
// Prints the resident memory after warm-up and its least-squares slope (MiB per minute) over the
// second half of the run, the same for the heap in use (resident memory rising while the heap in
// use does not is freed memory the allocator keeps); exits 1 when the window stops answering. ctest
// runs a short smoke; the ten-minute runs are by hand (docs/soak.md), under the release and the
// sanitizer build.
#include "attention_view.h"
#include "main_window.h"
#include "plot_style.h"
#include "schemes_panel.h"
#include "session.h"
#include "startup.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QTabWidget>
#include <QTest>
#include <QUndoStack>
#include <cstdio>
#include <malloc.h>
#include <qcustomplot.h>
#include <random>
#include <unistd.h>

using namespace kvs::studio;

namespace {

double residentMiB() {
    QFile statm(QStringLiteral("/proc/self/statm"));
    if (!statm.open(QIODevice::ReadOnly))
        return 0;
    const QList<QByteArray> fields = statm.readAll().split(' ');
    return fields.size() > 1 ? fields[1].toDouble() * static_cast<double>(sysconf(_SC_PAGESIZE)) /
                                   (1024.0 * 1024.0)
                             : 0;
}

// Heap memory the program holds (malloc'd and not freed, mmapped chunks included): what resident
// memory would be without the allocator's free lists, the code and Qt's shared memory.
double heapInUseMiB() {
    const struct mallinfo2 info = mallinfo2();
    return static_cast<double>(info.uordblks + info.hblkhd) / (1024.0 * 1024.0);
}

// Least-squares slope of y against x.
double slope(const QVector<double>& x, const QVector<double>& y) {
    const int n = static_cast<int>(x.size());
    if (n < 2)
        return 0;
    double mx = 0, my = 0;
    for (int i = 0; i < n; ++i) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    return sxx > 0 ? sxy / sxx : 0;
}

} // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    const QStringList args = app.arguments();
    const auto option = [&](const QString& name, const QString& fallback) {
        const int i = static_cast<int>(args.indexOf(name));
        return i >= 0 && i + 1 < args.size() ? args[i + 1] : fallback;
    };
    const double seconds = option("--seconds", "60").toDouble();
    const unsigned seed = option("--seed", "1").toUInt();
    const QString csvPath = option("--csv", "");
    const QString plotPath = option("--plot", "");

    QString defaultFolder, variantFolder;
    for (const BundledModel& m : bundledModels(QCoreApplication::applicationDirPath())) {
        if (m.name == "default")
            defaultFolder = m.folder;
        if (m.name == "gqa2")
            variantFolder = m.folder;
    }
    if (defaultFolder.isEmpty() || variantFolder.isEmpty()) {
        std::fprintf(stderr, "soak_studio: the bundled default and gqa2 models are missing\n");
        return 2;
    }

    MainWindowOptions options;
    options.probeBackend = false;
    options.persistSettings = false;
    options.askToSaveOnClose = false;
    MainWindow w(options);
    w.resize(1600, 1000);
    w.show();
    w.openModel(defaultFolder);
    w.setPrompt(defaultPrompt());
    QTest::qWait(2000);

    std::mt19937 rng(seed);
    const auto uniform = [&](int lo, int hi) {
        return std::uniform_int_distribution<int>(lo, hi)(rng);
    };
    const QStringList pool = {"select.snapkv:keep=%1",     "select.h2o:keep=%1",
                              "coreset.halving:keep=%1",   "select.uniform:keep=%1",
                              "factor.data_aware:rank=%2", "codec.uniform:bits=%3",
                              "codec.entropy:alpha=%4"};
    const QStringList viewNames = MainWindow::viewNames();
    QVector<double> t, rss, heap;
    QElapsedTimer clock;
    clock.start();
    qint64 nextSample = 0, nextModelSwitch = 30000;
    bool onVariant = false;
    int actions = 0;
    while (clock.elapsed() < seconds * 1000) {
        switch (uniform(0, 7)) {
        case 0: { // the split
            const auto tokens = w.session()->tokens();
            if (tokens && tokens->count() > 8)
                w.session()->setContextTokens(uniform(4, tokens->count() - 2));
            break;
        }
        case 1:
        case 2: { // one to three schemes at random settings
            QStringList settings;
            const int count = uniform(1, 3);
            for (int i = 0; i < count; ++i)
                settings << QString(pool[uniform(0, static_cast<int>(pool.size()) - 1)])
                                .replace("%1", QString::number(uniform(5, 95) / 100.0))
                                .replace("%2", QString::number(uniform(1, 32)))
                                .replace("%3",
                                         QString::number(QList<int>{2, 3, 4, 8}[uniform(0, 3)]))
                                .replace("%4", QString::number(uniform(2, 30) / 10.0));
            w.schemesPanel()->setSettings(settings);
            break;
        }
        case 3:
            w.showViewByName(viewNames[uniform(0, static_cast<int>(viewNames.size()) - 1)]);
            break;
        case 4:
            if (kvs::views::AttentionView* a = w.attentionView())
                a->setSelection(uniform(0, 5), uniform(0, 5));
            break;
        case 5:
            if (uniform(0, 1))
                w.undoStack()->undo();
            else
                w.undoStack()->redo();
            break;
        case 6:
            if (uniform(0, 9) == 0)
                w.setDarkTheme(!w.isDarkTheme());
            break;
        default:
            break;
        }
        ++actions;
        if (clock.elapsed() >= nextModelSwitch) {
            onVariant = !onVariant;
            w.openModel(onVariant ? variantFolder : defaultFolder);
            if (onVariant)
                w.setPrompt(defaultPrompt().left(250)); // its 256-token context
            else
                w.setPrompt(defaultPrompt());
            nextModelSwitch += 30000;
        }
        // Answer events between actions, as a hand on a slider does (a few a second).
        QTest::qWait(uniform(50, 400));
        if (clock.elapsed() >= nextSample) {
            t << clock.elapsed() / 60000.0;
            rss << residentMiB();
            heap << heapInUseMiB();
            nextSample += 1000;
        }
    }
    // Stop what is still running (sweeps take a while) and let the workers wind down.
    w.cancelWork();
    if (!QTest::qWaitFor([&] { return !w.session()->isBusy(); }, 60000))
        std::fprintf(stderr, "soak_studio: the session was still busy a minute after cancelling\n");

    QVector<double> tailT, tailRss, tailHeap;
    for (int i = static_cast<int>(t.size()) / 2; i < t.size(); ++i) {
        tailT << t[i];
        tailRss << rss[i];
        tailHeap << heap[i];
    }
    const double perMinute = slope(tailT, tailRss);
    std::printf("soak_studio: %d actions in %.0f s, seed %u; resident %.0f MiB at the half, "
                "%.0f MiB at the end, peak %.0f MiB; slope over the second half %+.2f MiB/min\n",
                actions, clock.elapsed() / 1000.0, seed, tailRss.isEmpty() ? 0 : tailRss.front(),
                rss.isEmpty() ? 0 : rss.back(),
                rss.isEmpty() ? 0 : *std::max_element(rss.begin(), rss.end()), perMinute);
    std::printf("soak_studio: heap in use %.0f MiB at the half, %.0f MiB at the end; slope over "
                "the second half %+.2f MiB/min\n",
                tailHeap.isEmpty() ? 0 : tailHeap.front(), heap.isEmpty() ? 0 : heap.back(),
                slope(tailT, tailHeap));

    if (!csvPath.isEmpty()) {
        QFile csv(csvPath);
        if (csv.open(QIODevice::WriteOnly | QIODevice::Truncate)) {
            csv.write("minutes,resident_mib,heap_in_use_mib\n");
            for (int i = 0; i < t.size(); ++i)
                csv.write(QStringLiteral("%1,%2,%3\n")
                              .arg(t[i], 0, 'f', 4)
                              .arg(rss[i], 0, 'f', 1)
                              .arg(heap[i], 0, 'f', 1)
                              .toUtf8());
        }
    }
    if (!plotPath.isEmpty()) {
        QCustomPlot plot;
        plot.resize(900, 420);
        kvs::views::applyPlotTheme(&plot, true);
        QCPGraph* g = plot.addGraph();
        g->setData(t, rss);
        g->setName(QStringLiteral("resident memory"));
        g->setPen(QPen(kvs::views::categoricalColor(0), 1.5));
        QCPGraph* h = plot.addGraph();
        h->setData(t, heap);
        h->setName(QStringLiteral("heap in use (malloc'd, not freed)"));
        h->setPen(QPen(kvs::views::categoricalColor(2), 1.5));
        if (!tailT.isEmpty()) {
            // The fitted line over the second half.
            double mx = 0, my = 0;
            for (int i = 0; i < tailT.size(); ++i) {
                mx += tailT[i];
                my += tailRss[i];
            }
            mx /= tailT.size();
            my /= tailT.size();
            QCPGraph* fit = plot.addGraph();
            fit->setData({tailT.front(), tailT.back()}, {my + perMinute * (tailT.front() - mx),
                                                         my + perMinute * (tailT.back() - mx)});
            fit->setPen(QPen(kvs::views::categoricalColor(1), 2, Qt::DashLine));
            fit->setName(QStringLiteral("fit, second half: %1 MiB/min").arg(perMinute, 0, 'f', 2));
        }
        plot.xAxis->setLabel(QStringLiteral("minutes of random changes"));
        plot.yAxis->setLabel(QStringLiteral("resident memory (MiB)"));
        plot.legend->setVisible(true);
        plot.legend->setFont(plot.font());
        plot.axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);
        plot.rescaleAxes();
        plot.yAxis->setRangeLower(0);
        plot.yAxis->setRangeUpper(plot.yAxis->range().upper * 1.15);
        plot.savePng(plotPath, 900, 420);
    }
    return 0;
}
