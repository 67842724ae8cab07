#include "core/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace slm {
namespace {

#if defined(__x86_64__)
// XGETBV without requiring -mxsave for this file.
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &d);
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool ymm_state = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;   // XTILECFG + XTILEDATA
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    const bool avx2 = b & (1u << 5);
    const bool avx512f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    const bool vnni = c & (1u << 11);
    const bool amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25);
    f.avx2 = avx && avx2 && fma && f16c && ymm_state;
    f.avx512 = f.avx2 && avx512f && dq && bw && vl && zmm_state;
    f.avx512_vnni = f.avx512 && vnni;
    f.amx_int8 = amx_tile && amx_int8 && tile_state;
  }
  // Brand string, leaves 0x80000002..4.
  __get_cpuid(0x80000000, &a, &b, &c, &d);
  if (a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002 + leaf, &a, &b, &c, &d);
      std::memcpy(brand + 16 * leaf, &a, 4);
      std::memcpy(brand + 16 * leaf + 4, &b, 4);
      std::memcpy(brand + 16 * leaf + 8, &c, 4);
      std::memcpy(brand + 16 * leaf + 12, &d, 4);
    }
    f.cpu_name = brand;
    const auto first = f.cpu_name.find_first_not_of(' ');
    f.cpu_name = first == std::string::npos ? "" : f.cpu_name.substr(first);
    while (!f.cpu_name.empty() && f.cpu_name.back() == ' ') f.cpu_name.pop_back();
  }
  return f;
}
#elif defined(__aarch64__)
CpuFeatures detect() {
  CpuFeatures f;
  const unsigned long hw = getauxval(AT_HWCAP);
  f.neon = hw & (1ul << 1);      // HWCAP_ASIMD
  f.fp16 = hw & (1ul << 10);     // HWCAP_ASIMDHP
  f.dotprod = hw & (1ul << 20);  // HWCAP_ASIMDDP
  f.cpu_name = "aarch64";
  return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

}  // namespace

std::string CpuFeatures::summary() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(avx512, "avx512");
  add(avx512_vnni, "avx512_vnni");
  add(amx_int8, "amx_int8");
  add(neon, "neon");
  add(dotprod, "dotprod");
  add(fp16, "fp16");
  return s.empty() ? "scalar" : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace slm
