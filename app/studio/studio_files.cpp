// SPDX-License-Identifier: MIT
#include "studio_files.h"

#include "kvs/output_writer.h"
#include "kvs/status.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <span>

namespace kvs::studio {

namespace {

std::span<const std::byte> byteSpan(const QByteArray& bytes) {
    return std::as_bytes(std::span(bytes.constData(), static_cast<std::size_t>(bytes.size())));
}

// How `path` may be written as `kind`: ours (or absent) as usual, another file only when the
// person agrees. Throws Error(Exists) naming the file and why otherwise.
Overwrite consentToReplace(const QString& path, std::string_view kind,
                           const ConfirmReplace& confirmReplace) {
    const auto check = checkOutput(path.toStdString(), kind);
    if (check.replaceable)
        return Overwrite::OursOnly;
    if (check.forceable && confirmReplace && confirmReplace(path))
        return Overwrite::Force;
    throw Error(ErrorCode::Exists,
                "refusing to overwrite " + path.toStdString() + ": " + check.reason);
}

} // namespace

void writeStudioFile(const QString& path, const QByteArray& bytes, std::string_view kind,
                     const ConfirmReplace& confirmReplace) {
    writeOutput(path.toStdString(), byteSpan(bytes), kind,
                consentToReplace(path, kind, confirmReplace));
}

QString writeExportFile(const QString& path, const views::ExportFile& file,
                        const ConfirmReplace& confirmReplace) {
    const QString sidecarPath = path + QStringLiteral(".json");
    QJsonObject sidecar = file.sidecar;
    sidecar[QString::fromLatin1(kOwnerKey)] = QString::fromLatin1(kSidecarKind);
    sidecar[QStringLiteral("bytes")] = static_cast<qint64>(file.bytes.size());
    sidecar[QStringLiteral("fnv1a64")] =
        QString::fromStdString(hex64(fnv1a64Bytes(byteSpan(file.bytes))));
    const auto written = catchErrors([&] {
        const Overwrite exportMode = consentToReplace(path, "export", confirmReplace);
        const Overwrite sidecarMode = consentToReplace(sidecarPath, kSidecarKind, confirmReplace);
        writeOutput(path.toStdString(), byteSpan(file.bytes), "export", exportMode);
        writeOutput(sidecarPath.toStdString(),
                    byteSpan(QJsonDocument(sidecar).toJson(QJsonDocument::Indented)), kSidecarKind,
                    sidecarMode);
        return true;
    });
    return written.ok() ? QString() : QString::fromStdString(written.message());
}

views::ExportWriter exportWriter(ConfirmReplace confirmReplace) {
    return
        [confirm = std::move(confirmReplace)](const QString& path, const views::ExportFile& file) {
            return writeExportFile(path, file, confirm);
        };
}

} // namespace kvs::studio
