#include "cpu/matmul.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "cpu/blocks.h"
#include "cpu/parallel.h"
#include "slm/error.h"

namespace slm::kernels {

WeightMatrix make_weight_matrix(const void* data, DType type, int64_t cols, int64_t rows) {
  const DTypeTraits& t = traits(type);
  if (cols % t.block_size != 0)
    throw Error("matmul: row length " + std::to_string(cols) + " is not a multiple of the " +
                std::string(t.name) + " block (" + std::to_string(t.block_size) + ")");
  return WeightMatrix{data, type, cols, rows, static_cast<size_t>(row_bytes(type, static_cast<uint64_t>(cols)))};
}

namespace {

// `bytes` of `buffer` starting on an `align` boundary (the buffer grows to
// hold them; it keeps its size between calls, so reuse allocates nothing).
uint8_t* aligned_bytes(std::vector<uint8_t>& buffer, size_t bytes, size_t align) {
  if (buffer.size() < bytes + align) buffer.resize(bytes + align);
  const auto base = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + (align - base % align) % align;
}

const TypeKernels& type_kernels(const KernelTable& k, DType type) {
  const auto id = static_cast<size_t>(type);
  if (id >= sizeof(k.types) / sizeof(k.types[0]) || !k.types[id].dot)
    throw Error("matmul: tensor type " + std::string(dtype_name(type)) + " is not supported as a weight");
  return k.types[id];
}

size_t activation_chunk_bytes() {
  // Half the core's L2 (the rest holds the weights in flight: a K-quant
  // expansion of 16 rows is 5.6 KiB per 256 columns), between 256 KiB and
  // 512 KiB; 256 KiB where the system does not say (a 512 KiB L2). On Zen 4
  // (1 MiB) 512 KiB halves the expansions per token against 256 KiB:
  // GemmPacked512 Q5_K +7 %.
  static const size_t bytes = [] {
#if defined(_SC_LEVEL2_CACHE_SIZE)  // glibc
    const long l2 = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
#else
    const long l2 = 0;
#endif
    return l2 > 0 ? std::clamp<size_t>(static_cast<size_t>(l2) / 2, 256 << 10, 512 << 10) : size_t{256} << 10;
  }();
  return bytes;
}

// Asks the kernel to back the whole 2 MiB pages inside [p, p + bytes) with
// huge pages (before anything is written there: pages are placed at first
// touch). Decode streams every packed weight once per token; with 4 KiB
// pages that is a TLB miss every 4 KiB, which the hardware prefetchers do
// not cross. Advice only: where it is refused nothing changes (with THP's
// default defrag=madvise the first touch may compact memory: a slower load,
// not a different result).
void request_huge_pages(void* p, size_t bytes) {
#if defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge;
  const auto end = (reinterpret_cast<uintptr_t>(p) + bytes) / kHuge * kHuge;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace

bool can_pack(const KernelTable& k, DType type, int64_t rows) {
  return rows >= kInterleave && can_interleave(type) && k.types[static_cast<size_t>(type)].dot_x8 != nullptr;
}

WeightMatrix pack_weight_matrix(const KernelTable& k, const WeightMatrix& w, std::unique_ptr<uint8_t[]>& storage,
                                int n_threads) {
  if (!can_pack(k, w.type, w.rows)) return w;
  WeightMatrix out = w;
  out.packed_rows = w.rows / kInterleave * kInterleave;
  const size_t group = x8_group_bytes(w.type, w.cols), plain = kInterleave * w.row_bytes;
  const size_t bytes = static_cast<size_t>(out.packed_rows / kInterleave) * group;
  storage.reset(new uint8_t[bytes]);
  uint8_t* dst = storage.get();
  request_huge_pages(dst, bytes);
  const auto* src = static_cast<const uint8_t*>(w.data);
  parallel_for(out.packed_rows / kInterleave, n_threads, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      pack_rows_x8(w.type, src + static_cast<size_t>(g) * plain, w.row_bytes, w.cols, dst + static_cast<size_t>(g) * group);
  });
  out.packed = storage.get();
  out.packed_for = k.isa;
  return out;
}

size_t activation_row_bytes(const KernelTable& k, DType type, int64_t cols) {
  const TypeKernels& tk = type_kernels(k, type);
  if (cols % act_block_size(tk.act) != 0)
    throw Error("matmul: row length " + std::to_string(cols) + " of a " + std::string(dtype_name(type)) +
                " matrix does not fit the " + std::string(act_format_name(tk.act)) + " activation block (" +
                std::to_string(act_block_size(tk.act)) + ")");
  return act_row_bytes(tk.act, cols);
}

void convert_activations(const KernelTable& k, DType type, const float* x, int64_t cols, int64_t t0, int64_t t1,
                         void* acts) {
  const TypeKernels& tk = type_kernels(k, type);
  const size_t bytes = activation_row_bytes(k, type, cols);
  for (int64_t t = t0; t < t1; ++t) {
    void* dst = static_cast<uint8_t*>(acts) + static_cast<size_t>(t) * bytes;
    if (tk.quantize_act)
      tk.quantize_act(x + t * cols, dst, cols);
    else
      std::memcpy(dst, x + t * cols, bytes);
  }
}

int64_t matmul_token_chunk(size_t act_row_bytes) {
  // Token chunks whose activations stay in L2 while every weight row of the
  // range streams past them; within a chunk a weight row (a few KB, in L1)
  // or an expanded run serves the chunk's tiles of kMaxDotCols tokens.
  return std::max<int64_t>(kMaxDotCols, static_cast<int64_t>(activation_chunk_bytes() / act_row_bytes) / kMaxDotCols * kMaxDotCols);
}

void matmul_rows(const KernelTable& k, const WeightMatrix& w, const void* acts, int64_t n_tokens, float* y,
                 int64_t ldy, int64_t r0, int64_t r1) {
  const TypeKernels& tk = type_kernels(k, w.type);
  const size_t act_bytes = activation_row_bytes(k, w.type, w.cols);
  const int64_t chunk = matmul_token_chunk(act_bytes);
  const auto* a = static_cast<const uint8_t*>(acts);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  float out[kMaxDotCols];
  // Prefill with a two-row kernel: each activation block is loaded once for
  // a pair of weight rows (decode keeps the one-row GEMV).
  const bool pairs = tk.dot2 != nullptr && n_tokens > 1;
  float out2[2 * kMaxDotCols];
  // Packed rows: whole groups of 8 through the interleaved kernel; a range
  // that starts or ends inside a group unpacks those rows one at a time.
  const int64_t packed_end = w.packed ? std::min(r1, w.packed_rows) : r0;
  if (w.packed && !tk.dot_x8)
    throw Error("matmul: weights re-laid for the " + std::string(isa_name(w.packed_for)) + " path cannot be read by the " +
                std::string(isa_name(k.isa)) + " path");
  const auto* packed = static_cast<const uint8_t*>(w.packed);
  const size_t group = w.packed ? x8_group_bytes(w.type, w.cols) : 0;
  float out8[kMaxExpandedRows * kMaxDotCols];
  std::vector<uint8_t> unpacked;
  // Chunks of more than one tile expand each run of tk.expanded_rows rows
  // (one or two groups, ExpandedK) once for all their tiles, where the path
  // can; a group left over from such a run takes dot_x8.
  const bool can_expand = w.packed && tk.expand_run && tk.dot_expanded;
  const int expanded_rows = can_expand ? tk.expanded_rows : kInterleave;
  uint8_t* expanded = nullptr;
  if (can_expand && n_tokens > kMaxDotCols) {
    thread_local std::vector<uint8_t> expand_buffer;
    const size_t bytes = static_cast<size_t>(w.cols / kQK_K) * (expanded_rows == 16 ? sizeof(ExpandedKx16) : sizeof(ExpandedKx8));
    expanded = aligned_bytes(expand_buffer, bytes, alignof(ExpandedKx16));
  }
  for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
    const int64_t t1 = std::min(n_tokens, t0 + chunk);
    const bool expand_chunk = expanded != nullptr && t1 - t0 > kMaxDotCols;
    int64_t r = r0;
    while (r < packed_end) {
      const uint8_t* g = packed + static_cast<size_t>(r / kInterleave) * group;
      if (r % kInterleave == 0 && r + kInterleave <= packed_end) {
        const bool expand = expand_chunk && r % expanded_rows == 0 && r + expanded_rows <= packed_end;
        const int rows = expand ? expanded_rows : kInterleave;
        if (expand) tk.expand_run(w.cols, g, group, expanded);
        const DotX8Fn dot_group = expand ? tk.dot_expanded : tk.dot_x8;
        const uint8_t* weights = expand ? expanded : g;
        // The expansion reads its groups in one burst after the tiles of the
        // ones before: without help it waits on memory for most of it. Each
        // tile asks for its share of the next run's lines (into L2).
        const size_t run_bytes = group * static_cast<size_t>(rows / kInterleave);
        const bool prefetch_next = expand && r + 2 * rows <= packed_end;
        // From the cache line the next run starts in (the storage is not
        // line-aligned) to the one it ends in.
        const uint8_t* next = g + run_bytes - reinterpret_cast<uintptr_t>(g + run_bytes) % 64;
        const size_t next_bytes = static_cast<size_t>(g + 2 * run_bytes - next);
        const size_t share = (next_bytes / static_cast<size_t>((t1 - t0 + kMaxDotCols - 1) / kMaxDotCols) + 64) / 64 * 64;
        size_t prefetched = 0;
        for (int64_t t = t0; t < t1; t += kMaxDotCols) {
          const int nx = static_cast<int>(std::min<int64_t>(kMaxDotCols, t1 - t));
          for (size_t end = std::min(next_bytes, prefetched + share); prefetch_next && prefetched < end; prefetched += 64)
            __builtin_prefetch(next + prefetched, 0, 2);
          dot_group(w.cols, weights, a + static_cast<size_t>(t) * act_bytes, act_bytes, nx, out8);
          for (int c = 0; c < nx; ++c)
            for (int j = 0; j < rows; ++j) y[(t + c) * ldy + r + j] = out8[j * kMaxDotCols + c];
        }
        r += rows;
        continue;
      }
      unpacked.resize(w.row_bytes);
      unpack_row_x8(w.type, g, w.cols, static_cast<int>(r % kInterleave), unpacked.data());
      for (int64_t t = t0; t < t1; t += kMaxDotCols) {
        const int nx = static_cast<int>(std::min<int64_t>(kMaxDotCols, t1 - t));
        tk.dot(w.cols, unpacked.data(), a + static_cast<size_t>(t) * act_bytes, act_bytes, nx, out);
        for (int c = 0; c < nx; ++c) y[(t + c) * ldy + r] = out[c];
      }
      ++r;
    }
    for (; pairs && r + 2 <= r1; r += 2) {
      const uint8_t* row = wd + static_cast<size_t>(r) * w.row_bytes;
      for (int64_t t = t0; t < t1; t += kMaxDotCols) {
        const int nx = static_cast<int>(std::min<int64_t>(kMaxDotCols, t1 - t));
        tk.dot2(w.cols, row, w.row_bytes, a + static_cast<size_t>(t) * act_bytes, act_bytes, nx, out2);
        for (int c = 0; c < nx; ++c) {
          y[(t + c) * ldy + r] = out2[c];
          y[(t + c) * ldy + r + 1] = out2[kMaxDotCols + c];
        }
      }
    }
    for (; r < r1; ++r) {
      const uint8_t* row = wd + static_cast<size_t>(r) * w.row_bytes;
      for (int64_t t = t0; t < t1; t += kMaxDotCols) {
        const int nx = static_cast<int>(std::min<int64_t>(kMaxDotCols, t1 - t));
        tk.dot(w.cols, row, a + static_cast<size_t>(t) * act_bytes, act_bytes, nx, out);
        for (int c = 0; c < nx; ++c) y[(t + c) * ldy + r] = out[c];
      }
    }
  }
}

void matmul(const KernelTable& k, const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
            int n_threads, std::vector<uint8_t>& scratch) {
  const size_t act_bytes = activation_row_bytes(k, w.type, w.cols);
  // On a 64-byte boundary: the kernels' 32-byte activation loads then never
  // straddle two cache lines (f32 rows are multiples of 32 bytes).
  void* acts = aligned_bytes(scratch, act_bytes * static_cast<size_t>(n_tokens), 64);
  parallel_for(n_tokens, n_threads, [&](int64_t t0, int64_t t1) { convert_activations(k, w.type, x, w.cols, t0, t1, acts); });
  // Rows in multiples of 16 per thread: whole cache lines of y per thread.
  parallel_for(w.rows, n_threads, [&](int64_t r0, int64_t r1) { matmul_rows(k, w, acts, n_tokens, y, ldy, r0, r1); }, 16);
}

}  // namespace slm::kernels
