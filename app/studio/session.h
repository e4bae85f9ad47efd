// SPDX-License-Identifier: MIT
// The studio's controller: owns the loaded model and the prompt, runs load/tokenize/probe jobs on
// its own worker pool, drops stale results by generation and publishes immutable snapshots.
#pragma once

#include "analysis.h"
#include "session_view.h"
#include "snapshots.h"

#include <QObject>
#include <QPointer>
#include <QThreadPool>
#include <QTimer>
#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace kvs::studio {

// Set by the session when a job's result is no longer wanted; long jobs check it between steps.
using CancelFlag = std::atomic<bool>;

// The kinds of work the session runs on its pool; one job of each kind is current at a time.
// Timing: the timing backend's start-up; RunTimings: the deferred timed probe attention of the
// current analysis (AnalysisRequest::deferEmulatedTimings).
enum class JobKind {
    Load,
    Tokenize,
    Backend,
    Analysis,
    Quality,
    Sweep,
    Timing,
    RunTimings,
    Scaling,
    Count
};

// What the current job of one kind is doing.
enum class JobState {
    Idle,    // none ran yet, or the last one was cancelled or superseded without a result
    Queued,  // waiting for other jobs before it starts (the scaling job waits for the quality
             // pass and the sweeps)
    Running, // on a worker; its result is wanted
    Done,    // delivered its result
    Failed,  // delivered an error (Session::jobError)
};

class Session : public QObject {
    Q_OBJECT
public:
    explicit Session(QObject* parent = nullptr);
    // Cancels queued work and waits for running jobs; no result is delivered afterwards.
    ~Session() override;

    // Observers, called on the GUI thread. A view removes itself before it dies.
    void addView(ISessionView* view);
    void removeView(ISessionView* view);

    // Starts loading a model folder on the worker; a later call supersedes an earlier one.
    void openModel(const QString& folder);
    // Forgets the model (views are cleared).
    void closeModel();
    // Stops the long work in flight — a model load (the previous model stays), the analysis,
    // the model-quality pass, the sweeps, the timing against context length — and drops its
    // results; what the views show stays. The next change (or recomputeNow) starts again.
    void cancelWork();
    // True while work that cancelWork() stops is running or queued.
    bool hasCancellableWork() const;
    // Sets the prompt; it is re-tokenized after the debounce delay (on the worker).
    void setPrompt(const QString& prompt);
    // Tokenizes the current prompt now, skipping the debounce.
    void tokenizeNow();
    // Finds the compute backend (Vulkan device or the CPU fallback) on the worker.
    void probeBackend();

    // The scheme settings to compare ("id:key=value,..."); recomputed after the analysis delay.
    void setSchemes(const QStringList& settings);
    QStringList schemes() const { return m_schemes; }
    // Context tokens of the split (the rest are probes); 0 = three quarters of the prompt.
    void setContextTokens(int tokens);
    int requestedContextTokens() const { return m_requestedContext; }
    // The split the current prompt uses.
    int contextTokens() const;
    // Re-evaluates now, skipping the debounce.
    void recomputeNow();
    // Budget sweeps for the trade-off curves (on by default; they run after the live results).
    void setSweepsEnabled(bool enabled);
    // The sweeps also run the schemes that can stream in streaming mode (off by default: each
    // point decodes the probe one token at a time). Changing it reruns the sweeps.
    void setStreamingCurves(bool enabled);
    bool streamingCurves() const { return m_streamingCurves; }
    // Time against context length per setting (on by default; it runs after the live results
    // once the timing backend is up, and a new recompute cancels it).
    void setScalingEnabled(bool enabled);
    std::shared_ptr<const views::ScalingData> scaling() const { return m_scaling; }
    // The next recompute's GPU work is captured in RenderDoc (renderDocCaptured reports it).
    void captureNextRecompute();
    void setAnalysisDelay(int milliseconds) { m_analysisDebounce.setInterval(milliseconds); }
    std::shared_ptr<const views::AnalysisData> analysis() const { return m_analysis; }
    std::shared_ptr<const views::SweepData> sweeps() const { return m_sweeps; }
    bool isAnalysisBusy() const;
    JobState jobState(JobKind kind) const { return slot(kind).state; }
    // The error of the kind's last job when it failed (jobState() == Failed), else none.
    std::optional<kvs::Error> jobError(JobKind kind) const { return slot(kind).error; }

    void setTokenizeDelay(int milliseconds) { m_debounce.setInterval(milliseconds); }
    int tokenizeDelay() const { return m_debounce.interval(); }

    ModelState modelState() const { return m_state; }
    QString loadingFolder() const { return m_loadingFolder; }
    QString lastError() const { return m_lastError; }
    // Forward passes the session's engines ran to capture prompts (one per model and prompt).
    int captureForwardPasses() const { return m_captures->forwardPasses(); }
    QString prompt() const { return m_prompt; }
    std::shared_ptr<const ModelSnapshot> model() const { return m_model; }
    std::shared_ptr<const TokensSnapshot> tokens() const { return m_tokens; }
    // The text of the current prompt's first `count` tokens, decoded by the loaded model's
    // tokenizer (what "Fit to the model" keeps); empty without a model or tokens.
    QString promptPrefix(int count) const;
    std::shared_ptr<const BackendSnapshot> backend() const { return m_backend; }

    // True while any job runs or a re-tokenization is pending.
    bool isBusy() const;
    // Jobs started on the worker pool and not yet finished (stale ones included).
    int runningJobs() const { return m_running; }

    // SHA-256 of the loaded model's config.json and checkpoint files, "sha256:<hex>", computed on
    // a worker after the load (a large checkpoint takes a while); "" until it is known.
    QString modelContentHash() const { return m_modelHash; }

signals:
    void modelHashed(const QString& hash);
    void modelLoadStarted(const QString& folder);
    void modelLoaded(std::shared_ptr<const kvs::studio::ModelSnapshot> model);
    void modelLoadFailed(const QString& folder, const QString& message);
    void modelCleared();
    void tokensChanged(std::shared_ptr<const kvs::studio::TokensSnapshot> tokens);
    void tokenizeFailed(const QString& message);
    void backendChanged(std::shared_ptr<const kvs::studio::BackendSnapshot> backend);
    void busyChanged(bool busy);
    // A forward pass of the prompt is under way: `done` of `layers` layers captured.
    void captureProgress(int done, int layers);
    void modelLoadCancelled(const QString& folder);
    void workCancelled();
    // After a recompute asked for by captureNextRecompute(): the capture file, or why none.
    void renderDocCaptured(const QString& path, const QString& error);
    // A new analysis reached the window, emitted before the views hear of it (benchmarks split
    // a change's latency at this point).
    void analysisDelivered(quint64 generation);

private:
    // One kind's current job: its state, the generation that tells a stale result from the
    // current one, the flag that cancels it, and the error it failed with.
    struct JobSlot {
        JobState state = JobState::Idle;
        quint64 generation = 0;
        std::shared_ptr<CancelFlag> cancel;
        std::optional<kvs::Error> error;
    };
    JobSlot& slot(JobKind kind) { return m_jobs[static_cast<std::size_t>(kind)]; }
    const JobSlot& slot(JobKind kind) const { return m_jobs[static_cast<std::size_t>(kind)]; }
    bool isRunning(JobKind kind) const { return jobState(kind) == JobState::Running; }
    bool isFailed(JobKind kind) const { return jobState(kind) == JobState::Failed; }
    // Drops the current job of `kind` (its result never arrives) and sets its cancel flag.
    void supersede(JobKind kind, bool cancelRunning = true);
    // The end of an analysis job: its snapshot (Done), null when cancelled (Idle), or null after
    // reporting the failure to every observer (Failed).
    template <class S>
    std::shared_ptr<const S> finishJob(JobKind kind,
                                       const Result<std::shared_ptr<const S>>& result);

    // Runs `work` on the pool; `deliver` gets its result on the GUI thread unless a newer job of
    // the same kind started meanwhile (or the session is being destroyed).
    template <class T>
    void runJob(JobKind kind, std::function<T(const CancelFlag&)> work,
                std::function<void(T)> deliver);

    // An engine call run on the pool: its snapshot, null when cancelled, or its error.
    template <class S>
    using EngineCall = std::function<Result<std::shared_ptr<const S>>(const CancelFlag&)>;
    // Runs `call` as the job of `kind` and tells the views it started; on the GUI thread
    // `deliver` gets the snapshot, or null when the job was cancelled or failed (finishJob has
    // reported the failure).
    template <class S>
    void runEngineJob(JobKind kind, EngineCall<S> call,
                      std::function<void(const std::shared_ptr<const S>&)> deliver);

    void notifyViews(const std::function<void(ISessionView*)>& call);
    void updateBusy();
    AnalysisRequest makeRequest() const;
    void startSweeps(const AnalysisRequest& request);
    void startScaling(const AnalysisRequest& request);
    void startScalingWhenIdle();
    void cancelScaling();
    void startQuality(const AnalysisRequest& request);
    void startRunTimings(const AnalysisRequest& request);
    void startFollowUps();
    // Publishes a follow-up pass's result (quality, timings) of the analysis shown: a copy of it
    // with `copyInto` applied.
    void mergeFollowUp(const std::shared_ptr<const views::AnalysisData>& update,
                       const std::function<void(views::AnalysisData&)>& copyInto);
    void startTiming();
    // What a sweep or scaling job was made for: the settings, the split, the model and prompt.
    static QString requestKey(const AnalysisRequest& request, const QStringList& settings);

    QThreadPool m_pool;
    // Its own worker: hashing a large checkpoint takes minutes and must not hold up analyses.
    QThreadPool m_hashPool;
    QString m_modelHash;
    std::shared_ptr<std::atomic<bool>> m_hashCancel;
    void startContentHash();
    QTimer m_debounce;
    std::array<JobSlot, static_cast<std::size_t>(JobKind::Count)> m_jobs{};
    int m_running = 0;
    bool m_lastBusy = false;
    bool m_destroying = false;
    bool m_userCancelled = false; // cancelWork() since the last recompute

    std::vector<ISessionView*> m_views;
    ModelState m_state = ModelState::None;
    QString m_loadingFolder;
    QString m_lastError;
    QString m_prompt;
    std::shared_ptr<const ModelSnapshot> m_model;
    std::shared_ptr<const TokensSnapshot> m_tokens;
    std::shared_ptr<const BackendSnapshot> m_backend;

    QTimer m_analysisDebounce;
    // The follow-up passes (model quality, deferred timings) start when the settings have been
    // still this long: while a slider moves they would only compete with the next analysis for
    // the cores and be superseded.
    QTimer m_followUpDelay;
    std::optional<AnalysisRequest> m_followUpRequest;
    QStringList m_schemes;
    int m_requestedContext = 0;
    bool m_sweepsEnabled = true;
    bool m_streamingCurves = false;
    QString m_sweepKey;                       // what the current (or running) sweeps were made for
    std::shared_ptr<CaptureStore> m_captures; // shared by the three engines
    std::shared_ptr<Engine> m_liveEngine;
    std::shared_ptr<Engine> m_sweepEngine;
    std::shared_ptr<Engine> m_qualityEngine; // its own engine: a slider move never waits for it
    std::shared_ptr<const views::AnalysisData> m_analysis;
    std::shared_ptr<const views::SweepData> m_sweeps;
    bool m_scalingEnabled = true;
    QString m_scalingKey; // what the current (or running) scaling job was made for
    std::shared_ptr<const views::ScalingData> m_scaling;
    // The scaling job waits (Queued) for the quality pass and the sweeps (they share the CPU, and
    // on lavapipe the device is the CPU): the request it will run.
    std::optional<AnalysisRequest> m_scalingRequest;
    // captureNextRecompute() until an analysis delivers: a request, not a job's state.
    bool m_renderDocPending = false;
};

} // namespace kvs::studio
