// SPDX-License-Identifier: MIT
// The training corpus (the King James Bible from Debian's bible-kjv), its validation splits, the
// character vocabulary, and the baselines a trained model must beat: an interpolated modified
// Kneser-Ney character n-gram model and bzip2.
#pragma once

#include "kvs/status.h"
#include "kvs/tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace kvs {

// The KJV text as `bible -f Gen1:1-Rev22:21` prints it, verse labels stripped: one verse per
// line, each ending in '\n' (31102 verses, 4137850 bytes, 63 distinct characters).
constexpr std::size_t kKjvVerses = 31102;
constexpr std::size_t kKjvBytes = 4137850;
constexpr std::uint64_t kKjvFnv1a = 0xca234ace6589dc01; // sha256 b5c4940b…fcdfae5d

// Removes the leading "Book1:2 " label of every line of `bible -f` output. Lines without a label
// are kept as they are.
std::string stripVerseLabels(std::string_view bibleOutput);

// Runs `bible -f Gen1:1-Rev22:21` (Debian packages bible-kjv and bible-kjv-text) and strips the
// labels. Errors name the command and what went wrong.
Result<std::string> readKjvFromBibleCommand();

// Reads a corpus: "kjv" runs the bible command; anything else is a UTF-8 text file, one verse (or
// paragraph) per line.
Result<std::string> readCorpus(const std::string& source);

// The lines of `text`, each with its '\n' (the last one without where the text lacks it).
std::vector<std::string_view> verseLines(std::string_view text);

// The 66 books of the KJV in order, with the verse counts `bible -f` prints (they sum to
// kKjvVerses), so a stripped text can still be cut into books.
struct KjvBook {
    std::string_view name;  // "Song of Solomon"
    std::string_view label; // the `bible` label prefix: "SSol"
    int verses = 0;
};
const std::vector<KjvBook>& kjvBooks();
// Books without parallel passages elsewhere, held out whole for validation and for evaluation
// prompts (issue #14): Ruth, Esther, Ecclesiastes, Song of Solomon, Lamentations, Jonah,
// Philemon, James, 1 John.
const std::vector<std::string_view>& kjvHeldOutBooks();
// The verses of one book (by name or label) of the stripped KJV text. Throws InvalidArgument when
// the text is not the KJV's 31102 verses or the book is unknown.
std::string kjvBookText(std::string_view kjvText, std::string_view book);

enum class SplitKind {
    Every20th,     // verses 20, 40, 60, ... (1-based) are held out
    Last10Percent, // the last tenth of the verses is held out
    HeldOutBooks   // the books of kjvHeldOutBooks() are held out whole (KJV text only)
};
struct TextSplit {
    std::string train, validation; // verses in order, each ending in '\n'
};
// Throws InvalidArgument for HeldOutBooks on a text that is not the KJV's 31102 verses.
TextSplit splitVerses(std::string_view text, SplitKind kind);

// The distinct characters of `text` in byte order (the tokenizer alphabet; ASCII corpora only).
std::string characterAlphabet(std::string_view text);
// Token ids of `text` under `alphabet`; throws InvalidArgument naming the first unknown character.
std::vector<TokenId> encodeCharacters(std::string_view text, const std::string& alphabet);

// 64-bit FNV-1a of the bytes (the corpus checksum).
std::uint64_t fnv1a64(std::string_view bytes);

// Order-`order` interpolated modified Kneser-Ney model over token ids < `vocab`, with discounts
// from the count-of-counts of the training sequence only. Returns the mean negative log
// likelihood (nats per token) of `eval`, each token predicted from up to order-1 preceding tokens
// of `eval`.
double kneserNeyNats(const std::vector<TokenId>& train, const std::vector<TokenId>& eval, int vocab,
                     int order);

// bzip2 (block size 900k, libbz2) of `text`: compressed bits · ln 2 per byte of input.
double bzip2NatsPerByte(std::string_view text);

} // namespace kvs
