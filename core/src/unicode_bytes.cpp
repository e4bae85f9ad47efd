// SPDX-License-Identifier: MIT
// GPT-2's byte <-> printable-character table and UTF-8 helpers for the tokenizers.
#include "unicode_bytes.h"

#include <cstdio>

namespace kvs::unicode {
namespace {

// Bytes GPT-2 keeps as themselves: '!'..'~', '¡'..'¬', '®'..'ÿ'.
constexpr bool keepsItself(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr unsigned kRemappedCount = 68; // bytes that do not stand for themselves

struct ByteTable {
    std::array<char32_t, 256> codePoints{};
    std::array<std::string, 256> utf8;
    std::array<std::uint8_t, kRemappedCount> remapped{}; // U+0100 + i -> byte
    ByteTable() {
        char32_t next = 0x100;
        for (unsigned b = 0; b < 256; ++b) {
            if (keepsItself(b)) {
                codePoints[b] = static_cast<char32_t>(b);
            } else {
                remapped[next - 0x100] = static_cast<std::uint8_t>(b);
                codePoints[b] = next++;
            }
            appendUtf8(utf8[b], codePoints[b]);
        }
    }
};

const ByteTable& byteTable() {
    static const ByteTable table;
    return table;
}

} // namespace

char32_t byteToCodePoint(std::uint8_t byte) {
    return byteTable().codePoints[byte];
}

const std::string& byteToUtf8(std::uint8_t byte) {
    return byteTable().utf8[byte];
}

std::optional<std::uint8_t> codePointToByte(char32_t cp) {
    if (cp < 0x100)
        return keepsItself(cp) ? std::optional<std::uint8_t>(static_cast<std::uint8_t>(cp))
                               : std::nullopt;
    if (cp - 0x100 < kRemappedCount)
        return byteTable().remapped[cp - 0x100];
    return std::nullopt;
}

void appendUtf8(std::string& out, char32_t cp) {
    auto put = [&out](unsigned value) { out.push_back(static_cast<char>(value)); };
    const auto c = static_cast<unsigned>(cp);
    if (c < 0x80) {
        put(c);
    } else if (c < 0x800) {
        put(0xC0 | (c >> 6));
        put(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        put(0xE0 | (c >> 12));
        put(0x80 | ((c >> 6) & 0x3F));
        put(0x80 | (c & 0x3F));
    } else {
        put(0xF0 | (c >> 18));
        put(0x80 | ((c >> 12) & 0x3F));
        put(0x80 | ((c >> 6) & 0x3F));
        put(0x80 | (c & 0x3F));
    }
}

Utf8Char nextUtf8(std::string_view text, std::size_t pos) {
    const auto byteAt = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned lead = byteAt(pos);
    if (lead < 0x80)
        return {static_cast<char32_t>(lead), 1};
    std::size_t length = 0;
    char32_t cp = 0;
    char32_t minimum = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        cp = lead & 0x1F;
        minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        cp = lead & 0x0F;
        minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        cp = lead & 0x07;
        minimum = 0x10000;
    } else {
        return {};
    }
    if (pos + length > text.size())
        return {};
    for (std::size_t i = 1; i < length; ++i) {
        const unsigned b = byteAt(pos + i);
        if ((b & 0xC0) != 0x80)
            return {};
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return {};
    return {cp, length};
}

bool isValidUtf8(std::string_view text) {
    for (std::size_t pos = 0; pos < text.size();) {
        const Utf8Char c = nextUtf8(text, pos);
        if (!c.codePoint)
            return false;
        pos += c.length;
    }
    return true;
}

std::string byteEscape(std::uint8_t byte) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "<0x%02X>", static_cast<unsigned>(byte));
    return buffer;
}

std::string escapeBytes(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 6);
    for (const char c : bytes)
        out += byteEscape(static_cast<std::uint8_t>(c));
    return out;
}

std::optional<std::uint8_t> parseByteEscape(std::string_view piece) {
    if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>')
        return std::nullopt;
    unsigned value = 0;
    for (const char c : piece.substr(3, 2)) {
        unsigned digit = 0;
        if (c >= '0' && c <= '9')
            digit = static_cast<unsigned>(c - '0');
        else if (c >= 'A' && c <= 'F')
            digit = static_cast<unsigned>(c - 'A' + 10);
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<unsigned>(c - 'a' + 10);
        else
            return std::nullopt;
        value = value * 16 + digit;
    }
    return static_cast<std::uint8_t>(value);
}

std::string codePointLabel(char32_t cp) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "U+%04X", static_cast<unsigned>(cp));
    return buffer;
}

std::string describeCharacter(std::string_view utf8Char) {
    if (utf8Char.empty())
        return "empty character";
    const Utf8Char c = nextUtf8(utf8Char, 0);
    if (!c.codePoint) {
        char buffer[16];
        std::snprintf(buffer, sizeof buffer, "byte 0x%02X",
                      static_cast<unsigned>(static_cast<unsigned char>(utf8Char[0])));
        return std::string(buffer) + " (not valid UTF-8)";
    }
    const char32_t cp = *c.codePoint;
    const bool control = cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029;
    if (control)
        return "character " + codePointLabel(cp);
    return "character '" + std::string(utf8Char.substr(0, c.length)) + "' (" + codePointLabel(cp) +
           ")";
}

} // namespace kvs::unicode
