// SPDX-License-Identifier: MIT
// The studio's main window: menus, the Setup dock, the central tabs and the status bar, wired to
// one Session that owns the state and the worker jobs.
#pragma once

#include "lessons.h"
#include "session_document.h"
#include "session_view.h"
#include "snapshots.h"

#include <QElapsedTimer>
#include <QMainWindow>
#include <QStringList>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "analysis_data.h"

class QAction;
class QLabel;
class QMenu;
class QProgressBar;
class QTabWidget;
class QTimer;
class QToolButton;
class QUndoStack;

namespace kvs::views {
class AttentionView;
class CacheView;
class ProfileView;
class TradeoffView;
struct ChartHandle;
} // namespace kvs::views

namespace kvs::studio {

class CapacityPage;
class ExplainPanel;
class LessonPanel;
class OverviewPage;
class SchemesPanel;
class Session;
class SetupPanel;
class ViewHost;

struct MainWindowOptions {
    // Restore and save geometry, dock state and the recent-models list in QSettings. Off for
    // screenshots, so that they look the same on every machine and leave no trace.
    bool persistSettings = true;
    // Find the compute backend on a worker at start-up (shown in the status bar).
    bool probeBackend = true;
    // Closing with unsaved session changes asks Save / Discard / Cancel. Off for screenshots
    // and the command-line renderer, which never wait for a person.
    bool askToSaveOnClose = true;
    // Asked before a save replaces a file KV Studio did not write ("X was not written by KV
    // Studio. Replace it?"); true replaces it. Unset: a question box. Tests answer it here.
    std::function<bool(const QString& path)> confirmReplace;
    // Unsaved changes are written to a recovery file every `autosaveSeconds` (0: never) and,
    // at start-up, a recovery file left by a window that did not close (a crash, a kill) is
    // offered back. Unset `offerRecovery`: a question box; tests answer it here (true restores).
    // The folder defaults to the application's data folder + /recovery.
    int autosaveSeconds = 0;
    QString recoveryFolder;
    std::function<bool(const QString& recoveryFile)> offerRecovery;
};

// The window observes the session (status bar, title) through the same ISessionView as its views.
class MainWindow : public QMainWindow, private ISessionView {
    Q_OBJECT
public:
    explicit MainWindow(const MainWindowOptions& options = {}, QWidget* parent = nullptr);
    // Waits for (or cancels) the session's jobs before the views go.
    ~MainWindow() override;

    Session* session() const { return m_session.get(); }
    SetupPanel* setupPanel() const { return m_setup; }
    OverviewPage* overviewPage() const;
    QTabWidget* tabs() const { return m_tabs; }
    SchemesPanel* schemesPanel() const { return m_schemes; }
    // The Explain dock: what the current view shows and what the focused scheme does.
    ExplainPanel* explainPanel() const { return m_explain; }
    QDockWidget* explainDock() const { return m_explainDock; }
    // The views the window wires beyond the StudioView interface (selection, baseline, picks).
    views::AttentionView* attentionView() const;
    views::TradeoffView* tradeoffView() const;
    views::CacheView* cacheView() const;
    views::ProfileView* profileView() const;
    QUndoStack* undoStack() const { return m_undo; }

    // The tabs: one per registered view (view_registry.h), in registration order.
    ViewHost* viewHost() const { return m_views; }
    // The registered views' names (tab order), and those with charts.
    static QStringList viewNames();
    static QStringList chartViewNames();
    // The tab index of a view (-1 when unknown).
    int viewIndex(const QString& name) const;
    // One of viewNames(); false when unknown.
    bool showViewByName(const QString& name);
    // The status bar's transient message (e.g. a failed job's error).
    QString statusMessage() const;
    // The status bar's analysis label ("3 schemes in 12 ms", "Analysis failed").
    QString analysisStateText() const;
    // The charts of the view on screen (what File > Export exports).
    std::vector<views::ChartHandle> currentCharts() const;
    // Exports every chart of the current view to `folder` as PNG (at `dpi`), SVG, PDF and CSV,
    // each with its sidecar; returns the files written, or an error in `error`.
    QStringList exportCurrentView(const QString& folder, int dpi, QString* error);
    // The same at a chosen figure size and font (views::ExportOptions: physical units).
    QStringList exportCurrentView(const QString& folder, const views::ExportOptions& options,
                                  QString* error);
    views::Provenance provenance() const;

    // Sessions: model, prompt, split, schemes, focused scheme, view state, theme.
    bool saveSession(const QString& path, QString* error);
    // Asked before a file the studio did not write is replaced (options.confirmReplace, else a
    // question box); every file the window writes goes through it.
    bool confirmReplace(const QString& path);
    views::ExportWriter exportWriter();
    bool openSession(const QString& path, QString* error);
    // Prompt-set studies (study_results.h): the journals of a study (one run, or all its
    // shards) overlaid on the Trade-offs view with their 95% intervals; false with the reason.
    bool openStudyResults(const QStringList& journals, QString* error);
    void clearStudyResults();
    // Crash recovery (main_window_recovery.cpp): this window's recovery file ("" when none was
    // written), writing it now, and offering back the files of windows that did not close.
    QString recoveryFile() const { return m_recoveryFile; }
    bool autosaveNow();
    void offerRecoveredSessions();
    // The session file being edited ("" until saved or opened) and whether the window holds
    // changes not in it (the title's [*]).
    QString sessionPath() const { return m_sessionPath; }
    bool isSessionModified() const { return isWindowModified(); }
    void setSessionModified(bool modified);
    QStringList recentSessions() const;
    // Before the window closes or another session replaces this one: true when it may go on
    // (saved, discarded, or nothing to save); asks only with askToSaveOnClose.
    bool maybeSaveSession();
    // Exports the charts of the named views (chartViewNames()) as exportCurrentView does: into
    // `folder` for one view, into a subfolder per view for several.
    QStringList exportViews(const QString& folder, const QStringList& views, int dpi,
                            QString* error);
    QStringList exportViews(const QString& folder, const QStringList& views,
                            const views::ExportOptions& options, QString* error);
    void setDarkTheme(bool dark);
    bool isDarkTheme() const { return m_dark; }
    // Pins the current results (and curves) as the baseline the views compare with.
    void pinBaseline();
    void clearBaseline();
    bool hasBaseline() const;
    QList<QAction*> allActions() const;
    void openCommandPalette();
    // Number of repaints of the visible views since the last results arrived (benchmarks).
    quint64 resultsShown() const;

    void openModel(const QString& folder);
    void setPrompt(const QString& prompt);
    // A non-blocking note in the Setup dock (e.g. how to get a model when none was found).
    void showInfo(const QString& text);

    QStringList recentModels() const;

    // The guided tour (Help › Guided Tour) and the start page's "try this" actions: a set-up of
    // model, prompt, schemes, view and selection (lessons.h), applied as a user would.
    void applyStudioSetup(const StudioSetup& setup);
    void startTour(int step = 0);
    LessonPanel* lessonPanel() const { return m_lesson; }
    QDockWidget* lessonDock() const { return m_lessonDock; }
    CapacityPage* capacityPage() const;

    // Status bar contents, for tests and screenshots.
    QString backendText() const;
    QString modelStateText() const;
    bool isLoadProgressVisible() const;
    // The bar's value while it measures a capture's layers; −1 while it is a busy indicator.
    int loadProgressValue() const;
    // The status bar's Cancel button (and Esc) stop the session's long work.
    bool isCancelVisible() const;
    void cancelWork();

    // The folder a drop of these URLs would open ("" when none): a folder, or the folder of a
    // dropped config.json / *.safetensors / tokenizer file.
    static QString modelFolderFromUrls(const QList<QUrl>& urls);

protected:
    void closeEvent(QCloseEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    // ISessionView: the status bar, the title and the split follow the session.
    void onModelLoading(const QString& folder) override;
    void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) override;
    void onModelLoadFailed(const QString& folder, const QString& message) override;
    void onModelCleared() override;
    void onTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) override;
    void onJobStarted(views::StudioJob job) override;
    void onAnalysisChanged(const std::shared_ptr<const views::AnalysisData>& analysis) override;
    void onJobFailed(views::StudioJob job, const kvs::Error& error) override;

    void createActions();
    void createMenus();
    void createDocks();
    void createStatusBar();
    void connectSession();
    void resetLayout();
    void restoreLayout();
    void saveLayout();
    void rebuildRecentMenu();
    void rebuildBundledMenu();
    void chooseModelFolder();
    void showAbout();
    void markUpdated();
    void setModelStateText(const QString& text, bool error = false);
    void createStudioActions();
    void connectViews();
    void drawBaselineDifference(const views::AnalysisData& analysis, int run);
    // Moves the Attention view's selection by whole layers and by heads (wrapping into the next or
    // previous layer).
    void stepSelection(int layers, int heads);
    void stepView(int delta);
    // After a save or an open: `path` is the window's session file, unmodified, and recent.
    void adoptSessionFile(const QString& path);
    void chooseExportFolder(bool allViews);
    bool chooseSaveSession(bool saveAs);
    void chooseOpenSession();
    void chooseStudyResults();
    void openSessionInteractively(const QString& path);
    void rebuildRecentSessionsMenu();
    void updateTitle();
    void updateWorkIndicator();
    // The tour (main_window_tour.cpp).
    void createTour();
    QString resolveModelFolder(const QString& model) const;
    void applyViewState(const StudioSetup& setup);
    void fitPromptIfPending(const std::shared_ptr<const TokensSnapshot>& tokens);
    void tourModelLoaded();
    void refreshStartPage();
    void tourTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens);
    void tourAnalysisChanged();
    void updateLessonFacts();
    SessionDocument currentDocument() const;
    QString recoveryFolder() const;
    void removeRecoveryFile();
    void startAutosave();

    MainWindowOptions m_options;
    std::unique_ptr<Session> m_session;
    SetupPanel* m_setup = nullptr;
    QTabWidget* m_tabs = nullptr;
    QDockWidget* m_setupDock = nullptr;
    QMenu* m_recentMenu = nullptr;
    QMenu* m_bundledMenu = nullptr;
    QAction* m_openAction = nullptr;
    QAction* m_quitAction = nullptr;
    QAction* m_resetLayoutAction = nullptr;
    QAction* m_aboutAction = nullptr;
    QLabel* m_modelState = nullptr;
    QLabel* m_backend = nullptr;
    QLabel* m_updated = nullptr;
    QProgressBar* m_progress = nullptr;
    bool m_capturing = false;     // the bar measures a capture's layers
    QString m_stateBeforeCapture; // the model line to put back when it ends
    QToolButton* m_cancelButton = nullptr;
    QTimer* m_workCheck = nullptr; // re-checks while there is work
    QElapsedTimer m_workSince;     // since when there has been cancellable work
    QAction* m_cancelAction = nullptr;

    SchemesPanel* m_schemes = nullptr;
    QDockWidget* m_schemesDock = nullptr;
    ExplainPanel* m_explain = nullptr;
    QDockWidget* m_explainDock = nullptr;
    QDockWidget* m_lessonDock = nullptr;
    LessonPanel* m_lesson = nullptr;
    QAction* m_tourAction = nullptr;
    std::optional<StudioSetup> m_pendingViewState; // applied again once a step's model arrives
    bool m_pendingFit = false; // trim the prompt once the step's model tokenizes
    QString m_tourModelFolder;
    QString m_modelDisplayName; // "default (bundled)", for the tour's texts
    QString m_recoveryFile;
    QTimer* m_autosave = nullptr;
    ViewHost* m_views = nullptr;
    QUndoStack* m_undo = nullptr;
    QList<QAction*> m_studioActions;
    QAction* m_undoAction = nullptr;
    QAction* m_redoAction = nullptr;
    QAction* m_themeAction = nullptr;
    QAction* m_pinAction = nullptr;
    QAction* m_unpinAction = nullptr;
    QMenu* m_fileMenu = nullptr;
    QMenu* m_editMenu = nullptr;
    QMenu* m_viewMenu = nullptr;
    bool m_dark = false;
    bool m_layoutRestored = false;
    bool m_applyingUndo = false;
    std::shared_ptr<const views::AnalysisData> m_baseline;
    int m_baselineRun = 0;
    std::shared_ptr<const views::SweepData> m_baselineSweeps;
    QLabel* m_analysisState = nullptr;
    QMenu* m_recentSessionsMenu = nullptr;
    QString m_sessionPath;
    QString m_modelName;
    int m_lastSplit = 0;
};

} // namespace kvs::studio
