// SPDX-License-Identifier: MIT
// The KJV corpus, its splits and character vocabulary, and the n-gram and bzip2 baselines.
#include "kvs/file_util.h"
#include "kvs/train_corpus.h"

#include <algorithm>
#include <array>
#include <bzlib.h>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <unordered_map>

namespace kvs {

std::string stripVerseLabels(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    std::size_t pos = 0;
    while (pos < in.size()) {
        std::size_t end = in.find('\n', pos);
        if (end == std::string_view::npos)
            end = in.size();
        std::string_view line = in.substr(pos, end - pos);
        // A label is a book abbreviation, chapter:verse and one space: "Ge1:1 ", "1Co13:4 ".
        const std::size_t space = line.find(' ');
        if (space != std::string_view::npos && line.substr(0, space).find(':') != std::string::npos)
            line.remove_prefix(space + 1);
        out.append(line);
        out.push_back('\n');
        pos = end + 1;
    }
    return out;
}

Result<std::string> readKjvFromBibleCommand() {
    return catchErrors([]() -> std::string {
        const char* cmd = "bible -f Gen1:1-Rev22:21 2>&1";
        FILE* pipe = ::popen(cmd, "r");
        if (!pipe)
            throw Error(ErrorCode::Io, std::string("cannot run '") + cmd + "'");
        std::string raw;
        std::array<char, 65536> buf{};
        std::size_t n = 0;
        while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
            raw.append(buf.data(), n);
        const int status = ::pclose(pipe);
        if (status != 0 || raw.size() < 1000)
            throw Error(ErrorCode::Missing,
                        "'bible -f Gen1:1-Rev22:21' failed (exit status " + std::to_string(status) +
                            "); install the Debian packages bible-kjv and bible-kjv-text" +
                            (raw.empty() ? std::string() : ": " + raw.substr(0, 200)));
        return stripVerseLabels(raw);
    });
}

Result<std::string> readCorpus(const std::string& source) {
    if (source == "kjv")
        return readKjvFromBibleCommand();
    return catchErrors([&]() -> std::string {
        std::string text = readFile(source);
        if (!text.empty() && text.back() != '\n')
            text.push_back('\n');
        return text;
    });
}

std::vector<std::string_view> verseLines(std::string_view text) {
    std::vector<std::string_view> verses;
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size() - 1;
        verses.push_back(text.substr(pos, end - pos + 1));
        pos = end + 1;
    }
    return verses;
}

const std::vector<KjvBook>& kjvBooks() {
    static const std::vector<KjvBook> books = {
        {"Genesis", "Ge", 1533},        {"Exodus", "Exo", 1213},
        {"Leviticus", "Lev", 859},      {"Numbers", "Num", 1288},
        {"Deuteronomy", "Deu", 959},    {"Joshua", "Josh", 658},
        {"Judges", "Jdgs", 618},        {"Ruth", "Ruth", 85},
        {"1 Samuel", "1Sm", 810},       {"2 Samuel", "2Sm", 695},
        {"1 Kings", "1Ki", 816},        {"2 Kings", "2Ki", 719},
        {"1 Chronicles", "1Chr", 942},  {"2 Chronicles", "2Chr", 822},
        {"Ezra", "Ezra", 280},          {"Nehemiah", "Neh", 406},
        {"Esther", "Est", 167},         {"Job", "Job", 1070},
        {"Psalms", "Psa", 2461},        {"Proverbs", "Prv", 915},
        {"Ecclesiastes", "Eccl", 222},  {"Song of Solomon", "SSol", 117},
        {"Isaiah", "Isa", 1292},        {"Jeremiah", "Jer", 1364},
        {"Lamentations", "Lam", 154},   {"Ezekiel", "Eze", 1273},
        {"Daniel", "Dan", 357},         {"Hosea", "Hos", 197},
        {"Joel", "Joel", 73},           {"Amos", "Amos", 146},
        {"Obadiah", "Obad", 21},        {"Jonah", "Jonah", 48},
        {"Micah", "Mic", 105},          {"Nahum", "Nahum", 47},
        {"Habakkuk", "Hab", 56},        {"Zephaniah", "Zep", 53},
        {"Haggai", "Hag", 38},          {"Zechariah", "Zec", 211},
        {"Malachi", "Mal", 55},         {"Matthew", "Mat", 1071},
        {"Mark", "Mark", 678},          {"Luke", "Luke", 1151},
        {"John", "John", 879},          {"Acts", "Acts", 1007},
        {"Romans", "Rom", 433},         {"1 Corinthians", "1Cor", 437},
        {"2 Corinthians", "2Cor", 257}, {"Galatians", "Gal", 149},
        {"Ephesians", "Eph", 155},      {"Philippians", "Phi", 104},
        {"Colossians", "Col", 95},      {"1 Thessalonians", "1Th", 89},
        {"2 Thessalonians", "2Th", 47}, {"1 Timothy", "1Tim", 113},
        {"2 Timothy", "2Tim", 83},      {"Titus", "Titus", 46},
        {"Philemon", "Phmn", 25},       {"Hebrews", "Heb", 303},
        {"James", "Jas", 108},          {"1 Peter", "1Pet", 105},
        {"2 Peter", "2Pet", 61},        {"1 John", "1Jn", 105},
        {"2 John", "2Jn", 13},          {"3 John", "3Jn", 14},
        {"Jude", "Jude", 25},           {"Revelation", "Rev", 404},
    };
    return books;
}

const std::vector<std::string_view>& kjvHeldOutBooks() {
    static const std::vector<std::string_view> books = {
        "Ruth",  "Esther",   "Ecclesiastes", "Song of Solomon", "Lamentations",
        "Jonah", "Philemon", "James",        "1 John"};
    return books;
}

namespace {

// The book index of every verse of the KJV text (throws unless it has the KJV's verse count).
std::vector<int> kjvBookOfVerse(std::size_t verseCount) {
    if (verseCount != kKjvVerses)
        throw Error(ErrorCode::InvalidArgument,
                    "the held-out-books split and book excerpts need the KJV text (" +
                        std::to_string(kKjvVerses) + " verses); this text has " +
                        std::to_string(verseCount) + " lines");
    std::vector<int> book;
    book.reserve(verseCount);
    const auto& books = kjvBooks();
    for (std::size_t b = 0; b < books.size(); ++b)
        book.insert(book.end(), static_cast<std::size_t>(books[b].verses), static_cast<int>(b));
    return book;
}

int kjvBookIndex(std::string_view nameOrLabel) {
    const auto& books = kjvBooks();
    for (std::size_t b = 0; b < books.size(); ++b)
        if (books[b].name == nameOrLabel || books[b].label == nameOrLabel)
            return static_cast<int>(b);
    throw Error(ErrorCode::InvalidArgument,
                "unknown book '" + std::string(nameOrLabel) +
                    "' (books are named as in 'Song of Solomon' or labelled as in 'SSol')");
}

} // namespace

std::string kjvBookText(std::string_view kjvText, std::string_view bookName) {
    const int wanted = kjvBookIndex(bookName);
    const auto verses = verseLines(kjvText);
    const auto book = kjvBookOfVerse(verses.size());
    std::string out;
    for (std::size_t i = 0; i < verses.size(); ++i)
        if (book[i] == wanted)
            out.append(verses[i]);
    return out;
}

TextSplit splitVerses(std::string_view text, SplitKind kind) {
    const std::vector<std::string_view> verses = verseLines(text);
    TextSplit s;
    const std::size_t firstHeldOut = verses.size() - verses.size() / 10;
    std::vector<bool> heldBook;
    std::vector<int> book;
    if (kind == SplitKind::HeldOutBooks) {
        book = kjvBookOfVerse(verses.size());
        heldBook.assign(kjvBooks().size(), false);
        for (const auto name : kjvHeldOutBooks())
            heldBook[static_cast<std::size_t>(kjvBookIndex(name))] = true;
    }
    for (std::size_t i = 0; i < verses.size(); ++i) {
        const bool held = kind == SplitKind::Every20th ? (i + 1) % 20 == 0
                          : kind == SplitKind::Last10Percent
                              ? i >= firstHeldOut
                              : heldBook[static_cast<std::size_t>(book[i])];
        (held ? s.validation : s.train).append(verses[i]);
    }
    return s;
}

std::string characterAlphabet(std::string_view text) {
    std::array<bool, 256> seen{};
    for (char ch : text)
        seen[static_cast<unsigned char>(ch)] = true;
    std::string out;
    for (int b = 0; b < 256; ++b)
        if (seen[static_cast<std::size_t>(b)]) {
            if (b >= 0x80)
                throw Error(ErrorCode::Unsupported,
                            "the corpus has non-ASCII bytes; the character vocabulary is ASCII");
            out.push_back(static_cast<char>(b));
        }
    return out;
}

std::vector<TokenId> encodeCharacters(std::string_view text, const std::string& alphabet) {
    std::array<int, 256> id;
    id.fill(-1);
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        id[static_cast<unsigned char>(alphabet[i])] = static_cast<int>(i);
    std::vector<TokenId> out(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const int t = id[static_cast<unsigned char>(text[i])];
        if (t < 0)
            throw Error(ErrorCode::InvalidArgument,
                        "character " + std::to_string(static_cast<unsigned char>(text[i])) +
                            " at offset " + std::to_string(i) + " is not in the vocabulary");
        out[i] = t;
    }
    return out;
}

std::uint64_t fnv1a64(std::string_view bytes) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    return h;
}

namespace {

// Counts of one order: grams (packed, first token most significant) and their contexts.
struct OrderStats {
    std::unordered_map<std::uint64_t, std::uint32_t> count; // raw (highest) or continuation
    struct Context {
        std::uint32_t total = 0, n1 = 0, n2 = 0, n3 = 0;
    };
    std::unordered_map<std::uint64_t, Context> context;
    double d1 = 0.5, d2 = 1.0, d3 = 1.5;
};

} // namespace

double kneserNeyNats(const std::vector<TokenId>& train, const std::vector<TokenId>& eval, int vocab,
                     int order) {
    if (order < 1 || vocab < 2)
        throw Error(ErrorCode::InvalidArgument, "n-gram: order and vocabulary must be positive");
    if (std::pow(static_cast<double>(vocab), order) > 9.0e18)
        throw Error(ErrorCode::InvalidArgument, "n-gram: vocabulary^order does not fit 64 bits");
    const auto base = static_cast<std::uint64_t>(vocab);
    std::vector<std::uint64_t> power(static_cast<std::size_t>(order) + 1, 1);
    for (int k = 1; k <= order; ++k)
        power[static_cast<std::size_t>(k)] = power[static_cast<std::size_t>(k) - 1] * base;

    // Raw counts of every order.
    std::vector<std::unordered_map<std::uint64_t, std::uint32_t>> raw(
        static_cast<std::size_t>(order) + 1);
    for (int k = 1; k <= order; ++k) {
        auto& m = raw[static_cast<std::size_t>(k)];
        m.reserve(train.size() / 2);
        std::uint64_t key = 0;
        for (std::size_t i = 0; i < train.size(); ++i) {
            key = (key * base + static_cast<std::uint64_t>(train[i])) %
                  power[static_cast<std::size_t>(k)];
            if (i + 1 >= static_cast<std::size_t>(k))
                ++m[key];
        }
    }
    // The highest order keeps raw counts; lower orders count distinct left extensions.
    std::vector<OrderStats> st(static_cast<std::size_t>(order) + 1);
    st[static_cast<std::size_t>(order)].count = std::move(raw[static_cast<std::size_t>(order)]);
    for (int k = order - 1; k >= 1; --k) {
        auto& m = st[static_cast<std::size_t>(k)].count;
        for (const auto& [key, c] : (k + 1 == order ? st[static_cast<std::size_t>(order)].count
                                                    : raw[static_cast<std::size_t>(k) + 1])) {
            (void)c;
            ++m[key % power[static_cast<std::size_t>(k)]];
        }
    }
    for (int k = 1; k <= order; ++k) {
        auto& s = st[static_cast<std::size_t>(k)];
        std::array<double, 5> nc{};
        for (const auto& [key, c] : s.count) {
            if (c <= 4)
                nc[c] += 1;
            auto& ctx = s.context[key / base];
            ctx.total += c;
            (c == 1 ? ctx.n1 : c == 2 ? ctx.n2 : ctx.n3) += 1;
        }
        if (nc[1] > 0 && nc[2] > 0 && nc[3] > 0 && nc[4] > 0) {
            const double y = nc[1] / (nc[1] + 2 * nc[2]);
            s.d1 = std::clamp(1 - 2 * y * nc[2] / nc[1], 0.05, 0.95);
            s.d2 = std::clamp(2 - 3 * y * nc[3] / nc[2], 0.05, 1.95);
            s.d3 = std::clamp(3 - 4 * y * nc[4] / nc[3], 0.05, 2.95);
        }
    }

    double total = 0;
    for (std::size_t i = 0; i < eval.size(); ++i) {
        const auto w = static_cast<std::uint64_t>(eval[i]);
        if (w >= base)
            throw Error(ErrorCode::InvalidArgument, "n-gram: token id outside the vocabulary");
        double p = 1.0 / vocab;
        const int maxK =
            static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(order), i + 1));
        std::uint64_t ctxKey = 0; // the k-1 tokens before position i
        for (int k = 1; k <= maxK; ++k) {
            if (k > 1)
                ctxKey += static_cast<std::uint64_t>(eval[i - static_cast<std::size_t>(k) + 1]) *
                          power[static_cast<std::size_t>(k) - 2];
            const auto& s = st[static_cast<std::size_t>(k)];
            const auto ctx = s.context.find(ctxKey);
            if (ctx == s.context.end())
                break; // unseen context: lower orders decide, and so will higher ones
            const auto it = s.count.find(ctxKey * base + w);
            const double c = it == s.count.end() ? 0.0 : it->second;
            const double d = c == 0 ? 0 : c == 1 ? s.d1 : c == 2 ? s.d2 : s.d3;
            const double gamma =
                (s.d1 * ctx->second.n1 + s.d2 * ctx->second.n2 + s.d3 * ctx->second.n3) /
                ctx->second.total;
            p = std::max(c - d, 0.0) / ctx->second.total + gamma * p;
        }
        total -= std::log(p);
    }
    return total / static_cast<double>(std::max<std::size_t>(1, eval.size()));
}

double bzip2NatsPerByte(std::string_view text) {
    if (text.empty())
        throw Error(ErrorCode::InvalidArgument, "bzip2: empty text");
    std::vector<char> out(text.size() + text.size() / 100 + 601);
    auto outLen = static_cast<unsigned int>(out.size());
    std::string copy(text);
    const int rc = BZ2_bzBuffToBuffCompress(out.data(), &outLen, copy.data(),
                                            static_cast<unsigned int>(copy.size()), 9, 0, 0);
    if (rc != BZ_OK)
        throw Error(ErrorCode::Internal,
                    "bzip2: compression failed (code " + std::to_string(rc) + ")");
    return 8.0 * outLen * std::numbers::ln2 / static_cast<double>(text.size());
}

} // namespace kvs
