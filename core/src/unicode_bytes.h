// SPDX-License-Identifier: MIT
// GPT-2's byte <-> printable-character table and the small UTF-8 helpers the tokenizers share.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvs::unicode {

// GPT-2's bytes_to_unicode(): every byte maps to one printable character, so byte-level
// vocabularies never contain raw control bytes or spaces. Printable Latin-1 bytes map to
// themselves; the other 68 bytes map to U+0100 onwards in byte order (0x00 -> U+0100 'Ā', 0x20 ->
// U+0120 'Ġ', ...).
char32_t byteToCodePoint(std::uint8_t byte);
// The UTF-8 spelling of byteToCodePoint(byte).
const std::string& byteToUtf8(std::uint8_t byte);
// The inverse table: the byte a code point stands for, or nothing for code points outside the
// table.
std::optional<std::uint8_t> codePointToByte(char32_t cp);

// Appends the UTF-8 encoding of cp (cp must be a Unicode scalar value).
void appendUtf8(std::string& out, char32_t cp);

// One step of UTF-8 decoding at `pos`: the code point and its length in bytes, or nothing (with
// length 1) when the bytes there are not a valid, shortest-form UTF-8 sequence.
struct Utf8Char {
    std::optional<char32_t> codePoint;
    std::size_t length = 1;
};
Utf8Char nextUtf8(std::string_view text, std::size_t pos);

bool isValidUtf8(std::string_view text);

// "<0xE2>" for a byte; escapeBytes applies it to every byte of the text.
std::string byteEscape(std::uint8_t byte);
std::string escapeBytes(std::string_view bytes);
// Parses a byte-fallback piece "<0xAB>" (exactly that shape, upper- or lowercase hex).
std::optional<std::uint8_t> parseByteEscape(std::string_view piece);

// "U+0416"
std::string codePointLabel(char32_t cp);
// How an error message names one character: "character 'Ж' (U+0416)", "character U+000A" for
// control characters that would garble a message, "byte 0xFF (not valid UTF-8)" for a stray byte.
std::string describeCharacter(std::string_view utf8Char);

} // namespace kvs::unicode
