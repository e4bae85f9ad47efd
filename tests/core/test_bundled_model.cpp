// SPDX-License-Identifier: MIT
// The shipped models under assets/models/: they load through the ordinary loader, their tokenizer
// round-trips the corpus alphabet, the sharing field is read, and they really are trained (a
// Genesis passage costs far less than a uniform guess and less than the bzip2 rate).
#include "kvs/model.h"
#include "kvs_test.h"

#include <QTest>
#include <cmath>

using namespace kvs;

namespace {

const char* kPassage = "And God said, Let there be light: and there was light.\n"
                       "And God saw the light, that it was good: and God divided the light from "
                       "the darkness.\n";

// Mean next-character loss (nats) of the passage after its first character.
double passageNats(const Model& m) {
    const auto ids = m.tokenizer()->encode(kPassage);
    const Matrix logits = m.forward(ids);
    double total = 0;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
        const auto row = logits.row(static_cast<Eigen::Index>(i));
        const double mx = row.maxCoeff();
        const double lse = mx + std::log((row.array() - static_cast<float>(mx)).exp().sum());
        total += lse - row(ids[i + 1]);
    }
    return total / static_cast<double>(ids.size() - 1);
}

} // namespace

class TestBundledModel : public QObject {
    Q_OBJECT

private slots:
    void models_data() {
        QTest::addColumn<QString>("folder");
        QTest::addColumn<QString>("sharing");
        const auto assets = kvs::test::sourceTestsDir().parent_path() / "assets" / "models";
        QTest::newRow("default") << QString::fromStdString((assets / "default").string()) << "qkv";
        for (const char* v : {"k_eq_v", "mqa"})
            if (std::filesystem::exists(assets / v / "config.json"))
                QTest::newRow(v) << QString::fromStdString((assets / v).string())
                                 << (std::string(v) == "mqa" ? "qkv" : v);
    }
    void models() {
        QFETCH(QString, folder);
        QFETCH(QString, sharing);
        if (!std::filesystem::exists(folder.toStdString() + "/config.json"))
            QSKIP("no trained model in assets/models/default yet");
        auto model = Model::load(folder.toStdString());
        QVERIFY2(model.ok(), model.message().c_str());
        const auto& c = model->config();
        QCOMPARE(c.vocab, 63);
        QCOMPARE(QString::fromStdString(toString(c.sharing)), sharing);
        QVERIFY(model->tokenizer() != nullptr);
        const auto ids = model->tokenizer()->encode(kPassage);
        QCOMPARE(ids.size(), std::strlen(kPassage));
        QCOMPARE(model->tokenizer()->decode(ids), std::string(kPassage));
        const double nats = passageNats(*model);
        // Uniform: ln 63 = 4.14; bzip2 on the whole text: 1.16.
        QVERIFY2(nats < 1.16, std::to_string(nats).c_str());
    }
};

QTEST_GUILESS_MAIN(TestBundledModel)
#include "test_bundled_model.moc"
