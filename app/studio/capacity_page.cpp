// SPDX-License-Identifier: MIT
#include "capacity_page.h"

#include "plot_style.h"
#include "session.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>
#include <qcustomplot.h>

namespace kvs::studio {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int kMaxContext = 16 * 1024 * 1024;

// Bytes in the unit that keeps them readable: a 2.7M-parameter model's cache is KiB, a 7B's GiB.
QString bytesText(double bytes) {
    const double a = std::abs(bytes);
    if (a < 1024.0 * 1024.0)
        return QLocale().toString(bytes / 1024.0, 'f', 1) + QStringLiteral(" KiB");
    if (a < kGiB)
        return QLocale().toString(bytes / (1024.0 * 1024.0), 'f', 1) + QStringLiteral(" MiB");
    return QLocale().toString(bytes / kGiB, 'f', a < 10 * kGiB ? 2 : 1) + QStringLiteral(" GiB");
}

// "Discrepancy halving keep=0.25": the run's name and its parameters as the setting spells them.
QString runLabel(const views::SchemeRun& run) {
    const int colon = run.setting.indexOf(QLatin1Char(':'));
    return colon < 0 ? run.displayName
                     : run.displayName + QLatin1Char(' ') + run.setting.mid(colon + 1);
}

} // namespace

CapacityPage::CapacityPage(Session* session, QWidget* parent)
    : QWidget(parent), m_session(session), m_subscription(session, this) {
    setObjectName(QStringLiteral("capacityPage"));

    m_model = new QComboBox(this);
    m_model->setObjectName(QStringLiteral("capacityModel"));
    m_model->setToolTip(tr("The model whose cache is planned: the loaded one, or a public model "
                           "whose configuration the studio knows"));
    for (const kvs::CapacityPreset& p : kvs::capacityPresets())
        m_model->addItem(QString::fromStdString(p.name), QString::fromStdString(p.id));
    m_model->setCurrentIndex(m_model->findData(QStringLiteral("llama-2-7b")));

    m_context = new QSpinBox(this);
    m_context->setObjectName(QStringLiteral("capacityContext"));
    m_context->setRange(1, kMaxContext);
    m_context->setValue(128 * 1024);
    m_context->setGroupSeparatorShown(true);
    m_context->setSuffix(tr(" tokens"));
    m_context->setToolTip(tr("Tokens each user keeps in the cache (prompt and generated). Beyond "
                             "the model's maximum the figures are labelled hypothetical."));

    m_gpu = new QDoubleSpinBox(this);
    m_gpu->setObjectName(QStringLiteral("capacityGpu"));
    m_gpu->setRange(1, 4096);
    m_gpu->setDecimals(0);
    m_gpu->setValue(80);
    m_gpu->setSuffix(tr(" GiB"));
    m_gpu->setToolTip(tr("Memory of one GPU: 24 (RTX 4090), 40 or 80 (A100), 80 (H100), 141 "
                         "(H200), 192 (MI300X)"));

    m_weightDtype = new QComboBox(this);
    m_weightDtype->setObjectName(QStringLiteral("capacityWeightDtype"));
    m_weightDtype->addItems({"fp16", "bf16", "fp32", "int8", "int4"});
    m_weightDtype->setToolTip(tr("How the weights are stored: 2 bytes per parameter in fp16 or "
                                 "bf16, half a byte in int4 (scales not counted)"));
    m_cacheDtype = new QComboBox(this);
    m_cacheDtype->setObjectName(QStringLiteral("capacityCacheDtype"));
    m_cacheDtype->addItems({"fp16", "bf16", "fp8", "fp32"});
    m_cacheDtype->setToolTip(tr("How the exact cache is stored; the schemes' fractions apply "
                                "to it"));

    m_reserve = new QDoubleSpinBox(this);
    m_reserve->setObjectName(QStringLiteral("capacityReserve"));
    m_reserve->setRange(0, 4096);
    m_reserve->setDecimals(1);
    m_reserve->setValue(8);
    m_reserve->setSuffix(tr(" GiB"));
    m_reserve->setToolTip(tr("Memory kept for activations and the serving framework; 10% of the "
                             "GPU until you change it (vLLM's default gpu_memory_utilization "
                             "of 0.9)"));

    m_ratio = new QDoubleSpinBox(this);
    m_ratio->setObjectName(QStringLiteral("capacityRatio"));
    m_ratio->setRange(0, 1);
    m_ratio->setDecimals(3);
    m_ratio->setSingleStep(0.05);
    m_ratio->setValue(0.25);
    m_ratio->setToolTip(tr("A fraction you type, e.g. a paper's claim: 0.25 of the key bytes is "
                           "\"75% fewer key bytes\""));
    m_ratioKind = new QComboBox(this);
    m_ratioKind->setObjectName(QStringLiteral("capacityRatioKind"));
    m_ratioKind->addItem(tr("of the key bytes"), true);
    m_ratioKind->addItem(tr("of the whole cache"), false);
    m_ratioKind->setToolTip(tr("What the typed fraction keeps: the keys only (values unchanged), "
                               "or keys and values alike"));
    auto* ratioRow = new QHBoxLayout;
    ratioRow->setContentsMargins(0, 0, 0, 0);
    ratioRow->addWidget(m_ratio);
    ratioRow->addWidget(m_ratioKind, 1);

    auto* form = new QFormLayout;
    form->addRow(tr("Model"), m_model);
    form->addRow(tr("Context per user"), m_context);
    form->addRow(tr("GPU memory"), m_gpu);
    form->addRow(tr("Weights"), m_weightDtype);
    form->addRow(tr("Cache"), m_cacheDtype);
    form->addRow(tr("Reserve"), m_reserve);
    form->addRow(tr("Typed ratio"), ratioRow);

    m_summary = new QLabel(this);
    m_summary->setObjectName(QStringLiteral("capacitySummary"));
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto* left = new QWidget(this);
    auto* leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    leftLayout->addLayout(form);
    leftLayout->addWidget(m_summary);
    leftLayout->addStretch(1);
    left->setMaximumWidth(380);

    m_table = new QTableWidget(this);
    m_table->setObjectName(QStringLiteral("capacityTable"));
    m_table->setColumnCount(8);
    m_table->setHorizontalHeaderLabels({tr("Setting"), tr("Cache kept"), tr("KV per token"),
                                        tr("KV per user"), tr("Saved per user"), tr("Users"),
                                        tr("Users vs exact"), tr("Longest context, 1 user")});
    m_table->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_table->verticalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->setWordWrap(true);
    for (int c = 1; c < 8; ++c)
        m_table->horizontalHeader()->setSectionResizeMode(c, QHeaderView::ResizeToContents);
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setToolTip(tr("Users: whole users next to the weights on one GPU. Users vs exact: "
                           "the continuous ratio of users to the exact cache's, where the cache "
                           "is what limits."));

    m_notes = new QLabel(this);
    m_notes->setObjectName(QStringLiteral("capacityNotes"));
    m_notes->setWordWrap(true);
    m_notes->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_chart = new QCustomPlot(this);
    m_chart->setObjectName(QStringLiteral("capacityChart"));
    m_chart->setMinimumHeight(260);

    // Inputs and the table side by side on top, the chart below across the page.
    auto* top = new QWidget(this);
    auto* topLayout = new QHBoxLayout(top);
    topLayout->setContentsMargins(0, 0, 0, 0);
    topLayout->addWidget(left);
    auto* tableColumn = new QVBoxLayout;
    tableColumn->addWidget(m_table);
    tableColumn->addWidget(m_notes);
    tableColumn->addStretch(1);
    topLayout->addLayout(tableColumn, 1);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(12, 12, 12, 12);
    layout->addWidget(top);
    layout->addWidget(m_chart, 1); // the inputs at their own height, the rest for the chart

    const auto changed = [this] { recompute(); };
    connect(m_model, &QComboBox::currentIndexChanged, this, changed);
    connect(m_context, &QSpinBox::valueChanged, this, [this] {
        m_contextEdited = true;
        recompute();
    });
    connect(m_gpu, &QDoubleSpinBox::valueChanged, this, [this](double g) {
        if (!m_reserveEdited) {
            const QSignalBlocker block(m_reserve);
            m_reserve->setValue(0.1 * g);
        }
        recompute();
    });
    connect(m_reserve, &QDoubleSpinBox::valueChanged, this, [this] {
        m_reserveEdited = true;
        recompute();
    });
    connect(m_weightDtype, &QComboBox::currentIndexChanged, this, changed);
    connect(m_cacheDtype, &QComboBox::currentIndexChanged, this, changed);
    connect(m_ratio, &QDoubleSpinBox::valueChanged, this, changed);
    connect(m_ratioKind, &QComboBox::currentIndexChanged, this, changed);
    recompute();
}

bool CapacityPage::selectModel(const QString& presetId) {
    const int i = m_model->findData(presetId);
    if (i < 0)
        return false;
    m_model->setCurrentIndex(i);
    return true;
}

void CapacityPage::setContext(long long tokens) {
    m_context->setValue(static_cast<int>(std::clamp<long long>(tokens, 1, kMaxContext)));
}
void CapacityPage::setGpuGiB(double gib) {
    m_gpu->setValue(gib);
}
void CapacityPage::setReserveGiB(double gib) {
    m_reserve->setValue(gib);
}
void CapacityPage::setTypedRatio(double fraction, bool keysOnly) {
    const QSignalBlocker block(m_ratio);
    m_ratio->setValue(fraction);
    m_ratioKind->setCurrentIndex(keysOnly ? 0 : 1);
    recompute();
}

QString CapacityPage::notesText() const {
    return m_notes->text();
}
int CapacityPage::tableRows() const {
    return m_table->rowCount();
}
QString CapacityPage::tableCell(int row, int column) const {
    const QTableWidgetItem* item = m_table->item(row, column);
    return item ? item->text() : QString();
}

void CapacityPage::onModelLoaded(const std::shared_ptr<const ModelSnapshot>& model) {
    m_loaded = model->facts.config;
    m_loadedName = model->facts.name;
    const QSignalBlocker block(m_model);
    if (m_model->itemData(0).toString().isEmpty())
        m_model->removeItem(0);
    m_model->insertItem(0, tr("%1 (loaded)").arg(m_loadedName), QString());
    m_model->setCurrentIndex(0);
    if (!m_contextEdited && model->facts.contextLimit > 0) {
        const QSignalBlocker blockContext(m_context);
        m_context->setValue(std::min(model->facts.contextLimit, kMaxContext));
    }
    recompute();
}

void CapacityPage::onModelCleared() {
    m_loaded.reset();
    const QSignalBlocker block(m_model);
    if (m_model->count() > 0 && m_model->itemData(0).toString().isEmpty())
        m_model->removeItem(0);
    recompute();
}

void CapacityPage::setAnalysis(const std::shared_ptr<const views::AnalysisData>& analysis, int) {
    m_analysis = analysis;
    recompute();
}

void CapacityPage::clear(const QString&) {
    m_analysis.reset();
    recompute();
}

kvs::CapacityInputs CapacityPage::inputs() const {
    kvs::CapacityInputs in;
    const QString id = m_model->currentData().toString();
    if (id.isEmpty() && m_loaded) {
        in.model = *m_loaded;
        in.modelName = m_loadedName.toStdString();
    } else if (const kvs::CapacityPreset* p = kvs::findCapacityPreset(id.toStdString())) {
        in.model = p->config;
        in.modelName = p->name;
    }
    in.context = m_context->value();
    in.gpuGiB = m_gpu->value();
    in.weightDtype = m_weightDtype->currentText().toStdString();
    in.cacheDtype = m_cacheDtype->currentText().toStdString();
    in.reserveGiB = m_reserve->value();
    const bool keysOnly = m_ratioKind->currentData().toBool();
    const double f = m_ratio->value();
    in.settings.push_back(
        {(keysOnly ? tr("typed: keys × %1") : tr("typed: cache × %1")).arg(f).toStdString(), f,
         keysOnly ? 1.0 : f, "typed"});
    // The current analysis's schemes, each at the memory fraction it measured. Only on the model
    // it measured: a fraction of the bundled model's cache says little about another model's.
    if (m_analysis && id.isEmpty() && m_loaded) {
        for (const views::SchemeRun& run : m_analysis->runs) {
            if (!run.error.isEmpty() || run.eval.memoryFraction <= 0 || run.eval.memoryFraction > 1)
                continue;
            const double mf = run.eval.memoryFraction;
            in.settings.push_back({runLabel(run).toStdString(), mf, mf,
                                   tr("measured at %L1 context tokens")
                                       .arg(m_analysis->contextTokens)
                                       .toStdString()});
        }
    }
    return in;
}

void CapacityPage::recompute() {
    const kvs::CapacityInputs in = inputs();
    if (in.model.layers <= 0) {
        m_report.reset();
        m_table->setRowCount(0);
        m_notes->setText(tr("No model: choose a preset or load a model."));
        m_summary->clear();
        views::setPlotPlaceholder(m_chart, tr("No model"));
        return;
    }
    auto report = kvs::planCapacity(in);
    if (!report) {
        m_report.reset();
        m_table->setRowCount(0);
        m_notes->setText(QString::fromStdString(report.error().what()));
        return;
    }
    m_report = report.value();
    const kvs::CapacityReport& r = *m_report;

    m_summary->setText(
        tr("<b>%1</b>: %2 parameters = %3 of %4 weights. Of %5, the reserve takes %6 and %7 "
           "remain for the cache. Context limit %L8%9.")
            .arg(QString::fromStdString(r.modelName).toHtmlEscaped())
            .arg(QLocale().toString(static_cast<qlonglong>(r.parameters)))
            .arg(bytesText(r.weightBytes), m_weightDtype->currentText(), bytesText(r.gpuBytes),
                 bytesText(r.reserveBytes), bytesText(std::max(0.0, r.freeBytes)))
            .arg(r.contextLimit)
            .arg(r.window > 0 ? tr(", sliding window %L1").arg(r.window) : QString()));

    m_table->setRowCount(static_cast<int>(r.rows.size()));
    for (int i = 0; i < static_cast<int>(r.rows.size()); ++i) {
        const kvs::CapacityRow& row = r.rows[static_cast<std::size_t>(i)];
        const QString longest =
            row.longestContext < 0 ? tr("any (window)")
                                   : QLocale().toString(static_cast<qlonglong>(row.longestContext));
        const QStringList cells = {QString::fromStdString(row.setting.name),
                                   QLocale().toString(row.cacheFraction, 'f', 3),
                                   bytesText(row.bytesPerToken),
                                   bytesText(row.bytesPerUser),
                                   i == 0 ? QStringLiteral("—") : bytesText(row.savedPerUser),
                                   QLocale().toString(static_cast<qlonglong>(row.users)),
                                   QLocale().toString(row.usersVsExact, 'f', 2) +
                                       QStringLiteral("×"),
                                   longest};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            if (c > 0)
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            if (c == 0)
                item->setToolTip(QString::fromStdString(row.setting.origin));
            if (c == 5 && row.users == 0)
                item->setForeground(QColor(0xD5, 0x5E, 0x00));
            m_table->setItem(i, c, item);
        }
    }
    // The table as tall as its rows, so the chart below gets the room.
    m_table->resizeRowsToContents();
    int tableHeight = m_table->horizontalHeader()->height() + 2 * m_table->frameWidth() + 2;
    for (int i = 0; i < m_table->rowCount(); ++i)
        tableHeight += m_table->rowHeight(i);
    m_table->setFixedHeight(tableHeight);
    QStringList notes;
    for (const std::string& n : r.notes)
        notes << QString::fromStdString(n);
    m_notes->setText(notes.join(QStringLiteral("\n")));

    // Users against context: from 128 tokens to well past both the chosen context and the
    // model's maximum, so the hypothetical region and the window show.
    const long long to = std::min<long long>(
        kMaxContext, std::max<long long>({4 * r.context, 2LL * r.contextLimit, 4096}));
    const long long from = std::min<long long>(128, to / 2);
    m_chartData = {};
    m_chartData.title = tr("%1 on one %2 GPU (%3 weights, %4 cache)")
                            .arg(QString::fromStdString(r.modelName), bytesText(r.gpuBytes),
                                 m_weightDtype->currentText(), m_cacheDtype->currentText());
    m_chartData.context = static_cast<double>(r.context);
    m_chartData.contextLimit = r.contextLimit;
    bool windowEverywhere = in.model.slidingWindow.has_value();
    for (int l = 0; l < in.model.layers; ++l)
        windowEverywhere = windowEverywhere && in.model.windowApplies(l);
    m_chartData.window = windowEverywhere ? *in.model.slidingWindow : 0;
    if (auto curves = kvs::capacityCurves(in, from, to, 160)) {
        int index = 0;
        for (const kvs::CapacityCurve& c : curves.value()) {
            views::CapacitySeries s;
            s.name = QString::fromStdString(c.name);
            s.context = QVector<double>(c.context.begin(), c.context.end());
            s.users = QVector<double>(c.users.begin(), c.users.end());
            s.colorIndex = index++;
            m_chartData.series.push_back(s);
        }
    }
    views::drawCapacityChart(m_chart, m_chartData);
}

std::vector<views::ChartHandle> CapacityPage::charts() const {
    views::CapacityChartData data = m_chartData;
    return {{QStringLiteral("capacity"), m_chart, [data] { return views::capacityCsv(data); }}};
}

void CapacityPage::applyTheme() {
    views::drawCapacityChart(m_chart, m_chartData);
}

} // namespace kvs::studio
