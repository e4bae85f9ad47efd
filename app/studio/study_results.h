// SPDX-License-Identifier: MIT
// Prompt-set studies in the window: a study's journals (kvstudio-cli sweep --prompt-set
// --journal, one run or its shards) read, merged and summarized by core (kvs/study.h), and the
// summary turned into what the Trade-offs view overlays (views::StudyData).
#pragma once

#include "analysis_data.h"
#include "kvs/study.h"

#include <QStringList>
#include <memory>

namespace kvs::studio {

// The view's data for a summarized study: per point the bytes, KL and head output error means
// with their 95% interval bounds; curves named and coloured by family as the Schemes dock does.
views::StudyData studyViewData(const StudySpec& spec, const std::vector<StudySummaryCurve>& curves,
                               const QString& source);

// Reads, merges and summarizes the journals at `paths`. Throws kvs::Error naming the file and
// the problem: a file that is not a journal, journals of different studies, jobs that no journal
// holds yet (how many, and that the shards are unfinished).
std::shared_ptr<const views::StudyData> loadStudyJournals(const QStringList& paths);

} // namespace kvs::studio
