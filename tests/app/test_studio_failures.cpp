// SPDX-License-Identifier: MIT
// Failures are seen, and views are registered: a sweep, a quality pass and a scaling job that
// fail (through a test-only scheme that throws at the budgets, lengths or moment the test picks)
// each show their error with its original code in the status bar and in the view lacking the
// result, while the live analysis succeeds; a view registered with one line appears as a tab,
// draws the analysis and exports its charts.
#include "kvs_test.h"
#include "probe_view.h"
#include "studio_test_support.h"

#include "main_window.h"
#include "profile_view.h"
#include "schemes_panel.h"
#include "session.h"
#include "studio_settings.h"
#include "tradeoff_view.h"
#include "view_host.h"
#include "view_registry.h"

#include "attention_view.h"
#include "kvs/scheme.h"
#include "kvs/synthetic_model.h"

#include <QAction>
#include <QDir>
#include <QFile>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTest>
#include <atomic>
#include <cmath>
#include <new>
#include <qcustomplot.h>
#include <string>

using namespace kvs::studio;
using kvs::ErrorCode;
namespace fs = std::filesystem;

namespace {

constexpr int kTimeoutMs = kvs::test::kStudioTimeoutMs;
const QString kPrompt = QStringLiteral("The cache keeps keys and values of every token; "
                                       "compression keeps the ones that matter.");
constexpr int kContext = 12; // the analysis's split; the scaling job also measures shorter ones
// At its default budget (keep=0.5), which the Schemes panel leaves out of the setting.
const QString kSetting = QStringLiteral("test.failing");

// When the test scheme fails.
enum class FailWhen {
    Never,
    OffBudget,     // keep ≠ 0.5: every sweep point, never the live analysis
    ShortContext,  // fewer than kContext tokens: the scaling job's shorter lengths
    NextCallArmed, // the next call once `armed` is set (then it disarms)
    Always,        // every call: the scheme refuses the model
};

std::atomic<FailWhen> g_when{FailWhen::Never};
std::atomic<int> g_code{static_cast<int>(ErrorCode::Unsupported)};
std::atomic<bool> g_armed{false};

// Keeps every token (fp16); throws where g_when says, with the code the test chose.
class FailingScheme final : public kvs::Scheme {
public:
    FailingScheme() {
        m_info.id = "test.failing";
        m_info.family = "test";
        m_info.displayName = "Failing on demand";
        m_info.explanation = "Keeps every token; fails where a test tells it to.";
        m_info.params = kvs::budgetParams(0.5);
    }
    const kvs::SchemeInfo& info() const override { return m_info; }
    kvs::CompressedHead compress(const kvs::HeadInput& head,
                                 const kvs::ParamValues& params) const override {
        const auto keep = params.find("keep");
        const double k = keep == params.end() ? 0.5 : keep->second;
        bool fail = false;
        switch (g_when.load()) {
        case FailWhen::Never:
            break;
        case FailWhen::OffBudget:
            fail = std::abs(k - 0.5) > 1e-9;
            break;
        case FailWhen::ShortContext:
            fail = head.tokens() < kContext;
            break;
        case FailWhen::NextCallArmed:
            fail = g_armed.exchange(false);
            break;
        case FailWhen::Always:
            fail = true;
            break;
        }
        if (fail)
            throw kvs::Error(static_cast<ErrorCode>(g_code.load()),
                             "test.failing: injected failure at keep=" + std::to_string(k) +
                                 " over " + std::to_string(head.tokens()) + " tokens");
        std::vector<std::int32_t> all(static_cast<std::size_t>(head.tokens()));
        for (std::size_t i = 0; i < all.size(); ++i)
            all[i] = static_cast<std::int32_t>(i);
        return kvs::selectTokens(head, std::move(all), {}, kvs::Precision::F16);
    }

private:
    kvs::SchemeInfo m_info;
};

// Arms the failing scheme when the first results that still need a quality pass arrive: the
// session calls observers before it starts that pass, so the pass is the next caller.
class ArmOnQualityPending : public ISessionView {
public:
    void onAnalysisChanged(const std::shared_ptr<const kvs::views::AnalysisData>& a) override {
        if (a->qualityPending && !m_done) {
            m_done = true;
            g_armed.store(true);
        }
    }

private:
    bool m_done = false;
};

using kvs::test::qpath;

} // namespace

class TestStudioFailures : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<kvs::test::TempDir> m_dir;
    fs::path m_model;

    // A window on the test model comparing only the failing scheme at a split of kContext.
    void open(MainWindow& w) {
        w.resize(1500, 950);
        w.show();
        w.session()->setAnalysisDelay(0);
        w.schemesPanel()->setSettings({kSetting});
        w.session()->setContextTokens(kContext);
        w.setPrompt(kPrompt);
        w.openModel(qpath(m_model));
    }

    // The first live results arrive and are those of the failing scheme at the split.
    static bool waitForResults(MainWindow& w) {
        return QTest::qWaitFor(
            [&] {
                const auto a = w.session()->analysis();
                return a && a->runs.size() == 1 && a->runs[0].setting == kSetting &&
                       a->contextTokens == kContext;
            },
            kTimeoutMs);
    }

    // What the session shows, for a failure message.
    static QString shown(MainWindow& w) {
        const auto a = w.session()->analysis();
        if (!a)
            return QStringLiteral("no analysis; last error: %1").arg(w.session()->lastError());
        QStringList runs;
        for (const auto& r : a->runs)
            runs << r.setting;
        return QStringLiteral("runs [%1], context %2")
            .arg(runs.join(QLatin1Char(' ')))
            .arg(a->contextTokens);
    }

    // The job failed with `code`: the session keeps the error, the status bar says it.
    static void verifyReported(MainWindow& w, JobKind kind, ErrorCode code, const QString& what) {
        QTRY_VERIFY_WITH_TIMEOUT(w.session()->jobState(kind) == JobState::Failed, kTimeoutMs);
        const auto error = w.session()->jobError(kind);
        QVERIFY(error.has_value());
        QCOMPARE(static_cast<int>(error->code()), static_cast<int>(code));
        const QString message = w.statusMessage();
        QVERIFY2(message.startsWith(what), qPrintable(message));
        QVERIFY2(message.contains(QStringLiteral("[%1]").arg(kvs::toString(code))),
                 qPrintable(message));
        QVERIFY2(message.contains(QStringLiteral("test.failing: injected failure")),
                 qPrintable(message));
        // The live analysis itself succeeded.
        QTRY_COMPARE_WITH_TIMEOUT(w.session()->jobState(JobKind::Analysis), JobState::Done,
                                  kTimeoutMs);
        QVERIFY(!w.session()->jobError(JobKind::Analysis));
    }

private slots:
    void initTestCase() {
        kvs::test::isolateSettings();
        openSettings()->clear();
        QVERIFY(kvs::registerScheme(std::make_unique<FailingScheme>()).ok());
        // A second scheme with the same id is refused, naming it.
        const auto again = kvs::registerScheme(std::make_unique<FailingScheme>());
        QVERIFY(!again.ok());
        QVERIFY(again.message().find("test.failing") != std::string::npos);
        // One line adds a view.
        QVERIFY(registerStudioView({QStringLiteral("probe"), true, [](const ViewContext& c) {
                                        return new kvs::test::ProbeView(c.parent);
                                    }}));
        QVERIFY(!registerStudioView({QStringLiteral("probe"), true, nullptr}));
        m_dir = std::make_unique<kvs::test::TempDir>();
        m_model =
            kvs::test::writeModel(*m_dir, "tiny-llama-gqa", kvs::syntheticPreset("tiny-llama-gqa"));
    }

    void cleanupTestCase() {
        openSettings()->clear();
        m_dir.reset();
    }

    void init() {
        g_when = FailWhen::Never;
        g_armed = false;
        qunsetenv("KVS_STUDIO_NO_QUALITY");
    }

    void badAllocIsOutOfMemory() {
        const auto r = kvs::catchErrors([]() -> int { throw std::bad_alloc(); });
        QVERIFY(!r.ok());
        QCOMPARE(static_cast<int>(r.error().code()), static_cast<int>(ErrorCode::OutOfMemory));
        QCOMPARE(QString::fromLatin1(kvs::toString(ErrorCode::OutOfMemory)),
                 QStringLiteral("out-of-memory"));
    }

    // A scheme that refuses the model (Unsupported, as a codec refuses a K=V cache; or a bad
    // parameter, InvalidArgument) fails its own run only: the other schemes' results, curves
    // and timings arrive, no job fails, and every view and the status bar say why.
    void refusedSchemeLeavesTheOthers_data() {
        QTest::addColumn<QString>("refused");
        QTest::addColumn<QString>("reason");
        QTest::newRow("unsupported")
            << kSetting << QStringLiteral("test.failing: injected failure");
        QTest::newRow("bad parameter")
            << QStringLiteral("codec.uniform:group=7")
            << QStringLiteral("group = 7 does not divide the head dim 12");
    }
    void refusedSchemeLeavesTheOthers() {
        QFETCH(QString, refused);
        QFETCH(QString, reason);
        g_when = FailWhen::Always;
        g_code = static_cast<int>(ErrorCode::Unsupported);
        MainWindow w(kvs::test::quietWindowOptions());
        w.resize(1500, 950);
        w.show();
        w.session()->setAnalysisDelay(0);
        w.schemesPanel()->setSettings({QStringLiteral("select.uniform"), refused});
        const QStringList settings = w.schemesPanel()->settings();
        w.session()->setContextTokens(kContext);
        w.setPrompt(kPrompt);
        w.openModel(qpath(m_model));
        QTRY_VERIFY2_WITH_TIMEOUT(
            w.session()->analysis() && w.session()->analysis()->provenance.schemes == settings &&
                !w.session()->isAnalysisBusy() && !w.session()->analysis()->qualityPending,
            qPrintable(shown(w)), kTimeoutMs);
        const auto a = w.session()->analysis();
        QCOMPARE(a->runs.size(), std::size_t(2));
        QVERIFY(a->runs[0].error.isEmpty());
        QVERIFY(a->runs[0].eval.bytes.total() > 0 && a->runs[0].maps);
        QVERIFY(a->runs[0].eval.quality.has_value());
        QVERIFY2(a->runs[1].error.contains(reason), qPrintable(a->runs[1].error));
        QVERIFY(a->runs[1].error.startsWith(refused + QLatin1Char(':')));
        QVERIFY(!w.session()->jobError(JobKind::Analysis));
        QVERIFY2(w.analysisStateText().startsWith(QStringLiteral("1 of 2 schemes")),
                 qPrintable(w.analysisStateText()));
        // The sweeps draw the scheme that ran; the refused one has no curve and no failure.
        w.showViewByName(QStringLiteral("tradeoffs"));
        QTRY_COMPARE_WITH_TIMEOUT(w.session()->jobState(JobKind::Sweep), JobState::Done,
                                  kTimeoutMs);
        QCOMPARE(w.tradeoffView()->curveCount(), 1);
        QVERIFY(std::isnan(w.tradeoffView()->currentPoint(1).x()));
        // Focused, the refused scheme's views say why instead of drawing.
        w.schemesPanel()->setFocusedRow(1);
        w.showViewByName(QStringLiteral("profile"));
        QTRY_VERIFY2_WITH_TIMEOUT(w.profileView()->deviceText().contains(reason),
                                  qPrintable(w.profileView()->deviceText()), kTimeoutMs);
        w.showViewByName(QStringLiteral("attention"));
        QTRY_COMPARE_WITH_TIMEOUT(w.attentionView()->gridPlot()->plottableCount(), 0, kTimeoutMs);
        // Back on the scheme that ran, everything is drawn again.
        w.schemesPanel()->setFocusedRow(0);
        QTRY_VERIFY_WITH_TIMEOUT(w.attentionView()->gridPlot()->plottableCount() > 0, kTimeoutMs);
    }

    void failedSweepIsShown() {
        g_when = FailWhen::OffBudget;
        g_code = static_cast<int>(ErrorCode::Unsupported);
        qputenv("KVS_STUDIO_NO_QUALITY", "1");
        MainWindow w(kvs::test::quietWindowOptions());
        w.session()->setScalingEnabled(false);
        open(w);
        QVERIFY2(waitForResults(w), qPrintable(shown(w)));
        verifyReported(w, JobKind::Sweep, ErrorCode::Unsupported, QStringLiteral("Sweep failed: "));
        // The Trade-offs view says why in place of its curves; the current point is still drawn.
        kvs::views::TradeoffView* tradeoffs = w.tradeoffView();
        QCOMPARE(tradeoffs->statusText(),
                 w.session()->jobError(JobKind::Sweep)
                     ? jobFailureText(kvs::views::StudioJob::Sweep,
                                      *w.session()->jobError(JobKind::Sweep))
                     : QString());
        QCOMPARE(tradeoffs->curveCount(), 0);
        QVERIFY(!w.session()->sweeps());
        // Every view hears of it (the test view records the message).
        auto* probe = dynamic_cast<kvs::test::ProbeView*>(w.viewHost()->view("probe"));
        QVERIFY(probe);
        QCOMPARE(probe->message(), tradeoffs->statusText());
    }

    void failedQualityPassIsShown() {
        g_when = FailWhen::NextCallArmed;
        g_code = static_cast<int>(ErrorCode::OutOfMemory);
        // First results without a quality pass, once the timing backend is up (so that no
        // re-analysis follows); then a recompute with one: the observer arms the scheme before
        // the session starts that pass, which is then the scheme's next caller.
        qputenv("KVS_STUDIO_NO_QUALITY", "1");
        MainWindow w(kvs::test::quietWindowOptions());
        w.session()->setScalingEnabled(false);
        w.session()->setSweepsEnabled(false);
        open(w);
        QVERIFY2(waitForResults(w), qPrintable(shown(w)));
        QTRY_VERIFY_WITH_TIMEOUT(
            !w.session()->analysis()->timingsPending && !w.session()->isAnalysisBusy(), kTimeoutMs);
        qunsetenv("KVS_STUDIO_NO_QUALITY");
        ArmOnQualityPending arm;
        w.session()->addView(&arm);
        w.session()->recomputeNow();
        verifyReported(w, JobKind::Quality, ErrorCode::OutOfMemory,
                       QStringLiteral("Quality pass failed: "));
        QVERIFY(w.tradeoffView()->statusText().startsWith(QStringLiteral("Quality pass failed: ")));
        QVERIFY(w.tradeoffView()->statusText().contains(QStringLiteral("[out-of-memory]")));
        // The results stay without model-level quality, and nothing waits for it any more.
        QVERIFY(!w.session()->analysis()->runs[0].eval.quality);
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->isAnalysisBusy(), kTimeoutMs);
        w.session()->removeView(&arm);
    }

    void failedScalingJobIsShown() {
        g_when = FailWhen::ShortContext;
        g_code = static_cast<int>(ErrorCode::Io);
        qputenv("KVS_STUDIO_NO_QUALITY", "1");
        MainWindow w(kvs::test::quietWindowOptions());
        w.session()->setSweepsEnabled(false);
        open(w);
        QVERIFY2(waitForResults(w), qPrintable(shown(w)));
        verifyReported(w, JobKind::Scaling, ErrorCode::Io,
                       QStringLiteral("Timing against context length failed: "));
        // The Profile's scaling chart says why it is empty.
        kvs::views::ProfileView* profile = w.profileView();
        QCOMPARE(profile->scalingStatus(),
                 jobFailureText(kvs::views::StudioJob::Scaling,
                                *w.session()->jobError(JobKind::Scaling)));
        QVERIFY(!w.session()->scaling());
        QCOMPARE(profile->scalingPlot()->graphCount(), 0);
    }

    void registeredViewIsATabAndExports() {
        QVERIFY(MainWindow::viewNames().endsWith(QStringLiteral("probe")));
        QVERIFY(MainWindow::chartViewNames().contains(QStringLiteral("probe")));
        qputenv("KVS_STUDIO_NO_QUALITY", "1");
        MainWindow w(kvs::test::quietWindowOptions());
        w.session()->setSweepsEnabled(false);
        w.session()->setScalingEnabled(false);
        // The last tab, titled by the view, with the next Ctrl+number.
        const int index = w.viewIndex(QStringLiteral("probe"));
        QCOMPARE(index, w.tabs()->count() - 1);
        QCOMPARE(w.tabs()->tabText(index), QStringLiteral("Probe"));
        QAction* show = w.findChild<QAction*>(QStringLiteral("showView%1Action").arg(index));
        QVERIFY(show);
        QCOMPARE(show->shortcut(),
                 QKeySequence(Qt::CTRL | static_cast<Qt::Key>(Qt::Key_1 + index)));
        auto* probe = dynamic_cast<kvs::test::ProbeView*>(w.viewHost()->view("probe"));
        QVERIFY(probe);
        open(w);
        QVERIFY2(waitForResults(w), qPrintable(shown(w)));
        // Hidden, it does not draw; shown, it draws the session's results.
        QCOMPARE(probe->drawn(), 0);
        show->trigger();
        QCOMPARE(w.tabs()->currentIndex(), index);
        QTRY_COMPARE_WITH_TIMEOUT(probe->drawn(), 1, kTimeoutMs);
        const auto a = w.session()->analysis();
        QCOMPARE(probe->plot()->graph(0)->dataCount(), 1);
        QCOMPARE(probe->plot()->graph(0)->data()->at(0)->value, a->runs[0].eval.memoryFraction);
        QVERIFY(a->runs[0].eval.memoryFraction > 0);

        // Exported like every view: the four formats, and the CSV holds what is drawn.
        kvs::test::TempDir out;
        const QString folder = qpath(out.path());
        QString error;
        const QStringList files = w.exportViews(folder, {QStringLiteral("probe")}, 100, &error);
        QVERIFY2(error.isEmpty(), qPrintable(error));
        for (const char* suffix : {"png", "svg", "pdf", "csv"}) {
            const QString path = QDir(folder).filePath(QStringLiteral("probe_runs.") + suffix);
            QVERIFY2(files.contains(path), qPrintable(path));
            QVERIFY2(QFileInfo(path).size() > 0, qPrintable(path));
        }
        QFile csv(QDir(folder).filePath(QStringLiteral("probe_runs.csv")));
        QVERIFY(csv.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(csv.readAll());
        QVERIFY2(text.contains(QStringLiteral("run,setting,memory_fraction")), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("0,%1,%2").arg(kSetting).arg(
                     a->runs[0].eval.memoryFraction, 0, 'g', 17)),
                 qPrintable(text));
        // Cleared with the others when the model goes.
        w.session()->closeModel();
        QCOMPARE(probe->plot()->graph(0)->dataCount(), 0);
        QCOMPARE(probe->message(), QStringLiteral("No model."));
    }
};

QTEST_MAIN(TestStudioFailures)
#include "test_studio_failures.moc"
