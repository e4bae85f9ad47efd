// SPDX-License-Identifier: MIT
// NaN and infinity in weights, a capture file, a forward pass and an evaluation result are errors
// naming where they first appear (file + tensor + element, or layer + head + quantity).
#include "kvs/attention_backend.h"
#include "kvs/capture.h"
#include "kvs/evaluator.h"
#include "kvs/finite.h"
#include "kvs/model.h"
#include "kvs/safetensors.h"
#include "kvs/scheme.h"
#include "kvs_test.h"

#include <QtTest>
#include <bit>
#include <limits>

using namespace kvs;
using kvs::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Rewrites a safetensors file with one element of one tensor set to `value` (row-major index).
void poke(const fs::path& file, const std::string& tensor, std::size_t index, float value) {
    SafetensorsWriter w;
    {
        auto opened = SafetensorsFile::open(file);
        const SafetensorsFile& f = opened.valueOrThrow();
        for (const auto& [k, v] : f.metadata())
            w.setMetadata(k, v);
        for (const auto& name : f.names()) {
            const auto& info = f.info(name);
            if (name != tensor) {
                w.add(name, info.dtype, info.shape, f.bytes(name));
                continue;
            }
            QVERIFY(info.dtype == DType::F32);
            std::vector<float> data(static_cast<std::size_t>(info.numel()));
            convertToFloat(info.dtype, f.bytes(name).data(), data.size(), data.data());
            data.at(index) = value;
            w.addFloat(name, DType::F32, info.shape, data);
        }
    }
    KVS_VERIFY_OK(w.write(file));
}

// The first error of loading the model and running a prompt through it.
Result<Capture> loadAndRun(const fs::path& folder) {
    auto m = Model::load(folder);
    if (!m.ok())
        return m.error();
    return m->capture("In the beginning");
}

} // namespace

class TestFinite : public QObject {
    Q_OBJECT

    TempDir m_dir;

private slots:
    void matrixCheckNamesTheElement() {
        Matrix m = Matrix::Zero(3, 4);
        checkFinite(m, "m"); // finite: no throw
        m(2, 1) = kInf;
        m(2, 3) = kNaN;
        const auto r = catchErrors([&]() -> bool {
            checkFinite(m, "x.safetensors: tensor 'w'");
            return true;
        });
        KVS_COMPARE_ENUM(r.error().code(), ErrorCode::NotFinite);
        QCOMPARE(r.message(), std::string("x.safetensors: tensor 'w' holds inf at [2, 1]"));
    }

    // The vectorized scan against std::isfinite element by element: every position of a block
    // and of the tail, the largest finite values, subnormals, -0 and NaN payloads.
    void fastScanAgreesWithIsfinite_data() {
        QTest::addColumn<int>("count");
        QTest::addColumn<int>("position");
        QTest::addColumn<float>("value");
        const float nanPayload = std::bit_cast<float>(0x7fc12345u);
        const float negNan = std::bit_cast<float>(0xffc00001u);
        for (int count : {1, 7, 4096, 4097, 10000}) {
            for (int position : {0, count / 2, count - 1}) {
                const QString at = QString("%1 of %2").arg(position).arg(count);
                QTest::newRow(qPrintable("NaN at " + at)) << count << position << kNaN;
                QTest::newRow(qPrintable("inf at " + at)) << count << position << kInf;
                QTest::newRow(qPrintable("-inf at " + at)) << count << position << -kInf;
                QTest::newRow(qPrintable("payload NaN at " + at))
                    << count << position << nanPayload;
                QTest::newRow(qPrintable("-NaN at " + at)) << count << position << negNan;
                QTest::newRow(qPrintable("max at " + at))
                    << count << position << std::numeric_limits<float>::max();
                QTest::newRow(qPrintable("-max at " + at))
                    << count << position << -std::numeric_limits<float>::max();
                QTest::newRow(qPrintable("subnormal at " + at))
                    << count << position << std::numeric_limits<float>::denorm_min();
                QTest::newRow(qPrintable("-0 at " + at)) << count << position << -0.0f;
            }
        }
    }
    void fastScanAgreesWithIsfinite() {
        QFETCH(int, count);
        QFETCH(int, position);
        QFETCH(float, value);
        std::vector<float> data(static_cast<std::size_t>(count), 1.5f);
        data[static_cast<std::size_t>(position)] = value;
        QCOMPARE(allFinite(data.data(), data.size()), std::isfinite(value));
        Matrix m = Eigen::Map<const Matrix>(data.data(), 1, count);
        const auto r = catchErrors([&]() -> bool {
            checkFinite(m, "m");
            return true;
        });
        QCOMPARE(r.ok(), std::isfinite(value));
        if (!r.ok())
            QCOMPARE(r.message(), "m holds " + describeNonFinite(value) + " at [0, " +
                                      std::to_string(position) + "]");
    }

    void nanWeightFailsTheLoadNamingTheTensor_data() {
        QTest::addColumn<QString>("tensor");
        QTest::addColumn<int>("index");
        QTest::addColumn<float>("value");
        QTest::addColumn<QString>("expected");
        // tiny-llama: k_proj is [kvHeads·d, width] = [.., 64]; index 2·64 + 3 is [2, 3].
        QTest::newRow("NaN in a matrix")
            << "model.layers.1.self_attn.k_proj.weight" << 2 * 64 + 3 << kNaN << "NaN at [2, 3]";
        QTest::newRow("inf in a norm")
            << "model.layers.0.input_layernorm.weight" << 5 << kInf << "inf at [0, 5]";
        QTest::newRow("-inf in the embedding")
            << "model.embed_tokens.weight" << 7 << -kInf << "-inf at [0, 7]";
    }
    void nanWeightFailsTheLoadNamingTheTensor() {
        QFETCH(QString, tensor);
        QFETCH(int, index);
        QFETCH(float, value);
        QFETCH(QString, expected);
        auto spec = syntheticPreset("tiny-llama");
        spec.dtype = DType::F32;
        QCOMPARE(spec.config.width, 64);
        const auto folder = test::writeModel(m_dir, "nan-" + tensor.toStdString(), spec);
        QVERIFY(loadAndRun(folder).ok());
        poke(folder / "model.safetensors", tensor.toStdString(), static_cast<std::size_t>(index),
             value);
        const auto r = loadAndRun(folder);
        QVERIFY2(!r.ok(), "a non-finite weight must not give a capture");
        KVS_COMPARE_ENUM(r.error().code(), ErrorCode::NotFinite);
        // Named strings: the macro keeps only the pointers.
        const std::string file = (folder / "model.safetensors").string();
        const std::string name = "tensor '" + tensor.toStdString() + "'";
        const std::string where = expected.toStdString();
        KVS_VERIFY_ERROR(r, file.c_str(), name.c_str(), where.c_str());
    }

    void nanInCaptureFileNamesTheTensor() {
        const auto folder = test::writeModel(m_dir, "cap", syntheticPreset("tiny-gpt2"));
        const Capture c = Model::load(folder).valueOrThrow().capture("abc abc").valueOrThrow();
        const auto file = m_dir / "c.safetensors";
        KVS_VERIFY_OK(saveCapture(c, file));
        KVS_VERIFY_OK(loadCapture(file));
        // values are [tokens, headDim]: element 4·d + 2 is [4, 2].
        const int d = c.config.headDim;
        poke(file, "layers.1.kv_heads.0.values", static_cast<std::size_t>(4 * d + 2), kNaN);
        const auto r = loadCapture(file);
        KVS_COMPARE_ENUM(r.error().code(), ErrorCode::NotFinite);
        const std::string fileName = file.string();
        KVS_VERIFY_ERROR(r, fileName.c_str(), "tensor 'layers.1.kv_heads.0.values'",
                         "NaN at [4, 2]");
    }

    void nanAfterTheForwardPassNamesTheTensor() {
        const auto folder = test::writeModel(m_dir, "fwd", syntheticPreset("tiny-llama"));
        Capture c = Model::load(folder).valueOrThrow().capture("abc abc").valueOrThrow();
        checkCaptureFinite(c, "fwd");
        c.layers[1].kvHeads[2].queries[0](3, 0) = kInf;
        const auto r = catchErrors([&]() -> bool {
            checkCaptureFinite(c, "the forward pass");
            return true;
        });
        const std::string name =
            "layers.1.query_heads." + std::to_string(c.queryHead(2, 0)) + ".queries'";
        KVS_VERIFY_ERROR(r, "the forward pass: tensor '", name.c_str(), "inf at [3, 0]");
    }

    // An evaluation whose numbers are not finite is an error naming the head, not a score.
    void nonFiniteResultNamesTheHead() {
        const auto folder = test::writeModel(m_dir, "eval", syntheticPreset("tiny-llama"));
        const Model model = Model::load(folder).valueOrThrow();
        Capture c = model.capture("In the beginning God created").valueOrThrow();
        const auto backend = makeCpuBackend();
        EvalOptions o;
        o.modelQuality = false;
        const auto setting = SchemeSetting::parse("identity").value();
        KVS_VERIFY_OK(evaluate(c, nullptr, setting, *backend, o));
        // A NaN probe query of layer 1, KV head 1 (the last row is a probe position).
        auto& hc = c.layers[1].kvHeads[1];
        hc.queries[0](c.tokenCount() - 1, 0) = kNaN;
        const auto r = evaluate(c, nullptr, setting, *backend, o);
        QVERIFY2(!r.ok(), "a NaN query must not score");
        KVS_COMPARE_ENUM(r.error().code(), ErrorCode::NotFinite);
        KVS_VERIFY_ERROR(r, "layer 1, KV head 1: head output error is NaN");
    }

    // NaN logits used to score as KL 0 (max(0, NaN) is 0): now the logits are named.
    void nonFiniteLogitsAreNotAPerfectScore() {
        const auto folder = test::writeModel(m_dir, "kl", syntheticPreset("tiny-llama"));
        const Model model = Model::load(folder).valueOrThrow();
        const Capture c = model.capture("In the beginning God created").valueOrThrow();
        const auto backend = makeCpuBackend();
        EvalOptions o;
        o.modelQuality = true;
        const auto setting = SchemeSetting::parse("identity").value();
        auto reference = computeExactReference(c, &model, *backend, o);
        KVS_VERIFY_OK(reference);
        const auto good = evaluate(c, &model, setting, *backend, o, &reference.value());
        KVS_VERIFY_OK(good);
        QVERIFY(good->quality && good->quality->klMean < 1e-6);
        ExactReference broken = reference.value();
        QVERIFY(broken.probeLogits.rows() > 1);
        broken.probeLogits(1, 2) = kNaN;
        const auto r = evaluate(c, &model, setting, *backend, o, &broken);
        KVS_COMPARE_ENUM(r.error().code(), ErrorCode::NotFinite);
        KVS_VERIFY_ERROR(r, "the exact model's probe logits holds NaN at [1, 2]");
    }
};

QTEST_GUILESS_MAIN(TestFinite)
#include "test_finite.moc"
