// SPDX-License-Identifier: MIT
// Student-t intervals against printed tables and closed forms.
#include "kvs/statistics.h"
#include "kvs/status.h"
#include "kvs_test.h"

#include <QTest>
#include <cmath>
#include <numbers>
#include <vector>

using namespace kvs;

class TestStatistics : public QObject {
    Q_OBJECT

private slots:
    void quantilesMatchTables_data() {
        QTest::addColumn<double>("p");
        QTest::addColumn<double>("nu");
        QTest::addColumn<double>("expected");
        // Standard two-sided 95% and 99% critical values (any statistics table).
        QTest::newRow("0.975, 1") << 0.975 << 1.0 << 12.7062047;
        QTest::newRow("0.975, 2") << 0.975 << 2.0 << 4.3026527;
        QTest::newRow("0.975, 4") << 0.975 << 4.0 << 2.7764451;
        QTest::newRow("0.975, 9") << 0.975 << 9.0 << 2.2621572;
        QTest::newRow("0.975, 12") << 0.975 << 12.0 << 2.1788128;
        QTest::newRow("0.975, 29") << 0.975 << 29.0 << 2.0452296;
        QTest::newRow("0.995, 9") << 0.995 << 9.0 << 3.2498355;
        QTest::newRow("0.95, 5") << 0.95 << 5.0 << 2.0150484;
        QTest::newRow("0.975, 1e6 (normal)") << 0.975 << 1e6 << 1.9599664;
        QTest::newRow("0.025, 9 (lower tail)") << 0.025 << 9.0 << -2.2621572;
    }
    void quantilesMatchTables() {
        QFETCH(double, p);
        QFETCH(double, nu);
        QFETCH(double, expected);
        const double t = studentTQuantile(p, nu);
        QVERIFY2(std::abs(t - expected) < 2e-6, qPrintable(QString::number(t, 'g', 10)));
        QVERIFY(std::abs(studentTCdf(t, nu) - p) < 1e-10);
    }

    void cdfClosedForms() {
        // One degree of freedom is the Cauchy distribution: F(t) = 1/2 + atan(t)/π.
        for (double t : {-30.0, -1.0, 0.0, 0.3, 2.0, 100.0})
            QVERIFY(std::abs(studentTCdf(t, 1) - (0.5 + std::atan(t) / std::numbers::pi)) < 1e-12);
        // Two degrees of freedom: F(t) = 1/2 + t / (2 √(2 + t²)).
        for (double t : {-4.0, -0.5, 0.7, 3.0})
            QVERIFY(std::abs(studentTCdf(t, 2) - (0.5 + t / (2 * std::sqrt(2 + t * t)))) < 1e-12);
    }

    void intervalByHand() {
        // 1, 2, 3, 4, 5: mean 3, sd √2.5, half-width t_{0.975,4} · √2.5 / √5 = 2.7764451 · √0.5.
        const std::vector<double> v = {1, 2, 3, 4, 5};
        const MeanInterval r = meanInterval(v);
        QCOMPARE(r.n, 5);
        QCOMPARE(r.mean, 3.0);
        QVERIFY(std::abs(r.sd - std::sqrt(2.5)) < 1e-12);
        QVERIFY(std::abs(r.halfWidth - 2.7764451 * std::sqrt(0.5)) < 1e-6);
        QVERIFY(std::abs(r.lower() - (3 - r.halfWidth)) < 1e-15);
        // Equal values: no spread. One value: no interval (infinite), never a fake zero.
        QCOMPARE(meanInterval(std::vector<double>{0.2, 0.2, 0.2}).halfWidth, 0.0);
        QVERIFY(std::isinf(meanInterval(std::vector<double>{0.2}).halfWidth));
    }

    void refusals() {
        QVERIFY_THROWS_EXCEPTION(Error, meanInterval(std::vector<double>{}));
        QVERIFY_THROWS_EXCEPTION(Error, meanInterval(std::vector<double>{1.0, std::nan("")}));
        QVERIFY_THROWS_EXCEPTION(Error, meanInterval(std::vector<double>{1.0, 2.0}, 1.0));
        QVERIFY_THROWS_EXCEPTION(Error, studentTQuantile(0.0, 3));
        QVERIFY_THROWS_EXCEPTION(Error, studentTCdf(1.0, 0));
    }
};

QTEST_GUILESS_MAIN(TestStatistics)
#include "test_statistics.moc"
