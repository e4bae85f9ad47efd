// SPDX-License-Identifier: MIT
// JSON pieces that several kvstudio-cli commands print the same way (docs/cli.md).
#pragma once

#include "kvs/statistics.h"

#include <nlohmann/json.hpp>

namespace kvs::cli {

// A number, or null when it is not finite (JSON has no NaN or infinity).
nlohmann::json finiteOrNull(double v);
// {"mean", "half_width", "lower", "upper", "sd", "n", "level", "over"}: a mean with its
// Student-t interval over `over` ("prompts", "seeds").
nlohmann::json intervalJson(const MeanInterval& m, const char* over);

} // namespace kvs::cli
