// SPDX-License-Identifier: MIT
// Element types of safetensors and their conversion; half and bfloat16 through Eigen's types.
#include "kvs/dtype.h"

#include "kvs/status.h"

#include <Eigen/Core>
#include <array>
#include <cstring>

namespace kvs {
namespace {

struct DTypeEntry {
    DType type;
    std::string_view name;
    std::size_t size;
};

constexpr std::array<DTypeEntry, 15> kDTypes{{
    {DType::Bool, "BOOL", 1},
    {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},
    {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},
    {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
    {DType::F8E4M3, "F8_E4M3", 1},
    {DType::F8E5M2, "F8_E5M2", 1},
}};

const DTypeEntry& entry(DType t) {
    for (const auto& e : kDTypes)
        if (e.type == t)
            return e;
    throw Error(ErrorCode::Internal, "unknown dtype enumerator");
}

// Reads one element of type T from possibly unaligned memory.
template <class T> T load(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

template <class Out> void convert(DType from, const std::byte* src, std::size_t count, Out* dst) {
    const std::size_t step = dtypeSize(from);
    auto each = [&](auto fn) {
        for (std::size_t i = 0; i < count; ++i)
            dst[i] = static_cast<Out>(fn(src + i * step));
    };
    switch (from) {
    case DType::F32:
        if constexpr (std::is_same_v<Out, float>) {
            std::memcpy(dst, src, count * sizeof(float));
            return;
        }
        each([](const std::byte* p) { return load<float>(p); });
        return;
    case DType::F64:
        each([](const std::byte* p) { return load<double>(p); });
        return;
    case DType::F16:
        each([](const std::byte* p) {
            return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(load<std::uint16_t>(p)));
        });
        return;
    case DType::BF16:
        each([](const std::byte* p) {
            return static_cast<float>(
                Eigen::numext::bit_cast<Eigen::bfloat16>(load<std::uint16_t>(p)));
        });
        return;
    case DType::Bool:
    case DType::U8:
        each([](const std::byte* p) { return load<std::uint8_t>(p); });
        return;
    case DType::I8:
        each([](const std::byte* p) { return load<std::int8_t>(p); });
        return;
    case DType::I16:
        each([](const std::byte* p) { return load<std::int16_t>(p); });
        return;
    case DType::U16:
        each([](const std::byte* p) { return load<std::uint16_t>(p); });
        return;
    case DType::I32:
        each([](const std::byte* p) { return load<std::int32_t>(p); });
        return;
    case DType::U32:
        each([](const std::byte* p) { return load<std::uint32_t>(p); });
        return;
    case DType::I64:
        each([](const std::byte* p) { return load<std::int64_t>(p); });
        return;
    case DType::U64:
        each([](const std::byte* p) { return load<std::uint64_t>(p); });
        return;
    case DType::F8E4M3:
    case DType::F8E5M2:
        break;
    }
    throw Error(ErrorCode::Unsupported, "conversion from " + std::string(dtypeName(from)) +
                                            " to floating point is not supported");
}

} // namespace

std::optional<DType> parseDType(std::string_view name) {
    for (const auto& e : kDTypes)
        if (e.name == name)
            return e.type;
    return std::nullopt;
}

std::string_view dtypeName(DType t) {
    return entry(t).name;
}
std::size_t dtypeSize(DType t) {
    return entry(t).size;
}

bool isFloating(DType t) {
    return t == DType::F16 || t == DType::BF16 || t == DType::F32 || t == DType::F64 ||
           t == DType::F8E4M3 || t == DType::F8E5M2;
}

void convertToFloat(DType from, const std::byte* src, std::size_t count, float* dst) {
    convert(from, src, count, dst);
}

void convertToDouble(DType from, const std::byte* src, std::size_t count, double* dst) {
    convert(from, src, count, dst);
}

void convertFromFloat(const float* src, std::size_t count, DType to, std::byte* dst) {
    switch (to) {
    case DType::F32:
        std::memcpy(dst, src, count * sizeof(float));
        return;
    case DType::F16:
        for (std::size_t i = 0; i < count; ++i) {
            const auto bits = Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(src[i]));
            std::memcpy(dst + 2 * i, &bits, 2);
        }
        return;
    case DType::BF16:
        for (std::size_t i = 0; i < count; ++i) {
            const auto bits = Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(src[i]));
            std::memcpy(dst + 2 * i, &bits, 2);
        }
        return;
    default:
        throw Error(ErrorCode::Unsupported,
                    "writing float data as " + std::string(dtypeName(to)) + " is not supported");
    }
}

} // namespace kvs
