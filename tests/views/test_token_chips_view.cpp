// SPDX-License-Identifier: MIT
// The token chips view: one chip per token, visible whitespace, wrapping, tooltips, clicks.
#include "token_chips_view.h"

#include <QApplication>
#include <QSignalSpy>
#include <QTest>

using kvs::views::TokenChip;
using kvs::views::TokenChipsView;
using kvs::views::visibleWhitespace;

class TestTokenChipsView : public QObject {
    Q_OBJECT

private slots:
    void whitespaceIsMadeVisible() {
        QCOMPARE(visibleWhitespace(QStringLiteral("a b")), QStringLiteral("a\u00B7b"));
        QCOMPARE(visibleWhitespace(QStringLiteral("\n")), QStringLiteral("\u21B5"));
        QCOMPARE(visibleWhitespace(QStringLiteral("\t")), QStringLiteral("\u2192"));
        QCOMPARE(visibleWhitespace(QStringLiteral("\r\n")), QStringLiteral("\u240D\u21B5"));
        QCOMPARE(visibleWhitespace(QString()), QStringLiteral("\u2205"));
        QCOMPARE(visibleWhitespace(QStringLiteral("<0xE2>")), QStringLiteral("<0xE2>"));
        QCOMPARE(visibleWhitespace(QStringLiteral("caf\u00E9")), QStringLiteral("caf\u00E9"));
    }

    void threeTokensShowThreeChips() {
        TokenChipsView view;
        view.resize(400, 200);
        view.setTokens({{15496, QStringLiteral("Hello")},
                        {995, QStringLiteral(" world")},
                        {198, QStringLiteral("\n")}});
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));

        QCOMPARE(view.chipCount(), 3);
        QCOMPARE(view.chipText(0), QStringLiteral("Hello"));
        QCOMPARE(view.chipText(1), QStringLiteral("\u00B7world"));
        QCOMPARE(view.chipText(2), QStringLiteral("\u21B5"));
        QCOMPARE(view.tokenText(1), QStringLiteral(" world"));
        QCOMPARE(view.tokenId(2), 198);
        QCOMPARE(view.countText(), QStringLiteral("3 tokens"));

        const QString tip = view.chipToolTip(1);
        QVERIFY2(tip.contains(QStringLiteral("995")), qPrintable(tip));
        QVERIFY2(tip.contains(QStringLiteral("Token 1 of 3")), qPrintable(tip));

        // Chips are laid out left to right, none overlapping, and hit-testing finds them.
        for (int i = 0; i < 3; ++i) {
            const QRect r = view.chipRect(i);
            QVERIFY(r.isValid());
            QCOMPARE(view.chipAt(r.center()), i);
            if (i > 0)
                QVERIFY(!r.intersects(view.chipRect(i - 1)));
        }
        QCOMPARE(view.chipAt(QPoint(-5, -5)), -1);
        QCOMPARE(view.tokenId(7), -1);
        QVERIFY(view.chipText(-1).isEmpty());
    }

    void neighbouringChipsAlternateColours() {
        TokenChipsView view;
        view.resize(400, 200);
        view.setTokens({{1, QStringLiteral("aaaa")}, {2, QStringLiteral("bbbb")}});
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        const QImage image = view.grab().toImage();
        const qreal dpr = image.devicePixelRatio();
        auto fillOf = [&](int i) {
            const QRect r = view.chipRect(i);
            // A point inside the chip, left of its text, inside the padding.
            return image.pixelColor(QPointF((r.left() + 3) * dpr, r.center().y() * dpr).toPoint());
        };
        QVERIFY2(fillOf(0) != fillOf(1), "neighbouring chips should have different fills");
        QVERIFY(fillOf(0) != view.palette().color(QPalette::Base));
    }

    void chipsWrapToTheWidth() {
        TokenChipsView view;
        view.resize(160, 400);
        std::vector<TokenChip> tokens;
        for (int i = 0; i < 30; ++i)
            tokens.push_back({i, QStringLiteral(" tok%1").arg(i)});
        view.setTokens(tokens);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QCOMPARE(view.chipCount(), 30);
        const QRect first = view.chipRect(0);
        QVERIFY(first.isValid());
        int rows = 1;
        for (int i = 1; i < 30; ++i) {
            const QRect r = view.chipRect(i);
            if (!r.isValid())
                break; // scrolled out of view
            QVERIFY(r.right() < view.width());
            if (r.top() > view.chipRect(i - 1).top())
                ++rows;
        }
        QVERIFY2(rows >= 3, qPrintable(QStringLiteral("only %1 rows").arg(rows)));
    }

    void veryLongTokensAreElidedNotClipped() {
        TokenChipsView view;
        view.resize(120, 200);
        view.setTokens({{1, QString(200, QLatin1Char('x'))}});
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QVERIFY(view.chipRect(0).right() < view.width());
    }

    void clickSelectsAChip() {
        TokenChipsView view;
        view.resize(400, 200);
        view.setTokens({{1, QStringLiteral("a")}, {2, QStringLiteral("b")}});
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QSignalSpy clicked(&view, &TokenChipsView::chipClicked);
        QWidget* viewport = view.childAt(view.chipRect(1).center());
        QVERIFY(viewport);
        QTest::mouseClick(viewport, Qt::LeftButton, {},
                          viewport->mapFrom(&view, view.chipRect(1).center()));
        QCOMPARE(clicked.count(), 1);
        QCOMPARE(clicked.at(0).at(0).toInt(), 1);
        QCOMPARE(view.selectedChip(), 1);
    }

    void splitMarkerSitsBetweenContextAndProbes() {
        TokenChipsView view;
        view.resize(600, 200);
        std::vector<TokenChip> tokens;
        for (int i = 0; i < 6; ++i)
            tokens.push_back({i, QStringLiteral("tok%1").arg(i)});
        view.setTokens(tokens);
        QCOMPARE(view.split(), 0);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QVERIFY(!view.splitMarkerRect().isValid()); // no split: no marker

        view.setSplit(4);
        QCOMPARE(view.split(), 4);
        const QRect marker = view.splitMarkerRect();
        QVERIFY(marker.isValid());
        // Centred in the gap between the last context chip and the first probe.
        QVERIFY(marker.center().x() > view.chipRect(3).right() - 4);
        QVERIFY(marker.center().x() < view.chipRect(4).left() + 4);

        // Probe chips are tinted apart from context chips (compare chips of the same parity).
        const QImage image = view.grab().toImage();
        const qreal dpr = image.devicePixelRatio();
        auto fillOf = [&](int i) {
            const QRect r = view.chipRect(i);
            return image.pixelColor(QPointF((r.left() + 3) * dpr, r.center().y() * dpr).toPoint());
        };
        QCOMPARE(fillOf(0), fillOf(2));
        QVERIFY2(fillOf(2) != fillOf(4), "probe chips should be tinted apart from the context");

        // Clamped so that both sides keep a token.
        view.setSplit(100);
        QCOMPARE(view.split(), 5);
        view.setSplit(-3);
        QCOMPARE(view.split(), 0);
        view.setSplit(1);
        QCOMPARE(view.split(), 1);
    }

    void draggingTheMarkerMovesTheSplit() {
        TokenChipsView view;
        view.resize(600, 200);
        std::vector<TokenChip> tokens;
        for (int i = 0; i < 8; ++i)
            tokens.push_back({i, QStringLiteral("word%1").arg(i)});
        view.setTokens(tokens);
        view.setSplit(6);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QSignalSpy changed(&view, &TokenChipsView::splitChanged);
        const QPoint grab = view.splitMarkerRect().center();
        QWidget* viewport = view.childAt(grab);
        QVERIFY(viewport);
        const auto local = [&](const QPoint& p) { return viewport->mapFrom(&view, p); };
        QTest::mousePress(viewport, Qt::LeftButton, {}, local(grab));
        // Into the left half of chip 2: the split goes before it (2 context tokens).
        const QRect target = view.chipRect(2);
        QTest::mouseMove(viewport, local(QPoint(target.left() + 2, target.center().y())));
        QCOMPARE(changed.count(), 0); // only on release
        QTest::mouseRelease(viewport, Qt::LeftButton, {},
                            local(QPoint(target.left() + 2, target.center().y())));
        QCOMPARE(changed.count(), 1);
        QCOMPARE(changed.at(0).at(0).toInt(), 2);
        QCOMPARE(view.split(), 2);

        // Right half of chip 4: after it.
        const QPoint grab2 = view.splitMarkerRect().center();
        const QRect chip4 = view.chipRect(4);
        QTest::mousePress(viewport, Qt::LeftButton, {}, local(grab2));
        QTest::mouseMove(viewport, local(QPoint(chip4.right() - 2, chip4.center().y())));
        QTest::mouseRelease(viewport, Qt::LeftButton, {},
                            local(QPoint(chip4.right() - 2, chip4.center().y())));
        QCOMPARE(view.split(), 5);
        QCOMPARE(changed.count(), 2);

        // Past the last chip: clamped to leave one probe.
        const QRect last = view.chipRect(7);
        QTest::mousePress(viewport, Qt::LeftButton, {}, local(view.splitMarkerRect().center()));
        QTest::mouseMove(viewport, local(QPoint(last.right() + 30, last.center().y())));
        QTest::mouseRelease(viewport, Qt::LeftButton, {},
                            local(QPoint(last.right() + 30, last.center().y())));
        QCOMPARE(view.split(), 7);

        // A click on a chip away from the marker selects it and leaves the split alone.
        QTest::mouseClick(viewport, Qt::LeftButton, {}, local(view.chipRect(1).center()));
        QCOMPARE(view.split(), 7);
        QCOMPARE(view.selectedChip(), 1);

        // moveSplit is the context menu's path: it emits only on a change.
        view.moveSplit(3);
        QCOMPARE(view.split(), 3);
        QCOMPARE(changed.count(), 4);
        view.moveSplit(3);
        QCOMPARE(changed.count(), 4);
    }

    void clearShowsThePlaceholder() {
        TokenChipsView view;
        view.setTokens({{1, QStringLiteral("a")}});
        view.clear(QStringLiteral("No model loaded"));
        QCOMPARE(view.chipCount(), 0);
        QCOMPARE(view.countText(), QStringLiteral("0 tokens"));
        view.setTokens({{1, QStringLiteral("a")}});
        QCOMPARE(view.countText(), QStringLiteral("1 token"));
    }
};

QTEST_MAIN(TestTokenChipsView)
#include "test_token_chips_view.moc"
