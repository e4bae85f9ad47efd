// SPDX-License-Identifier: MIT
// The Cache view: per-head cache bytes stacked by keys / values / metadata against the fp16
// baseline, a layer × KV head heat grid of the attention error, and totals per layer and model.
#pragma once

#include "analysis_data.h"
#include "chart_export.h"
#include "studio_view.h"

#include <QSharedPointer>
#include <QWidget>
#include <memory>
#include <vector>

class QCustomPlot;
class QCPBars;
class QCPGraph;
class QCPItemStraightLine;
class QCPItemRect;
class QCPColorMap;
class QCPTextElement;
class QLabel;
class QTableWidget;

namespace kvs::views {

class HeadTicker;

class CacheView : public QWidget, public StudioView {
    Q_OBJECT
public:
    explicit CacheView(QWidget* parent = nullptr);
    void setData(std::shared_ptr<const AnalysisData> data, int runIndex);
    void clear(const QString& placeholder) override;
    QString totalsText() const;
    // The totals table: rows per layer + one for the model; columns keys, values, metadata,
    // total, fp16, fraction.
    QTableWidget* totalsTable() const { return m_table; }
    std::vector<ChartHandle> charts() const override;
    void applyTheme() override;
    // The head whose own key spectra the spectrum chart draws over the band (a click on the
    // error grid chooses it; -1 clears). Kept across analyses while the head exists.
    void selectHead(int layer, int kvHead);
    int selectedLayer() const { return m_selectedLayer; }
    int selectedKvHead() const { return m_selectedHead; }
    QCustomPlot* spectrumPlot() const { return m_spectrum; }
    QCustomPlot* gridPlot() const { return m_grid; }

    // StudioView
    QString viewName() const override { return QStringLiteral("cache"); }
    QString viewTitle() const override { return tr("Cache"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int run) override {
        setData(analysis, run);
    }

private:
    void showBytes(const SchemeRun& run);
    // Head output error per layer and KV head; for a scheme that rewrote the model, its fit's
    // R² per layer and KV head of the original model ("how shareable is this head").
    void showErrorGrid(const SchemeRun& run);
    void showTotalsTable(const SchemeRun& run);
    void showTotalsText(const SchemeRun& run);
    bool hasGpuBytes(const SchemeRun& run) const;
    QString noGpuBytesReason() const;
    DeviceAllocation allocatedFor(const SchemeRun& run, int layer) const;
    CsvTable barsCsv() const;
    CsvTable gridCsv() const;
    // Energy of the key spectra kept against rank (mean and min–max over heads), with the
    // run's rank marked where it factors keys.
    void showSpectrum(const SchemeRun& run);
    CsvTable spectrumCsv() const;

    std::shared_ptr<const AnalysisData> m_data;
    int m_run = 0;
    QLabel* m_totals = nullptr;
    QCustomPlot* m_bars = nullptr;
    QCPBars* m_keys = nullptr;
    QCPBars* m_values = nullptr;
    QCPBars* m_meta = nullptr;
    QCPGraph* m_fp16 = nullptr;
    // The bars' x labels, thinned to the width drawn (cache_view.cpp), and the lines between
    // layers.
    QSharedPointer<HeadTicker> m_headTicker;
    std::vector<QCPItemStraightLine*> m_layerLines;
    QCustomPlot* m_grid = nullptr;
    QCPColorMap* m_heat = nullptr;
    QCPTextElement* m_gridTitle = nullptr;
    QTableWidget* m_table = nullptr;
    QCustomPlot* m_spectrum = nullptr;
    QCPItemStraightLine* m_rankLine = nullptr;
    QCPItemRect* m_headMark = nullptr; // the selected head's cell on the grid
    int m_selectedLayer = -1;
    int m_selectedHead = -1;
    // The selected head's spectra, or null (none selected, or not in this analysis).
    const HeadSpectrumCurves* selectedSpectra() const;
};

} // namespace kvs::views
