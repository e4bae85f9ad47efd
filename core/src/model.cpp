// SPDX-License-Identifier: MIT
// Loading a model folder (config, checkpoint, tokenizer) and the public forward/capture/generate
// API.
#include "kvs/model.h"

#include "forward.h"
#include "weights.h"

#include "kvs/finite.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <unistd.h>

namespace kvs {

struct Model::Impl {
    std::filesystem::path folder;
    ModelConfig config;
    std::string configSource;
    Checkpoint checkpoint;
    std::unique_ptr<Tokenizer> tokenizer;
    std::size_t budget = 0;
    std::uint64_t memoryLimit = 0; // LoadOptions::memoryLimitBytes
    std::unique_ptr<WeightStore<float>> weights;
    mutable std::once_flag weights64Once;
    mutable std::unique_ptr<WeightStore<double>> weights64;
    // Rewritten models (withAttention): the loaded model whose checkpoint, tokenizer and config
    // (tensor names) they read, and the attention projections that replace its own.
    std::shared_ptr<const Impl> base;
    std::shared_ptr<const AttentionOverride> attention;

    const Impl& root() const { return base ? *base : *this; }
};

namespace {

std::size_t defaultWeightBudget() {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long pageSize = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || pageSize <= 0)
        return std::size_t(4) << 30;
    return static_cast<std::size_t>(pages) * static_cast<std::size_t>(pageSize) / 4;
}

std::string gib(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1u << 30));
    return text;
}

// Refuses with the numbers when `need` exceeds what may be used: a model or a prompt that
// cannot fit is an error before the first allocation, not a process the kernel kills.
void checkMemory(const MemoryNeed& need, std::uint64_t limit, const std::string& what) {
    const std::uint64_t available = limit ? limit : availableMemoryBytes();
    if (need.total() <= available)
        return;
    std::string parts = gib(need.globalWeights) + " for the embeddings and output head and " +
                        gib(need.largestLayer) + " for one layer";
    if (need.capture)
        parts += ", " + gib(need.capture) + " for the capture and " + gib(need.activations) +
                 " of working buffers";
    throw Error(ErrorCode::OutOfMemory,
                what + " needs about " + gib(need.total()) + " of memory (" + parts +
                    ", in fp32) but " + gib(available) +
                    (limit ? " may be used" : " is available") + "; nothing was allocated");
}

} // namespace

std::uint64_t availableMemoryBytes() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::uint64_t value = 0;
    std::string unit;
    while (meminfo >> key >> value >> unit)
        if (key == "MemAvailable:")
            return value * 1024; // kB
    const long pages = ::sysconf(_SC_AVPHYS_PAGES);
    const long pageSize = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && pageSize > 0
               ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(pageSize)
               : std::uint64_t(4) << 30;
}

MemoryNeed memoryNeed(const ModelConfig& c, int tokens, bool logits) {
    const std::uint64_t f = sizeof(float);
    const std::uint64_t D = static_cast<std::uint64_t>(c.width),
                        V = static_cast<std::uint64_t>(c.vocab),
                        F = static_cast<std::uint64_t>(c.intermediate),
                        d = static_cast<std::uint64_t>(c.headDim),
                        H = static_cast<std::uint64_t>(c.heads),
                        Hkv = static_cast<std::uint64_t>(c.kvHeads),
                        L = static_cast<std::uint64_t>(c.layers),
                        n = static_cast<std::uint64_t>(std::max(tokens, 0));
    MemoryNeed m;
    m.globalWeights =
        f * (V * D * (c.tiedEmbeddings ? 1 : 2) + 2 * D +
             (c.positions == PositionKind::Learned ? static_cast<std::uint64_t>(c.maxPositions) * D
                                                   : 0));
    const std::uint64_t mlp = D * F * (c.mlp == MlpKind::SwiGlu ? 3 : 2);
    m.largestLayer = f * (2 * D * H * d + 2 * D * Hkv * d + mlp + 4 * D + 2 * F);
    if (n) {
        const bool rope = c.positions == PositionKind::Rope;
        // per token: hidden input, keys and values (+ pre-RoPE keys), queries (+ pre-RoPE) and
        // outputs of every query head
        const std::uint64_t perToken = D + Hkv * d * (rope ? 3 : 2) + H * d * (rope ? 3 : 2);
        m.capture = f * L * n * perToken;
        // x, normalized x, q/k/v (+ pre-RoPE copies), attention, projection, MLP up and gate,
        // the cache being filled, and the logits asked for
        m.activations = f * n * (4 * D + 3 * H * d + 4 * Hkv * d + 2 * F) +
                        f * 2 * L * n * Hkv * d + (logits ? f * n * V : 0);
    }
    return m;
}

void validateTokens(const ModelConfig& config, std::span<const TokenId> tokens,
                    const std::string& source) {
    if (tokens.empty())
        throw Error(ErrorCode::InvalidArgument, source + ": empty prompt (no tokens to run)");
    if (static_cast<int>(tokens.size()) > config.contextLimit())
        throw Error(ErrorCode::InvalidArgument,
                    source + ": the prompt has " + std::to_string(tokens.size()) +
                        " tokens but the model accepts at most " +
                        std::to_string(config.contextLimit()) + " positions");
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= config.vocab)
            throw Error(ErrorCode::InvalidArgument,
                        source + ": token id " + std::to_string(tokens[i]) + " at index " +
                            std::to_string(i) + " is outside the model's vocabulary of " +
                            std::to_string(config.vocab));
}

Model::Model(std::shared_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Result<Model> Model::load(const std::filesystem::path& folder, LoadOptions options) {
    return catchErrors([&]() -> Model {
        std::error_code ec;
        if (!std::filesystem::exists(folder, ec))
            throw Error(ErrorCode::Io, folder.string() + ": no such model folder");
        if (!std::filesystem::is_directory(folder, ec))
            throw Error(ErrorCode::Io, folder.string() +
                                           ": not a folder (a model is a folder with config.json "
                                           "and *.safetensors)");
        const auto configPath = folder / "config.json";
        if (!std::filesystem::exists(configPath, ec))
            throw Error(ErrorCode::Missing,
                        folder.string() + ": no config.json in the model folder");
        auto impl = std::make_unique<Impl>();
        impl->folder = folder;
        impl->configSource = configPath.string();
        impl->config = loadModelConfig(configPath).valueOrThrow();
        impl->checkpoint = Checkpoint::open(folder).valueOrThrow();
        validateCheckpoint(impl->config, impl->checkpoint, impl->configSource);

        auto tok = loadTokenizer(folder);
        if (tok.ok()) {
            impl->tokenizer = std::move(tok.value());
        } else if (tok.error().code() != ErrorCode::Missing) {
            throw tok.error();
        }
        impl->memoryLimit = options.memoryLimitBytes;
        if (options.describeOnly)
            return Model(std::move(impl));
        // Before any weight is converted: the embeddings and one layer in fp32 must fit.
        checkMemory(memoryNeed(impl->config, 0), impl->memoryLimit,
                    folder.string() + ": running this model");
        impl->budget =
            options.weightBudgetBytes ? options.weightBudgetBytes : defaultWeightBudget();
        impl->weights =
            std::make_unique<WeightStore<float>>(impl->config, impl->checkpoint, impl->budget);
        return Model(std::move(impl));
    });
}

const ModelConfig& Model::config() const {
    return m_impl->config;
}
const std::filesystem::path& Model::folder() const {
    return m_impl->folder;
}
const Checkpoint& Model::checkpoint() const {
    return m_impl->root().checkpoint;
}
const Tokenizer* Model::tokenizer() const {
    return m_impl->root().tokenizer.get();
}

std::size_t Model::convertedWeightBytes() const {
    return m_impl->weights ? m_impl->weights->convertedBytes() : 0;
}

const WeightStore<float>& Model::weights() const {
    if (!m_impl->weights)
        throw Error(ErrorCode::InvalidArgument,
                    m_impl->folder.string() +
                        ": the model was loaded to be described only (LoadOptions::describeOnly); "
                        "load it again to run it");
    return *m_impl->weights;
}

AttentionProjections Model::attentionProjections(int layer) const {
    if (layer < 0 || layer >= m_impl->config.layers)
        throw Error(ErrorCode::InvalidArgument, "layer " + std::to_string(layer) +
                                                    " is outside the model's " +
                                                    std::to_string(m_impl->config.layers));
    const auto w = weights().layer(layer);
    return {Matrix(w->wq.view()),
            Matrix(w->wk.view()),
            Matrix(w->wv.view()),
            Matrix(w->wo.view()),
            w->bq,
            w->bk,
            w->bv,
            w->bo};
}

namespace {

void checkShape(const std::string& what, int layer, Eigen::Index rows, Eigen::Index cols,
                Eigen::Index wantRows, Eigen::Index wantCols) {
    if (rows != wantRows || cols != wantCols)
        throw Error(ErrorCode::InvalidArgument,
                    "rewritten attention, layer " + std::to_string(layer) + ": " + what + " is " +
                        std::to_string(rows) + "×" + std::to_string(cols) +
                        ", the config implies " + std::to_string(wantRows) + "×" +
                        std::to_string(wantCols));
}

} // namespace

Model Model::withAttention(ModelConfig config, std::vector<AttentionProjections> layers) const {
    const ModelConfig& c = config;
    if (static_cast<int>(layers.size()) != c.layers)
        throw Error(ErrorCode::InvalidArgument,
                    "rewritten attention: " + std::to_string(layers.size()) +
                        " layers given for a model of " + std::to_string(c.layers));
    const Eigen::Index D = c.width, q = Eigen::Index(c.heads) * c.headDim,
                       kv = Eigen::Index(c.kvHeads) * c.headDim;
    const bool ownsQ = ownsQuery(c), ownsV = ownsValue(c);
    const bool qkvBias = c.qkvBias, outBias = c.outputBias;
    for (int l = 0; l < c.layers; ++l) {
        const AttentionProjections& a = layers[static_cast<std::size_t>(l)];
        checkShape("W_q", l, a.wq.rows(), a.wq.cols(), ownsQ ? D : 0, ownsQ ? q : 0);
        checkShape("W_k", l, a.wk.rows(), a.wk.cols(), D, kv);
        checkShape("W_v", l, a.wv.rows(), a.wv.cols(), ownsV ? D : 0, ownsV ? kv : 0);
        checkShape("W_o", l, a.wo.rows(), a.wo.cols(), q, D);
        checkShape("b_q", l, 1, a.bq.size(), 1, ownsQ && qkvBias ? q : 0);
        checkShape("b_k", l, 1, a.bk.size(), 1, qkvBias ? kv : 0);
        checkShape("b_v", l, 1, a.bv.size(), 1, ownsV && qkvBias ? kv : 0);
        checkShape("b_o", l, 1, a.bo.size(), 1, outBias ? D : 0);
        for (const Matrix* m : {&a.wq, &a.wk, &a.wv, &a.wo})
            checkFinite(*m, "rewritten attention, layer " + std::to_string(l));
    }
    weights(); // a described-only model cannot be rewritten either
    const Impl& root = m_impl->root();
    auto impl = std::make_shared<Impl>();
    impl->base = m_impl->base ? m_impl->base : m_impl;
    impl->folder = root.folder;
    impl->configSource = root.configSource;
    impl->config = std::move(config);
    impl->budget = root.budget;
    impl->attention = std::make_shared<const AttentionOverride>(std::move(layers));
    impl->weights = std::make_unique<WeightStore<float>>(root.config, root.checkpoint, root.budget,
                                                         impl->attention);
    return Model(std::move(impl));
}

std::string Model::name() const {
    auto f = m_impl->folder;
    if (!f.has_filename())
        f = f.parent_path();
    return f.filename().string();
}

Matrix Model::forward(std::span<const TokenId> tokens, KvCache* cache, Capture* capture,
                      LogitRows rows) const {
    return runForward<float>(m_impl->config, weights(), tokens, cache, capture, nullptr, rows);
}

Matrix Model::forwardWithContext(std::span<const TokenId> tokens, KvCache& cache,
                                 const ContextAttention& context) const {
    if (cache.length < context.contextLength())
        throw Error(ErrorCode::InvalidArgument, "the cache holds " + std::to_string(cache.length) +
                                                    " tokens, fewer than the context's " +
                                                    std::to_string(context.contextLength()));
    return runForward<float>(m_impl->config, weights(), tokens, &cache, nullptr, &context);
}

MatrixT<double> Model::forwardF64(std::span<const TokenId> tokens) const {
    weights(); // a described-only model has no weights to widen
    std::call_once(m_impl->weights64Once, [&] {
        const Impl& root = m_impl->root();
        m_impl->weights64 = std::make_unique<WeightStore<double>>(
            root.config, root.checkpoint, m_impl->budget, m_impl->attention);
    });
    return runForward<double>(m_impl->config, *m_impl->weights64, tokens, nullptr, nullptr);
}

Result<Capture> Model::capture(std::string_view prompt, CaptureOptions options) const {
    return catchErrors([&]() -> Capture {
        const Tokenizer* tokenizer = this->tokenizer();
        if (!tokenizer)
            throw Error(ErrorCode::Missing,
                        m_impl->folder.string() +
                            ": the model folder has no tokenizer, so a text prompt "
                            "cannot be tokenized");
        if (prompt.empty())
            throw Error(ErrorCode::InvalidArgument, "empty prompt: there is nothing to capture");
        auto tokens = tokenizer->encode(prompt);
        validateTokens(m_impl->config, tokens, "prompt");
        Capture c = captureTokens(std::move(tokens), options).valueOrThrow();
        c.prompt = std::string(prompt);
        return c;
    });
}

Result<Capture> Model::captureTokens(std::vector<TokenId> tokens, CaptureOptions options) const {
    return catchErrors([&]() -> Capture {
        validateTokens(m_impl->config, tokens, "prompt");
        weights(); // a described-only model says so before any memory estimate
        checkMemory(memoryNeed(m_impl->config, static_cast<int>(tokens.size()), options.logits),
                    m_impl->root().memoryLimit,
                    "capturing " + std::to_string(tokens.size()) + " tokens with " +
                        m_impl->folder.string());
        Capture c;
        c.config = m_impl->config;
        c.modelName = name();
        c.tokens = std::move(tokens);
        for (TokenId id : c.tokens)
            c.tokenTexts.push_back(tokenizer() ? tokenizer()->tokenText(id) : std::to_string(id));
        ForwardControl control;
        control.cancel = options.cancel;
        control.progress = &options.progress;
        Matrix logits =
            runForward<float>(m_impl->config, weights(), c.tokens, nullptr, &c, nullptr,
                              options.logits ? LogitRows::All : LogitRows::None, control);
        if (options.logits)
            c.logits = std::move(logits);
        checkCaptureFinite(c, "the forward pass of " + m_impl->folder.string());
        return c;
    });
}

Result<std::vector<TokenId>> Model::generateGreedy(std::span<const TokenId> prompt,
                                                   int count) const {
    return catchErrors([&]() -> std::vector<TokenId> {
        validateTokens(m_impl->config, prompt, "prompt");
        if (count < 0)
            throw Error(ErrorCode::InvalidArgument,
                        "the number of tokens to generate must not be negative");
        const int limit = m_impl->config.contextLimit();
        if (static_cast<int>(prompt.size()) + count > limit)
            throw Error(ErrorCode::InvalidArgument, "prompt (" + std::to_string(prompt.size()) +
                                                        " tokens) plus " + std::to_string(count) +
                                                        " new tokens exceed the model's " +
                                                        std::to_string(limit) + " positions");
        KvCache cache;
        std::vector<TokenId> out;
        Matrix logits = forward(prompt, &cache, nullptr, LogitRows::Last);
        for (int i = 0; i < count; ++i) {
            // A NaN never wins maxCoeff honestly: say where the non-finite values start (the
            // capture checks every layer's tensors in order) instead of printing a token.
            if (!logits.allFinite()) {
                std::vector<TokenId> sequence(prompt.begin(), prompt.end());
                sequence.insert(sequence.end(), out.begin(), out.end());
                if (auto located = captureTokens(sequence);
                    !located.ok() && located.error().code() == ErrorCode::NotFinite)
                    throw Error(located.error().code(), "generating token " +
                                                            std::to_string(i + 1) + ": " +
                                                            located.message());
                checkFinite(logits, "the logits for generating token " + std::to_string(i + 1));
            }
            Eigen::Index best = 0;
            logits.row(logits.rows() - 1).maxCoeff(&best);
            const TokenId next = static_cast<TokenId>(best);
            out.push_back(next);
            if (i + 1 < count)
                logits =
                    forward(std::span<const TokenId>(&next, 1), &cache, nullptr, LogitRows::Last);
        }
        return out;
    });
}

} // namespace kvs
