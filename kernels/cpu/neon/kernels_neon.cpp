// The aarch64 NEON path (every aarch64 CPU): 128-bit float ops and dot
// products, int8 dots by widening multiplies.
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
#define SLM_DOTPROD 0
#include "cpu/neon/dot_neon.inc"
#undef SLM_DOTPROD

KernelTable make_table() {
  KernelTable t = ref::table();
  t.isa = Isa::neon;
  simd::fill_ops(t);
  arm::fill_quant(t);
  return t;
}

}  // namespace

const KernelTable& table_neon() {
  static const KernelTable t = make_table();
  return t;
}

}  // namespace slm::kernels
