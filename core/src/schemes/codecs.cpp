// SPDX-License-Identifier: MIT
// The codec family (ALGORITHMS.md §4): every context token kept, keys and values coded.
//  - codec.uniform: asymmetric uniform quantization, keys grouped per channel over G tokens and
//    values per token over G channels (KIVI), separate key and value bits.
//  - codec.entropy: the rate-distortion paper's "simplest codec": per-channel step α·σ_c, symbols
//    round((x − μ_c)/Δ_c) coded by our rANS coder; the rate is the stream's real length plus
//    its side information, next to the symbols' empirical entropy.
#include "kvs/rans.h"
#include "registry_parts.h"
#include "scheme_util.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace kvs::schemes {
namespace {

using Grouping = QuantizedMatrix::Grouping;

// Codecs code the cache as it is stored; a K=V cache (the pre-RoPE keys, rotated on load) has
// no quantized form in the kernels yet.
void requireSeparateValues(const HeadInput& h, const std::string& id) {
    if (h.valuesSharedWithKeys)
        throw Error(ErrorCode::Unsupported,
                    id + ": the model caches its keys as its values (K=V); coding that shared, "
                         "rotated-on-load cache is not supported");
}

int bitsOf(const ParamValues& p, const char* key) {
    const int own = static_cast<int>(param(p, key));
    return own > 0 ? own : static_cast<int>(param(p, "bits"));
}

// The "rotation" parameter: 0 (none) or a Hadamard block, a power of two dividing d.
int hadamardBlockOf(const HeadInput& h, const ParamValues& p, const std::string& id) {
    const int block = static_cast<int>(param(p, "rotation"));
    const int d = h.headDim();
    if (block == 0 || (block >= 2 && (block & (block - 1)) == 0 && d % block == 0 &&
                       h.values.cols() % block == 0))
        return block;
    std::string allowed = "0 (none)";
    for (int b = 2; b <= d; b *= 2)
        if (d % b == 0 && h.values.cols() % b == 0)
            allowed += ", " + std::to_string(b);
    throw Error(ErrorCode::InvalidArgument,
                id + ": rotation = " + std::to_string(block) +
                    " is not a Hadamard block for the head dim " + std::to_string(d) +
                    " (a power of two that divides it; allowed: " + allowed + ")");
}

// The "pre_rope" parameter: whether the keys are coded before RoPE (refused where there is no
// rotation to apply on load, no pre-RoPE capture, or a Hadamard rotation on the query side).
bool preRopeOf(const HeadInput& h, const ParamValues& p, const std::string& id, int block) {
    if (param(p, "pre_rope") == 0.0)
        return false;
    if (h.keyRotation.empty())
        throw Error(ErrorCode::Unsupported,
                    id + ": pre_rope = 1 needs a RoPE model (this one's keys carry learned "
                         "positions, there is nothing to rotate on load)");
    if (h.keysPreRope.rows() != h.tokens())
        throw Error(ErrorCode::Unsupported,
                    id + ": the capture holds no pre-RoPE keys for this RoPE model (capture it "
                         "again with this version)");
    if (block > 0)
        throw Error(ErrorCode::InvalidArgument,
                    id + ": rotation = " + std::to_string(block) +
                        " does not go with pre_rope = 1 (the query is rotated after RoPE, the "
                        "key before it; allowed: rotation = 0)");
    return true;
}

// What a codec rounds: the keys (before RoPE with pre_rope) and values of the tokens before the
// recent window, Hadamard-rotated when asked; finish() records the choices on the head the codec
// built and stores the window's tokens at fp16.
struct CodecInput {
    Matrix keys, values;
    int block = 0;
    bool preRope = false;
    int recent = 0; // tokens of the window, fewer than the head's
    void finish(CompressedHead& c, const HeadInput& h) const {
        c.hadamardBlock = block;
        if (preRope)
            c.keyRotation = h.keyRotation; // codes are pre-RoPE: decoded and rotated on load
        if (recent > 0) {
            c.recentKeys = h.keys.bottomRows(recent); // post-RoPE, as attention reads them
            c.recentValues = h.values.bottomRows(recent);
            roundToHalf(c.recentKeys);
            roundToHalf(c.recentValues);
        }
    }
};

// The "recent" parameter: how many of the last tokens stay fp16 (a window of the whole context
// is the fp16 cache, and is caught before this by wholeWindow()).
int recentOf(const HeadInput& h, const ParamValues& p) {
    return std::clamp(static_cast<int>(param(p, "recent")), 0, h.tokens());
}

CodecInput codecInput(const HeadInput& h, const ParamValues& p, const std::string& id) {
    CodecInput in;
    in.block = hadamardBlockOf(h, p, id);
    in.preRope = preRopeOf(h, p, id, in.block);
    in.recent = recentOf(h, p);
    const Eigen::Index older = h.tokens() - in.recent;
    in.keys = (in.preRope ? h.keysPreRope : h.keys).topRows(older);
    in.values = h.values.topRows(older);
    if (in.block > 0) {
        hadamardRotate(in.keys, in.block);
        hadamardRotate(in.values, in.block);
    }
    return in;
}

// A window that covers every token leaves nothing to code: the head is the fp16 cache.
bool wholeWindow(const HeadInput& h, const ParamValues& p) {
    return h.tokens() > 0 && recentOf(h, p) >= h.tokens();
}

CompressedHead uniformCodec(const HeadInput& h, const ParamValues& p) {
    requireSeparateValues(h, "codec.uniform");
    const int group = static_cast<int>(param(p, "group"));
    if (h.headDim() % group != 0) {
        std::string allowed; // the divisors of d within the parameter's range
        for (int g = 4; g <= std::min(256, h.headDim()); ++g)
            if (h.headDim() % g == 0)
                allowed += (allowed.empty() ? "" : ", ") + std::to_string(g);
        throw Error(ErrorCode::InvalidArgument,
                    "codec.uniform: group = " + std::to_string(group) +
                        " does not divide the head dim " + std::to_string(h.headDim()) +
                        " (values are grouped per token over channels; allowed: " + allowed + ")");
    }
    if (wholeWindow(h, p)) {
        hadamardBlockOf(h, p, "codec.uniform"); // the other parameters are still checked
        return allTokens(h, Precision::F16);
    }
    const CodecInput in = codecInput(h, p, "codec.uniform");
    CompressedHead c = allTokens(h, Precision::F32); // the codec replaces the forms
    c.keyForm = CompressedHead::KeyForm::Quantized;
    const double outliers = param(p, "outliers");
    c.quantizedKeys =
        quantize(in.keys, bitsOf(p, "key_bits"), group, Grouping::PerChannel, outliers);
    c.valueForm = CompressedHead::ValueForm::Quantized;
    c.quantizedValues =
        quantize(in.values, bitsOf(p, "value_bits"), group, Grouping::PerToken, outliers);
    in.finish(c, h);
    return c;
}

// One matrix entropy-coded: the fixed-width codes the kernels read (one group per channel over
// every token) and what the coded stream costs.
struct CodedMatrix {
    QuantizedMatrix codes;
    std::size_t streamBytes = 0;
    std::size_t sideBytes = 0;
    double entropyBits = 0.0;
};

constexpr int kSymbolLimit = 127; // symbols are clamped to ±127 steps: an alphabet of 255

CodedMatrix entropyCode(const Matrix& x, double alpha) {
    const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
    std::vector<float> step(static_cast<std::size_t>(d)), centre(static_cast<std::size_t>(d));
    std::vector<int> lowest(static_cast<std::size_t>(d), kSymbolLimit);
    std::vector<int> highest(static_cast<std::size_t>(d), -kSymbolLimit);
    std::vector<std::uint32_t> symbols(static_cast<std::size_t>(n) * static_cast<std::size_t>(d));
    for (int c = 0; c < d; ++c) {
        const auto col = x.col(c).cast<double>();
        const double mean = col.mean();
        const double sigma = std::sqrt((col.array() - mean).square().mean());
        // Stored as fp16, so the symbols are chosen against the values the decoder will use.
        const auto cc = static_cast<std::size_t>(c);
        centre[cc] = roundToHalf(static_cast<float>(mean));
        step[cc] = roundToHalf(static_cast<float>(alpha * sigma));
        for (int r = 0; r < n; ++r) {
            int q = 0;
            if (step[cc] > 0.0f)
                q = static_cast<int>(std::clamp(std::round((x(r, c) - centre[cc]) / step[cc]),
                                                static_cast<float>(-kSymbolLimit),
                                                static_cast<float>(kSymbolLimit)));
            lowest[cc] = std::min(lowest[cc], q);
            highest[cc] = std::max(highest[cc], q);
            symbols[static_cast<std::size_t>(r) * static_cast<std::size_t>(d) + cc] =
                static_cast<std::uint32_t>(q + kSymbolLimit);
        }
    }
    const std::size_t alphabet = 2 * kSymbolLimit + 1;
    const rans::Model model = rans::buildModel(symbols, alphabet);
    const std::vector<std::uint8_t> stream = rans::encode(symbols, model);
    // What the device holds is what the stream decodes to, as on a real load path.
    const std::vector<std::uint32_t> decoded = rans::decode(stream, model, symbols.size());

    CodedMatrix out;
    out.streamBytes = stream.size() + 4; // + its length
    // The model, then per channel its step and centre (fp16 each).
    out.sideBytes = model.sideBytes() + 4u * static_cast<std::size_t>(d);
    out.entropyBits = rans::entropyBits(symbols, alphabet);

    // The decoded values as fixed-width codes: per channel, code = q − lowest, minimum = centre +
    // lowest·step (fp16), at the narrowest supported width that holds the channel's range.
    int range = 0;
    for (int c = 0; c < d; ++c)
        range = std::max(range, highest[static_cast<std::size_t>(c)] -
                                    lowest[static_cast<std::size_t>(c)]);
    int bits = 2;
    for (const int b : {2, 3, 4, 8})
        if ((1 << b) - 1 >= range) {
            bits = b;
            break;
        }
    QuantizedMatrix& q = out.codes;
    q.rows = n;
    q.cols = d;
    q.bits = bits;
    q.groupSize = n;
    q.grouping = Grouping::PerChannel;
    q.codes.assign(static_cast<std::size_t>(n) * static_cast<std::size_t>(q.wordsPerRow()), 0u);
    for (int c = 0; c < d; ++c) {
        const auto cc = static_cast<std::size_t>(c);
        q.scales.push_back(step[cc]);
        q.minimums.push_back(roundToHalf(centre[cc] + static_cast<float>(lowest[cc]) * step[cc]));
        for (int r = 0; r < n; ++r) {
            const int symbol = static_cast<int>(
                decoded[static_cast<std::size_t>(r) * static_cast<std::size_t>(d) + cc]);
            q.setCode(r, c, static_cast<std::uint32_t>(symbol - kSymbolLimit - lowest[cc]));
        }
    }
    return out;
}

CompressedHead entropyCodec(const HeadInput& h, const ParamValues& p) {
    requireSeparateValues(h, "codec.entropy");
    const double alpha = param(p, "alpha");
    if (wholeWindow(h, p)) {
        hadamardBlockOf(h, p, "codec.entropy");
        return allTokens(h, Precision::F16);
    }
    const CodecInput in = codecInput(h, p, "codec.entropy");
    const CodedMatrix keys = entropyCode(in.keys, alpha);
    const CodedMatrix values = entropyCode(in.values, alpha);
    CompressedHead c = allTokens(h, Precision::F32); // the codec replaces the forms
    c.keyForm = CompressedHead::KeyForm::Quantized;
    c.quantizedKeys = keys.codes;
    c.valueForm = CompressedHead::ValueForm::Quantized;
    c.quantizedValues = values.codes;
    CompressedHead::EntropyCoded coded;
    coded.keyStreamBytes = keys.streamBytes;
    coded.valueStreamBytes = values.streamBytes;
    coded.sideBytes = keys.sideBytes + values.sideBytes;
    coded.keyEntropyBits = keys.entropyBits;
    coded.valueEntropyBits = values.entropyBits;
    coded.elements = static_cast<std::size_t>(in.keys.size() + in.values.size());
    coded.keyElements = static_cast<std::size_t>(in.keys.size());
    coded.keySideBytes = keys.sideBytes;
    c.entropyCoded = coded;
    in.finish(c, h);
    return c;
}

// A code width: 2, 3, 4 or 8 bits — and 0, "the common width", for the per-tensor ones.
ParamSpec bitsParam(const char* key, const char* label, double defaultValue, const char* help,
                    std::vector<std::string> overriddenBy = {}) {
    ParamSpec s{key, label, 2, 8, defaultValue, false, true, "bits", help};
    s.overriddenBy = std::move(overriddenBy);
    s.choices = {2, 3, 4, 8};
    if (defaultValue == 0) {
        s.choices.insert(s.choices.begin(), 0);
        s.minimum = 0;
    }
    return s;
}

ParamSpec rotationParam() {
    ParamSpec s{"rotation",
                "Hadamard block",
                0,
                256,
                0,
                false,
                true,
                "",
                "rotate keys and values by a block-wise Walsh–Hadamard transform of this size "
                "before rounding (spreads outliers; queries are rotated alike, nothing is "
                "stored); 0 = none, else a power of two dividing the head dim"};
    s.choices = {0, 2, 4, 8, 16, 32, 64, 128, 256};
    return s;
}

ParamSpec preRopeParam() {
    ParamSpec s{"pre_rope",
                "Keys before RoPE",
                0,
                1,
                0,
                false,
                true,
                "",
                "1 = quantize the keys before the rotary embedding, where each channel keeps "
                "its scale across positions (KVQuant); decoded and rotated on load. RoPE "
                "models only"};
    s.choices = {0, 1};
    return s;
}

ParamSpec outliersParam() {
    return {"outliers",
            "Outliers kept (fraction)",
            0,
            0.25,
            0,
            false,
            false,
            "",
            "fraction of the elements kept exact at fp16 beside the codes, 48 bits each (32-bit "
            "index, fp16 value), and left out of their groups' ranges: the farthest from their "
            "channel's mean for keys, their token's for values (KVQuant keeps 1%); 0 = none"};
}

ParamSpec recentParam() {
    return {"recent",
            "Recent window (tokens)",
            0,
            4096,
            0,
            false,
            true,
            "tokens",
            "the last tokens kept dense at fp16 beside the codes (KIVI keeps 32–128): the ones "
            "decoding attends to most; 0 = none"};
}

} // namespace

void addCodecSchemes(std::vector<std::unique_ptr<Scheme>>& out) {
    out.push_back(makeScheme(
        {"codec.uniform",
         "codec",
         "Uniform quantization (KIVI grouping)",
         "Keeps every token and rounds each key and value to one of 2^b levels between its "
         "group's minimum and maximum (scale and minimum stored fp16): keys grouped per channel "
         "over G tokens, where their outliers live, values per token over G channels. Costs "
         "b + 32/G bits per element; a fraction f of outliers kept dense adds f·48, a recent "
         "window keeps the last tokens at fp16 (16 bits).",
         {bitsParam("bits", "Bits", 4, "code width of keys and values (unless set apart below)",
                    {"key_bits", "value_bits"}),
          bitsParam("key_bits", "Key bits", 0, "key code width; 0 = Bits"),
          bitsParam("value_bits", "Value bits", 0, "value code width; 0 = Bits"),
          {"group", "Group size G", 4, 256, 32, true, true, "",
           "elements sharing one scale and minimum; must divide the head dim"},
          rotationParam(),
          preRopeParam(),
          outliersParam(),
          recentParam()},
         "bits"},
        uniformCodec));
    out.push_back(makeScheme(
        {"codec.entropy",
         "codec",
         "Entropy-coded rounding",
         "Keeps every token, rounds each element to a multiple of its channel's step α·σ "
         "around the channel mean, and codes the symbols with a range ANS coder: the bytes are "
         "the bitstream's real length plus its frequency table and steps, next to the symbols' "
         "empirical entropy. The device holds the decoded fixed-width codes; a recent window "
         "keeps the last tokens at fp16.",
         // From 0.05: ±4σ is then 80 steps, inside the ±127 symbols kept before clipping.
         {{"alpha", "Step α (× σ)", 0.05, 4, 0.5, true, false, "",
           "rounding step in units of the channel's standard deviation; larger = fewer bits"},
          rotationParam(),
          preRopeParam(),
          recentParam()},
         "alpha"},
        entropyCodec));
}

} // namespace kvs::schemes
