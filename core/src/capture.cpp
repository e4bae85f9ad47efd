// SPDX-License-Identifier: MIT
// The capture file: a safetensors file with documented tensor names (docs/capture-format.md).
#include "kvs/capture.h"

#include "kvs/file_util.h"
#include "kvs/finite.h"
#include "kvs/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>

namespace kvs {
namespace {

constexpr const char* kFormat = "kvstudio-capture";
constexpr const char* kFormatVersion = "1";

std::string layerName(int l, const std::string& what) {
    return "layers." + std::to_string(l) + "." + what;
}
std::string kvName(int l, int h, const std::string& what) {
    return layerName(l, "kv_heads." + std::to_string(h) + "." + what);
}
std::string queryName(int l, int q, const std::string& what) {
    return layerName(l, "query_heads." + std::to_string(q) + "." + what);
}

void addMatrix(SafetensorsWriter& w, const std::string& name, const Matrix& m, DType dtype) {
    w.addFloat(name, dtype, {m.rows(), m.cols()},
               std::span<const float>(m.data(), static_cast<std::size_t>(m.size())));
}

class CaptureReader {
public:
    CaptureReader(const SafetensorsFile& file) : m_file(file) {}

    Matrix matrix(const std::string& name, Eigen::Index rows, Eigen::Index cols) const {
        if (!m_file.contains(name))
            throw Error(ErrorCode::Missing,
                        m_file.path().string() + ": capture lacks tensor '" + name + "'");
        const auto& info = m_file.info(name);
        if (info.shape.size() != 2 || info.shape[0] != rows || info.shape[1] != cols)
            throw Error(ErrorCode::Format, m_file.path().string() + ": tensor '" + name +
                                               "' has shape " + shape(info) + ", expected [" +
                                               std::to_string(rows) + ", " + std::to_string(cols) +
                                               "]");
        if (!isFloating(info.dtype))
            throw Error(ErrorCode::Format,
                        m_file.path().string() + ": tensor '" + name + "' is not floating point");
        Matrix m(rows, cols);
        convertToFloat(info.dtype, m_file.bytes(name).data(), static_cast<std::size_t>(m.size()),
                       m.data());
        checkFinite(m, m_file.path().string() + ": tensor '" + name + "'");
        return m;
    }

    static std::string shape(const TensorInfo& info) {
        std::string s = "[";
        for (std::size_t i = 0; i < info.shape.size(); ++i)
            s += (i ? ", " : "") + std::to_string(info.shape[i]);
        return s + "]";
    }

private:
    const SafetensorsFile& m_file;
};

} // namespace

void checkCaptureFinite(const Capture& c, std::string_view source) {
    const std::string where = std::string(source) + ": tensor '";
    if (c.logits.size())
        checkFinite(c.logits, where + "logits'");
    for (std::size_t l = 0; l < c.layers.size(); ++l) {
        const auto& lc = c.layers[l];
        const int li = static_cast<int>(l);
        checkFinite(lc.hiddenNormed, where + layerName(li, "hidden_normed'"));
        for (std::size_t h = 0; h < lc.kvHeads.size(); ++h) {
            const auto& hc = lc.kvHeads[h];
            const int hi = static_cast<int>(h);
            checkFinite(hc.keys, where + kvName(li, hi, "keys'"));
            checkFinite(hc.values, where + kvName(li, hi, "values'"));
            checkFinite(hc.keysPreRope, where + kvName(li, hi, "keys_pre_rope'"));
            for (std::size_t j = 0; j < hc.queries.size(); ++j) {
                const int q = c.queryHead(hi, static_cast<int>(j));
                checkFinite(hc.queries[j], where + queryName(li, q, "queries'"));
                if (j < hc.queriesPreRope.size())
                    checkFinite(hc.queriesPreRope[j],
                                where + queryName(li, q, "queries_pre_rope'"));
                if (j < hc.outputs.size())
                    checkFinite(hc.outputs[j], where + queryName(li, q, "outputs'"));
            }
        }
    }
}

Result<bool> saveCapture(const Capture& c, const std::filesystem::path& path, bool halfPrecision,
                         Overwrite overwrite) {
    return catchErrors([&]() -> bool {
        requireWritable(path, "capture", overwrite); // before the work of converting
        const DType dtype = halfPrecision ? DType::F16 : DType::F32;
        SafetensorsWriter w;
        w.setMetadata("format", kFormat);
        w.setMetadata("format_version", kFormatVersion);
        w.setMetadata("config", toHfConfigJson(c.config).dump());
        w.setMetadata("token_texts", nlohmann::json(c.tokenTexts).dump());
        w.setMetadata("prompt", c.prompt);
        w.setMetadata("model_name", c.modelName);
        w.setMetadata("created_by", std::string("kvstudio ") + KVS_VERSION);
        std::vector<std::int32_t> ids(c.tokens.begin(), c.tokens.end());
        w.add("tokens", DType::I32, {static_cast<std::int64_t>(ids.size())},
              std::as_bytes(std::span<const std::int32_t>(ids)));
        if (c.logits.size())
            addMatrix(w, "logits", c.logits, dtype);
        for (std::size_t l = 0; l < c.layers.size(); ++l) {
            const auto& lc = c.layers[l];
            const int li = static_cast<int>(l);
            addMatrix(w, layerName(li, "hidden_normed"), lc.hiddenNormed, dtype);
            for (std::size_t h = 0; h < lc.kvHeads.size(); ++h) {
                const auto& hc = lc.kvHeads[h];
                const int hi = static_cast<int>(h);
                addMatrix(w, kvName(li, hi, "keys"), hc.keys, dtype);
                addMatrix(w, kvName(li, hi, "values"), hc.values, dtype);
                if (hc.keysPreRope.size())
                    addMatrix(w, kvName(li, hi, "keys_pre_rope"), hc.keysPreRope, dtype);
                for (std::size_t j = 0; j < hc.queries.size(); ++j) {
                    const int q = c.queryHead(hi, static_cast<int>(j));
                    addMatrix(w, queryName(li, q, "queries"), hc.queries[j], dtype);
                    if (j < hc.queriesPreRope.size())
                        addMatrix(w, queryName(li, q, "queries_pre_rope"), hc.queriesPreRope[j],
                                  dtype);
                    addMatrix(w, queryName(li, q, "outputs"), hc.outputs[j], dtype);
                }
            }
        }
        requireDiskSpace(path, w.dataBytes(),
                         halfPrecision ? "capture a shorter prompt, or write it to another disk"
                                       : "--f16 halves it; or capture a shorter prompt, or write "
                                         "it to another disk");
        return w.write(path, "capture", overwrite).valueOrThrow();
    });
}

Result<Capture> loadCapture(const std::filesystem::path& path) {
    return catchErrors([&]() -> Capture {
        auto opened = SafetensorsFile::open(path);
        const SafetensorsFile& file = opened.valueOrThrow();
        const auto& meta = file.metadata();
        const std::string where = path.string();
        auto metaValue = [&](const std::string& key) -> const std::string& {
            auto it = meta.find(key);
            if (it == meta.end())
                throw Error(ErrorCode::Format,
                            where + ": not a KV Studio capture (metadata lacks '" + key + "')");
            return it->second;
        };
        if (metaValue("format") != kFormat)
            throw Error(ErrorCode::Format, where + ": not a KV Studio capture (format is '" +
                                               metaValue("format") + "')");
        if (metaValue("format_version") != kFormatVersion)
            throw Error(ErrorCode::Unsupported, where + ": capture format version " +
                                                    metaValue("format_version") +
                                                    " is not supported (1)");
        Capture c;
        nlohmann::json configJson, texts;
        checkJsonNesting(metaValue("config"), where + " (metadata 'config')");
        checkJsonNesting(metaValue("token_texts"), where + " (metadata 'token_texts')");
        try {
            configJson = nlohmann::json::parse(metaValue("config"));
            texts = nlohmann::json::parse(metaValue("token_texts"));
        } catch (const nlohmann::json::exception& e) { // parse_error, or out_of_range for 1e505
            throw Error(ErrorCode::Format,
                        where + ": malformed JSON in the capture metadata: " + e.what());
        }
        c.config = parseModelConfig(configJson, where + " (metadata 'config')").valueOrThrow();
        c.prompt = meta.count("prompt") ? meta.at("prompt") : "";
        c.modelName = meta.count("model_name") ? meta.at("model_name") : "capture";

        if (!file.contains("tokens"))
            throw Error(ErrorCode::Missing, where + ": capture lacks tensor 'tokens'");
        const auto& tinfo = file.info("tokens");
        if (tinfo.dtype != DType::I32 || tinfo.shape.size() != 1)
            throw Error(ErrorCode::Format,
                        where + ": tensor 'tokens' must be I32 with one dimension");
        const auto n = tinfo.shape[0];
        c.tokens.resize(static_cast<std::size_t>(n));
        std::memcpy(c.tokens.data(), file.bytes("tokens").data(),
                    static_cast<std::size_t>(n) * sizeof(TokenId));
        // Ids index the logits and the embeddings: each lies in the vocabulary of the config.
        for (std::size_t i = 0; i < c.tokens.size(); ++i)
            if (c.tokens[i] < 0 || c.tokens[i] >= c.config.vocab)
                throw Error(ErrorCode::Format, where + ": token " + std::to_string(i) + " has id " +
                                                   std::to_string(c.tokens[i]) +
                                                   ", outside the vocabulary of " +
                                                   std::to_string(c.config.vocab) + " tokens");
        if (!texts.is_array() || static_cast<std::int64_t>(texts.size()) != n)
            throw Error(ErrorCode::Format,
                        where + ": metadata 'token_texts' must list one string per token");
        for (const auto& t : texts)
            c.tokenTexts.push_back(t.is_string() ? t.get<std::string>() : t.dump());

        const CaptureReader r(file);
        const auto& cfg = c.config;
        const int d = cfg.headDim;
        const bool rope = cfg.positions == PositionKind::Rope;
        if (file.contains("logits"))
            c.logits = r.matrix("logits", n, cfg.vocab);
        c.layers.resize(static_cast<std::size_t>(cfg.layers));
        for (int l = 0; l < cfg.layers; ++l) {
            auto& lc = c.layers[static_cast<std::size_t>(l)];
            lc.hiddenNormed = r.matrix(layerName(l, "hidden_normed"), n, cfg.width);
            lc.kvHeads.resize(static_cast<std::size_t>(cfg.kvHeads));
            for (int h = 0; h < cfg.kvHeads; ++h) {
                auto& hc = lc.kvHeads[static_cast<std::size_t>(h)];
                hc.keys = r.matrix(kvName(l, h, "keys"), n, d);
                hc.values = r.matrix(kvName(l, h, "values"), n, d);
                if (rope)
                    hc.keysPreRope = r.matrix(kvName(l, h, "keys_pre_rope"), n, d);
                for (int j = 0; j < cfg.groupSize(); ++j) {
                    const int q = c.queryHead(h, j);
                    hc.queries.push_back(r.matrix(queryName(l, q, "queries"), n, d));
                    if (rope)
                        hc.queriesPreRope.push_back(
                            r.matrix(queryName(l, q, "queries_pre_rope"), n, d));
                    hc.outputs.push_back(r.matrix(queryName(l, q, "outputs"), n, d));
                }
            }
        }
        return c;
    });
}

} // namespace kvs
