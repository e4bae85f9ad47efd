// SPDX-License-Identifier: MIT
// Memory-mapped safetensors files, sharded checkpoints (model.safetensors.index.json), and a
// writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer.
// Header: {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
//          "__metadata__": {"key": "string value", ...}} with offsets relative to the data buffer.
// Validation is strict: every offset range lies in the buffer, its size equals product(shape) *
// dtype size, ranges do not overlap, dtypes are known, metadata values are strings.
#pragma once

#include "kvs/dtype.h"
#include "kvs/output_writer.h"
#include "kvs/status.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvs {

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape;
    std::size_t dataBegin = 0; // relative to the data buffer
    std::size_t dataEnd = 0;
    std::int64_t numel() const;
    std::size_t nbytes() const { return dataEnd - dataBegin; }
};

class MappedFile; // RAII mmap, defined in safetensors.cpp

// One .safetensors file, mapped read-only. Cheap to move; the mapping lives as long as the object.
class SafetensorsFile {
public:
    static Result<SafetensorsFile> open(const std::filesystem::path& path);

    const std::filesystem::path& path() const { return m_path; }
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    std::vector<std::string> names() const; // sorted
    bool contains(const std::string& name) const { return m_tensors.count(name) != 0; }
    // Throws kvs::Error(Missing) naming the file if absent.
    const TensorInfo& info(const std::string& name) const;
    // The raw bytes of a tensor inside the mapping (no copy; any alignment).
    std::span<const std::byte> bytes(const std::string& name) const;

    SafetensorsFile(SafetensorsFile&&) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
    ~SafetensorsFile();

private:
    SafetensorsFile() = default;
    std::filesystem::path m_path;
    std::shared_ptr<MappedFile> m_map;
    const std::byte* m_data = nullptr; // start of the data buffer
    std::size_t m_dataSize = 0;
    std::map<std::string, TensorInfo> m_tensors;
    std::map<std::string, std::string> m_metadata;
};

// A checkpoint: a model folder holding model.safetensors, or model.safetensors.index.json with
// its shards, or a single explicit .safetensors file. Tensor names resolve to their shard.
class Checkpoint {
public:
    static Result<Checkpoint> open(const std::filesystem::path& folderOrFile);

    std::vector<std::string> names() const; // sorted, across shards
    bool contains(const std::string& name) const { return m_where.count(name) != 0; }
    const TensorInfo& info(const std::string& name) const;
    std::span<const std::byte> bytes(const std::string& name) const;
    const SafetensorsFile& fileOf(const std::string& name) const;
    const std::vector<SafetensorsFile>& files() const { return m_files; }
    // Metadata of the first file (HF writes {"format": "pt"}).
    const std::map<std::string, std::string>& metadata() const;
    std::uintmax_t totalBytes() const; // sum of tensor bytes
    std::string
    describe() const; // "model.safetensors" or "model.safetensors.index.json (3 shards)"

private:
    std::vector<SafetensorsFile> m_files;
    std::map<std::string, std::size_t> m_where; // tensor name -> index into m_files
    std::filesystem::path m_origin;
};

// Collects tensors and writes one .safetensors file through the output writer (atomic). Tensor data
// is copied in; headers are written with sorted names and 8-byte aligned data, as the reference
// does.
class SafetensorsWriter {
public:
    void setMetadata(const std::string& key, const std::string& value);
    void add(const std::string& name, DType dtype, std::vector<std::int64_t> shape,
             std::span<const std::byte> data);
    // Converts float data to F32/F16/BF16 on the way in.
    void addFloat(const std::string& name, DType storeAs, std::vector<std::int64_t> shape,
                  std::span<const float> data);
    // A float tensor made while the file is written, never held whole: `fill` is called with
    // consecutive chunks of its elements (in order, each to be filled completely) and keeps its
    // own position. For generated models too large for memory.
    using ChunkFill = std::function<void(std::span<float>)>;
    void addFloatGenerated(const std::string& name, DType storeAs, std::vector<std::int64_t> shape,
                           ChunkFill fill);
    // A plain safetensors file, byte for byte as the reference writes it, replacing whatever is at
    // `path` (kvs/output_writer.h, forced): for tools and tests that build files on purpose.
    Result<bool> write(const std::filesystem::path& path) const;
    // A file of the studio's own: marked in `__metadata__` as `kind` ("capture", ...), written
    // only over a file the studio wrote as that kind unless forced (ErrorCode::Exists).
    Result<bool> write(const std::filesystem::path& path, std::string_view kind,
                       Overwrite overwrite) const;
    std::size_t tensorCount() const { return m_entries.size(); }
    std::uint64_t dataBytes() const; // the tensors' bytes (the file adds its header)

private:
    // The file's bytes, handed to `sink` piece by piece: header, then every tensor's data.
    void stream(const std::filesystem::path& path,
                const std::map<std::string, std::string>& metadata,
                const std::function<void(std::span<const std::byte>)>& sink) const;
    struct Entry {
        DType dtype;
        std::vector<std::int64_t> shape;
        std::vector<std::byte> data; // empty for generated tensors
        std::size_t bytes = 0;
        ChunkFill fill; // generated tensors only
    };
    std::map<std::string, Entry> m_entries;
    std::map<std::string, std::string> m_metadata;
};

} // namespace kvs
