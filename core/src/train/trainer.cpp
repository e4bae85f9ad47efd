// SPDX-License-Identifier: MIT
// The training loop: AdamW with warmup and cosine decay, global-norm clipping, random windows of
// the training text, validation estimates, resumable checkpoints, and the Hugging Face export.
#include "kvs/file_util.h"
#include "kvs/safetensors.h"
#include "kvs/train.h"

#include "../weights.h"

#include <Eigen/SVD>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <sstream>

namespace kvs {
namespace {

using nlohmann::json;

json archJson(const ModelConfig& c) {
    return {{"layers", c.layers},
            {"heads", c.heads},
            {"kv_heads", c.kvHeads},
            {"width", c.width},
            {"head_dim", c.headDim},
            {"intermediate", c.intermediate},
            {"vocab", c.vocab},
            {"context", c.maxPositions},
            {"positions", c.positions == PositionKind::Rope ? "rope" : "learned"},
            {"rope_theta", c.ropeTheta},
            {"norm", c.norm == NormKind::RmsNorm ? "rms" : "layer"},
            {"norm_eps", c.normEps},
            {"mlp", toString(c.mlp)},
            {"tied", c.tiedEmbeddings},
            {"sharing", toString(c.sharing)},
            {"key_rank", c.keyRank}};
}

ModelConfig archFromJson(const json& j) {
    ModelConfig c = defaultTrainConfig(j.at("vocab").get<int>());
    c.layers = j.at("layers");
    c.heads = j.at("heads");
    c.kvHeads = j.at("kv_heads");
    c.width = j.at("width");
    c.headDim = j.at("head_dim");
    c.intermediate = j.at("intermediate");
    c.maxPositions = j.at("context");
    c.positions = j.at("positions") == "rope" ? PositionKind::Rope : PositionKind::Learned;
    c.ropeTheta = j.at("rope_theta");
    c.norm = j.at("norm") == "rms" ? NormKind::RmsNorm : NormKind::LayerNorm;
    c.normEps = j.at("norm_eps");
    const std::string mlp = j.at("mlp");
    c.mlp = mlp == toString(MlpKind::SwiGlu)     ? MlpKind::SwiGlu
            : mlp == toString(MlpKind::GeluTanh) ? MlpKind::GeluTanh
                                                 : MlpKind::Gelu;
    c.tiedEmbeddings = j.at("tied");
    const std::string s = j.at("sharing");
    for (auto k : {ProjectionSharing::Qkv, ProjectionSharing::KEqV, ProjectionSharing::QEqK,
                   ProjectionSharing::QEqKEqV})
        if (toString(k) == s)
            c.sharing = k;
    return c;
}

json optionsJson(const TrainOptions& o) {
    return {{"batch", o.batch},
            {"steps", o.steps},
            {"warmup", o.warmup},
            {"lr", o.lr},
            {"min_lr_ratio", o.minLrRatio},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"adam_eps", o.adamEps},
            {"weight_decay", o.weightDecay},
            {"clip", o.clip},
            {"seed", o.seed},
            {"log_every", o.logEvery},
            {"eval_every", o.evalEvery},
            {"eval_tokens", o.evalTokens},
            {"checkpoint_seconds", o.checkpointSeconds},
            {"train_only", o.trainOnly},
            {"key_rank", o.keyRank}};
}

TrainOptions optionsFromJson(const json& j) {
    TrainOptions o;
    o.batch = j.at("batch");
    o.steps = j.at("steps");
    o.warmup = j.at("warmup");
    o.lr = j.at("lr");
    o.minLrRatio = j.at("min_lr_ratio");
    o.beta1 = j.at("beta1");
    o.beta2 = j.at("beta2");
    o.adamEps = j.at("adam_eps");
    o.weightDecay = j.at("weight_decay");
    o.clip = j.at("clip");
    o.seed = j.at("seed");
    o.logEvery = j.at("log_every");
    o.evalEvery = j.at("eval_every");
    o.evalTokens = j.at("eval_tokens");
    o.checkpointSeconds = j.at("checkpoint_seconds");
    // Absent in checkpoints written before fine-tuning existed.
    o.trainOnly = j.value("train_only", std::vector<std::string>{});
    o.keyRank = j.value("key_rank", 0);
    return o;
}

std::string duration(double seconds) {
    const long long s = std::llround(std::max(0.0, seconds));
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s / 60) % 60);
    else
        std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    return buf;
}

std::span<const std::byte> asBytes(const std::vector<float>& v) {
    return {reinterpret_cast<const std::byte*>(v.data()), v.size() * sizeof(float)};
}

std::vector<float> readFloats(const SafetensorsFile& f, const std::string& name,
                              std::size_t expected) {
    const auto& info = f.info(name);
    if (info.dtype != DType::F32 || static_cast<std::size_t>(info.numel()) != expected)
        throw Error(ErrorCode::Format, f.path().string() + ": tensor '" + name + "' has " +
                                           std::to_string(info.numel()) + " values, expected " +
                                           std::to_string(expected) + " F32");
    std::vector<float> out(expected);
    const auto bytes = f.bytes(name);
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
}

} // namespace

bool trains(const TrainOptions& o, const std::string& name) {
    if (o.trainOnly.empty())
        return true;
    const std::string last = name.substr(name.rfind('.') + 1); // npos + 1 = 0: the whole name
    return std::find(o.trainOnly.begin(), o.trainOnly.end(), last) != o.trainOnly.end();
}

void projectKeysToRank(Transformer& model, int rank) {
    const ModelConfig& c = model.config();
    if (rank < 1 || rank > c.headDim)
        throw Error(ErrorCode::InvalidArgument, "key rank " + std::to_string(rank) +
                                                    " is outside 1…" + std::to_string(c.headDim) +
                                                    " (the head dim)");
    if (c.sharing != ProjectionSharing::Qkv)
        throw Error(ErrorCode::Unsupported,
                    "thin keys need the model's own key projection; this one shares it (" +
                        toString(c.sharing) + ")");
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    for (int l = 0; l < c.layers; ++l) {
        const ParamInfo& p = model.param("layers." + std::to_string(l) + ".wk");
        Eigen::Map<RowMajor> wk(model.parameters().data() + p.offset, p.rows, p.cols);
        for (int h = 0; h < c.kvHeads; ++h) {
            auto block = wk.middleCols(static_cast<Eigen::Index>(h) * c.headDim, c.headDim);
            const Eigen::MatrixXd b = block.cast<double>();
            Eigen::JacobiSVD<Eigen::MatrixXd> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
            const Eigen::MatrixXd kept = svd.matrixU().leftCols(rank) *
                                         svd.singularValues().head(rank).asDiagonal() *
                                         svd.matrixV().leftCols(rank).transpose();
            block = kept.cast<float>();
        }
    }
}

double learningRate(const TrainOptions& o, long long step) {
    if (step < o.warmup)
        return o.lr * static_cast<double>(step + 1) / o.warmup;
    const double span = std::max<long long>(1, o.steps - o.warmup);
    const double progress = std::clamp((step - o.warmup) / span, 0.0, 1.0);
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    return o.lr * (o.minLrRatio + (1.0 - o.minLrRatio) * cosine);
}

double adamwStep(std::vector<float>& params, std::vector<float>& grad, AdamState& s,
                 const std::vector<ParamInfo>& layout, const TrainOptions& o, double lr) {
    const std::size_t n = params.size();
    if (s.m.size() != n) {
        s.m.assign(n, 0.0f);
        s.v.assign(n, 0.0f);
    }
    double sq = 0;
    for (const auto& p : layout) {
        if (!trains(o, p.name))
            continue; // a frozen parameter's gradient does not count towards clipping
        const std::size_t begin = p.offset, end = p.offset + p.size();
#pragma omp parallel for reduction(+ : sq) schedule(static) if (end - begin >= (1u << 16))
        for (std::size_t i = begin; i < end; ++i)
            sq += static_cast<double>(grad[i]) * grad[i];
    }
    const double norm = std::sqrt(sq);
    const float clipScale = o.clip > 0 && norm > o.clip ? static_cast<float>(o.clip / norm) : 1.0f;
    ++s.step;
    const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(s.step));
    const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(s.step));
    const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
    const float stepSize = static_cast<float>(lr / bc1);
    const float invSqrtBc2 = static_cast<float>(1.0 / std::sqrt(bc2));
    const float eps = static_cast<float>(o.adamEps);
    for (const auto& p : layout) {
        if (!trains(o, p.name))
            continue;
        const float decay = p.decay ? static_cast<float>(lr * o.weightDecay) : 0.0f;
        const std::ptrdiff_t begin = static_cast<std::ptrdiff_t>(p.offset);
        const std::ptrdiff_t end = begin + static_cast<std::ptrdiff_t>(p.size());
#pragma omp parallel for schedule(static) if (end - begin >= (1 << 16))
        for (std::ptrdiff_t i = begin; i < end; ++i) {
            const float g = grad[static_cast<std::size_t>(i)] * clipScale;
            float& m = s.m[static_cast<std::size_t>(i)];
            float& v = s.v[static_cast<std::size_t>(i)];
            float& w = params[static_cast<std::size_t>(i)];
            m = b1 * m + (1.0f - b1) * g;
            v = b2 * v + (1.0f - b2) * g * g;
            w -= decay * w;
            w -= stepSize * m / (std::sqrt(v) * invSqrtBc2 + eps);
        }
    }
    return norm;
}

Trainer::Trainer(const ModelConfig& config, const TrainOptions& options)
    : m_config(config), m_options(options), m_model(config) {
    if (options.batch <= 0 || options.steps <= 0 || options.warmup < 0 || options.lr <= 0)
        throw Error(ErrorCode::InvalidArgument,
                    "trainer: batch, steps and learning rate must be positive");
    m_model.initialize(options.seed);
    std::mt19937_64 rng(options.seed ^ 0x9E3779B97F4A7C15ull);
    std::ostringstream ss;
    ss << rng;
    m_rngState = ss.str();
}

void Trainer::setData(std::vector<TokenId> train, std::vector<TokenId> validation) {
    const auto T = static_cast<std::size_t>(m_config.maxPositions);
    if (train.size() < T + 2)
        throw Error(ErrorCode::InvalidArgument,
                    "trainer: the training text has " + std::to_string(train.size()) +
                        " tokens, fewer than one context of " + std::to_string(T));
    m_train = std::move(train);
    m_val = std::move(validation);
}

double Trainer::step() {
    if (m_train.empty())
        throw Error(ErrorCode::InvalidArgument, "trainer: no training data (call setData)");
    const int B = m_options.batch, T = m_config.maxPositions;
    std::mt19937_64 rng;
    {
        std::istringstream ss(m_rngState);
        ss >> rng;
    }
    std::uniform_int_distribution<std::size_t> start(0, m_train.size() -
                                                            static_cast<std::size_t>(T) - 1);
    std::vector<TokenId> in(static_cast<std::size_t>(B) * T), out(in.size());
    for (int b = 0; b < B; ++b) {
        const std::size_t s = start(rng);
        for (int t = 0; t < T; ++t) {
            in[static_cast<std::size_t>(b) * T + t] = m_train[s + t];
            out[static_cast<std::size_t>(b) * T + t] = m_train[s + t + 1];
        }
    }
    {
        std::ostringstream ss;
        ss << rng;
        m_rngState = ss.str();
    }
    const double loss = m_model.loss(in, out, B, &m_grad);
    if (!std::isfinite(loss))
        throw Error(ErrorCode::Internal, "trainer: the loss became " + std::to_string(loss) +
                                             " at step " + std::to_string(m_adam.step));
    adamwStep(m_model.parameters(), m_grad, m_adam, m_model.layout(), m_options,
              learningRate(m_options, m_adam.step));
    if (m_options.keyRank > 0)
        projectKeysToRank(m_model, m_options.keyRank);
    m_tokens += static_cast<long long>(in.size());
    return loss;
}

double Trainer::evaluate(std::span<const TokenId> tokens, std::size_t maxTokens) {
    if (maxTokens && tokens.size() > maxTokens)
        tokens = tokens.first(maxTokens);
    if (tokens.size() < 2)
        throw Error(ErrorCode::InvalidArgument, "trainer: nothing to evaluate");
    const std::size_t T = static_cast<std::size_t>(m_config.maxPositions);
    const std::size_t targets = tokens.size() - 1;
    struct Window {
        std::size_t start, length, firstScored;
    };
    std::vector<Window> windows;
    for (std::size_t s = 0, covered = 0; covered < targets; s += T / 2) {
        const std::size_t len = std::min(T, targets - s);
        windows.push_back({s, len, covered - s});
        covered = s + len;
    }
    double total = 0;
    std::size_t counted = 0;
    const std::size_t group = static_cast<std::size_t>(std::max(1, m_options.batch));
    for (std::size_t w = 0; w < windows.size();) {
        std::size_t n = 1;
        while (n < group && w + n < windows.size() && windows[w + n].length == windows[w].length)
            ++n;
        const std::size_t len = windows[w].length;
        std::vector<TokenId> in(n * len), out(n * len);
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t t = 0; t < len; ++t) {
                in[b * len + t] = tokens[windows[w + b].start + t];
                out[b * len + t] = tokens[windows[w + b].start + t + 1];
            }
        std::vector<float> losses;
        m_model.loss(in, out, static_cast<int>(n), nullptr, &losses);
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t t = windows[w + b].firstScored; t < len; ++t) {
                total += losses[b * len + t];
                ++counted;
            }
        w += n;
    }
    return total / static_cast<double>(counted);
}

Result<bool> Trainer::save(const std::filesystem::path& path, Overwrite overwrite) const {
    return catchErrors([&]() -> bool {
        if (path.has_parent_path())
            std::filesystem::create_directories(path.parent_path());
        SafetensorsWriter w;
        const auto n = static_cast<std::int64_t>(m_model.parameterCount());
        w.add("params", DType::F32, {n}, asBytes(m_model.parameters()));
        const std::vector<float> zeros(m_adam.m.empty() ? m_model.parameterCount() : 0, 0.0f);
        w.add("adam_m", DType::F32, {n}, asBytes(m_adam.m.empty() ? zeros : m_adam.m));
        w.add("adam_v", DType::F32, {n}, asBytes(m_adam.v.empty() ? zeros : m_adam.v));
        w.setMetadata("format", "kvstudio-train");
        w.setMetadata("arch", archJson(m_config).dump());
        w.setMetadata("options", optionsJson(m_options).dump());
        w.setMetadata("step", std::to_string(m_adam.step));
        w.setMetadata("rng", m_rngState);
        w.setMetadata("elapsed_seconds", std::to_string(m_elapsed));
        w.setMetadata("tokens", std::to_string(m_tokens));
        w.setMetadata("alphabet", m_alphabet);
        w.write(path, "train-checkpoint", overwrite).valueOrThrow();
        return true;
    });
}

Result<Trainer> Trainer::resume(const std::filesystem::path& path, std::optional<long long> steps) {
    return catchErrors([&]() -> Trainer {
        auto f = SafetensorsFile::open(path).valueOrThrow();
        const auto& meta = f.metadata();
        auto get = [&](const std::string& key) {
            auto it = meta.find(key);
            if (it == meta.end())
                throw Error(ErrorCode::Format, path.string() + ": not a training checkpoint (no '" +
                                                   key + "' in the metadata)");
            return it->second;
        };
        if (get("format") != "kvstudio-train")
            throw Error(ErrorCode::Format, path.string() + ": not a training checkpoint");
        ModelConfig config;
        TrainOptions options;
        try {
            config = archFromJson(json::parse(get("arch")));
            options = optionsFromJson(json::parse(get("options")));
        } catch (const json::exception& e) {
            throw Error(ErrorCode::Format,
                        path.string() + ": malformed training metadata (" + e.what() + ")");
        }
        if (steps)
            options.steps = *steps;
        Trainer t(config, options);
        const std::size_t n = t.m_model.parameterCount();
        t.m_model.parameters() = readFloats(f, "params", n);
        t.m_adam.m = readFloats(f, "adam_m", n);
        t.m_adam.v = readFloats(f, "adam_v", n);
        t.m_adam.step = std::stoll(get("step"));
        t.m_rngState = get("rng");
        t.m_elapsed = std::stod(get("elapsed_seconds"));
        t.m_tokens = std::stoll(get("tokens"));
        t.m_alphabet = get("alphabet");
        return t;
    });
}

void Trainer::run(const std::function<void(const std::string&)>& log,
                  const std::filesystem::path& checkpoint, Overwrite overwrite) {
    // A refused checkpoint fails now, not after the first checkpoint interval of training.
    if (!checkpoint.empty())
        requireWritable(checkpoint, "train-checkpoint", overwrite);
    using Clock = std::chrono::steady_clock;
    auto lastCheckpoint = Clock::now();
    auto windowStart = Clock::now();
    long long windowSteps = 0;
    double lossSum = 0;
    int lossCount = 0;
    while (m_adam.step < m_options.steps) {
        const auto t0 = Clock::now();
        const double loss = step();
        const auto t1 = Clock::now();
        m_elapsed += std::chrono::duration<double>(t1 - t0).count();
        ++windowSteps;
        lossSum += loss;
        ++lossCount;
        const long long s = m_adam.step;
        std::string valText;
        if (m_options.evalEvery > 0 && !m_val.empty() &&
            (s % m_options.evalEvery == 0 || s == m_options.steps)) {
            const auto e0 = Clock::now();
            m_lastVal = evaluate(m_val, static_cast<std::size_t>(m_options.evalTokens));
            m_elapsed += std::chrono::duration<double>(Clock::now() - e0).count();
            char buf[64];
            std::snprintf(buf, sizeof buf, " | val %.4f", m_lastVal);
            valText = buf;
        }
        if (s % std::max(1, m_options.logEvery) == 0 || s == m_options.steps || !valText.empty()) {
            const double secs = std::chrono::duration<double>(Clock::now() - windowStart).count();
            const double perStep = secs / static_cast<double>(std::max<long long>(1, windowSteps));
            const double tokPerSec =
                static_cast<double>(m_options.batch) * m_config.maxPositions / perStep;
            char buf[256];
            std::snprintf(buf, sizeof buf,
                          "step %lld/%lld | loss %.4f%s | lr %.2e | %.0f tok/s | %s elapsed | "
                          "%s left",
                          s, m_options.steps, lossSum / lossCount, valText.c_str(),
                          learningRate(m_options, s - 1), tokPerSec, duration(m_elapsed).c_str(),
                          duration(perStep * static_cast<double>(m_options.steps - s)).c_str());
            log(buf);
            windowStart = Clock::now();
            windowSteps = 0;
            lossSum = 0;
            lossCount = 0;
        }
        if (!checkpoint.empty() && m_options.checkpointSeconds > 0 &&
            std::chrono::duration<double>(Clock::now() - lastCheckpoint).count() >=
                m_options.checkpointSeconds) {
            save(checkpoint, overwrite).valueOrThrow();
            lastCheckpoint = Clock::now();
            log("checkpoint " + checkpoint.string() + " at step " + std::to_string(s));
        }
    }
    if (!checkpoint.empty())
        save(checkpoint, overwrite).valueOrThrow();
}

namespace {

// A Hugging Face Llama tensor name fragment and the trainer's parameter it holds (per layer, or
// global). The first match wins: the final norm's "norm.weight" is also part of the layer norms'
// names, so it comes last.
struct ExportName {
    const char* hfFragment;
    const char* parameter;
    bool perLayer;
    bool transposed; // the trainer stores the projection as in × out, Hugging Face as out × in
};
constexpr std::array<ExportName, 10> kExportNames{{
    {"input_layernorm", "norm1", true, false},
    {"post_attention_layernorm", "norm2", true, false},
    {"q_proj", "wq", true, true},
    {"k_proj", "wk", true, true},
    {"v_proj", "wv", true, true},
    {"o_proj", "wo", true, true},
    {"gate_proj", "w_gate", true, true},
    {"up_proj", "w_up", true, true},
    {"down_proj", "w_down", true, true},
    {"norm.weight", "final_norm", false, false},
}};

const ExportName& exportName(const std::string& hfName) {
    for (const ExportName& e : kExportNames)
        if (hfName.find(e.hfFragment) != std::string::npos)
            return e;
    throw Error(ErrorCode::Internal, "export: no trainer parameter for '" + hfName + "'");
}

// "model.layers.3.self_attn.q_proj.weight" -> "layers.3.wq".
std::string trainerParameter(const std::string& hfName) {
    const ExportName& e = exportName(hfName);
    if (!e.perLayer)
        return e.parameter;
    const auto a = hfName.find("layers.") + 7;
    return "layers." + hfName.substr(a, hfName.find('.', a) - a) + "." + e.parameter;
}

bool transposedInExport(const std::string& hfName) {
    return exportName(hfName).transposed;
}

} // namespace

std::vector<HfTensor> toHfTensors(const Transformer& model) {
    const auto& c = model.config();
    if (c.positions != PositionKind::Rope || c.norm != NormKind::RmsNorm ||
        c.mlp != MlpKind::SwiGlu)
        throw Error(ErrorCode::Unsupported,
                    "export: only RoPE + RMSNorm + SwiGLU models have a LlamaForCausalLM "
                    "spelling (this one has " +
                        std::string(c.positions == PositionKind::Rope ? "rope" : "learned") +
                        " positions, " + toString(c.norm) + ", " + toString(c.mlp) + ")");
    const auto& P = model.parameters();
    auto data = [&](const std::string& name, bool transpose) {
        const auto& p = model.param(name);
        std::vector<float> out(p.size());
        for (int r = 0; r < p.rows; ++r)
            for (int col = 0; col < p.cols; ++col) {
                const float v = P[p.offset + static_cast<std::size_t>(r) * p.cols + col];
                if (transpose)
                    out[static_cast<std::size_t>(col) * p.rows + r] = v;
                else
                    out[static_cast<std::size_t>(r) * p.cols + col] = v;
            }
        return out;
    };
    Checkpoint none;
    const TensorNames names(c, none);
    std::vector<HfTensor> out;
    for (const auto& e : names.expected()) {
        const std::string& n = e.name;
        std::vector<float> d;
        if (n.find("embed_tokens") != std::string::npos)
            d = data("embed", false);
        else if (n == names.lmHead())
            d = data("lm_head", false);
        else
            d = data(trainerParameter(n), transposedInExport(n));
        out.push_back({n, e.shape, std::move(d)});
    }
    return out;
}

void importHfTensors(Transformer& model, const Checkpoint& checkpoint) {
    const ModelConfig& c = model.config();
    const TensorNames names(c, checkpoint);
    auto& P = model.parameters();
    for (const auto& e : names.expected()) {
        const std::string& n = e.name;
        if (!checkpoint.contains(n)) {
            if (n == names.lmHead() && c.tiedEmbeddings)
                continue;
            throw Error(ErrorCode::Missing, checkpoint.describe() + ": no tensor '" + n + "'");
        }
        const bool embed = n.find("embed_tokens") != std::string::npos;
        const std::string trainerName = embed                 ? "embed"
                                        : n == names.lmHead() ? "lm_head"
                                                              : trainerParameter(n);
        const bool transpose = !embed && n != names.lmHead() && transposedInExport(n);
        const ParamInfo& p = model.param(trainerName);
        const TensorInfo& info = checkpoint.info(n);
        if (static_cast<std::size_t>(info.numel()) != p.size())
            throw Error(ErrorCode::Format, checkpoint.describe() + ": tensor '" + n + "' has " +
                                               std::to_string(info.numel()) + " values, the " +
                                               "trainer's '" + trainerName + "' " +
                                               std::to_string(p.size()));
        std::vector<float> data(p.size());
        convertToFloat(info.dtype, checkpoint.bytes(n).data(), data.size(), data.data());
        // Stored out × in (p.cols × p.rows) when transposed, else as the trainer keeps it.
        for (int r = 0; r < p.rows; ++r)
            for (int col = 0; col < p.cols; ++col)
                P[p.offset + static_cast<std::size_t>(r) * p.cols + col] =
                    transpose ? data[static_cast<std::size_t>(col) * p.rows + r]
                              : data[static_cast<std::size_t>(r) * p.cols + col];
    }
}

Result<Trainer> Trainer::fromModel(const std::filesystem::path& modelFolder,
                                   const ModelConfig& config, const TrainOptions& options) {
    return catchErrors([&]() -> Trainer {
        checkTrainable(config);
        Trainer t(config, options);
        const Checkpoint checkpoint = Checkpoint::open(modelFolder).valueOrThrow();
        importHfTensors(t.m_model, checkpoint);
        if (options.keyRank > 0)
            projectKeysToRank(t.m_model, options.keyRank);
        return t;
    });
}

Result<bool> exportHfModel(const Transformer& model, const std::string& alphabet, DType dtype,
                           const std::filesystem::path& folder, Overwrite overwrite) {
    return catchErrors([&]() -> bool {
        const auto tensors = toHfTensors(model);
        ModelConfig c = model.config();
        c.bosTokenId.reset();
        c.eosTokenId.reset();
        writeModelFolder(c, tensors, dtype, 1, alphabet, folder, overwrite).valueOrThrow();
        return true;
    });
}

} // namespace kvs
