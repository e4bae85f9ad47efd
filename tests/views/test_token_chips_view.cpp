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
