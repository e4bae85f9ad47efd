// SPDX-License-Identifier: MIT
// The studio's views in tab order: adding a view is one line in the list below.
#include "view_registry.h"

#include "attention_view.h"
#include "cache_view.h"
#include "capacity_page.h"
#include "overview_page.h"
#include "profile_view.h"
#include "rate_view.h"
#include "tradeoff_view.h"

namespace kvs::studio {

namespace {

template <class V> views::StudioView* make(const ViewContext& c) {
    return new V(c.parent);
}

std::vector<ViewRegistration>& registry() {
    static std::vector<ViewRegistration> views = {
        {QStringLiteral("overview"), false,
         [](const ViewContext& c) { return new OverviewPage(c.session, c.parent); }},
        {QStringLiteral("attention"), true, make<views::AttentionView>},
        {QStringLiteral("tradeoffs"), true, make<views::TradeoffView>},
        {QStringLiteral("cache"), true, make<views::CacheView>},
        {QStringLiteral("profile"), true, make<views::ProfileView>},
        // Last, so that the tab indices of sessions saved before it still mean the same tab.
        {QStringLiteral("rate"), true, make<views::RateView>},
        {QStringLiteral("capacity"), true,
         [](const ViewContext& c) { return new CapacityPage(c.session, c.parent); }},
    };
    return views;
}

} // namespace

const std::vector<ViewRegistration>& studioViews() {
    return registry();
}

bool registerStudioView(ViewRegistration registration) {
    if (registration.name.isEmpty() || !registration.create ||
        studioViewNames().contains(registration.name))
        return false;
    registry().push_back(std::move(registration));
    return true;
}

QStringList studioViewNames() {
    QStringList names;
    for (const ViewRegistration& r : registry())
        names << r.name;
    return names;
}

QStringList chartViewNames() {
    QStringList names;
    for (const ViewRegistration& r : registry())
        if (r.exportsCharts)
            names << r.name;
    return names;
}

} // namespace kvs::studio
