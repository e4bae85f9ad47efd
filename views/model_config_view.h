// SPDX-License-Identifier: MIT
// The model's configuration at a glance: architecture, attention layout (GQA explicit), sizes,
// checkpoint and tokenizer, as a two-column sheet whose values can be selected and copied.
#pragma once

#include "kvs/model_config.h"

#include <QMap>
#include <QString>
#include <QStringList>
#include <QWidget>

class QGridLayout;
class QLabel;

namespace kvs::views {

// Everything the sheet shows, computed by the caller (the session, on a worker thread).
struct ModelFacts {
    QString name;   // the folder's name
    QString folder; // absolute path
    kvs::ModelConfig config;
    long long parameters = 0;          // ModelConfig::parameterCount()
    long long kvBytesPerTokenFp16 = 0; // ModelConfig::kvBytesPerTokenFp16()
    int contextLimit = 0;              // ModelConfig::contextLimit()
    QString checkpoint;                // Checkpoint::describe()
    QStringList checkpointFiles;       // file names of the shards
    QString dtype;                     // storage dtype(s) of the weights, e.g. "BF16"
    qint64 checkpointBytes = 0;        // sum of tensor bytes
    QString tokenizer;                 // "gpt2-bpe", "sentencepiece", ... ; empty when none
    qint64 tokenizerVocab = 0;
    // For models trained by kvstudio-cli train: what its train_results.json says (steps,
    // characters, validation loss), or why it could not be read; empty without one.
    QString training;
};

// Human formatting shared by the views: "1.23 M", "4.0 KiB".
QString formatCount(long long n);
QString formatBytes(long long bytes);

class ModelConfigView : public QWidget {
    Q_OBJECT
public:
    explicit ModelConfigView(QWidget* parent = nullptr);

    void setFacts(const ModelFacts& facts);
    void clear();
    bool hasModel() const { return m_hasModel; }

    // The displayed value of a row ("layers", "heads", "kvHeads", "group", "headDim", ...); the
    // value label's objectName is the key followed by "Value" (e.g. "layersValue").
    QString value(const QString& key) const;
    QStringList keys() const;

private:
    void addSection(const QString& title);
    void addRow(const QString& key, const QString& label, const QString& toolTip);
    void set(const QString& key, const QString& text, const QString& extraToolTip = {});

    QGridLayout* m_grid = nullptr;
    QMap<QString, QLabel*> m_values;
    QMap<QString, QString> m_toolTips;
    QStringList m_order;
    int m_row = 0;
    bool m_hasModel = false;
};

} // namespace kvs::views
