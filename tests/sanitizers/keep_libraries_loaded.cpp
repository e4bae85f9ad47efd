// SPDX-License-Identifier: MIT
// Sanitizer builds only (linked into their tests and kvstudio-cli): dlclose does nothing, so the
// Vulkan drivers and layers that the Vulkan loader opens and closes for every instance stay loaded
// until exit. LeakSanitizer can then name them in its report (and tests/sanitizers/lsan.supp can
// suppress what they keep by module), instead of "<unknown module>" frames of an unloaded library,
// and Mesa's per-load start-up allocations happen once rather than once per instance.
#include <dlfcn.h>

extern "C" int dlclose(void*) {
    return 0;
}
