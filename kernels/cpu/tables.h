// The per-ISA tables this build compiled (internal to kernels/). Each
// accessor exists only when CMake built that path (SLM_HAVE_<ISA>); calling
// one is safe only after the CPU check in dispatch.cpp.
#pragma once

#include "cpu/kernels.h"

namespace slm::kernels {

#if defined(SLM_HAVE_AVX2)
const KernelTable& table_avx2();
#endif
#if defined(SLM_HAVE_AVX512)
const KernelTable& table_avx512();
const KernelTable& table_avx512_vnni();
#endif
#if defined(SLM_HAVE_NEON)
const KernelTable& table_neon();
const KernelTable& table_neon_dotprod();
#endif

}  // namespace slm::kernels
