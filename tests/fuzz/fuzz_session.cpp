// SPDX-License-Identifier: MIT
// libFuzzer target: a .kvsession file (versioned JSON: model paths, prompt, schemes, view state),
// read by the studio's session document reader (Qt Core JSON; no window is made).
#include "fuzz_util.h"

#include "session_document.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = kvs::fuzz::writeScratch("fuzz.kvsession", kvs::fuzz::asText(data, size));
    kvs::studio::SessionDocument document;
    QString error;
    const QString file = QString::fromStdString(path.string());
    if (kvs::studio::readSessionDocument(file, &document, &error)) {
        // What the reader accepts, the writer writes and the reader accepts again.
        const QByteArray again = kvs::studio::sessionJson(document, file);
        kvs::fuzz::writeScratch("again.kvsession", std::string_view(again.data(), again.size()));
        kvs::studio::SessionDocument reread;
        const QString againFile =
            QString::fromStdString((kvs::fuzz::scratchDir() / "again.kvsession").string());
        if (!kvs::studio::readSessionDocument(againFile, &reread, &error)) {
            std::fprintf(stderr, "kvs fuzz: a session written back does not read: %s\n",
                         qPrintable(error));
            std::abort();
        }
    } else if (error.isEmpty()) {
        std::fprintf(stderr, "kvs fuzz: a refused session without a message\n");
        std::abort();
    }
    return 0;
}
