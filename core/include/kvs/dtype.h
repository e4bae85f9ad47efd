// SPDX-License-Identifier: MIT
// Element types of safetensors files and conversion of raw little-endian bytes to float/double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kvs {

// Every dtype the safetensors format defines; float conversion is offered for the floating ones.
enum class DType {
    Bool,
    U8,
    I8,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
    F8E4M3,
    F8E5M2
};

std::optional<DType> parseDType(std::string_view name); // "F16" -> DType::F16
std::string_view dtypeName(DType t);                    // DType::F16 -> "F16"
std::size_t dtypeSize(DType t);                         // bytes per element
bool isFloating(DType t);                               // F16, BF16, F32, F64, F8*

// Convert count elements of type `from` at `src` (any alignment) to float/double.
// Supported sources: F16, BF16, F32, F64, and the integer types. Throws kvs::Error otherwise.
void convertToFloat(DType from, const std::byte* src, std::size_t count, float* dst);
void convertToDouble(DType from, const std::byte* src, std::size_t count, double* dst);

// The inverse for writers: float -> F32/F16/BF16 bytes (round to nearest even).
void convertFromFloat(const float* src, std::size_t count, DType to, std::byte* dst);

} // namespace kvs
