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

// A key's value in a cgroup's memory.stat ("inactive_file 1234").
std::optional<double> stat_value(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  double v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

// What a cgroup folder leaves: its limit minus its use, where the use counts
// no inactive file pages (the page cache the kernel reclaims before it
// refuses memory: a model just read from disk is most of it). nullopt when
// the folder has no limit or no files.
struct CgroupFiles {
  const char* limit;
  const char* usage;
  const char* inactive_file;  // in memory.stat
};
std::optional<double> left_in(const std::string& dir, const CgroupFiles& f) {
  const auto limit = read_number(dir + "/" + f.limit), usage = read_number(dir + "/" + f.usage);
  if (!limit || !usage || *limit >= 1e18) return std::nullopt;  // "max", or v1's huge number: no limit
  const double reclaimable = stat_value(dir + "/memory.stat", f.inactive_file).value_or(0);
  return std::max(0.0, *limit - std::max(0.0, *usage - reclaimable));
}

// The least any memory cgroup on the process's path leaves (a limit may sit
// on a parent: a systemd slice, a pod), each hierarchy from its mount: v2
// ("0::/path") and v1's memory controller ("N:...memory...:/path"). Inside a
// cgroup namespace the path reads "/" and the mount is the group itself.
std::optional<double> cgroup_left(const MemoryFiles& f) {
  static const CgroupFiles kV2 = {"memory.max", "memory.current", "inactive_file"};
  static const CgroupFiles kV1 = {"memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"};
  std::optional<double> least;
  auto consider = [&](const std::string& mount, const std::string& path, const CgroupFiles& files) {
    // The group's folder and each parent up to the mount.
    std::string p = path;
    while (!p.empty() && p.back() == '/') p.pop_back();
    for (;;) {
      if (const auto left = left_in(mount + p, files)) least = least ? std::min(*least, *left) : *left;
      if (p.empty()) break;
      p.erase(p.rfind('/') == std::string::npos ? 0 : p.rfind('/'));
    }
  };
  std::ifstream in(f.self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      consider(f.cgroup_root, path, kV2);
      consider(f.cgroup_root + "/unified", path, kV2);
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      consider(f.cgroup_root + "/memory", path, kV1);
    }
  }
  return least;
}

}  // namespace

std::optional<double> available_memory_bytes(const MemoryFiles& files) {
  const auto system = meminfo_available(files.meminfo);
  const auto group = cgroup_left(files);
  if (system && group) return std::min(*system, *group);
  return system ? system : group;
}

}  // namespace slm
