// SPDX-License-Identifier: MIT
// The studio's main window: menus, the Setup dock, the central tabs and the status bar, wired to
// one Session that owns the state and the worker jobs.
#pragma once

#include "snapshots.h"

#include <QMainWindow>
#include <QStringList>
#include <memory>

class QAction;
class QLabel;
class QMenu;
class QProgressBar;
class QTabWidget;

namespace kvs::studio {

class OverviewPage;
class Session;
class SetupPanel;

struct MainWindowOptions {
    // Restore and save geometry, dock state and the recent-models list in QSettings. Off for
    // screenshots, so that they look the same on every machine and leave no trace.
    bool persistSettings = true;
    // Find the compute backend on a worker at start-up (shown in the status bar).
    bool probeBackend = true;
};

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(const MainWindowOptions& options = {}, QWidget* parent = nullptr);
    // Waits for (or cancels) the session's jobs before the views go.
    ~MainWindow() override;

    Session* session() const { return m_session.get(); }
    SetupPanel* setupPanel() const { return m_setup; }
    OverviewPage* overviewPage() const { return m_overview; }
    QTabWidget* tabs() const { return m_tabs; }

    void openModel(const QString& folder);
    void setPrompt(const QString& prompt);
    // A non-blocking note in the Setup dock (e.g. how to get a model when none was found).
    void showInfo(const QString& text);

    QStringList recentModels() const;

    // Status bar contents, for tests and screenshots.
    QString backendText() const;
    QString modelStateText() const;
    bool isLoadProgressVisible() const;

    // The folder a drop of these URLs would open ("" when none): a folder, or the folder of a
    // dropped config.json / *.safetensors / tokenizer file.
    static QString modelFolderFromUrls(const QList<QUrl>& urls);

protected:
    void closeEvent(QCloseEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void createActions();
    void createMenus();
    void createDocks();
    void createStatusBar();
    void connectSession();
    void resetLayout();
    void restoreLayout();
    void saveLayout();
    void rebuildRecentMenu();
    void chooseModelFolder();
    void showAbout();
    void markUpdated();
    void setModelStateText(const QString& text, bool error = false);

    MainWindowOptions m_options;
    std::unique_ptr<Session> m_session;
    SetupPanel* m_setup = nullptr;
    OverviewPage* m_overview = nullptr;
    QTabWidget* m_tabs = nullptr;
    QDockWidget* m_setupDock = nullptr;
    QMenu* m_recentMenu = nullptr;
    QAction* m_openAction = nullptr;
    QAction* m_quitAction = nullptr;
    QAction* m_resetLayoutAction = nullptr;
    QAction* m_aboutAction = nullptr;
    QLabel* m_modelState = nullptr;
    QLabel* m_backend = nullptr;
    QLabel* m_updated = nullptr;
    QProgressBar* m_progress = nullptr;
};

} // namespace kvs::studio
