// SPDX-License-Identifier: MIT
// The studio half of the main window: the actions and the wiring of the views beyond their
// interface (selection, baseline, picks), export, sessions, the command palette and themes. The
// session document, undo commands, theme and chart export live in their own files.
#include "main_window.h"

#include "attention_view.h"
#include "cache_view.h"
#include "chart_export.h"
#include "command_palette.h"
#include "overview_page.h"
#include "profile_view.h"
#include "schemes_panel.h"
#include "session.h"
#include "session_document.h"
#include "setup_panel.h"
#include "studio_files.h"
#include "studio_settings.h"
#include "study_results.h"
#include "theme.h"
#include "token_chips_view.h"
#include "tradeoff_view.h"
#include "undo_commands.h"
#include "view_export.h"
#include "view_host.h"

#include "kvs/gpu/renderdoc.h"
#include "kvs/output_writer.h"

#include <QAction>
#include <QApplication>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QStatusBar>
#include <QTabWidget>
#include <QTime>
#include <QUndoStack>
#include <qcustomplot.h>

namespace kvs::studio {

namespace {

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
    m_undoAction->setStatusTip(
        tr("Undo the last change of a scheme setting or of the context / probe split"));
    m_redoAction = m_undo->createRedoAction(this, tr("&Redo"));
    m_redoAction->setObjectName(QStringLiteral("redoAction"));
    m_redoAction->setShortcut(QKeySequence::Redo);
    m_redoAction->setProperty("kvsMenu", QStringLiteral("edit"));
    m_redoAction->setStatusTip(tr("Make the change just undone again"));
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
        [this] { chooseOpenSession(); })
        ->setStatusTip(
            tr("Open a saved session (.kvsession): model, prompt, split, schemes and view state"));
    add(tr("Open Study &Results\u2026"), QStringLiteral("openStudyAction"), QKeySequence(),
        QStringLiteral("file"), [this] { chooseStudyResults(); })
        ->setStatusTip(tr("Overlay a prompt-set study (the journals of kvstudio-cli sweep "
                          "--prompt-set, or all its shards) on the Trade-offs chart, with 95% "
                          "intervals over prompts"));
    add(tr("Clear Study Results"), QStringLiteral("clearStudyAction"), QKeySequence(),
        QStringLiteral("file"), [this] { clearStudyResults(); })
        ->setStatusTip(tr("Remove the prompt-set study from the Trade-offs chart"));
    add(tr("&Save Session"), QStringLiteral("saveSessionAction"), QKeySequence::Save,
        QStringLiteral("file"), [this] { chooseSaveSession(false); })
        ->setStatusTip(
            tr("Save the model, prompt, split, schemes and view state to the session file"));
    add(tr("Save Session &As\u2026"), QStringLiteral("saveSessionAsAction"), QKeySequence::SaveAs,
        QStringLiteral("file"), [this] { chooseSaveSession(true); })
        ->setStatusTip(tr("Save the session to a new file"));
    add(tr("&Export Current View\u2026"), QStringLiteral("exportViewAction"),
        QKeySequence(Qt::CTRL | Qt::Key_E), QStringLiteral("file"),
        [this] { chooseExportFolder(false); })
        ->setStatusTip(tr("Export every chart of the current view as PNG, SVG, PDF and CSV, each "
                          "with a JSON provenance sidecar"));
    add(tr("Export &All Views\u2026"), QStringLiteral("exportAllViewsAction"),
        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E), QStringLiteral("file"),
        [this] { chooseExportFolder(true); })
        ->setStatusTip(tr("Export the charts of every view, one folder per view"));
    add(tr("Command &Palette\u2026"), QStringLiteral("commandPaletteAction"),
        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_P), QStringLiteral("edit"),
        [this] { openCommandPalette(); })
        ->setStatusTip(tr("Find any command by name and run it"));
    add(tr("Next &Head"), QStringLiteral("nextHeadAction"), QKeySequence(Qt::ALT | Qt::Key_Right),
        QStringLiteral("view"), [this] { stepSelection(0, 1); })
        ->setStatusTip(tr("Select the next attention head of the current layer"));
    add(tr("Previous Head"), QStringLiteral("previousHeadAction"),
        QKeySequence(Qt::ALT | Qt::Key_Left), QStringLiteral("view"),
        [this] { stepSelection(0, -1); })
        ->setStatusTip(tr("Select the previous attention head of the current layer"));
    add(tr("Next &Layer"), QStringLiteral("nextLayerAction"), QKeySequence(Qt::ALT | Qt::Key_Down),
        QStringLiteral("view"), [this] { stepSelection(1, 0); })
        ->setStatusTip(tr("Select the same head in the next layer"));
    add(tr("Previous Layer"), QStringLiteral("previousLayerAction"),
        QKeySequence(Qt::ALT | Qt::Key_Up), QStringLiteral("view"),
        [this] { stepSelection(-1, 0); })
        ->setStatusTip(tr("Select the same head in the previous layer"));
    add(tr("Next &View"), QStringLiteral("nextViewAction"),
        QKeySequence(Qt::CTRL | Qt::Key_PageDown), QStringLiteral("view"), [this] { stepView(1); })
        ->setStatusTip(tr("Show the next view tab"));
    add(tr("Previous View"), QStringLiteral("previousViewAction"),
        QKeySequence(Qt::CTRL | Qt::Key_PageUp), QStringLiteral("view"), [this] { stepView(-1); })
        ->setStatusTip(tr("Show the previous view tab"));
    // Ctrl+1… show the registered views in tab order.
    const auto& views = m_views->views();
    for (int i = 0; i < static_cast<int>(views.size()) && i < 9; ++i) {
        const QString name = views[static_cast<std::size_t>(i)]->viewName();
        add(tr("Show %1").arg(views[static_cast<std::size_t>(i)]->viewTitle()),
            QStringLiteral("showView%1Action").arg(i),
            QKeySequence(Qt::CTRL | static_cast<Qt::Key>(Qt::Key_1 + i)), QStringLiteral("view"),
            [this, name] { showViewByName(name); })
            ->setStatusTip(
                tr("Switch to the %1 view").arg(views[static_cast<std::size_t>(i)]->viewTitle()));
    }
    m_themeAction = add(tr("&Dark Theme"), QStringLiteral("darkThemeAction"),
                        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_T), QStringLiteral("view"),
                        [this] { setDarkTheme(m_themeAction->isChecked()); });
    m_themeAction->setCheckable(true);
    m_themeAction->setStatusTip(tr("Switch the window between the light and the dark theme"));
    m_cancelAction =
        add(tr("&Cancel Running Work"), QStringLiteral("cancelWorkAction"),
            QKeySequence(Qt::Key_Escape), QStringLiteral("edit"), [this] { cancelWork(); });
    m_cancelAction->setEnabled(false);
    m_cancelAction->setToolTip(tr("Stop loading, analysing and sweeping; the views keep the "
                                  "last results"));
    m_cancelAction->setStatusTip(m_cancelAction->toolTip());
    add(tr("Recompute &Now"), QStringLiteral("recomputeAction"), QKeySequence(Qt::Key_F5),
        QStringLiteral("edit"), [this] { m_session->recomputeNow(); })
        ->setStatusTip(tr("Analyse again now, without waiting for the settings to settle"));
    m_pinAction = add(tr("&Pin Current Results as Baseline"), QStringLiteral("pinBaselineAction"),
                      QKeySequence(Qt::CTRL | Qt::Key_B), QStringLiteral("compare"),
                      [this] { pinBaseline(); });
    m_pinAction->setStatusTip(tr("Keep the current results as a baseline: its curves stay on the "
                                 "charts and the difference map can subtract it"));
    m_unpinAction = add(tr("&Clear Baseline"), QStringLiteral("clearBaselineAction"),
                        QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_B), QStringLiteral("compare"),
                        [this] { clearBaseline(); });
    m_unpinAction->setStatusTip(tr("Drop the pinned baseline from the charts"));
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
    renderDoc->setStatusTip(renderDoc->toolTip());
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
         << m_schemesDock->toggleViewAction() << m_explainDock->toggleViewAction()
         << m_resetLayoutAction << m_aboutAction << m_quitAction;
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
        m_views->markStale();
        m_views->refresh(false);
    });
    s->setSchemes(m_schemes->settings());

    if (views::AttentionView* attention = attentionView())
        m_views->setBeforeDraw(attention, [this](const views::AnalysisData& a, int run) {
            drawBaselineDifference(a, run);
        });
    if (views::TradeoffView* tradeoff = tradeoffView()) {
        tradeoff->setStreamingChecked(m_session->streamingCurves());
        connect(tradeoff, &views::TradeoffView::streamingToggled, m_session.get(),
                &Session::setStreamingCurves);
    }
    if (views::TradeoffView* tradeoff = tradeoffView())
        connect(tradeoff, &views::TradeoffView::pointPicked, this,
                [this](const QString& base, const QString& parameter, double value) {
                    const QStringList current = m_schemes->settings();
                    for (int i = 0; i < current.size(); ++i)
                        if (current[i] == base ||
                            (m_session->sweeps() &&
                             i < static_cast<int>(m_session->sweeps()->curves.size()) &&
                             m_session->sweeps()->curves[static_cast<std::size_t>(i)].baseSetting ==
                                 base)) {
                            // Also when equal: a pick of the kept fraction while the row
                            // counts its budget in tokens switches the row to the fraction.
                            m_schemes->setParameter(i, parameter, value);
                            break;
                        }
                });

    const auto provenance = [this] { return this->provenance(); };
    for (views::StudioView* view : m_views->views())
        for (const auto& chart : view->charts())
            views::installExportMenu(chart, provenance, exportWriter());
}

void MainWindow::onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) {
    markUpdated();
    m_schemes->setTokenCount(tokens->count(), m_session->contextTokens());
    m_lastSplit = m_session->contextTokens();
    tourTokensChanged(tokens);
    m_setup->chipsView()->setSplit(m_lastSplit);
}

void MainWindow::onJobStarted(views::StudioJob job) {
    if (job != views::StudioJob::Analysis)
        return;
    updateWorkIndicator();
    m_analysisState->setText(tr("Computing\u2026"));
}

void MainWindow::onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>& a) {
    tourAnalysisChanged();
    QStringList refused;
    for (const views::SchemeRun& run : a->runs)
        if (!run.error.isEmpty())
            refused << run.error; // it begins with the setting
    const auto ran = static_cast<qsizetype>(a->runs.size()) - refused.size();
    m_analysisState->setText(
        refused.isEmpty()
            ? tr("%1 schemes in %2 ms").arg(a->runs.size()).arg(a->computeMilliseconds, 0, 'f', 0)
            : tr("%1 of %2 schemes in %3 ms, %4 refused")
                  .arg(ran)
                  .arg(a->runs.size())
                  .arg(a->computeMilliseconds, 0, 'f', 0)
                  .arg(refused.size()));
    m_analysisState->setToolTip(refused.join(QLatin1Char('\n')));
    if (!refused.isEmpty())
        statusBar()->showMessage(tr("Refused: %1").arg(refused.front()), 15000);
    m_schemes->noteAnalysis(*a); // what a kept token costs: budgets carried into bytes
    markUpdated();
}

void MainWindow::onJobFailed(views::StudioJob job, const kvs::Error& error) {
    // Every failed job is named in the status bar; the view lacking its result says it too.
    const QString message = jobFailureText(job, error);
    if (job == views::StudioJob::Analysis) {
        m_analysisState->setText(tr("Analysis failed"));
        m_analysisState->setToolTip(message);
    }
    statusBar()->showMessage(message, 15000);
}

QString MainWindow::statusMessage() const {
    return statusBar()->currentMessage();
}

QString MainWindow::analysisStateText() const {
    return m_analysisState->text();
}

OverviewPage* MainWindow::overviewPage() const {
    return m_views->find<OverviewPage>();
}

views::AttentionView* MainWindow::attentionView() const {
    return m_views->find<views::AttentionView>();
}

views::TradeoffView* MainWindow::tradeoffView() const {
    return m_views->find<views::TradeoffView>();
}

views::CacheView* MainWindow::cacheView() const {
    return m_views->find<views::CacheView>();
}

views::ProfileView* MainWindow::profileView() const {
    return m_views->find<views::ProfileView>();
}

quint64 MainWindow::resultsShown() const {
    return m_views->resultsShown();
}

void MainWindow::drawBaselineDifference(const views::AnalysisData& analysis, int run) {
    // Compare mode: a few probe × context subtractions per head, cheap enough for the GUI thread
    // (the maps themselves come from the workers).
    auto diff =
        m_baseline ? baselineDifference(analysis, run, *m_baseline, m_baselineRun) : nullptr;
    QString label;
    if (diff)
        label = m_baseline->runs[static_cast<std::size_t>(m_baselineRun)].setting;
    attentionView()->setBaselineDifference(std::move(diff), label, false);
}

QStringList MainWindow::viewNames() {
    return studioViewNames();
}

QStringList MainWindow::chartViewNames() {
    return studio::chartViewNames();
}

int MainWindow::viewIndex(const QString& name) const {
    const views::StudioView* view = m_views->view(name);
    return view ? m_tabs->indexOf(const_cast<views::StudioView*>(view)->viewWidget()) : -1;
}

bool MainWindow::showViewByName(const QString& name) {
    return m_views->show(name);
}

void MainWindow::stepSelection(int layers, int heads) {
    showViewByName(QStringLiteral("attention"));
    views::AttentionView* attention = attentionView();
    const auto a = m_session->analysis();
    if (!a || !attention || a->layers * a->heads == 0)
        return;
    // Heads in reading order (layer by layer), wrapping at both ends: stepping past the last head
    // of a layer lands on the first head of the next.
    const int count = a->layers * a->heads;
    const int index = attention->selectedLayer() * a->heads + attention->selectedHead();
    const int next = ((index + layers * a->heads + heads) % count + count) % count;
    attention->setSelection(next / a->heads, next % a->heads);
}

void MainWindow::stepView(int delta) {
    const int n = m_tabs->count();
    m_tabs->setCurrentIndex((m_tabs->currentIndex() + delta + n) % n);
}

std::vector<views::ChartHandle> MainWindow::currentCharts() const {
    const views::StudioView* view = m_views->current();
    return view ? view->charts() : std::vector<views::ChartHandle>{};
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
    views::ExportOptions options;
    options.dpi = dpi;
    return exportCurrentView(folder, options, error);
}

QStringList MainWindow::exportCurrentView(const QString& folder,
                                          const views::ExportOptions& options, QString* error) {
    const auto charts = currentCharts();
    if (charts.empty()) {
        if (error)
            *error = tr("The %1 view has no charts to export")
                         .arg(m_tabs->tabText(m_tabs->currentIndex()));
        return {};
    }
    return exportCharts(charts, folder, options, provenance(), exportWriter(), error);
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

views::ExportWriter MainWindow::exportWriter() {
    return studio::exportWriter([this](const QString& path) { return confirmReplace(path); });
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
    const SessionDocument d = currentDocument();
    if (!writeSessionFile(
            path, sessionJson(d, path), [this](const QString& p) { return confirmReplace(p); },
            error))
        return false;
    m_undo->setClean();
    adoptSessionFile(path);
    return true;
}

SessionDocument MainWindow::currentDocument() const {
    SessionDocument d;
    if (const auto model = m_session->model()) {
        d.modelFolder = model->facts.folder;
        d.modelCheckpoint = model->facts.checkpoint;
    }
    d.prompt = m_setup->prompt();
    d.contextTokens = m_session->requestedContextTokens();
    d.schemes = m_schemes->settings();
    d.tab = m_tabs->currentIndex();
    d.focusedScheme = m_schemes->focusedRow();
    if (const views::AttentionView* attention = attentionView()) {
        d.layer = attention->selectedLayer();
        d.head = attention->selectedHead();
        d.attentionMode = attention->mode();
        d.attentionColourScale = attention->colourScale();
    }
    if (const views::TradeoffView* tradeoff = tradeoffView()) {
        d.metric = tradeoff->metric();
        d.colourByFamily = tradeoff->colouring() == views::TradeoffView::Colouring::Family;
    }
    d.streamingCurves = m_session->streamingCurves();
    if (const views::CacheView* cache = cacheView()) {
        d.spectrumLayer = cache->selectedLayer();
        d.spectrumKvHead = cache->selectedKvHead();
    }
    d.dark = m_dark;
    return d;
}

void MainWindow::adoptSessionFile(const QString& path) {
    m_sessionPath = QFileInfo(path).absoluteFilePath();
    setSessionModified(false);
    updateTitle();
    if (m_options.persistSettings)
        RecentSessions::add(*openSettings(), m_sessionPath);
}

bool MainWindow::openSession(const QString& path, QString* error) {
    SessionDocument d;
    if (!readSessionDocument(path, &d, error))
        return false;
    setDarkTheme(d.dark);
    m_setup->setPrompt(d.prompt);
    m_session->setContextTokens(d.contextTokens);
    m_lastSplit = 0; // the split arrives with the tokens; not an edit
    if (!d.schemes.isEmpty())
        m_schemes->setSettings(d.schemes);
    m_schemes->setFocusedRow(d.focusedScheme);
    if (views::AttentionView* attention = attentionView()) {
        attention->setSelection(d.layer, d.head);
        attention->setMode(d.attentionMode);
        attention->setColourScale(d.attentionColourScale);
    }
    if (views::TradeoffView* tradeoff = tradeoffView()) {
        tradeoff->setMetric(d.metric);
        tradeoff->setColouring(d.colourByFamily ? views::TradeoffView::Colouring::Family
                                                : views::TradeoffView::Colouring::Scheme);
        tradeoff->setStreamingChecked(d.streamingCurves);
    }
    m_session->setStreamingCurves(d.streamingCurves);
    if (views::CacheView* cache = cacheView())
        cache->selectHead(d.spectrumLayer, d.spectrumKvHead);
    m_tabs->setCurrentIndex(d.tab);
    m_undo->clear();
    const QString& model = d.modelFolder;
    const auto current = m_session->model();
    if (!model.isEmpty() && (!current || current->facts.folder != QDir::cleanPath(model)))
        openModel(model);
    adoptSessionFile(path);
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

void MainWindow::chooseStudyResults() {
    auto settings = openSettings();
    const QString start =
        settings->value(QStringLiteral("study/lastDir"), QDir::homePath()).toString();
    const QStringList paths =
        QFileDialog::getOpenFileNames(this, tr("Open study results (select every shard's journal)"),
                                      start, tr("Study journals (*.jsonl);;All files (*)"));
    if (paths.isEmpty())
        return;
    settings->setValue(QStringLiteral("study/lastDir"), QFileInfo(paths.front()).absolutePath());
    QString error;
    if (!openStudyResults(paths, &error))
        QMessageBox::warning(this, tr("Open study results failed"), error);
}

bool MainWindow::openStudyResults(const QStringList& journals, QString* error) {
    const auto study = catchErrors([&] { return loadStudyJournals(journals); });
    if (!study.ok()) {
        if (error)
            *error = QString::fromStdString(study.message());
        return false;
    }
    views::TradeoffView* tradeoff = tradeoffView();
    if (!tradeoff) {
        if (error)
            *error = tr("This window has no Trade-offs view");
        return false;
    }
    tradeoff->setStudy(study.value());
    showViewByName(QStringLiteral("tradeoffs"));
    statusBar()->showMessage(
        tr("Study results: %1 (%2)").arg(study.value()->title, study.value()->source), 6000);
    return true;
}

void MainWindow::clearStudyResults() {
    if (views::TradeoffView* tradeoff = tradeoffView())
        tradeoff->setStudy(nullptr);
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
        action->setStatusTip(tr("Open the session %1").arg(QDir::toNativeSeparators(file)));
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
    views::ExportOptions options;
    options.dpi = dpi;
    return exportViews(folder, views, options, error);
}

QStringList MainWindow::exportViews(const QString& folder, const QStringList& views,
                                    const views::ExportOptions& options, QString* error) {
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
        written << exportCurrentView(target, options, &e);
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
    applyApplicationTheme(dark);
    m_views->applyTheme();
    m_views->markStale();
    m_views->refresh(true);
    if (m_options.persistSettings)
        openSettings()->setValue(QStringLiteral("view/theme"),
                                 dark ? QStringLiteral("dark") : QStringLiteral("light"));
}

void MainWindow::pinBaseline() {
    m_baseline = m_session->analysis();
    m_baselineSweeps = m_session->sweeps();
    if (views::TradeoffView* tradeoff = tradeoffView())
        tradeoff->setBaseline(m_baselineSweeps);
    m_baselineRun = std::max(0, m_schemes->focusedRow());
    if (views::ProfileView* profile = profileView())
        profile->setBaseline(m_baseline, m_baselineRun);
    m_views->markStale(attentionView());
    m_views->refresh(false);
    m_unpinAction->setEnabled(hasBaseline());
    statusBar()->showMessage(hasBaseline() ? tr("Pinned the current results as the baseline")
                                           : tr("Nothing to pin yet"),
                             4000);
}

void MainWindow::clearBaseline() {
    m_baseline.reset();
    m_baselineSweeps.reset();
    if (views::TradeoffView* tradeoff = tradeoffView())
        tradeoff->setBaseline(nullptr);
    if (views::ProfileView* profile = profileView())
        profile->setBaseline(nullptr, 0);
    m_unpinAction->setEnabled(false);
    if (views::AttentionView* attention = attentionView())
        attention->setBaselineDifference(nullptr, QString());
}

bool MainWindow::hasBaseline() const {
    return m_baseline || m_baselineSweeps;
}

} // namespace kvs::studio
