// SPDX-License-Identifier: MIT
// Loading a model folder (config, checkpoint, tokenizer) and the public forward/capture/generate
// API.
#include "kvs/model.h"

#include "forward.h"
#include "weights.h"

#include "kvs/finite.h"

#include <algorithm>
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

} // namespace

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

AttentionProjections Model::attentionProjections(int layer) const {
    if (layer < 0 || layer >= m_impl->config.layers)
        throw Error(ErrorCode::InvalidArgument, "layer " + std::to_string(layer) +
                                                    " is outside the model's " +
                                                    std::to_string(m_impl->config.layers));
    const auto w = m_impl->weights->layer(layer);
    return {w->wq, w->wk, w->wv, w->wo, w->bq, w->bk, w->bv, w->bo};
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
    return runForward<float>(m_impl->config, *m_impl->weights, tokens, cache, capture, nullptr,
                             rows);
}

Matrix Model::forwardWithContext(std::span<const TokenId> tokens, KvCache& cache,
                                 const ContextAttention& context) const {
    if (cache.length < context.contextLength())
        throw Error(ErrorCode::InvalidArgument, "the cache holds " + std::to_string(cache.length) +
                                                    " tokens, fewer than the context's " +
                                                    std::to_string(context.contextLength()));
    return runForward<float>(m_impl->config, *m_impl->weights, tokens, &cache, nullptr, &context);
}

MatrixT<double> Model::forwardF64(std::span<const TokenId> tokens) const {
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
        Capture c;
        c.config = m_impl->config;
        c.modelName = name();
        c.tokens = std::move(tokens);
        for (TokenId id : c.tokens)
            c.tokenTexts.push_back(tokenizer() ? tokenizer()->tokenText(id) : std::to_string(id));
        Matrix logits =
            forward(c.tokens, nullptr, &c, options.logits ? LogitRows::All : LogitRows::None);
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
