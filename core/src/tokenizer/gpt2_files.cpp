// SPDX-License-Identifier: MIT
// GPT-2's own files: vocab.json (piece -> id) and merges.txt (one "a b" merge a line, ranked by
// order), with GPT-2's byte-level pre-tokenizer and decoder and <|endoftext|> as its one special
// token.
#include "kvs/file_util.h"
#include "kvs/tokenizer.h"
#include "tokenizer/bpe_files.h"

namespace kvs {

namespace {

using namespace bpe;

std::unique_ptr<Tokenizer> readGpt2VocabMerges(const std::filesystem::path& vocabJson,
                                               const std::filesystem::path& mergesTxt) {
    const FileContext vocabFile(vocabJson);
    BpeSpec spec;
    spec.source = vocabFile.name();
    readVocab(vocabFile, vocabFile.parseJson(readFile(vocabJson, kMaxTokenizerBytes)),
              "the vocabulary", spec);

    const FileContext mergesFile(mergesTxt);
    const std::string text = readFile(mergesTxt, kMaxTokenizerBytes);
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
        addMergeLine(mergesFile, spec, line, "line " + std::to_string(lineNumber));
    }
    spec.preTokenizers.push_back(byteLevelStep());
    spec.decoders.push_back(decoderStep(DecoderStep::Kind::ByteLevel));
    // GPT-2's one special token, matched literally in text as Hugging Face does.
    if (const auto it = spec.vocab.find("<|endoftext|>"); it != spec.vocab.end())
        spec.added.push_back({it->first, it->second, false, false, false, true});
    auto tokenizer = makeBpeTokenizer(std::move(spec));
    guessSpecialIds(*tokenizer);
    return tokenizer;
}

} // namespace

Result<std::unique_ptr<Tokenizer>> loadGpt2VocabMerges(const std::filesystem::path& vocabJson,
                                                       const std::filesystem::path& mergesTxt) {
    return catchErrors([&] { return readGpt2VocabMerges(vocabJson, mergesTxt); });
}

} // namespace kvs
