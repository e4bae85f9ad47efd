// SPDX-License-Identifier: MIT
// The studio's light and dark themes: Fusion with our own dark QPalette (Qt 6.4 has no
// QStyleHints::colorScheme).
#pragma once

#include <QPalette>

namespace kvs::studio {

QPalette darkPalette();
// Sets the application palette: darkPalette() or the style's standard (light) one.
void applyApplicationTheme(bool dark);

} // namespace kvs::studio
