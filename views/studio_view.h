// SPDX-License-Identifier: MIT
// The one interface every studio tab implements: its name, the results it draws, a message in
// place of them, its charts for export, and the follow-up jobs it shows or reports as failed.
#pragma once

#include "analysis_data.h"
#include "chart_export.h"

#include <QString>
#include <memory>
#include <vector>

class QWidget;

namespace kvs::views {

// The studio's jobs whose results (or failures) a view may show.
enum class StudioJob { Analysis, Quality, Sweep, Scaling, Timing };

// A tab of the studio's main window. The app creates each registered view once, adds its widget
// as a tab (in registration order), and calls it on the GUI thread; a view computes nothing.
class StudioView {
public:
    virtual ~StudioView() = default;

    // Stable lower-case id: `kvstudio --view NAME`, `kvstudio-cli render --views`, the export
    // subfolder. The title is what the tab says (translated).
    virtual QString viewName() const = 0;
    virtual QString viewTitle() const = 0;
    virtual QWidget* viewWidget() = 0;

    // Draws run `run` (the focused scheme) of `analysis` (never null). Called for the visible view
    // when new results arrive and for a hidden one when it is shown (or exported).
    virtual void setAnalysis(const std::shared_ptr<const AnalysisData>& analysis, int run) = 0;
    // No results to draw: shows `message` instead ("No model.").
    virtual void clear(const QString& message) = 0;
    // The charts File > Export writes (PNG/SVG/PDF/CSV); a view without charts keeps the default.
    virtual std::vector<ChartHandle> charts() const { return {}; }
    // The application palette changed: restyle the plots.
    virtual void applyTheme() {}

    // Follow-up jobs, delivered to every view whether visible or not; a view draws what concerns
    // it and ignores the rest.
    virtual void sweepsChanged(const std::shared_ptr<const SweepData>& /*sweeps*/) {}
    virtual void scalingChanged(const std::shared_ptr<const ScalingData>& /*scaling*/) {}
    virtual void jobStarted(StudioJob /*job*/) {}
    // `job` failed: `message` says so with the error's message and code ("Sweep failed: … [io]").
    // The view that lacks the job's result shows it in its place.
    virtual void jobFailed(StudioJob /*job*/, const QString& /*message*/) {}
};

} // namespace kvs::views
