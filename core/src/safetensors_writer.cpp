// SPDX-License-Identifier: MIT
// Writing safetensors files in the reference layout: compact JSON header padded to 8 bytes, then
// data.
#include "kvs/output_writer.h"
#include "kvs/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

namespace kvs {
namespace {

std::string describeShape(const std::vector<std::int64_t>& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

// Number of elements of a shape; throws InvalidArgument for negative or overflowing shapes.
std::size_t elementCount(const std::string& name, const std::vector<std::int64_t>& shape) {
    std::size_t n = 1;
    for (const auto d : shape) {
        if (d < 0)
            throw Error(ErrorCode::InvalidArgument, "tensor '" + name + "': shape " +
                                                        describeShape(shape) +
                                                        " has a negative dimension");
        if (__builtin_mul_overflow(n, static_cast<std::size_t>(d), &n))
            throw Error(ErrorCode::InvalidArgument,
                        "tensor '" + name + "': shape " + describeShape(shape) + " is too large");
    }
    return n;
}

void checkName(const std::string& name) {
    if (name == "__metadata__")
        throw Error(ErrorCode::InvalidArgument, "'__metadata__' cannot be a tensor name");
}

// What addFloat and addFloatGenerated accept: a new name and a float storage type.
void checkFloatTensor(const std::string& name, DType storeAs, bool exists) {
    checkName(name);
    if (storeAs != DType::F32 && storeAs != DType::F16 && storeAs != DType::BF16)
        throw Error(ErrorCode::InvalidArgument, "tensor '" + name +
                                                    "': float data cannot be stored as " +
                                                    std::string(dtypeName(storeAs)));
    if (exists)
        throw Error(ErrorCode::InvalidArgument, "tensor '" + name + "' was already added");
}

} // namespace

void SafetensorsWriter::setMetadata(const std::string& key, const std::string& value) {
    m_metadata[key] = value;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<std::int64_t> shape,
                            std::span<const std::byte> data) {
    checkName(name);
    const std::size_t count = elementCount(name, shape);
    std::size_t needed = 0;
    if (__builtin_mul_overflow(count, dtypeSize(dtype), &needed) || needed != data.size())
        throw Error(ErrorCode::InvalidArgument,
                    "tensor '" + name + "': " + std::to_string(data.size()) +
                        " bytes of data for shape " + describeShape(shape) + " of " +
                        std::string(dtypeName(dtype)) + ", which needs " + std::to_string(count) +
                        " x " + std::to_string(dtypeSize(dtype)) + " bytes");
    if (m_entries.count(name) != 0)
        throw Error(ErrorCode::InvalidArgument, "tensor '" + name + "' was already added");
    m_entries.emplace(name, Entry{dtype, std::move(shape), {data.begin(), data.end()}, needed, {}});
}

void SafetensorsWriter::addFloat(const std::string& name, DType storeAs,
                                 std::vector<std::int64_t> shape, std::span<const float> data) {
    checkFloatTensor(name, storeAs, m_entries.count(name) != 0);
    const std::size_t count = elementCount(name, shape);
    if (count != data.size())
        throw Error(ErrorCode::InvalidArgument,
                    "tensor '" + name + "': " + std::to_string(data.size()) + " values for shape " +
                        describeShape(shape) + ", which has " + std::to_string(count));
    std::vector<std::byte> bytes(count * dtypeSize(storeAs));
    convertFromFloat(data.data(), count, storeAs, bytes.data());
    const std::size_t size = bytes.size();
    m_entries.emplace(name, Entry{storeAs, std::move(shape), std::move(bytes), size, {}});
}

void SafetensorsWriter::addFloatGenerated(const std::string& name, DType storeAs,
                                          std::vector<std::int64_t> shape, ChunkFill fill) {
    checkFloatTensor(name, storeAs, m_entries.count(name) != 0);
    const std::size_t count = elementCount(name, shape);
    std::size_t bytes = 0;
    if (__builtin_mul_overflow(count, dtypeSize(storeAs), &bytes))
        throw Error(ErrorCode::InvalidArgument, "tensor '" + name + "' is too large");
    m_entries.emplace(name, Entry{storeAs, std::move(shape), {}, bytes, std::move(fill)});
}

std::uint64_t SafetensorsWriter::dataBytes() const {
    std::uint64_t total = 0;
    for (const auto& [name, entry] : m_entries)
        total += entry.bytes;
    return total;
}

Result<bool> SafetensorsWriter::write(const std::filesystem::path& path) const {
    return catchErrors([&]() -> bool {
        writeOutputStreamed(path, "", Overwrite::Force,
                            [&](const OutputSink& sink) { stream(path, m_metadata, sink); });
        return true;
    });
}

Result<bool> SafetensorsWriter::write(const std::filesystem::path& path, std::string_view kind,
                                      Overwrite overwrite) const {
    return catchErrors([&]() -> bool {
        requireWritable(path, kind, overwrite); // before the work of serializing
        auto metadata = m_metadata;
        metadata[kOwnerKey] = std::string(kind);
        writeOutputStreamed(path, kind, overwrite,
                            [&](const OutputSink& sink) { stream(path, metadata, sink); });
        return true;
    });
}

void SafetensorsWriter::stream(const std::filesystem::path& path,
                               const std::map<std::string, std::string>& metadata,
                               const std::function<void(std::span<const std::byte>)>& sink) const {
    // Data layout as the reference writer: wider dtypes first, then by name, no gaps, so every
    // tensor is aligned to its element size once the data buffer starts on 8 bytes.
    std::vector<const std::pair<const std::string, Entry>*> order;
    order.reserve(m_entries.size());
    for (const auto& entry : m_entries)
        order.push_back(&entry);
    std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
        return dtypeSize(a->second.dtype) > dtypeSize(b->second.dtype);
    });
    std::map<std::string, std::pair<std::size_t, std::size_t>> offsets;
    std::size_t dataSize = 0;
    for (const auto* entry : order) {
        offsets[entry->first] = {dataSize, dataSize + entry->second.bytes};
        dataSize += entry->second.bytes;
    }

    // Header: "__metadata__" first (only when there is some), then tensors sorted by name, each
    // with dtype, shape, data_offsets in that order; compact, padded with spaces to 8 bytes.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
        for (const auto& [key, value] : metadata)
            meta[key] = value;
    }
    for (const auto& [name, entry] : m_entries) {
        nlohmann::ordered_json t = nlohmann::ordered_json::object();
        t["dtype"] = dtypeName(entry.dtype);
        t["shape"] = entry.shape;
        const auto [begin, end] = offsets.at(name);
        t["data_offsets"] = {begin, end};
        header[name] = std::move(t);
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::InvalidArgument,
                    path.string() + ": cannot write the header: " + e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');

    std::byte length[8];
    std::uint64_t headerSize = text.size();
    for (std::byte& b : length) {
        b = static_cast<std::byte>(headerSize & 0xFF);
        headerSize >>= 8;
    }
    sink(length);
    sink(std::as_bytes(std::span<const char>(text.data(), text.size())));
    // Generated tensors go through a bounded buffer: made, converted and written a chunk at a time.
    constexpr std::size_t kChunk = std::size_t(1) << 20;
    std::vector<float> values;
    std::vector<std::byte> converted;
    for (const auto* entry : order) {
        const Entry& e = entry->second;
        if (!e.fill) {
            sink(e.data);
            continue;
        }
        const std::size_t size = dtypeSize(e.dtype);
        for (std::size_t done = 0; done < e.bytes / size;) {
            const std::size_t n = std::min(kChunk, e.bytes / size - done);
            values.resize(n);
            converted.resize(n * size);
            e.fill(values);
            convertFromFloat(values.data(), n, e.dtype, converted.data());
            sink(converted);
            done += n;
        }
    }
}

} // namespace kvs
