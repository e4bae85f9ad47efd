// SPDX-License-Identifier: MIT
// The "Capacity" tab: what a paper's memory claim means for serving. For the loaded model or a
// public preset, a context length, a GPU and the weights' dtype: KV bytes per token and per user,
// how many whole users fit next to the weights, exact and under each scheme's measured memory
// fraction from the current analysis or a ratio the user types, and users against context length
// as a chart (kvs/capacity.h computes; views/capacity_chart.h draws).
#pragma once

#include "capacity_chart.h"
#include "session_view.h"

#include "kvs/capacity.h"

#include <QWidget>
#include <optional>

class QComboBox;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QSpinBox;
class QTableWidget;

namespace kvs::studio {

class Session;

class CapacityPage : public QWidget, public ISessionView, public views::StudioView {
    Q_OBJECT
public:
    explicit CapacityPage(Session* session, QWidget* parent = nullptr);

    QString viewName() const override { return QStringLiteral("capacity"); }
    QString viewTitle() const override { return tr("Capacity"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const views::AnalysisData>& analysis, int run) override;
    void clear(const QString& message) override;
    std::vector<views::ChartHandle> charts() const override;
    void applyTheme() override;

    void onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) override;
    void onModelCleared() override;

    // For tests and lessons: choose a model ("" = the loaded one, else a preset id), the context,
    // the GPU, the typed ratio (fraction of the key bytes when `keysOnly`); read what is shown.
    bool selectModel(const QString& presetId);
    void setContext(long long tokens);
    void setGpuGiB(double gib);
    void setReserveGiB(double gib);
    void setTypedRatio(double fraction, bool keysOnly);
    const std::optional<kvs::CapacityReport>& report() const { return m_report; }
    QString notesText() const;
    int tableRows() const;
    QString tableCell(int row, int column) const;
    QCustomPlot* chart() const { return m_chart; }

private:
    void recompute();
    kvs::CapacityInputs inputs() const;

    Session* m_session = nullptr;
    QComboBox* m_model = nullptr;
    QSpinBox* m_context = nullptr;
    QDoubleSpinBox* m_gpu = nullptr;
    QComboBox* m_weightDtype = nullptr;
    QComboBox* m_cacheDtype = nullptr;
    QDoubleSpinBox* m_reserve = nullptr;
    QDoubleSpinBox* m_ratio = nullptr;
    QComboBox* m_ratioKind = nullptr;
    QLabel* m_summary = nullptr;
    QTableWidget* m_table = nullptr;
    QLabel* m_notes = nullptr;
    QCustomPlot* m_chart = nullptr;
    bool m_reserveEdited = false;
    bool m_contextEdited = false;
    std::optional<kvs::ModelConfig> m_loaded;
    QString m_loadedName;
    std::shared_ptr<const views::AnalysisData> m_analysis;
    std::optional<kvs::CapacityReport> m_report;
    views::CapacityChartData m_chartData;
    SessionSubscription m_subscription;
};

} // namespace kvs::studio
