// SPDX-License-Identifier: MIT
// The studio's views in tab order: one registration per view (views::StudioView), from which the
// window builds its tabs, the Ctrl+1… shortcuts, `--view NAME` and `render --views`.
#pragma once

#include "studio_view.h"

#include <QString>
#include <QStringList>
#include <functional>
#include <vector>

class QWidget;

namespace kvs::studio {

class Session;

// What a view's factory may use: the session (for views that observe it directly, as the
// Overview does) and the parent of its widget.
struct ViewContext {
    Session* session = nullptr;
    QWidget* parent = nullptr;
};

struct ViewRegistration {
    QString name;               // the view's viewName(): "attention"
    bool exportsCharts = false; // `render --views all` and File > Export All include it
    std::function<views::StudioView*(const ViewContext&)> create;
};

// Every registered view, in tab order.
const std::vector<ViewRegistration>& studioViews();
// Appends a view (a test's, a plug-in's): windows created afterwards show it as the last tab. An
// empty or taken name is refused (false).
bool registerStudioView(ViewRegistration registration);
// Names of all views, and of those with charts to export, in tab order.
QStringList studioViewNames();
QStringList chartViewNames();

} // namespace kvs::studio
