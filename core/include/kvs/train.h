// SPDX-License-Identifier: MIT
// The project's CPU trainer: a decoder-only transformer with a hand-written backward pass in Eigen
// (every projection-sharing variant of ALGORITHMS.md §3, GQA/MQA, RoPE or learned positions,
// RMSNorm or LayerNorm, SwiGLU or GELU, tied or untied head), AdamW with warmup and cosine decay,
// resumable checkpoints, and export to a Hugging Face folder that kvs::Model loads.
#pragma once

#include "kvs/dtype.h"
#include "kvs/model_config.h"
#include "kvs/status.h"
#include "kvs/synthetic_model.h"
#include "kvs/tensor.h"
#include "kvs/tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvs {

class Checkpoint; // kvs/safetensors.h

// One trainable tensor inside the flat parameter vector, stored input-major (x · W) row-major.
struct ParamInfo {
    std::string name; // trainer name, e.g. "layers.3.wq", "embed", "final_norm"
    std::size_t offset = 0;
    int rows = 0, cols = 0; // vectors have rows == 1
    bool decay = false;     // AdamW weight decay applies (matrices only)
    std::size_t size() const { return static_cast<std::size_t>(rows) * cols; }
};

// The architecture the trainer supports, as a ModelConfig: family Llama, no biases (LayerNorm has
// a bias), positions rope|learned, norm rms|layer, mlp swiglu|gelu|gelu_tanh, any sharing, GQA.
// Throws kvs::Error(Unsupported) naming the field when the config asks for something else.
void checkTrainable(const ModelConfig& config);

// The recipe of the bundled model: 6 layers, width 192, 6 heads of 32, SwiGLU 512, context 256,
// RoPE, RMSNorm, tied. `vocab` is the character vocabulary size.
ModelConfig defaultTrainConfig(int vocab);

// Parameters and math, in float (training) or double (gradient checks).
template <class S> class TransformerT {
public:
    explicit TransformerT(const ModelConfig& config);

    const ModelConfig& config() const { return m_config; }
    const std::vector<ParamInfo>& layout() const { return m_layout; }
    const ParamInfo& param(const std::string& name) const; // throws Missing
    std::vector<S>& parameters() { return m_params; }
    const std::vector<S>& parameters() const { return m_params; }
    std::size_t parameterCount() const { return m_params.size(); }

    // GPT-2-style initialization: N(0, 0.02), output projections scaled by 1/sqrt(2·layers), norm
    // gains 1, a tied embedding N(0, 0.002). Deterministic for a seed.
    void initialize(std::uint64_t seed);

    // Mean cross-entropy in nats of `targets` given `inputs`, both `batch` rows of `length` tokens.
    // With `grad` (resized to the parameter count) the gradient of that mean is written there.
    // With `tokenLosses` every position's loss is written there (batch·length values).
    S loss(std::span<const TokenId> inputs, std::span<const TokenId> targets, int batch,
           std::vector<S>* grad = nullptr, std::vector<S>* tokenLosses = nullptr);

    // Logits (tokens × vocab) of one sequence.
    MatrixT<S> logits(std::span<const TokenId> tokens);

    struct Workspace;
    ~TransformerT();
    TransformerT(TransformerT&&) noexcept;
    TransformerT& operator=(TransformerT&&) noexcept;

private:
    MatrixT<S> run(std::span<const TokenId> inputs, int batch, bool keep);
    ModelConfig m_config;
    std::vector<ParamInfo> m_layout;
    std::vector<S> m_params;
    std::unique_ptr<Workspace> m_ws;
};

using Transformer = TransformerT<float>;

// The Hugging Face (Llama spelling) tensors of a trained model, in the loader's order.
std::vector<HfTensor> toHfTensors(const Transformer& model);

// Writes a LlamaForCausalLM folder (config.json with kvstudio_projection_sharing when not qkv,
// model.safetensors in `dtype`, tokenizer.json for `alphabet`). Only RoPE + RMSNorm + SwiGLU
// models have a Llama spelling; others fail with Unsupported.
Result<bool> exportHfModel(const Transformer& model, const std::string& alphabet, DType dtype,
                           const std::filesystem::path& folder,
                           Overwrite overwrite = Overwrite::OursOnly);

struct TrainOptions {
    int batch = 16;
    long long steps = 2000;
    int warmup = 100;
    double lr = 1e-3;
    double minLrRatio = 0.1; // cosine decays to lr · minLrRatio
    double beta1 = 0.9, beta2 = 0.95, adamEps = 1e-8;
    double weightDecay = 0.1;
    double clip = 1.0; // global gradient norm
    std::uint64_t seed = 1;
    int logEvery = 10;
    int evalEvery = 200;            // steps between validation estimates (0 = never)
    int evalTokens = 32768;         // tokens of the validation text used for those estimates
    double checkpointSeconds = 300; // wall time between checkpoints (0 = only at the end)
    // Fine-tuning: the parameters trained, by the last part of their name ("wq", "wk", "embed");
    // empty = all. The others keep their values (no update, no weight decay).
    std::vector<std::string> trainOnly;
    // > 0: every KV head's key projection is kept at rank keyRank — projected onto its best
    // rank-keyRank approximation (truncated SVD) at the start and after every step (thin keys).
    int keyRank = 0;
};

// Whether `o` trains the parameter named `name` ("layers.3.wk" is trained by "wk").
bool trains(const TrainOptions& o, const std::string& name);

// Replaces every KV head's block of every layer's key projection by its best rank-`rank`
// approximation (Eckart–Young, truncated SVD). Throws InvalidArgument for a rank outside 1…d.
void projectKeysToRank(Transformer& model, int rank);

// Sets `model`'s parameters from a Hugging Face checkpoint of the same architecture (the inverse
// of toHfTensors; half-precision tensors are widened). Throws kvs::Error naming the tensor on a
// shape mismatch.
void importHfTensors(Transformer& model, const Checkpoint& checkpoint);

// The learning rate of step `step` (0-based): linear warmup, then cosine to lr · minLrRatio.
double learningRate(const TrainOptions& o, long long step);

// AdamW state over the flat parameter vector.
struct AdamState {
    std::vector<float> m, v;
    long long step = 0;
};

// One optimizer step in place: global-norm clipping, then AdamW. Returns the norm before
// clipping.
double adamwStep(std::vector<float>& params, std::vector<float>& grad, AdamState& state,
                 const std::vector<ParamInfo>& layout, const TrainOptions& o, double lr);

// A training run: model, optimizer, data order, progress. Checkpoints hold all of it.
class Trainer {
public:
    Trainer(const ModelConfig& config, const TrainOptions& options);
    // Resumes from a checkpoint written by save(); the stored options are used except `steps`,
    // which the caller may extend (the cosine schedule follows the new total).
    static Result<Trainer> resume(const std::filesystem::path& checkpoint,
                                  std::optional<long long> steps = std::nullopt);
    // A fine-tune: starts from the model folder's weights instead of a random initialization
    // (its config must be trainable and, with options.keyRank, declare that rank).
    static Result<Trainer> fromModel(const std::filesystem::path& modelFolder,
                                     const ModelConfig& config, const TrainOptions& options);

    void setData(std::vector<TokenId> train, std::vector<TokenId> validation);
    // One step on a random batch; returns the training loss.
    double step();
    long long stepsDone() const { return m_adam.step; }
    const TrainOptions& options() const { return m_options; }
    Transformer& model() { return m_model; }
    const Transformer& model() const { return m_model; }
    double elapsedSeconds() const { return m_elapsed; }
    long long tokensSeen() const { return m_tokens; }

    // Mean loss (nats/token) on `tokens` (windows of the context with half-context overlap, each
    // token scored once; first `maxTokens` tokens, 0 = all).
    double evaluate(std::span<const TokenId> tokens, std::size_t maxTokens = 0);

    // Atomic; model, Adam moments, step, RNG, options, elapsed time. Replaces only a checkpoint
    // (kvs/output_writer.h) unless forced.
    Result<bool> save(const std::filesystem::path& checkpoint,
                      Overwrite overwrite = Overwrite::OursOnly) const;

    // Runs to options().steps, printing a progress line every logEvery steps to `log`,
    // checkpointing to `checkpoint` (if not empty) every checkpointSeconds and at the end.
    // `log` receives lines without a trailing newline.
    void run(const std::function<void(const std::string&)>& log,
             const std::filesystem::path& checkpoint, Overwrite overwrite = Overwrite::OursOnly);

    double lastValidationLoss() const { return m_lastVal; }
    // The character vocabulary the token ids refer to (kept in checkpoints for the export).
    void setAlphabet(std::string alphabet) { m_alphabet = std::move(alphabet); }
    const std::string& alphabet() const { return m_alphabet; }

private:
    ModelConfig m_config;
    TrainOptions m_options;
    Transformer m_model;
    AdamState m_adam;
    std::string m_rngState; // std::mt19937_64 in text form
    std::vector<TokenId> m_train, m_val;
    std::vector<float> m_grad;
    double m_elapsed = 0;
    long long m_tokens = 0;
    double m_lastVal = 0;
    std::string m_alphabet;
};

} // namespace kvs
