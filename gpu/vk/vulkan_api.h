// SPDX-License-Identifier: MIT
// The one way gpu/ includes Vulkan: headers only, no prototypes (entry points come from loader.h).
#pragma once

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>
