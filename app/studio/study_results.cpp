// SPDX-License-Identifier: MIT
// Prompt-set studies in the window (study_results.h).
#include "study_results.h"

#include "kvs/scheme.h"

#include <QFileInfo>
#include <algorithm>
#include <cmath>

namespace kvs::studio {

namespace {

// The value and interval bounds of `m` into the metric's slot of a point.
void put(views::StudyPointData& point, Metric metric, const MeanInterval& m) {
    const auto i = static_cast<std::size_t>(metric);
    point.mean[i] = m.mean;
    point.lower[i] = std::isfinite(m.halfWidth) ? m.lower() : std::nan("");
    point.upper[i] = std::isfinite(m.halfWidth) ? m.upper() : std::nan("");
}

} // namespace

views::StudyData studyViewData(const StudySpec& spec, const std::vector<StudySummaryCurve>& curves,
                               const QString& source) {
    views::StudyData data;
    data.prompts = static_cast<int>(spec.prompts.size());
    data.title =
        spec.seeds > 1
            ? QObject::tr("%1 prompts, seeds 1\u2013%2").arg(spec.prompts.size()).arg(spec.seeds)
            : QObject::tr("%1 prompts").arg(spec.prompts.size());
    data.source = source;
    for (std::size_t c = 0; c < curves.size(); ++c) {
        const StudySummaryCurve& summary = curves[c];
        views::StudyCurveData curve;
        curve.setting = QString::fromStdString(summary.curve.scheme);
        curve.parameter = QString::fromStdString(summary.curve.parameter);
        curve.colorIndex = static_cast<int>(c);
        curve.displayName = curve.setting;
        if (const auto setting = SchemeSetting::parse(summary.curve.scheme); setting.ok())
            if (const Scheme* scheme = findScheme(setting.value().id)) {
                curve.schemeId = QString::fromStdString(setting.value().id);
                curve.family = QString::fromStdString(scheme->info().family);
                curve.displayName = QString::fromStdString(scheme->info().displayName);
                if (!setting.value().params.empty()) // the fixed settings, as the CLI names them
                    curve.displayName +=
                        QStringLiteral(" (%1)").arg(curve.setting.section(QLatin1Char(':'), 1));
            }
        for (const StudyPoint& p : summary.points) {
            views::StudyPointData point;
            point.value = p.value;
            point.bytes = p.bytes.mean;
            point.prompts = p.prompts;
            point.degeneratePrompts = p.degeneratePrompts;
            if (!p.degenerateReasons.empty())
                point.degenerateReason = QString::fromStdString(p.degenerateReasons.front());
            put(point, Metric::NextTokenKl, p.kl);
            put(point, Metric::PerplexityChange, p.perplexityChangePercent);
            put(point, Metric::HeadOutputError, p.headOutputError);
            curve.points.push_back(point);
        }
        std::sort(curve.points.begin(), curve.points.end(),
                  [](const auto& a, const auto& b) { return a.bytes < b.bytes; });
        data.curves.push_back(std::move(curve));
    }
    return data;
}

std::shared_ptr<const views::StudyData> loadStudyJournals(const QStringList& paths) {
    if (paths.isEmpty())
        throw Error(ErrorCode::InvalidArgument, "no study journal given");
    std::vector<StudyJournalContents> journals;
    QStringList names;
    for (const QString& path : paths) {
        journals.push_back(readStudyJournal(path.toStdString()));
        names << QFileInfo(path).fileName();
    }
    std::vector<std::size_t> missing;
    const auto records = mergeStudyRecords(journals, &missing);
    if (!missing.empty())
        throw Error(ErrorCode::Missing,
                    names.join(QStringLiteral(", ")).toStdString() + ": " +
                        std::to_string(missing.size()) + " of " +
                        std::to_string(studyJobCount(journals.front().spec)) +
                        " jobs of the study are in none of these journals (an unfinished "
                        "study, or shards missing): finish it with the same kvstudio-cli "
                        "command, or open every shard's journal together");
    const StudySpec& spec = journals.front().spec;
    return std::make_shared<const views::StudyData>(
        studyViewData(spec, summarizeStudy(spec, records), names.join(QStringLiteral(", "))));
}

} // namespace kvs::studio
