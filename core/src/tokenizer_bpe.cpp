// SPDX-License-Identifier: MIT
// BPE tokenizers: GPT-2 byte-level (vocab.json + merges.txt) and Hugging Face tokenizer.json BPE
// models (byte-level, Llama-3/Qwen2 Split regexes, Metaspace, byte fallback, character
// vocabularies).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "kvs/file_util.h"
#include "kvs/tokenizer.h"
#include "unicode_bytes.h"

#include <nlohmann/json.hpp>
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <utility>

namespace kvs {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// PCRE2 regular expressions (UTF + Unicode properties, as Hugging Face's Oniguruma patterns expect)

class RegexError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// White space as Python's `regex` module (GPT-2's own encoder) and Hugging Face's Oniguruma define
// \s: U+0009..U+000D, U+0085 and the Z categories. PCRE2 10.42's \s also takes U+180E (Mongolian
// vowel separator, a format character since Unicode 6.3) from its \h list, so patterns are
// rewritten to this explicit class before compiling.
constexpr std::string_view kSpaceClassBody = R"(\t-\r\x{85}\p{Z})";

std::string withExplicitWhiteSpace(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size() + 32);
    bool inClass = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char next = pattern[++i];
            if (next == 's') {
                out += inClass ? std::string(kSpaceClassBody)
                               : "[" + std::string(kSpaceClassBody) + "]";
            } else if (next == 'S' && !inClass) {
                out += "[^" + std::string(kSpaceClassBody) + "]";
            } else if (next == 'Q') { // \Q...\E quotes everything up to \E
                const std::size_t end = pattern.find("\\E", i + 1);
                const std::size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
                out.append(pattern.substr(i - 1, stop - (i - 1)));
                i = stop - 1;
            } else {
                out += c;
                out += next;
            }
            continue;
        }
        if (!inClass && c == '[') {
            inClass = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal member of the class.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^')
                out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']')
                out += pattern[++i];
            continue;
        }
        if (inClass && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
            const std::size_t end = pattern.find(":]", i + 2); // [:alpha:] inside a class
            if (end != std::string_view::npos) {
                out.append(pattern.substr(i, end + 2 - i));
                i = end + 1;
                continue;
            }
        }
        if (inClass && c == ']')
            inClass = false;
        out += c;
    }
    return out;
}

class Regex {
public:
    explicit Regex(const std::string& pattern) : m_pattern(pattern) {
        // Compiled as written first, so that an error's offset points into what the file says.
        m_code.reset(compile(pattern));
        m_code.reset(compile(withExplicitWhiteSpace(pattern)));
        pcre2_jit_compile(m_code.get(), PCRE2_JIT_COMPLETE); // an interpreter fallback is fine
    }

    const std::string& pattern() const { return m_pattern; }

    // Non-overlapping, non-empty matches, left to right, as [begin, end) byte offsets.
    std::vector<std::pair<std::size_t, std::size_t>> findAll(std::string_view text) const {
        std::vector<std::pair<std::size_t, std::size_t>> matches;
        std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
            pcre2_match_data_create_from_pattern(m_code.get(), nullptr));
        if (!data)
            throw std::bad_alloc();
        const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
        std::size_t offset = 0;
        while (offset < text.size()) {
            const int rc =
                pcre2_match(m_code.get(), subject, text.size(), offset, 0, data.get(), nullptr);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                throw Error(ErrorCode::Internal,
                            "regular expression /" + m_pattern + "/ failed: " + errorMessage(rc));
            const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
            const std::size_t begin = ovector[0];
            const std::size_t end = ovector[1];
            if (end > begin) {
                matches.emplace_back(begin, end);
                offset = end;
            } else {
                // An empty match: step over one character and search again.
                offset = begin + 1;
                while (offset < text.size() &&
                       (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80)
                    ++offset;
            }
        }
        return matches;
    }

private:
    static pcre2_code* compile(const std::string& pattern) {
        int errorCode = 0;
        PCRE2_SIZE errorOffset = 0;
        // MATCH_INVALID_UTF: text that is not valid UTF-8 is searched rather than rejected; invalid
        // bytes never match and end up in the gaps between matches (which are kept as pieces).
        pcre2_code* code = pcre2_compile(
            reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errorCode, &errorOffset, nullptr);
        if (!code)
            throw RegexError(errorMessage(errorCode) + " at offset " + std::to_string(errorOffset));
        return code;
    }

    static std::string errorMessage(int code) {
        PCRE2_UCHAR buffer[256];
        if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0)
            return "PCRE2 error " + std::to_string(code);
        return reinterpret_cast<const char*>(buffer);
    }
    struct CodeDeleter {
        void operator()(pcre2_code* code) const { pcre2_code_free(code); }
    };
    struct MatchDataDeleter {
        void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
    };
    std::string m_pattern;
    std::unique_ptr<pcre2_code, CodeDeleter> m_code;
};

std::shared_ptr<const Regex> gpt2Regex() {
    static const auto regex = std::make_shared<const Regex>(kGpt2SplitPattern);
    return regex;
}

// A Hugging Face pattern: {"Regex": "..."} or {"String": "..."} (a literal).
struct Pattern {
    std::shared_ptr<const Regex> regex;
    std::string literal;

    std::vector<std::pair<std::size_t, std::size_t>> findAll(std::string_view text) const {
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

    std::string replaceAll(std::string_view text, std::string_view content) const {
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
};

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

DecoderStep decoderStep(DecoderStep::Kind kind) {
    DecoderStep step;
    step.kind = kind;
    return step;
}

// GPT-2's pre-tokenizer: its regex, no prefix space, bytes mapped to printable characters.
PreTokenizerStep byteLevelStep() {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::ByteLevel;
    return step;
}

// A piece of text during pre-tokenization; atStart: it begins at offset 0 of the caller's text
// (Metaspace's prepend_scheme "first" prepends only there).
struct Piece {
    std::string text;
    bool atStart = false;
};

// Where a run of model tokens sits, which decides whether a prepended "▁"/space is stripped.
enum class RunPosition { SequenceStart, AfterAddedToken, Isolated };

struct AddedToken {
    std::string content;
    TokenId id = 0;
    bool lstrip = false, rstrip = false, singleWord = false, special = false;
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using PieceMap = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

struct MergeResult {
    std::int32_t rank;
    TokenId result;
};

constexpr std::uint64_t pairKey(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
}

// Everything a BPE tokenizer is made of; filled by the loaders, validated there.
struct BpeSpec {
    std::string source; // the file named in errors
    std::vector<std::string> pieces;
    std::vector<bool> present; // pieces[id] is a vocabulary entry
    PieceMap vocab;
    std::unordered_map<std::uint64_t, MergeResult> merges;
    std::vector<AddedToken> added;
    std::optional<TokenId> unk;
    bool fuseUnk = false;
    bool byteFallback = false;
    bool ignoreMerges = false;
    std::vector<NormalizerStep> normalizers;
    std::vector<PreTokenizerStep> preTokenizers;
    std::vector<DecoderStep> decoders;
};

bool isAsciiSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool isWordByte(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || u == '_' || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') ||
           (u >= 'A' && u <= 'Z');
}

bool startsWith(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

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

// ---------------------------------------------------------------------------------------------

class BpeTokenizer final : public Tokenizer {
public:
    explicit BpeTokenizer(BpeSpec spec) : m_spec(std::move(spec)) {
        for (const PreTokenizerStep& step : m_spec.preTokenizers)
            if (step.kind == PreTokenizerStep::Kind::ByteLevel)
                m_byteLevel = true;
        const auto hasDecoder = [this](DecoderStep::Kind kind) {
            return std::any_of(m_spec.decoders.begin(), m_spec.decoders.end(),
                               [kind](const DecoderStep& s) { return s.kind == kind; });
        };
        // Every token must decode back to text: byte-level symbols need the ByteLevel decoder and
        // byte-fallback pieces the ByteFallback decoder, even where the file forgot to name them.
        if (m_byteLevel && !hasDecoder(DecoderStep::Kind::ByteLevel))
            m_spec.decoders.insert(m_spec.decoders.begin(),
                                   decoderStep(DecoderStep::Kind::ByteLevel));
        if (m_spec.byteFallback && !hasDecoder(DecoderStep::Kind::ByteFallback))
            m_spec.decoders.push_back(decoderStep(DecoderStep::Kind::ByteFallback));
        if (m_spec.byteFallback)
            for (unsigned b = 0; b < 256; ++b) {
                const auto it =
                    m_spec.vocab.find(unicode::byteEscape(static_cast<std::uint8_t>(b)));
                if (it != m_spec.vocab.end())
                    m_byteFallbackIds[b] = it->second;
            }

        std::size_t size = m_spec.pieces.size();
        for (const AddedToken& token : m_spec.added)
            size = std::max(size, static_cast<std::size_t>(token.id) + 1);
        m_addedIndex.assign(size, -1);
        for (std::size_t i = 0; i < m_spec.added.size(); ++i) {
            const AddedToken& token = m_spec.added[i];
            m_addedIndex[static_cast<std::size_t>(token.id)] = static_cast<std::int32_t>(i);
            m_addedByContent[token.content] = token.id;
            m_addedByFirstByte[static_cast<unsigned char>(token.content[0])].push_back(i);
        }
        for (auto& candidates : m_addedByFirstByte)
            std::stable_sort(candidates.begin(), candidates.end(), [this](auto a, auto b) {
                return m_spec.added[a].content.size() > m_spec.added[b].content.size();
            });
    }

    std::string kind() const override { return m_byteLevel ? "gpt2-bpe" : "bpe"; }
    std::size_t vocabSize() const override { return m_addedIndex.size(); }

    std::vector<TokenId> encode(std::string_view text) const override {
        std::vector<TokenId> ids;
        ids.reserve(text.size() / 3 + 1);
        std::size_t segmentStart = 0;
        std::size_t pos = 0;
        while (pos < text.size()) {
            const auto match = matchAddedToken(text, pos, segmentStart);
            if (!match) {
                ++pos;
                continue;
            }
            const auto& [begin, end, token] = *match;
            if (begin > segmentStart)
                encodeSegment(text.substr(segmentStart, begin - segmentStart), segmentStart == 0,
                              ids);
            ids.push_back(token->id);
            segmentStart = pos = end;
        }
        if (segmentStart < text.size())
            encodeSegment(text.substr(segmentStart), segmentStart == 0, ids);
        return ids;
    }

    std::string decode(std::span<const TokenId> ids) const override {
        std::string out;
        std::vector<std::string_view> run;
        RunPosition runPosition = RunPosition::SequenceStart;
        const auto flush = [&] {
            if (!run.empty())
                out += decodeRun(run, runPosition);
            run.clear();
        };
        for (std::size_t i = 0; i < ids.size(); ++i) {
            checkId(ids[i]);
            if (const AddedToken* token = addedToken(ids[i])) {
                flush();
                out += token->content;
                continue;
            }
            if (run.empty())
                runPosition = i == 0 ? RunPosition::SequenceStart : RunPosition::AfterAddedToken;
            run.push_back(m_spec.pieces[static_cast<std::size_t>(ids[i])]);
        }
        flush();
        return out;
    }

    std::string tokenText(TokenId id) const override {
        checkId(id);
        std::string text;
        if (const AddedToken* token = addedToken(id)) {
            text = token->content;
        } else {
            const std::string_view piece = m_spec.pieces[static_cast<std::size_t>(id)];
            text = decodeRun({&piece, 1}, RunPosition::Isolated);
        }
        return unicode::isValidUtf8(text) ? text : unicode::escapeBytes(text);
    }

    std::string tokenPiece(TokenId id) const override {
        checkId(id);
        if (const AddedToken* token = addedToken(id))
            return token->content;
        return m_spec.pieces[static_cast<std::size_t>(id)];
    }

    std::optional<TokenId> tokenId(std::string_view piece) const override {
        if (const auto it = m_addedByContent.find(piece); it != m_addedByContent.end())
            return it->second;
        if (const auto it = m_spec.vocab.find(piece); it != m_spec.vocab.end())
            return it->second;
        return std::nullopt;
    }

private:
    struct AddedMatch {
        std::size_t begin, end;
        const AddedToken* token;
    };

    const AddedToken* addedToken(TokenId id) const {
        const std::int32_t index = m_addedIndex[static_cast<std::size_t>(id)];
        return index < 0 ? nullptr : &m_spec.added[static_cast<std::size_t>(index)];
    }

    void checkId(TokenId id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= vocabSize())
            throw Error(ErrorCode::InvalidArgument, "token id " + std::to_string(id) +
                                                        " is out of range (vocabulary size " +
                                                        std::to_string(vocabSize()) + ")");
        const auto index = static_cast<std::size_t>(id);
        if (m_addedIndex[index] < 0 && (index >= m_spec.present.size() || !m_spec.present[index]))
            throw Error(ErrorCode::InvalidArgument,
                        "token id " + std::to_string(id) + " is not in the vocabulary of " +
                            m_spec.source + " (its ids have a gap there)");
    }

    // The longest added token at pos (Hugging Face matches them leftmost-longest, before any
    // normalization), with lstrip/rstrip whitespace absorbed and single_word respected.
    std::optional<AddedMatch> matchAddedToken(std::string_view text, std::size_t pos,
                                              std::size_t segmentStart) const {
        for (const std::size_t index : m_addedByFirstByte[static_cast<unsigned char>(text[pos])]) {
            const AddedToken& token = m_spec.added[index];
            if (!startsWith(text.substr(pos), token.content))
                continue;
            std::size_t begin = pos;
            std::size_t end = pos + token.content.size();
            if (token.singleWord && ((begin > 0 && isWordByte(text[begin - 1])) ||
                                     (end < text.size() && isWordByte(text[end]))))
                continue;
            if (token.lstrip)
                while (begin > segmentStart && isAsciiSpace(text[begin - 1]))
                    --begin;
            if (token.rstrip)
                while (end < text.size() && isAsciiSpace(text[end]))
                    ++end;
            return AddedMatch{begin, end, &token};
        }
        return std::nullopt;
    }

    void encodeSegment(std::string_view segment, bool atStart, std::vector<TokenId>& ids) const {
        std::string normalized(segment);
        for (const NormalizerStep& step : m_spec.normalizers) {
            switch (step.kind) {
            case NormalizerStep::Kind::Prepend:
                if (!normalized.empty())
                    normalized.insert(0, step.text);
                break;
            case NormalizerStep::Kind::Replace:
                normalized = step.pattern.replaceAll(normalized, step.text);
                break;
            case NormalizerStep::Kind::Identity:
                break;
            }
        }
        std::vector<Piece> pieces;
        if (!normalized.empty())
            pieces.push_back({std::move(normalized), atStart});
        for (const PreTokenizerStep& step : m_spec.preTokenizers) {
            std::vector<Piece> next;
            for (Piece& piece : pieces)
                applyPreTokenizer(step, std::move(piece), next);
            pieces = std::move(next);
        }
        for (const Piece& piece : pieces)
            encodeWord(piece.text, ids);
    }

    static void applyPreTokenizer(const PreTokenizerStep& step, Piece piece,
                                  std::vector<Piece>& out) {
        switch (step.kind) {
        case PreTokenizerStep::Kind::ByteLevel: {
            if (step.addPrefixSpace && !startsWith(piece.text, " "))
                piece.text.insert(0, " ");
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

    // One pre-tokenized word through the BPE model.
    void encodeWord(std::string_view word, std::vector<TokenId>& ids) const {
        if (m_spec.ignoreMerges) {
            if (const auto it = m_spec.vocab.find(word); it != m_spec.vocab.end()) {
                ids.push_back(it->second);
                return;
            }
        }
        if (m_spec.merges.empty()) {
            appendSymbols(word, ids);
            return;
        }
        constexpr std::size_t kMaxCachedWordBytes = 256;
        constexpr std::size_t kMaxCacheEntries = 1 << 16;
        const bool cacheable = word.size() <= kMaxCachedWordBytes;
        if (cacheable) {
            std::lock_guard lock(m_cacheMutex);
            if (const auto it = m_cache.find(word); it != m_cache.end()) {
                ids.insert(ids.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        std::vector<TokenId> symbols;
        appendSymbols(word, symbols);
        applyMerges(symbols);
        ids.insert(ids.end(), symbols.begin(), symbols.end());
        if (cacheable) {
            std::lock_guard lock(m_cacheMutex);
            if (m_cache.size() >= kMaxCacheEntries)
                m_cache.clear();
            m_cache.emplace(std::string(word), std::move(symbols));
        }
    }

    // The word's characters as vocabulary ids: the character itself, else its UTF-8 bytes as
    // <0xXX> pieces (byte_fallback), else the unknown token, else an error naming the character.
    void appendSymbols(std::string_view word, std::vector<TokenId>& ids) const {
        bool previousUnk = false;
        for (std::size_t pos = 0; pos < word.size();) {
            const std::size_t length = unicode::nextUtf8(word, pos).length;
            const std::string_view character = word.substr(pos, length);
            pos += length;
            if (const auto it = m_spec.vocab.find(character); it != m_spec.vocab.end()) {
                ids.push_back(it->second);
                previousUnk = false;
                continue;
            }
            if (m_spec.byteFallback &&
                std::all_of(character.begin(), character.end(), [this](char c) {
                    return m_byteFallbackIds[static_cast<unsigned char>(c)].has_value();
                })) {
                for (const char c : character)
                    ids.push_back(*m_byteFallbackIds[static_cast<unsigned char>(c)]);
                previousUnk = false;
                continue;
            }
            if (m_spec.unk) {
                if (!(m_spec.fuseUnk && previousUnk))
                    ids.push_back(*m_spec.unk);
                previousUnk = true;
                continue;
            }
            throw Error(ErrorCode::InvalidArgument, describeMissing(character) +
                                                        " is not in the vocabulary of " +
                                                        m_spec.source);
        }
    }

    std::string describeMissing(std::string_view character) const {
        if (m_byteLevel) {
            const auto c = unicode::nextUtf8(character, 0);
            if (const auto byte =
                    c.codePoint ? unicode::codePointToByte(*c.codePoint) : std::nullopt) {
                const std::string escape = unicode::byteEscape(*byte);
                return "byte " + escape.substr(1, 4) + " (byte-level symbol '" +
                       std::string(character) + "')";
            }
        }
        return unicode::describeCharacter(character);
    }

    // Applies merges lowest rank first, leftmost first among equal ranks. For merges learnt in
    // order this is exactly GPT-2's "merge every occurrence of the best pair, repeat".
    void applyMerges(std::vector<TokenId>& symbols) const {
        if (symbols.size() < 2)
            return;
        struct Symbol {
            TokenId id;
            std::int32_t prev, next;
        };
        struct Candidate {
            std::int32_t rank;
            std::int32_t left;
            TokenId leftId, rightId, result;
        };
        const auto later = [](const Candidate& a, const Candidate& b) {
            return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
        };
        constexpr TokenId kDead = -1;
        const auto count = static_cast<std::int32_t>(symbols.size());
        std::vector<Symbol> list(symbols.size());
        for (std::int32_t i = 0; i < count; ++i)
            list[static_cast<std::size_t>(i)] = {symbols[static_cast<std::size_t>(i)], i - 1,
                                                 i + 1 < count ? i + 1 : -1};
        std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
        const auto consider = [&](std::int32_t left) {
            const Symbol& l = list[static_cast<std::size_t>(left)];
            if (l.next < 0)
                return;
            const TokenId rightId = list[static_cast<std::size_t>(l.next)].id;
            const auto it = m_spec.merges.find(pairKey(l.id, rightId));
            if (it != m_spec.merges.end())
                queue.push({it->second.rank, left, l.id, rightId, it->second.result});
        };
        for (std::int32_t i = 0; i + 1 < count; ++i)
            consider(i);
        while (!queue.empty()) {
            const Candidate c = queue.top();
            queue.pop();
            Symbol& l = list[static_cast<std::size_t>(c.left)];
            if (l.id != c.leftId || l.next < 0)
                continue;
            Symbol& r = list[static_cast<std::size_t>(l.next)];
            if (r.id != c.rightId)
                continue;
            l.id = c.result;
            r.id = kDead;
            l.next = r.next;
            if (r.next >= 0)
                list[static_cast<std::size_t>(r.next)].prev = c.left;
            if (l.prev >= 0)
                consider(l.prev);
            consider(c.left);
        }
        symbols.clear();
        for (std::int32_t i = 0; i >= 0; i = list[static_cast<std::size_t>(i)].next)
            symbols.push_back(list[static_cast<std::size_t>(i)].id);
    }

    // The decoder chain over a run of model tokens (added tokens are spliced in literally).
    std::string decodeRun(std::span<const std::string_view> pieces, RunPosition position) const {
        std::vector<std::string> tokens(pieces.begin(), pieces.end());
        for (const DecoderStep& step : m_spec.decoders)
            applyDecoder(step, tokens, position);
        std::string out;
        for (const std::string& token : tokens)
            out += token;
        return out;
    }

    static void applyDecoder(const DecoderStep& step, std::vector<std::string>& tokens,
                             RunPosition position) {
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

    BpeSpec m_spec;
    bool m_byteLevel = false;
    std::array<std::optional<TokenId>, 256> m_byteFallbackIds{};
    std::vector<std::int32_t> m_addedIndex; // by id: index into m_spec.added, or -1
    PieceMap m_addedByContent;
    std::array<std::vector<std::size_t>, 256> m_addedByFirstByte;
    mutable std::mutex m_cacheMutex;
    mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>>
        m_cache;
};

// ---------------------------------------------------------------------------------------------
// Reading the files

// Errors while reading one file: every message starts with the file's name.
class FileContext {
public:
    explicit FileContext(const std::filesystem::path& path) : m_name(path.string()) {}
    const std::string& name() const { return m_name; }
    [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
        throw Error(code, m_name + ": " + what);
    }

    json parseJson(const std::string& text) const {
        try {
            return json::parse(text);
        } catch (const json::parse_error& e) {
            // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
            std::string what = e.what();
            if (const auto bracket = what.find("] ");
                what.starts_with("[json.") && bracket != std::string::npos)
                what.erase(0, bracket + 2);
            fail(ErrorCode::Format, "not valid JSON (" + what + ")");
        }
    }

    bool boolField(const json& object, const char* key, bool fallback,
                   const std::string& where) const {
        const auto it = object.find(key);
        if (it == object.end() || it->is_null())
            return fallback;
        if (!it->is_boolean())
            fail(ErrorCode::Format, where + "." + key + " is not true or false");
        return it->get<bool>();
    }

    std::optional<std::string> stringField(const json& object, const char* key,
                                           const std::string& where) const {
        const auto it = object.find(key);
        if (it == object.end() || it->is_null())
            return std::nullopt;
        if (!it->is_string())
            fail(ErrorCode::Format, where + "." + key + " is not a string");
        return it->get<std::string>();
    }

    std::string typeOf(const json& object, const std::string& where) const {
        if (!object.is_object())
            fail(ErrorCode::Format, where + " is not an object");
        const auto type = stringField(object, "type", where);
        if (!type)
            fail(ErrorCode::Format, where + " has no \"type\"");
        return *type;
    }

    Pattern pattern(const json& object, const std::string& where) const {
        if (!object.is_object())
            fail(ErrorCode::Format, where + " is not an object");
        if (const auto literal = stringField(object, "String", where))
            return Pattern{nullptr, *literal};
        if (const auto regex = stringField(object, "Regex", where)) {
            try {
                return Pattern{std::make_shared<const Regex>(*regex), {}};
            } catch (const RegexError& e) {
                fail(ErrorCode::Format,
                     where + ": regular expression /" + *regex + "/ does not compile: " + e.what());
            }
        }
        fail(ErrorCode::Format, where + " has neither \"String\" nor \"Regex\"");
    }

private:
    std::string m_name;
};

TokenId parseId(const FileContext& file, const json& value, const std::string& what) {
    if (!value.is_number_integer())
        file.fail(ErrorCode::Format,
                  what + " has an id that is not an integer (" + value.dump() + ")");
    const auto id = value.get<std::int64_t>();
    // Ids index dense tables; a vocabulary beyond 16M entries is a corrupt file, not a model.
    constexpr std::int64_t kMaxId = (std::int64_t{1} << 24) - 1;
    if (id < 0 || id > kMaxId)
        file.fail(ErrorCode::Format, what + " has id " + std::to_string(id) + ", outside 0.." +
                                         std::to_string(kMaxId));
    return static_cast<TokenId>(id);
}

void readVocab(const FileContext& file, const json& vocab, const std::string& where,
               BpeSpec& spec) {
    if (!vocab.is_object())
        file.fail(ErrorCode::Format, where + " is not an object mapping pieces to ids");
    if (vocab.empty())
        file.fail(ErrorCode::Format, where + " is empty");
    spec.vocab.reserve(vocab.size());
    for (const auto& [piece, value] : vocab.items()) {
        const TokenId id = parseId(file, value, "vocabulary entry \"" + piece + "\"");
        const auto index = static_cast<std::size_t>(id);
        if (index >= spec.pieces.size()) {
            spec.pieces.resize(index + 1);
            spec.present.resize(index + 1, false);
        }
        if (spec.present[index])
            file.fail(ErrorCode::Format, "vocabulary ids are not unique: \"" + spec.pieces[index] +
                                             "\" and \"" + piece + "\" both have id " +
                                             std::to_string(id));
        spec.pieces[index] = piece;
        spec.present[index] = true;
        spec.vocab.emplace(piece, id);
    }
}

void addMerge(const FileContext& file, BpeSpec& spec, const std::string& left,
              const std::string& right, const std::string& where) {
    const auto describe = [&] { return where + " (\"" + left + " " + right + "\")"; };
    const auto l = spec.vocab.find(left);
    if (l == spec.vocab.end())
        file.fail(ErrorCode::Format,
                  describe() + " names \"" + left + "\", which is not in the vocabulary");
    const auto r = spec.vocab.find(right);
    if (r == spec.vocab.end())
        file.fail(ErrorCode::Format,
                  describe() + " names \"" + right + "\", which is not in the vocabulary");
    const auto result = spec.vocab.find(left + right);
    if (result == spec.vocab.end())
        file.fail(ErrorCode::Format,
                  describe() + " makes \"" + left + right + "\", which is not in the vocabulary");
    // A repeated merge keeps its first (best) rank.
    spec.merges.try_emplace(
        pairKey(l->second, r->second),
        MergeResult{static_cast<std::int32_t>(spec.merges.size()), result->second});
}

void readMerges(const FileContext& file, const json& merges, BpeSpec& spec) {
    if (merges.is_null())
        return;
    if (!merges.is_array())
        file.fail(ErrorCode::Format, "model.merges is not a list");
    spec.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
        const json& merge = merges[i];
        const std::string where = "merge #" + std::to_string(i + 1);
        if (merge.is_string()) {
            // "a b": exactly two symbols separated by one space (symbols with spaces need the
            // list spelling).
            const std::string text = merge.get<std::string>();
            const auto space = text.find(' ');
            if (space == std::string::npos || space == 0 || space + 1 == text.size() ||
                text.find(' ', space + 1) != std::string::npos)
                file.fail(ErrorCode::Format,
                          where + " (\"" + text + "\") is not two symbols separated by one space");
            addMerge(file, spec, text.substr(0, space), text.substr(space + 1), where);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                   merge[1].is_string() && !merge[0].get_ref<const std::string&>().empty() &&
                   !merge[1].get_ref<const std::string&>().empty()) {
            addMerge(file, spec, merge[0].get<std::string>(), merge[1].get<std::string>(), where);
        } else {
            file.fail(ErrorCode::Format, where + " (" + merge.dump() +
                                             ") is neither \"a b\" nor a list of two symbols");
        }
    }
}

PrependScheme readPrependScheme(const FileContext& file, const json& object,
                                const std::string& where) {
    if (const auto scheme = file.stringField(object, "prepend_scheme", where)) {
        if (*scheme == "first")
            return PrependScheme::First;
        if (*scheme == "always")
            return PrependScheme::Always;
        if (*scheme == "never")
            return PrependScheme::Never;
        file.fail(ErrorCode::Format,
                  where + ".prepend_scheme \"" + *scheme + "\" is not first, always or never");
    }
    // Files written before prepend_scheme existed say add_prefix_space.
    return file.boolField(object, "add_prefix_space", true, where) ? PrependScheme::Always
                                                                   : PrependScheme::Never;
}

std::string readReplacement(const FileContext& file, const json& object, const std::string& where) {
    const std::string replacement =
        file.stringField(object, "replacement", where).value_or("\u2581");
    if (replacement.empty())
        file.fail(ErrorCode::Format, where + ".replacement is empty");
    return replacement;
}

void readNormalizer(const FileContext& file, const json& object, const std::string& where,
                    std::vector<NormalizerStep>& steps) {
    if (object.is_null())
        return;
    const std::string type = file.typeOf(object, where);
    if (type == "Sequence") {
        const auto it = object.find("normalizers");
        if (it == object.end() || !it->is_array())
            file.fail(ErrorCode::Format, where + ".normalizers is not a list");
        for (std::size_t i = 0; i < it->size(); ++i)
            readNormalizer(file, (*it)[i], where + ".normalizers[" + std::to_string(i) + "]",
                           steps);
    } else if (type == "Prepend") {
        NormalizerStep step{NormalizerStep::Kind::Prepend, {}, {}};
        step.text = file.stringField(object, "prepend", where).value_or("");
        steps.push_back(std::move(step));
    } else if (type == "Replace") {
        NormalizerStep step{NormalizerStep::Kind::Replace, {}, {}};
        const auto pattern = object.find("pattern");
        if (pattern == object.end())
            file.fail(ErrorCode::Format, where + " has no pattern");
        step.pattern = file.pattern(*pattern, where + ".pattern");
        step.text = file.stringField(object, "content", where).value_or("");
        steps.push_back(std::move(step));
    } else if (type == "NFC") {
        // Canonical composition is left out (it needs the Unicode composition tables): text that
        // is already NFC, as nearly all text is, is unchanged by it.
        steps.push_back({NormalizerStep::Kind::Identity, {}, {}});
    } else {
        file.fail(ErrorCode::Unsupported, where + " type \"" + type + "\" is not supported");
    }
}

SplitBehavior readBehavior(const FileContext& file, const json& object, const std::string& where) {
    const std::string behavior = file.stringField(object, "behavior", where).value_or("Isolated");
    if (behavior == "Removed")
        return SplitBehavior::Removed;
    if (behavior == "Isolated")
        return SplitBehavior::Isolated;
    if (behavior == "MergedWithPrevious")
        return SplitBehavior::MergedWithPrevious;
    if (behavior == "MergedWithNext")
        return SplitBehavior::MergedWithNext;
    if (behavior == "Contiguous")
        return SplitBehavior::Contiguous;
    file.fail(ErrorCode::Format, where + ".behavior \"" + behavior + "\" is not known");
}

void readPreTokenizer(const FileContext& file, const json& object, const std::string& where,
                      std::vector<PreTokenizerStep>& steps) {
    if (object.is_null())
        return;
    const std::string type = file.typeOf(object, where);
    PreTokenizerStep step;
    if (type == "Sequence") {
        const auto it = object.find("pretokenizers");
        if (it == object.end() || !it->is_array())
            file.fail(ErrorCode::Format, where + ".pretokenizers is not a list");
        for (std::size_t i = 0; i < it->size(); ++i)
            readPreTokenizer(file, (*it)[i], where + ".pretokenizers[" + std::to_string(i) + "]",
                             steps);
        return;
    } else if (type == "ByteLevel") {
        step.kind = PreTokenizerStep::Kind::ByteLevel;
        step.addPrefixSpace = file.boolField(object, "add_prefix_space", false, where);
        step.useRegex = file.boolField(object, "use_regex", true, where);
    } else if (type == "Split") {
        const auto pattern = object.find("pattern");
        if (pattern == object.end())
            file.fail(ErrorCode::Format, where + " has no pattern");
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = file.pattern(*pattern, where + ".pattern");
        step.behavior = readBehavior(file, object, where);
        step.invert = file.boolField(object, "invert", false, where);
    } else if (type == "Metaspace") {
        step.kind = PreTokenizerStep::Kind::Metaspace;
        step.replacement = readReplacement(file, object, where);
        step.prependScheme = readPrependScheme(file, object, where);
        step.split = file.boolField(object, "split", true, where);
    } else if (type == "Digits") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = Pattern{std::make_shared<const Regex>(R"(\p{N})"), {}};
        step.behavior = file.boolField(object, "individual_digits", false, where)
                            ? SplitBehavior::Isolated
                            : SplitBehavior::Contiguous;
    } else if (type == "WhitespaceSplit") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = Pattern{std::make_shared<const Regex>(R"(\s+)"), {}};
        step.behavior = SplitBehavior::Removed;
    } else if (type == "Whitespace") {
        step.kind = PreTokenizerStep::Kind::Split;
        step.pattern = Pattern{std::make_shared<const Regex>(R"(\w+|[^\w\s]+)"), {}};
        step.behavior = SplitBehavior::Removed;
        step.invert = true;
    } else {
        file.fail(ErrorCode::Unsupported, where + " type \"" + type + "\" is not supported");
    }
    steps.push_back(std::move(step));
}

void readDecoder(const FileContext& file, const json& object, const std::string& where,
                 std::vector<DecoderStep>& steps) {
    if (object.is_null())
        return;
    const std::string type = file.typeOf(object, where);
    DecoderStep step;
    if (type == "Sequence") {
        const auto it = object.find("decoders");
        if (it == object.end() || !it->is_array())
            file.fail(ErrorCode::Format, where + ".decoders is not a list");
        for (std::size_t i = 0; i < it->size(); ++i)
            readDecoder(file, (*it)[i], where + ".decoders[" + std::to_string(i) + "]", steps);
        return;
    } else if (type == "ByteLevel") {
        step.kind = DecoderStep::Kind::ByteLevel;
    } else if (type == "Metaspace") {
        step.kind = DecoderStep::Kind::Metaspace;
        step.replacement = readReplacement(file, object, where);
        step.prependScheme = readPrependScheme(file, object, where);
    } else if (type == "Replace") {
        const auto pattern = object.find("pattern");
        if (pattern == object.end())
            file.fail(ErrorCode::Format, where + " has no pattern");
        step.kind = DecoderStep::Kind::Replace;
        step.pattern = file.pattern(*pattern, where + ".pattern");
        step.content = file.stringField(object, "content", where).value_or("");
    } else if (type == "ByteFallback") {
        step.kind = DecoderStep::Kind::ByteFallback;
    } else if (type == "Fuse") {
        step.kind = DecoderStep::Kind::Fuse;
    } else if (type == "Strip") {
        step.kind = DecoderStep::Kind::Strip;
        step.content = file.stringField(object, "content", where).value_or(" ");
        const auto count = [&](const char* key) -> std::size_t {
            const auto it = object.find(key);
            if (it == object.end() || it->is_null())
                return 0;
            if (!it->is_number_unsigned())
                file.fail(ErrorCode::Format, where + "." + key + " is not a count");
            return it->get<std::size_t>();
        };
        step.stripStart = count("start");
        step.stripStop = count("stop");
    } else {
        file.fail(ErrorCode::Unsupported, where + " type \"" + type + "\" is not supported");
    }
    steps.push_back(std::move(step));
}

void readAddedTokens(const FileContext& file, const json& list, BpeSpec& spec) {
    if (list.is_null())
        return;
    if (!list.is_array())
        file.fail(ErrorCode::Format, "added_tokens is not a list");
    for (std::size_t i = 0; i < list.size(); ++i) {
        const json& entry = list[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        if (!entry.is_object())
            file.fail(ErrorCode::Format, where + " is not an object");
        AddedToken token;
        token.content = file.stringField(entry, "content", where).value_or("");
        if (token.content.empty())
            file.fail(ErrorCode::Format, where + " has no content");
        const auto id = entry.find("id");
        if (id == entry.end())
            file.fail(ErrorCode::Format, where + " (\"" + token.content + "\") has no id");
        token.id = parseId(file, *id, where + " (\"" + token.content + "\")");
        token.lstrip = file.boolField(entry, "lstrip", false, where);
        token.rstrip = file.boolField(entry, "rstrip", false, where);
        token.singleWord = file.boolField(entry, "single_word", false, where);
        token.special = file.boolField(entry, "special", false, where);
        spec.added.push_back(std::move(token));
    }
}

// Special ids when nothing says otherwise (loadTokenizer applies tokenizer_config.json on top).
void guessSpecialIds(Tokenizer& tokenizer) {
    const auto first = [&](std::initializer_list<const char*> names) -> std::optional<TokenId> {
        for (const char* name : names)
            if (const auto id = tokenizer.tokenId(name))
                return id;
        return std::nullopt;
    };
    auto bos = first({"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"});
    const auto eos = first({"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"});
    // GPT-2 begins and ends documents with <|endoftext|>.
    if (!bos && tokenizer.kind() == "gpt2-bpe")
        bos = tokenizer.tokenId("<|endoftext|>");
    tokenizer.setSpecialIds(bos, eos);
}

std::unique_ptr<Tokenizer> readTokenizerJson(const std::filesystem::path& path) {
    const FileContext file(path);
    const json root = file.parseJson(readFile(path));
    if (!root.is_object())
        file.fail(ErrorCode::Format, "is not a JSON object");
    const auto model = root.find("model");
    if (model == root.end() || !model->is_object())
        file.fail(ErrorCode::Format, "has no \"model\" object");
    std::string type = file.stringField(*model, "type", "model").value_or("");
    if (type.empty() && model->contains("merges"))
        type = "BPE"; // early tokenizer.json files leave the BPE type implicit
    if (type != "BPE")
        file.fail(ErrorCode::Unsupported,
                  "model type \"" + type +
                      "\" is not supported (tokenizer.json models must be BPE; SentencePiece "
                      "models load from tokenizer.model)");

    BpeSpec spec;
    spec.source = file.name();
    const auto vocab = model->find("vocab");
    if (vocab == model->end())
        file.fail(ErrorCode::Format, "model has no vocab");
    readVocab(file, *vocab, "model.vocab", spec);
    if (const auto merges = model->find("merges"); merges != model->end())
        readMerges(file, *merges, spec);
    if (const auto unk = file.stringField(*model, "unk_token", "model")) {
        const auto it = spec.vocab.find(*unk);
        if (it == spec.vocab.end())
            file.fail(ErrorCode::Format,
                      "model.unk_token \"" + *unk + "\" is not in the vocabulary");
        spec.unk = it->second;
    }
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (const auto value = file.stringField(*model, affix, "model"); value && !value->empty())
            file.fail(ErrorCode::Unsupported,
                      std::string("model.") + affix + " (\"" + *value + "\") is not supported");
    spec.fuseUnk = file.boolField(*model, "fuse_unk", false, "model");
    spec.byteFallback = file.boolField(*model, "byte_fallback", false, "model");
    spec.ignoreMerges = file.boolField(*model, "ignore_merges", false, "model");

    const auto section = [&](const char* key) -> const json& {
        static const json null;
        const auto it = root.find(key);
        return it == root.end() ? null : *it;
    };
    readAddedTokens(file, section("added_tokens"), spec);
    readNormalizer(file, section("normalizer"), "normalizer", spec.normalizers);
    readPreTokenizer(file, section("pre_tokenizer"), "pre_tokenizer", spec.preTokenizers);
    readDecoder(file, section("decoder"), "decoder", spec.decoders);

    auto tokenizer = std::make_unique<BpeTokenizer>(std::move(spec));
    guessSpecialIds(*tokenizer);
    return tokenizer;
}

std::unique_ptr<Tokenizer> readGpt2VocabMerges(const std::filesystem::path& vocabJson,
                                               const std::filesystem::path& mergesTxt) {
    const FileContext vocabFile(vocabJson);
    BpeSpec spec;
    spec.source = vocabFile.name();
    readVocab(vocabFile, vocabFile.parseJson(readFile(vocabJson)), "the vocabulary", spec);

    const FileContext mergesFile(mergesTxt);
    const std::string text = readFile(mergesTxt);
    std::size_t lineNumber = 0;
    for (std::size_t begin = 0; begin < text.size();) {
        std::size_t end = text.find('\n', begin);
        if (end == std::string::npos)
            end = text.size();
        std::string_view line(text.data() + begin, end - begin);
        begin = end + 1;
        ++lineNumber;
        if (line.ends_with('\r'))
            line.remove_suffix(1);
        if (line.empty() || (lineNumber == 1 && line.starts_with("#version")))
            continue;
        const std::string where = "line " + std::to_string(lineNumber);
        const auto space = line.find(' ');
        if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
            line.find(' ', space + 1) != std::string_view::npos)
            mergesFile.fail(ErrorCode::Format, where + " (\"" + std::string(line) +
                                                   "\") is not two symbols separated by one space");
        addMerge(mergesFile, spec, std::string(line.substr(0, space)),
                 std::string(line.substr(space + 1)), where);
    }
    spec.preTokenizers.push_back(byteLevelStep());
    spec.decoders.push_back(decoderStep(DecoderStep::Kind::ByteLevel));
    // GPT-2's one special token, matched literally in text as Hugging Face does.
    if (const auto it = spec.vocab.find("<|endoftext|>"); it != spec.vocab.end())
        spec.added.push_back({it->first, it->second, false, false, false, true});
    auto tokenizer = std::make_unique<BpeTokenizer>(std::move(spec));
    guessSpecialIds(*tokenizer);
    return tokenizer;
}

} // namespace

Result<std::unique_ptr<Tokenizer>> loadTokenizerJson(const std::filesystem::path& tokenizerJson) {
    return catchErrors([&] { return readTokenizerJson(tokenizerJson); });
}

Result<std::unique_ptr<Tokenizer>> loadGpt2VocabMerges(const std::filesystem::path& vocabJson,
                                                       const std::filesystem::path& mergesTxt) {
    return catchErrors([&] { return readGpt2VocabMerges(vocabJson, mergesTxt); });
}

} // namespace kvs
