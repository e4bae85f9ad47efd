// SPDX-License-Identifier: MIT
// The configuration sheet renders every field of a given ModelConfig, GQA grouping explicit.
#include "model_config_view.h"

#include <QLabel>
#include <QTest>

using kvs::ModelConfig;
using kvs::views::ModelConfigView;
using kvs::views::ModelFacts;

namespace {

ModelFacts gqaLlama() {
    ModelFacts f;
    f.name = QStringLiteral("tiny-gqa");
    f.folder = QStringLiteral("/models/tiny-gqa");
    ModelConfig& c = f.config;
    c.architecture = "LlamaForCausalLM";
    c.modelType = "llama";
    c.family = kvs::Family::Llama;
    c.layers = 6;
    c.heads = 8;
    c.kvHeads = 2;
    c.width = 128;
    c.headDim = 12;
    c.intermediate = 256;
    c.vocab = 32000;
    c.maxPositions = 512;
    c.positions = kvs::PositionKind::Rope;
    c.ropeTheta = 500000.0;
    c.ropeScaling.kind = kvs::RopeScaling::Kind::Llama3;
    c.ropeScaling.factor = 8.0;
    c.ropeScaling.originalMaxPositions = 64;
    c.norm = kvs::NormKind::RmsNorm;
    c.mlp = kvs::MlpKind::SwiGlu;
    c.tiedEmbeddings = true;
    c.qkvBias = true;
    f.parameters = 1234567;
    f.kvBytesPerTokenFp16 = 2LL * 2 * 12 * 2 * 6;
    f.contextLimit = 512;
    f.checkpoint = QStringLiteral("model.safetensors.index.json (3 shards)");
    f.checkpointFiles = {QStringLiteral("model-00001-of-00003.safetensors")};
    f.dtype = QStringLiteral("BF16");
    f.checkpointBytes = 3 * 1024 * 1024;
    f.tokenizer = QStringLiteral("gpt2-bpe");
    f.tokenizerVocab = 32000;
    return f;
}

QString labelText(const QWidget& view, const QString& key) {
    const auto* label = view.findChild<QLabel*>(key + QStringLiteral("Value"));
    return label ? label->text() : QStringLiteral("<no label %1>").arg(key);
}

} // namespace

class TestModelConfigView : public QObject {
    Q_OBJECT

private slots:
    void rendersEveryField() {
        ModelConfigView view;
        view.setFacts(gqaLlama());
        QVERIFY(view.hasModel());
        QCOMPARE(labelText(view, "layers"), QStringLiteral("6"));
        QCOMPARE(labelText(view, "heads"), QStringLiteral("8"));
        QCOMPARE(labelText(view, "kvHeads"), QStringLiteral("2"));
        QCOMPARE(labelText(view, "headDim"), QStringLiteral("12"));
        QCOMPARE(labelText(view, "width"), QStringLiteral("128"));
        QCOMPARE(view.value("layers"), QStringLiteral("6"));

        const QString group = labelText(view, "group");
        QVERIFY2(group.contains("GQA") && group.contains('4'), qPrintable(group));
        const QString positions = labelText(view, "positions");
        QVERIFY2(positions.contains("RoPE") && positions.contains("500000") &&
                     positions.contains("llama3") && positions.contains("8"),
                 qPrintable(positions));
        QVERIFY(labelText(view, "family").contains("Llama"));
        QCOMPARE(labelText(view, "architecture"), QStringLiteral("LlamaForCausalLM"));
        QVERIFY(labelText(view, "norm").contains("RMSNorm"));
        QVERIFY(labelText(view, "mlp").contains("SwiGLU"));
        QVERIFY(labelText(view, "mlp").contains("256"));
        QCOMPARE(labelText(view, "vocab"), QLocale().toString(32000));
        QCOMPARE(labelText(view, "maxPositions"), QStringLiteral("512"));
        QCOMPARE(labelText(view, "tiedHead"), QStringLiteral("yes"));
        QCOMPARE(labelText(view, "biases"), QStringLiteral("q/k/v"));
        QVERIFY(labelText(view, "sharing").contains("separate"));
        QVERIFY(labelText(view, "parameters").contains("1.23 M"));
        QVERIFY(labelText(view, "parameters").contains(QLocale().toString(1234567)));
        QVERIFY(labelText(view, "kvBytes").contains("576 B per token"));
        QVERIFY(labelText(view, "checkpoint").contains("3 shards"));
        QCOMPARE(labelText(view, "dtype"), QStringLiteral("BF16"));
        QCOMPARE(labelText(view, "checkpointBytes"), QStringLiteral("3.0 MiB"));
        QVERIFY(labelText(view, "tokenizer").contains("gpt2-bpe"));
        QVERIFY(labelText(view, "window").contains("none"));
        // heads x head dim (96) differs from the width (128): the tooltip says so.
        QVERIFY(view.findChild<QLabel*>("headDimValue")->toolTip().contains("96"));
    }

    void groupingNamesMhaAndMqa() {
        ModelConfigView view;
        ModelFacts f = gqaLlama();
        f.config.kvHeads = 8;
        view.setFacts(f);
        QVERIFY(view.value("group").startsWith("MHA"));
        f.config.kvHeads = 1;
        view.setFacts(f);
        QVERIFY(view.value("group").startsWith("MQA"));
        QVERIFY(view.value("group").contains("8"));
    }

    void learnedPositionsAndGpt2() {
        ModelConfigView view;
        ModelFacts f = gqaLlama();
        f.config.family = kvs::Family::Gpt2;
        f.config.positions = kvs::PositionKind::Learned;
        f.config.norm = kvs::NormKind::LayerNorm;
        f.config.mlp = kvs::MlpKind::GeluTanh;
        f.config.sharing = kvs::ProjectionSharing::KEqV;
        f.config.qkvBias = f.config.outputBias = f.config.mlpBias = false;
        f.config.slidingWindow = 128;
        f.config.slidingLayers.assign(6, true);
        f.tokenizer.clear();
        view.setFacts(f);
        QVERIFY(view.value("positions").contains("learned"));
        QVERIFY(view.value("family").contains("GPT-2"));
        QVERIFY(view.value("norm").contains("LayerNorm"));
        QVERIFY(view.value("mlp").contains("tanh"));
        QVERIFY(view.value("sharing").contains("K = V"));
        QCOMPARE(view.value("biases"), QStringLiteral("none"));
        QVERIFY(view.value("window").contains("128"));
        QVERIFY(view.value("window").contains("6 of 6"));
        QVERIFY(view.value("tokenizer").contains("none"));
    }

    void thinKeysShowTheirRank() {
        ModelConfigView view;
        ModelFacts f = gqaLlama();
        f.config.keyRank = 8;
        view.setFacts(f);
        QVERIFY2(view.value("sharing").contains("keys of rank 8"),
                 qPrintable(view.value("sharing")));
        f.config.keyRank = 0;
        view.setFacts(f);
        QVERIFY(!view.value("sharing").contains("rank"));
    }

    void clearResetsEveryValue() {
        ModelConfigView view;
        view.setFacts(gqaLlama());
        view.clear();
        QVERIFY(!view.hasModel());
        for (const QString& key : view.keys())
            QCOMPARE(view.value(key), QStringLiteral("\u2014"));
        QVERIFY(view.keys().contains("kvHeads"));
    }

    void humanFormatting() {
        QCOMPARE(kvs::views::formatBytes(512), QStringLiteral("512 B"));
        QCOMPARE(kvs::views::formatBytes(4096), QStringLiteral("4.0 KiB"));
        QCOMPARE(kvs::views::formatBytes(3LL << 30), QStringLiteral("3.0 GiB"));
        QCOMPARE(kvs::views::formatCount(999), QStringLiteral("999"));
        QCOMPARE(kvs::views::formatCount(124000000), QStringLiteral("124.00 M"));
        QCOMPARE(kvs::views::formatCount(7000000000LL), QStringLiteral("7.00 B"));
    }
};

QTEST_MAIN(TestModelConfigView)
#include "test_model_config_view.moc"
