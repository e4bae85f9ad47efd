// SPDX-License-Identifier: MIT
// The training corpus and its baselines: verse labels stripped, the KJV text pinned by checksum,
// the splits, the character vocabulary, the Kneser-Ney n-gram and bzip2 figures of
// docs/bundled-model.md.
#include "kvs/train_corpus.h"
#include "kvs_test.h"

#include <QTest>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

using namespace kvs;

class TestTrainCorpus : public QObject {
    Q_OBJECT

private slots:
    void stripsLabels() {
        QCOMPARE(stripVerseLabels("Ge1:1 In the beginning.\n1Co13:4 Charity suffereth long\n"),
                 std::string("In the beginning.\nCharity suffereth long\n"));
        QCOMPARE(stripVerseLabels("no label here\n"), std::string("no label here\n"));
    }

    void splits() {
        std::string text;
        for (int i = 1; i <= 40; ++i)
            text += "v" + std::to_string(i) + "\n";
        const auto a = splitVerses(text, SplitKind::Every20th);
        QCOMPARE(a.validation, std::string("v20\nv40\n"));
        QCOMPARE(a.train.size() + a.validation.size(), text.size());
        const auto b = splitVerses(text, SplitKind::Last10Percent);
        QCOMPARE(b.validation, std::string("v37\nv38\nv39\nv40\n"));
        // Books are known for the KJV only; another text is refused, not split at random.
        QVERIFY_THROWS_EXCEPTION(Error, splitVerses(text, SplitKind::HeldOutBooks));
        QVERIFY_THROWS_EXCEPTION(Error, kjvBookText(text, "Ruth"));
    }

    void kjvBookTable() {
        int total = 0;
        for (const auto& b : kjvBooks())
            total += b.verses;
        QCOMPARE(total, static_cast<int>(kKjvVerses));
        QCOMPARE(kjvBooks().size(), std::size_t(66));
        QCOMPARE(kjvHeldOutBooks().size(), std::size_t(9));
    }

    void vocabulary() {
        const std::string alphabet = characterAlphabet("hello world\n");
        QCOMPARE(alphabet, std::string("\n dehlorw"));
        QCOMPARE(encodeCharacters("held", alphabet), (std::vector<TokenId>{4, 3, 5, 2}));
        QVERIFY_THROWS_EXCEPTION(Error, encodeCharacters("x", alphabet));
    }

    void ngramOnKnownSources() {
        // A periodic source is predictable from two characters; a uniform one is not at all.
        std::vector<TokenId> periodic;
        for (int i = 0; i < 3000; ++i)
            periodic.push_back(i % 3);
        QVERIFY(kneserNeyNats(periodic, periodic, 3, 3) < 0.01);
        std::mt19937 rng(1);
        std::vector<TokenId> train(200000), eval(20000);
        for (auto& t : train)
            t = static_cast<TokenId>(rng() % 8);
        for (auto& t : eval)
            t = static_cast<TokenId>(rng() % 8);
        const double nats = kneserNeyNats(train, eval, 8, 3);
        QVERIFY2(std::abs(nats - std::log(8.0)) < 0.03, std::to_string(nats).c_str());
    }

    void kjvCorpusIsPinned() {
        auto text = readKjvFromBibleCommand();
        if (!text.ok())
            QSKIP(("the bible command is not installed (bible-kjv): " + text.message()).c_str());
        const std::string& t = text.value();
        QCOMPARE(t.size(), kKjvBytes);
        QCOMPARE(static_cast<std::size_t>(std::count(t.begin(), t.end(), '\n')), kKjvVerses);
        QCOMPARE(fnv1a64(t), kKjvFnv1a);
        QCOMPARE(characterAlphabet(t).size(), std::size_t(63));
        QVERIFY(t.rfind("In the beginning God created the heaven and the earth.\n", 0) == 0);

        // The baselines of docs/bundled-model.md.
        const std::string alphabet = characterAlphabet(t);
        const auto split = splitVerses(t, SplitKind::Every20th);
        QCOMPARE(split.validation.size(), std::size_t(208885));
        const double ngram = kneserNeyNats(encodeCharacters(split.train, alphabet),
                                           encodeCharacters(split.validation, alphabet), 63, 6);
        QVERIFY2(std::abs(ngram - 1.0460) < 0.002, std::to_string(ngram).c_str());
        // Whole books held out: the table's verse counts cut the stripped text where the labels
        // of `bible -f` put each book's first verse.
        const auto firstVerse = [&](std::string_view book) {
            const std::string b = kjvBookText(t, book);
            return b.substr(0, b.find('\n'));
        };
        QVERIFY(firstVerse("Ruth").starts_with("Now it came to pass in the days when the judges"));
        QVERIFY(firstVerse("Esther").starts_with("Now it came to pass in the days of Ahasuerus"));
        QCOMPARE(firstVerse("Eccl"),
                 std::string("The words of the Preacher, the son of David, king "
                             "in Jerusalem."));
        QCOMPARE(firstVerse("Song of Solomon"),
                 std::string("The song of songs, which is Solomon's."));
        QVERIFY(firstVerse("Lamentations").starts_with("How doth the city sit solitary"));
        QVERIFY(firstVerse("Jonah").starts_with("Now the word of the LORD came unto Jonah"));
        QVERIFY(firstVerse("Philemon").starts_with("Paul, a prisoner of Jesus Christ"));
        QVERIFY(firstVerse("James").starts_with("James, a servant of God"));
        QVERIFY(firstVerse("1 John").starts_with("That which was from the beginning"));
        QVERIFY(firstVerse("Revelation").starts_with("The Revelation of Jesus Christ"));
        const auto books = splitVerses(t, SplitKind::HeldOutBooks);
        QCOMPARE(books.train.size() + books.validation.size(), t.size());
        QCOMPARE(static_cast<std::size_t>(
                     std::count(books.validation.begin(), books.validation.end(), '\n')),
                 std::size_t(85 + 167 + 222 + 117 + 154 + 48 + 25 + 108 + 105));
        for (const auto book : kjvHeldOutBooks())
            QVERIFY(books.validation.find(kjvBookText(t, book)) != std::string::npos);
        QVERIFY(books.train.find("The words of the Preacher") == std::string::npos);
        QVERIFY(books.train.rfind("In the beginning God created", 0) == 0);
        const double booksNgram =
            kneserNeyNats(encodeCharacters(books.train, alphabet),
                          encodeCharacters(books.validation, alphabet), 63, 6);
        QVERIFY2(std::abs(booksNgram - 1.1770) < 0.002, std::to_string(booksNgram).c_str());

        // The evaluation prompts (assets/prompts/held-out, tools/make_prompt_set.sh) are whole
        // verses of the held-out books: text the 1,024-token model never trained on, and short
        // enough for its positions.
        const auto prompts =
            kvs::test::sourceTestsDir().parent_path() / "assets" / "prompts" / "held-out";
        int count = 0;
        for (const auto& e : std::filesystem::directory_iterator(prompts)) {
            std::ifstream in(e.path(), std::ios::binary);
            const std::string p((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
            const std::string name = e.path().filename().string();
            QVERIFY2(!p.empty() && p.size() <= 960 && p.back() == '\n', name.c_str());
            QVERIFY2(books.validation.find(p) != std::string::npos, name.c_str());
            QVERIFY2(books.train.find(p.substr(0, p.find('\n'))) == std::string::npos,
                     name.c_str());
            ++count;
        }
        QVERIFY2(count >= 10, std::to_string(count).c_str());

        const double bz = bzip2NatsPerByte(t);
        QVERIFY2(std::abs(bz - 1.1638) < 0.001, std::to_string(bz).c_str());
    }
};

QTEST_GUILESS_MAIN(TestTrainCorpus)
#include "test_train_corpus.moc"
