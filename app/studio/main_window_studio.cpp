// SPDX-License-Identifier: MIT
// The studio half of the main window: the views fed by the session's analyses, undo of setting
// changes, export, sessions, the command palette, themes and the pinned baseline.
#include "main_window.h"

#include "attention_view.h"
#include "cache_view.h"
#include "chart_export.h"
#include "command_palette.h"
#include "profile_view.h"
#include "schemes_panel.h"
#include "session.h"
#include "setup_panel.h"
#include "studio_settings.h"
#include "token_chips_view.h"
#include "tradeoff_view.h"

#include "kvs/gpu/renderdoc.h"
#include "kvs/output_writer.h"

#include <QAction>
#include <QApplication>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QMessageBox>
#include <QPalette>
#include <QPlainTextEdit>
#include <QStatusBar>
#include <QStyle>
#include <QTabWidget>
#include <QTime>
#include <QUndoCommand>
#include <QUndoStack>
#include <qcustomplot.h>

namespace kvs::studio {

namespace {

constexpr int kSessionVersion = 1;

// One change of the scheme settings; consecutive moves of one control merge into one step.
class SettingsCommand : public QUndoCommand {
public:
    SettingsCommand(SchemesPanel* panel, QStringList before, QStringList after, int control)
        : m_panel(panel), m_before(std::move(before)), m_after(std::move(after)),
          m_control(control) {
        setText(QObject::tr("Change scheme settings"));
    }
    int id() const override { return m_control >= 0 ? 1 : -1; }
    bool mergeWith(const QUndoCommand* other) override {
        const auto* o = static_cast<const SettingsCommand*>(other);
        if (o->m_control != m_control)
            return false;
        m_after = o->m_after;
        return true;
    }
    void redo() override {
        if (m_first) { // the panel already shows the change
            m_first = false;
            return;
        }
        m_panel->setSettings(m_after);
    }
    void undo() override { m_panel->setSettings(m_before); }

private:
    SchemesPanel* m_panel;
    QStringList m_before;
    QStringList m_after;
    int m_control;
    bool m_first = true;
};

// Moving the context / probe split (from the Schemes dock or the token chips). Consecutive moves
// merge into one step, as a slider drag should.
class SplitCommand : public QUndoCommand {
public:
    SplitCommand(SchemesPanel* panel, bool* applying, int before, int after)
        : m_panel(panel), m_applying(applying), m_before(before), m_after(after) {
        setText(QObject::tr("Move the context / probe split"));
    }
    int id() const override { return 2; }
    bool mergeWith(const QUndoCommand* other) override {
        m_after = static_cast<const SplitCommand*>(other)->m_after;
        return true;
    }
    void redo() override {
        if (m_first) {
            m_first = false;
            return;
        }
        apply(m_after);
    }
    void undo() override { apply(m_before); }

private:
    void apply(int value) {
        *m_applying = true;
        m_panel->setContextTokens(value);
        *m_applying = false;
    }
    SchemesPanel* m_panel;
    bool* m_applying;
    int m_before;
    int m_after;
    bool m_first = true;
};

QPalette darkPalette() {
    QPalette p;
    const QColor window(0x2B, 0x2D, 0x31);
    const QColor base(0x1F, 0x21, 0x24);
    const QColor text(0xE6, 0xE6, 0xE6);
    p.setColor(QPalette::Window, window);
    p.setColor(QPalette::WindowText, text);
    p.setColor(QPalette::Base, base);
    p.setColor(QPalette::AlternateBase, window);
    p.setColor(QPalette::ToolTipBase, base);
    p.setColor(QPalette::ToolTipText, text);
    p.setColor(QPalette::Text, text);
    p.setColor(QPalette::Button, window);
    p.setColor(QPalette::ButtonText, text);
    p.setColor(QPalette::BrightText, Qt::red);
    p.setColor(QPalette::Link, QColor(0x56, 0xB4, 0xE9));
    p.setColor(QPalette::Highlight, QColor(0x00, 0x72, 0xB2));
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::PlaceholderText, QColor(0x90, 0x90, 0x90));
    p.setColor(QPalette::Disabled, QPalette::Text, QColor(0x80, 0x80, 0x80));
    p.setColor(QPalette::Disabled, QPalette::ButtonText, QColor(0x80, 0x80, 0x80));
    p.setColor(QPalette::Disabled, QPalette::WindowText, QColor(0x80, 0x80, 0x80));
    return p;
}

QAction* makeAction(QObject* parent, const QString& text, const QString& name,
                    const QKeySequence& key, const QString& menu) {
    auto* a = new QAction(text, parent);
    a->setObjectName(name);
    if (!key.isEmpty())
        a->setShortcut(key);
    a->setProperty("kvsMenu", menu);
    return a;
}

} // namespace

void MainWindow::createStudioActions() {
    m_undo = new QUndoStack(this);
    m_undoAction = m_undo->createUndoAction(this, tr("&Undo"));
    m_undoAction->setObjectName(QStringLiteral("undoAction"));
    m_undoAction->setShortcut(QKeySequence::Undo);
    m_undoAction->setProperty("kvsMenu", QStringLiteral("edit"));
    m_redoAction = m_undo->createRedoAction(this, tr("&Redo"));
    m_redoAction->setObjectName(QStringLiteral("redoAction"));
    m_redoAction->setShortcut(QKeySequence::Redo);
    m_redoAction->setProperty("kvsMenu", QStringLiteral("edit"));
    m_studioActions << m_undoAction << m_redoAction;

    auto add = [this](const QString& text, const QString& name, const QKeySequence& key,
                      const QString& menu, auto slot) {
        QAction* a = makeAction(this, text, name, key, menu);
        connect(a, &QAction::triggered, this, slot);
        addAction(a); // shortcuts work wherever the focus is
        m_studioActions << a;
        return a;
    };
    add(tr("Open &Session\u2026"), QStringLiteral("openSessionAction"),
        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O), QStringLiteral("file"),
        [this] { chooseOpenSession(); });
    add(tr("&Save Session"), QStringLiteral("saveSessionAction"), QKeySequence::Save,
        QStringLiteral("file"), [this] { chooseSaveSession(false); });
    add(tr("Save Session &As\u2026"), QStringLiteral("saveSessionAsAction"), QKeySequence::SaveAs,
        QStringLiteral("file"), [this] { chooseSaveSession(true); });
    add(tr("&Export Current View\u2026"), QStringLiteral("exportViewAction"),
        QKeySequence(Qt::CTRL | Qt::Key_E), QStringLiteral("file"),
        [this] { chooseExportFolder(false); });
    add(tr("Export &All Views\u2026"), QStringLiteral("exportAllViewsAction"),
        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E), QStringLiteral("file"),
        [this] { chooseExportFolder(true); });
    add(tr("Command &Palette\u2026"), QStringLiteral("commandPaletteAction"),
        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_P), QStringLiteral("edit"),
        [this] { openCommandPalette(); });
    add(tr("Next &Head"), QStringLiteral("nextHeadAction"), QKeySequence(Qt::ALT | Qt::Key_Right),
        QStringLiteral("view"), [this] { stepHead(1); });
    add(tr("Previous Head"), QStringLiteral("previousHeadAction"),
        QKeySequence(Qt::ALT | Qt::Key_Left), QStringLiteral("view"), [this] { stepHead(-1); });
    add(tr("Next &Layer"), QStringLiteral("nextLayerAction"), QKeySequence(Qt::ALT | Qt::Key_Down),
        QStringLiteral("view"), [this] { stepLayer(1); });
    add(tr("Previous Layer"), QStringLiteral("previousLayerAction"),
        QKeySequence(Qt::ALT | Qt::Key_Up), QStringLiteral("view"), [this] { stepLayer(-1); });
    add(tr("Next &View"), QStringLiteral("nextViewAction"),
        QKeySequence(Qt::CTRL | Qt::Key_PageDown), QStringLiteral("view"), [this] { stepView(1); });
    add(tr("Previous View"), QStringLiteral("previousViewAction"),
        QKeySequence(Qt::CTRL | Qt::Key_PageUp), QStringLiteral("view"), [this] { stepView(-1); });
    const QStringList names = {tr("Overview"), tr("Attention"), tr("Trade-offs"), tr("Cache"),
                               tr("Profile")};
    for (int i = 0; i < names.size(); ++i)
        add(tr("Show %1").arg(names[i]), QStringLiteral("showView%1Action").arg(i),
            QKeySequence(Qt::CTRL | static_cast<Qt::Key>(Qt::Key_1 + i)), QStringLiteral("view"),
            [this, i] { showView(static_cast<View>(i)); });
    m_themeAction = add(tr("&Dark Theme"), QStringLiteral("darkThemeAction"),
                        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_T), QStringLiteral("view"),
                        [this] { setDarkTheme(m_themeAction->isChecked()); });
    m_themeAction->setCheckable(true);
    m_cancelAction =
        add(tr("&Cancel Running Work"), QStringLiteral("cancelWorkAction"),
            QKeySequence(Qt::Key_Escape), QStringLiteral("edit"), [this] { cancelWork(); });
    m_cancelAction->setEnabled(false);
    m_cancelAction->setToolTip(tr("Stop loading, analysing and sweeping; the views keep the "
                                  "last results"));
    add(tr("Recompute &Now"), QStringLiteral("recomputeAction"), QKeySequence(Qt::Key_F5),
        QStringLiteral("edit"), [this] { m_session->recomputeNow(); });
    m_pinAction = add(tr("&Pin Current Results as Baseline"), QStringLiteral("pinBaselineAction"),
                      QKeySequence(Qt::CTRL | Qt::Key_B), QStringLiteral("compare"),
                      [this] { pinBaseline(); });
    m_unpinAction = add(tr("&Clear Baseline"), QStringLiteral("clearBaselineAction"),
                        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_B), QStringLiteral("compare"),
                        [this] { clearBaseline(); });
    m_unpinAction->setEnabled(false);
    // RenderDoc: enabled only where its API is loaded; the tooltip says why not.
    QAction* renderDoc =
        add(tr("Capture Next Recompute in &RenderDoc"), QStringLiteral("renderDocCaptureAction"),
            QKeySequence(), QStringLiteral("file"), [this] {
                statusBar()->showMessage(tr("RenderDoc: capturing the next recompute\u2026"));
                m_session->captureNextRecompute();
            });
    const gpu::RenderDocStatus renderDocStatus = gpu::renderDocStatus();
    renderDoc->setEnabled(renderDocStatus.available);
    renderDoc->setToolTip(renderDocStatus.available
                              ? tr("RenderDoc %1 is loaded: the GPU work of the next recompute "
                                   "is captured to a file")
                                    .arg(QString::fromStdString(renderDocStatus.version))
                              : QString::fromStdString(renderDocStatus.reason));
    connect(m_session.get(), &Session::renderDocCaptured, this,
            [this](const QString& path, const QString& error) {
                statusBar()->showMessage(
                    path.isEmpty()
                        ? tr("RenderDoc: no capture (%1)").arg(error)
                        : tr("RenderDoc capture written to %1").arg(QDir::toNativeSeparators(path)),
                    15000);
            });
}

QList<QAction*> MainWindow::allActions() const {
    QList<QAction*> list;
    list << m_openAction << m_studioActions << m_setupDock->toggleViewAction()
         << m_schemesDock->toggleViewAction() << m_resetLayoutAction << m_aboutAction
         << m_quitAction;
    return list;
}

void MainWindow::openCommandPalette() {
    auto* palette = new CommandPalette(allActions(), this);
    palette->setAttribute(Qt::WA_DeleteOnClose);
    palette->move(mapToGlobal(QPoint((width() - palette->width()) / 2, 60)));
    palette->show();
}

void MainWindow::connectViews() {
    Session* s = m_session.get();
    connect(m_schemes, &SchemesPanel::settingsChanged, s, &Session::setSchemes);
    connect(m_schemes, &SchemesPanel::edited, this,
            [this](const QStringList& before, const QStringList& after, int control) {
                m_undo->push(new SettingsCommand(m_schemes, before, after, control));
                setSessionModified(true);
            });
    connect(m_schemes, &SchemesPanel::contextTokensChanged, s, &Session::setContextTokens);
    connect(m_schemes, &SchemesPanel::contextTokensChanged, this, [this](int tokens) {
        m_setup->chipsView()->setSplit(tokens);
        if (!m_applyingUndo && m_lastSplit > 0 && tokens != m_lastSplit)
            m_undo->push(new SplitCommand(m_schemes, &m_applyingUndo, m_lastSplit, tokens));
        m_lastSplit = tokens;
        setSessionModified(true);
    });
    connect(m_setup->promptEdit(), &QPlainTextEdit::textChanged, this,
            [this] { setSessionModified(true); });
    connect(m_setup->chipsView(), &views::TokenChipsView::splitChanged, this,
            [this](int tokens) { m_schemes->setContextTokens(tokens); });
    connect(m_schemes, &SchemesPanel::focusedRowChanged, this, [this] {
        m_stale.fill(true);
        refreshViews(false);
    });
    s->setSchemes(m_schemes->settings());

    connect(s, &Session::tokensChanged, this, [this](std::shared_ptr<const TokensSnapshot> t) {
        m_schemes->setTokenCount(t->count(), m_session->contextTokens());
        m_lastSplit = m_session->contextTokens();
        m_setup->chipsView()->setSplit(m_lastSplit);
    });
    connect(s, &Session::analysisStarted, this,
            [this] { m_analysisState->setText(tr("Computing\u2026")); });
    connect(s, &Session::analysisFailed, this, [this](const QString& message) {
        m_analysisState->setText(tr("Analysis failed"));
        m_analysisState->setToolTip(message);
        statusBar()->showMessage(message, 8000);
    });
    connect(s, &Session::analysisChanged, this,
            [this](std::shared_ptr<const views::AnalysisData> a) {
                m_analysisState->setText(tr("%1 schemes in %2 ms")
                                             .arg(a->runs.size())
                                             .arg(a->computeMilliseconds, 0, 'f', 0));
                m_analysisState->setToolTip(QString());
                m_stale.fill(true);
                refreshViews(false);
                markUpdated();
            });
    connect(s, &Session::sweepsStarted, this,
            [this] { m_tradeoff->setStatusText(tr("sweeping budgets\u2026")); });
    connect(s, &Session::sweepsChanged, this, [this](std::shared_ptr<const views::SweepData> sw) {
        m_tradeoff->setStatusText(tr("%1 curves, swept in %2 ms (CPU reference backend)")
                                      .arg(sw->curves.size())
                                      .arg(sw->computeMilliseconds, 0, 'f', 0));
        m_tradeoff->setCurves(sw);
    });
    connect(s, &Session::scalingStarted, this,
            [this] { m_profile->setScalingStatus(tr("measuring\u2026")); });
    connect(s, &Session::scalingChanged, this,
            [this](std::shared_ptr<const views::ScalingData> scaling) {
                m_profile->setScalingStatus(QString());
                m_profile->setScaling(std::move(scaling));
            });
    connect(s, &Session::modelCleared, this, [this] {
        m_attention->clear(tr("No model."));
        m_tradeoff->clear(tr("No model."));
        m_cache->clear(tr("No model."));
        m_profile->clear(tr("No model."));
    });
    connect(m_tabs, &QTabWidget::currentChanged, this, [this] { refreshViews(false); });
    connect(m_tradeoff, &views::TradeoffView::pointPicked, this,
            [this](const QString& base, const QString& parameter, double value) {
                const QStringList current = m_schemes->settings();
                for (int i = 0; i < current.size(); ++i)
                    if (current[i] == base ||
                        (m_session->sweeps() &&
                         i < static_cast<int>(m_session->sweeps()->curves.size()) &&
                         m_session->sweeps()->curves[static_cast<std::size_t>(i)].baseSetting ==
                             base)) {
                        if (m_schemes->parameter(i, parameter) != value)
                            m_schemes->setParameter(i, parameter, value);
                        break;
                    }
            });

    const auto provenance = [this] { return this->provenance(); };
    for (const auto& chart : m_attention->charts())
        views::installExportMenu(chart, provenance);
    for (const auto& chart : m_tradeoff->charts())
        views::installExportMenu(chart, provenance);
    for (const auto& chart : m_cache->charts())
        views::installExportMenu(chart, provenance);
    for (const auto& chart : m_profile->charts())
        views::installExportMenu(chart, provenance);
}

void MainWindow::refreshViews(bool all) {
    const auto analysis = m_session->analysis();
    if (!analysis)
        return;
    const int run = std::clamp(m_schemes->focusedRow(), 0,
                               std::max(0, static_cast<int>(analysis->runs.size()) - 1));
    const int current = m_tabs->currentIndex();
    // Visible views now; the others when they are shown (or all of them when asked).
    const auto due = [&](View v) {
        const auto i = static_cast<std::size_t>(v);
        if (!m_stale[i] || !(all || current == static_cast<int>(v)))
            return false;
        m_stale[i] = false;
        return true;
    };
    if (due(View::Attention)) {
        // Compare mode: a few probe × context subtractions per head, cheap enough for the GUI
        // thread (the maps themselves come from the workers).
        auto diff =
            m_baseline ? baselineDifference(*analysis, run, *m_baseline, m_baselineRun) : nullptr;
        QString label;
        if (diff)
            label = m_baseline->runs[static_cast<std::size_t>(m_baselineRun)].setting;
        m_attention->setBaselineDifference(std::move(diff), label, false);
        m_attention->setData(analysis, run);
    }
    if (due(View::Tradeoffs))
        m_tradeoff->setCurrent(analysis);
    if (due(View::Cache))
        m_cache->setData(analysis, run);
    if (due(View::Profile))
        m_profile->setData(analysis, run);
    ++m_resultsShown;
}

void MainWindow::showView(View view) {
    m_tabs->setCurrentIndex(static_cast<int>(view));
}

QStringList MainWindow::viewNames() {
    return {QStringLiteral("overview"), QStringLiteral("attention"), QStringLiteral("tradeoffs"),
            QStringLiteral("cache"), QStringLiteral("profile")};
}

QStringList MainWindow::chartViewNames() {
    return viewNames().mid(1);
}

bool MainWindow::showViewByName(const QString& name) {
    const int i = viewNames().indexOf(name);
    if (i < 0)
        return false;
    showView(static_cast<View>(i));
    return true;
}

void MainWindow::stepHead(int delta) {
    showView(View::Attention);
    const auto a = m_session->analysis();
    if (!a)
        return;
    int head = m_attention->selectedHead() + delta;
    int layer = m_attention->selectedLayer();
    if (head >= a->heads) {
        head = 0;
        layer = (layer + 1) % a->layers;
    } else if (head < 0) {
        head = a->heads - 1;
        layer = (layer + a->layers - 1) % a->layers;
    }
    m_attention->setSelection(layer, head);
}

void MainWindow::stepLayer(int delta) {
    showView(View::Attention);
    const auto a = m_session->analysis();
    if (!a)
        return;
    const int layer = (m_attention->selectedLayer() + delta + a->layers) % a->layers;
    m_attention->setSelection(layer, m_attention->selectedHead());
}

void MainWindow::stepView(int delta) {
    const int n = m_tabs->count();
    m_tabs->setCurrentIndex((m_tabs->currentIndex() + delta + n) % n);
}

std::vector<views::ChartHandle> MainWindow::currentCharts() const {
    switch (static_cast<View>(m_tabs->currentIndex())) {
    case View::Attention:
        return m_attention->charts();
    case View::Tradeoffs:
        return m_tradeoff->charts();
    case View::Cache:
        return m_cache->charts();
    case View::Profile:
        return m_profile->charts();
    case View::Overview:
        break;
    }
    return {};
}

views::Provenance MainWindow::provenance() const {
    if (const auto a = m_session->analysis())
        return a->provenance;
    views::Provenance p;
    p.version = QStringLiteral(KVS_VERSION);
    if (const auto m = m_session->model()) {
        p.modelName = m->facts.name;
        p.modelFolder = m->facts.folder;
    }
    p.prompt = m_session->prompt();
    p.schemes = m_schemes->settings();
    return p;
}

QStringList MainWindow::exportCurrentView(const QString& folder, int dpi, QString* error) {
    QStringList written;
    const auto charts = currentCharts();
    if (charts.empty()) {
        if (error)
            *error = tr("The %1 view has no charts to export")
                         .arg(m_tabs->tabText(m_tabs->currentIndex()));
        return written;
    }
    QDir().mkpath(folder);
    views::ExportOptions options;
    options.dpi = dpi;
    const views::Provenance p = provenance();
    for (const auto& chart : charts) {
        for (views::ExportFormat f : {views::ExportFormat::Png, views::ExportFormat::Svg,
                                      views::ExportFormat::Pdf, views::ExportFormat::Csv}) {
            if (!chart.plot->isVisible() && f != views::ExportFormat::Csv)
                continue; // a hidden map (toggle mode) exports its data only
            const QString path =
                QDir(folder).filePath(chart.name + QLatin1Char('.') + views::formatSuffix(f));
            const QString e = views::exportChart(chart, path, f, p, options);
            if (!e.isEmpty()) {
                if (error)
                    *error = e;
                return written;
            }
            written << path;
        }
    }
    return written;
}

void MainWindow::chooseExportFolder(bool allViews) {
    auto settings = openSettings();
    const QString start =
        settings->value(QStringLiteral("export/lastDir"), QDir::homePath()).toString();
    const QString folder =
        QFileDialog::getExistingDirectory(this,
                                          allViews ? tr("Export the charts of every view to")
                                                   : tr("Export the charts of this view to"),
                                          start);
    if (folder.isEmpty())
        return;
    settings->setValue(QStringLiteral("export/lastDir"), folder);
    QString error;
    const QStringList files = allViews ? exportViews(folder, chartViewNames(), 300, &error)
                                       : exportCurrentView(folder, 300, &error);
    if (!error.isEmpty())
        QMessageBox::warning(this, tr("Export failed"), error);
    else
        statusBar()->showMessage(tr("Exported %1 files to %2").arg(files.size()).arg(folder), 6000);
}

bool MainWindow::confirmReplace(const QString& path) {
    if (m_options.confirmReplace)
        return m_options.confirmReplace(path);
    return QMessageBox::question(this, tr("Replace file?"),
                                 tr("%1 was not written by KV Studio. Replace it?")
                                     .arg(QDir::toNativeSeparators(path)),
                                 QMessageBox::Yes | QMessageBox::Cancel,
                                 QMessageBox::Cancel) == QMessageBox::Yes;
}

bool MainWindow::saveSession(const QString& path, QString* error) {
    QJsonObject o;
    o[QStringLiteral("kvstudio_session")] = kSessionVersion;
    o[QStringLiteral("version")] = QStringLiteral(KVS_VERSION);
    const auto model = m_session->model();
    const QString folder = model ? model->facts.folder : QString();
    o[QStringLiteral("model")] =
        folder.isEmpty() ? QString() : QFileInfo(path).absoluteDir().relativeFilePath(folder);
    o[QStringLiteral("model_absolute")] = folder;
    o[QStringLiteral("model_checkpoint")] = model ? model->facts.checkpoint : QString();
    o[QStringLiteral("prompt")] = m_setup->prompt();
    o[QStringLiteral("context_tokens")] = m_session->requestedContextTokens();
    o[QStringLiteral("schemes")] = QJsonArray::fromStringList(m_schemes->settings());
    QJsonObject view;
    view[QStringLiteral("tab")] = m_tabs->currentIndex();
    view[QStringLiteral("focused_scheme")] = m_schemes->focusedRow();
    view[QStringLiteral("layer")] = m_attention->selectedLayer();
    view[QStringLiteral("head")] = m_attention->selectedHead();
    view[QStringLiteral("attention_mode")] = static_cast<int>(m_attention->mode());
    view[QStringLiteral("metric")] = static_cast<int>(m_tradeoff->metric());
    view[QStringLiteral("theme")] = m_dark ? QStringLiteral("dark") : QStringLiteral("light");
    o[QStringLiteral("view")] = view;
    o[QString::fromLatin1(kOwnerKey)] = QStringLiteral("session");
    // Through the core writer: atomic, and a file the studio did not write is replaced only when
    // the person says so (MainWindowOptions::confirmReplace).
    const QByteArray bytes = QJsonDocument(o).toJson(QJsonDocument::Indented);
    auto write = [&](Overwrite overwrite) {
        return catchErrors([&] {
            writeOutput(path.toStdString(), std::string_view(bytes.constData(), bytes.size()),
                        "session", overwrite);
            return true;
        });
    };
    auto written = write(Overwrite::OursOnly);
    if (!written.ok() && written.error().code() == ErrorCode::Exists &&
        checkOutput(path.toStdString(), "session").forceable && confirmReplace(path))
        written = write(Overwrite::Force);
    if (!written.ok()) {
        if (error)
            *error = tr("Cannot write the session %1: %2")
                         .arg(path, QString::fromStdString(written.message()));
        return false;
    }
    m_undo->setClean();
    m_sessionPath = QFileInfo(path).absoluteFilePath();
    setSessionModified(false);
    updateTitle();
    if (m_options.persistSettings)
        RecentSessions::add(*openSettings(), m_sessionPath);
    return true;
}

bool MainWindow::openSession(const QString& path, QString* error) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        if (error)
            *error = tr("Cannot open the session %1: %2").arg(path, file.errorString());
        return false;
    }
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &parseError);
    if (!doc.isObject()) {
        if (error)
            *error = tr("The session %1 is not valid JSON: %2").arg(path, parseError.errorString());
        return false;
    }
    const QJsonObject o = doc.object();
    if (o.value(QStringLiteral("kvstudio_session")).toInt() != kSessionVersion) {
        if (error)
            *error = tr("The session %1 has no field kvstudio_session = %2 (not a KV Studio "
                        "session, or a newer one)")
                         .arg(path)
                         .arg(kSessionVersion);
        return false;
    }
    QStringList schemes;
    for (const QJsonValue& v : o.value(QStringLiteral("schemes")).toArray()) {
        const QString s = v.toString();
        if (!SchemeSetting::parse(s.toStdString()).ok()) {
            if (error)
                *error =
                    tr("The session %1 has an invalid scheme in field schemes: %2").arg(path, s);
            return false;
        }
        schemes << s;
    }
    QString model = o.value(QStringLiteral("model")).toString();
    if (!model.isEmpty())
        model = QFileInfo(path).absoluteDir().absoluteFilePath(model);
    if (model.isEmpty() || !QFileInfo(model).isDir())
        model = o.value(QStringLiteral("model_absolute")).toString();
    const QJsonObject view = o.value(QStringLiteral("view")).toObject();
    setDarkTheme(view.value(QStringLiteral("theme")).toString() == QLatin1String("dark"));
    m_setup->setPrompt(o.value(QStringLiteral("prompt")).toString());
    m_session->setContextTokens(o.value(QStringLiteral("context_tokens")).toInt());
    m_lastSplit = 0; // the split arrives with the tokens; not an edit
    if (!schemes.isEmpty())
        m_schemes->setSettings(schemes);
    m_schemes->setFocusedRow(view.value(QStringLiteral("focused_scheme")).toInt());
    m_attention->setSelection(view.value(QStringLiteral("layer")).toInt(),
                              view.value(QStringLiteral("head")).toInt());
    m_attention->setMode(static_cast<views::AttentionView::Mode>(
        view.value(QStringLiteral("attention_mode")).toInt()));
    m_tradeoff->setMetric(static_cast<views::Metric>(view.value(QStringLiteral("metric")).toInt()));
    m_tabs->setCurrentIndex(view.value(QStringLiteral("tab")).toInt());
    m_undo->clear();
    const auto current = m_session->model();
    if (!model.isEmpty() && (!current || current->facts.folder != QDir::cleanPath(model)))
        openModel(model);
    m_sessionPath = QFileInfo(path).absoluteFilePath();
    setSessionModified(false);
    updateTitle();
    if (m_options.persistSettings)
        RecentSessions::add(*openSettings(), m_sessionPath);
    return true;
}

bool MainWindow::chooseSaveSession(bool saveAs) {
    QString path = m_sessionPath;
    auto settings = openSettings();
    if (saveAs || path.isEmpty()) {
        const QString start =
            settings->value(QStringLiteral("session/lastDir"), QDir::homePath()).toString();
        const QString name = m_sessionPath.isEmpty() ? QStringLiteral("session.kvsession")
                                                     : QFileInfo(m_sessionPath).fileName();
        path = QFileDialog::getSaveFileName(this, tr("Save session"), QDir(start).filePath(name),
                                            tr("KV Studio sessions (*.kvsession *.json)"));
        if (path.isEmpty())
            return false;
        settings->setValue(QStringLiteral("session/lastDir"), QFileInfo(path).absolutePath());
    }
    QString error;
    if (!saveSession(path, &error)) {
        QMessageBox::warning(this, tr("Save failed"), error);
        return false;
    }
    statusBar()->showMessage(tr("Saved the session to %1").arg(QDir::toNativeSeparators(path)),
                             4000);
    return true;
}

void MainWindow::chooseOpenSession() {
    auto settings = openSettings();
    const QString start =
        settings->value(QStringLiteral("session/lastDir"), QDir::homePath()).toString();
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Open session"), start, tr("KV Studio sessions (*.kvsession *.json)"));
    if (path.isEmpty())
        return;
    settings->setValue(QStringLiteral("session/lastDir"), QFileInfo(path).absolutePath());
    openSessionInteractively(path);
}

void MainWindow::openSessionInteractively(const QString& path) {
    if (!maybeSaveSession())
        return;
    QString error;
    if (!openSession(path, &error))
        QMessageBox::warning(this, tr("Open failed"), error);
}

void MainWindow::setSessionModified(bool modified) {
    setWindowModified(modified);
}

void MainWindow::updateTitle() {
    // Document first, then the model, then the application (desktop convention); [*] is where
    // Qt puts the modified mark.
    const QString document =
        m_sessionPath.isEmpty() ? tr("Untitled session") : QFileInfo(m_sessionPath).fileName();
    QStringList parts{document + QStringLiteral("[*]")};
    if (!m_modelName.isEmpty())
        parts << m_modelName;
    parts << QStringLiteral("KV Studio");
    setWindowTitle(parts.join(QStringLiteral(" \u2014 ")));
}

QStringList MainWindow::recentSessions() const {
    auto settings = openSettings();
    return RecentSessions::load(*settings);
}

void MainWindow::rebuildRecentSessionsMenu() {
    m_recentSessionsMenu->clear();
    const QStringList recent = recentSessions();
    for (int i = 0; i < recent.size(); ++i) {
        const QString& file = recent[i];
        QAction* action = m_recentSessionsMenu->addAction(
            QStringLiteral("&%1 %2 \u2014 %3")
                .arg(i + 1)
                .arg(QFileInfo(file).fileName(), QDir::toNativeSeparators(file)));
        action->setData(file);
        connect(action, &QAction::triggered, this,
                [this, file] { openSessionInteractively(file); });
    }
    if (recent.isEmpty())
        m_recentSessionsMenu->addAction(tr("(none yet)"))->setEnabled(false);
}

bool MainWindow::maybeSaveSession() {
    if (!isSessionModified() || !m_options.askToSaveOnClose)
        return true;
    const auto answer = QMessageBox::warning(
        this, tr("Unsaved session"),
        tr("The session \u201C%1\u201D has changes that are not saved.")
            .arg(m_sessionPath.isEmpty() ? tr("Untitled session")
                                         : QFileInfo(m_sessionPath).fileName()),
        QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
    if (answer == QMessageBox::Cancel)
        return false;
    if (answer == QMessageBox::Discard)
        return true;
    return chooseSaveSession(false);
}

QStringList MainWindow::exportViews(const QString& folder, const QStringList& views, int dpi,
                                    QString* error) {
    const int shown = m_tabs->currentIndex();
    QStringList written;
    for (const QString& view : views) {
        if (!showViewByName(view)) { // showing a view refreshes it
            if (error)
                *error = tr("There is no view named %1").arg(view);
            break;
        }
        QCoreApplication::processEvents(); // lay out the newly shown tab before drawing it
        const QString target = views.size() == 1 ? folder : QDir(folder).filePath(view);
        QString e;
        written << exportCurrentView(target, dpi, &e);
        if (!e.isEmpty()) {
            if (error)
                *error = e;
            break;
        }
    }
    m_tabs->setCurrentIndex(shown);
    return written;
}

void MainWindow::setDarkTheme(bool dark) {
    m_dark = dark;
    if (m_themeAction->isChecked() != dark)
        m_themeAction->setChecked(dark);
    QApplication::setPalette(dark ? darkPalette() : QApplication::style()->standardPalette());
    m_attention->applyTheme();
    m_tradeoff->applyTheme();
    m_cache->applyTheme();
    m_profile->applyTheme();
    m_stale.fill(true);
    refreshViews(true);
    if (m_options.persistSettings)
        openSettings()->setValue(QStringLiteral("view/theme"),
                                 dark ? QStringLiteral("dark") : QStringLiteral("light"));
}

void MainWindow::pinBaseline() {
    m_baseline = m_session->analysis();
    m_baselineSweeps = m_session->sweeps();
    m_tradeoff->setBaseline(m_baselineSweeps);
    m_baselineRun = std::max(0, m_schemes->focusedRow());
    m_profile->setBaseline(m_baseline, m_baselineRun);
    m_stale[static_cast<std::size_t>(View::Attention)] = true;
    refreshViews(false);
    m_unpinAction->setEnabled(hasBaseline());
    statusBar()->showMessage(hasBaseline() ? tr("Pinned the current results as the baseline")
                                           : tr("Nothing to pin yet"),
                             4000);
}

void MainWindow::clearBaseline() {
    m_baseline.reset();
    m_baselineSweeps.reset();
    m_tradeoff->setBaseline(nullptr);
    m_profile->setBaseline(nullptr, 0);
    m_unpinAction->setEnabled(false);
    m_attention->setBaselineDifference(nullptr, QString());
}

bool MainWindow::hasBaseline() const {
    return m_baseline || m_baselineSweeps;
}

} // namespace kvs::studio
