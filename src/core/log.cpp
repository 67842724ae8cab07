#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace slm {
namespace {

std::shared_ptr<spdlog::logger> make_default_logger() {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto log = std::make_shared<spdlog::logger>("slm", sink);
  log->set_level(spdlog::level::warn);
  log->set_pattern("%^[%l]%$ %v");
  return log;
}

std::shared_ptr<spdlog::logger>& logger_slot() {
  static std::shared_ptr<spdlog::logger> slot = make_default_logger();
  return slot;
}

}  // namespace

spdlog::logger& logger() { return *logger_slot(); }

void set_logger(std::shared_ptr<spdlog::logger> log) {
  logger_slot() = log ? std::move(log) : make_default_logger();
}

}  // namespace slm
