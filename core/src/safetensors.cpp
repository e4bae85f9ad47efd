// SPDX-License-Identifier: MIT
// Reading safetensors: a read-only mapping, strict header validation, and sharded checkpoints.
#include "kvs/safetensors.h"

#include "kvs/file_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace kvs {

// A whole file mapped read-only (MAP_PRIVATE). Empty files are not mapped: data() is null.
class MappedFile {
public:
    explicit MappedFile(const std::filesystem::path& path) {
        // Refuses a folder, fifo or device by its type, without waiting on a fifo.
        std::uint64_t size = 0;
        const int fd = openRegularFile(path, &size);
        m_size = static_cast<std::size_t>(size);
        if (m_size > 0) {
            void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                const int saved = errno;
                ::close(fd);
                errno = saved;
                fail(path, "cannot map into memory");
            }
            m_data = p;
        }
        ::close(fd); // the mapping keeps the file alive
    }
    ~MappedFile() {
        if (m_data != nullptr)
            ::munmap(m_data, m_size);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::byte* data() const { return static_cast<const std::byte*>(m_data); }
    std::size_t size() const { return m_size; }

private:
    [[noreturn]] static void fail(const std::filesystem::path& path, const std::string& what) {
        throw Error(ErrorCode::Io, path.string() + ": " + what + " (" + std::strerror(errno) + ")");
    }

    void* m_data = nullptr;
    std::size_t m_size = 0;
};

namespace {

using nlohmann::json;

// Headers beyond this are refused before parsing (the reference implementation uses the same cap).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

std::string quoted(const std::string& s) {
    return "'" + s + "'";
}

std::string shapeString(const std::vector<std::int64_t>& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

// Parses JSON rejecting duplicate keys in any object (nlohmann would keep the last silently);
// `topLevelKeyKind` names what the top-level keys are ("tensor name"). Throws kvs::Error for a
// duplicate and nlohmann's parse_error for malformed text.
json parseNoDuplicates(std::string_view text, const std::string& prefix,
                       const std::string& topLevelKeyKind) {
    std::vector<std::set<std::string>> seen; // one set per open object
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
        switch (event) {
        case json::parse_event_t::object_start:
            seen.emplace_back();
            break;
        case json::parse_event_t::object_end:
            if (!seen.empty())
                seen.pop_back();
            break;
        case json::parse_event_t::key:
            if (!seen.empty()) {
                const auto& key = parsed.get_ref<const std::string&>();
                if (!seen.back().insert(key).second) {
                    if (depth == 1)
                        throw Error(ErrorCode::Format,
                                    prefix + "duplicate " + topLevelKeyKind + " " + quoted(key));
                    throw Error(ErrorCode::Format, prefix + "duplicate key " + quoted(key));
                }
            }
            break;
        default:
            break;
        }
        return true;
    };
    // The prefix is "FILE: "; the check names the file itself.
    checkJsonNesting(text, prefix.ends_with(": ") ? prefix.substr(0, prefix.size() - 2) : prefix);
    return json::parse(text.begin(), text.end(), callback);
}

// A JSON number that is a non-negative integer (not 1.0, not -1).
bool isNonNegativeInteger(const json& j) {
    return j.is_number_unsigned() || (j.is_number_integer() && j.get<std::int64_t>() >= 0);
}

TensorInfo parseTensorEntry(const std::string& name, const json& entry, std::size_t dataSize,
                            const std::string& prefix) {
    const std::string at = prefix + "tensor " + quoted(name) + ": ";
    auto formatError = [&](const std::string& what) { return Error(ErrorCode::Format, at + what); };
    if (!entry.is_object())
        throw formatError("entry is not a JSON object (it is " + std::string(entry.type_name()) +
                          ")");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!entry.contains(key))
            throw formatError(std::string("missing \"") + key + "\"");

    TensorInfo info;
    info.name = name;

    const json& dtype = entry["dtype"];
    if (!dtype.is_string())
        throw formatError("dtype is not a string");
    const auto& dtypeText = dtype.get_ref<const std::string&>();
    const auto parsed = parseDType(dtypeText);
    if (!parsed)
        throw formatError("unknown dtype " + quoted(dtypeText));
    info.dtype = *parsed;

    const json& shape = entry["shape"];
    if (!shape.is_array())
        throw formatError("shape is not an array");
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const json& dim : shape) {
        if (!dim.is_number_integer())
            throw formatError("shape entry " + dim.dump() + " is not an integer");
        if (!isNonNegativeInteger(dim))
            throw formatError("shape entry " + dim.dump() + " is negative");
        const auto d = dim.get<std::uint64_t>();
        if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            throw formatError("shape entry " + dim.dump() + " is too large");
        info.shape.push_back(static_cast<std::int64_t>(d));
        overflow = overflow || __builtin_mul_overflow(numel, d, &numel);
    }

    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !isNonNegativeInteger(offsets[0]) ||
        !isNonNegativeInteger(offsets[1]))
        throw formatError("data_offsets " + offsets.dump() +
                          " is not a pair of non-negative integers");
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    if (begin > end)
        throw formatError("data_offsets begin " + std::to_string(begin) + " is after end " +
                          std::to_string(end));
    if (end > dataSize)
        throw formatError("data_offsets " + offsets.dump() +
                          " run past the end of the data buffer (" + std::to_string(dataSize) +
                          " bytes)");
    info.dataBegin = static_cast<std::size_t>(begin);
    info.dataEnd = static_cast<std::size_t>(end);

    std::uint64_t needed = 0;
    overflow = overflow || __builtin_mul_overflow(numel, dtypeSize(info.dtype), &needed);
    if (overflow || needed != end - begin)
        throw formatError("data_offsets " + offsets.dump() + " span " +
                          std::to_string(end - begin) + " bytes but shape " +
                          shapeString(info.shape) + " of " + dtypeText + " needs " +
                          (overflow ? std::string("more than 2^64") : std::to_string(needed)));
    return info;
}

// Non-empty ranges must not share a byte; gaps between them are allowed.
void checkOverlaps(const std::map<std::string, TensorInfo>& tensors, const std::string& prefix) {
    std::vector<const TensorInfo*> ranges;
    for (const auto& [name, info] : tensors)
        if (info.nbytes() > 0)
            ranges.push_back(&info);
    std::sort(ranges.begin(), ranges.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return std::pair(a->dataBegin, a->dataEnd) < std::pair(b->dataBegin, b->dataEnd);
    });
    const TensorInfo* reach = nullptr; // the range reaching furthest so far
    for (const TensorInfo* r : ranges) {
        if (reach != nullptr && r->dataBegin < reach->dataEnd)
            throw Error(ErrorCode::Format, prefix + "tensors " + quoted(reach->name) + " [" +
                                               std::to_string(reach->dataBegin) + ", " +
                                               std::to_string(reach->dataEnd) + ") and " +
                                               quoted(r->name) + " [" +
                                               std::to_string(r->dataBegin) + ", " +
                                               std::to_string(r->dataEnd) + ") overlap");
        if (reach == nullptr || r->dataEnd > reach->dataEnd)
            reach = r;
    }
}

// The entry of a map from tensor name, or a Missing error naming the file and the tensor.
template <class Map>
const typename Map::mapped_type& tensorEntry(const Map& byName, const std::filesystem::path& where,
                                             const std::string& name) {
    const auto it = byName.find(name);
    if (it == byName.end())
        throw Error(ErrorCode::Missing, where.string() + ": no tensor named " + quoted(name));
    return it->second;
}

template <class Map> std::vector<std::string> tensorNames(const Map& byName) {
    std::vector<std::string> out;
    out.reserve(byName.size());
    for (const auto& entry : byName)
        out.push_back(entry.first);
    return out;
}

} // namespace

std::int64_t TensorInfo::numel() const {
    std::int64_t n = 1;
    for (const auto d : shape)
        n *= d;
    return n;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

Result<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
    return catchErrors([&]() -> SafetensorsFile {
        const std::string prefix = path.string() + ": ";
        auto formatError = [&](const std::string& what) {
            return Error(ErrorCode::Format, prefix + what);
        };

        SafetensorsFile file;
        file.m_path = path;
        file.m_map = std::make_shared<MappedFile>(path);
        const std::byte* base = file.m_map->data();
        const std::size_t size = file.m_map->size();

        if (size < 8)
            throw formatError("truncated: the file is " + std::to_string(size) +
                              " bytes, too short for the 8-byte header length");
        std::uint64_t headerLength = 0;
        for (int i = 7; i >= 0; --i)
            headerLength = (headerLength << 8) | std::to_integer<std::uint64_t>(base[i]);
        if (headerLength == 0)
            throw formatError("header length is 0");
        if (headerLength > kMaxHeaderBytes)
            throw formatError("header length " + std::to_string(headerLength) +
                              " is absurd (the limit is " + std::to_string(kMaxHeaderBytes) +
                              " bytes)");
        if (headerLength > size - 8)
            throw formatError("header length " + std::to_string(headerLength) +
                              " runs past the end of the file (" + std::to_string(size) +
                              " bytes)");
        const auto headerSize = static_cast<std::size_t>(headerLength);
        file.m_data = base + 8 + headerSize;
        file.m_dataSize = size - 8 - headerSize;

        const std::string_view headerText(reinterpret_cast<const char*>(base + 8), headerSize);
        json header;
        try {
            header = parseNoDuplicates(headerText, prefix, "tensor name");
        } catch (const json::exception& e) {
            throw formatError(std::string("header is not valid JSON: ") + e.what());
        }
        if (!header.is_object())
            throw formatError("header is not a JSON object (it is " +
                              std::string(header.type_name()) + ")");

        for (const auto& [name, entry] : header.items()) {
            if (name == "__metadata__") {
                if (!entry.is_object())
                    throw formatError("__metadata__ is not a JSON object (it is " +
                                      std::string(entry.type_name()) + ")");
                for (const auto& [key, value] : entry.items()) {
                    if (!value.is_string())
                        throw formatError("__metadata__ value of " + quoted(key) +
                                          " is not a string (it is " +
                                          std::string(value.type_name()) + ")");
                    file.m_metadata.emplace(key, value.get<std::string>());
                }
                continue;
            }
            file.m_tensors.emplace(name, parseTensorEntry(name, entry, file.m_dataSize, prefix));
        }
        checkOverlaps(file.m_tensors, prefix);
        return file;
    });
}

std::vector<std::string> SafetensorsFile::names() const {
    return tensorNames(m_tensors);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
    return tensorEntry(m_tensors, m_path, name);
}

std::span<const std::byte> SafetensorsFile::bytes(const std::string& name) const {
    const TensorInfo& t = info(name);
    if (t.nbytes() == 0)
        return {};
    return {m_data + t.dataBegin, t.nbytes()};
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// A shard path from the index must stay inside the folder.
bool staysInside(const std::filesystem::path& relative) {
    if (relative.empty() || relative.is_absolute())
        return false;
    for (const auto& part : relative)
        if (part == "..")
            return false;
    return true;
}

} // namespace

Result<Checkpoint> Checkpoint::open(const std::filesystem::path& folderOrFile) {
    return catchErrors([&]() -> Checkpoint {
        Checkpoint ckpt;
        std::error_code ec;
        const bool isFolder = std::filesystem::is_directory(folderOrFile, ec);
        std::filesystem::path index;
        if (isFolder) {
            if (std::filesystem::exists(folderOrFile / kIndexName, ec)) {
                index = folderOrFile / kIndexName;
            } else if (std::filesystem::exists(folderOrFile / kSingleName, ec)) {
                ckpt.m_origin = folderOrFile / kSingleName;
            } else {
                throw Error(ErrorCode::Missing, std::string("no ") + kSingleName + " or " +
                                                    kIndexName + " in " + folderOrFile.string());
            }
        } else if (folderOrFile.filename().string().ends_with(".index.json")) {
            index = folderOrFile;
        } else {
            ckpt.m_origin = folderOrFile;
        }

        if (index.empty()) {
            ckpt.m_files.push_back(std::move(SafetensorsFile::open(ckpt.m_origin).valueOrThrow()));
            for (const auto& name : ckpt.m_files.front().names())
                ckpt.m_where.emplace(name, 0);
            return ckpt;
        }

        ckpt.m_origin = index;
        const std::string prefix = index.string() + ": ";
        auto formatError = [&](const std::string& what) {
            return Error(ErrorCode::Format, prefix + what);
        };
        json doc;
        const std::string text = readFile(index, kMaxTokenizerBytes); // a name per tensor
        checkJsonNesting(text, index.string());
        try {
            doc = parseNoDuplicates(text, prefix, "key");
        } catch (const json::exception& e) {
            throw formatError(std::string("not valid JSON: ") + e.what());
        }
        if (!doc.is_object())
            throw formatError("not a JSON object");
        if (doc.contains("metadata") && !doc["metadata"].is_object() && !doc["metadata"].is_null())
            throw formatError("\"metadata\" is not a JSON object");
        if (!doc.contains("weight_map") || !doc["weight_map"].is_object())
            throw formatError("no \"weight_map\" object");
        const json& weightMap = doc["weight_map"];
        if (weightMap.empty())
            throw formatError("\"weight_map\" lists no tensors");

        const auto folder = index.parent_path();
        std::map<std::string, std::string> shardOf; // tensor -> shard file name
        std::map<std::string, std::size_t> shardIndex;
        for (const auto& [name, value] : weightMap.items()) {
            if (!value.is_string())
                throw formatError("weight_map entry of " + quoted(name) + " is not a string");
            const auto& shard = value.get_ref<const std::string&>();
            if (!staysInside(shard))
                throw formatError("shard " + quoted(shard) + " of tensor " + quoted(name) +
                                  " is not a path inside " + folder.string());
            shardOf.emplace(name, shard);
            shardIndex.emplace(shard, 0);
        }

        std::size_t next = 0;
        for (auto& [shard, fileIndex] : shardIndex) {
            const auto shardPath = folder / shard;
            if (!std::filesystem::exists(shardPath, ec)) {
                const auto user =
                    std::find_if(shardOf.begin(), shardOf.end(),
                                 [&name = shard](const auto& kv) { return kv.second == name; });
                throw Error(ErrorCode::Missing, prefix + "shard " + quoted(shard) +
                                                    " (holding tensor " + quoted(user->first) +
                                                    ") does not exist");
            }
            auto opened = SafetensorsFile::open(shardPath);
            if (!opened.ok())
                throw Error(opened.error().code(),
                            opened.message() + " (a shard listed in " + index.string() + ")");
            fileIndex = next++;
            ckpt.m_files.push_back(std::move(opened).value());
        }

        for (std::size_t i = 0; i < ckpt.m_files.size(); ++i) {
            for (const auto& name : ckpt.m_files[i].names()) {
                const auto [it, inserted] = ckpt.m_where.emplace(name, i);
                if (!inserted)
                    throw formatError("tensor " + quoted(name) + " appears in two shards, " +
                                      quoted(ckpt.m_files[it->second].path().filename().string()) +
                                      " and " + quoted(ckpt.m_files[i].path().filename().string()));
            }
        }
        for (const auto& [name, shard] : shardOf) {
            const auto it = ckpt.m_where.find(name);
            if (it == ckpt.m_where.end())
                throw formatError("tensor " + quoted(name) + " is not in its shard " +
                                  quoted(shard));
            if (it->second != shardIndex.at(shard))
                throw formatError("tensor " + quoted(name) + " is not in its shard " +
                                  quoted(shard) + " but in " +
                                  quoted(ckpt.m_files[it->second].path().filename().string()));
        }
        return ckpt;
    });
}

std::vector<std::string> Checkpoint::names() const {
    return tensorNames(m_where);
}

const SafetensorsFile& Checkpoint::fileOf(const std::string& name) const {
    return m_files[tensorEntry(m_where, m_origin, name)];
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
    return fileOf(name).info(name);
}

std::span<const std::byte> Checkpoint::bytes(const std::string& name) const {
    return fileOf(name).bytes(name);
}

const std::map<std::string, std::string>& Checkpoint::metadata() const {
    static const std::map<std::string, std::string> kEmpty;
    return m_files.empty() ? kEmpty : m_files.front().metadata();
}

std::uintmax_t Checkpoint::totalBytes() const {
    std::uintmax_t total = 0;
    for (const auto& [name, file] : m_where)
        total += m_files[file].info(name).nbytes();
    return total;
}

std::string Checkpoint::describe() const {
    const std::string name = m_origin.filename().string();
    if (!name.ends_with(".index.json"))
        return name;
    const auto n = m_files.size();
    return name + " (" + std::to_string(n) + (n == 1 ? " shard)" : " shards)");
}

} // namespace kvs
