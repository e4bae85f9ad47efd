// SPDX-License-Identifier: MIT
// The BPE model: added tokens matched first, the pipeline around the model, merges applied by
// rank (with a cache of encoded words), and the decoder chain back to text.
#include "tokenizer/bpe.h"

#include "unicode_bytes.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <queue>
#include <utility>

namespace kvs::bpe {

namespace {

bool isAsciiSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool isWordByte(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || u == '_' || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') ||
           (u >= 'A' && u <= 'Z');
}

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
        std::string normalized = normalize(std::string(segment), m_spec.normalizers);
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

} // namespace

std::unique_ptr<Tokenizer> makeBpeTokenizer(BpeSpec spec) {
    return std::make_unique<BpeTokenizer>(std::move(spec));
}

} // namespace kvs::bpe
