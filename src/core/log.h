// Logging: one spdlog logger that library code writes to. Callers (the CLI,
// tests, an embedding application) may replace it; nothing else is global.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace slm {

// The logger library code uses. By default a stderr logger named "slm" at
// level warn; never null.
spdlog::logger& logger();

// Replaces the library logger (null restores the default). Not thread-safe
// with respect to concurrent logging: call it before loading models.
void set_logger(std::shared_ptr<spdlog::logger> logger);

}  // namespace slm
