// What the CPU (and the OS) let this process execute.
//
// A feature counts only when the CPU reports it AND the OS saves its register
// state (XCR0 on x86), so a path is never picked on a machine where its
// instructions would fault.
#pragma once

#include <string>

namespace slm {

struct CpuFeatures {
  // x86-64
  bool avx2 = false;     // AVX2 + FMA + F16C with OS-enabled YMM state
  bool avx512 = false;   // AVX-512 F + BW + VL + DQ with OS-enabled ZMM/opmask state
  bool avx512_vnni = false;
  bool amx_int8 = false;  // AMX tiles reported by CPUID with tile state in XCR0
                          // (using them still needs arch_prctl permission)
  // aarch64
  bool neon = false;     // Advanced SIMD (always on aarch64)
  bool dotprod = false;  // SDOT / UDOT
  bool fp16 = false;     // half-precision arithmetic

  std::string cpu_name;  // brand string (x86) or "aarch64"
  std::string summary() const;  // "avx2 avx512 avx512_vnni" ...
};

// Detected once, then cached.
const CpuFeatures& cpu_features();

}  // namespace slm
