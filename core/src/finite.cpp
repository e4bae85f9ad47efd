// SPDX-License-Identifier: MIT
// Finiteness checks of scalars and per-head metrics (matrices: the template in the header).
#include "kvs/finite.h"

#include "kvs/evaluator.h"

namespace kvs {

void checkFinite(double value, std::string_view what) {
    if (!std::isfinite(value))
        throw Error(ErrorCode::NotFinite, std::string(what) + " is " + describeNonFinite(value));
}

void checkFinite(const HeadMetrics& m) {
    const std::string where =
        "layer " + std::to_string(m.layer) + ", KV head " + std::to_string(m.kvHead) + ": ";
    checkFinite(m.outputError, where + "head output error");
    checkFinite(m.contextError, where + "context-only error");
    checkFinite(m.maxContextError, where + "max context-only error");
    checkFinite(m.massLost, where + "attention mass lost");
    checkFinite(m.totalVariation, where + "total variation");
    checkFinite(m.logitError, where + "logit error");
    checkFinite(m.rhoEff, where + "rho_eff");
    checkFinite(m.valueScaledError, where + "value-scaled error");
}

} // namespace kvs
