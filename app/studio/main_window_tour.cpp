// SPDX-License-Identifier: MIT
// The window's guided tour and "try this" set-ups: applying a StudioSetup (model, prompt,
// schemes, view and selection) and the Lesson dock that steps through the built-in tour.
#include "capacity_page.h"
#include "lesson_panel.h"
#include "main_window.h"
#include "model_config_view.h"
#include "overview_page.h"
#include "schemes_panel.h"
#include "session.h"
#include "setup_panel.h"
#include "startup.h"
#include "tradeoff_view.h"
#include "view_host.h"

#include <QAction>
#include <QCoreApplication>
#include <QDir>
#include <QDockWidget>
#include <QFileInfo>
#include <QLocale>
#include <QTabWidget>
#include <QTimer>

namespace kvs::studio {

void MainWindow::createTour() {
    m_lessonDock = new QDockWidget(tr("Guided Tour"), this);
    m_lessonDock->setObjectName(QStringLiteral("lessonDock"));
    m_lessonDock->setAllowedAreas(Qt::LeftDockWidgetArea | Qt::RightDockWidgetArea);
    m_lesson = new LessonPanel(m_lessonDock);
    m_lessonDock->setWidget(m_lesson);
    QString error;
    m_lesson->setLesson(builtInTour(&error));
    if (!error.isEmpty())
        qWarning("%s", qPrintable(error));
    addDockWidget(Qt::RightDockWidgetArea, m_lessonDock);
    if (m_schemesDock)
        splitDockWidget(m_lessonDock, m_schemesDock, Qt::Vertical);
    m_lessonDock->hide();
    connect(m_lesson, &LessonPanel::stepShown, this,
            [this](int, const StudioSetup& setup) { applyStudioSetup(setup); });
    connect(m_lesson, &LessonPanel::closeRequested, m_lessonDock, &QDockWidget::hide);

    if (OverviewPage* start = overviewPage()) {
        connect(start, &OverviewPage::setupRequested, this,
                [this](const StudioSetup& setup) { applyStudioSetup(setup); });
        connect(start, &OverviewPage::tourRequested, this, [this] { startTour(0); });
        connect(start, &OverviewPage::modelRequested, this,
                [this](const QString& folder) { openModel(folder); });
        refreshStartPage();
    }

    m_tourAction = new QAction(tr("Guided &Tour"), this);
    m_tourAction->setObjectName(QStringLiteral("tourAction"));
    m_tourAction->setStatusTip(
        tr("Step through how KV-cache compression works, each step setting up the real views"));
    connect(m_tourAction, &QAction::triggered, this,
            [this] { startTour(m_lesson->currentStep() > 0 ? m_lesson->currentStep() : 0); });
}

void MainWindow::startTour(int step) {
    const bool wasHidden = m_lessonDock->isHidden();
    m_lessonDock->show();
    m_lessonDock->raise();
    // Room to read: the tour takes a good part of its side's height when it opens.
    if (wasHidden && !m_lessonDock->isFloating())
        QTimer::singleShot(0, this, [this] { resizeDocks({m_lessonDock}, {420}, Qt::Vertical); });
    updateLessonFacts();
    m_lesson->showStep(step);
}

CapacityPage* MainWindow::capacityPage() const {
    return m_views->find<CapacityPage>();
}

QString MainWindow::resolveModelFolder(const QString& model) const {
    if (!model.startsWith(QLatin1String("bundled:")))
        return model;
    const QString name = model.mid(8);
    for (const BundledModel& m : bundledModels(QCoreApplication::applicationDirPath()))
        if (m.name == name)
            return m.folder;
    return {};
}

void MainWindow::applyStudioSetup(const StudioSetup& setup) {
    bool loading = false;
    if (!setup.model.isEmpty()) {
        const QString folder = resolveModelFolder(setup.model);
        if (folder.isEmpty()) {
            showInfo(tr("The tour needs the bundled model '%1', which this installation does not "
                        "have.")
                         .arg(setup.model.mid(8)));
        } else {
            const auto current = m_session->model();
            const bool same = current && QFileInfo(current->facts.folder).canonicalFilePath() ==
                                             QFileInfo(folder).canonicalFilePath();
            if (!same) {
                openModel(folder);
                loading = true;
            }
            m_tourModelFolder = QFileInfo(folder).canonicalFilePath();
        }
    }
    // A set-up that compares schemes needs a prompt: an empty one gets the start-up passage.
    if (setup.prompt == QLatin1String("default") ||
        (setup.prompt.isEmpty() && !setup.schemes.isEmpty() && m_session->prompt().isEmpty()))
        setPrompt(defaultPrompt());
    else if (!setup.prompt.isEmpty())
        setPrompt(setup.prompt);
    m_pendingFit = setup.fitPrompt;
    if (m_pendingFit)
        fitPromptIfPending(m_session->tokens());
    if (!setup.schemes.isEmpty())
        m_schemes->setSettings(setup.schemes);
    if (setup.focusedScheme >= 0)
        m_schemes->setFocusedRow(setup.focusedScheme);
    if (CapacityPage* capacity = capacityPage()) {
        if (setup.capacityPreset == QLatin1String("loaded"))
            capacity->selectModel(QString());
        else if (!setup.capacityPreset.isEmpty())
            capacity->selectModel(setup.capacityPreset);
        if (setup.capacityContext > 0)
            capacity->setContext(setup.capacityContext);
    }
    applyViewState(setup);
    // A model that is still loading resets the selection when it arrives: apply it again then.
    m_pendingViewState = loading ? std::optional<StudioSetup>(setup) : std::nullopt;
}

void MainWindow::applyViewState(const StudioSetup& setup) {
    if (views::AttentionView* attention = attentionView()) {
        if (setup.layer >= 0 && setup.head >= 0)
            attention->setSelection(setup.layer, setup.head);
        if (setup.attentionMode)
            attention->setMode(*setup.attentionMode);
    }
    if (views::TradeoffView* tradeoff = tradeoffView(); tradeoff && setup.colourByFamily)
        tradeoff->setColouring(*setup.colourByFamily ? views::TradeoffView::Colouring::Family
                                                     : views::TradeoffView::Colouring::Scheme);
    if (!setup.view.isEmpty())
        showViewByName(setup.view);
}

void MainWindow::fitPromptIfPending(const std::shared_ptr<const TokensSnapshot>& tokens) {
    if (!m_pendingFit || !tokens)
        return;
    // Only the tokens of the model the step opened count; the old model's may arrive first.
    if (!m_tourModelFolder.isEmpty() &&
        QFileInfo(tokens->modelFolder).canonicalFilePath() != m_tourModelFolder)
        return;
    m_pendingFit = false;
    if (tokens->contextLimit > 0 && tokens->count() > tokens->contextLimit) {
        const QString kept = m_session->promptPrefix(tokens->contextLimit);
        if (!kept.isEmpty())
            setPrompt(kept);
    }
}

void MainWindow::refreshStartPage() {
    OverviewPage* start = overviewPage();
    if (!start)
        return;
    QList<QPair<QString, QString>> bundled;
    for (const BundledModel& m : bundledModels(QCoreApplication::applicationDirPath()))
        bundled.append({m.label, m.folder});
    start->setModels(bundled, recentModels());
}

void MainWindow::tourModelLoaded() {
    // Once per load: the name looks through the bundled models' folders.
    if (const auto model = m_session->model())
        m_modelDisplayName =
            modelDisplayName(model->facts.folder, QCoreApplication::applicationDirPath());
    updateLessonFacts();
    // The recent list gains the model after this notification.
    QTimer::singleShot(0, this, [this] { refreshStartPage(); });
}

void MainWindow::tourTokensChanged(const std::shared_ptr<const TokensSnapshot>& tokens) {
    fitPromptIfPending(tokens);
    updateLessonFacts();
}

void MainWindow::tourAnalysisChanged() {
    if (!m_pendingViewState)
        return;
    const StudioSetup setup = *m_pendingViewState;
    m_pendingViewState.reset();
    // After every observer has the new results (a view resets its selection on a new model).
    QTimer::singleShot(0, this, [this, setup] { applyViewState(setup); });
}

void MainWindow::updateLessonFacts() {
    // Every tokenization passes here; only a tour on screen needs the numbers (startTour fills
    // them when it opens).
    if (!m_lesson || m_lessonDock->isHidden())
        return;
    LessonFacts facts;
    if (const auto model = m_session->model()) {
        facts.model = m_modelDisplayName;
        facts.kvPerToken = views::formatBytes(model->facts.kvBytesPerTokenFp16);
    }
    if (const auto tokens = m_session->tokens()) {
        facts.tokens = QLocale().toString(tokens->count());
        facts.cache = views::formatBytes(tokens->kvBytesFp16);
    }
    m_lesson->setFacts(facts);
}

} // namespace kvs::studio
