// SPDX-License-Identifier: MIT
// Names of error codes, for logs and the CLI's JSON errors.
#include "kvs/status.h"

namespace kvs {

const char* toString(ErrorCode code) {
    switch (code) {
    case ErrorCode::Io:
        return "io";
    case ErrorCode::Format:
        return "format";
    case ErrorCode::Unsupported:
        return "unsupported";
    case ErrorCode::InvalidArgument:
        return "invalid-argument";
    case ErrorCode::Missing:
        return "missing";
    case ErrorCode::OutOfMemory:
        return "out-of-memory";
    case ErrorCode::Cancelled:
        return "cancelled";
    case ErrorCode::NotFinite:
        return "not-finite";
    case ErrorCode::Exists:
        return "exists";
    case ErrorCode::Internal:
        return "internal";
    }
    return "unknown";
}

} // namespace kvs
