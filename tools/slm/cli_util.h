// Small helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "slm/error.h"

namespace slm::cli {

// "1,2,3" -> {1, 2, 3}; any item that is not an integer in [min, max] is an
// error naming the flag and the item.
inline std::vector<int64_t> parse_int_list(const std::string& list, const char* flag, int64_t min, int64_t max) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < min || v > max)
      throw Error(fmt::format("{}: '{}' is not valid (expected comma-separated integers from {} to {})", flag, item,
                              min, max));
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

}  // namespace slm::cli
