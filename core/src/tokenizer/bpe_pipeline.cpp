// SPDX-License-Identifier: MIT
// The BPE pipeline's steps: how each normalizer, pre-tokenizer and decoder transforms its text.
#include "tokenizer/bpe_pipeline.h"

#include "kvs/tokenizer.h"
#include "unicode_bytes.h"

#include <algorithm>
#include <optional>

namespace kvs {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace bpe {

namespace {

// Splits a piece at the pattern's matches the way Hugging Face's SplitDelimiterBehavior does.
std::vector<Piece> splitPiece(const Piece& piece, const Pattern& pattern, SplitBehavior behavior,
                              bool invert) {
    struct Span {
        std::size_t begin, end;
        bool isMatch;
    };
    const std::string_view text = piece.text;
    std::vector<Span> spans;
    std::size_t last = 0;
    for (const auto& [begin, end] : pattern.findAll(text)) {
        if (begin > last)
            spans.push_back({last, begin, invert});
        spans.push_back({begin, end, !invert});
        last = end;
    }
    if (last < text.size())
        spans.push_back({last, text.size(), invert});

    std::vector<Span> merged;
    switch (behavior) {
    case SplitBehavior::Removed:
        for (const Span& s : spans)
            if (!s.isMatch)
                merged.push_back(s);
        break;
    case SplitBehavior::Isolated:
        merged = spans;
        break;
    case SplitBehavior::MergedWithPrevious: {
        bool previousMatch = false;
        for (const Span& s : spans) {
            if (s.isMatch && !previousMatch && !merged.empty())
                merged.back().end = s.end;
            else
                merged.push_back(s);
            previousMatch = s.isMatch;
        }
        break;
    }
    case SplitBehavior::MergedWithNext: {
        bool nextMatch = false;
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            if (it->isMatch && !nextMatch && !merged.empty())
                merged.back().begin = it->begin;
            else
                merged.push_back(*it);
            nextMatch = it->isMatch;
        }
        std::reverse(merged.begin(), merged.end());
        break;
    }
    case SplitBehavior::Contiguous: {
        bool previousMatch = false;
        for (const Span& s : spans) {
            if (s.isMatch && previousMatch && !merged.empty())
                merged.back().end = s.end;
            else
                merged.push_back(s);
            previousMatch = s.isMatch;
        }
        break;
    }
    }
    std::vector<Piece> out;
    for (const Span& s : merged)
        if (s.end > s.begin)
            out.push_back({std::string(text.substr(s.begin, s.end - s.begin)),
                           piece.atStart && s.begin == 0});
    return out;
}

std::string mapBytesToUnicode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes)
        out += unicode::byteToUtf8(static_cast<std::uint8_t>(c));
    return out;
}

// The bytes a byte-level token stands for; a token with characters outside the table (an added
// token such as "<｜end▁of▁sentence｜>") stands for its own UTF-8 text.
std::string mapUnicodeToBytes(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const unicode::Utf8Char c = unicode::nextUtf8(text, pos);
        const auto byte = c.codePoint ? unicode::codePointToByte(*c.codePoint) : std::nullopt;
        if (!byte)
            return std::string(text);
        out.push_back(static_cast<char>(*byte));
        pos += c.length;
    }
    return out;
}

void replaceAllLiteral(std::string& text, std::string_view from, std::string_view to) {
    if (from.empty())
        return;
    std::string out;
    std::size_t last = 0;
    for (std::size_t pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + from.size())) {
        out.append(text, last, pos - last);
        out.append(to);
        last = pos + from.size();
    }
    if (last == 0)
        return;
    out.append(text, last, std::string::npos);
    text = std::move(out);
}

} // namespace

std::vector<std::pair<std::size_t, std::size_t>> Pattern::findAll(std::string_view text) const {
    if (regex)
        return regex->findAll(text);
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    if (literal.empty())
        return matches;
    for (std::size_t pos = text.find(literal); pos != std::string_view::npos;
         pos = text.find(literal, pos + literal.size()))
        matches.emplace_back(pos, pos + literal.size());
    return matches;
}

std::string Pattern::replaceAll(std::string_view text, std::string_view content) const {
    std::string out;
    std::size_t last = 0;
    for (const auto& [begin, end] : findAll(text)) {
        out.append(text.substr(last, begin - last));
        out.append(content);
        last = end;
    }
    out.append(text.substr(last));
    return out;
}

std::shared_ptr<const Regex> gpt2Regex() {
    static const auto regex = std::make_shared<const Regex>(kGpt2SplitPattern);
    return regex;
}

DecoderStep decoderStep(DecoderStep::Kind kind) {
    DecoderStep step;
    step.kind = kind;
    return step;
}

PreTokenizerStep byteLevelStep() {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::ByteLevel;
    return step;
}

bool startsWith(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

std::string normalize(std::string text, const std::vector<NormalizerStep>& steps) {
    for (const NormalizerStep& step : steps) {
        switch (step.kind) {
        case NormalizerStep::Kind::Prepend:
            if (!text.empty())
                text.insert(0, step.text);
            break;
        case NormalizerStep::Kind::Replace:
            text = step.pattern.replaceAll(text, step.text);
            break;
        case NormalizerStep::Kind::Identity:
            break;
        }
    }
    return text;
}

void applyPreTokenizer(const PreTokenizerStep& step, Piece piece, std::vector<Piece>& out) {
    switch (step.kind) {
    case PreTokenizerStep::Kind::ByteLevel: {
        if (step.addPrefixSpace && !startsWith(piece.text, " "))
            piece.text.insert(piece.text.begin(), ' ');
        if (!step.useRegex) {
            out.push_back({mapBytesToUnicode(piece.text), piece.atStart});
            return;
        }
        for (Piece& sub :
             splitPiece(piece, Pattern{gpt2Regex(), {}}, SplitBehavior::Isolated, false))
            out.push_back({mapBytesToUnicode(sub.text), sub.atStart});
        return;
    }
    case PreTokenizerStep::Kind::Split:
        for (Piece& sub : splitPiece(piece, step.pattern, step.behavior, step.invert))
            out.push_back(std::move(sub));
        return;
    case PreTokenizerStep::Kind::Metaspace: {
        replaceAllLiteral(piece.text, " ", step.replacement);
        const bool prepend = !startsWith(piece.text, step.replacement) &&
                             (step.prependScheme == PrependScheme::Always ||
                              (step.prependScheme == PrependScheme::First && piece.atStart));
        if (prepend)
            piece.text.insert(0, step.replacement);
        if (!step.split) {
            out.push_back(std::move(piece));
            return;
        }
        for (Piece& sub : splitPiece(piece, Pattern{nullptr, step.replacement},
                                     SplitBehavior::MergedWithNext, false))
            out.push_back(std::move(sub));
        return;
    }
    }
}

void applyDecoder(const DecoderStep& step, std::vector<std::string>& tokens, RunPosition position) {
    switch (step.kind) {
    case DecoderStep::Kind::ByteLevel:
        for (std::string& token : tokens)
            token = mapUnicodeToBytes(token);
        return;
    case DecoderStep::Kind::Metaspace: {
        // Strip the space that encoding prepended: at the start of the text for "first",
        // after every added token too for "always" (mirroring where encode prepends).
        const bool strip =
            position != RunPosition::Isolated && (step.prependScheme == PrependScheme::Always ||
                                                  (step.prependScheme == PrependScheme::First &&
                                                   position == RunPosition::SequenceStart));
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            const bool leading = strip && i == 0 && startsWith(tokens[i], step.replacement);
            replaceAllLiteral(tokens[i], step.replacement, " ");
            if (leading)
                tokens[i].erase(0, 1);
        }
        return;
    }
    case DecoderStep::Kind::Replace:
        for (std::string& token : tokens)
            token = step.pattern.replaceAll(token, step.content);
        return;
    case DecoderStep::Kind::ByteFallback: {
        // Byte pieces become their bytes (kept raw: a run that is not valid UTF-8 on its own
        // still concatenates correctly with its neighbours).
        for (std::string& token : tokens)
            if (const auto byte = unicode::parseByteEscape(token))
                token = std::string(1, static_cast<char>(*byte));
        return;
    }
    case DecoderStep::Kind::Fuse: {
        std::string fused;
        for (const std::string& token : tokens)
            fused += token;
        tokens.assign(1, std::move(fused));
        return;
    }
    case DecoderStep::Kind::Strip:
        // Mirrors a Prepend normalizer, so it applies where encoding prepended.
        if (position == RunPosition::Isolated)
            return;
        for (std::string& token : tokens) {
            for (std::size_t n = 0; n < step.stripStart && startsWith(token, step.content); ++n)
                token.erase(0, step.content.size());
            for (std::size_t n = 0; n < step.stripStop && token.size() >= step.content.size() &&
                                    token.ends_with(step.content);
                 ++n)
                token.erase(token.size() - step.content.size());
        }
        return;
    }
}

} // namespace bpe

} // namespace kvs
