// SPDX-License-Identifier: MIT
// The BPE pipeline around the model: normalizers, pre-tokenizers and decoders (the subset of
// Hugging Face's that BPE models ship with), and the patterns they split and replace at.
#pragma once

#include "tokenizer/pcre2_regex.h"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvs::bpe {

// A Hugging Face pattern: {"Regex": "..."} or {"String": "..."} (a literal).
struct Pattern {
    std::shared_ptr<const Regex> regex;
    std::string literal;

    // Non-overlapping matches, left to right, as [begin, end) byte offsets.
    std::vector<std::pair<std::size_t, std::size_t>> findAll(std::string_view text) const;
    // The text with every match replaced by content.
    std::string replaceAll(std::string_view text, std::string_view content) const;
};

// GPT-2's split pattern (kGpt2SplitPattern), compiled once.
std::shared_ptr<const Regex> gpt2Regex();

// ---------------------------------------------------------------------------------------------
// Pipeline steps (the subset of Hugging Face's normalizers, pre-tokenizers and decoders that BPE
// models ship with). Sequences are flattened into these lists when the file is read.

struct NormalizerStep {
    enum class Kind { Prepend, Replace, Identity };
    Kind kind = Kind::Identity;
    std::string text; // Prepend: what is prepended; Replace: the replacement
    Pattern pattern;  // Replace
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
enum class PrependScheme { First, Always, Never };

struct PreTokenizerStep {
    enum class Kind { ByteLevel, Split, Metaspace };
    Kind kind = Kind::Split;
    bool addPrefixSpace = false; // ByteLevel
    bool useRegex = true;        // ByteLevel
    Pattern pattern;             // Split
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    std::string replacement = "\u2581"; // Metaspace
    PrependScheme prependScheme = PrependScheme::Always;
    bool split = true;
};

struct DecoderStep {
    enum class Kind { ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip };
    Kind kind = Kind::Fuse;
    std::string replacement = "\u2581"; // Metaspace
    PrependScheme prependScheme = PrependScheme::Always;
    Pattern pattern; // Replace
    std::string content;
    std::size_t stripStart = 0, stripStop = 0; // Strip (content = the stripped character)
};

// A step of the given kind with its defaults.
DecoderStep decoderStep(DecoderStep::Kind kind);

// GPT-2's pre-tokenizer: its regex, no prefix space, bytes mapped to printable characters.
PreTokenizerStep byteLevelStep();

// A piece of text during pre-tokenization; atStart: it begins at offset 0 of the caller's text
// (Metaspace's prepend_scheme "first" prepends only there).
struct Piece {
    std::string text;
    bool atStart = false;
};

// Where a run of model tokens sits, which decides whether a prepended "▁"/space is stripped.
enum class RunPosition { SequenceStart, AfterAddedToken, Isolated };

bool startsWith(std::string_view text, std::string_view prefix);

// The normalizers in order over one segment of text (between added tokens).
std::string normalize(std::string text, const std::vector<NormalizerStep>& steps);

// One pre-tokenizer over one piece; the resulting pieces are appended to out.
void applyPreTokenizer(const PreTokenizerStep& step, Piece piece, std::vector<Piece>& out);

// One decoder over a run of model tokens, in place.
void applyDecoder(const DecoderStep& step, std::vector<std::string>& tokens, RunPosition position);

} // namespace kvs::bpe
