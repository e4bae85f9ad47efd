// SPDX-License-Identifier: MIT
// Tokenizers on hand-made vocabularies: BPE results worked out by hand, both merge spellings, added
// tokens, Split/Metaspace pre-tokenizers, byte fallback, unknown tokens, character and byte
// vocabularies, special ids, and every bad-file error.
#include "kvs/tokenizer.h"
#include "kvs_test.h"

#include <QObject>
#include <QTest>
#include <nlohmann/json.hpp>
#include <thread>

using namespace kvs;
using kvs::test::TempDir;
using kvs::test::writeBytes;
using json = nlohmann::json;
namespace fs = std::filesystem;

// Readable QCOMPARE failures for the std types these tests compare.
namespace QTest {
template <> inline char* toString(const std::string& text) {
    return qstrdup(("\"" + text + "\"").c_str());
}
template <> inline char* toString(const std::optional<kvs::TokenId>& id) {
    return qstrdup(id ? std::to_string(*id).c_str() : "nullopt");
}
} // namespace QTest

namespace {

using Ids = std::vector<TokenId>;

QString str(const Ids& ids) {
    QStringList parts;
    for (const TokenId id : ids)
        parts << QString::number(id);
    return "[" + parts.join(", ") + "]";
}

std::string utf8(char32_t cp) {
    std::string out;
    const auto c = static_cast<unsigned>(cp);
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
    return out;
}

// GPT-2's bytes_to_unicode, written out here independently of the implementation: printable
// Latin-1 bytes stand for themselves, the other 68 take U+0100, U+0101, ... in byte order.
std::string byteSymbol(unsigned byte) {
    const auto keeps = [](unsigned b) {
        return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    if (keeps(byte))
        return utf8(byte);
    char32_t next = 0x100;
    for (unsigned b = 0; b < byte; ++b)
        if (!keeps(b))
            ++next;
    return utf8(next);
}

// The 256 byte symbols with id = byte value.
json byteVocab() {
    json vocab = json::object();
    for (unsigned b = 0; b < 256; ++b)
        vocab[byteSymbol(b)] = b;
    return vocab;
}

json byteLevelPre(bool useRegex = true, bool addPrefixSpace = false) {
    return {{"type", "ByteLevel"},
            {"add_prefix_space", addPrefixSpace},
            {"trim_offsets", true},
            {"use_regex", useRegex}};
}

json byteLevelDecoder() {
    return {{"type", "ByteLevel"},
            {"add_prefix_space", true},
            {"trim_offsets", true},
            {"use_regex", true}};
}

// A tokenizer.json as the project's generator writes it.
json tokenizerJson(json vocab, json merges, json preTokenizer, json decoder) {
    return {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", json::array()},
            {"normalizer", nullptr},
            {"pre_tokenizer", std::move(preTokenizer)},
            {"post_processor", nullptr},
            {"decoder", std::move(decoder)},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"vocab", std::move(vocab)},
              {"merges", std::move(merges)}}}};
}

json addedToken(TokenId id, const std::string& content, bool lstrip = false, bool rstrip = false) {
    return {{"id", id},         {"content", content},  {"single_word", false}, {"lstrip", lstrip},
            {"rstrip", rstrip}, {"normalized", false}, {"special", true}};
}

Result<std::unique_ptr<Tokenizer>> loadJson(const TempDir& dir, const std::string& name,
                                            const json& tokenizer) {
    const fs::path path = dir / name;
    writeBytes(path, tokenizer.dump(2));
    return loadTokenizerJson(path);
}

// Toy byte-level BPE: the 256 bytes plus these merges, results numbered from 256.
//   "l o" -> lo (256), "lo w" -> low (257), "e r" -> er (258), "Ġ low" -> Ġlow (259)
json toyByteVocab() {
    json vocab = byteVocab();
    vocab["lo"] = 256;
    vocab["low"] = 257;
    vocab["er"] = 258;
    vocab["\xC4\xA0low"] = 259; // "Ġlow"
    return vocab;
}
const std::vector<std::pair<std::string, std::string>> kToyMerges = {
    {"l", "o"}, {"lo", "w"}, {"e", "r"}, {"\xC4\xA0", "low"}};

json mergesAsStrings(const std::vector<std::pair<std::string, std::string>>& merges) {
    json list = json::array();
    for (const auto& [a, b] : merges)
        list.push_back(a + " " + b);
    return list;
}

json mergesAsLists(const std::vector<std::pair<std::string, std::string>>& merges) {
    json list = json::array();
    for (const auto& [a, b] : merges)
        list.push_back(json::array({a, b}));
    return list;
}

template <class Fn> ErrorCode codeOf(const Result<Fn>& result) {
    return result.error().code();
}

// Toy SentencePiece-style vocabulary for Metaspace tests.
//   merges: "▁ h" -> ▁h (9), "e l" -> el (10), "▁h el" -> ▁hel (11), "l o" -> lo (12),
//           "▁hel lo" -> ▁hello (13)
const std::string kMeta = "\xE2\x96\x81"; // ▁
json metaVocab() {
    return {{"<unk>", 0}, {kMeta, 1},
            {"h", 2},     {"e", 3},
            {"l", 4},     {"o", 5},
            {"w", 6},     {"r", 7},
            {"d", 8},     {kMeta + "h", 9},
            {"el", 10},   {kMeta + "hel", 11},
            {"lo", 12},   {kMeta + "hello", 13},
            {"<s>", 14}};
}
json metaMerges() {
    return json::array({kMeta + " h", "e l", kMeta + "h el", "l o", kMeta + "hel lo"});
}
json metaspace(const std::string& scheme) {
    return {
        {"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", scheme}, {"split", true}};
}

} // namespace

class TestTokenizer : public QObject {
    Q_OBJECT

private slots:
    void gpt2ByteTable();
    void byteLevelMergesByHand();
    void mergeRankOrder();
    void repeatedPairsMergeLeftFirst();
    void bothMergeSpellings();
    void listMergesAllowSpacesInSymbols();
    void vocabMergesFiles();
    void addedTokens();
    void addedTokenStripping();
    void addPrefixSpace();
    void llama3SplitRegex();
    void whiteSpaceIsUnicodeWhiteSpace();
    void splitBehaviors();
    void ignoreMerges();
    void metaspaceAlways();
    void metaspaceNever();
    void metaspaceFirstWithAddedToken();
    void llama2NormalizerAndDecoders();
    void byteFallback();
    void unknownToken();
    void characterVocabularyRoundTrip();
    void characterVocabularyRejectsUnknownCharacters();
    void byteVocabularyRoundTrip();
    void tokenTextEscapesPartialBytes();
    void invalidUtf8ThroughTheRegex();
    void outOfRangeIds();
    void loadTokenizerPreference();
    void tokenizerConfigSpecialIds();
    void concurrentEncoding();
    void folderErrors();
    void malformedFiles();
    void malformedFiles_data();
    void malformedVocabMerges();
};

void TestTokenizer::gpt2ByteTable() {
    // A tokenizer whose vocabulary is exactly the byte symbols shows the table through tokenPiece.
    TempDir dir;
    auto r = loadJson(
        dir, "t.json",
        tokenizerJson(byteVocab(), json::array(), byteLevelPre(false), byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(str(tok.encode(" ")), str({32}));
    QCOMPARE(tok.tokenPiece(32), std::string("\xC4\xA0"));   // Ġ (U+0120)
    QCOMPARE(tok.tokenPiece(10), std::string("\xC4\x8A"));   // Ċ (U+010A)
    QCOMPARE(tok.tokenPiece(0), std::string("\xC4\x80"));    // Ā (U+0100)
    QCOMPARE(tok.tokenPiece(0x7F), std::string("\xC4\xA1")); // ġ (U+0121)
    QCOMPARE(tok.tokenPiece(0xAD), std::string("\xC5\x83")); // Ń (U+0143)
    QCOMPARE(tok.tokenPiece('A'), std::string("A"));
    QCOMPARE(tok.tokenPiece(0xE9), std::string("\xC3\xA9")); // é stands for byte 0xE9
    QCOMPARE(tok.tokenId("\xC4\xA0"), std::optional<TokenId>(32));
    QCOMPARE(tok.tokenText(32), std::string(" "));
    QCOMPARE(tok.tokenText(10), std::string("\n"));
    QCOMPARE(tok.kind(), std::string("gpt2-bpe"));
    QCOMPARE(tok.vocabSize(), std::size_t(256));
}

void TestTokenizer::byteLevelMergesByHand() {
    TempDir dir;
    auto r = loadJson(dir, "t.json",
                      tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges), byteLevelPre(),
                                    byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    // "low" -> l o w -(l o)-> lo w -(lo w)-> low
    QCOMPARE(str(tok.encode("low")), str({257}));
    // " lower" -> Ġ l o w e r -> Ġ lo w e r -> Ġ low e r -> Ġ low er -> Ġlow er
    QCOMPARE(str(tok.encode(" lower")), str({259, 258}));
    QCOMPARE(str(tok.encode("low lower")), str({257, 259, 258}));
    // "lowest": no merge for e s or s t
    QCOMPARE(str(tok.encode("lowest")), str({257, 'e', 's', 't'}));
    // Pre-tokenization keeps words apart: "lo" and " w" are separate words, so no "lo w" merge.
    QCOMPARE(str(tok.encode("lo w")), str({256, ' ', 'w'}));
    QCOMPARE(tok.decode(tok.encode("low lower, lowest!")), std::string("low lower, lowest!"));
    QCOMPARE(tok.tokenText(259), std::string(" low"));
    QCOMPARE(tok.tokenPiece(259), std::string("\xC4\xA0low"));
    QCOMPARE(tok.tokenId("er"), std::optional<TokenId>(258));
    QCOMPARE(tok.tokenId("nope"), std::optional<TokenId>());
    QCOMPARE(tok.vocabSize(), std::size_t(260));
}

void TestTokenizer::mergeRankOrder() {
    TempDir dir;
    json vocab = byteVocab();
    vocab["ab"] = 256;
    vocab["bc"] = 257;
    // "b c" ranks first: a b c -> a bc (and "a bc" is not a merge).
    auto first = loadJson(
        dir, "bc.json",
        tokenizerJson(vocab, json::array({"b c", "a b"}), byteLevelPre(), byteLevelDecoder()));
    KVS_VERIFY_OK(first);
    QCOMPARE(str(first.value()->encode("abc")), str({'a', 257}));
    // "a b" ranks first: a b c -> ab c.
    auto second = loadJson(
        dir, "ab.json",
        tokenizerJson(vocab, json::array({"a b", "b c"}), byteLevelPre(), byteLevelDecoder()));
    KVS_VERIFY_OK(second);
    QCOMPARE(str(second.value()->encode("abc")), str({256, 'c'}));
}

void TestTokenizer::repeatedPairsMergeLeftFirst() {
    TempDir dir;
    json vocab = byteVocab();
    vocab["aa"] = 256;
    vocab["aaaa"] = 257;
    auto r = loadJson(
        dir, "t.json",
        tokenizerJson(vocab, json::array({"a a", "aa aa"}), byteLevelPre(), byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(str(tok.encode("aaa")), str({256, 'a'}));   // leftmost pair first: aa a
    QCOMPARE(str(tok.encode("aaaa")), str({257}));       // aa aa -> aaaa
    QCOMPARE(str(tok.encode("aaaaa")), str({257, 'a'})); // aa aa a -> aaaa a
    QCOMPARE(str(tok.encode("aaaaaa")), str({257, 256}));
}

void TestTokenizer::bothMergeSpellings() {
    TempDir dir;
    auto strings = loadJson(dir, "strings.json",
                            tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges),
                                          byteLevelPre(), byteLevelDecoder()));
    auto lists = loadJson(dir, "lists.json",
                          tokenizerJson(toyByteVocab(), mergesAsLists(kToyMerges), byteLevelPre(),
                                        byteLevelDecoder()));
    KVS_VERIFY_OK(strings);
    KVS_VERIFY_OK(lists);
    for (const char* text : {"low lower lowest", " lower", "slow flower"})
        QCOMPARE(str(lists.value()->encode(text)), str(strings.value()->encode(text)));
    QCOMPARE(str(lists.value()->encode("low lower")), str({257, 259, 258}));
}

void TestTokenizer::listMergesAllowSpacesInSymbols() {
    // A character vocabulary where " " is a symbol: only the list spelling can name the merge.
    TempDir dir;
    const json vocab = {{"a", 0}, {" ", 1}, {"a ", 2}};
    auto r =
        loadJson(dir, "t.json",
                 tokenizerJson(vocab, json::array({json::array({"a", " "})}), nullptr, nullptr));
    KVS_VERIFY_OK(r);
    QCOMPARE(str(r.value()->encode("a a")), str({2, 0}));
    QCOMPARE(r.value()->decode(Ids{2, 0}), std::string("a a"));
    QCOMPARE(r.value()->kind(), std::string("bpe"));
}

void TestTokenizer::vocabMergesFiles() {
    TempDir dir;
    json vocab = toyByteVocab();
    vocab["<|endoftext|>"] = 260;
    writeBytes(dir / "vocab.json", vocab.dump());
    std::string merges = "#version: 0.2\n";
    for (const auto& [a, b] : kToyMerges)
        merges += a + " " + b + "\n";
    writeBytes(dir / "merges.txt", merges);
    auto r = loadGpt2VocabMerges(dir / "vocab.json", dir / "merges.txt");
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(tok.kind(), std::string("gpt2-bpe"));
    QCOMPARE(str(tok.encode("low lower")), str({257, 259, 258}));
    // <|endoftext|> is matched literally, as Hugging Face does, and is GPT-2's bos and eos.
    QCOMPARE(str(tok.encode("low<|endoftext|> low")), str({257, 260, 259}));
    QCOMPARE(tok.decode(Ids{257, 260, 259}), std::string("low<|endoftext|> low"));
    QCOMPARE(tok.bosId(), std::optional<TokenId>(260));
    QCOMPARE(tok.eosId(), std::optional<TokenId>(260));
    QCOMPARE(tok.tokenText(260), std::string("<|endoftext|>"));

    // Without the #version line, with CRLF line ends and no final newline: same merges.
    std::string bare;
    for (const auto& [a, b] : kToyMerges)
        bare += a + " " + b + "\r\n";
    bare.resize(bare.size() - 2);
    writeBytes(dir / "bare.txt", bare);
    auto bareTok = loadGpt2VocabMerges(dir / "vocab.json", dir / "bare.txt");
    KVS_VERIFY_OK(bareTok);
    QCOMPARE(str(bareTok.value()->encode("low lower")), str({257, 259, 258}));

    // The same folder through loadTokenizer.
    auto folder = loadTokenizer(dir.path());
    KVS_VERIFY_OK(folder);
    QCOMPARE(str(folder.value()->encode("low lower")), str({257, 259, 258}));
}

void TestTokenizer::addedTokens() {
    TempDir dir;
    json file = tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges), byteLevelPre(),
                              byteLevelDecoder());
    // 260 is in the vocabulary too (as GPT-2's is); 261 exists only as an added token; the
    // shorter "<|end|>" shares a prefix with the longer one.
    file["model"]["vocab"]["<|endoftext|>"] = 260;
    file["added_tokens"] =
        json::array({addedToken(260, "<|endoftext|>"), addedToken(261, "<|end|>")});
    auto r = loadJson(dir, "t.json", file);
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(tok.vocabSize(), std::size_t(262));
    const std::string text = "a<|endoftext|>b<|end|>c<|endoftext|><|end|>";
    QCOMPARE(str(tok.encode(text)), str({'a', 260, 'b', 261, 'c', 260, 261}));
    QCOMPARE(tok.decode(tok.encode(text)), text);
    // Text around an added token is pre-tokenized on its own: " low" still becomes Ġlow.
    QCOMPARE(str(tok.encode("low<|end|> low")), str({257, 261, 259}));
    // A broken-off token is plain text.
    QCOMPARE(str(tok.encode("<|en")), str({'<', '|', 'e', 'n'}));
    QCOMPARE(tok.tokenPiece(261), std::string("<|end|>"));
    QCOMPARE(tok.tokenText(261), std::string("<|end|>"));
    QCOMPARE(tok.tokenId("<|end|>"), std::optional<TokenId>(261));
    // No bos candidate other than <|endoftext|> in a byte-level vocabulary: GPT-2's convention.
    QCOMPARE(tok.eosId(), std::optional<TokenId>(260));
    QCOMPARE(tok.bosId(), std::optional<TokenId>(260));
}

void TestTokenizer::addedTokenStripping() {
    TempDir dir;
    json file = tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges), byteLevelPre(),
                              byteLevelDecoder());
    file["added_tokens"] = json::array(
        {addedToken(300, "<mask>", true, false), addedToken(301, "<sep>", false, true)});
    auto r = loadJson(dir, "t.json", file);
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    // lstrip swallows the spaces before "<mask>", rstrip those after "<sep>".
    QCOMPARE(str(tok.encode("low  <mask>low")), str({257, 300, 257}));
    QCOMPARE(str(tok.encode("low<sep>  low")), str({257, 301, 257}));
    QCOMPARE(str(tok.encode("low <sep> low")), str({257, 32, 301, 257}));
}

void TestTokenizer::addPrefixSpace() {
    TempDir dir;
    auto r = loadJson(dir, "t.json",
                      tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges),
                                    byteLevelPre(true, true), byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    QCOMPARE(str(r.value()->encode("low")), str({259}));
    QCOMPARE(str(r.value()->encode(" low")), str({259}));
}

void TestTokenizer::llama3SplitRegex() {
    // Llama-3's Split regex (\p{N}{1,3}, case-insensitive contractions) + ByteLevel without regex.
    const std::string llama3 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    json vocab = byteVocab();
    vocab["34"] = 256;
    vocab["12"] = 257;
    vocab["123"] = 258;
    vocab["'M"] = 259;
    const json merges = json::array({"3 4", "1 2", "12 3", "' M"});
    const json sequence = {{"type", "Sequence"},
                           {"pretokenizers", json::array({{{"type", "Split"},
                                                           {"pattern", {{"Regex", llama3}}},
                                                           {"behavior", "Isolated"},
                                                           {"invert", false}},
                                                          byteLevelPre(false)})}};
    TempDir dir;
    auto l3 =
        loadJson(dir, "llama3.json", tokenizerJson(vocab, merges, sequence, byteLevelDecoder()));
    auto g2 = loadJson(dir, "gpt2.json",
                       tokenizerJson(vocab, merges, byteLevelPre(), byteLevelDecoder()));
    KVS_VERIFY_OK(l3);
    KVS_VERIFY_OK(g2);
    // Llama-3 splits digits in threes: "123" + "4" -> 123 4. GPT-2 keeps "1234" whole, where
    // "3 4" ranks first: 1 2 34 -> 12 34.
    QCOMPARE(str(l3.value()->encode("1234")), str({258, '4'}));
    QCOMPARE(str(g2.value()->encode("1234")), str({257, 256}));
    // Contractions are case-insensitive in Llama-3 ("'M" one piece), case-sensitive in GPT-2.
    QCOMPARE(str(l3.value()->encode("I'M")), str({'I', 259}));
    QCOMPARE(str(g2.value()->encode("I'M")), str({'I', '\'', 'M'}));
    QCOMPARE(l3.value()->kind(), std::string("gpt2-bpe"));
    const std::string text = "Hello 12345 I'M \xE4\xBD\xA0\xE5\xA5\xBD\n\n x";
    QCOMPARE(l3.value()->decode(l3.value()->encode(text)), text);
}

void TestTokenizer::whiteSpaceIsUnicodeWhiteSpace() {
    // \s in GPT-2's regex means Unicode White_Space (as in Python's `regex` and Hugging Face):
    // U+0085 and U+00A0 are white space, U+180E and U+FEFF are not. A merge of "Ġ" with the first
    // byte of the character shows whether " " and the character ended up in one piece.
    json vocab = byteVocab();
    vocab["\xC4\xA0\xC3\x82"] = 256; // "ĠÂ": space + 0xC2
    vocab["\xC4\xA0\xC3\xA1"] = 257; // "Ġá": space + 0xE1
    vocab["\xC4\xA0\xC3\xAF"] = 258; // "Ġï": space + 0xEF
    const json merges =
        json::array({"\xC4\xA0 \xC3\x82", "\xC4\xA0 \xC3\xA1", "\xC4\xA0 \xC3\xAF"});
    TempDir dir;
    auto r =
        loadJson(dir, "t.json", tokenizerJson(vocab, merges, byteLevelPre(), byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    const auto around = [&](const char* character) {
        return str(tok.encode(std::string("a ") + character + "b"));
    };
    QCOMPARE(around("\xC2\xA1"), str({'a', 256, 0xA1, 'b'}));           // U+00A1 '¡': punctuation
    QCOMPARE(around("\xC2\x85"), str({'a', ' ', 0xC2, 0x85, 'b'}));     // U+0085: white space
    QCOMPARE(around("\xC2\xA0"), str({'a', ' ', 0xC2, 0xA0, 'b'}));     // U+00A0: white space
    QCOMPARE(around("\xE1\xA0\x8E"), str({'a', 257, 0xA0, 0x8E, 'b'})); // U+180E: not
    QCOMPARE(around("\xEF\xBB\xBF"), str({'a', 258, 0xBB, 0xBF, 'b'})); // U+FEFF: not
}

void TestTokenizer::splitBehaviors() {
    // "a -" and "- b" merges show where Split cut "a-b".
    const json vocab = {{"a", 0}, {"-", 1}, {"b", 2}, {"a-", 3}, {"-b", 4}, {"--", 5}};
    const json merges = json::array({"a -", "- b", "- -"});
    const auto split = [&](const char* behavior) {
        return json{{"type", "Split"},
                    {"pattern", {{"String", "-"}}},
                    {"behavior", behavior},
                    {"invert", false}};
    };
    TempDir dir;
    const auto encodeWith = [&](const json& pre, const std::string& text) {
        auto r = loadJson(dir, "t.json", tokenizerJson(vocab, merges, pre, nullptr));
        return r.ok() ? str(r.value()->encode(text)) : QString::fromStdString(r.message());
    };
    QCOMPARE(encodeWith(nullptr, "a-b"), str({3, 2}));
    QCOMPARE(encodeWith(split("Isolated"), "a-b"), str({0, 1, 2}));
    QCOMPARE(encodeWith(split("MergedWithPrevious"), "a-b"), str({3, 2}));
    QCOMPARE(encodeWith(split("MergedWithNext"), "a-b"), str({0, 4}));
    QCOMPARE(encodeWith(split("Removed"), "a-b"), str({0, 2}));
    QCOMPARE(encodeWith(nullptr, "a--b"), str({3, 4}));
    QCOMPARE(encodeWith(split("Isolated"), "a--b"), str({0, 1, 1, 2}));
    QCOMPARE(encodeWith(split("Contiguous"), "a--b"), str({0, 5, 2}));
    json inverted = split("Isolated");
    inverted["invert"] = true;
    QCOMPARE(encodeWith(inverted, "a-b"), str({0, 1, 2}));
    // Digits: runs of digits become their own pieces.
    const json digitVocab = {{"1", 0}, {"2", 1}, {"x", 2}, {"x1", 3}, {"12", 4}};
    auto digits =
        loadJson(dir, "d.json",
                 tokenizerJson(digitVocab, json::array({"x 1", "1 2"}),
                               {{"type", "Digits"}, {"individual_digits", false}}, nullptr));
    KVS_VERIFY_OK(digits);
    QCOMPARE(str(digits.value()->encode("x12")), str({2, 4}));
}

void TestTokenizer::ignoreMerges() {
    const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}};
    TempDir dir;
    json file = tokenizerJson(vocab, json::array({"a b"}), nullptr, nullptr);
    auto plain = loadJson(dir, "plain.json", file);
    file["model"]["ignore_merges"] = true;
    auto ignoring = loadJson(dir, "ignoring.json", file);
    KVS_VERIFY_OK(plain);
    KVS_VERIFY_OK(ignoring);
    QCOMPARE(str(plain.value()->encode("abc")), str({3, 2}));
    QCOMPARE(str(ignoring.value()->encode("abc")), str({4}));
    QCOMPARE(str(ignoring.value()->encode("abcc")), str({3, 2, 2}));
}

void TestTokenizer::metaspaceAlways() {
    TempDir dir;
    json file = tokenizerJson(metaVocab(), metaMerges(), metaspace("always"), metaspace("always"));
    file["model"]["unk_token"] = "<unk>";
    auto r = loadJson(dir, "t.json", file);
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(tok.kind(), std::string("bpe"));
    // "hello world" -> "▁hello▁world" -> pieces "▁hello", "▁world".
    // ▁ h e l l o -> ▁h e l l o -> ▁h el l o -> ▁hel l o -> ▁hel lo -> ▁hello
    // ▁ w o r l d: no merge applies.
    QCOMPARE(str(tok.encode("hello world")), str({13, 1, 6, 5, 7, 4, 8}));
    QCOMPARE(tok.decode(tok.encode("hello world")), std::string("hello world"));
    QCOMPARE(tok.decode(tok.encode("hello  world")), std::string("hello  world"));
    QCOMPARE(tok.tokenText(13), std::string(" hello")); // a label keeps its space
    QCOMPARE(tok.tokenPiece(13), kMeta + "hello");
    // Old files spell prepend_scheme as add_prefix_space.
    json legacy = file;
    legacy["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", kMeta}, {"add_prefix_space", true}};
    legacy["decoder"] = legacy["pre_tokenizer"];
    auto old = loadJson(dir, "legacy.json", legacy);
    KVS_VERIFY_OK(old);
    QCOMPARE(str(old.value()->encode("hello world")), str({13, 1, 6, 5, 7, 4, 8}));
}

void TestTokenizer::metaspaceNever() {
    TempDir dir;
    auto r =
        loadJson(dir, "t.json",
                 tokenizerJson(metaVocab(), metaMerges(), metaspace("never"), metaspace("never")));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    // "hello▁world" -> "hello", "▁world"; h e l l o -> h el l o -> h el lo
    QCOMPARE(str(tok.encode("hello world")), str({2, 10, 12, 1, 6, 5, 7, 4, 8}));
    QCOMPARE(tok.decode(tok.encode("hello world")), std::string("hello world"));
}

void TestTokenizer::metaspaceFirstWithAddedToken() {
    TempDir dir;
    json file = tokenizerJson(metaVocab(), metaMerges(), metaspace("first"), metaspace("first"));
    file["added_tokens"] = json::array({addedToken(14, "<s>")});
    auto r = loadJson(dir, "t.json", file);
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(str(tok.encode("hello")), str({13}));
    // "first": no ▁ after an added token (Llama's legacy=false behaviour).
    QCOMPARE(str(tok.encode("<s>hello")), str({14, 2, 10, 12}));
    QCOMPARE(tok.decode(tok.encode("<s>hello")), std::string("<s>hello"));
    QCOMPARE(tok.decode(tok.encode("hello<s>")), std::string("hello<s>"));
    QCOMPARE(tok.bosId(), std::optional<TokenId>(14));
}

void TestTokenizer::llama2NormalizerAndDecoders() {
    // Llama-2 as recent tokenizer.json files spell it: Prepend + Replace normalizers, no
    // pre-tokenizer, byte fallback, and a Replace/ByteFallback/Fuse/Strip decoder.
    json vocab = metaVocab();
    for (unsigned b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        vocab[name] = 100 + static_cast<int>(b);
    }
    json file = tokenizerJson(vocab, metaMerges(), nullptr, nullptr);
    file["normalizer"] = {
        {"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Prepend"}, {"prepend", kMeta}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMeta}}})}};
    file["decoder"] = {
        {"type", "Sequence"},
        {"decoders",
         json::array({{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    file["model"]["byte_fallback"] = true;
    file["model"]["unk_token"] = "<unk>";
    file["model"]["fuse_unk"] = true;
    TempDir dir;
    auto r = loadJson(dir, "t.json", file);
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    // Without a pre-tokenizer the whole "▁hello▁" is one word: ▁hello then ▁ (no ▁ ▁hello merge).
    QCOMPARE(str(tok.encode("hello")), str({13}));
    // "é" (C3 A9) is not in the vocabulary: its bytes.
    QCOMPARE(str(tok.encode("he\xC3\xA9")), str({9, 3, 100 + 0xC3, 100 + 0xA9}));
    for (const std::string text :
         {"hello world", "hello \xC3\xA9l\xC3\xA8ve \xF0\x9F\x98\x80", "hold the door"})
        QCOMPARE(tok.decode(tok.encode(text)), text);
    QCOMPARE(tok.tokenText(13), std::string(" hello"));
}

void TestTokenizer::byteFallback() {
    json vocab = {{"<unk>", 0}, {"h", 1}, {"i", 2}, {" ", 3}};
    for (unsigned b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        vocab[name] = 10 + static_cast<int>(b);
    }
    json file = tokenizerJson(vocab, json::array(), nullptr, nullptr);
    file["model"]["byte_fallback"] = true;
    file["model"]["unk_token"] = "<unk>";
    TempDir dir;
    auto r = loadJson(dir, "t.json", file);
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    // "Ж" = D0 96
    QCOMPARE(str(tok.encode("hi \xD0\x96")), str({1, 2, 3, 10 + 0xD0, 10 + 0x96}));
    const std::string text = "hi \xD0\x96 \xF0\x9F\x98\x80 hi";
    QCOMPARE(tok.decode(tok.encode(text)), text);
    QCOMPARE(tok.tokenText(10 + 0xD0), std::string("<0xD0>")); // half a character
    QCOMPARE(tok.tokenText(10 + 'A'), std::string("A"));
    QCOMPARE(tok.tokenPiece(10 + 'A'), std::string("<0x41>"));

    // A byte piece missing from the vocabulary: the whole character falls back to <unk>.
    json partial = file;
    partial["model"]["vocab"].erase("<0x96>");
    auto p = loadJson(dir, "partial.json", partial);
    KVS_VERIFY_OK(p);
    QCOMPARE(str(p.value()->encode("h\xD0\x96i")), str({1, 0, 2}));
}

void TestTokenizer::unknownToken() {
    const json vocab = {{"[UNK]", 0}, {"a", 1}, {"b", 2}};
    TempDir dir;
    json file = tokenizerJson(vocab, json::array(), nullptr, nullptr);
    file["model"]["unk_token"] = "[UNK]";
    auto plain = loadJson(dir, "plain.json", file);
    file["model"]["fuse_unk"] = true;
    auto fused = loadJson(dir, "fused.json", file);
    KVS_VERIFY_OK(plain);
    KVS_VERIFY_OK(fused);
    QCOMPARE(str(plain.value()->encode("axyb\xC3\xA9")), str({1, 0, 0, 2, 0}));
    QCOMPARE(str(fused.value()->encode("axyb\xC3\xA9")), str({1, 0, 2, 0}));
    QCOMPARE(plain.value()->tokenText(0), std::string("[UNK]"));
}

void TestTokenizer::characterVocabularyRoundTrip() {
    // The project's generator: every character of the training text, merges [], no
    // pre-tokenizer or decoder.
    const std::string alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-\n\t";
    json vocab = json::object();
    int next = 0;
    for (const char c : alphabet)
        vocab[std::string(1, c)] = next++;
    for (const char* extra : {"\xC3\xA9", "\xD0\xB6", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80"})
        vocab[extra] = next++; // é ж 中 😀
    TempDir dir;
    auto r = loadJson(dir, "tokenizer.json", tokenizerJson(vocab, json::array(), nullptr, nullptr));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(tok.kind(), std::string("bpe"));
    QCOMPARE(tok.vocabSize(), static_cast<std::size_t>(next));
    for (const std::string text :
         {"Hello, world!", "  two  spaces\tand a tab\n",
          "caf\xC3\xA9 \xD0\xB6 \xE4\xB8\xAD\xF0\x9F\x98\x80", "", "\n\n\n", "'quoted' \"text\""}) {
        const Ids ids = tok.encode(text);
        const auto characters = QString::fromStdString(text).toUcs4().size();
        QCOMPARE(ids.size(), static_cast<std::size_t>(characters));
        QCOMPARE(tok.decode(ids), text);
    }
    QCOMPARE(tok.tokenText(tok.tokenId("\xF0\x9F\x98\x80").value()),
             std::string("\xF0\x9F\x98\x80"));
    QCOMPARE(str(tok.encode("a b")), str({0, 62, 1}));
}

void TestTokenizer::characterVocabularyRejectsUnknownCharacters() {
    const json vocab = {{"a", 0}, {"b", 1}, {" ", 2}};
    TempDir dir;
    auto r = loadJson(dir, "tokenizer.json", tokenizerJson(vocab, json::array(), nullptr, nullptr));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    const auto cyrillic = catchErrors([&] { return tok.encode("ab \xD0\x96"); });
    KVS_VERIFY_ERROR(cyrillic, "character '\xD0\x96' (U+0416) is not in the vocabulary of",
                     "tokenizer.json");
    QCOMPARE(cyrillic.error().code(), ErrorCode::InvalidArgument);
    KVS_VERIFY_ERROR(catchErrors([&] { return tok.encode("a\nb"); }), "character U+000A",
                     "not in the vocabulary");
    KVS_VERIFY_ERROR(catchErrors([&] { return tok.encode("a\xFF"); }), "byte 0xFF",
                     "not valid UTF-8");
}

void TestTokenizer::byteVocabularyRoundTrip() {
    // The project's byte vocabulary: ByteLevel without regex, the 256 byte symbols, no merges.
    TempDir dir;
    auto r = loadJson(
        dir, "tokenizer.json",
        tokenizerJson(byteVocab(), json::array(), byteLevelPre(false), byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(tok.kind(), std::string("gpt2-bpe"));
    std::string allBytes;
    for (int b = 0; b < 256; ++b)
        allBytes += static_cast<char>(b);
    for (const std::string& text :
         {std::string("Hello, world!"), std::string("\xF0\x9F\x98\x80 caf\xC3\xA9\t\n  x"),
          std::string("invalid \xFF\xFE utf-8 \xC3"), allBytes}) {
        const Ids ids = tok.encode(text);
        QCOMPARE(ids.size(), text.size());
        for (std::size_t i = 0; i < ids.size(); ++i)
            QCOMPARE(ids[i], static_cast<TokenId>(static_cast<unsigned char>(text[i])));
        QCOMPARE(tok.decode(ids), text);
    }
}

void TestTokenizer::tokenTextEscapesPartialBytes() {
    TempDir dir;
    auto r = loadJson(
        dir, "tokenizer.json",
        tokenizerJson(byteVocab(), json::array(), byteLevelPre(false), byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    const Ids emoji = tok.encode("\xF0\x9F\x98\x80");
    QCOMPARE(str(emoji), str({0xF0, 0x9F, 0x98, 0x80}));
    QCOMPARE(tok.tokenText(0xF0), std::string("<0xF0>"));
    QCOMPARE(tok.tokenText(0x80), std::string("<0x80>"));
    QCOMPARE(tok.tokenText('A'), std::string("A"));
    QCOMPARE(tok.decode(emoji), std::string("\xF0\x9F\x98\x80"));
}

void TestTokenizer::invalidUtf8ThroughTheRegex() {
    // Bytes that are not UTF-8 never match GPT-2's regex; they become pieces of their own.
    TempDir dir;
    auto r = loadJson(dir, "tokenizer.json",
                      tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges), byteLevelPre(),
                                    byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    const std::string text = "low\xFF\xFElow \xC3 lower\xE2\x82";
    const Ids ids = tok.encode(text);
    QCOMPARE(str(ids), str({257, 0xFF, 0xFE, 257, ' ', 0xC3, 259, 258, 0xE2, 0x82}));
    QCOMPARE(tok.decode(ids), text);
}

void TestTokenizer::outOfRangeIds() {
    TempDir dir;
    json vocab = {{"a", 0}, {"b", 1}, {"c", 3}}; // id 2 is a gap
    auto r = loadJson(dir, "tokenizer.json", tokenizerJson(vocab, json::array(), nullptr, nullptr));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    QCOMPARE(tok.vocabSize(), std::size_t(4));
    const auto tooBig = catchErrors([&] { return tok.decode(Ids{0, 4}); });
    KVS_VERIFY_ERROR(tooBig, "token id 4 is out of range", "vocabulary size 4");
    QCOMPARE(tooBig.error().code(), ErrorCode::InvalidArgument);
    KVS_VERIFY_ERROR(catchErrors([&] { return tok.decode(Ids{-1}); }), "token id -1");
    KVS_VERIFY_ERROR(catchErrors([&] { return tok.tokenText(99); }), "token id 99");
    KVS_VERIFY_ERROR(catchErrors([&] { return tok.tokenPiece(99); }), "token id 99");
    const auto gap = catchErrors([&] { return tok.tokenText(2); });
    KVS_VERIFY_ERROR(gap, "token id 2 is not in the vocabulary");
    QCOMPARE(gap.error().code(), ErrorCode::InvalidArgument);
    QCOMPARE(tok.decode(Ids{}), std::string());
}

void TestTokenizer::loadTokenizerPreference() {
    TempDir dir;
    // A character tokenizer.json beside a byte-level vocab.json + merges.txt: tokenizer.json wins.
    writeBytes(dir / "tokenizer.json",
               tokenizerJson(json{{"a", 0}, {"b", 1}}, json::array(), nullptr, nullptr).dump());
    writeBytes(dir / "vocab.json", toyByteVocab().dump());
    writeBytes(dir / "merges.txt", "#version: 0.2\nl o\n");
    writeBytes(dir / "tokenizer.model", "not a model");
    auto first = loadTokenizer(dir.path());
    KVS_VERIFY_OK(first);
    QCOMPARE(first.value()->kind(), std::string("bpe"));
    fs::remove(dir / "tokenizer.json");
    auto second = loadTokenizer(dir.path());
    KVS_VERIFY_OK(second);
    QCOMPARE(second.value()->kind(), std::string("gpt2-bpe"));
    fs::remove(dir / "merges.txt");
    // Only vocab.json and a broken tokenizer.model left: the model is tried (and is broken).
    KVS_VERIFY_ERROR(loadTokenizer(dir.path()), "tokenizer.model", "not a SentencePiece model");
}

void TestTokenizer::tokenizerConfigSpecialIds() {
    TempDir dir;
    json file = tokenizerJson(metaVocab(), metaMerges(), metaspace("first"), metaspace("first"));
    file["model"]["vocab"]["</s>"] = 15;
    file["model"]["vocab"]["<eot>"] = 16;
    writeBytes(dir / "tokenizer.json", file.dump());
    // Guessed from the vocabulary when there is no config.
    auto guessed = loadTokenizer(dir.path());
    KVS_VERIFY_OK(guessed);
    QCOMPARE(guessed.value()->bosId(), std::optional<TokenId>(14));
    QCOMPARE(guessed.value()->eosId(), std::optional<TokenId>(15));
    // Strings and AddedToken objects; null means none.
    writeBytes(dir / "tokenizer_config.json",
               R"({"bos_token": null, "eos_token": {"__type": "AddedToken", "content": "<eot>"}})");
    auto configured = loadTokenizer(dir.path());
    KVS_VERIFY_OK(configured);
    QCOMPARE(configured.value()->bosId(), std::optional<TokenId>());
    QCOMPARE(configured.value()->eosId(), std::optional<TokenId>(16));
    writeBytes(dir / "tokenizer_config.json", R"({"bos_token": "</s>", "eos_token": "<s>"})");
    auto swapped = loadTokenizer(dir.path());
    KVS_VERIFY_OK(swapped);
    QCOMPARE(swapped.value()->bosId(), std::optional<TokenId>(15));
    QCOMPARE(swapped.value()->eosId(), std::optional<TokenId>(14));
    writeBytes(dir / "tokenizer_config.json", "{\"bos_token\": ");
    KVS_VERIFY_ERROR(loadTokenizer(dir.path()), "tokenizer_config.json", "not valid JSON");
}

void TestTokenizer::concurrentEncoding() {
    TempDir dir;
    auto r = loadJson(dir, "t.json",
                      tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges), byteLevelPre(),
                                    byteLevelDecoder()));
    KVS_VERIFY_OK(r);
    const Tokenizer& tok = *r.value();
    std::string text;
    for (int i = 0; i < 200; ++i)
        text += "low lower lowest slower " + std::to_string(i) + " ";
    const Ids expected = tok.encode(text);
    std::vector<Ids> results(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < results.size(); ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 20; ++round)
                results[t] = tok.encode(text);
        });
    for (auto& thread : threads)
        thread.join();
    for (const Ids& ids : results)
        QVERIFY(ids == expected);
    QCOMPARE(tok.decode(expected), text);
}

void TestTokenizer::folderErrors() {
    TempDir dir;
    const auto missing = loadTokenizer(dir / "nope");
    KVS_VERIFY_ERROR(missing, "nope", "no such folder");
    QCOMPARE(missing.error().code(), ErrorCode::Missing);
    const auto empty = loadTokenizer(dir.path());
    const std::string folder = dir.path().string();
    KVS_VERIFY_ERROR(
        empty, folder.c_str(),
        ": no tokenizer (tokenizer.json, vocab.json + merges.txt, or tokenizer.model)");
    QCOMPARE(empty.error().code(), ErrorCode::Missing);
    writeBytes(dir / "vocab.json", "{}");
    KVS_VERIFY_ERROR(loadTokenizer(dir.path()), "no tokenizer",
                     "vocab.json is there but merges.txt is not");
    const auto io = loadTokenizerJson(dir / "absent.json");
    KVS_VERIFY_ERROR(io, "absent.json");
    QCOMPARE(io.error().code(), ErrorCode::Io);
    KVS_VERIFY_ERROR(loadSentencePiece(dir / "absent.model"), "absent.model");
    writeBytes(dir / "garbage.model", std::string("\x01\x02garbage\xFF", 10));
    const auto garbage = loadSentencePiece(dir / "garbage.model");
    KVS_VERIFY_ERROR(garbage, "garbage.model", "not a SentencePiece model");
    QCOMPARE(garbage.error().code(), ErrorCode::Format);
}

void TestTokenizer::malformedFiles_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<int>("code");
    QTest::addColumn<QStringList>("fragments");
    const auto ok = tokenizerJson(toyByteVocab(), mergesAsStrings(kToyMerges), byteLevelPre(),
                                  byteLevelDecoder());
    const auto row = [](const char* name, const json& file, ErrorCode code,
                        const QStringList& fragments) {
        QTest::newRow(name) << QString::fromStdString(file.dump()) << static_cast<int>(code)
                            << fragments;
    };
    const auto with = [&](const std::function<void(json&)>& change) {
        json file = ok;
        change(file);
        return file;
    };
    QTest::newRow("not json") << QString("{\"model\": {") << static_cast<int>(ErrorCode::Format)
                              << QStringList{"tokenizer.json", "not valid JSON"};
    QTest::newRow("not an object") << QString("[1, 2]") << static_cast<int>(ErrorCode::Format)
                                   << QStringList{"tokenizer.json", "not a JSON object"};
    row("no model", with([](json& f) { f.erase("model"); }), ErrorCode::Format,
        {"tokenizer.json", "has no \"model\" object"});
    row("wordpiece", with([](json& f) { f["model"]["type"] = "WordPiece"; }),
        ErrorCode::Unsupported, {"tokenizer.json", "model type \"WordPiece\" is not supported"});
    row("unigram", with([](json& f) {
            f["model"] = {{"type", "Unigram"}, {"vocab", json::array()}};
        }),
        ErrorCode::Unsupported, {"model type \"Unigram\""});
    row("no vocab", with([](json& f) { f["model"].erase("vocab"); }), ErrorCode::Format,
        {"model has no vocab"});
    row("vocab not object", with([](json& f) { f["model"]["vocab"] = json::array({"a"}); }),
        ErrorCode::Format, {"model.vocab is not an object"});
    row("ids not unique", with([](json& f) { f["model"]["vocab"]["zz"] = 7; }), ErrorCode::Format,
        {"tokenizer.json", "vocabulary ids are not unique", "id 7"});
    row("id not integer", with([](json& f) { f["model"]["vocab"]["zz"] = "7"; }), ErrorCode::Format,
        {"vocabulary entry \"zz\"", "not an integer"});
    row("negative id", with([](json& f) { f["model"]["vocab"]["zz"] = -3; }), ErrorCode::Format,
        {"vocabulary entry \"zz\"", "id -3"});
    row("merge symbol missing",
        with([](json& f) { f["model"]["merges"].push_back("lo q\xE2\x82\xAC"); }),
        ErrorCode::Format,
        {"tokenizer.json", "merge #5", "\"q\xE2\x82\xAC\", which is not in the vocabulary"});
    row("merge result missing", with([](json& f) { f["model"]["merges"].push_back("a b"); }),
        ErrorCode::Format, {"merge #5 (\"a b\") makes \"ab\", which is not in the vocabulary"});
    row("merge three symbols", with([](json& f) { f["model"]["merges"].push_back("a b c"); }),
        ErrorCode::Format, {"merge #5", "not two symbols separated by one space"});
    row("merge list of three", with([](json& f) {
            f["model"]["merges"].push_back(json::array({"a", "b", "c"}));
        }),
        ErrorCode::Format, {"merge #5", "neither \"a b\" nor a list of two symbols"});
    row("merges not list", with([](json& f) { f["model"]["merges"] = "l o"; }), ErrorCode::Format,
        {"model.merges is not a list"});
    row("unk missing", with([](json& f) { f["model"]["unk_token"] = "<unk>"; }), ErrorCode::Format,
        {"model.unk_token \"<unk>\" is not in the vocabulary"});
    row("suffix", with([](json& f) { f["model"]["end_of_word_suffix"] = "</w>"; }),
        ErrorCode::Unsupported, {"model.end_of_word_suffix (\"</w>\") is not supported"});
    row("pre-tokenizer type", with([](json& f) {
            f["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
        }),
        ErrorCode::Unsupported, {"pre_tokenizer type \"BertPreTokenizer\" is not supported"});
    row("nested pre-tokenizer type", with([](json& f) {
            f["pre_tokenizer"] = {{"type", "Sequence"},
                                  {"pretokenizers", json::array({{{"type", "Punctuation"}}})}};
        }),
        ErrorCode::Unsupported, {"pre_tokenizer.pretokenizers[0] type \"Punctuation\""});
    row("decoder type", with([](json& f) {
            f["decoder"] = {{"type", "WordPiece"}};
        }),
        ErrorCode::Unsupported, {"decoder type \"WordPiece\" is not supported"});
    row("normalizer type", with([](json& f) {
            f["normalizer"] = {{"type", "NFKC"}};
        }),
        ErrorCode::Unsupported, {"normalizer type \"NFKC\" is not supported"});
    row("bad regex", with([](json& f) {
            f["pre_tokenizer"] = {
                {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
        }),
        ErrorCode::Format, {"pre_tokenizer.pattern", "/(unclosed/ does not compile"});
    row("bad behavior", with([](json& f) {
            f["pre_tokenizer"] = {
                {"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}};
        }),
        ErrorCode::Format, {"behavior \"Sideways\" is not known"});
    row("bad prepend scheme", with([](json& f) {
            f["pre_tokenizer"] = {{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}};
        }),
        ErrorCode::Format, {"prepend_scheme \"sometimes\""});
    row("bool not bool", with([](json& f) { f["pre_tokenizer"]["add_prefix_space"] = "yes"; }),
        ErrorCode::Format, {"pre_tokenizer.add_prefix_space is not true or false"});
    row("added token without id", with([](json& f) {
            f["added_tokens"] = json::array({{{"content", "<x>"}}});
        }),
        ErrorCode::Format, {"added_tokens[0] (\"<x>\") has no id"});
    row("added token without content", with([](json& f) {
            f["added_tokens"] = json::array({{{"id", 5}}});
        }),
        ErrorCode::Format, {"added_tokens[0] has no content"});
}

void TestTokenizer::malformedFiles() {
    QFETCH(QString, file);
    QFETCH(int, code);
    QFETCH(QStringList, fragments);
    TempDir dir;
    writeBytes(dir / "tokenizer.json", file.toStdString());
    const auto r = loadTokenizer(dir.path());
    QVERIFY2(!r.ok(), "expected an error");
    const std::string message = r.message();
    for (const QString& fragment : fragments)
        QVERIFY2(message.find(fragment.toStdString()) != std::string::npos,
                 qPrintable(QString("message \"%1\" lacks \"%2\"")
                                .arg(QString::fromStdString(message), fragment)));
    QCOMPARE(static_cast<int>(r.error().code()), code);
}

void TestTokenizer::malformedVocabMerges() {
    TempDir dir;
    writeBytes(dir / "vocab.json", toyByteVocab().dump());
    writeBytes(dir / "merges.txt", "#version: 0.2\nl o\nlo w\nlow\n");
    KVS_VERIFY_ERROR(loadGpt2VocabMerges(dir / "vocab.json", dir / "merges.txt"), "merges.txt",
                     "line 4 (\"low\") is not two symbols separated by one space");
    writeBytes(dir / "merges.txt", "#version: 0.2\nl o\nlo x\n");
    KVS_VERIFY_ERROR(loadGpt2VocabMerges(dir / "vocab.json", dir / "merges.txt"), "merges.txt",
                     "line 3 (\"lo x\") makes \"lox\", which is not in the vocabulary");
    writeBytes(dir / "merges.txt", "l o\nl \xE2\x82\xAC\n");
    KVS_VERIFY_ERROR(
        loadGpt2VocabMerges(dir / "vocab.json", dir / "merges.txt"),
        "line 2 (\"l \xE2\x82\xAC\") names \"\xE2\x82\xAC\", which is not in the vocabulary");
    writeBytes(dir / "bad.json", "{\"a\": 0,");
    const auto badJson = loadGpt2VocabMerges(dir / "bad.json", dir / "merges.txt");
    KVS_VERIFY_ERROR(badJson, "bad.json", "not valid JSON");
    QCOMPARE(badJson.error().code(), ErrorCode::Format);
    writeBytes(dir / "dup.json", R"({"a": 0, "b": 0})");
    KVS_VERIFY_ERROR(loadGpt2VocabMerges(dir / "dup.json", dir / "merges.txt"), "dup.json",
                     "vocabulary ids are not unique: \"a\" and \"b\" both have id 0");
    KVS_VERIFY_ERROR(loadGpt2VocabMerges(dir / "vocab.json", dir / "absent.txt"), "absent.txt");
}

QTEST_APPLESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
