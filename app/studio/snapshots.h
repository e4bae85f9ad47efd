// SPDX-License-Identifier: MIT
// The immutable results the session publishes to the GUI thread: a loaded model, a tokenized
// prompt, the compute backend. Views read them and never change them.
#pragma once

#include "model_config_view.h"

#include "kvs/model.h"
#include "kvs/tokenizer.h"

#include <QDateTime>
#include <QString>
#include <QStringList>
#include <memory>
#include <vector>

namespace kvs::studio {

// A model that finished loading. The model itself is shared read-only with the jobs that use it.
struct ModelSnapshot {
    views::ModelFacts facts;
    std::shared_ptr<const kvs::Model> model;
    bool hasTokenizer = false;
    double loadSeconds = 0.0;
    QDateTime loadedAt;
};

// The prompt as the current model's tokenizer splits it.
struct TokensSnapshot {
    quint64 generation = 0; // the tokenize request this answers
    QString prompt;
    QString modelFolder;
    std::vector<kvs::TokenId> ids;
    QStringList texts;         // display text per token (Tokenizer::tokenText)
    int contextLimit = 0;      // the model's longest sequence
    long long kvBytesFp16 = 0; // fp16 K+V cache of these tokens, all layers and KV heads
    int count() const { return static_cast<int>(ids.size()); }
};

// Which backend attention will run on, found once at start-up.
struct BackendSnapshot {
    bool vulkan = false;       // a Vulkan device was chosen
    bool cpuEmulation = false; // ... and it is a software rasterizer (lavapipe)
    QString deviceName;
    QString summary; // "Vulkan: llvmpipe (...) (CPU emulation)" or "CPU backend: <why>"
    QString detail;  // the device's summary line or the full discovery error
};

enum class ModelState { None, Loading, Loaded, Failed };

} // namespace kvs::studio
