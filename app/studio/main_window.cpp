// SPDX-License-Identifier: MIT
// The studio's main window: menus, the Setup dock, the central tabs and the status bar, wired to
// one Session that owns the state and the worker jobs.
#include "main_window.h"

#include "explain_panel.h"
#include "overview_page.h"
#include "schemes_panel.h"
#include "session.h"
#include "setup_panel.h"
#include "shortcuts_dialog.h"
#include "startup.h"
#include "studio_settings.h"
#include "view_host.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QStatusBar>
#include <QTabWidget>
#include <QTimer>
#include <QToolButton>
#include <QUndoStack>
#include <QUrl>

namespace kvs::studio {

namespace {

constexpr int kLayoutVersion = 3; // 2: the Schemes dock; 3: the Explain dock

} // namespace

MainWindow::MainWindow(const MainWindowOptions& options, QWidget* parent)
    : QMainWindow(parent), m_options(options), m_session(std::make_unique<Session>()) {
    setObjectName(QStringLiteral("mainWindow"));
    // First observer: the status bar and the split follow an event before the docks and views.
    m_session->addView(this);
    updateTitle();
    setAcceptDrops(true);
    resize(1600, 1000);

    createActions();
    m_tabs = new QTabWidget(this);
    m_tabs->setObjectName(QStringLiteral("centralTabs"));
    m_tabs->setDocumentMode(true);
    m_views = new ViewHost(
        m_session.get(), m_tabs, [this] { return m_schemes ? m_schemes->focusedRow() : 0; }, this);
    m_views->createViews();
    setCentralWidget(m_tabs);

    createStudioActions();
    // The last 1,000 changes stay undoable, not every change since the window opened: a
    // window left open for days would grow without end (a slider's moves merge into one step).
    m_undo->setUndoLimit(1000);
    createDocks();
    createTour();
    createMenus();
    createStatusBar();
    connectSession();
    connectViews();
    // Explain goes last on the right, under the Schemes dock it explains, once every other dock
    // has been placed (splitDockWidget left it above when a dock was split in after it).
    removeDockWidget(m_explainDock);
    addDockWidget(Qt::RightDockWidgetArea, m_explainDock, Qt::Vertical);
    m_explainDock->show();

    if (m_options.persistSettings)
        restoreLayout();
    // Dock sizes only take once the window is laid out.
    QTimer::singleShot(0, this, [this] {
        if (!m_layoutRestored)
            resizeDocks({m_setupDock, m_schemesDock}, {330, 400}, Qt::Horizontal);
        if (!m_layoutRestored && m_explainDock)
            resizeDocks({m_schemesDock, m_explainDock}, {500, 440}, Qt::Vertical);
    });
    startAutosave();
    if (m_options.probeBackend)
        m_session->probeBackend();
    else
        m_backend->setText(tr("Backend: not probed"));
}

MainWindow::~MainWindow() {
    m_session->removeView(this);
    // The session waits for its running jobs here, while every view is still alive; after this
    // no result can arrive.
    m_session.reset();
}

void MainWindow::createActions() {
    m_openAction = new QAction(tr("&Open Model\u2026"), this);
    m_openAction->setObjectName(QStringLiteral("openModelAction"));
    m_openAction->setShortcut(QKeySequence::Open);
    m_openAction->setStatusTip(tr("Open a Hugging Face model folder"));
    connect(m_openAction, &QAction::triggered, this, &MainWindow::chooseModelFolder);

    m_quitAction = new QAction(tr("&Quit"), this);
    m_quitAction->setObjectName(QStringLiteral("quitAction"));
    m_quitAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Q));
    m_quitAction->setMenuRole(QAction::QuitRole);
    m_quitAction->setStatusTip(tr("Close the window (asks first when the session has unsaved "
                                  "changes)"));
    connect(m_quitAction, &QAction::triggered, this, &QWidget::close);

    m_resetLayoutAction = new QAction(tr("&Reset Layout"), this);
    m_resetLayoutAction->setObjectName(QStringLiteral("resetLayoutAction"));
    m_resetLayoutAction->setStatusTip(tr("Put the docks back in their first places and sizes"));
    connect(m_resetLayoutAction, &QAction::triggered, this, &MainWindow::resetLayout);

    m_aboutAction = new QAction(tr("&About KV Studio"), this);
    m_aboutAction->setObjectName(QStringLiteral("aboutAction"));
    m_aboutAction->setMenuRole(QAction::AboutRole);
    m_aboutAction->setStatusTip(tr("Versions of KV Studio, Qt, the Vulkan driver and the model"));
    connect(m_aboutAction, &QAction::triggered, this, &MainWindow::showAbout);
}

void MainWindow::createMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    m_fileMenu = file;
    file->setObjectName(QStringLiteral("fileMenu"));
    file->addAction(m_openAction);
    m_recentMenu = file->addMenu(tr("Recent &Models"));
    m_recentMenu->setObjectName(QStringLiteral("recentMenu"));
    connect(m_recentMenu, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
    rebuildRecentMenu();
    m_bundledMenu = file->addMenu(tr("&Bundled Models"));
    m_bundledMenu->setObjectName(QStringLiteral("bundledMenu"));
    connect(m_bundledMenu, &QMenu::aboutToShow, this, &MainWindow::rebuildBundledMenu);
    rebuildBundledMenu();
    file->addSeparator();
    for (QAction* a : m_studioActions)
        if (a->property("kvsMenu").toString() == QLatin1String("file"))
            file->addAction(a);
    m_recentSessionsMenu = file->addMenu(tr("Recent Sess&ions"));
    m_recentSessionsMenu->setObjectName(QStringLiteral("recentSessionsMenu"));
    connect(m_recentSessionsMenu, &QMenu::aboutToShow, this,
            &MainWindow::rebuildRecentSessionsMenu);
    rebuildRecentSessionsMenu();
    file->addSeparator();
    file->addAction(m_quitAction);

    QMenu* edit = menuBar()->addMenu(tr("&Edit"));
    m_editMenu = edit;
    edit->setObjectName(QStringLiteral("editMenu"));
    for (QAction* a : m_studioActions)
        if (a->property("kvsMenu").toString() == QLatin1String("edit"))
            edit->addAction(a);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    m_viewMenu = view;
    view->setObjectName(QStringLiteral("viewMenu"));
    view->addAction(m_setupDock->toggleViewAction());
    view->addAction(m_schemesDock->toggleViewAction());
    view->addAction(m_explainDock->toggleViewAction());
    view->addAction(m_lessonDock->toggleViewAction());
    view->addSeparator();
    for (QAction* a : m_studioActions)
        if (a->property("kvsMenu").toString() == QLatin1String("view"))
            view->addAction(a);
    view->addSeparator();
    view->addAction(m_resetLayoutAction);

    QMenu* compare = menuBar()->addMenu(tr("&Compare"));
    compare->setObjectName(QStringLiteral("compareMenu"));
    for (QAction* a : m_studioActions)
        if (a->property("kvsMenu").toString() == QLatin1String("compare"))
            compare->addAction(a);

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->setObjectName(QStringLiteral("helpMenu"));
    help->addAction(m_tourAction);
    help->addSeparator();
    // A dock without its own status tip still says what its View entry does.
    for (QDockWidget* dock : findChildren<QDockWidget*>())
        if (dock->toggleViewAction()->statusTip().isEmpty())
            dock->toggleViewAction()->setStatusTip(
                tr("Show or hide the %1 dock").arg(dock->windowTitle()));
    // Made last, so that it can see whether another command has the help key.
    QAction* shortcuts = createShortcutsAction(this);
    help->addAction(shortcuts);
    m_studioActions << shortcuts; // the command palette lists it too
    help->addSeparator();
    help->addAction(m_aboutAction);
    help->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt)
        ->setStatusTip(tr("The version and licence of Qt, the toolkit of this window"));
}

void MainWindow::createDocks() {
    m_setupDock = new QDockWidget(tr("Setup"), this);
    m_setupDock->setObjectName(QStringLiteral("setupDock"));
    m_setupDock->setAllowedAreas(Qt::LeftDockWidgetArea | Qt::RightDockWidgetArea);
    m_setup = new SetupPanel(m_session.get(), m_openAction, m_setupDock);
    m_setupDock->setWidget(m_setup);
    m_setupDock->toggleViewAction()->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_1));
    m_setupDock->toggleViewAction()->setStatusTip(
        tr("Show or hide the Setup dock: the model, the prompt and its tokens"));
    m_schemesDock = new QDockWidget(tr("Schemes"), this);
    m_schemesDock->setObjectName(QStringLiteral("schemesDock"));
    m_schemesDock->setAllowedAreas(Qt::LeftDockWidgetArea | Qt::RightDockWidgetArea);
    m_schemes = new SchemesPanel(m_schemesDock);
    m_schemesDock->setWidget(m_schemes);
    m_schemesDock->toggleViewAction()->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_2));
    m_explainDock = new QDockWidget(tr("Explain"), this);
    m_explainDock->setObjectName(QStringLiteral("explainDock"));
    m_explainDock->setAllowedAreas(Qt::AllDockWidgetAreas);
    m_explain = new ExplainPanel(m_session.get(), m_views, m_tabs, m_schemes, m_explainDock);
    m_explainDock->setWidget(m_explain);
    m_explainDock->toggleViewAction()->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_3));
    m_explainDock->toggleViewAction()->setStatusTip(
        tr("Show or hide the Explain dock: what the current view shows and what the focused "
           "scheme does to the cache, with the chosen head's numbers"));
    m_schemesDock->toggleViewAction()->setStatusTip(
        tr("Show or hide the Schemes dock: the schemes compared, their budgets and the context / "
           "probe split"));
    resetLayout();
}

void MainWindow::resetLayout() {
    m_setupDock->setFloating(false);
    addDockWidget(Qt::LeftDockWidgetArea, m_setupDock); // moves it back if it was elsewhere
    m_setupDock->show();
    if (m_schemesDock) {
        m_schemesDock->setFloating(false);
        addDockWidget(Qt::RightDockWidgetArea, m_schemesDock);
        m_schemesDock->show();
        resizeDocks({m_setupDock, m_schemesDock}, {330, 400}, Qt::Horizontal);
        if (m_explainDock) { // beside the views, under the schemes it explains
            m_explainDock->setFloating(false);
            removeDockWidget(m_explainDock);
            addDockWidget(Qt::RightDockWidgetArea, m_explainDock, Qt::Vertical);
            m_explainDock->show();
            resizeDocks({m_schemesDock, m_explainDock}, {500, 440}, Qt::Vertical);
        }
    } else {
        resizeDocks({m_setupDock}, {470}, Qt::Horizontal);
    }
    if (m_setup)
        m_setup->resetSplitter();
}

void MainWindow::createStatusBar() {
    QStatusBar* bar = statusBar();
    bar->setObjectName(QStringLiteral("statusBar"));
    m_progress = new QProgressBar(bar);
    m_progress->setObjectName(QStringLiteral("loadProgress"));
    m_progress->setRange(0, 0); // busy indicator: a load has no measurable progress yet
    m_progress->setMaximumWidth(140);
    m_progress->setMaximumHeight(14);
    m_progress->setTextVisible(false);
    m_progress->hide();
    m_modelState = new QLabel(tr("No model"), bar);
    m_modelState->setObjectName(QStringLiteral("modelStateLabel"));
    m_backend = new QLabel(tr("Backend: probing\u2026"), bar);
    m_backend->setObjectName(QStringLiteral("backendLabel"));
    m_updated = new QLabel(bar);
    m_updated->setObjectName(QStringLiteral("updatedLabel"));
    m_updated->setToolTip(tr("When the views last received new results"));
    m_cancelButton = new QToolButton(bar);
    m_cancelButton->setObjectName(QStringLiteral("cancelWorkButton"));
    m_cancelButton->setAutoRaise(true);
    m_cancelAction->setIconText(tr("Cancel"));
    m_cancelButton->setDefaultAction(m_cancelAction);
    m_workCheck = new QTimer(this);
    m_workCheck->setInterval(100);
    connect(m_workCheck, &QTimer::timeout, this, [this] { updateWorkIndicator(); });
    m_cancelButton->hide();
    bar->addWidget(m_progress);
    bar->addWidget(m_cancelButton);
    bar->addWidget(m_modelState, 1);
    m_analysisState = new QLabel(bar);
    m_analysisState->setObjectName(QStringLiteral("analysisStateLabel"));
    bar->addPermanentWidget(m_analysisState);
    bar->addPermanentWidget(m_backend);
    bar->addPermanentWidget(m_updated);
}

void MainWindow::connectSession() {
    Session* s = m_session.get();
    connect(s, &Session::busyChanged, this, [this] { updateWorkIndicator(); });
    // The bar measures a capture's layers while one runs, and is a busy indicator otherwise.
    connect(s, &Session::captureProgress, this, [this](int done, int layers) {
        if (done >= layers) {
            m_progress->setRange(0, 0);
            m_progress->setToolTip(QString());
            if (m_capturing)
                setModelStateText(m_stateBeforeCapture);
            m_capturing = false;
            return;
        }
        if (!m_capturing)
            m_stateBeforeCapture = m_modelState->text();
        m_capturing = true;
        m_progress->setRange(0, layers);
        m_progress->setValue(done);
        m_progress->setToolTip(
            tr("Running the model over the prompt: %1 of %2 layers").arg(done).arg(layers));
        setModelStateText(
            tr("Capturing the prompt: layer %1 of %2\u2026").arg(done + 1).arg(layers));
    });
    connect(s, &Session::modelLoadCancelled, this, [this](const QString& folder) {
        m_progress->hide();
        setModelStateText(tr("Cancelled loading %1").arg(QDir::toNativeSeparators(folder)));
    });
    connect(s, &Session::workCancelled, this, [this] {
        if (m_capturing) { // a cancelled capture: the bar goes back to a busy indicator
            m_progress->setRange(0, 0);
            m_progress->setToolTip(QString());
            setModelStateText(m_stateBeforeCapture);
            m_capturing = false;
        }
        updateWorkIndicator();
        statusBar()->showMessage(tr("Cancelled; the views keep the last results"), 4000);
    });
    connect(
        s, &Session::backendChanged, this, [this](std::shared_ptr<const BackendSnapshot> backend) {
            m_backend->setText(backend->summary);
            m_backend->setToolTip(backend->detail.isEmpty() ? backend->summary : backend->detail);
        });
}

void MainWindow::onModelLoading(const QString& folder) {
    m_progress->show();
    setModelStateText(tr("Loading %1\u2026").arg(QDir::toNativeSeparators(folder)));
}

void MainWindow::onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) {
    m_progress->hide();
    m_modelName = model->facts.name;
    updateTitle();
    tourModelLoaded();
    const QString took = model->loadSeconds < 1.0
                             ? tr("%1 ms").arg(qRound(model->loadSeconds * 1000.0))
                             : tr("%1 s").arg(model->loadSeconds, 0, 'f', 1);
    setModelStateText(tr("Loaded %1 in %2").arg(model->facts.name, took));
    m_modelState->setToolTip(QDir::toNativeSeparators(model->facts.folder));
    if (m_options.persistSettings) {
        auto settings = openSettings();
        RecentModels::add(*settings, model->facts.folder);
    }
    markUpdated();
}

void MainWindow::onModelLoadFailed(const QString& folder, const QString& message) {
    m_progress->hide();
    setModelStateText(tr("Could not load %1").arg(QDir::toNativeSeparators(folder)), true);
    m_modelState->setToolTip(message);
}

void MainWindow::onModelCleared() {
    m_progress->hide();
    m_modelName.clear();
    updateTitle();
    setModelStateText(tr("No model"));
}

void MainWindow::setModelStateText(const QString& text, bool error) {
    m_modelState->setText(text);
    m_modelState->setStyleSheet(error ? QStringLiteral("color: #D55E00;") : QString());
}

void MainWindow::markUpdated() {
    m_updated->setText(
        tr("Updated %1").arg(QTime::currentTime().toString(QStringLiteral("HH:mm:ss"))));
}

void MainWindow::openModel(const QString& folder) {
    m_session->openModel(folder);
}

void MainWindow::setPrompt(const QString& prompt) {
    const bool modified = isSessionModified();
    m_setup->setPrompt(prompt);
    setSessionModified(modified); // a prompt set by the program is not an edit
}

void MainWindow::showInfo(const QString& text) {
    m_setup->showInfo(text);
}

QStringList MainWindow::recentModels() const {
    auto settings = openSettings();
    return RecentModels::load(*settings);
}

QString MainWindow::backendText() const {
    return m_backend->text();
}

QString MainWindow::modelStateText() const {
    return m_modelState->text();
}

bool MainWindow::isCancelVisible() const {
    return !m_cancelButton->isHidden();
}

void MainWindow::cancelWork() {
    m_session->cancelWork();
}

void MainWindow::updateWorkIndicator() {
    // Work that ends within a slider debounce never shows the bar (no flicker); longer work
    // shows it with Cancel. Work can end without the session's busy state changing (a sweep ends
    // while the timing job still runs), so a timer re-checks while there is work.
    if (!m_session->hasCancellableWork()) {
        m_progress->hide();
        m_cancelButton->hide();
        m_cancelAction->setEnabled(false);
        m_workCheck->stop();
        m_workSince.invalidate();
        return;
    }
    m_cancelAction->setEnabled(true);
    if (!m_workSince.isValid())
        m_workSince.start();
    if (!m_workCheck->isActive())
        m_workCheck->start();
    if (m_workSince.elapsed() >= 300) {
        m_progress->show();
        m_cancelButton->show();
    }
}

bool MainWindow::isLoadProgressVisible() const {
    return !m_progress->isHidden();
}

int MainWindow::loadProgressValue() const {
    return m_progress->maximum() > 0 ? m_progress->value() : -1;
}

void MainWindow::rebuildRecentMenu() {
    m_recentMenu->clear();
    const QStringList recent = recentModels();
    for (int i = 0; i < recent.size(); ++i) {
        const QString& folder = recent[i];
        const QString label =
            QStringLiteral("&%1 %2 \u2014 %3")
                .arg(i + 1)
                .arg(QFileInfo(folder).fileName(), QDir::toNativeSeparators(folder));
        QAction* action = m_recentMenu->addAction(label);
        action->setData(folder);
        action->setStatusTip(tr("Open the model in %1").arg(QDir::toNativeSeparators(folder)));
        connect(action, &QAction::triggered, this, [this, folder] { openModel(folder); });
    }
    if (recent.isEmpty()) {
        m_recentMenu->addAction(tr("(none yet)"))->setEnabled(false);
        return;
    }
    m_recentMenu->addSeparator();
    m_recentMenu
        ->addAction(tr("&Clear List"), this,
                    [] {
                        auto settings = openSettings();
                        RecentModels::clear(*settings);
                    })
        ->setStatusTip(tr("Forget the models opened before"));
}

// The project's trained models (default and projection-sharing variants), one click away, with
// the one in use checked: the way to compare what trained-in sharing costs.
void MainWindow::rebuildBundledMenu() {
    m_bundledMenu->clear();
    const auto models = bundledModels(QCoreApplication::applicationDirPath());
    const auto current = m_session->model();
    const QString currentFolder =
        current ? QFileInfo(current->facts.folder).canonicalFilePath() : QString();
    for (const BundledModel& m : models) {
        QAction* action = m_bundledMenu->addAction(m.label);
        action->setObjectName(QStringLiteral("bundledModel_") + m.name);
        action->setData(m.folder);
        action->setCheckable(true);
        action->setChecked(!currentFolder.isEmpty() &&
                           QFileInfo(m.folder).canonicalFilePath() == currentFolder);
        action->setStatusTip(m.details.isEmpty() ? QDir::toNativeSeparators(m.folder) : m.details);
        action->setToolTip(action->statusTip());
        const QString folder = m.folder;
        connect(action, &QAction::triggered, this, [this, folder] { openModel(folder); });
    }
    if (models.isEmpty())
        m_bundledMenu->addAction(tr("(none found beside the program or in the source tree)"))
            ->setEnabled(false);
    m_bundledMenu->setToolTipsVisible(true);
}

void MainWindow::chooseModelFolder() {
    auto settings = openSettings();
    QString start = settings->value(QLatin1String(kKeyLastOpenDir)).toString();
    if (const auto model = m_session->model())
        start = QFileInfo(model->facts.folder).absolutePath();
    const QString folder = QFileDialog::getExistingDirectory(
        this, tr("Open a model folder (config.json + safetensors)"), start);
    if (folder.isEmpty())
        return;
    settings->setValue(QLatin1String(kKeyLastOpenDir), QFileInfo(folder).absolutePath());
    openModel(folder);
}

void MainWindow::showAbout() {
    const auto model = m_session->model();
    const auto backend = m_session->backend();
    QMessageBox::about(
        this, tr("About KV Studio"),
        tr("<h3>KV Studio %1</h3>"
           "<p>A desktop studio for exploring KV-cache compression.</p>"
           "<p>Qt %2<br>Backend: %3<br>Model: %4</p>")
            .arg(QStringLiteral(KVS_VERSION), QString::fromLatin1(qVersion()),
                 (backend ? (backend->detail.isEmpty() ? backend->summary : backend->detail)
                          : tr("not probed yet"))
                     .toHtmlEscaped(),
                 model ? QStringLiteral("%1 (%2)")
                             .arg(model->facts.name, model->facts.folder)
                             .toHtmlEscaped()
                       : tr("none")));
}

QString MainWindow::modelFolderFromUrls(const QList<QUrl>& urls) {
    for (const QUrl& url : urls) {
        if (!url.isLocalFile())
            continue;
        const QFileInfo info(url.toLocalFile());
        if (info.isDir())
            return info.absoluteFilePath();
        const QString name = info.fileName();
        if (info.isFile() &&
            (name == QLatin1String("config.json") || name.endsWith(QLatin1String(".safetensors")) ||
             name.endsWith(QLatin1String(".safetensors.index.json")) ||
             name == QLatin1String("tokenizer.json") || name == QLatin1String("tokenizer.model")))
            return info.absolutePath();
    }
    return {};
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls() && !modelFolderFromUrls(event->mimeData()->urls()).isEmpty())
        event->acceptProposedAction();
    else
        event->ignore();
}

void MainWindow::dropEvent(QDropEvent* event) {
    const QString folder = modelFolderFromUrls(event->mimeData()->urls());
    if (folder.isEmpty()) {
        event->ignore();
        return;
    }
    event->acceptProposedAction();
    openModel(folder);
}

void MainWindow::restoreLayout() {
    auto settings = openSettings();
    const QByteArray geometry = settings->value(QLatin1String(kKeyGeometry)).toByteArray();
    if (!geometry.isEmpty())
        restoreGeometry(geometry);
    const QByteArray state = settings->value(QLatin1String(kKeyState)).toByteArray();
    if (!state.isEmpty())
        m_layoutRestored = restoreState(state, kLayoutVersion);
    m_setup->restoreSplitterState(settings->value(QLatin1String(kKeySetupSplitter)).toByteArray());
}

void MainWindow::saveLayout() {
    auto settings = openSettings();
    settings->setValue(QLatin1String(kKeyGeometry), saveGeometry());
    settings->setValue(QLatin1String(kKeyState), saveState(kLayoutVersion));
    settings->setValue(QLatin1String(kKeySetupSplitter), m_setup->splitterState());
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (!maybeSaveSession()) {
        event->ignore();
        return;
    }
    if (m_options.persistSettings)
        saveLayout();
    removeRecoveryFile(); // a clean close: nothing to offer back
    event->accept();
}

} // namespace kvs::studio
