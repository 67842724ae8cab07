// available_memory_bytes on made-up /proc and cgroup trees: the kernel's
// figure, capped by the memory cgroups' limit minus their use (v2 and v1;
// page cache not counted; parents too), and no cap where there is none.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/memory_available.h"
#include "support/testdata.h"

namespace slm {
namespace {

namespace fs = std::filesystem;

void put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

MemoryFiles tree(const std::string& name, const std::string& self_cgroup) {
  const fs::path root = test::temp_path("memtree-" + name);
  MemoryFiles f;
  f.meminfo = (root / "meminfo").string();
  f.self_cgroup = (root / "self_cgroup").string();
  f.cgroup_root = (root / "cgroup").string();
  // 8 GiB available + 1 GiB of swap.
  put(f.meminfo, "MemTotal:       16777216 kB\nMemFree:         1000 kB\nMemAvailable:    8388608 kB\nSwapFree:        1048576 kB\n");
  put(f.self_cgroup, self_cgroup);
  return f;
}

constexpr double kGiB = 1024.0 * 1024 * 1024;

TEST(MemoryAvailable, KernelFigureCappedByTheMemoryCgroup) {
  // No cgroup files: MemAvailable + SwapFree.
  auto f = tree("none", "0::/user.slice\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 9 * kGiB);
  // cgroup v2, 2 GiB limit, 0.5 GiB used.
  f = tree("v2", "0::/app.slice/slm.service\n");
  put(f.cgroup_root + "/app.slice/slm.service/memory.max", "2147483648\n");
  put(f.cgroup_root + "/app.slice/slm.service/memory.current", "536870912\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 1.5 * kGiB);
  // v2 without a limit ("max"): the kernel's figure.
  put(f.cgroup_root + "/app.slice/slm.service/memory.max", "max\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 9 * kGiB);
  // cgroup v1 (the memory controller's own hierarchy), inside a namespace
  // where the path reads "/": 4 GiB limit, 1 GiB used.
  f = tree("v1", "12:pids:/\n4:memory:/\n0::/\n");
  put(f.cgroup_root + "/memory/memory.limit_in_bytes", "4294967296\n");
  put(f.cgroup_root + "/memory/memory.usage_in_bytes", "1073741824\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 3 * kGiB);
  // v1's "no limit" is a huge number.
  put(f.cgroup_root + "/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 9 * kGiB);
  // A group using more than its limit has nothing left.
  f = tree("over", "0::/x\n");
  put(f.cgroup_root + "/x/memory.max", "1000\n");
  put(f.cgroup_root + "/x/memory.current", "5000\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 0.0);
  // Reclaimable page cache (a model just read) does not count as used.
  f = tree("cache", "0::/x\n");
  put(f.cgroup_root + "/x/memory.max", "4294967296\n");
  put(f.cgroup_root + "/x/memory.current", "4294967296\n");
  put(f.cgroup_root + "/x/memory.stat", "anon 1073741824\nfile 3221225472\ninactive_file 2147483648\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 2 * kGiB);
  // A limit on a parent (a slice) counts when the group itself has none.
  f = tree("parent", "0::/work.slice/slm.service\n");
  put(f.cgroup_root + "/work.slice/slm.service/memory.max", "max\n");
  put(f.cgroup_root + "/work.slice/slm.service/memory.current", "100\n");
  put(f.cgroup_root + "/work.slice/memory.max", "3221225472\n");
  put(f.cgroup_root + "/work.slice/memory.current", "1073741824\n");
  EXPECT_DOUBLE_EQ(*available_memory_bytes(f), 2 * kGiB);
  // Nothing readable at all.
  MemoryFiles missing;
  missing.meminfo = missing.self_cgroup = missing.cgroup_root = test::temp_path("nothing-here");
  EXPECT_FALSE(available_memory_bytes(missing).has_value());
}

}  // namespace
}  // namespace slm
