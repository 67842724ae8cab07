// The AVX-512 F/BW/VL/DQ path: 512-bit float ops and float dot products,
// 256-bit integer dot products (maddubs). Nothing here runs before
// dispatch.cpp has checked the CPU.
// GCC 12's AVX-512 headers build some results from _mm512_undefined_*(),
// which -Wuninitialized flags at every inlined use: a header bug, not ours.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning (clang warns that it does not know it)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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

#include "cpu/x86/vec_avx512.h"
using V = VecAvx512;
#include "cpu/simd_ops.inc"
#define SLM_VNNI 0
#include "cpu/x86/dot_x86.inc"
#undef SLM_VNNI

KernelTable make_table() {
  KernelTable t = ref::table();
  t.isa = Isa::avx512;
  simd::fill_ops(t);
  x86::fill_quant(t);
  return t;
}

}  // namespace

const KernelTable& table_avx512() {
  static const KernelTable t = make_table();
  return t;
}

}  // namespace slm::kernels
