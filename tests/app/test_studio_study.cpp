// SPDX-License-Identifier: MIT
// Prompt-set studies in the window: File › Open Study Results overlays the journals of
// `kvstudio-cli sweep --prompt-set` (here two shards) on the Trade-offs chart; each point's
// whisker spans the 95% interval the CLI prints for it; unfinished studies and files that are
// not journals are refused with the reason. KVS_SCREENSHOT_DIR set: the chart is saved there.
#include "cli_test_support.h"
#include "kvs/synthetic_model.h"
#include "studio_test_support.h"
#include "tradeoff_view.h"

#include <QTest>
#include <fstream>
#include <nlohmann/json.hpp>
#include <qcustomplot.h>

using namespace kvs;
using namespace kvs::studio;
using kvs::test::qpath;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<QCPErrorBars*> whiskers(QCustomPlot* plot) {
    std::vector<QCPErrorBars*> out;
    for (int i = 0; i < plot->plottableCount(); ++i)
        if (auto* bars = qobject_cast<QCPErrorBars*>(plot->plottable(i)))
            out.push_back(bars);
    return out;
}

} // namespace

class TestStudioStudy : public QObject {
    Q_OBJECT

    kvs::test::TempDir m_dir;
    fs::path m_shard1, m_shard2, m_partial;
    json m_reference; // the CLI's table of the same study

    std::vector<std::string> study() const {
        return {"sweep",        (m_dir / "tiny").string(),
                "--prompt-set", (m_dir / "prompts").string(),
                "--seeds",      "2",
                "--backend",    "cpu",
                "--scheme",     "select.uniform codec.uniform:group=8"};
    }

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        KVS_VERIFY_OK(writeSyntheticModel(syntheticPreset("tiny-gpt2"), m_dir / "tiny"));
        fs::create_directory(m_dir / "prompts");
        std::ofstream(m_dir / "prompts" / "a.txt")
            << "In the beginning God created the heaven and the earth, and the earth was void.";
        std::ofstream(m_dir / "prompts" / "b.txt")
            << "Vanity of vanities, saith the Preacher, vanity of vanities; all is vanity.";
        std::ofstream(m_dir / "prompts" / "c.txt")
            << "The LORD is my shepherd; I shall not want. He maketh me to lie down in green.";
        // Each scheme sweeps its own budget: kept fractions, and the codec's bits (2, 3, 4, 8).
        m_shard1 = m_dir / "shard-1.jsonl";
        m_shard2 = m_dir / "shard-2.jsonl";
        auto a = study(), b = study(), whole = study();
        a.insert(a.end(), {"--shard", "1/2", "--journal", m_shard1.string()});
        b.insert(b.end(), {"--shard", "2/2", "--journal", m_shard2.string()});
        whole.push_back("--json");
        QCOMPARE(kvs::test::run(a).code, 0);
        QCOMPARE(kvs::test::run(b).code, 0);
        const auto reference = kvs::test::run(whole);
        QCOMPARE(reference.code, 0);
        m_reference = json::parse(reference.out);
        // An unfinished study: cancelled by its time limit after the calibration.
        m_partial = m_dir / "partial.jsonl";
        auto p = study();
        p.insert(p.end(), {"--journal", m_partial.string(), "--max-hours", "1e-9"});
        QCOMPARE(kvs::test::run(p).code, 1);
    }

    void shardsOverlayWithTheCliIntervals() {
        MainWindow w(kvs::test::quietWindowOptions());
        w.resize(1400, 900);
        w.show();
        QString error;
        QVERIFY2(w.openStudyResults({qpath(m_shard1), qpath(m_shard2)}, &error), qPrintable(error));
        views::TradeoffView* view = w.findChild<views::TradeoffView*>();
        QVERIFY(view);
        QVERIFY(view->isVisible()); // the Trade-offs tab is brought forward
        QVERIFY(view->study());
        QCOMPARE(view->study()->curves.size(), std::size_t(2));
        QCOMPARE(view->study()->prompts, 3);
        QVERIFY(view->study()->title.contains("3 prompts"));
        QVERIFY(view->study()->source.contains("shard-1.jsonl"));

        view->setMetric(Metric::NextTokenKl);
        const auto bars = whiskers(view->plot());
        QCOMPARE(bars.size(), std::size_t(2));
        // Each drawn point: mean and whisker ends equal the CLI's mean and interval bounds.
        int checked = 0;
        for (std::size_t c = 0; c < 2; ++c) {
            const json& points = m_reference["sweeps"][c]["points"];
            QCPErrorBars* b = bars[c];
            auto* graph = qobject_cast<QCPGraph*>(b->dataPlottable());
            QVERIFY(graph);
            QCOMPARE(graph->dataCount(), b->dataCount());
            for (int i = 0; i < graph->dataCount(); ++i) {
                const double x = graph->data()->at(i)->key;
                const double y = graph->data()->at(i)->value;
                // The CLI's point with these bytes and this mean (points that keep the same
                // tokens share their bytes).
                const json* match = nullptr;
                for (const json& p : points)
                    if (std::abs(p["bytes"]["mean"].get<double>() - x) < 1e-9 * x &&
                        std::abs(p["kl_nats_per_token"]["mean"].get<double>() - y) <= 1e-12 * y)
                        match = &p;
                QVERIFY2(match, qPrintable(QString("no CLI point at (%1, %2)").arg(x).arg(y)));
                const json& kl = (*match)["kl_nats_per_token"];
                const QCPErrorBarsData& e = b->data()->at(i);
                const double lower = kl["lower"].get<double>();
                const double upper = kl["upper"].get<double>();
                QVERIFY(std::abs(y + e.errorPlus - upper) <= 1e-9 * upper);
                if (lower > 0) // log axes: a bound at or below zero is drawn at a tenth
                    QVERIFY(std::abs(y - e.errorMinus - lower) <= 1e-9 * std::abs(lower));
                else
                    QVERIFY(std::abs(y - e.errorMinus - y / 10) <= 1e-9 * y);
                ++checked;
            }
        }
        QVERIFY(checked >= 6);
        QCOMPARE(view->studyWhiskerCount(), checked);
        QVERIFY(view->summaryText().contains("95% Student-t interval over prompts"));
        // Points whose budget was degenerate on some prompt (the CLI's "degenerate") are ringed
        // like live ones, the reason in the summary; on these short prompts the common exact
        // part (4 sinks + 32) makes the smallest kept fractions degenerate.
        int degenerate = 0;
        for (const json& sweep : m_reference["sweeps"])
            for (const json& p : sweep["points"])
                if (!p["degenerate"].is_null() &&
                    std::isfinite(p["kl_nats_per_token"]["mean"].get<double>()) &&
                    p["kl_nats_per_token"]["mean"].get<double>() > 0)
                    ++degenerate;
        QVERIFY(degenerate > 0);
        QCOMPARE(view->degenerateMarkCount(), degenerate);
        QVERIFY(view->summaryText().contains("(study, "));
        QVERIFY(view->legendText(0).contains("mean of 3 prompts, 95% interval"));

        // A metric the study does not report: no whiskers, and the summary says which do.
        view->setMetric(Metric::TotalVariation);
        QCOMPARE(view->studyWhiskerCount(), 0);
        QVERIFY(view->summaryText().contains("reports next-token KL and the head output error"));
        view->setMetric(Metric::HeadOutputError);
        QCOMPARE(view->studyWhiskerCount(), checked);

        // The chart's CSV carries the study's rows with their bounds.
        const auto charts = view->charts();
        QCOMPARE(charts.size(), std::size_t(1));
        const views::CsvTable table = charts.front().data();
        QVERIFY(table.header.contains("kl_nats_lower"));
        QVERIFY(table.header.contains("head_output_error_upper"));
        QCOMPARE(static_cast<int>(table.rows.size()), checked);
        view->setMetric(Metric::NextTokenKl);
        kvs::test::saveScreenshot(view, QStringLiteral("tradeoffs-study.png"));

        w.clearStudyResults();
        QVERIFY(!view->study());
        QCOMPARE(whiskers(view->plot()).size(), std::size_t(0));
    }

    void unfinishedStudiesAndOtherFilesAreRefused() {
        MainWindow w(kvs::test::quietWindowOptions());
        QString error;
        QVERIFY(!w.openStudyResults({qpath(m_shard1)}, &error));
        QVERIFY2(error.contains("shard-1.jsonl") && error.contains("jobs of the study are in "
                                                                   "none of these journals"),
                 qPrintable(error));
        QVERIFY(!w.openStudyResults({qpath(m_partial)}, &error));
        QVERIFY2(error.contains("partial.jsonl"), qPrintable(error));
        const fs::path notes = m_dir / "notes.jsonl";
        std::ofstream(notes) << "{\"my\": \"notes\"}\n";
        QVERIFY(!w.openStudyResults({qpath(notes)}, &error));
        QVERIFY2(error.contains("notes.jsonl") && error.contains("not a sweep journal"),
                 qPrintable(error));
        views::TradeoffView* view = w.findChild<views::TradeoffView*>();
        QVERIFY(view && !view->study());
    }
};

QTEST_MAIN(TestStudioStudy)
#include "test_studio_study.moc"
