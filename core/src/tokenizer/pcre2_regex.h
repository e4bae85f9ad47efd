// SPDX-License-Identifier: MIT
// Regular expressions for BPE pre-tokenizers: PCRE2 with UTF and Unicode properties, as Hugging
// Face's Oniguruma patterns expect.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvs::bpe {

// A pattern that does not compile; the message names the problem and its offset.
class RegexError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Regex {
public:
    // Throws RegexError when the pattern does not compile.
    explicit Regex(const std::string& pattern);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    const std::string& pattern() const { return m_pattern; }

    // Non-overlapping, non-empty matches, left to right, as [begin, end) byte offsets.
    std::vector<std::pair<std::size_t, std::size_t>> findAll(std::string_view text) const;

private:
    struct Compiled; // the PCRE2 code, kept out of this header
    std::string m_pattern;
    std::unique_ptr<Compiled> m_compiled;
};

} // namespace kvs::bpe
