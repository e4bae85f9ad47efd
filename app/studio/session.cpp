// SPDX-License-Identifier: MIT
// The studio's controller: owns the loaded model and the prompt, runs load/tokenize/probe jobs on
// its own worker pool, drops stale results by generation and publishes immutable snapshots.
#include "session.h"

#include "kvs/file_util.h"
#include "kvs/gpu/devices.h"
#include "kvs/status.h"
#include "kvs/threads.h"

#include <QCryptographicHash>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLocale>
#include <QtConcurrent/QtConcurrentRun>
#include <algorithm>
#include <map>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace kvs::studio {

namespace {

// One line from a train_results.json (kvstudio-cli train --json-out, copied beside the weights):
// "" when there is none; a broken file is named, never fatal to the load.
QString trainingSummary(const QString& path) {
    if (!QFileInfo::exists(path))
        return {};
    // Through core's reader: a fifo or /dev/zero named train_results.json must not hang the load.
    QByteArray bytes;
    const auto read = kvs::catchErrors([&] {
        bytes = QByteArray::fromStdString(kvs::readFile(path.toStdString(), kvs::kMaxConfigBytes));
        return true;
    });
    if (!read.ok())
        return Session::tr("%1: cannot be read (%2)")
            .arg(QFileInfo(path).fileName(), QString::fromStdString(read.message()));
    QJsonParseError error{};
    const QJsonObject r = QJsonDocument::fromJson(bytes, &error).object();
    const QJsonObject validation = r.value(QLatin1String("validation")).toObject();
    const double nats = validation.value(QLatin1String("nats")).toDouble(-1);
    const double perplexity = validation.value(QLatin1String("perplexity")).toDouble(-1);
    if (error.error != QJsonParseError::NoError || nats <= 0 || perplexity <= 0)
        return Session::tr("%1: not a training record (%2)")
            .arg(QFileInfo(path).fileName(), error.error != QJsonParseError::NoError
                                                 ? error.errorString()
                                                 : Session::tr("no validation loss"));
    const QLocale locale;
    return Session::tr("%1 steps, %2 characters; validation %3 nats/char (perplexity %4)")
        .arg(locale.toString(r.value(QLatin1String("steps")).toInt()),
             locale.toString(static_cast<qlonglong>(r.value(QLatin1String("tokens")).toDouble())))
        .arg(nats, 0, 'f', 4)
        .arg(perplexity, 0, 'f', 3);
}

// What a worker hands back: a snapshot or the error message, never an exception.
template <class S> struct Outcome {
    std::shared_ptr<const S> snapshot;
    QString error;
};
template <class S> using OutcomePtr = std::shared_ptr<const Outcome<S>>;

template <class S> OutcomePtr<S> success(std::shared_ptr<const S> s) {
    auto o = std::make_shared<Outcome<S>>();
    o->snapshot = std::move(s);
    return o;
}

template <class S> OutcomePtr<S> failure(QString message) {
    auto o = std::make_shared<Outcome<S>>();
    o->error = std::move(message);
    return o;
}

QString qs(const std::string& s) {
    return QString::fromStdString(s);
}

// The storage dtypes of a checkpoint, largest share first: "BF16" or "BF16 (97%), F32 (3%)".
QString dtypeSummary(const Checkpoint& checkpoint) {
    std::map<std::string, long double> bytes;
    long double total = 0;
    for (const std::string& name : checkpoint.names()) {
        const TensorInfo& info = checkpoint.info(name);
        bytes[std::string(dtypeName(info.dtype))] += static_cast<long double>(info.nbytes());
        total += static_cast<long double>(info.nbytes());
    }
    if (bytes.empty())
        return QStringLiteral("\u2014");
    if (bytes.size() == 1)
        return qs(bytes.begin()->first);
    std::vector<std::pair<std::string, long double>> sorted(bytes.begin(), bytes.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    QStringList parts;
    for (const auto& [name, b] : sorted)
        parts << QStringLiteral("%1 (%2%)")
                     .arg(qs(name))
                     .arg(static_cast<double>(100.0L * b / std::max(total, 1.0L)), 0, 'f', 0);
    return parts.join(QStringLiteral(", "));
}

OutcomePtr<ModelSnapshot> loadModel(const QString& folder, const CancelFlag& cancel) {
    if (folder.isEmpty())
        return failure<ModelSnapshot>(Session::tr("No model folder was given."));
    const QFileInfo info(folder);
    if (!info.exists())
        return failure<ModelSnapshot>(
            Session::tr("Cannot open the model folder %1: it does not exist.")
                .arg(QDir::toNativeSeparators(folder)));
    if (!info.isDir())
        return failure<ModelSnapshot>(Session::tr("Cannot open %1 as a model: it is not a folder.")
                                          .arg(QDir::toNativeSeparators(folder)));

    QElapsedTimer timer;
    timer.start();
    Result<Model> loaded = Error(ErrorCode::Internal, "not loaded");
    try {
        loaded = Model::load(folder.toStdString());
    } catch (const std::exception& e) { // Model::load reports errors as values; be safe anyway
        loaded = Error(ErrorCode::Internal, e.what());
    }
    if (!loaded.ok()) {
        QString message = qs(loaded.message());
        // The core names the file; make sure the folder is named too.
        if (!message.contains(folder))
            message = Session::tr("Cannot load the model in %1: %2")
                          .arg(QDir::toNativeSeparators(folder), message);
        return failure<ModelSnapshot>(message);
    }
    if (cancel.load())
        return failure<ModelSnapshot>(Session::tr("cancelled"));

    auto model = std::make_shared<const Model>(std::move(loaded).value());
    auto snapshot = std::make_shared<ModelSnapshot>();
    auto facts = catchErrors([&] {
        views::ModelFacts f;
        const ModelConfig& config = model->config();
        f.name = qs(model->name());
        f.folder = QDir::cleanPath(QString::fromStdString(model->folder().string()));
        f.config = config;
        f.parameters = config.parameterCount();
        f.kvBytesPerTokenFp16 = config.kvBytesPerTokenFp16();
        f.contextLimit = config.contextLimit();
        const Checkpoint& checkpoint = model->checkpoint();
        f.checkpoint = qs(checkpoint.describe());
        for (const SafetensorsFile& file : checkpoint.files())
            f.checkpointFiles << qs(file.path().filename().string());
        f.dtype = dtypeSummary(checkpoint);
        f.checkpointBytes = static_cast<qint64>(checkpoint.totalBytes());
        if (const Tokenizer* tokenizer = model->tokenizer()) {
            f.tokenizer = qs(tokenizer->kind());
            f.tokenizerVocab = static_cast<qint64>(tokenizer->vocabSize());
        }
        f.training = trainingSummary(f.folder + QStringLiteral("/train_results.json"));
        return f;
    });
    if (!facts.ok())
        return failure<ModelSnapshot>(
            Session::tr("Cannot describe the model in %1: %2").arg(folder, qs(facts.message())));
    snapshot->facts = std::move(facts).value();
    snapshot->hasTokenizer = model->tokenizer() != nullptr;
    snapshot->model = std::move(model);
    snapshot->loadSeconds = static_cast<double>(timer.nsecsElapsed()) * 1e-9;
    snapshot->loadedAt = QDateTime::currentDateTime();
    return success<ModelSnapshot>(std::move(snapshot));
}

OutcomePtr<TokensSnapshot> tokenize(const std::shared_ptr<const ModelSnapshot>& model,
                                    const QString& prompt, quint64 generation) {
    const Tokenizer* tokenizer = model->model->tokenizer();
    if (!tokenizer)
        return failure<TokensSnapshot>(
            Session::tr("The model folder %1 has no tokenizer (tokenizer.json, vocab.json + "
                        "merges.txt or tokenizer.model), so the prompt cannot be tokenized.")
                .arg(QDir::toNativeSeparators(model->facts.folder)));
    auto result = catchErrors([&] {
        auto s = std::make_shared<TokensSnapshot>();
        s->generation = generation;
        s->prompt = prompt;
        s->modelFolder = model->facts.folder;
        s->ids = tokenizer->encode(prompt.toStdString());
        s->texts.reserve(static_cast<qsizetype>(s->ids.size()));
        for (TokenId id : s->ids)
            s->texts << qs(tokenizer->tokenText(id));
        s->contextLimit = model->facts.contextLimit;
        s->kvBytesFp16 = model->facts.kvBytesPerTokenFp16 * static_cast<long long>(s->ids.size());
        return std::shared_ptr<const TokensSnapshot>(std::move(s));
    });
    if (!result.ok())
        return failure<TokensSnapshot>(
            Session::tr("Cannot tokenize the prompt: %1").arg(qs(result.message())));
    return success<TokensSnapshot>(std::move(result).value());
}

std::shared_ptr<const BackendSnapshot> probe() {
    auto b = std::make_shared<BackendSnapshot>();
    Result<std::vector<gpu::DeviceInfo>> devices = Error(ErrorCode::Internal, "not probed");
    try {
        devices = gpu::enumerateDevices();
    } catch (const std::exception& e) {
        devices = Error(ErrorCode::Internal, e.what());
    }
    if (!devices.ok()) {
        b->summary = Session::tr("CPU backend: %1").arg(qs(devices.message()));
        b->detail = qs(devices.message());
        return b;
    }
    const std::vector<gpu::DeviceInfo>& list = devices.value();
    if (list.empty()) {
        b->summary = Session::tr("CPU backend: no Vulkan device found");
        return b;
    }
    const std::string preference = gpu::devicePreferenceFromEnv();
    const auto chosen = gpu::chooseDevice(list, preference);
    if (!chosen) {
        b->summary = preference.empty()
                         ? Session::tr("CPU backend: no Vulkan device has a compute queue")
                         : Session::tr("CPU backend: no Vulkan device matches "
                                       "KVS_VULKAN_DEVICE=%1")
                               .arg(qs(preference));
        return b;
    }
    const gpu::DeviceInfo& device = list[*chosen];
    b->vulkan = true;
    b->cpuEmulation = device.isCpuEmulation();
    b->deviceName = qs(device.name);
    b->summary = b->cpuEmulation ? Session::tr("Vulkan: %1 (CPU emulation)").arg(b->deviceName)
                                 : Session::tr("Vulkan: %1").arg(b->deviceName);
    b->detail = qs(gpu::summaryLine(device));
    return b;
}

// What a job's work yields on the worker: its snapshot, null when cancelled, or the error that
// stopped it with its original code. Shared, because a QFuture copies its result.
template <class S> using JobResult = std::shared_ptr<const Result<std::shared_ptr<const S>>>;

// An engine job's Result (the engine catches everything its work throws and keeps the codes),
// shared for the trip to the GUI thread.
template <class S, class Fn> JobResult<S> engineJob(Fn&& call) {
    return std::make_shared<const Result<std::shared_ptr<const S>>>(call());
}

std::optional<views::StudioJob> studioJob(JobKind kind) {
    switch (kind) {
    case JobKind::Analysis:
        return views::StudioJob::Analysis;
    case JobKind::Quality:
        return views::StudioJob::Quality;
    case JobKind::Sweep:
        return views::StudioJob::Sweep;
    case JobKind::Scaling:
        return views::StudioJob::Scaling;
    case JobKind::Timing:
    case JobKind::RunTimings:
        return views::StudioJob::Timing;
    default:
        return std::nullopt;
    }
}

QString jobName(views::StudioJob job) {
    switch (job) {
    case views::StudioJob::Analysis:
        return Session::tr("Analysis failed");
    case views::StudioJob::Quality:
        return Session::tr("Quality pass failed");
    case views::StudioJob::Sweep:
        return Session::tr("Sweep failed");
    case views::StudioJob::Scaling:
        return Session::tr("Timing against context length failed");
    case views::StudioJob::Timing:
        return Session::tr("The timing backend failed to start");
    }
    return {};
}

// glibc raises its mmap threshold to the size of each mmapped block freed (up to 32 MiB); from
// then on the analyses' maps and matrices (0.1 to tens of MiB each, made on the workers, freed
// wherever the last snapshot goes) come from the per-thread arenas, and what is freed stays
// resident, fragmented across them: in the ten-minute soak resident memory climbed 600 MiB above
// the heap in use (docs/soak.md). Fixing the threshold at glibc's initial 128 KiB keeps every
// block of that size or more in its own mapping, returned to the system when freed.
void keepLargeBlocksMapped() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

// Background jobs (quality, timings, sweeps, scaling) use half the cores, so that the live
// analysis of the next settings change keeps cores of its own.
int backgroundThreads() {
    return std::max(1, hardwareThreads() / 2);
}

} // namespace

QString jobFailureText(views::StudioJob job, const Error& error) {
    return Session::tr("%1: %2 [%3]")
        .arg(jobName(job), qs(error.what()), qs(toString(error.code())));
}

Session::Session(QObject* parent) : QObject(parent) {
    keepLargeBlocksMapped();
    // Two workers: a model load and a tokenization (or the backend probe) can overlap.
    m_pool.setMaxThreadCount(3);
    m_hashPool.setMaxThreadCount(1);
    m_hashPool.setObjectName(QStringLiteral("kvs-hash-pool"));
    // One capture per (model, prompt) for the three engines: the model runs once.
    m_captures = std::make_shared<CaptureStore>();
    // A long capture (minutes for a billion-parameter model) shows how far it got; queued to the
    // GUI thread (the session outlives its workers: its destructor waits for them).
    m_captures->setProgress([this](int done, int layers) {
        QMetaObject::invokeMethod(
            this, [this, done, layers] { emit captureProgress(done, layers); },
            Qt::QueuedConnection);
    });
    m_liveEngine = std::make_shared<Engine>(/*cpuOnly=*/false, m_captures);
    m_sweepEngine = std::make_shared<Engine>(/*cpuOnly=*/true, m_captures);
    m_qualityEngine = std::make_shared<Engine>(/*cpuOnly=*/true, m_captures);
    m_analysisDebounce.setSingleShot(true);
    m_analysisDebounce.setInterval(30);
    connect(&m_analysisDebounce, &QTimer::timeout, this, &Session::recomputeNow);
    m_followUpDelay.setSingleShot(true);
    m_followUpDelay.setInterval(150);
    connect(&m_followUpDelay, &QTimer::timeout, this, &Session::startFollowUps);
    m_pool.setObjectName(QStringLiteral("kvs-session-pool"));
    m_debounce.setSingleShot(true);
    m_debounce.setInterval(150);
    connect(&m_debounce, &QTimer::timeout, this, &Session::tokenizeNow);
}

Session::~Session() {
    m_destroying = true;
    if (m_hashCancel)
        m_hashCancel->store(true);
    m_debounce.stop();
    m_analysisDebounce.stop();
    for (JobSlot& job : m_jobs)
        if (job.cancel)
            job.cancel->store(true);
    m_pool.clear();           // queued jobs never start
    m_pool.waitForDone();     // running ones finish; their watchers die with us, undelivered
    m_hashPool.waitForDone(); // cancelled above: stops at its next chunk
    m_views.clear();
}

SessionSubscription::SessionSubscription(Session* session, ISessionView* view)
    : m_session(session), m_view(view) {
    if (m_session)
        m_session->addView(m_view);
}

SessionSubscription::~SessionSubscription() {
    if (m_session)
        m_session->removeView(m_view);
}

void Session::addView(ISessionView* view) {
    if (view && std::find(m_views.begin(), m_views.end(), view) == m_views.end())
        m_views.push_back(view);
}

void Session::removeView(ISessionView* view) {
    m_views.erase(std::remove(m_views.begin(), m_views.end(), view), m_views.end());
}

void Session::notifyViews(const std::function<void(ISessionView*)>& call) {
    const auto views = m_views; // a view may unregister itself while being called
    for (ISessionView* view : views)
        if (std::find(m_views.begin(), m_views.end(), view) != m_views.end())
            call(view);
}

void Session::supersede(JobKind kind, bool cancelRunning) {
    JobSlot& job = slot(kind);
    ++job.generation;
    if (cancelRunning && job.cancel)
        job.cancel->store(true);
    if (job.state == JobState::Running || job.state == JobState::Queued)
        job.state = JobState::Idle;
}

template <class S>
std::shared_ptr<const S> Session::finishJob(JobKind kind,
                                            const Result<std::shared_ptr<const S>>& result) {
    JobSlot& job = slot(kind);
    if (result.ok() || result.error().code() == ErrorCode::Cancelled) {
        const auto value = result.ok() ? result.value() : nullptr;
        job.state = value ? JobState::Done : JobState::Idle;
        job.error.reset();
        return value;
    }
    job.state = JobState::Failed;
    job.error = result.error();
    if (const auto which = studioJob(kind)) {
        const Error error = result.error();
        notifyViews([&](ISessionView* v) { v->onJobFailed(*which, error); });
    }
    return nullptr;
}

template <class T>
void Session::runJob(JobKind kind, std::function<T(const CancelFlag&)> work,
                     std::function<void(T)> deliver) {
    JobSlot& job = slot(kind);
    const quint64 generation = ++job.generation;
    if (job.cancel)
        job.cancel->store(true);
    auto cancel = std::make_shared<CancelFlag>(false);
    job.cancel = cancel;
    job.state = JobState::Running;
    job.error.reset();

    auto* watcher = new QFutureWatcher<T>(this);
    ++m_running;
    connect(watcher, &QFutureWatcherBase::finished, this,
            [this, watcher, kind, generation, cancel, deliver = std::move(deliver)] {
                --m_running;
                const bool current = generation == slot(kind).generation && !cancel->load();
                T result = watcher->result();
                watcher->deleteLater();
                if (current && !m_destroying)
                    deliver(std::move(result));
                updateBusy();
            });
    watcher->setFuture(
        QtConcurrent::run(&m_pool, [work = std::move(work), cancel] { return work(*cancel); }));
    updateBusy();
}

void Session::openModel(const QString& folder) {
    const QString path = folder.trimmed().isEmpty()
                             ? QString()
                             : QDir::cleanPath(QFileInfo(folder).absoluteFilePath());
    m_loadingFolder = path;
    m_state = ModelState::Loading;
    emit modelLoadStarted(path);
    notifyViews([&](ISessionView* v) { v->onModelLoading(path); });

    runJob<OutcomePtr<ModelSnapshot>>(
        JobKind::Load, [path](const CancelFlag& cancel) { return loadModel(path, cancel); },
        [this, path](OutcomePtr<ModelSnapshot> outcome) {
            if (!outcome->snapshot) {
                // A failed load keeps the previous model: the window stays usable.
                slot(JobKind::Load).state = JobState::Failed;
                m_state = m_model ? ModelState::Loaded : ModelState::Failed;
                m_lastError = outcome->error;
                emit modelLoadFailed(path, outcome->error);
                notifyViews([&](ISessionView* v) { v->onModelLoadFailed(path, outcome->error); });
                return;
            }
            slot(JobKind::Load).state = JobState::Done;
            m_model = outcome->snapshot;
            m_tokens.reset();
            m_state = ModelState::Loaded;
            m_lastError.clear();
            const auto model = m_model;
            startContentHash();
            emit modelLoaded(model);
            notifyViews([&](ISessionView* v) { v->onModelLoaded(model); });
            tokenizeNow();
        });
}

// Provenance names the weights by their content, not their file name: SHA-256 over config.json
// and every checkpoint file (the shard index too), in the checkpoint's order. It reads what the
// load mapped, so it runs on a worker and a newer model or the session's end cancels it.
void Session::startContentHash() {
    if (m_hashCancel)
        m_hashCancel->store(true);
    m_modelHash.clear();
    if (!m_model)
        return;
    const QString folder = m_model->facts.folder;
    QStringList files{folder + QStringLiteral("/config.json")};
    if (const QString index = folder + QStringLiteral("/model.safetensors.index.json");
        m_model->facts.checkpointFiles.size() > 1 && QFileInfo::exists(index))
        files << index;
    for (const QString& name : m_model->facts.checkpointFiles)
        files << folder + QLatin1Char('/') + name;
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_hashCancel = cancel;
    const std::shared_ptr<const ModelSnapshot> model = m_model;
    auto* watcher = new QFutureWatcher<QString>(this);
    connect(watcher, &QFutureWatcherBase::finished, this, [this, watcher, cancel, model] {
        const QString hash = watcher->result();
        watcher->deleteLater();
        if (m_destroying || cancel->load() || m_model != model || hash.isEmpty())
            return;
        m_modelHash = hash;
        emit modelHashed(hash);
    });
    watcher->setFuture(QtConcurrent::run(&m_hashPool, [files, cancel]() -> QString {
        QCryptographicHash sha(QCryptographicHash::Sha256);
        QByteArray chunk(4 << 20, Qt::Uninitialized);
        for (const QString& path : files) {
            QFile file(path);
            if (!file.open(QIODevice::ReadOnly))
                return {};
            while (!file.atEnd()) {
                if (cancel->load())
                    return {};
                const qint64 n = file.read(chunk.data(), chunk.size());
                if (n < 0)
                    return {};
                sha.addData(QByteArrayView(chunk.constData(), n));
            }
        }
        return QStringLiteral("sha256:") + QString::fromLatin1(sha.result().toHex());
    }));
}

void Session::closeModel() {
    // Supersede any load, tokenization, analysis or sweep in flight.
    for (JobKind kind : {JobKind::Load, JobKind::Tokenize, JobKind::Analysis, JobKind::Sweep})
        supersede(kind, /*cancelRunning=*/false);
    cancelScaling();
    m_debounce.stop();
    m_analysisDebounce.stop();
    m_analysis.reset();
    m_sweeps.reset();
    m_sweepKey.clear();
    m_scaling.reset();
    if (m_hashCancel)
        m_hashCancel->store(true);
    m_modelHash.clear();
    m_model.reset();
    m_tokens.reset();
    m_state = ModelState::None;
    emit modelCleared();
    notifyViews([](ISessionView* v) { v->onModelCleared(); });
    updateBusy();
}

void Session::cancelWork() {
    const bool wasLoading = m_state == ModelState::Loading;
    for (JobKind kind :
         {JobKind::Load, JobKind::Analysis, JobKind::Quality, JobKind::RunTimings, JobKind::Sweep})
        supersede(kind);
    cancelScaling();
    m_analysisDebounce.stop();
    m_followUpDelay.stop();
    m_followUpRequest.reset();
    m_sweepKey.clear(); // the next analysis sweeps again
    if (wasLoading) {
        const QString folder = m_loadingFolder;
        m_loadingFolder.clear();
        // Back to what was there: the previous model, or none.
        m_state = m_model ? ModelState::Loaded : ModelState::None;
        if (const auto model = m_model)
            notifyViews([&](ISessionView* v) { v->onModelLoaded(model); });
        else
            notifyViews([](ISessionView* v) { v->onModelCleared(); });
        emit modelLoadCancelled(folder);
    }
    m_userCancelled = true;
    emit workCancelled();
    updateBusy();
}

bool Session::hasCancellableWork() const {
    return m_state == ModelState::Loading || isRunning(JobKind::Analysis) ||
           isRunning(JobKind::Quality) || isRunning(JobKind::Sweep) ||
           isRunning(JobKind::RunTimings) || isRunning(JobKind::Scaling) ||
           jobState(JobKind::Scaling) == JobState::Queued || m_analysisDebounce.isActive();
}

void Session::setPrompt(const QString& prompt) {
    if (prompt == m_prompt && (m_tokens || !m_model))
        return;
    m_prompt = prompt;
    m_debounce.start();
    updateBusy();
}

void Session::tokenizeNow() {
    m_debounce.stop();
    if (!m_model) {
        updateBusy();
        return;
    }
    const auto model = m_model;
    const QString prompt = m_prompt;
    const quint64 generation = slot(JobKind::Tokenize).generation + 1;
    runJob<OutcomePtr<TokensSnapshot>>(
        JobKind::Tokenize,
        [model, prompt, generation](const CancelFlag&) {
            return tokenize(model, prompt, generation);
        },
        [this](OutcomePtr<TokensSnapshot> outcome) {
            if (!outcome->snapshot) {
                slot(JobKind::Tokenize).state = JobState::Failed;
                m_tokens.reset();
                emit tokenizeFailed(outcome->error);
                notifyViews([&](ISessionView* v) { v->onTokenizeFailed(outcome->error); });
                return;
            }
            slot(JobKind::Tokenize).state = JobState::Done;
            m_tokens = outcome->snapshot;
            const auto tokens = m_tokens;
            emit tokensChanged(tokens);
            notifyViews([&](ISessionView* v) { v->onTokensChanged(tokens); });
            recomputeNow();
        });
}

void Session::probeBackend() {
    runJob<std::shared_ptr<const BackendSnapshot>>(
        JobKind::Backend, [](const CancelFlag&) { return probe(); },
        [this](std::shared_ptr<const BackendSnapshot> backend) {
            slot(JobKind::Backend).state = JobState::Done;
            m_backend = std::move(backend);
            emit backendChanged(m_backend);
        });
}

bool Session::isBusy() const {
    // The follow-up delay counts: quality, timings and sweeps are about to start.
    return m_running > 0 || m_debounce.isActive() || m_analysisDebounce.isActive() ||
           m_followUpDelay.isActive();
}

bool Session::isAnalysisBusy() const {
    return isRunning(JobKind::Analysis) || m_analysisDebounce.isActive() ||
           (m_analysis && m_analysis->qualityPending && !isFailed(JobKind::Quality));
}

void Session::setSchemes(const QStringList& settings) {
    if (settings == m_schemes)
        return;
    m_schemes = settings;
    m_analysisDebounce.start();
    updateBusy();
}

void Session::setContextTokens(int tokens) {
    if (tokens == m_requestedContext)
        return;
    m_requestedContext = tokens;
    m_analysisDebounce.start();
    updateBusy();
}

int Session::contextTokens() const {
    return m_tokens ? resolveContextTokens(m_requestedContext, m_tokens->count())
                    : m_requestedContext;
}

void Session::setSweepsEnabled(bool enabled) {
    m_sweepsEnabled = enabled;
    if (!enabled) {
        if (isRunning(JobKind::Sweep))
            slot(JobKind::Sweep).state = JobState::Idle;
        startScalingWhenIdle();
        supersede(JobKind::Sweep);
        m_sweepKey.clear();
    }
}

void Session::setStreamingCurves(bool enabled) {
    if (enabled == m_streamingCurves)
        return;
    m_streamingCurves = enabled;
    // The sweeps of the current settings again, with or without the streaming curves: now when
    // the results shown are the current settings' (nothing pending), otherwise the next
    // analysis's follow-ups start them (a session being opened changes the schemes first and
    // the model and prompt after, and sweeps of that mixture would only be superseded).
    supersede(JobKind::Sweep);
    m_sweepKey.clear();
    if (m_analysis && m_model && m_tokens && !m_schemes.isEmpty() && m_tokens->count() >= 2 &&
        !isRunning(JobKind::Analysis) && !m_analysisDebounce.isActive() &&
        m_analysis->provenance.schemes == m_schemes &&
        m_analysis->provenance.prompt == m_tokens->prompt &&
        m_analysis->provenance.modelFolder == m_model->facts.folder)
        startSweeps(makeRequest());
}

AnalysisRequest Session::makeRequest() const {
    AnalysisRequest r;
    r.streamingCurves = m_streamingCurves;
    r.model = m_model->model;
    r.tokens = m_tokens->ids;
    r.tokenTexts = m_tokens->texts;
    r.contextTokens = resolveContextTokens(m_requestedContext, m_tokens->count());
    r.settings = m_schemes;
    r.modelQuality = !qEnvironmentVariableIsSet("KVS_STUDIO_NO_QUALITY");
    r.deferEmulatedTimings = true;
    r.provenance.modelName = m_model->facts.name;
    r.provenance.modelFolder = m_model->facts.folder;
    // Until the worker has hashed the weights, the provenance says so and names the checkpoint.
    r.provenance.modelHash =
        m_modelHash.isEmpty() ? QStringLiteral("sha256 pending (%1)").arg(m_model->facts.checkpoint)
                              : m_modelHash;
    r.provenance.prompt = m_tokens->prompt;
    r.provenance.version = QStringLiteral(KVS_VERSION);
    return r;
}

void Session::recomputeNow() {
    m_analysisDebounce.stop();
    m_userCancelled = false; // a new request: the user wants results again
    if (!m_model || !m_tokens || m_schemes.isEmpty() || m_tokens->count() < 2) {
        updateBusy();
        return;
    }
    AnalysisRequest request = makeRequest();
    request.generation = slot(JobKind::Analysis).generation + 1;
    request.renderDocCapture = m_renderDocPending;
    // The scaling job competes for the CPU (and the device): the live results come first.
    cancelScaling();
    if (m_analysis && m_analysis->contextTokens == request.contextTokens &&
        m_analysis->provenance.prompt == request.provenance.prompt &&
        m_analysis->provenance.modelFolder == request.provenance.modelFolder)
        for (const views::SchemeRun& run : m_analysis->runs)
            if (run.eval.quality)
                request.knownQuality[run.setting] = *run.eval.quality;
    // A pending quality pass (or timing pass) belongs to the old settings; the timing pass also
    // holds the live engine, which the new analysis needs at once.
    supersede(JobKind::Quality);
    supersede(JobKind::RunTimings);
    m_followUpDelay.stop();
    m_followUpRequest.reset();
    auto engine = m_liveEngine;
    runJob<JobResult<views::AnalysisData>>(
        JobKind::Analysis,
        [engine, request](const CancelFlag& cancel) {
            return engineJob<views::AnalysisData>([&] { return engine->analyze(request, cancel); });
        },
        [this, request](JobResult<views::AnalysisData> result) {
            if (request.renderDocCapture)
                m_renderDocPending = false;
            const auto analysis = finishJob(JobKind::Analysis, *result);
            if (!result->ok() && request.renderDocCapture)
                emit renderDocCaptured(QString(), qs(result->message()));
            if (!analysis)
                return; // failed (reported) or cancelled
            m_analysis = analysis;
            emit analysisDelivered(analysis->generation);
            notifyViews([&](ISessionView* v) { v->onAnalysisChanged(analysis); });
            if (request.renderDocCapture)
                emit renderDocCaptured(m_analysis->renderDocCapture, m_analysis->renderDocError);
            // Quality, deferred timings and sweeps once the settings are still (startFollowUps).
            m_followUpRequest = request;
            m_followUpDelay.start();
            updateBusy();
            if (jobState(JobKind::Timing) == JobState::Idle)
                startTiming(); // Vulkan start-up after the first results, not before
            if (!m_analysis->timingsPending) {
                m_scalingRequest = request;
                slot(JobKind::Scaling).state = JobState::Queued;
                startScalingWhenIdle();
            }
        });
    notifyViews([](ISessionView* v) { v->onJobStarted(views::StudioJob::Analysis); });
    // A superseded job's deliver never runs: the state follows the newest job.
}

void Session::startTiming() {
    auto engine = m_liveEngine;
    runJob<std::shared_ptr<const Result<bool>>>(
        JobKind::Timing,
        [engine](const CancelFlag&) {
            return std::make_shared<const Result<bool>>(catchErrors([&] {
                engine->startTimingBackend();
                return true;
            }));
        },
        [this](std::shared_ptr<const Result<bool>> result) {
            JobSlot& job = slot(JobKind::Timing);
            job.state = result->ok() ? JobState::Done : JobState::Failed;
            if (!result->ok()) {
                job.error = result->error();
                const Error error = result->error();
                notifyViews(
                    [&](ISessionView* v) { v->onJobFailed(views::StudioJob::Timing, error); });
            }
            // The timed recompute, unless the user cancelled the work since: it would redo what
            // they stopped. Their next change recomputes with timings.
            if (m_analysis && m_analysis->timingsPending && !m_userCancelled)
                recomputeNow();
        });
}

template <class S>
void Session::runEngineJob(JobKind kind, EngineCall<S> call,
                           std::function<void(const std::shared_ptr<const S>&)> deliver) {
    runJob<JobResult<S>>(
        kind,
        [call = std::move(call)](const CancelFlag& cancel) {
            return engineJob<S>([&] { return call(cancel); });
        },
        [this, kind, deliver = std::move(deliver)](JobResult<S> result) {
            deliver(finishJob(kind, *result));
        });
    if (const auto job = studioJob(kind))
        notifyViews([&](ISessionView* v) { v->onJobStarted(*job); });
}

void Session::startQuality(const AnalysisRequest& request) {
    auto engine = m_qualityEngine;
    auto base = m_analysis;
    runEngineJob<views::AnalysisData>(
        JobKind::Quality,
        [engine, base, request](const CancelFlag& cancel) {
            const ScopedThreadLimit background(backgroundThreads());
            return engine->addQuality(base, request, cancel);
        },
        [this](const std::shared_ptr<const views::AnalysisData>& analysis) {
            mergeFollowUp(analysis, [&](views::AnalysisData& shown) {
                for (std::size_t i = 0; i < shown.runs.size(); ++i)
                    shown.runs[i].eval.quality = analysis->runs[i].eval.quality;
                shown.qualityPending = false;
                shown.computeMilliseconds = analysis->computeMilliseconds;
            });
            startScalingWhenIdle();
        });
}

void Session::startFollowUps() {
    if (!m_followUpRequest || !m_analysis) {
        updateBusy();
        return;
    }
    const AnalysisRequest request = std::move(*m_followUpRequest);
    m_followUpRequest.reset();
    if (m_analysis->qualityPending)
        startQuality(request);
    if (m_analysis->timingsDeferred)
        startRunTimings(request);
    startSweeps(request);
    startScalingWhenIdle(); // when none of them started
    updateBusy();
}

void Session::startRunTimings(const AnalysisRequest& request) {
    auto engine = m_liveEngine;
    auto base = m_analysis;
    runEngineJob<views::AnalysisData>(
        JobKind::RunTimings,
        [engine, base, request](const CancelFlag& cancel) {
            const ScopedThreadLimit background(backgroundThreads());
            return engine->addTimings(base, request, cancel);
        },
        [this](const std::shared_ptr<const views::AnalysisData>& timed) {
            mergeFollowUp(timed, [&](views::AnalysisData& shown) {
                for (std::size_t i = 0; i < shown.runs.size(); ++i) {
                    views::SchemeRun& run = shown.runs[i];
                    const views::SchemeRun& t = timed->runs[i];
                    run.dispatches = t.dispatches;
                    run.dispatchLayer = t.dispatchLayer;
                    run.attendWallMicroseconds = t.attendWallMicroseconds;
                    run.layerAllocation = t.layerAllocation;
                }
                shown.timingsDeferred = false;
            });
            startScalingWhenIdle();
        });
}

void Session::mergeFollowUp(const std::shared_ptr<const views::AnalysisData>& update,
                            const std::function<void(views::AnalysisData&)>& copyInto) {
    // The other follow-up may have delivered meanwhile: its numbers stay, this one's are added.
    // A result of another analysis (or none: cancelled) changes nothing.
    if (!update || !m_analysis || update->generation != m_analysis->generation ||
        update->runs.size() != m_analysis->runs.size())
        return;
    auto merged = std::make_shared<views::AnalysisData>(*m_analysis);
    copyInto(*merged);
    m_analysis = merged;
    notifyViews([&](ISessionView* v) { v->onAnalysisChanged(m_analysis); });
}

QString Session::requestKey(const AnalysisRequest& request, const QStringList& settings) {
    return QStringLiteral("%1|%2|%3|%4")
        .arg(settings.join(QLatin1Char(';')))
        .arg(request.contextTokens)
        .arg(reinterpret_cast<quintptr>(request.model.get()))
        .arg(qHash(QByteArray(reinterpret_cast<const char*>(request.tokens.data()),
                              static_cast<qsizetype>(request.tokens.size() * sizeof(TokenId)))));
}

void Session::startSweeps(const AnalysisRequest& request) {
    if (!m_sweepsEnabled)
        return;
    QStringList keys;
    for (const QString& s : request.settings)
        keys << sweepKey(s);
    const QString key =
        requestKey(request, keys) + (request.streamingCurves ? QStringLiteral("|streaming") : "");
    if (key == m_sweepKey)
        return;
    m_sweepKey = key;
    AnalysisRequest sweepRequest = request;
    sweepRequest.generation = slot(JobKind::Sweep).generation + 1;
    auto engine = m_sweepEngine;
    runEngineJob<views::SweepData>(
        JobKind::Sweep,
        [engine, sweepRequest](const CancelFlag& cancel) {
            const ScopedThreadLimit background(backgroundThreads());
            return engine->sweep(sweepRequest, cancel);
        },
        [this](const std::shared_ptr<const views::SweepData>& sweeps) {
            if (sweeps) {
                m_sweeps = sweeps;
                notifyViews([&](ISessionView* v) { v->onSweepsChanged(sweeps); });
            }
            startScalingWhenIdle();
        });
}

void Session::setScalingEnabled(bool enabled) {
    m_scalingEnabled = enabled;
    if (!enabled)
        cancelScaling();
}

void Session::captureNextRecompute() {
    m_renderDocPending = true;
    recomputeNow();
}

void Session::startScalingWhenIdle() {
    if (!m_scalingRequest || isRunning(JobKind::Quality) || isRunning(JobKind::Sweep) ||
        isRunning(JobKind::RunTimings) || m_followUpDelay.isActive())
        return;
    const AnalysisRequest request = std::move(*m_scalingRequest);
    m_scalingRequest.reset();
    slot(JobKind::Scaling).state = JobState::Idle;
    startScaling(request);
}

void Session::cancelScaling() {
    m_scalingRequest.reset();
    supersede(JobKind::Scaling);
    m_scalingKey.clear();
}

void Session::startScaling(const AnalysisRequest& request) {
    if (!m_scalingEnabled || qEnvironmentVariableIsSet("KVS_STUDIO_NO_SCALING"))
        return;
    const QString key = requestKey(request, request.settings);
    if (key == m_scalingKey)
        return;
    m_scalingKey = key;
    AnalysisRequest scalingRequest = request;
    scalingRequest.generation = slot(JobKind::Scaling).generation + 1;
    auto engine = m_liveEngine; // its timing backend; the job does not hold the engine's lock
    runEngineJob<views::ScalingData>(
        JobKind::Scaling,
        [engine, scalingRequest](const CancelFlag& cancel) {
            const ScopedThreadLimit background(backgroundThreads());
            return engine->scaling(scalingRequest, cancel);
        },
        [this](const std::shared_ptr<const views::ScalingData>& scaling) {
            if (!scaling)
                return;
            m_scaling = scaling;
            notifyViews([&](ISessionView* v) { v->onScalingChanged(scaling); });
        });
}

void Session::updateBusy() {
    const bool busy = isBusy();
    if (busy != m_lastBusy) {
        m_lastBusy = busy;
        emit busyChanged(busy);
    }
}

QString Session::promptPrefix(int count) const {
    if (!m_model || !m_model->model || !m_tokens || count <= 0)
        return {};
    const Tokenizer* tokenizer = m_model->model->tokenizer();
    if (!tokenizer)
        return {};
    const auto n = std::min<std::size_t>(static_cast<std::size_t>(count), m_tokens->ids.size());
    return QString::fromStdString(tokenizer->decode(
        std::vector<TokenId>(m_tokens->ids.begin(), m_tokens->ids.begin() + std::ptrdiff_t(n))));
}

} // namespace kvs::studio
