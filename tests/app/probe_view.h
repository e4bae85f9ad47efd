// SPDX-License-Identifier: MIT
// A view that only a test registers: one chart of every run's cache fraction, the job messages
// it received; it proves that a view is its own two files plus one registration line.
#pragma once

#include "studio_view.h"

#include <QStringList>
#include <QWidget>

class QCustomPlot;

namespace kvs::test {

class ProbeView : public QWidget, public views::StudioView {
    Q_OBJECT
public:
    explicit ProbeView(QWidget* parent = nullptr);

    QString viewName() const override { return QStringLiteral("probe"); }
    QString viewTitle() const override { return QStringLiteral("Probe"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const views::AnalysisData>& analysis, int run) override;
    void clear(const QString& message) override;
    std::vector<views::ChartHandle> charts() const override;
    void jobFailed(views::StudioJob job, const QString& message) override;

    QCustomPlot* plot() const { return m_plot; }
    int drawn() const { return m_drawn; }
    QString message() const { return m_message; }

private:
    views::CsvTable csv() const;

    QCustomPlot* m_plot = nullptr;
    std::shared_ptr<const views::AnalysisData> m_analysis;
    int m_drawn = 0;
    QString m_message;
};

} // namespace kvs::test
