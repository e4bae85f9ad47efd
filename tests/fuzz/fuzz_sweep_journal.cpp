// SPDX-License-Identifier: MIT
// libFuzzer target: a sweep journal (kvs/study.h), as `sweep --journal` reads it back to resume,
// `sweep-merge` and the studio's Open Study Results read it: header and spec, records, a torn
// last line; an accepted journal is merged, summarized when complete, and opened for resuming.
#include "fuzz_util.h"

#include "kvs/study.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kvs;
    const auto path = fuzz::writeScratch("study.jsonl", fuzz::asText(data, size));
    const auto contents = catchErrors([&] { return readStudyJournal(path); });
    fuzz::checkResult(contents);
    if (!contents.ok())
        return 0;
    const StudyJournalContents& c = contents.value();
    const auto merged = catchErrors([&] {
        std::vector<std::size_t> missing;
        auto records = mergeStudyRecords({c}, &missing);
        if (missing.empty())
            (void)summarizeStudy(c.spec, records);
        return records.size();
    });
    fuzz::checkResult(merged);
    // Resuming: the journal is ours and of this study, so it must open (a torn line is cut off).
    const auto reopened =
        catchErrors([&] { return StudyJournal::open(path, c.spec, false).records().size(); });
    fuzz::checkResult(reopened);
    if (!reopened.ok()) {
        std::fprintf(stderr, "kvs fuzz: a journal that reads did not open: %s\n",
                     reopened.message().c_str());
        std::abort();
    }
    return 0;
}
