// How much memory this process can still get: what the kernel has
// (MemAvailable + SwapFree in /proc/meminfo), capped by the memory cgroups
// the process runs in (a container's, a systemd unit's or slice's limit
// minus what the group uses apart from reclaimable page cache; cgroup v2's
// memory.max / memory.current or v1's memory.limit_in_bytes /
// memory.usage_in_bytes, less inactive_file from memory.stat; the least over
// the group and its parents). Used to refuse a KV cache that could never be
// backed, before allocating it.
#pragma once

#include <optional>
#include <string>

namespace slm {

// Where the numbers are read from; tests point them at a made-up tree.
struct MemoryFiles {
  std::string meminfo = "/proc/meminfo";
  std::string self_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
};

// Bytes; nullopt when nothing could be read.
std::optional<double> available_memory_bytes(const MemoryFiles& files = {});

}  // namespace slm
