// The AVX2 + FMA + F16C path. Compiled with -mavx2 -mfma -mf16c; nothing here
// runs before dispatch.cpp has checked the CPU.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/kernels.h"
#include "cpu/ref/ref.h"
#include "cpu/tables.h"

namespace slm::kernels {
namespace {

#include "cpu/x86/vec_avx2.h"
using V = VecAvx2;
#include "cpu/simd_ops.inc"
#define SLM_VNNI 0
#include "cpu/x86/dot_x86.inc"
#undef SLM_VNNI

KernelTable make_table() {
  KernelTable t = ref::table();
  t.isa = Isa::avx2;
  simd::fill_ops(t);
  x86::fill_quant(t);
  return t;
}

}  // namespace

const KernelTable& table_avx2() {
  static const KernelTable t = make_table();
  return t;
}

}  // namespace slm::kernels
