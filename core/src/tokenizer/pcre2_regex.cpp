// SPDX-License-Identifier: MIT
// The PCRE2 wrapper behind bpe::Regex: white space rewritten to the class Hugging Face means,
// compiled with JIT where available, matches collected left to right.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pcre2_regex.h"

#include "kvs/status.h"

#include <pcre2.h>

namespace kvs::bpe {

namespace {

// White space as Python's `regex` module (GPT-2's own encoder) and Hugging Face's Oniguruma define
// \s: U+0009..U+000D, U+0085 and the Z categories. PCRE2 10.42's \s also takes U+180E (Mongolian
// vowel separator, a format character since Unicode 6.3) from its \h list, so patterns are
// rewritten to this explicit class before compiling.
constexpr std::string_view kSpaceClassBody = R"(\t-\r\x{85}\p{Z})";

std::string withExplicitWhiteSpace(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size() + 32);
    bool inClass = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char next = pattern[++i];
            if (next == 's') {
                out += inClass ? std::string(kSpaceClassBody)
                               : "[" + std::string(kSpaceClassBody) + "]";
            } else if (next == 'S' && !inClass) {
                out += "[^" + std::string(kSpaceClassBody) + "]";
            } else if (next == 'Q') { // \Q...\E quotes everything up to \E
                const std::size_t end = pattern.find("\\E", i + 1);
                const std::size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
                out.append(pattern.substr(i - 1, stop - (i - 1)));
                i = stop - 1;
            } else {
                out += c;
                out += next;
            }
            continue;
        }
        if (!inClass && c == '[') {
            inClass = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal member of the class.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^')
                out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']')
                out += pattern[++i];
            continue;
        }
        if (inClass && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
            const std::size_t end = pattern.find(":]", i + 2); // [:alpha:] inside a class
            if (end != std::string_view::npos) {
                out.append(pattern.substr(i, end + 2 - i));
                i = end + 1;
                continue;
            }
        }
        if (inClass && c == ']')
            inClass = false;
        out += c;
    }
    return out;
}

struct CodeDeleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

std::string errorMessage(int code) {
    PCRE2_UCHAR buffer[256];
    if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0)
        return "PCRE2 error " + std::to_string(code);
    return reinterpret_cast<const char*>(buffer);
}

pcre2_code* compile(const std::string& pattern) {
    int errorCode = 0;
    PCRE2_SIZE errorOffset = 0;
    // MATCH_INVALID_UTF: text that is not valid UTF-8 is searched rather than rejected; invalid
    // bytes never match and end up in the gaps between matches (which are kept as pieces).
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errorCode,
                                     &errorOffset, nullptr);
    if (!code)
        throw RegexError(errorMessage(errorCode) + " at offset " + std::to_string(errorOffset));
    return code;
}

} // namespace

struct Regex::Compiled {
    std::unique_ptr<pcre2_code, CodeDeleter> code;
};

Regex::Regex(const std::string& pattern) : m_pattern(pattern), m_compiled(new Compiled) {
    // Compiled as written first, so that an error's offset points into what the file says.
    m_compiled->code.reset(compile(pattern));
    m_compiled->code.reset(compile(withExplicitWhiteSpace(pattern)));
    pcre2_jit_compile(m_compiled->code.get(),
                      PCRE2_JIT_COMPLETE); // an interpreter fallback is fine
}

Regex::~Regex() = default;

std::vector<std::pair<std::size_t, std::size_t>> Regex::findAll(std::string_view text) const {
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
        pcre2_match_data_create_from_pattern(m_compiled->code.get(), nullptr));
    if (!data)
        throw std::bad_alloc();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t offset = 0;
    while (offset < text.size()) {
        const int rc = pcre2_match(m_compiled->code.get(), subject, text.size(), offset, 0,
                                   data.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            throw Error(ErrorCode::Internal,
                        "regular expression /" + m_pattern + "/ failed: " + errorMessage(rc));
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
        const std::size_t begin = ovector[0];
        const std::size_t end = ovector[1];
        if (end > begin) {
            matches.emplace_back(begin, end);
            offset = end;
        } else {
            // An empty match: step over one character and search again.
            offset = begin + 1;
            while (offset < text.size() &&
                   (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80)
                ++offset;
        }
    }
    return matches;
}

} // namespace kvs::bpe
