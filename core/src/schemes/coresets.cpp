// SPDX-License-Identifier: MIT
// Discrepancy coresets (ALGORITHMS.md §1a, §1b): halving by a self-balancing walk over the
// exponential-kernel Gram matrix, as a one-shot cascade after prefill and as streaming
// merge-and-reduce.
#include "registry_parts.h"
#include "scheme_util.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace kvs::schemes {
namespace {

struct Weighted {
    std::int32_t position;
    double weight; // linear weight w; stored as the log-bias ln w
};

struct WalkParams {
    double gamma = 4.0;
    double tau = 1.0;
    double c = 0.025;
    int block = 128;
    // Query-sampled kernel (ours): attention probabilities of sample queries over the context,
    // queries × n. Null: the key kernel exp(τ<k̄_i, k̄_j>/√d) of ALGORITHMS.md §1a.
    const Eigen::MatrixXd* probes = nullptr;
};

// One halving of `tokens` (consecutive in position): returns half of them with doubled weights.
// An odd last token is kept as it is.
//
// The walk visits the tokens in order and reads, at token i, only Σ_{j<i} G(i, j)·σ_j: it needs
// the Gram matrix's lower triangle, one column at a time. The columns are made in blocks of
// kColumns (a product of the block's tokens with the tokens from the block on), so the work is
// half the square and the scratch is t × kColumns instead of t × t (no page faults of a fresh
// multi-megabyte matrix per round, which cost more than the products).
std::vector<Weighted> halveBlock(const HeadInput& h, const std::vector<Weighted>& tokens,
                                 const WalkParams& wp, std::mt19937_64& rng) {
    const int t = static_cast<int>(tokens.size()) / 2 * 2;
    std::vector<Weighted> out;
    if (t < 2) {
        out = tokens;
        return out;
    }
    const int d = h.headDim();
    constexpr int kColumns = 64;
    Eigen::MatrixXd v(t, h.values.cols());
    Eigen::VectorXd w(t);
    for (int i = 0; i < t; ++i) {
        w(i) = tokens[static_cast<std::size_t>(i)].weight;
        v.row(i) = h.values.row(tokens[static_cast<std::size_t>(i)].position).cast<double>();
    }
    const double vmax = std::max(1e-300, v.rowwise().norm().maxCoeff());
    v /= vmax;
    // G = K ∘ V: the kernel part K and the value part V(i, j) = (<v_i, v_j> + c)·ω_i ω_j (the
    // weighted numerator and denominator). Query-sampled kernel: K = ΦᵀΦ, the expectation over
    // sample queries of p_q(i) p_q(j) (the error of exactly these queries' outputs); the key
    // kernel: exp(τ·s·<k̄_i, k̄_j> − max_i τ·s·‖k̄_i‖²), where Cauchy-Schwarz bounds every entry by
    // the largest diagonal one, so exp() stays finite for keys of any norm.
    Eigen::MatrixXd phi; // probes × t
    Eigen::MatrixXd k;   // t × d, centred
    Eigen::VectorXd kernelDiagonal(t);
    double keyShift = 0;
    const double keyScale = wp.tau * h.attentionScale();
    if (wp.probes) {
        phi.resize(wp.probes->rows(), t);
        for (int i = 0; i < t; ++i)
            phi.col(i) = wp.probes->col(tokens[static_cast<std::size_t>(i)].position);
        kernelDiagonal = phi.colwise().squaredNorm().transpose();
    } else {
        k.resize(t, d);
        for (int i = 0; i < t; ++i)
            k.row(i) = h.keys.row(tokens[static_cast<std::size_t>(i)].position).cast<double>();
        k.rowwise() -= k.colwise().mean();
        const Eigen::VectorXd selfScores = k.rowwise().squaredNorm() * keyScale;
        keyShift = selfScores.maxCoeff();
        kernelDiagonal = (selfScores.array() - keyShift).exp().matrix();
    }
    // Normalized so that the largest self-term is 1: the walk's γ has a fixed meaning.
    const Eigen::VectorXd valueDiagonal =
        ((v.rowwise().squaredNorm().array() + wp.c) * w.array().square()).matrix();
    const double gmax = kernelDiagonal.cwiseProduct(valueDiagonal).maxCoeff();
    const double norm = gmax > 0 ? gmax : 1.0;

    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<int> sign(static_cast<std::size_t>(t), 0);
    int plus = 0, minus = 0;
    const int half = t / 2;
    // Token i's sign from r_i = Σ_{j<i} G(i, j)·σ_j (read only while both classes are open).
    const auto decide = [&](int i, const auto& signedSumAt) {
        int sgn;
        if (plus == half)
            sgn = -1;
        else if (minus == half)
            sgn = +1;
        else if (i == 0)
            sgn = +1;
        else {
            const double pPlus = std::clamp(0.5 - wp.gamma * signedSumAt(), 0.0, 1.0);
            sgn = unit(rng) < pPlus ? +1 : -1;
        }
        sign[static_cast<std::size_t>(i)] = sgn;
        (sgn > 0 ? plus : minus)++;
        return sgn;
    };
    const Eigen::Index probeCount = phi.rows(), valueDim = v.cols();
    if (wp.probes && 4.0 * static_cast<double>(probeCount * valueDim) <
                         static_cast<double>(t) * static_cast<double>(probeCount + valueDim)) {
        // The query-sampled kernel has low rank: G(i, j) = ω_i ω_j (φ_iᵀφ_j)(v_iᵀv_j + c), so
        // r_i = ω_i φ_iᵀ (M v_i + c·s) with M = Σ_{j<i} σ_j ω_j φ_j v_jᵀ and s = Σ_{j<i} σ_j ω_j
        // φ_j kept as running sums: O(t·probes·d) instead of the Gram matrix's O(t²·(probes + d)).
        Eigen::MatrixXd m = Eigen::MatrixXd::Zero(probeCount, valueDim);
        Eigen::VectorXd sum = Eigen::VectorXd::Zero(probeCount);
        Eigen::VectorXd mv(probeCount);
        for (int i = 0; i < t; ++i) {
            const auto phiI = phi.col(i);
            const auto vI = v.row(i).transpose();
            const int sgn = decide(i, [&] {
                mv.noalias() = m * vI;
                mv += wp.c * sum;
                return w(i) * phiI.dot(mv) / norm;
            });
            if (plus == half || minus == half)
                break; // the rest is forced
            const double step = sgn * w(i);
            m.noalias() += (step * phiI) * vI.transpose();
            sum += step * phiI;
        }
        for (int i = 0; i < t; ++i)
            if (sign[static_cast<std::size_t>(i)] == 0)
                decide(i, [] { return 0.0; });
    } else {
        Eigen::VectorXd signedSum = Eigen::VectorXd::Zero(t); // r = G σ, rows not yet visited
        Eigen::MatrixXd columns(t, kColumns);                 // G(j0…t−1, j0…j0+width−1)
        Eigen::MatrixXd values(t, kColumns);
        for (int j0 = 0; j0 < t; j0 += kColumns) {
            const int width = std::min(kColumns, t - j0), rows = t - j0;
            auto g = columns.topLeftCorner(rows, width);
            auto vp = values.topLeftCorner(rows, width);
            if (wp.probes) {
                g.noalias() = phi.middleCols(j0, rows).transpose() * phi.middleCols(j0, width);
            } else {
                g.noalias() = k.middleRows(j0, rows) * k.middleRows(j0, width).transpose();
                g = ((g.array() * keyScale) - keyShift).exp().matrix();
            }
            vp.noalias() = v.middleRows(j0, rows) * v.middleRows(j0, width).transpose();
            g.array() *= (vp.array() + wp.c) *
                         (w.segment(j0, rows) * w.segment(j0, width).transpose()).array() / norm;
            for (int c = 0; c < width; ++c) {
                const int i = j0 + c;
                const int sgn = decide(i, [&] { return signedSum(i); });
                if (rows - c > 1)
                    signedSum.tail(rows - c - 1) += g.col(c).tail(rows - c - 1) * sgn;
            }
        }
    }
    // Keep the class that filled first (it reached t/2 while the other was still open).
    int keep = 0;
    {
        int p = 0, m = 0;
        for (int i = 0; i < t && keep == 0; ++i) {
            (sign[static_cast<std::size_t>(i)] > 0 ? p : m)++;
            if (p == half)
                keep = +1;
            else if (m == half)
                keep = -1;
        }
    }
    for (int i = 0; i < t; ++i)
        if (sign[static_cast<std::size_t>(i)] == keep)
            out.push_back({tokens[static_cast<std::size_t>(i)].position,
                           2.0 * tokens[static_cast<std::size_t>(i)].weight});
    if (static_cast<int>(tokens.size()) > t)
        out.push_back(tokens.back());
    return out;
}

// Halves every block of `set`, or, with `target`, only as many leading tokens as it takes to
// reach `target` tokens in all.
std::vector<Weighted> halveRound(const HeadInput& h, const std::vector<Weighted>& set,
                                 const WalkParams& wp, std::mt19937_64& rng, int target = -1) {
    std::vector<Weighted> out;
    std::size_t i = 0;
    int excess = target < 0 ? static_cast<int>(set.size()) : static_cast<int>(set.size()) - target;
    while (i < set.size()) {
        std::size_t len = std::min<std::size_t>(static_cast<std::size_t>(wp.block), set.size() - i);
        if (excess <= 0) {
            out.insert(out.end(), set.begin() + static_cast<std::ptrdiff_t>(i), set.end());
            break;
        }
        // A block of 2e tokens removes exactly e of them.
        len = std::min<std::size_t>(len, static_cast<std::size_t>(2 * excess));
        const std::vector<Weighted> block(set.begin() + static_cast<std::ptrdiff_t>(i),
                                          set.begin() + static_cast<std::ptrdiff_t>(i + len));
        const auto halved = halveBlock(h, block, wp, rng);
        excess -= static_cast<int>(block.size() - halved.size());
        out.insert(out.end(), halved.begin(), halved.end());
        i += len;
    }
    return out;
}

// Attention probabilities over the whole context of the last `count` context queries of every
// head in the group (no causal mask: they stand for future queries, which see every token).
Eigen::MatrixXd sampleProbes(const HeadInput& h, int count) {
    const int n = h.tokens();
    const int per = std::min(count, n);
    Eigen::MatrixXd p(static_cast<Eigen::Index>(per) * static_cast<Eigen::Index>(h.queries.size()),
                      n);
    Eigen::Index r = 0;
    for (const Matrix& q : h.queries) {
        const Eigen::MatrixXd s =
            (q.bottomRows(per).cast<double>() * h.keys.cast<double>().transpose()) *
            static_cast<double>(h.attentionScale());
        for (Eigen::Index i = 0; i < s.rows(); ++i) {
            Eigen::ArrayXd e = (s.row(i).array() - s.row(i).maxCoeff()).exp().transpose();
            p.row(r++) = (e / e.sum()).matrix().transpose();
        }
    }
    return p;
}

// The walk's parameters; with a kernel (and queries to draw from) also the probe queries, which
// are sampled into `probes` (it must outlive the result, which points at it).
WalkParams walkParams(const HeadInput& h, const ParamValues& p, Eigen::MatrixXd& probes) {
    const auto block = p.find("block");
    WalkParams wp{param(p, "gamma"), param(p, "tau"), param(p, "c"),
                  block == p.end() ? (1 << 30) : static_cast<int>(block->second), nullptr};
    if (param(p, "kernel") > 0 && !h.queries.empty()) {
        probes = sampleProbes(h, static_cast<int>(param(p, "kernel")));
        wp.probes = &probes;
    }
    return wp;
}

CompressedHead finish(const HeadInput& h, const ExactSplit& split,
                      const std::vector<Weighted>& kept, Precision precision) {
    std::vector<std::int32_t> pos;
    std::vector<float> lw;
    for (const auto& w : kept) {
        pos.push_back(w.position);
        lw.push_back(static_cast<float>(std::log(w.weight)));
    }
    return assemble(h, split, pos, lw, precision);
}

CompressedHead halving(const HeadInput& h, const ParamValues& p) {
    const Precision precision = precisionOf(p);
    const int m = tokenBudget(p, h.tokens(), perTokenBytes(h, precision, true));
    const ExactSplit split = splitExact(h.tokens(), m, static_cast<int>(param(p, "sinks")),
                                        static_cast<int>(param(p, "window")));
    Eigen::MatrixXd probes;
    const WalkParams wp = walkParams(h, p, probes);
    auto rng = rngFor(h, p);
    std::vector<Weighted> set;
    for (const auto pos : split.middle)
        set.push_back({pos, 1.0});
    const int target = split.middleBudget;
    if (target <= 0)
        return assemble(h, split, {}, {}, precision);
    while (static_cast<int>(set.size()) >= 2 * target)
        set = halveRound(h, set, wp, rng);
    if (static_cast<int>(set.size()) > target)
        set = halveRound(h, set, wp, rng, target);
    return finish(h, split, set, precision);
}

// Tokens a merge-and-reduce summary of `count` arrivals holds with buffer size t: t per occupied
// level (the binary digits of count / t) plus the partial buffer.
int streamingSize(int count, int t) {
    const int full = count / t;
    return t * __builtin_popcount(static_cast<unsigned>(full)) + count % t;
}

CompressedHead streaming(const HeadInput& h, const ParamValues& p) {
    const Precision precision = precisionOf(p);
    const int m = tokenBudget(p, h.tokens(), perTokenBytes(h, precision, true));
    const ExactSplit split = splitExact(h.tokens(), m, static_cast<int>(param(p, "sinks")),
                                        static_cast<int>(param(p, "window")));
    const int count = static_cast<int>(split.middle.size());
    const int target = split.middleBudget;
    if (target <= 0)
        return assemble(h, split, {}, {}, precision);
    int t = static_cast<int>(param(p, "buffer"));
    if (t <= 0) { // the largest even buffer whose summary fits the budget
        t = std::max(2, target / 2 * 2);
        while (t > 2 && streamingSize(count, t) > target)
            t -= 2;
    }
    if (streamingSize(count, t) > target)
        throw Error(ErrorCode::InvalidArgument,
                    "coreset.streaming: a budget of " + std::to_string(target) +
                        " chosen tokens cannot hold the summary of " + std::to_string(count) +
                        " tokens with buffer " + std::to_string(t) + " (it needs " +
                        std::to_string(streamingSize(count, t)) +
                        "; the smallest, buffer 2, needs " +
                        std::to_string(streamingSize(count, 2)) + ")");
    Eigen::MatrixXd probes;
    const WalkParams wp = walkParams(h, p, probes);
    auto rng = rngFor(h, p);
    std::vector<std::vector<Weighted>> levels;
    std::vector<Weighted> buffer;
    for (const auto pos : split.middle) {
        buffer.push_back({pos, 1.0});
        if (static_cast<int>(buffer.size()) < t)
            continue;
        std::vector<Weighted> carry = std::move(buffer);
        buffer.clear();
        std::size_t level = 0;
        for (; level < levels.size() && !levels[level].empty(); ++level) {
            std::vector<Weighted> both = levels[level];
            both.insert(both.end(), carry.begin(), carry.end());
            std::sort(both.begin(), both.end(),
                      [](const Weighted& a, const Weighted& b) { return a.position < b.position; });
            carry = halveBlock(h, both, wp, rng);
            levels[level].clear();
        }
        if (level == levels.size())
            levels.emplace_back();
        levels[level] = std::move(carry);
    }
    std::vector<Weighted> kept = buffer;
    for (const auto& l : levels)
        kept.insert(kept.end(), l.begin(), l.end());
    return finish(h, split, kept, precision);
}

// Merge-and-reduce as it runs online (ALGORITHMS.md §1b), within a budget fixed at the start:
// tokens leaving the exact window fill a buffer of t; a full buffer is carried up the levels,
// halved with each occupied level it meets. With the budget holding `levelCap` levels, a carry
// that reaches the top level is halved together with it and stays there (ours: the top level
// then summarizes everything older, its weights no longer all 2^level — the walk balances
// weighted sums, so it takes them as they are).
class MergeReduceStream final : public ProtectedStream {
public:
    MergeReduceStream(StreamBudget budget, int buffer, int levelCap, WalkParams walk,
                      std::mt19937_64 rng)
        : ProtectedStream(budget), m_bufferSize(buffer), m_levelCap(levelCap), m_walk(walk),
          m_rng(std::move(rng)) {}
    std::unique_ptr<StreamingState> clone() const override {
        return std::make_unique<MergeReduceStream>(*this);
    }

protected:
    void admit(const HeadInput& stream, int position) override {
        if (m_bufferSize == 0) // the sinks and the window take the whole budget
            return;
        m_buffer.push_back({position, 1.0});
        if (static_cast<int>(m_buffer.size()) < m_bufferSize)
            return;
        std::vector<Weighted> carry = std::move(m_buffer);
        m_buffer.clear();
        for (std::size_t level = 0;; ++level) {
            if (level == m_levels.size())
                m_levels.emplace_back();
            if (m_levels[level].empty()) {
                m_levels[level] = std::move(carry);
                return;
            }
            std::vector<Weighted> both = std::move(m_levels[level]);
            both.insert(both.end(), carry.begin(), carry.end());
            std::sort(both.begin(), both.end(),
                      [](const Weighted& a, const Weighted& b) { return a.position < b.position; });
            m_levels[level].clear();
            carry = halveBlock(stream, both, m_walk, m_rng);
            if (static_cast<int>(level) + 1 >= m_levelCap) {
                m_levels[level] = std::move(carry);
                return;
            }
        }
    }
    void addMiddle(StreamSummary& s) const override {
        const auto add = [&](const std::vector<Weighted>& tokens) {
            for (const auto& w : tokens) {
                s.positions.push_back(w.position);
                s.logWeights.push_back(static_cast<float>(std::log(w.weight)));
            }
        };
        add(m_buffer);
        for (const auto& level : m_levels)
            add(level);
    }

private:
    int m_bufferSize;
    int m_levelCap;
    WalkParams m_walk;
    std::mt19937_64 m_rng;
    std::vector<Weighted> m_buffer;
    std::vector<std::vector<Weighted>> m_levels;
};

std::unique_ptr<StreamingState> streamMergeReduce(const HeadInput& h, const StreamStart& start,
                                                  const ParamValues& p) {
    if (param(p, "kernel") > 0)
        throw Error(ErrorCode::InvalidArgument,
                    "coreset.streaming cannot stream with kernel=" +
                        std::to_string(static_cast<int>(param(p, "kernel"))) +
                        ": the query-sampled kernel balances for the attention of the context's "
                        "last queries, which a stream has not seen yet (use kernel=0, the key "
                        "kernel)");
    const int m = streamBudgetTokens(h, start, p, true);
    const int sinks = static_cast<int>(param(p, "sinks")),
              window = static_cast<int>(param(p, "window"));
    const StreamBudget budget = streamBudget(m, sinks, window);
    const int k = budget.middle;
    Eigen::MatrixXd unusedProbes;
    if (k == 0) {
        auto state = std::make_unique<MergeReduceStream>(
            budget, 0, 0, walkParams(h, p, unusedProbes), rngFor(h, p));
        state->setDegenerate(streamDegenerate(m, sinks, window));
        return state;
    }
    // The buffer is a parameter, never derived from the stream's length; by default a quarter of
    // the middle budget, so that three levels and the buffer fit.
    int t = static_cast<int>(param(p, "buffer"));
    if (t <= 0)
        t = std::max(2, k / 8 * 2);
    // Levels of t plus a buffer of at most t − 1 tokens stay within k.
    const int levelCap = k / t - 1;
    if (levelCap < 1)
        throw Error(ErrorCode::InvalidArgument,
                    "coreset.streaming: a budget of " + std::to_string(k) +
                        " tokens beside the sinks and the window cannot hold a buffer of " +
                        std::to_string(t) + " and one level (it needs " + std::to_string(2 * t) +
                        "): raise the budget or lower buffer");
    return std::make_unique<MergeReduceStream>(budget, t, levelCap, walkParams(h, p, unusedProbes),
                                               rngFor(h, p));
}

std::vector<ParamSpec> coresetParams(bool streamingMode) {
    std::vector<ParamSpec> p = budgetParams(0.25);
    // The common exact part of every selection scheme (scheme_util.h, equal footing). ALGORITHMS.md
    // suggests 16 sinks and a window of 64 for long contexts; on the bundled model's 706-token
    // start-up context those would take half of a quarter budget.
    p.push_back(sinksParam());
    p.push_back(windowParam());
    if (streamingMode)
        p.push_back({"buffer", "Buffer size", 0, 1 << 16, 0, false, true, "tokens",
                     "tokens per level; 0 = after prefill the largest that fits the budget, in "
                     "streaming mode a quarter of it"});
    else
        p.push_back({"block", "Block size", 2, 1 << 16, 2048, true, true, "tokens",
                     "tokens halved together by one walk: independent blocks add their errors "
                     "like a random walk, so larger blocks approach the 1/m rate (cost grows "
                     "with the square)"});
    p.push_back({"gamma", "Walk gain γ", 0, 1000, 16, false, false, "",
                 "how hard the walk pushes against the running signed sum"});
    p.push_back({"tau", "Kernel temperature τ", 0.01, 10, 1, true, false, "",
                 "multiplies <k_i, k_j>/√d in the key kernel"});
    // Streaming cannot see the queries of tokens that have not arrived: the key kernel by default.
    p.push_back({"kernel", "Query-sampled kernel", 0, 1024, streamingMode ? 0.0 : 64.0, false, true,
                 "queries",
                 "0: the key kernel exp(τ<k_i,k_j>/√d); N > 0: balance for the attention of the "
                 "last N context queries of each head instead"});
    p.push_back({"c", "Normalizer term c", 0, 10, 0.025, false, false, "",
                 "weight of the softmax denominator in the balance"});
    p.push_back(seedParam());
    p.push_back(precisionParam(16));
    return p;
}

} // namespace

// ALGORITHMS.md §1c: discrepancy coresets reach error ∝ 1/m, and the size bound √d·e^ρ/ε holds.
const ScalingTheory kCoresetTheory{-1.0, "coreset theory", true};

void addCoresetSchemes(std::vector<std::unique_ptr<Scheme>>& out) {
    SchemeInfo halvingInfo{
        "coreset.halving",
        "coreset",
        "Discrepancy halving (BalanceKV)",
        "Splits the context into two halves whose exponential-kernel sums nearly cancel — a "
        "self-balancing random walk chooses each token's sign against the running signed sum "
        "— keeps one half at double weight and repeats. Attention sinks and a recent window stay "
        "exact. The theory's error falls like 1/m in the kept tokens m, against 1/√m for uniform "
        "sampling, for queries of bounded norm. Measured (docs/scaling-check.md): on a smooth "
        "synthetic kernel (8,192 keys) the theory's key kernel (kernel=0) falls like m^−0.9 and "
        "the default query-sampled kernel like m^−0.75, uniform sampling like m^−0.5; on the "
        "bundled model (ρ_eff 11–31, the bound vacuous) no method shows either rate.",
        coresetParams(false),
        "keep",
        kCoresetTheory};
    halvingInfo.noStreamReason =
        "it halves the whole context at once, a cascade over every token, and a stream never "
        "holds them all: its streaming form is coreset.streaming (merge-and-reduce)";
    out.push_back(makeScheme(std::move(halvingInfo), halving));
    out.push_back(makeScheme(
        {"coreset.streaming", "coreset", "Streaming merge-and-reduce",
         "Compresses while tokens arrive: a buffer of t tokens is carried up a ladder of levels, "
         "each holding at most one summary of t tokens of weight 2^level; whenever two summaries "
         "meet they are halved into one. Memory t·(levels + 1) tokens for any stream length.",
         coresetParams(true), "keep", kCoresetTheory},
        streaming, streamMergeReduce));
}

} // namespace kvs::schemes
