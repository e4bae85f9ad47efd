// SPDX-License-Identifier: MIT
// What kvstudio does at start-up: its command line, where the default model is looked for, the
// default prompt, and the --screenshot mode that grabs the window once the workers are done.
#include "startup.h"

#include "main_window.h"
#include "session.h"
#include "view_registry.h"

#include "kvs/file_util.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QPixmap>
#include <QStringDecoder>
#include <filesystem>
#include <string_view>

// The source tree's assets/ folder, for running from a build folder. The build may define it;
// otherwise it is found from this file's own path (app/studio/startup.cpp).
#ifndef KVS_SOURCE_ASSETS_DIR
#define KVS_SOURCE_ASSETS_DIR ""
#endif

namespace kvs::studio {

namespace {

QString sourceAssetsDir() {
    const QString defined = QString::fromUtf8(KVS_SOURCE_ASSETS_DIR);
    if (!defined.isEmpty())
        return defined;
    const std::filesystem::path self(__FILE__);
    if (!self.is_absolute())
        return {};
    return QString::fromStdString(
        (self.parent_path().parent_path().parent_path() / "assets").string());
}

} // namespace

StartupOptions parseStartupOptions(const QStringList& arguments) {
    StartupOptions o;
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QObject::tr("KV Studio: explore KV-cache compression on a real model."));
    parser.addPositionalArgument(
        QStringLiteral("MODEL_FOLDER"),
        QObject::tr("A Hugging Face model folder, or a session file (.kvsession) to open. "
                    "Default: $KVS_DEFAULT_MODEL, then the bundled assets/models/default."),
        QStringLiteral("[MODEL_FOLDER | SESSION]"));
    const QCommandLineOption promptFile(QStringLiteral("prompt-file"),
                                        QObject::tr("Read the prompt from this UTF-8 file."),
                                        QStringLiteral("FILE"));
    const QCommandLineOption screenshot(
        QStringLiteral("screenshot"),
        QObject::tr("Once the model is loaded and the prompt tokenized, save the window to this "
                    "PNG and quit."),
        QStringLiteral("FILE.png"));
    const QCommandLineOption timeout(
        QStringLiteral("timeout"),
        QObject::tr("With --screenshot: give up after this many seconds (exit code 3)."),
        QStringLiteral("SECONDS"), QStringLiteral("120"));
    const QCommandLineOption view(
        QStringLiteral("view"),
        QObject::tr("The view to show: %1.").arg(studioViewNames().join(QStringLiteral(", "))),
        QStringLiteral("NAME"));
    const QCommandLineOption theme(QStringLiteral("theme"),
                                   QObject::tr("The colour theme: light or dark."),
                                   QStringLiteral("NAME"));
    const QCommandLineOption session(QStringLiteral("session"),
                                     QObject::tr("Open this session file (.kvsession)."),
                                     QStringLiteral("FILE"));
    const QCommandLineOption study(
        QStringLiteral("study"),
        QObject::tr("Overlay a prompt-set study on the Trade-offs chart: a journal of "
                    "kvstudio-cli sweep --prompt-set (repeat it for each shard's journal)."),
        QStringLiteral("JOURNAL"));
    const QCommandLineOption help = parser.addHelpOption();
    const QCommandLineOption version = parser.addVersionOption();
    parser.addOption(promptFile);
    parser.addOption(screenshot);
    parser.addOption(timeout);
    parser.addOption(view);
    parser.addOption(theme);
    parser.addOption(session);
    parser.addOption(study);
    o.helpText = parser.helpText();
    // Without a QCoreApplication (help is answered before the window starts) Qt cannot name us.
    o.helpText.replace(QStringLiteral("<executable_name>"), QStringLiteral("kvstudio"));

    if (!parser.parse(arguments)) {
        o.error = parser.errorText();
        return o;
    }
    o.help = parser.isSet(help) || parser.isSet(QStringLiteral("help-all"));
    o.version = parser.isSet(version);
    const QStringList positional = parser.positionalArguments();
    if (positional.size() > 1) {
        o.error = QObject::tr("expected at most one model folder, got %1: %2")
                      .arg(positional.size())
                      .arg(positional.join(QStringLiteral(", ")));
        return o;
    }
    // A session file may be named like a model folder: `kvstudio results.kvsession`.
    if (!positional.isEmpty() && QFileInfo(positional.front()).isFile() &&
        QStringList{QStringLiteral("kvsession"), QStringLiteral("json")}.contains(
            QFileInfo(positional.front()).suffix(), Qt::CaseInsensitive)) {
        if (parser.isSet(session)) {
            o.error = QObject::tr("two sessions to open: %1 and --session %2")
                          .arg(positional.front(), parser.value(session));
            return o;
        }
        o.session = positional.front();
    } else if (!positional.isEmpty()) {
        o.modelFolder = positional.front();
    }
    o.promptFile = parser.value(promptFile);
    o.screenshot = parser.value(screenshot);
    o.view = parser.value(view);
    o.theme = parser.value(theme);
    if (o.session.isEmpty())
        o.session = parser.value(session);
    o.studies = parser.values(study);
    const QStringList views = studioViewNames();
    if (!o.view.isEmpty() && !views.contains(o.view)) {
        o.error = QObject::tr("--view must be one of %1, got '%2'")
                      .arg(views.join(QStringLiteral(", ")), o.view);
        return o;
    }
    if (!o.theme.isEmpty() && o.theme != QLatin1String("light") &&
        o.theme != QLatin1String("dark")) {
        o.error = QObject::tr("--theme must be light or dark, got '%1'").arg(o.theme);
        return o;
    }
    bool ok = false;
    o.timeoutSeconds = parser.value(timeout).toInt(&ok);
    if (!ok || o.timeoutSeconds <= 0)
        o.error = QObject::tr("--timeout needs a positive number of seconds, got '%1'")
                      .arg(parser.value(timeout));
    return o;
}

QStringList takeOptionsQtWouldEat(int& argc, char** argv) {
    QStringList taken;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const QString a = QString::fromLocal8Bit(argv[i]);
        if (a == QLatin1String("--")) { // the rest is positional: keep it as it is
            while (i < argc)
                argv[kept++] = argv[i++];
            break;
        }
        if ((a == QLatin1String("--session") || a == QLatin1String("-session")) && i + 1 < argc) {
            taken << QStringLiteral("--session") << QString::fromLocal8Bit(argv[++i]);
            continue;
        }
        if (a.startsWith(QLatin1String("--session=")) || a.startsWith(QLatin1String("-session="))) {
            taken << QStringLiteral("--session") << a.section(QLatin1Char('='), 1);
            continue;
        }
        argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = nullptr;
    return taken;
}

QStringList withOptionsBack(const QStringList& arguments, const QStringList& taken) {
    return arguments.mid(0, 1) + taken + arguments.mid(1);
}

QStringList defaultModelCandidates(const QString& applicationDir) {
    QStringList candidates;
    const QString env = qEnvironmentVariable("KVS_DEFAULT_MODEL");
    if (!env.isEmpty())
        candidates << QDir::cleanPath(env);
    if (!applicationDir.isEmpty()) {
        candidates << QDir::cleanPath(applicationDir + QStringLiteral("/../assets/models/default"));
        // Installed (cmake --install, the Debian package): bin/../share/kvstudio/models.
        candidates << QDir::cleanPath(applicationDir +
                                      QStringLiteral("/../share/kvstudio/models/default"));
    }
    const QString assets = sourceAssetsDir();
    if (!assets.isEmpty())
        candidates << QDir::cleanPath(assets + QStringLiteral("/models/default"));
    candidates.removeDuplicates();
    return candidates;
}

QString findDefaultModel(const QString& applicationDir) {
    for (const QString& candidate : defaultModelCandidates(applicationDir))
        if (QFileInfo(candidate).isDir())
            return candidate;
    return {};
}

QList<BundledModel> bundledModels(const QString& applicationDir) {
    // The results table's order and names (docs/bundled-model.md).
    static const std::pair<const char*, const char*> known[] = {
        {"default",
         QT_TRANSLATE_NOOP("kvs::studio", "Default model (QKV, 6 KV heads, 1,024-token context)")},
        {"default-256",
         QT_TRANSLATE_NOOP("kvs::studio", "QKV, 256-token context (the variants' baseline)")},
        {"gqa3", QT_TRANSLATE_NOOP("kvs::studio", "GQA-3 (3 KV heads)")},
        {"gqa2", QT_TRANSLATE_NOOP("kvs::studio", "GQA-2 (2 KV heads)")},
        {"mqa", QT_TRANSLATE_NOOP("kvs::studio", "MQA (1 KV head)")},
        {"k_eq_v", QT_TRANSLATE_NOOP("kvs::studio", "Q-K=V (the keys are the values)")},
        {"q_eq_k", QT_TRANSLATE_NOOP("kvs::studio", "Q=K-V (the queries are the keys)")},
        {"q_eq_k_eq_v", QT_TRANSLATE_NOOP("kvs::studio", "Q=K=V")},
        {"k_eq_v_gqa2", QT_TRANSLATE_NOOP("kvs::studio", "Q-K=V + GQA-2")},
        {"thin_keys", QT_TRANSLATE_NOOP("kvs::studio", "Thin keys (rank-8 keys, QK fine-tuned)")},
    };
    QStringList roots;
    if (!applicationDir.isEmpty()) {
        roots << QDir::cleanPath(applicationDir + QStringLiteral("/../assets/models"));
        roots << QDir::cleanPath(applicationDir + QStringLiteral("/../share/kvstudio/models"));
    }
    if (const QString assets = sourceAssetsDir(); !assets.isEmpty())
        roots << QDir::cleanPath(assets + QStringLiteral("/models"));
    roots.removeDuplicates();

    // name -> folder, the first root that has it.
    QMap<QString, QString> found;
    const auto consider = [&](const QString& name, const QString& folder) {
        if (!found.contains(name) && QFileInfo::exists(folder + QStringLiteral("/config.json")))
            found.insert(name, folder);
    };
    for (const QString& root : roots) {
        consider(QStringLiteral("default"), root + QStringLiteral("/default"));
        const QDir variants(root + QStringLiteral("/variants"));
        for (const QString& name : variants.entryList(QDir::Dirs | QDir::NoDotAndDotDot))
            consider(name, variants.filePath(name));
    }

    const auto details = [](const QString& folder) -> QString {
        // Through core's reader: a fifo or device in a model folder must not hang the menu.
        QByteArray text;
        if (!catchErrors([&] {
                 text = QByteArray::fromStdString(
                     readFile((folder + QStringLiteral("/train_results.json")).toStdString(),
                              kMaxConfigBytes));
                 return true;
             }).ok())
            return {};
        const QJsonObject results = QJsonDocument::fromJson(text).object();
        const int bytes = results.value(QLatin1String("kv_bytes_per_token_fp16")).toInt();
        const double nats = results.value(QLatin1String("validation"))
                                .toObject()
                                .value(QLatin1String("nats"))
                                .toDouble();
        if (bytes <= 0 || nats <= 0)
            return {};
        // Validation figures are comparable only on the same split: name the held-out books.
        const QString on =
            results.value(QLatin1String("split")).toString() == QLatin1String("books")
                ? QCoreApplication::translate("kvs::studio", " (held-out books)")
                : QString();
        const QJsonObject config = results.value(QLatin1String("config")).toObject();
        const int rank = config.value(QLatin1String("key_rank")).toInt();
        const int headDim = config.value(QLatin1String("head_dim")).toInt();
        if (rank > 0 && headDim > 0) // thin keys: cached as rank-r latents by factor.weight_svd
            return QCoreApplication::translate(
                       "kvs::studio", "KV cache %L1 bytes per token (fp16; %L2 with the keys as "
                                      "rank-%3 latents), validation %4 nats per character%5")
                .arg(bytes)
                .arg(bytes * (rank + headDim) / (2 * headDim))
                .arg(rank)
                .arg(nats, 0, 'f', 4)
                .arg(on);
        return QCoreApplication::translate("kvs::studio",
                                           "KV cache %L1 bytes per token (fp16), validation "
                                           "%2 nats per character%3")
            .arg(bytes)
            .arg(nats, 0, 'f', 4)
            .arg(on);
    };
    QList<BundledModel> models;
    const auto add = [&](const QString& name, const QString& label) {
        const QString folder = found.take(name);
        models.append({folder, name, label, details(folder)});
    };
    for (const auto& [name, label] : known) {
        if (!found.contains(QLatin1String(name)))
            continue;
        // Without train_results.json the build's default is the generated stand-in
        // (studio-demo), not the trained QKV model the label describes.
        const bool trained = QFileInfo::exists(found.value(QLatin1String(name)) +
                                               QStringLiteral("/train_results.json"));
        add(QLatin1String(name), trained || name != std::string_view("default")
                                     ? QCoreApplication::translate("kvs::studio", label)
                                     : QCoreApplication::translate("kvs::studio", "Default model"));
    }
    for (const QString& name : found.keys()) // variants the table does not know, by name
        add(name, name);
    return models;
}

QString modelDisplayName(const QString& folder, const QString& applicationDir) {
    const QString canonical = QFileInfo(folder).canonicalFilePath();
    for (const BundledModel& m : bundledModels(applicationDir))
        if (!canonical.isEmpty() && QFileInfo(m.folder).canonicalFilePath() == canonical)
            return QCoreApplication::translate("kvs::studio", "%1 (bundled)").arg(m.name);
    const QString name = QFileInfo(QDir::cleanPath(folder)).fileName();
    return name.isEmpty() ? QDir::toNativeSeparators(folder) : name;
}

QString noModelMessage(const QStringList& candidates) {
    QStringList shown;
    for (const QString& c : candidates)
        shown << QDir::toNativeSeparators(c);
    return QObject::tr("No model yet: no default model was found (looked in %1). Open a Hugging "
                       "Face model folder with File \u2192 Open Model\u2026, or make a small "
                       "random one with:\n    kvstudio-cli make-model tiny-llama --out DIR\n"
                       "and open DIR (or set KVS_DEFAULT_MODEL=DIR).")
        .arg(shown.join(QStringLiteral(", ")));
}

QString defaultPrompt() {
    // Ecclesiastes 1:1-9 (942 characters): text the bundled 1,024-token model never trained on
    // (a held-out book), long enough to fill most of its context. Compiled in from
    // assets/prompts/held-out (app/CMakeLists.txt), so an installed studio has it too.
    QFile file(QStringLiteral(":/kvs/prompts/default-prompt.txt"));
    file.open(QIODevice::ReadOnly); // a resource of this binary (test_studio_window checks it)
    return QString::fromUtf8(file.readAll());
}

QString readPromptFile(const QString& path, QString* error) {
    // Through core's reader: a fifo, device or folder is refused by its type, the size capped.
    QByteArray bytes;
    const auto read = catchErrors([&] {
        bytes = QByteArray::fromStdString(readFile(path.toStdString(), kMaxPromptBytes));
        return true;
    });
    if (!read.ok()) {
        if (error)
            *error = QObject::tr("cannot read the prompt file: %1")
                         .arg(QString::fromStdString(read.message()));
        return {};
    }
    auto decode = QStringDecoder(QStringDecoder::Utf8, QStringDecoder::Flag::Stateless);
    QString text = decode(bytes);
    if (decode.hasError()) {
        if (error)
            *error = QObject::tr("the prompt file %1 is not valid UTF-8")
                         .arg(QDir::toNativeSeparators(path));
        return {};
    }
    return text;
}

ScreenshotTaker::ScreenshotTaker(MainWindow* window, QString path, int timeoutMs, QObject* parent)
    : QObject(parent), m_window(window), m_path(std::move(path)) {
    m_timeout.setSingleShot(true);
    m_timeout.setInterval(timeoutMs);
    m_settle.setSingleShot(true);
    m_settle.setInterval(200); // let layouts and paints catch up with the last snapshot
    connect(&m_timeout, &QTimer::timeout, this, [this] {
        if (m_done)
            return;
        m_done = true;
        Session* s = m_window->session();
        emit finished(
            TimedOut,
            tr("--screenshot: timed out after %1 s waiting for the workers (model %2, "
               "%3 jobs running, backend %4)")
                .arg(m_timeout.interval() / 1000)
                .arg(s->modelState() == ModelState::Loading ? tr("still loading") : tr("settled"))
                .arg(s->runningJobs())
                .arg(s->backend() ? tr("known") : tr("not yet probed")));
    });
    connect(&m_settle, &QTimer::timeout, this, [this] {
        if (settled())
            grabNow();
    });
}

void ScreenshotTaker::start() {
    Session* s = m_window->session();
    connect(s, &Session::busyChanged, this, &ScreenshotTaker::check);
    connect(s, &Session::backendChanged, this, &ScreenshotTaker::check);
    connect(s, &Session::modelLoaded, this, &ScreenshotTaker::check);
    connect(s, &Session::modelLoadFailed, this, &ScreenshotTaker::check);
    m_timeout.start();
    QTimer::singleShot(0, this, &ScreenshotTaker::check);
}

bool ScreenshotTaker::settled() const {
    const Session* s = m_window->session();
    return !s->isBusy() && s->backend() && s->modelState() != ModelState::Loading;
}

void ScreenshotTaker::check() {
    if (!m_done && settled())
        m_settle.start();
}

void ScreenshotTaker::grabNow() {
    if (m_done)
        return;
    m_done = true;
    m_timeout.stop();
    const QPixmap pixmap = m_window->grab();
    if (pixmap.isNull() || !pixmap.save(m_path, "PNG")) {
        emit finished(SaveFailed, tr("--screenshot: cannot write %1").arg(m_path));
        return;
    }
    const Session* s = m_window->session();
    if (!s->lastError().isEmpty()) {
        emit finished(ModelFailed,
                      tr("wrote %1; the model did not load: %2").arg(m_path, s->lastError()));
        return;
    }
    emit finished(Ok,
                  tr("wrote %1 (%2 x %3)").arg(m_path).arg(pixmap.width()).arg(pixmap.height()));
}

} // namespace kvs::studio
