// Dot kernels and activation quantizers of every ISA against the scalar
// reference, and the matmul driver against float64 math.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cpu/blocks.h"
#include "cpu/matmul.h"
#include "kernel_test_util.h"
#include "slm/error.h"

namespace slm::kernels {
namespace {

using testing::gaussian;
using testing::Unaligned;

// Row lengths: a single block, odd block counts, and a Phi-3-mini row.
std::vector<int64_t> lengths_for(DType type) {
  const int64_t block = traits(type).block_size == 1 ? 1 : traits(type).block_size;
  if (block == 256) return {256, 768, 1280, 3072};
  if (block == 32) return {32, 96, 224, 3072};
  return {1, 7, 31, 33, 100, 3072};  // float weights: any length, odd tails
}

// Block size of the activation format a weight type pairs with.
int64_t act_block(const KernelTable& k, DType type) {
  return act_block_size(k.types[static_cast<int>(type)].act);
}

// sum |w_i x_i| in double: the scale float-accumulation error is relative to.
double abs_dot(const std::vector<float>& w, const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(w[i]) * x[i]);
  return s;
}

std::vector<uint8_t> convert(const KernelTable& k, DType type, const float* x, int64_t n) {
  std::vector<uint8_t> out(activation_row_bytes(k, type, n));
  convert_activations(k, type, x, n, 0, 1, out.data());
  return out;
}

TEST(KernelDot, EveryIsaMatchesReferenceOnEveryType) {
  const auto isas = testing::simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path runs on this CPU: only the reference exists";
  const KernelTable& r = ref::table();
  // Q2_K and Q3_K have no SIMD dot on any path yet: their tables point at the
  // reference dot, so comparing them here would compare the reference with
  // itself. They are listed, not counted as checked; any other type falling
  // back to the reference fails.
  const std::vector<DType> reference_only = {DType::Q2_K, DType::Q3_K};
  int checked = 0;
  for (Isa isa : isas) {
    const KernelTable& k = kernel_table(isa);
    for (DType type : testing::weight_types()) {
      const TypeKernels& tk = k.types[static_cast<int>(type)];
      ASSERT_NE(tk.dot, nullptr) << isa_name(isa) << " " << dtype_name(type);
      ASSERT_EQ(tk.act, r.types[static_cast<int>(type)].act);
      const bool shares_reference = tk.dot == r.types[static_cast<int>(type)].dot;
      const bool listed = std::find(reference_only.begin(), reference_only.end(), type) != reference_only.end();
      EXPECT_EQ(shares_reference, listed) << isa_name(isa) << " " << dtype_name(type)
                                          << (listed ? " now has its own dot: remove it from reference_only"
                                                     : " uses the reference dot: it is not a SIMD kernel");
      if (shares_reference) {
        std::printf("note: %s %s uses the reference dot (no SIMD kernel): not compared\n", std::string(isa_name(isa)).c_str(),
                    std::string(dtype_name(type)).c_str());
        continue;
      }
      ++checked;
      for (int64_t n : lengths_for(type)) {
        if (n % act_block(k, type) != 0) continue;
        const auto w = testing::make_weights(type, 1, n, static_cast<uint32_t>(n));
        const auto wf = testing::dequantize(type, w.data(), 1, n);
        // Four activation rows, converted once by the reference (the
        // quantizers are compared separately below).
        std::vector<float> x = gaussian(static_cast<size_t>(4 * n), 7);
        std::vector<uint8_t> acts;
        for (int c = 0; c < 4; ++c) {
          const auto a = convert(r, type, x.data() + c * n, n);
          acts.insert(acts.end(), a.begin(), a.end());
        }
        const size_t stride = acts.size() / 4;
        // Offsets that break vector alignment but keep each element type's
        // own (GGUF data is aligned; the loader rejects anything less).
        const size_t elem_align = type == DType::F32 ? 4 : 2;
        for (size_t misalign : {size_t{0}, elem_align, 3 * elem_align}) {
          Unaligned wu(w.data(), w.size(), misalign), au(acts.data(), acts.size(), 4 + 2 * misalign);
          for (int nx = 1; nx <= kMaxDotCols; ++nx) {
            float want[kMaxDotCols], got[kMaxDotCols];
            r.types[static_cast<int>(type)].dot(n, wu.get(), au.get(), stride, nx, want);
            tk.dot(n, wu.get(), au.get(), stride, nx, got);
            for (int c = 0; c < nx; ++c) {
              // Integer sums are exact on both paths; only the order of the
              // float additions differs: bound ~ n_terms * eps * sum|w x|.
              const double tol = 4e-6 * abs_dot(wf, x.data() + c * n, n) + 1e-6;
              EXPECT_NEAR(got[c], want[c], tol) << isa_name(isa) << " " << dtype_name(type) << " n=" << n
                                                << " nx=" << nx << " col=" << c << " misalign=" << misalign;
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(isas.size() * (testing::weight_types().size() - reference_only.size())));
}

// The two-row GEMM kernels against the reference dot of each row.
TEST(KernelDot, TwoRowKernelsMatchTheReference) {
  const KernelTable& r = ref::table();
  int checked = 0;
  for (Isa isa : testing::simd_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType type : testing::weight_types()) {
      const TypeKernels& tk = k.types[static_cast<int>(type)];
      if (!tk.dot2) continue;
      for (int64_t n : lengths_for(type)) {
        const auto w = testing::make_weights(type, 2, n, static_cast<uint32_t>(n + 1));
        const auto wf = testing::dequantize(type, w.data(), 2, n);
        const size_t row = w.size() / 2;
        const auto x = gaussian(static_cast<size_t>(4 * n), 8);
        std::vector<uint8_t> acts;
        for (int c = 0; c < 4; ++c) {
          const auto a = convert(r, type, x.data() + c * n, n);
          acts.insert(acts.end(), a.begin(), a.end());
        }
        const size_t stride = acts.size() / 4;
        Unaligned wu(w.data(), w.size(), 2), au(acts.data(), acts.size(), 4);
        for (int nx = 1; nx <= kMaxDotCols; ++nx) {
          float got[2 * kMaxDotCols], want[kMaxDotCols];
          tk.dot2(n, wu.get(), row, au.get(), stride, nx, got);
          for (int rr = 0; rr < 2; ++rr) {
            r.types[static_cast<int>(type)].dot(n, wu.get() + rr * row, au.get(), stride, nx, want);
            const std::vector<float> wrow(wf.begin() + rr * n, wf.begin() + (rr + 1) * n);
            for (int c = 0; c < nx; ++c)
              EXPECT_NEAR(got[rr * kMaxDotCols + c], want[c], 4e-6 * abs_dot(wrow, x.data() + c * n, n) + 1e-6)
                  << isa_name(isa) << " " << dtype_name(type) << " n=" << n << " row " << rr << " col " << c;
          }
        }
        ++checked;
      }
    }
  }
  // x86 paths have two-row kernels (Q4_0 / Q5_0 / Q8_0); NEON has none yet.
  if (checked == 0) GTEST_SKIP() << "no kernel path on this CPU has a two-row kernel";
}

TEST(KernelDot, ActivationQuantizersAreBitIdenticalToReference) {
  const auto isas = testing::simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path runs on this CPU: only the reference exists";
  const KernelTable& r = ref::table();
  for (Isa isa : isas) {
    const KernelTable& k = kernel_table(isa);
    for (DType type : {DType::Q4_0, DType::Q4_K}) {  // -> 8-bit/32 and Q8_K activations
      const ConvertRowFn mine = k.types[static_cast<int>(type)].quantize_act;
      const ConvertRowFn spec = r.types[static_cast<int>(type)].quantize_act;
      for (int64_t n : {256, 512, 3072}) {
        for (uint32_t seed : {1u, 2u, 3u}) {
          auto x = seed == 3 ? testing::heavy_tailed(static_cast<size_t>(n), seed) : gaussian(static_cast<size_t>(n), seed);
          x[5] = 0.0f;
          if (n > 300) std::fill(x.begin() + 256, x.begin() + 288, 0.0f);  // an all-zero block: d = 0
          // Exact ties (k + 0.5 quanta) must round like the reference.
          x[40] = 63.5f, x[41] = 127.0f, x[42] = -62.5f, x[43] = 0.5f;
          std::vector<uint8_t> a(activation_row_bytes(r, type, n)), b(a.size());  // padding bytes: zero in both
          spec(x.data(), a.data(), n);
          Unaligned xu(x.data(), x.size() * 4, 4);  // float-aligned but not vector-aligned
          mine(reinterpret_cast<const float*>(xu.get()), b.data(), n);
          EXPECT_EQ(a, b) << isa_name(isa) << " activations for " << dtype_name(type) << " n=" << n;
        }
      }
    }
  }
}

// The matmul driver on every path, 1 and 2 threads, 1..9 tokens, against
// float64 dot products of the dequantized weights. The error bound comes
// from the activation format: rounding an activation to its 8-bit grid moves
// it by at most half a quantum (amax / 254 of its block).
TEST(KernelMatmul, MatchesFloat64OnEveryPathAndThreadCount) {
  const int64_t rows = 37, cols = 512;
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType type : testing::weight_types()) {
      const auto w = testing::make_weights(type, rows, cols, 11);
      const auto wf = testing::dequantize(type, w.data(), rows, cols);
      const WeightMatrix m = make_weight_matrix(w.data(), type, cols, rows);
      const ActFormat act = k.types[static_cast<int>(type)].act;
      const int64_t ab = act_block_size(act);
      for (int64_t n_tokens : {1, 2, 5, 9}) {
        const auto x = gaussian(static_cast<size_t>(n_tokens * cols), 5);
        std::vector<float> y1(static_cast<size_t>(n_tokens * rows)), y2(y1.size());
        std::vector<uint8_t> scratch;
        matmul(k, m, x.data(), n_tokens, y1.data(), rows, 1, scratch);
        matmul(k, m, x.data(), n_tokens, y2.data(), rows, 2, scratch);
        // Rows are independent: the thread split cannot change any bit.
        EXPECT_EQ(y1, y2) << isa_name(isa) << " " << dtype_name(type);
        for (int64_t t = 0; t < n_tokens; ++t) {
          const float* xt = x.data() + t * cols;
          for (int64_t r = 0; r < rows; ++r) {
            const float* wr = wf.data() + r * cols;
            double exact = 0, abs_sum = 0, quant_err = 0;
            for (int64_t b0 = 0; b0 < cols; b0 += ab) {
              double amax = 0, wsum = 0;
              for (int64_t i = b0; i < b0 + ab; ++i) {
                exact += static_cast<double>(wr[i]) * xt[i];
                abs_sum += std::fabs(static_cast<double>(wr[i]) * xt[i]);
                amax = std::max(amax, static_cast<double>(std::fabs(xt[i])));
                wsum += std::fabs(wr[i]);
              }
              if (act != ActFormat::f32) quant_err += amax / 254.0 * 1.001 * wsum;
            }
            const double tol = quant_err + 1e-5 * abs_sum + 1e-6;
            EXPECT_NEAR(y1[static_cast<size_t>(t * rows + r)], exact, tol)
                << isa_name(isa) << " " << dtype_name(type) << " token " << t << " row " << r;
          }
        }
      }
    }
  }
}

// Token counts that cross one and several of matmul's L2-sized token chunks,
// with odd tails, on every type and path: every output is written, and each
// equals the reference dot of its row and token. Rows are long so the chunks
// are short (4 to 28 tokens, by the L2 size) and the case stays small in
// bytes; 19 rows give two-row kernels an odd row out.
TEST(KernelMatmul, TokenCountsCrossingChunksMatchThePerTokenReference) {
  const int64_t rows = 19, cols = 16384;
  const KernelTable& r = ref::table();
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType type : testing::weight_types()) {
      const auto w = testing::make_weights(type, rows, cols, 23);
      const auto wf = testing::dequantize(type, w.data(), rows, cols);
      const WeightMatrix m = make_weight_matrix(w.data(), type, cols, rows);
      const size_t act_bytes = activation_row_bytes(k, type, cols);
      const int64_t chunk = matmul_token_chunk(act_bytes);
      ASSERT_LE(chunk, 32) << "the case is meant to cross chunks";
      for (int64_t n_tokens : {chunk + 1, 2 * chunk + 3}) {
        SCOPED_TRACE(std::string(isa_name(isa)) + " " + std::string(dtype_name(type)) + " tokens " + std::to_string(n_tokens) +
                     " chunk " + std::to_string(chunk));
        const auto x = gaussian(static_cast<size_t>(n_tokens * cols), 6);
        std::vector<float> y(static_cast<size_t>(n_tokens * rows), std::nanf(""));  // unwritten stays NaN
        std::vector<uint8_t> scratch;
        matmul(k, m, x.data(), n_tokens, y.data(), rows, 2, scratch);
        for (int64_t t = 0; t < n_tokens; ++t) {
          const auto a = convert(r, type, x.data() + t * cols, cols);
          for (int64_t row = 0; row < rows; ++row) {
            float want = 0;
            r.types[static_cast<int>(type)].dot(cols, w.data() + static_cast<size_t>(row) * m.row_bytes, a.data(),
                                                a.size(), 1, &want);
            const std::vector<float> wrow(wf.begin() + row * cols, wf.begin() + (row + 1) * cols);
            const double tol = 4e-6 * abs_dot(wrow, x.data() + t * cols, cols) + 1e-6;
            const float got = y[static_cast<size_t>(t * rows + row)];
            ASSERT_TRUE(std::isfinite(got)) << "token " << t << " row " << row << " was not written";
            ASSERT_NEAR(got, want, tol) << "token " << t << " row " << row;
          }
        }
      }
    }
  }
}

// Row-interleaved Q4_0 / Q8_0 / Q4_K (re-laid at load): on every path that has the
// kernel, matmul over the packed copy equals the reference over the plain
// rows, for row counts with and without a partial group of 8, token tiles
// of 1..4 and more, 1 and 2 threads, and row ranges that start or end
// inside a group. The plain bytes of the packed rows are poisoned: matmul
// must not read them (the model releases their pages).
TEST(KernelMatmul, RowInterleavedWeightsMatchThePlainRowsOnEveryPath) {
  const KernelTable& r = ref::table();
  int checked = 0;
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::F16, DType::BF16}) {
      const bool x86_or_ref = isa == Isa::ref || isa == Isa::avx2 || isa == Isa::avx512 || isa == Isa::avx512_vnni;
      EXPECT_EQ(can_pack(k, type, 8), x86_or_ref) << isa_name(isa);
      EXPECT_FALSE(can_pack(k, type, 7)) << "fewer rows than a group";
      if (!can_pack(k, type, 8)) continue;
      for (int64_t rows : {8, 13, 16, 24, 37}) {  // 24: a 16-row expanded run and a group left over
        // Float rows: lengths that do not fill the kernel's 32-element sums, and odd ones.
        const bool k_format = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
        const std::vector<int64_t> lengths = k_format                                    ? std::vector<int64_t>{256, 768, 3072}
                                             : type == DType::F16 || type == DType::BF16 ? std::vector<int64_t>{7, 33, 96, 3072}
                                                                                         : std::vector<int64_t>{32, 96, 3072};
        for (int64_t cols : lengths) {
          SCOPED_TRACE(std::string(isa_name(isa)) + " " + std::string(dtype_name(type)) + " rows " +
                       std::to_string(rows) + " cols " + std::to_string(cols));
          const auto w = testing::make_weights(type, rows, cols, 31);
          const WeightMatrix plain = make_weight_matrix(w.data(), type, cols, rows);
          std::unique_ptr<uint8_t[]> storage;
          WeightMatrix packed = pack_weight_matrix(k, plain, storage, 2);
          ASSERT_EQ(packed.packed_rows, rows / 8 * 8);
          ASSERT_EQ(packed.packed_for, isa);
          // Unpacking gives back every row's bytes.
          std::vector<uint8_t> row(plain.row_bytes);
          for (int64_t rr = 0; rr < packed.packed_rows; ++rr) {
            unpack_row_x8(type, storage.get() + static_cast<size_t>(rr / 8) * x8_group_bytes(type, cols), cols,
                          static_cast<int>(rr % 8), row.data());
            ASSERT_TRUE(std::equal(row.begin(), row.end(), w.begin() + rr * static_cast<int64_t>(plain.row_bytes)))
                << "row " << rr;
          }
          std::vector<uint8_t> poisoned(w);
          std::fill(poisoned.begin(), poisoned.begin() + packed.packed_rows * static_cast<int64_t>(plain.row_bytes), 0xFF);
          packed.data = poisoned.data();
          // 5, 6, 7, 9 and 11 tokens expand K-quant runs (more than one tile)
          // and end in tiles of 1, 2, 3, 1 and 3 tokens.
          for (int64_t n_tokens : {1, 2, 3, 4, 5, 6, 7, 9, 11}) {
            const auto x = gaussian(static_cast<size_t>(n_tokens * cols), 7);
            std::vector<float> want(static_cast<size_t>(n_tokens * rows)), got1(want.size()), got2(want.size());
            std::vector<uint8_t> scratch;
            matmul(r, plain, x.data(), n_tokens, want.data(), rows, 1, scratch);
            matmul(k, packed, x.data(), n_tokens, got1.data(), rows, 1, scratch);
            matmul(k, packed, x.data(), n_tokens, got2.data(), rows, 2, scratch);
            EXPECT_EQ(got1, got2) << "the thread split changed a result";
            // A token gets the same bits alone as in a batch (longer batches
            // take other kernels: ExpandedK for the K formats).
            for (int64_t t = 0; t < n_tokens; ++t) {
              std::vector<float> alone(static_cast<size_t>(rows));
              matmul(k, packed, x.data() + t * cols, 1, alone.data(), rows, 1, scratch);
              EXPECT_TRUE(std::equal(alone.begin(), alone.end(), got1.begin() + t * rows)) << "token " << t << " of " << n_tokens;
            }
            const auto wf = testing::dequantize(type, w.data(), rows, cols);
            for (int64_t t = 0; t < n_tokens; ++t)
              for (int64_t rr = 0; rr < rows; ++rr) {
                const std::vector<float> wrow(wf.begin() + rr * cols, wf.begin() + (rr + 1) * cols);
                const double tol = 4e-6 * abs_dot(wrow, x.data() + t * cols, cols) + 1e-6;
                ASSERT_NEAR(got1[static_cast<size_t>(t * rows + rr)], want[static_cast<size_t>(t * rows + rr)], tol)
                    << "token " << t << " row " << rr;
              }
            // A range that starts on the second group: a 16-row expansion
            // path begins its runs one group later; same bits.
            if (rows >= 24) {
              const size_t act_bytes = activation_row_bytes(k, type, cols);
              std::vector<uint8_t> acts(act_bytes * static_cast<size_t>(n_tokens));
              convert_activations(k, type, x.data(), cols, 0, n_tokens, acts.data());
              std::vector<float> part(want.size(), std::nanf(""));
              matmul_rows(k, packed, acts.data(), n_tokens, part.data(), rows, 8, rows);
              for (int64_t t = 0; t < n_tokens; ++t)
                ASSERT_TRUE(std::equal(part.begin() + t * rows + 8, part.begin() + (t + 1) * rows, got1.begin() + t * rows + 8))
                    << "token " << t << " of rows 8.." << rows;
            }
            // A row range that starts and ends inside groups.
            if (rows >= 13) {
              const size_t act_bytes = activation_row_bytes(k, type, cols);
              std::vector<uint8_t> acts(act_bytes * static_cast<size_t>(n_tokens));
              convert_activations(k, type, x.data(), cols, 0, n_tokens, acts.data());
              std::vector<float> part(want.size(), std::nanf(""));
              matmul_rows(k, packed, acts.data(), n_tokens, part.data(), rows, 3, 13);
              for (int64_t t = 0; t < n_tokens; ++t)
                for (int64_t rr = 3; rr < 13; ++rr) {
                  const std::vector<float> wrow(wf.begin() + rr * cols, wf.begin() + (rr + 1) * cols);
                  const double tol = 4e-6 * abs_dot(wrow, x.data() + t * cols, cols) + 1e-6;
                  ASSERT_NEAR(part[static_cast<size_t>(t * rows + rr)], want[static_cast<size_t>(t * rows + rr)], tol)
                      << "token " << t << " row " << rr;
                }
            }
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GE(checked, 36);  // the reference's packed kernels at least
}

TEST(KernelMatmul, RejectsWhatItCannotCompute) {
  std::vector<uint8_t> scratch;
  float y[4];
  const float x[64] = {};
  // A row length that is not a multiple of the block.
  EXPECT_THROW(make_weight_matrix(nullptr, DType::Q4_0, 48, 1), Error);
  // F32 weights whose row does not fit a Q8 block are fine (f32 activations)...
  const float w[7] = {1, 2, 3, 4, 5, 6, 7};
  matmul(active_kernels(), make_weight_matrix(w, DType::F32, 7, 1), x, 1, y, 1, 1, scratch);
  EXPECT_FLOAT_EQ(y[0], 0.0f);
  // ...but a type with no dot kernel is an error that names it.
  try {
    matmul(active_kernels(), WeightMatrix{x, DType::IQ2_XXS, 256, 1, 66}, x, 1, y, 1, 1, scratch);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace slm::kernels
