// SPDX-License-Identifier: MIT
// SentencePiece tokenizer.model files: tiny BPE and unigram models trained at test time with byte
// fallback, checked for round trips, hand-checked pieces, byte fallback, labels and folder loading.
#include "kvs/tokenizer.h"
#include "kvs_test.h"

#include <QObject>
#include <QTest>
#include <map>
#include <sentencepiece_trainer.h>

using namespace kvs;
using kvs::test::readBytes;
using kvs::test::TempDir;
using kvs::test::writeBytes;
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
const std::string kMeta = "\xE2\x96\x81"; // ▁

// A small English corpus in which "the" is by far the most frequent word.
std::vector<std::string> corpusLines() {
    const char* subjects[] = {"the model",       "the cache",     "the key cache",
                              "the value cache", "a small model", "the attention head",
                              "the layer"};
    const char* verbs[] = {"stores", "compresses", "reads", "keeps", "evicts", "quantizes"};
    const char* objects[] = {"the keys",          "the values",        "the tokens",
                             "the cache entries", "the oldest tokens", "the queries of the cache"};
    const char* tails[] = {
        ".",           " again.",  " for the next step.", ", then the cache grows.",
        " in 4 bits.", " (twice)."};
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < 300; ++i) {
        std::string line = subjects[i % 7];
        line += " ";
        line += verbs[(i / 7) % 6];
        line += " ";
        line += objects[(i * 5) % 6];
        line += tails[(i * 7) % 6];
        if (i % 3 == 0)
            line[0] = static_cast<char>(line[0] - 'a' + 'A');
        lines.push_back(line);
    }
    return lines;
}

std::vector<std::string> piecesOf(const Tokenizer& tok, const Ids& ids) {
    std::vector<std::string> pieces;
    for (const TokenId id : ids)
        pieces.push_back(tok.tokenPiece(id));
    return pieces;
}

QString show(const std::vector<std::string>& pieces) {
    QStringList parts;
    for (const std::string& piece : pieces)
        parts << QString::fromStdString("\"" + piece + "\"");
    return "[" + parts.join(", ") + "]";
}

} // namespace

class TestTokenizerSentencePiece : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void loads_data();
    void loads();
    void roundTrip_data();
    void roundTrip();
    void handCheckedPieces_data();
    void handCheckedPieces();
    void byteFallback_data();
    void byteFallback();
    void labels_data();
    void labels();
    void loadTokenizerPicksTheModel();
    void errors();

private:
    void addModelColumn();
    std::unique_ptr<Tokenizer> load(const QString& type);

    TempDir m_dir;
    std::map<QString, fs::path> m_models;
};

void TestTokenizerSentencePiece::initTestCase() {
    std::string corpus;
    for (const std::string& line : corpusLines())
        corpus += line + "\n";
    writeBytes(m_dir / "corpus.txt", corpus);
    for (const QString type : {"bpe", "unigram"}) {
        const fs::path prefix = m_dir / ("m_" + type.toStdString());
        // Llama-style settings: identity normalization and no whitespace squeezing, so decoding
        // gives back exactly what was encoded; byte fallback for characters outside the corpus.
        const std::string args = "--input=" + (m_dir / "corpus.txt").string() +
                                 " --model_prefix=" + prefix.string() +
                                 " --model_type=" + type.toStdString() +
                                 " --vocab_size=360 --byte_fallback=true --character_coverage=1.0"
                                 " --normalization_rule_name=identity"
                                 " --remove_extra_whitespaces=false --hard_vocab_limit=false"
                                 " --num_threads=1 --minloglevel=2";
        const auto status = sentencepiece::SentencePieceTrainer::Train(args);
        QVERIFY2(status.ok(), status.ToString().c_str());
        m_models[type] = prefix.string() + ".model";
        QVERIFY(fs::exists(m_models[type]));
    }
}

void TestTokenizerSentencePiece::addModelColumn() {
    QTest::addColumn<QString>("type");
    QTest::newRow("bpe") << QString("bpe");
    QTest::newRow("unigram") << QString("unigram");
}

std::unique_ptr<Tokenizer> TestTokenizerSentencePiece::load(const QString& type) {
    auto loaded = loadSentencePiece(m_models.at(type));
    if (!loaded.ok())
        return nullptr;
    return std::move(loaded.value());
}

void TestTokenizerSentencePiece::loads_data() {
    addModelColumn();
}
void TestTokenizerSentencePiece::loads() {
    QFETCH(QString, type);
    KVS_VERIFY_OK(loadSentencePiece(m_models.at(type)));
    const auto tok = load(type);
    QCOMPARE(tok->kind(), std::string("sentencepiece"));
    QVERIFY(tok->vocabSize() > 259); // <unk> <s> </s>, 256 bytes, and the learnt pieces
    QVERIFY(tok->vocabSize() <= 360);
    // SentencePiece's defaults: <unk> 0, <s> 1, </s> 2.
    QCOMPARE(tok->tokenPiece(0), std::string("<unk>"));
    QCOMPARE(tok->bosId(), std::optional<TokenId>(1));
    QCOMPARE(tok->eosId(), std::optional<TokenId>(2));
    QCOMPARE(tok->tokenId("<s>"), std::optional<TokenId>(1));
    QCOMPARE(tok->tokenId("<0x41>"), std::optional<TokenId>(3 + 0x41));
    QCOMPARE(tok->tokenId("no such piece"), std::optional<TokenId>());
}

void TestTokenizerSentencePiece::roundTrip_data() {
    addModelColumn();
}
void TestTokenizerSentencePiece::roundTrip() {
    QFETCH(QString, type);
    const auto tok = load(type);
    QVERIFY(tok);
    std::vector<std::string> lines = corpusLines();
    for (const char* extra :
         {"The cache stores the keys.", "unseen words: zebra, quixotic, jukebox!",
          "two  spaces and   three", "tabs\tand\nnewlines", "digits 0123456789 and 3.14",
          "caf\xC3\xA9 na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m",
          "\xD0\x96\xD0\xB8\xD0\xB7\xD0\xBD\xD1\x8C",
          "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C",
          "emoji \xF0\x9F\x98\x80\xF0\x9F\x9A\x80", "\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85",
          "trailing space ", "{\"json\": [1, 2]}", "x"})
        lines.push_back(extra);
    for (const std::string& line : lines) {
        const Ids ids = tok->encode(line);
        QVERIFY2(!ids.empty(), line.c_str());
        QCOMPARE(tok->decode(ids), line);
    }
    QCOMPARE(tok->decode(Ids{}), std::string());
}

void TestTokenizerSentencePiece::handCheckedPieces_data() {
    addModelColumn();
}
void TestTokenizerSentencePiece::handCheckedPieces() {
    QFETCH(QString, type);
    const auto tok = load(type);
    QVERIFY(tok);
    // "the" fills the corpus and "key" is frequent: each is one piece, with the word-start
    // marker ▁ (both models learn them from this corpus).
    QCOMPARE(show(piecesOf(*tok, tok->encode("the key"))), show({kMeta + "the", kMeta + "key"}));
    QCOMPARE(show(piecesOf(*tok, tok->encode("the the the"))),
             show({kMeta + "the", kMeta + "the", kMeta + "the"}));
    // "j" is the one lowercase letter the corpus lacks: its byte piece stands in for it.
    QCOMPARE(show(piecesOf(*tok, tok->encode("j"))), show({kMeta, "<0x6A>"}));
}

void TestTokenizerSentencePiece::byteFallback_data() {
    addModelColumn();
}
void TestTokenizerSentencePiece::byteFallback() {
    QFETCH(QString, type);
    const auto tok = load(type);
    QVERIFY(tok);
    // "Ж" (D0 96) is not in the corpus: "▁" then its two byte pieces.
    const Ids ids = tok->encode("\xD0\x96");
    QCOMPARE(show(piecesOf(*tok, ids)), show({kMeta, "<0xD0>", "<0x96>"}));
    QCOMPARE(ids[1], 3 + 0xD0); // byte pieces follow <unk> <s> </s>
    QCOMPARE(tok->decode(ids), std::string("\xD0\x96"));
    // Nothing falls to <unk> with byte fallback on.
    for (const char* text : {"\xF0\x9F\x98\x80", "\xE4\xB8\xAD", "\x01\x02", "\xC3\xA9"})
        for (const TokenId id : tok->encode(text))
            QVERIFY(id != 0);
}

void TestTokenizerSentencePiece::labels_data() {
    addModelColumn();
}
void TestTokenizerSentencePiece::labels() {
    QFETCH(QString, type);
    const auto tok = load(type);
    QVERIFY(tok);
    QCOMPARE(tok->tokenText(tok->tokenId(kMeta + "the").value()), std::string(" the"));
    QCOMPARE(tok->tokenText(tok->tokenId(kMeta).value()), std::string(" "));
    // Byte pieces: ASCII bytes are characters alone, others stay escapes.
    QCOMPARE(tok->tokenText(3 + 'A'), std::string("A"));
    QCOMPARE(tok->tokenText(3 + '\n'), std::string("\n"));
    QCOMPARE(tok->tokenText(3 + 0xD0), std::string("<0xD0>"));
    // Control and unknown pieces decode to nothing; their labels are their names.
    QCOMPARE(tok->tokenText(0), std::string("<unk>"));
    QCOMPARE(tok->tokenText(1), std::string("<s>"));
    QCOMPARE(tok->tokenText(2), std::string("</s>"));
    QCOMPARE(tok->tokenPiece(3 + 0xD0), std::string("<0xD0>"));
    // Every label is valid UTF-8 (valid UTF-8 survives a trip through QString).
    for (TokenId id = 0; id < static_cast<TokenId>(tok->vocabSize()); ++id) {
        const std::string text = tok->tokenText(id);
        QVERIFY2(!text.empty() && QString::fromStdString(text).toStdString() == text,
                 qPrintable(QString::number(id)));
    }
}

void TestTokenizerSentencePiece::loadTokenizerPicksTheModel() {
    TempDir dir;
    writeBytes(dir / "tokenizer.model", readBytes(m_models.at("bpe")));
    auto loaded = loadTokenizer(dir.path());
    KVS_VERIFY_OK(loaded);
    QCOMPARE(loaded.value()->kind(), std::string("sentencepiece"));
    QCOMPARE(loaded.value()->decode(loaded.value()->encode("the cache")), std::string("the cache"));
    // A Unigram tokenizer.json (not read) beside it gives way to the model.
    writeBytes(dir / "tokenizer.json",
               R"({"model": {"type": "Unigram", "vocab": [["<unk>", 0]]}})");
    auto beside = loadTokenizer(dir.path());
    KVS_VERIFY_OK(beside);
    QCOMPARE(beside.value()->kind(), std::string("sentencepiece"));
    // tokenizer_config.json can rename the special tokens.
    writeBytes(dir / "tokenizer_config.json", R"({"bos_token": "</s>", "eos_token": null})");
    auto configured = loadTokenizer(dir.path());
    KVS_VERIFY_OK(configured);
    QCOMPARE(configured.value()->bosId(), std::optional<TokenId>(2));
    QCOMPARE(configured.value()->eosId(), std::optional<TokenId>());
}

void TestTokenizerSentencePiece::errors() {
    const auto tok = load("bpe");
    QVERIFY(tok);
    const auto size = static_cast<TokenId>(tok->vocabSize());
    const auto decoded = catchErrors([&] { return tok->decode(Ids{1, size}); });
    const std::string expected = "token id " + std::to_string(size) + " is out of range";
    KVS_VERIFY_ERROR(decoded, expected.c_str());
    QCOMPARE(decoded.error().code(), ErrorCode::InvalidArgument);
    KVS_VERIFY_ERROR(catchErrors([&] { return tok->tokenText(-1); }), "token id -1");
    KVS_VERIFY_ERROR(catchErrors([&] { return tok->tokenPiece(size + 5); }), "out of range");

    TempDir dir;
    writeBytes(dir / "tokenizer.model", "this is not a protobuf");
    const auto broken = loadTokenizer(dir.path());
    KVS_VERIFY_ERROR(broken, "tokenizer.model", "not a SentencePiece model");
    QCOMPARE(broken.error().code(), ErrorCode::Format);
    // A truncated model.
    const std::string model = readBytes(m_models.at("bpe"));
    writeBytes(dir / "tokenizer.model", model.substr(0, model.size() / 2));
    KVS_VERIFY_ERROR(loadTokenizer(dir.path()), "tokenizer.model", "not a SentencePiece model");
}

QTEST_APPLESS_MAIN(TestTokenizerSentencePiece)
#include "test_tokenizer_sentencepiece.moc"
