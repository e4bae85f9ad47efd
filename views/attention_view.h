// SPDX-License-Identifier: MIT
// The Attention view: a layer × head grid of thumbnail maps and, for the chosen head, the exact,
// compressed and difference maps (probe queries × context keys) with token labels, synced zoom
// and hover, evicted keys hatched and the attention mass lost per query row. Every map is one
// QCPColorMap image; it draws an AnalysisData and computes nothing.
#pragma once

#include "analysis_data.h"
#include "chart_export.h"
#include "studio_view.h"

#include "kvs/map_pooling.h"

#include <QWidget>
#include <memory>

class QCheckBox;
class QComboBox;
class QCustomPlot;
class QCPColorGradient;
class QCPColorMap;
class QCPColorScale;
class QCPBars;
class QCPItemRect;
class QCPTextElement;
class QLabel;

namespace kvs::views {

class AttentionView : public QWidget, public StudioView {
    Q_OBJECT
public:
    enum class Mode { SideBySide, Exact, Compressed, Difference };
    enum class Palette { Viridis, Cividis };
    // How weights map to colours: linear; square root; logarithmic over four decades below the
    // map's largest weight (smaller weights get the lowest colour). Cells keep the weights
    // themselves; only the colours (and the legend's ticks) change. Difference maps stay linear.
    enum class ColourScale { Linear, SquareRoot, Log };
    static constexpr double kLogDecades = 4.0;

    explicit AttentionView(QWidget* parent = nullptr);

    // Draws run `runIndex` of `data` (kept; may be null to clear). The selection is kept when it
    // still exists.
    void setData(std::shared_ptr<const AnalysisData> data, int runIndex);
    void clear(const QString& placeholder) override;
    void setSelection(int layer, int queryHead);
    int selectedLayer() const { return m_layer; }
    int selectedHead() const { return m_head; }
    void setMode(Mode mode);
    Mode mode() const { return m_mode; }
    void setPalette(Palette palette);
    void setColourScale(ColourScale scale);
    ColourScale colourScale() const { return m_colourScale; }
    // Maps with more keys (or probe rows) than their plot has pixels are drawn pooled to the
    // pixels (kvs::poolMap over the visible window, redone on zoom, pan and resize); zoomed in to
    // fewer keys than pixels they are drawn cell for cell. Hover, readout and CSV export always
    // use the unpooled weights.
    void setPooling(kvs::MapPooling pooling);
    kvs::MapPooling pooling() const { return m_pooling; }
    // Keys per drawn cell in the large map `which` (1 = exact; the largest block when pooled).
    int keysPerCell(int which) const { return m_keysPerCell[static_cast<std::size_t>(which)]; }
    // Keys per drawn cell in the grid's thumbnails (1 = exact).
    int gridKeysPerCell() const { return m_gridKeysPerCell; }
    // The large maps' colour legends (0 exact, 1 compressed, 2 difference).
    QCPColorScale* colourLegend(int which) const {
        return m_scales[static_cast<std::size_t>(which)];
    }
    QCPColorMap* colourMap(int which) const { return m_colorMaps[static_cast<std::size_t>(which)]; }
    // Maps of `current compressed − pinned baseline compressed` per KV head (layer-major, like
    // SchemeRun::maps), made by the app when a compatible baseline is pinned; null removes them.
    // With them, the difference map can show the change against the baseline instead of the
    // error against the exact attention.
    // `redraw` false when setData follows at once.
    void setBaselineDifference(std::shared_ptr<const std::vector<HeadMaps>> maps,
                               const QString& baselineLabel, bool redraw = true);
    bool hasBaselineDifference() const { return m_baselineDiff != nullptr; }
    // 0: compressed − exact; 1: compressed − pinned baseline (when there is one).
    void setDifferenceReference(int reference);
    int differenceReference() const;

    // Shows the readout for (probe row, context key) as a hover would; false when outside.
    bool hoverCell(int row, int key);
    QString readoutText() const;
    // The weight at (probe row, key) of the large map `which` (0 exact, 1 compressed, 2
    // difference): the map's own value, not the pooled cell that may draw it.
    double cellValue(int which, int row, int key) const;
    int evictedMarkCount() const { return m_evictedMarks; }
    std::vector<ChartHandle> charts() const override;
    QCustomPlot* gridPlot() const { return m_grid; }
    QCustomPlot* mapPlot(int which) const { return m_maps[static_cast<std::size_t>(which)]; }
    void applyTheme() override;

    // StudioView
    QString viewName() const override { return QStringLiteral("attention"); }
    QString viewTitle() const override { return tr("Attention"); }
    QWidget* viewWidget() override { return this; }
    void setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int run) override {
        setData(analysis, run);
    }

signals:
    void selectionChanged(int layer, int queryHead);

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void rebuildGrid(bool resetRange = false);
    void fillThumbs();
    void rebuildMaps();
    void fillMap(std::size_t which); // pools m_shown[which] for its plot's window and pixels
    // Coalesces zoom, pan and resize into one redraw of the thumbnails and/or the large maps.
    void schedulePooling(bool grid, bool maps);
    QString legendLabel(std::size_t which) const;
    void updateVisibility();
    void syncRanges(QCustomPlot* source);
    void onHover(QCustomPlot* plot, QMouseEvent* event);
    void onGridClick(QMouseEvent* event);
    void markGridSelection();
    // The difference matrix drawn for KV head `kv`, query head `j` of its group (null if none).
    const Matrix* differenceMatrix(std::size_t kv, std::size_t j) const;
    CsvTable mapCsv(int which) const;
    CsvTable gridCsv() const;
    CsvTable massCsv() const;

    std::shared_ptr<const AnalysisData> m_data;
    int m_run = 0;
    int m_layer = 0;
    int m_head = 0;
    Mode m_mode = Mode::SideBySide;
    void redrawColours(); // after the palette or the colour scale changed
    void applySequentialScale(QCPColorMap* map, const QCPColorGradient& base, double top) const;
    Palette m_palette = Palette::Viridis;
    ColourScale m_colourScale = ColourScale::Linear;
    kvs::MapPooling m_pooling = kvs::MapPooling::Max;
    std::array<const Matrix*, 3> m_shown{}; // the matrices the large maps draw (owned by m_data)
    std::array<int, 3> m_keysPerCell{1, 1, 1};
    int m_gridKeysPerCell = 1;
    bool m_poolGridPending = false;
    bool m_poolMapsPending = false;
    bool m_syncing = false;
    int m_evictedMarks = 0;

    QComboBox* m_modeBox = nullptr;
    QComboBox* m_paletteBox = nullptr;
    QComboBox* m_scaleBox = nullptr;
    QComboBox* m_poolingBox = nullptr;
    QLabel* m_title = nullptr;
    QLabel* m_readout = nullptr;
    QCustomPlot* m_grid = nullptr;
    QCPItemRect* m_gridMark = nullptr;
    std::array<QCustomPlot*, 3> m_maps{};
    std::array<QCPColorMap*, 3> m_colorMaps{};
    std::array<QCPColorScale*, 3> m_scales{};
    std::array<QCPItemRect*, 3> m_cursor{};
    QCPTextElement* m_differenceTitle = nullptr;
    QCPTextElement* m_massTitle = nullptr;
    QComboBox* m_referenceBox = nullptr;
    std::shared_ptr<const std::vector<HeadMaps>> m_baselineDiff;
    QString m_baselineLabel;
    QCustomPlot* m_mass = nullptr;
    QCPBars* m_massBars = nullptr;
    std::vector<QCPColorMap*> m_thumbs;
};

// Display text of a token for axis labels: spaces as "␣", newlines as "↵", clipped.
QString tokenLabel(const QString& text);

} // namespace kvs::views
