// Hostile input: truncated files, corrupted fields, absurd counts. Every case
// must end in an slm::Error naming the file and the problem — never a crash,
// a hang or a huge allocation (this suite also runs under ASan + UBSan).
#include <sys/stat.h>

#include <cstring>
#include <random>

#include <unistd.h>

#include <gtest/gtest.h>

#include "gguf/gguf_fixtures.h"
#include "gguf/gguf_reader.h"
#include "slm/error.h"
#include "support/testdata.h"

namespace slm::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes small_valid_file() {
  GgufWriter w;
  test::add_every_metadata_type(w);
  test::add_tensors(w);
  const std::string path = slm::test::temp_path("valid.gguf");
  w.write(path);
  return slm::test::read_file(path);
}

// Offset of the first occurrence of `needle` in `bytes` (the test fails if absent).
size_t find(const Bytes& bytes, const std::string& needle) {
  const auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end()) << needle;
  return static_cast<size_t>(it - bytes.begin());
}

template <class T>
void poke(Bytes& bytes, size_t offset, T value) {
  ASSERT_LE(offset + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Position just after a metadata key's string (where its value type id is).
size_t after_key(const Bytes& bytes, const std::string& key) { return find(bytes, key) + key.size(); }

// Loads `bytes` from a file and expects an slm::Error mentioning `expect`.
void expect_error(const Bytes& bytes, const std::string& expect, const std::string& name = "bad.gguf") {
  const std::string path = slm::test::temp_path(name);
  slm::test::write_file(path, bytes);
  try {
    GgufFile f(path);
    ADD_FAILURE() << "no error; expected one mentioning '" << expect << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << "message: " << msg;
  }
}

// Loads `bytes`; succeeding or throwing slm::Error are both fine.
bool loads_file(const std::string& path) {
  try {
    GgufFile f(path);
    for (const TensorInfo& t : f.tensors()) {
      // Touch the first and last byte of each tensor: must be inside the mapping.
      if (t.n_bytes > 0) {
        volatile uint8_t sink = f.tensor_data(t)[0] ^ f.tensor_data(t)[t.n_bytes - 1];
        (void)sink;
      }
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool loads(const Bytes& bytes) {
  const std::string path = slm::test::temp_path("fuzz.gguf");
  slm::test::write_file(path, bytes);
  return loads_file(path);
}

TEST(GgufMalformed, ValidFixtureLoads) { EXPECT_TRUE(loads(small_valid_file())); }

TEST(GgufMalformed, TruncationAtEveryByteIsAnError) {
  const Bytes full = small_valid_file();
  const std::string path = slm::test::temp_path("valid_full.gguf");
  slm::test::write_file(path, full);
  uint64_t data_end = 0;  // past here only trailing padding is cut
  {
    const GgufFile f(path);
    for (const TensorInfo& t : f.tensors()) data_end = std::max(data_end, t.file_offset + t.n_bytes);
  }
  ASSERT_GT(data_end, 0u);
  for (size_t n = 0; n < data_end; ++n) {
    const Bytes cut(full.begin(), full.begin() + n);
    ASSERT_FALSE(loads(cut)) << "truncated to " << n << " bytes but loaded";
  }
}

TEST(GgufMalformed, TruncatedReferenceFilesAreErrors) {
  SLM_REQUIRE_TESTDATA();
  for (const char* stem : {"phi3-tiny-q4_k_m", "gemma-tiny-q8_0"}) {
    const std::string path = slm::test::testdata_dir() + "/models/" + stem + ".gguf";
    const Bytes full = slm::test::read_file(path);
    uint64_t header_end = 0, data_end = 0;
    {
      const GgufFile f(path);
      header_end = f.data_offset();
      for (const TensorInfo& t : f.tensors()) data_end = std::max(data_end, t.file_offset + t.n_bytes);
    }
    // Every byte of the header, then a dense sample of the data section:
    // the file is written once and cut shorter and shorter in place.
    std::vector<size_t> lengths;
    for (size_t n = 0; n < data_end; n += (n < header_end ? 1 : 4999)) lengths.push_back(n);
    const std::string cut = slm::test::temp_path("truncated.gguf");
    slm::test::write_file(cut, full);
    for (auto n = lengths.rbegin(); n != lengths.rend(); ++n) {
      ASSERT_EQ(::truncate(cut.c_str(), static_cast<off_t>(*n)), 0);
      ASSERT_FALSE(loads_file(cut)) << stem << " truncated to " << *n;
    }
  }
}

TEST(GgufMalformed, EmptyFile) { expect_error({}, "empty"); }

TEST(GgufMalformed, Magic) {
  Bytes b = small_valid_file();
  b[0] = 'X';
  expect_error(b, "not a GGUF file");
  Bytes text(200, 'a');
  expect_error(text, "magic");
}

TEST(GgufMalformed, Version) {
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u, 0xFFFFFFFFu}) {
    Bytes b = small_valid_file();
    poke<uint32_t>(b, 4, v);
    expect_error(b, "version");
  }
  Bytes b = small_valid_file();
  poke<uint32_t>(b, 4, 0x03000000u);
  expect_error(b, "big-endian");
}

TEST(GgufMalformed, HugeCounts) {
  Bytes b = small_valid_file();
  poke<uint64_t>(b, 8, uint64_t{1} << 60);
  expect_error(b, "tensor count");
  b = small_valid_file();
  poke<uint64_t>(b, 16, uint64_t{1} << 60);
  expect_error(b, "metadata count");
  b = small_valid_file();
  poke<uint64_t>(b, 16, 1000);  // plausible count, but the file runs out
  expect_error(b, "offset");
}

TEST(GgufMalformed, StringLengths) {
  Bytes b = small_valid_file();
  poke<uint64_t>(b, 24, uint64_t{1} << 60);  // first key's length
  expect_error(b, "string length");
  b = small_valid_file();
  poke<uint64_t>(b, after_key(b, "t.string") + 4, ~uint64_t{0});
  expect_error(b, "string length");
  b = small_valid_file();
  // First element of the string array.
  poke<uint64_t>(b, after_key(b, "t.arr_string") + 4 + 4 + 8, uint64_t{1} << 62);
  expect_error(b, "'t.arr_string'[0]");
}

TEST(GgufMalformed, ValueTypeIds) {
  for (uint32_t id : {13u, 100u, 0xFFFFFFFFu}) {
    Bytes b = small_valid_file();
    poke<uint32_t>(b, after_key(b, "t.u8"), id);
    expect_error(b, "unknown value type id");
    b = small_valid_file();
    poke<uint32_t>(b, after_key(b, "t.arr_f32") + 4, id);  // element type
    expect_error(b, "unknown value type id");
  }
}

TEST(GgufMalformed, ArrayCounts) {
  for (uint64_t n : {uint64_t{1} << 60, ~uint64_t{0}, uint64_t{1} << 32}) {
    Bytes b = small_valid_file();
    poke<uint64_t>(b, after_key(b, "t.arr_f32") + 8, n);
    expect_error(b, "t.arr_f32");
    b = small_valid_file();
    poke<uint64_t>(b, after_key(b, "t.arr_nested") + 8, n);
    expect_error(b, "t.arr_nested");
  }
}

TEST(GgufMalformed, DeepNestingIsRefused) {
  Value v = Value::array(std::vector<int32_t>{1});
  for (int i = 0; i < kMaxArrayNesting + 1; ++i) v = Value::array_of_arrays({v});
  GgufWriter w;
  w.set("t.deep", v);
  const std::string path = slm::test::temp_path("deep_src.gguf");
  w.write(path);
  expect_error(slm::test::read_file(path), "nested deeper");
}

TEST(GgufMalformed, BoolByte) {
  Bytes b = small_valid_file();
  poke<uint8_t>(b, after_key(b, "t.bool_true") + 4, 2);
  expect_error(b, "bool");
}

TEST(GgufMalformed, DuplicateKey) {
  Bytes b = small_valid_file();
  // "t.bool_false" -> "t.bool_true_" would change the length; rename t.i16 -> t.u16 instead.
  const size_t at = find(b, "t.i16");
  b[at + 2] = 'u';
  expect_error(b, "duplicate key");
}

TEST(GgufMalformed, Alignment) {
  auto with_alignment = [](uint32_t align) {
    GgufWriter w;
    w.set("general.alignment", Value::scalar(uint32_t{64}));
    test::add_tensors(w);
    const std::string path = slm::test::temp_path("align_src.gguf");
    w.write(path);
    Bytes b = slm::test::read_file(path);
    poke<uint32_t>(b, after_key(b, "general.alignment") + 4, align);
    return b;
  };
  expect_error(with_alignment(0), "power of two");
  expect_error(with_alignment(48), "power of two");
  Bytes b = with_alignment(64);
  poke<uint32_t>(b, after_key(b, "general.alignment"), static_cast<uint32_t>(ValueType::I32));
  expect_error(b, "general.alignment");
}

// Tensor info fields: at name + name length: n_dims (u32), ne (u64 each), type (u32), offset (u64).
struct TensorField {
  size_t n_dims, ne0, type, offset;
};
TensorField tensor_fields(const Bytes& b, const std::string& name, uint32_t n_dims) {
  const size_t base = find(b, name) + name.size();
  return {base, base + 4, base + 4 + 8 * n_dims, base + 4 + 8 * n_dims + 4};
}

TEST(GgufMalformed, TensorTypeIds) {
  for (uint32_t id : {4u, 5u, 31u, 99u, 0xFFFFFFFFu}) {
    Bytes b = small_valid_file();
    poke<uint32_t>(b, tensor_fields(b, "blk.0.attn_q.weight", 2).type, id);
    expect_error(b, "unknown GGML type id");
  }
}

TEST(GgufMalformed, DimensionCounts) {
  for (uint32_t n : {0u, 5u, 0xFFFFFFFFu}) {
    Bytes b = small_valid_file();
    poke<uint32_t>(b, tensor_fields(b, "blk.0.attn_q.weight", 2).n_dims, n);
    expect_error(b, "dimensions");
  }
}

TEST(GgufMalformed, ShapeOverflowAndBlockMultiples) {
  Bytes b = small_valid_file();
  TensorField f = tensor_fields(b, "blk.0.attn_q.weight", 2);
  poke<uint64_t>(b, f.ne0, uint64_t{1} << 40);
  poke<uint64_t>(b, f.ne0 + 8, uint64_t{1} << 40);
  expect_error(b, "overflow");
  b = small_valid_file();
  poke<uint64_t>(b, f.ne0, ~uint64_t{0});
  expect_error(b, "overflow");
  b = small_valid_file();
  poke<uint64_t>(b, f.ne0, uint64_t{1} << 60);  // fits, but far larger than the file
  expect_error(b, "outside");
  b = small_valid_file();
  poke<uint64_t>(b, f.ne0, 48);  // Q4_0 rows are whole 32-element blocks
  expect_error(b, "block size");
}

TEST(GgufMalformed, TensorOffsets) {
  Bytes b = small_valid_file();
  const TensorField q = tensor_fields(b, "blk.0.attn_q.weight", 2);
  uint64_t orig;
  std::memcpy(&orig, b.data() + q.offset, 8);
  poke<uint64_t>(b, q.offset, orig + 1);
  expect_error(b, "alignment");
  b = small_valid_file();
  poke<uint64_t>(b, q.offset, uint64_t{1} << 62);
  expect_error(b, "outside");
  b = small_valid_file();
  poke<uint64_t>(b, q.offset, ~uint64_t{0} - 31);  // aligned, and offset + size wraps around
  expect_error(b, "outside");
  b = small_valid_file();
  poke<uint64_t>(b, q.offset, 0);  // same bytes as token_embd.weight
  expect_error(b, "overlaps");
}

TEST(GgufMalformed, DuplicateTensorName) {
  GgufWriter w;
  w.add_tensor("aaaa", DType::F32, {8}, std::vector<uint8_t>(32));
  w.add_tensor("aaab", DType::F32, {8}, std::vector<uint8_t>(32));
  const std::string path = slm::test::temp_path("dup_src.gguf");
  w.write(path);
  Bytes b = slm::test::read_file(path);
  b[find(b, "aaab") + 3] = 'a';
  expect_error(b, "duplicate tensor name");
}

TEST(GgufMalformed, ZeroDimDoesNotHideOverflow) {
  GgufWriter w;
  w.add_tensor("e", DType::F32, {32, 0, 4, 4}, std::vector<uint8_t>{});
  const std::string path = slm::test::temp_path("zero_src.gguf");
  w.write(path);
  Bytes b = slm::test::read_file(path);
  const TensorField f = tensor_fields(b, "e", 4);
  poke<uint64_t>(b, f.ne0 + 16, uint64_t{1} << 62);
  poke<uint64_t>(b, f.ne0 + 24, uint64_t{1} << 62);
  expect_error(b, "overflow");
}

// A long key followed by a huge array of empty strings: per-element work
// must not depend on the key length (this was quadratic once).
TEST(GgufMalformed, LongKeyWithManyElementsLoadsPromptly) {
  GgufWriter w;
  w.set(std::string(200000, 'k'), Value::string_array(std::vector<std::string>(300000)));
  const std::string path = slm::test::temp_path("long_key.gguf");
  w.write(path);
  const GgufFile f(path);
  EXPECT_EQ(f.metadata()[0].value.size(), 300000u);
}

TEST(GgufMalformed, FifoIsRefusedWithoutBlocking) {
  const std::string path = slm::test::temp_path("fifo.gguf");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_THROW(GgufFile f(path), Error);
}

// Random corruption: flip bytes, overwrite with extreme values. Any outcome
// but a crash (or a sanitizer report) is acceptable.
TEST(GgufMalformed, RandomCorruptionNeverCrashes) {
  const Bytes valid = small_valid_file();
  std::mt19937 rng(1234);
  int rejected = 0;
  const int kIterations = 3000;
  for (int i = 0; i < kIterations; ++i) {
    Bytes b = valid;
    const int n_edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < n_edits; ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: b[at] = static_cast<uint8_t>(rng()); break;
        default:
          if (at + 8 <= b.size()) {
            const uint64_t extremes[] = {0, 1, ~uint64_t{0}, uint64_t{1} << 63, uint64_t{1} << 31, 0xFFFFFFFF};
            poke<uint64_t>(b, at, extremes[rng() % 6]);
          }
      }
    }
    rejected += loads(b) ? 0 : 1;
  }
  // Most random edits land in the header and must be caught.
  EXPECT_GT(rejected, kIterations / 10);
}

}  // namespace
}  // namespace slm::gguf
