// SPDX-License-Identifier: MIT
// Errors as values at module seams: Error carries a code and a message that names the file and the
// problem.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace kvs {

enum class ErrorCode {
    Io,              // a file could not be opened, read, mapped or written
    Format,          // a file is malformed (bad header, bad JSON, inconsistent offsets)
    Unsupported,     // well-formed but not something we handle (architecture, dtype, rope kind)
    InvalidArgument, // the caller asked for something impossible (empty prompt, too many tokens)
    Missing,         // a required tensor, key or file is absent
    OutOfMemory,     // an allocation failed (std::bad_alloc)
    Cancelled,       // the caller's cancel flag stopped the work; not a failure to report
    NotFinite,       // a NaN or infinity in weights, a capture or a result (kvs/finite.h)
    Exists,          // an output would replace a file the studio did not write (output_writer.h)
    Internal,
};

const char* toString(ErrorCode code);

// Thrown inside core; converted to Result<T> at the public seams. The message is complete on its
// own
// ("model.safetensors: header length 9000 runs past the end of the file (4096 bytes)").
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), m_code(code) {}
    ErrorCode code() const { return m_code; }

private:
    ErrorCode m_code;
};

// A value or an Error. Deliberately small: value(), error(), ok(), and valueOrThrow() for code
// that prefers to let the error travel as an exception (tests, the CLI's top level).
template <class T> class Result {
public:
    Result(T value) : m_state(std::move(value)) {}
    Result(Error error) : m_state(std::move(error)) {}

    bool ok() const { return std::holds_alternative<T>(m_state); }
    explicit operator bool() const { return ok(); }

    T& value() & { return valueOrThrow(); }
    const T& value() const& { return std::get<T>(checked()); }
    T&& value() && { return std::move(valueOrThrow()); }
    T& valueOrThrow() & {
        checked();
        return std::get<T>(m_state);
    }
    // On a temporary Result the value is moved out (Checkpoint::open(p).valueOrThrow()).
    T&& valueOrThrow() && {
        checked();
        return std::get<T>(std::move(m_state));
    }
    const Error& error() const { return std::get<Error>(m_state); }
    std::string message() const { return ok() ? std::string() : std::string(error().what()); }

    T* operator->() { return &valueOrThrow(); }
    const T* operator->() const { return &std::get<T>(checked()); }
    T& operator*() & { return valueOrThrow(); }

private:
    const std::variant<T, Error>& checked() const {
        if (!ok())
            throw std::get<Error>(m_state);
        return m_state;
    }
    std::variant<T, Error> m_state;
};

// Runs fn and turns a thrown kvs::Error (or std::exception) into a Result.
template <class Fn> auto catchErrors(Fn&& fn) -> Result<decltype(fn())> {
    try {
        return fn();
    } catch (const Error& e) {
        return e;
    } catch (const std::bad_alloc&) {
        return Error(ErrorCode::OutOfMemory, "out of memory");
    } catch (const std::exception& e) {
        return Error(ErrorCode::Internal, e.what());
    }
}

} // namespace kvs
