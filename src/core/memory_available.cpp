#include "core/memory_available.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

namespace slm {
namespace {

// A file's first number; nullopt when it is missing or says "max".
std::optional<double> read_number(const std::string& path) {
  std::ifstream in(path);
  double v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

std::optional<double> meminfo_available(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  double total = 0, kib = 0;
  bool found = false;
  std::string key, rest;
  while (in >> key >> kib) {
    std::getline(in, rest);
    if (key == "MemAvailable:" || key == "SwapFree:") total += kib * 1024.0, found = true;
  }
  return found ? std::optional<double>(total) : std::nullopt;
}

// The memory cgroup's limit minus its use, for the first of the process's
// cgroup folders that has both files: its own path under the mount (v2:
// "0::/path"; v1: "N:...memory...:/path"), then the mount's root (inside a
// cgroup namespace the path reads "/" anyway).
std::optional<double> cgroup_left(const MemoryFiles& f) {
  struct Layout {
    std::string mount, limit, usage;
  };
  std::vector<std::pair<Layout, std::string>> candidates;  // layout, path inside the hierarchy
  std::ifstream in(f.self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      candidates.push_back({{f.cgroup_root, "memory.max", "memory.current"}, path});
      candidates.push_back({{f.cgroup_root + "/unified", "memory.max", "memory.current"}, path});
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      candidates.push_back({{f.cgroup_root + "/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"}, path});
    }
  }
  for (const auto& [layout, path] : candidates) {
    for (const std::string& dir : {layout.mount + path, layout.mount}) {
      const auto limit = read_number(dir + "/" + layout.limit), usage = read_number(dir + "/" + layout.usage);
      if (!limit || !usage) continue;
      if (*limit >= 1e18) return std::nullopt;  // no limit (v1 writes a huge number for none)
      return std::max(0.0, *limit - *usage);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> available_memory_bytes(const MemoryFiles& files) {
  const auto system = meminfo_available(files.meminfo);
  const auto group = cgroup_left(files);
  if (system && group) return std::min(*system, *group);
  return system ? system : group;
}

}  // namespace slm
