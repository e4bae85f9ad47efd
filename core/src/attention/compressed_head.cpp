// SPDX-License-Identifier: MIT
// CompressedHead and QuantizedMatrix: quantization, bit packing, fp16 rounding, exact byte counts.
#include "kvs/compressed_head.h"

#include "kvs/status.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kvs {

int bytesPerElement(Precision p) {
    return p == Precision::F16 ? 2 : 4;
}

float roundToHalf(float x) {
    return static_cast<float>(Eigen::half(x));
}

void roundToHalf(Matrix& x) {
    for (Eigen::Index i = 0; i < x.size(); ++i)
        x.data()[i] = roundToHalf(x.data()[i]);
}

// ---------------------------------------------------------------------------------------------
// QuantizedMatrix

namespace {

std::size_t scaleIndex(const QuantizedMatrix& q, int row, int col) {
    if (q.grouping == QuantizedMatrix::Grouping::PerToken)
        return static_cast<std::size_t>(row) * static_cast<std::size_t>(q.groupsPerRow()) +
               static_cast<std::size_t>(col / q.groupSize);
    return static_cast<std::size_t>(row / q.groupSize) * static_cast<std::size_t>(q.cols) +
           static_cast<std::size_t>(col);
}

std::size_t scaleCount(const QuantizedMatrix& q) {
    if (q.grouping == QuantizedMatrix::Grouping::PerToken)
        return static_cast<std::size_t>(q.rows) * static_cast<std::size_t>(q.groupsPerRow());
    return static_cast<std::size_t>(q.groupRows()) * static_cast<std::size_t>(q.cols);
}

bool validBits(int bits) {
    return bits == 2 || bits == 3 || bits == 4 || bits == 8;
}

} // namespace

void QuantizedMatrix::setCode(int row, int col, std::uint32_t code) {
    const std::uint64_t bit =
        static_cast<std::uint64_t>(row) * static_cast<std::uint64_t>(wordsPerRow()) * 32u +
        static_cast<std::uint64_t>(col) * static_cast<std::uint64_t>(bits);
    const std::size_t word = static_cast<std::size_t>(bit / 32);
    const unsigned shift = static_cast<unsigned>(bit % 32);
    codes[word] |= code << shift;
    if (shift + static_cast<unsigned>(bits) > 32) // 3-bit codes straddle word boundaries
        codes[word + 1] |= code >> (32 - shift);
}

std::uint32_t QuantizedMatrix::code(int row, int col) const {
    const std::uint64_t bit =
        static_cast<std::uint64_t>(row) * static_cast<std::uint64_t>(wordsPerRow()) * 32u +
        static_cast<std::uint64_t>(col) * static_cast<std::uint64_t>(bits);
    const std::size_t word = static_cast<std::size_t>(bit / 32);
    const unsigned shift = static_cast<unsigned>(bit % 32);
    std::uint64_t window = codes[word];
    if (shift + static_cast<unsigned>(bits) > 32)
        window |= static_cast<std::uint64_t>(codes[word + 1]) << 32;
    return static_cast<std::uint32_t>((window >> shift) & ((1u << bits) - 1u));
}

float QuantizedMatrix::scaleAt(int row, int col) const {
    return scales[scaleIndex(*this, row, col)];
}

float QuantizedMatrix::minimumAt(int row, int col) const {
    return minimums[scaleIndex(*this, row, col)];
}

Matrix QuantizedMatrix::dequantize() const {
    Matrix x(rows, cols);
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            // The GPU shaders compute the same expression: minimum + scale · code, in fp32.
            x(r, c) = minimumAt(r, c) + scaleAt(r, c) * static_cast<float>(code(r, c));
    for (std::size_t e = 0; e < outlierIndices.size(); ++e) {
        const auto flat = static_cast<std::size_t>(outlierIndices[e]);
        const auto width = static_cast<std::size_t>(cols);
        x(static_cast<Eigen::Index>(flat / width), static_cast<Eigen::Index>(flat % width)) =
            outlierValues[e];
    }
    return x;
}

std::size_t QuantizedMatrix::bytes() const {
    return static_cast<std::size_t>(rows) * static_cast<std::size_t>(wordsPerRow()) * 4u +
           metadataBytes() + outlierBytes();
}

std::size_t QuantizedMatrix::metadataBytes() const {
    return scaleCount(*this) * 2u * 2u; // fp16 scale + fp16 minimum per group
}

namespace {

// The flat indices (row · cols + col, increasing) of the round(f · size) elements of `x` farthest
// from the mean of their vector — a column for PerChannel grouping, a row for PerToken — in units
// of that vector's standard deviation. Ties go to the lower index, so the choice is reproducible.
std::vector<std::uint32_t> chooseOutliers(const Matrix& x, QuantizedMatrix::Grouping grouping,
                                          double fraction) {
    const auto size = static_cast<std::size_t>(x.size());
    const auto count = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(size)));
    if (count == 0)
        return {};
    const bool perChannel = grouping == QuantizedMatrix::Grouping::PerChannel;
    const Eigen::Index vectors = perChannel ? x.cols() : x.rows();
    std::vector<double> mean(static_cast<std::size_t>(vectors)), spread(mean.size());
    for (Eigen::Index v = 0; v < vectors; ++v) {
        const Eigen::ArrayXd a =
            (perChannel ? Eigen::VectorXf(x.col(v)) : Eigen::VectorXf(x.row(v).transpose()))
                .cast<double>()
                .array();
        const double mu = a.mean();
        mean[static_cast<std::size_t>(v)] = mu;
        // A constant vector has no outliers to speak of: an infinite spread scores it 0.
        const double sd = std::sqrt((a - mu).square().mean());
        spread[static_cast<std::size_t>(v)] =
            sd > 0.0 ? sd : std::numeric_limits<double>::infinity();
    }
    std::vector<double> score(size);
    const auto cols = static_cast<std::size_t>(x.cols());
    for (std::size_t i = 0; i < size; ++i) {
        const auto r = static_cast<Eigen::Index>(i / cols), c = static_cast<Eigen::Index>(i % cols);
        const auto v = static_cast<std::size_t>(perChannel ? c : r);
        score[i] = std::abs(static_cast<double>(x(r, c)) - mean[v]) / spread[v];
    }
    std::vector<std::uint32_t> order(size);
    std::iota(order.begin(), order.end(), 0u);
    const auto farther = [&score](std::uint32_t a, std::uint32_t b) {
        return score[a] != score[b] ? score[a] > score[b] : a < b;
    };
    std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count - 1),
                     order.end(), farther);
    order.resize(count);
    std::sort(order.begin(), order.end());
    return order;
}

} // namespace

QuantizedMatrix quantize(const Matrix& x, int bits, int groupSize,
                         QuantizedMatrix::Grouping grouping, double outlierFraction) {
    if (!validBits(bits))
        throw Error(ErrorCode::InvalidArgument,
                    "quantize: bits must be 2, 3, 4 or 8, got " + std::to_string(bits));
    if (groupSize < 1)
        throw Error(ErrorCode::InvalidArgument,
                    "quantize: group size must be at least 1, got " + std::to_string(groupSize));
    if (!(outlierFraction >= 0.0 && outlierFraction <= 1.0))
        throw Error(ErrorCode::InvalidArgument,
                    "quantize: the outlier fraction must lie in [0, 1], got " +
                        std::to_string(outlierFraction));
    if (x.size() >= (Eigen::Index{1} << 32) && outlierFraction > 0.0)
        throw Error(ErrorCode::InvalidArgument,
                    "quantize: outliers are indexed by 32 bits; the matrix has " +
                        std::to_string(x.size()) + " elements");
    QuantizedMatrix q;
    q.rows = static_cast<int>(x.rows());
    q.cols = static_cast<int>(x.cols());
    q.bits = bits;
    q.groupSize = groupSize;
    q.grouping = grouping;
    q.codes.assign(static_cast<std::size_t>(q.rows) * static_cast<std::size_t>(q.wordsPerRow()),
                   0u);
    q.scales.assign(scaleCount(q), 0.0f);
    q.minimums.assign(scaleCount(q), 0.0f);
    const float levels = static_cast<float>((1u << bits) - 1u);

    for (Eigen::Index i = 0; i < x.size(); ++i)
        if (!std::isfinite(x.data()[i])) {
            const Eigen::Index r = i / x.cols(), c = i % x.cols(); // row-major storage
            throw Error(ErrorCode::InvalidArgument, "quantize: element (" + std::to_string(r) +
                                                        ", " + std::to_string(c) +
                                                        ") is not finite");
        }
    std::vector<bool> isOutlier;
    if (outlierFraction > 0.0) {
        q.outlierIndices = chooseOutliers(x, grouping, outlierFraction);
        isOutlier.assign(static_cast<std::size_t>(x.size()), false);
        const auto cols = static_cast<std::size_t>(q.cols);
        for (const std::uint32_t flat : q.outlierIndices) {
            isOutlier[flat] = true;
            q.outlierValues.push_back(roundToHalf(
                x(static_cast<Eigen::Index>(flat / cols), static_cast<Eigen::Index>(flat % cols))));
        }
    }
    const auto outlier = [&](int r, int c) {
        return !isOutlier.empty() &&
               isOutlier[static_cast<std::size_t>(r) * static_cast<std::size_t>(q.cols) +
                         static_cast<std::size_t>(c)];
    };

    // Visits the elements of group g as (row, col) pairs.
    const auto forGroup = [&](std::size_t g, auto&& fn) {
        if (grouping == QuantizedMatrix::Grouping::PerToken) {
            const int gpr = q.groupsPerRow();
            const int row = static_cast<int>(g / static_cast<std::size_t>(gpr));
            const int c0 = static_cast<int>(g % static_cast<std::size_t>(gpr)) * groupSize;
            for (int c = c0; c < std::min(q.cols, c0 + groupSize); ++c)
                fn(row, c);
        } else {
            const int col = static_cast<int>(g % static_cast<std::size_t>(q.cols));
            const int r0 = static_cast<int>(g / static_cast<std::size_t>(q.cols)) * groupSize;
            for (int r = r0; r < std::min(q.rows, r0 + groupSize); ++r)
                fn(r, col);
        }
    };

    for (std::size_t g = 0; g < q.scales.size(); ++g) {
        float lo = std::numeric_limits<float>::infinity();
        float hi = -std::numeric_limits<float>::infinity();
        forGroup(g, [&](int r, int c) {
            if (outlier(r, c))
                return;
            lo = std::min(lo, x(r, c));
            hi = std::max(hi, x(r, c));
        });
        if (lo > hi) // every element of the group is an outlier: its codes are never read
            lo = hi = 0.0f;
        // Stored precision first, then the codes against the stored values, so that decoding
        // reproduces exactly what the codes were chosen for.
        const float minimum = roundToHalf(lo);
        const float scale = roundToHalf((hi - lo) / levels);
        q.minimums[g] = minimum;
        q.scales[g] = scale;
        forGroup(g, [&](int r, int c) {
            std::uint32_t code = 0;
            if (scale > 0.0f) {
                const float t = std::round((x(r, c) - minimum) / scale); // ties away from zero
                code = static_cast<std::uint32_t>(std::clamp(t, 0.0f, levels));
            }
            q.setCode(r, c, code);
        });
    }
    return q;
}

// ---------------------------------------------------------------------------------------------
// CompressedHead

int CompressedHead::keyRank() const {
    switch (keyForm) {
    case KeyForm::Dense:
        return headDim;
    case KeyForm::LowRank:
        return static_cast<int>(keys.cols());
    case KeyForm::Quantized:
        return headDim;
    }
    return headDim;
}

int CompressedHead::valueDim() const {
    return valueForm == ValueForm::Quantized ? quantizedValues.cols
                                             : static_cast<int>(values.cols());
}

bool CompressedHead::isIdentityIndex() const {
    if (keptCount() != contextLength)
        return false;
    for (int j = 0; j < keptCount(); ++j)
        if (positions[static_cast<std::size_t>(j)] != j)
            return false;
    return true;
}

namespace {

// A basis whose every column is one 1 among zeros keeps r of the key's channels (rope_pairs):
// an implementation stores r channel indices, not a d × r matrix.
bool isChannelSelection(const Matrix& basis) {
    for (Eigen::Index j = 0; j < basis.cols(); ++j) {
        int ones = 0;
        for (Eigen::Index i = 0; i < basis.rows(); ++i) {
            const float v = basis(i, j);
            if (v == 1.0f)
                ++ones;
            else if (v != 0.0f)
                return false;
        }
        if (ones != 1)
            return false;
    }
    return basis.cols() > 0;
}

} // namespace

CacheBytes CompressedHead::bytes() const {
    CacheBytes b = deviceBytes();
    if (keyForm == KeyForm::LowRank && isChannelSelection(queryProjection)) {
        // The device holds the 0/1 basis (the low-rank path reads it); the cache needs r uint16
        // channel indices.
        b.metadata -= static_cast<std::size_t>(queryProjection.size()) * 2u;
        b.metadata += static_cast<std::size_t>(queryProjection.cols()) * 2u;
    }
    // Outliers cost (index, fp16 value) each in the cache, not the device's per-row layout.
    if (keyForm == KeyForm::Quantized)
        b.keys = b.keys - quantizedKeys.outlierDeviceBytes() + quantizedKeys.outlierBytes();
    if (valueForm == ValueForm::Quantized)
        b.values = b.values - quantizedValues.outlierDeviceBytes() + quantizedValues.outlierBytes();
    if (!entropyCoded)
        return b;
    // The coded matrices cost their streams and side information instead of their fixed-width
    // codes, scales and minima; a recent window stays fp16 beside them.
    if (entropyCoded->keyStreamBytes > 0) {
        b.keys = entropyCoded->keyStreamBytes + static_cast<std::size_t>(recentKeys.size()) * 2u;
        b.metadata -= quantizedKeys.metadataBytes();
    }
    if (entropyCoded->valueStreamBytes > 0) {
        b.values =
            entropyCoded->valueStreamBytes + static_cast<std::size_t>(recentValues.size()) * 2u;
        b.metadata -= quantizedValues.metadataBytes();
    }
    b.metadata += entropyCoded->sideBytes;
    return b;
}

CacheBytes CompressedHead::deviceBytes() const {
    CacheBytes b;
    const auto m = static_cast<std::size_t>(keptCount());
    const auto stored = static_cast<std::size_t>(storedCount());
    const auto dense = [stored](Eigen::Index cols, Precision precision) {
        return stored * static_cast<std::size_t>(cols) *
               static_cast<std::size_t>(bytesPerElement(precision));
    };
    // A quantized matrix's scales and minima count as metadata, its codes and outliers (laid
    // out per row, as the kernels read them) as the payload.
    const auto codes = [&b](const QuantizedMatrix& q) {
        b.metadata += q.metadataBytes();
        return q.bytes() - q.metadataBytes() - q.outlierBytes() + q.outlierDeviceBytes();
    };
    // Low-rank keys are dense rows of the reduced width; values shared with keys cost nothing.
    b.keys =
        keyForm == KeyForm::Quantized ? codes(quantizedKeys) : dense(keys.cols(), keyPrecision);
    if (keyForm == KeyForm::LowRank)
        b.metadata += static_cast<std::size_t>(queryProjection.size()) * 2u; // fp16
    if (valueForm == ValueForm::Quantized)
        b.values = codes(quantizedValues);
    else if (valueForm == ValueForm::Dense)
        b.values = dense(values.cols(), valuePrecision);
    // The recent window: fp16 rows of keys and values.
    b.keys += static_cast<std::size_t>(recentKeys.size()) * 2u;
    b.values += static_cast<std::size_t>(recentValues.size()) * 2u;
    if (!isIdentityIndex())
        b.metadata += m * 4u;
    if (!logWeights.empty())
        b.metadata += m * 2u;
    return b;
}

namespace {

[[noreturn]] void invalid(const std::string& what) {
    throw Error(ErrorCode::InvalidArgument, "CompressedHead: " + what);
}

void validateQuantized(const QuantizedMatrix& q, const char* name, int rows, int cols) {
    const std::string n(name);
    if (q.rows != rows || q.cols != cols)
        invalid(n + " are " + std::to_string(q.rows) + " x " + std::to_string(q.cols) +
                ", expected " + std::to_string(rows) + " x " + std::to_string(cols));
    if (!validBits(q.bits))
        invalid(n + ": bits must be 2, 3, 4 or 8, got " + std::to_string(q.bits));
    if (q.groupSize < 1)
        invalid(n + ": group size must be at least 1, got " + std::to_string(q.groupSize));
    if (q.codes.size() !=
        static_cast<std::size_t>(q.rows) * static_cast<std::size_t>(q.wordsPerRow()))
        invalid(n + ": " + std::to_string(q.codes.size()) + " code words, expected " +
                std::to_string(static_cast<std::size_t>(q.rows) *
                               static_cast<std::size_t>(q.wordsPerRow())));
    if (q.scales.size() != scaleCount(q) || q.minimums.size() != scaleCount(q))
        invalid(n + ": " + std::to_string(q.scales.size()) + " scales and " +
                std::to_string(q.minimums.size()) + " minimums, expected " +
                std::to_string(scaleCount(q)) + " of each");
    if (q.outlierValues.size() != q.outlierIndices.size())
        invalid(n + ": " + std::to_string(q.outlierIndices.size()) + " outlier indices and " +
                std::to_string(q.outlierValues.size()) + " values");
    const std::uint64_t size =
        static_cast<std::uint64_t>(q.rows) * static_cast<std::uint64_t>(q.cols);
    for (std::size_t e = 0; e < q.outlierIndices.size(); ++e) {
        if (q.outlierIndices[e] >= size ||
            (e > 0 && q.outlierIndices[e] <= q.outlierIndices[e - 1]))
            invalid(n + ": outlier " + std::to_string(e) + " has index " +
                    std::to_string(q.outlierIndices[e]) +
                    "; indices must increase strictly and stay below " + std::to_string(size));
        if (!std::isfinite(q.outlierValues[e]))
            invalid(n + ": outlier " + std::to_string(e) + " is not finite");
    }
}

} // namespace

void CompressedHead::validate() const {
    if (headDim < 1)
        invalid("head dimension must be positive, got " + std::to_string(headDim));
    const int m = keptCount();
    if (contextLength < m)
        invalid("keeps " + std::to_string(m) + " tokens of a context of " +
                std::to_string(contextLength));
    for (int j = 0; j < m; ++j) {
        const std::int32_t p = positions[static_cast<std::size_t>(j)];
        if (p < 0 || p >= contextLength)
            invalid("position " + std::to_string(p) + " (kept token " + std::to_string(j) +
                    ") is outside the context 0.." + std::to_string(contextLength - 1));
        if (j > 0 && p <= positions[static_cast<std::size_t>(j - 1)])
            invalid("positions must increase strictly; kept token " + std::to_string(j) +
                    " has position " + std::to_string(p) + " after " +
                    std::to_string(positions[static_cast<std::size_t>(j - 1)]));
    }
    if (!logWeights.empty() && static_cast<int>(logWeights.size()) != m)
        invalid(std::to_string(logWeights.size()) + " log-weights for " + std::to_string(m) +
                " kept tokens");
    for (float w : logWeights)
        if (std::isnan(w) || w == std::numeric_limits<float>::infinity())
            invalid("log-weights must be finite or -inf, got " + std::to_string(w));

    const int w = recentCount();
    if (w > 0) {
        if (recentKeys.cols() != headDim || recentValues.rows() != w || recentValues.cols() < 1)
            invalid("the recent window's keys are " + std::to_string(recentKeys.rows()) + " x " +
                    std::to_string(recentKeys.cols()) + " and its values " +
                    std::to_string(recentValues.rows()) + " x " +
                    std::to_string(recentValues.cols()) + ", expected " + std::to_string(w) +
                    " x " + std::to_string(headDim) + " and " + std::to_string(w) + " rows");
        if (w >= m)
            invalid("a recent window of " + std::to_string(w) + " tokens leaves none of the " +
                    std::to_string(m) + " kept tokens to the head's own form");
        if (keyForm == KeyForm::LowRank || valueForm == ValueForm::SharedWithKeys)
            invalid("a recent window goes with dense or quantized keys and values of their own, "
                    "not low-rank keys or values shared with the keys");
    } else if (recentValues.rows() != 0) {
        invalid("recent-window values without keys");
    }
    // The head's own forms hold the tokens before the window.
    const int rows = m - w;
    switch (keyForm) {
    case KeyForm::Dense:
        if (keys.rows() != rows || keys.cols() != headDim)
            invalid("dense keys are " + std::to_string(keys.rows()) + " x " +
                    std::to_string(keys.cols()) + ", expected " + std::to_string(rows) + " x " +
                    std::to_string(headDim));
        break;
    case KeyForm::LowRank:
        if (keys.rows() != rows || keys.cols() < 1)
            invalid("low-rank key coefficients are " + std::to_string(keys.rows()) + " x " +
                    std::to_string(keys.cols()) + ", expected " + std::to_string(rows) + " x r");
        if (queryProjection.rows() != headDim || queryProjection.cols() != keys.cols())
            invalid("query projection is " + std::to_string(queryProjection.rows()) + " x " +
                    std::to_string(queryProjection.cols()) + ", expected " +
                    std::to_string(headDim) + " x " + std::to_string(keys.cols()));
        break;
    case KeyForm::Quantized:
        validateQuantized(quantizedKeys, "quantized keys", rows, headDim);
        break;
    }
    if (entropyCoded &&
        (!quantizedKeys.outlierIndices.empty() || !quantizedValues.outlierIndices.empty()))
        invalid("entropy-coded matrices keep no outliers (their rate counts the streams alone)");
    const bool lowRankPreRope = hasPreRopeLowRankKeys(*this);
    if ((lowRankPreRope || hasPreRopeQuantizedKeys(*this)) &&
        (headDim % 2 != 0 ||
         keyRotation.frequencies.size() != static_cast<std::size_t>(headDim / 2)))
        invalid(std::string("pre-RoPE ") + (lowRankPreRope ? "low-rank" : "quantized") +
                " keys need " + std::to_string(headDim / 2) +
                " rotation frequencies (an even head dim), got " +
                std::to_string(keyRotation.frequencies.size()));
    switch (valueForm) {
    case ValueForm::Dense:
    case ValueForm::SharedWithKeys:
        if (values.rows() != rows || values.cols() < 1)
            invalid("values are " + std::to_string(values.rows()) + " x " +
                    std::to_string(values.cols()) + ", expected " + std::to_string(rows) + " rows");
        break;
    case ValueForm::Quantized:
        if (quantizedValues.rows != rows || quantizedValues.cols < 1)
            invalid("quantized values are " + std::to_string(quantizedValues.rows) + " x " +
                    std::to_string(quantizedValues.cols) + ", expected " + std::to_string(rows) +
                    " rows");
        validateQuantized(quantizedValues, "quantized values", rows, quantizedValues.cols);
        break;
    }
    if (w > 0 && recentValues.cols() != valueDim())
        invalid("the recent window's values have " + std::to_string(recentValues.cols()) +
                " columns, the head's " + std::to_string(valueDim()));
    if (hadamardBlock != 0) {
        const int b = hadamardBlock;
        if (b < 2 || (b & (b - 1)) != 0 || headDim % b != 0 || valueDim() % b != 0)
            invalid("Hadamard block " + std::to_string(b) +
                    " is not a power of two of at least 2 dividing the key and value widths " +
                    std::to_string(headDim) + " and " + std::to_string(valueDim()));
        if (!keysRotated() && !valuesRotated())
            invalid("a Hadamard block is set but neither keys nor values are quantized");
        if (keysRotated() && hasPreRopeQuantizedKeys(*this))
            invalid("Hadamard-rotated keys cannot also be pre-RoPE: the query is rotated after "
                    "RoPE, the key before it");
    }
}

void hadamardRotate(Matrix& x, int block) {
    const auto cols = static_cast<int>(x.cols());
    if (block < 1 || (block & (block - 1)) != 0 || cols % block != 0)
        throw Error(ErrorCode::InvalidArgument,
                    "Hadamard rotation: block " + std::to_string(block) +
                        " is not a power of two dividing " + std::to_string(cols));
    const float norm = 1.0f / std::sqrt(static_cast<float>(block));
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
        // Butterflies (i, i + h) for every bit h below the block size: never across blocks.
        for (int h = 1; h < block; h <<= 1)
            for (int i = 0; i < cols; ++i)
                if ((i & h) == 0) {
                    const float a = x(r, i), b = x(r, i + h);
                    x(r, i) = a + b;
                    x(r, i + h) = a - b;
                }
        x.row(r) *= norm;
    }
}

bool hasPreRopeLowRankKeys(const CompressedHead& head) {
    return head.keyForm == CompressedHead::KeyForm::LowRank && !head.keyRotation.empty() &&
           head.valueForm != CompressedHead::ValueForm::SharedWithKeys;
}

bool hasPreRopeQuantizedKeys(const CompressedHead& head) {
    return head.keyForm == CompressedHead::KeyForm::Quantized && !head.keyRotation.empty() &&
           head.valueForm != CompressedHead::ValueForm::SharedWithKeys;
}

Matrix rotatedKeys(const CompressedHead& head) {
    const bool lowRank = hasPreRopeLowRankKeys(head);
    const bool quantized = hasPreRopeQuantizedKeys(head);
    const Matrix preRope =
        lowRank
            ? Matrix((head.keys.cast<double>() * head.queryProjection.cast<double>().transpose())
                         .cast<float>())
        : quantized ? head.quantizedKeys.dequantize()
                    : head.values;
    const Eigen::Index d = preRope.cols(), half = d / 2;
    const KeyRotation& r = head.keyRotation;
    if (r.empty() || static_cast<Eigen::Index>(r.frequencies.size()) != half || d % 2 != 0 ||
        preRope.rows() != head.storedCount())
        throw Error(ErrorCode::InvalidArgument,
                    "rotatedKeys: the head has no key rotation matching its " + std::to_string(d) +
                        (lowRank || quantized ? " key columns and " : " value columns and ") +
                        std::to_string(head.storedCount()) + " positions");
    Matrix keys(preRope.rows(), d);
    for (Eigen::Index j = 0; j < keys.rows(); ++j) {
        const double p = head.positions[static_cast<std::size_t>(j)];
        for (Eigen::Index i = 0; i < half; ++i) {
            const double angle = p * r.frequencies[static_cast<std::size_t>(i)];
            const double cs = r.scale * std::cos(angle);
            const double sn = r.scale * std::sin(angle);
            const Eigen::Index a = r.interleaved ? 2 * i : i;
            const Eigen::Index b = r.interleaved ? 2 * i + 1 : i + half;
            const double x = preRope(j, a), y = preRope(j, b);
            keys(j, a) = static_cast<float>(x * cs - y * sn);
            keys(j, b) = static_cast<float>(y * cs + x * sn);
        }
    }
    return keys;
}

std::pair<CompressedHead, CompressedHead> splitRecentWindow(const CompressedHead& head) {
    const int w = head.recentCount(), stored = head.storedCount();
    if (w == 0 || stored < 1)
        throw Error(ErrorCode::InvalidArgument,
                    "splitRecentWindow: the head keeps " + std::to_string(head.keptCount()) +
                        " tokens with a recent window of " + std::to_string(w) +
                        "; splitting needs a window and a token before it");
    const auto split = static_cast<std::ptrdiff_t>(stored);
    CompressedHead recent;
    recent.headDim = head.headDim;
    recent.contextLength = head.contextLength;
    recent.positions.assign(head.positions.begin() + split, head.positions.end());
    if (!head.logWeights.empty())
        recent.logWeights.assign(head.logWeights.begin() + split, head.logWeights.end());
    recent.keys = head.recentKeys;
    recent.keyPrecision = Precision::F16;
    recent.values = head.recentValues;
    recent.valuePrecision = Precision::F16;

    CompressedHead older = head;
    older.positions.resize(static_cast<std::size_t>(stored));
    if (!older.logWeights.empty())
        older.logWeights.resize(static_cast<std::size_t>(stored));
    older.recentKeys = Matrix();
    older.recentValues = Matrix();
    return {std::move(older), std::move(recent)};
}

CompressedHead exactHead(const Matrix& keys, const Matrix& values, Precision precision) {
    if (keys.rows() != values.rows())
        throw Error(ErrorCode::InvalidArgument, "exactHead: " + std::to_string(keys.rows()) +
                                                    " keys but " + std::to_string(values.rows()) +
                                                    " values");
    CompressedHead h;
    h.headDim = static_cast<int>(keys.cols());
    h.contextLength = static_cast<int>(keys.rows());
    h.positions.resize(static_cast<std::size_t>(keys.rows()));
    for (std::size_t j = 0; j < h.positions.size(); ++j)
        h.positions[j] = static_cast<std::int32_t>(j);
    h.keyForm = CompressedHead::KeyForm::Dense;
    h.keys = keys;
    h.keyPrecision = precision;
    h.valueForm = CompressedHead::ValueForm::Dense;
    h.values = values;
    h.valuePrecision = precision;
    if (precision == Precision::F16) {
        roundToHalf(h.keys);
        roundToHalf(h.values);
    }
    return h;
}

std::size_t fp16BaselineBytes(int tokens, int headDim) {
    return 2u * 2u * static_cast<std::size_t>(tokens) * static_cast<std::size_t>(headDim);
}

} // namespace kvs
