// SPDX-License-Identifier: MIT
// SentencePiece tokenizer.model files (Llama-2, Mistral, T5...) through libsentencepiece.
#include "kvs/file_util.h"
#include "kvs/tokenizer.h"
#include "unicode_bytes.h"

#include <sentencepiece_processor.h>

#include <exception>
#include <string>

namespace kvs {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
public:
    SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor,
                           std::string source)
        : m_processor(std::move(processor)), m_source(std::move(source)) {}

    std::string kind() const override { return "sentencepiece"; }
    std::size_t vocabSize() const override {
        return static_cast<std::size_t>(m_processor->GetPieceSize());
    }

    std::vector<TokenId> encode(std::string_view text) const override {
        std::vector<int> ids;
        const auto status = m_processor->Encode(text, &ids);
        if (!status.ok())
            throw Error(ErrorCode::InvalidArgument,
                        m_source + ": SentencePiece could not encode the text (" +
                            status.ToString() + ")");
        return {ids.begin(), ids.end()};
    }

    std::string decode(std::span<const TokenId> ids) const override {
        for (const TokenId id : ids)
            checkId(id);
        std::string text;
        const auto status = m_processor->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
        if (!status.ok())
            throw Error(ErrorCode::InvalidArgument,
                        m_source + ": SentencePiece could not decode the ids (" +
                            status.ToString() + ")");
        return text;
    }

    // The piece as display text: "▁" is a space, a byte piece is its byte when that byte is a
    // character on its own (ASCII) and stays "<0xE2>" otherwise; control and unknown pieces show
    // as themselves ("<s>", "<unk>") rather than as the nothing they decode to.
    std::string tokenText(TokenId id) const override {
        checkId(id);
        const std::string& piece = m_processor->IdToPiece(id);
        if (m_processor->IsByte(id)) {
            const auto byte = unicode::parseByteEscape(piece);
            if (byte && *byte < 0x80)
                return std::string(1, static_cast<char>(*byte));
            return piece;
        }
        if (m_processor->IsControl(id) || m_processor->IsUnknown(id) || m_processor->IsUnused(id))
            return piece;
        std::string text;
        for (std::size_t pos = piece.find("\u2581"), last = 0;; pos = piece.find("\u2581", last)) {
            if (pos == std::string::npos) {
                text.append(piece, last, std::string::npos);
                break;
            }
            text.append(piece, last, pos - last);
            text.push_back(' ');
            last = pos + 3;
        }
        return unicode::isValidUtf8(text) ? text : unicode::escapeBytes(text);
    }

    std::string tokenPiece(TokenId id) const override {
        checkId(id);
        return m_processor->IdToPiece(id);
    }

    std::optional<TokenId> tokenId(std::string_view piece) const override {
        // PieceToId answers the unknown id for pieces it does not know.
        const int id = m_processor->PieceToId(piece);
        if (id < 0 || id >= m_processor->GetPieceSize() || m_processor->IdToPiece(id) != piece)
            return std::nullopt;
        return id;
    }

private:
    void checkId(TokenId id) const {
        if (id < 0 || id >= m_processor->GetPieceSize())
            throw Error(ErrorCode::InvalidArgument,
                        "token id " + std::to_string(id) + " is out of range (vocabulary size " +
                            std::to_string(m_processor->GetPieceSize()) + ")");
    }

    std::unique_ptr<sentencepiece::SentencePieceProcessor> m_processor;
    std::string m_source;
};

std::unique_ptr<Tokenizer> readSentencePiece(const std::filesystem::path& path) {
    const std::string bytes = readFile(path, kMaxTokenizerBytes);
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    sentencepiece::util::Status status;
    try {
        status = processor->LoadFromSerializedProto(bytes);
    } catch (const std::exception& e) {
        // The library reports most faults as a status, but its trie builder (darts-clone) throws:
        // a unigram piece that begins with a NUL byte is an empty key to it.
        std::string what = e.what(); // "./third_party/darts_clone/darts.h:1143: exception: ..."
        if (const auto at = what.find("exception: "); at != std::string::npos)
            what.erase(0, at + 11);
        if (what.find("zero-length key") != std::string::npos)
            what += "; a piece begins with a NUL byte";
        throw Error(ErrorCode::Format,
                    path.string() + ": not a usable SentencePiece model (" + what + ")");
    }
    if (!status.ok())
        throw Error(ErrorCode::Format,
                    path.string() + ": not a SentencePiece model (" + status.ToString() + ")");
    if (processor->GetPieceSize() <= 0)
        throw Error(ErrorCode::Format, path.string() + ": the SentencePiece model has no pieces");
    const auto specialId = [&](int id) -> std::optional<TokenId> {
        if (id < 0 || id >= processor->GetPieceSize())
            return std::nullopt;
        return id;
    };
    const std::optional<TokenId> bos = specialId(processor->bos_id());
    const std::optional<TokenId> eos = specialId(processor->eos_id());
    auto tokenizer = std::make_unique<SentencePieceTokenizer>(std::move(processor), path.string());
    tokenizer->setSpecialIds(bos, eos);
    return tokenizer;
}

} // namespace

Result<std::unique_ptr<Tokenizer>> loadSentencePiece(const std::filesystem::path& tokenizerModel) {
    return catchErrors(
        [&]() -> std::unique_ptr<Tokenizer> { return readSentencePiece(tokenizerModel); });
}

} // namespace kvs
