// The aarch64 NEON + dotprod path: as kernels_neon.cpp, with the int8 dot
// products done by SDOT. Compiled with -march=armv8.2-a+dotprod; nothing
// here runs before dispatch.cpp has seen the CPU's dotprod hwcap.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/kernels.h"
#include "cpu/ref/ref.h"
#include "cpu/tables.h"

namespace slm::kernels {
namespace {

#include "cpu/neon/vec_neon.h"
using V = VecNeon;
#include "cpu/simd_ops.inc"
#define SLM_DOTPROD 1
#include "cpu/neon/dot_neon.inc"
#undef SLM_DOTPROD

KernelTable make_table() {
  KernelTable t = ref::table();
  t.isa = Isa::neon_dotprod;
  simd::fill_ops(t);
  arm::fill_quant(t);
  return t;
}

}  // namespace

const KernelTable& table_neon_dotprod() {
  static const KernelTable t = make_table();
  return t;
}

}  // namespace slm::kernels
