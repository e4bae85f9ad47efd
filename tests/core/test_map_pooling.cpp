// SPDX-License-Identifier: MIT
// Attention maps pooled to screen resolution: exact when the window fits, hand-computed blocks
// otherwise, the block edges covering the window once, bad windows refused.
#include "kvs/map_pooling.h"
#include "kvs/status.h"
#include "kvs_test.h"

#include <QTest>
#include <random>

using namespace kvs;

class TestMapPooling : public QObject {
    Q_OBJECT

private slots:
    void exactWhenTheWindowFits() {
        Matrix m(4, 9);
        std::mt19937 rng(3);
        std::uniform_real_distribution<float> u(-1, 1);
        for (Eigen::Index i = 0; i < m.size(); ++i)
            m.data()[i] = u(rng);
        // Zoomed in to 5 keys on a 600-pixel axis: the cells themselves, not an interpolation.
        const Matrix z = poolMap(m, {1, 3, 2, 7}, 300, 600, MapPooling::Max);
        QCOMPARE(z.rows(), 2);
        QCOMPARE(z.cols(), 5);
        QVERIFY(z == m.block(1, 2, 2, 5));
        QVERIFY(poolMap(m, {0, 4, 0, 9}, 4, 9, MapPooling::Mean) == m);
    }

    void handComputedBlocks() {
        // One row of 7 keys into 3 pixels: blocks [0,2) [2,4) [4,7).
        Matrix m(1, 7);
        m << 0.1f, 0.5f, 0.0f, 0.2f, 0.05f, -0.7f, 0.15f;
        const Matrix mx = poolMap(m, {0, 1, 0, 7}, 1, 3, MapPooling::Max);
        QCOMPARE(mx.cols(), 3);
        QCOMPARE(mx(0, 0), 0.5f);
        QCOMPARE(mx(0, 1), 0.2f);
        QCOMPARE(mx(0, 2), -0.7f); // largest magnitude, sign kept (a difference map's worst cell)
        const Matrix mean = poolMap(m, {0, 1, 0, 7}, 1, 3, MapPooling::Mean);
        QVERIFY(std::abs(mean(0, 0) - 0.3f) < 1e-7f);
        QVERIFY(std::abs(mean(0, 1) - 0.1f) < 1e-7f);
        QVERIFY(std::abs(mean(0, 2) - (0.05f - 0.7f + 0.15f) / 3) < 1e-7f);
        // Rows pool too: 2 × 2 blocks of a 4 × 4 map.
        Matrix s(4, 4);
        s << 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16;
        const Matrix q = poolMap(s, {0, 4, 0, 4}, 2, 2, MapPooling::Mean);
        QCOMPARE(q(0, 0), 3.5f);
        QCOMPARE(q(1, 1), 13.5f);
        QCOMPARE(poolMap(s, {0, 4, 0, 4}, 2, 2, MapPooling::Max)(1, 0), 14.0f);
    }

    void blocksCoverTheWindowOnce() {
        // A window of 2,000 keys on 333 pixels: every key in exactly one block, widths 6 or 7,
        // so a row's mean pooling keeps its total weight.
        for (const auto& [width, cells] :
             {std::pair{2000, 333}, std::pair{4096, 512}, std::pair{5, 5}}) {
            QCOMPARE(blockStart(0, width, cells), 0);
            QCOMPARE(blockStart(cells, width, cells), width);
            for (int c = 0; c < cells; ++c) {
                const int w = blockStart(c + 1, width, cells) - blockStart(c, width, cells);
                QVERIFY(w == width / cells || w == width / cells + 1);
            }
        }
        Matrix row = Matrix::Constant(1, 2000, 1.0f / 2000);
        const Matrix p = poolMap(row, {0, 1, 0, 2000}, 1, 333, MapPooling::Mean);
        double total = 0;
        for (int c = 0; c < p.cols(); ++c)
            total += p(0, c) * (blockStart(c + 1, 2000, 333) - blockStart(c, 2000, 333));
        QVERIFY(std::abs(total - 1.0) < 1e-5);
    }

    void windowsClampAndRefuse() {
        Matrix m = Matrix::Ones(3, 10);
        const Matrix p = poolMap(m, {-5, 99, 8, 40}, 10, 10, MapPooling::Max);
        QCOMPARE(p.rows(), 3);
        QCOMPARE(p.cols(), 2);
        QVERIFY_THROWS_EXCEPTION(Error, poolMap(m, {0, 3, 10, 12}, 10, 10, MapPooling::Max));
        QVERIFY_THROWS_EXCEPTION(Error, poolMap(m, {0, 3, 0, 10}, 0, 10, MapPooling::Max));
    }
};

QTEST_GUILESS_MAIN(TestMapPooling)
#include "test_map_pooling.moc"
