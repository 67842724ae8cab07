// Writer round trips: whatever the writer writes, the reader gives back.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "gguf/gguf_fixtures.h"
#include "gguf/gguf_reader.h"
#include "slm/error.h"
#include "support/testdata.h"

namespace slm::gguf {
namespace {

TEST(GgufWriter, EveryMetadataTypeRoundTrips) {
  GgufWriter w;
  test::add_every_metadata_type(w);
  const auto data = test::add_tensors(w);
  const std::string path = slm::test::temp_path("every_type.gguf");
  w.write(path);

  const GgufFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  // Same keys, same order, same values (bitwise, NaN included).
  GgufWriter expected;
  test::add_every_metadata_type(expected);
  ASSERT_EQ(f.metadata().size(), 31u);
  for (const KeyValue& kv : f.metadata()) {
    const Value* v = expected.find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_TRUE(*v == kv.value) << kv.key;
  }
  EXPECT_EQ(f.get_int("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.find("t.u64")->to_uint(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.find("t.u64")->to_int(), std::nullopt);  // does not fit int64
  EXPECT_EQ(*f.find("t.string_nul")->to_string(), std::string("a\0b", 3));
  EXPECT_EQ(f.find("t.arr_i64")->to_vector<int64_t>()->at(0), std::numeric_limits<int64_t>::min() + 1);
  EXPECT_EQ(f.find("t.arr_bool")->to_vector<int>(), (std::vector<int>{1, 0, 1}));
  const Value& nested = *f.find("t.arr_nested");
  ASSERT_EQ(nested.items().size(), 4u);
  EXPECT_EQ(nested.items()[1].strings(), (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(nested.items()[2].items()[0].to_vector<int>(), (std::vector<int>{9}));

  ASSERT_EQ(f.tensors().size(), data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    const TensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.n_bytes, data[i].size()) << t.name;
    EXPECT_EQ(t.file_offset % 32, 0u) << t.name;
    EXPECT_EQ(0, std::memcmp(f.tensor_data(t), data[i].data(), data[i].size())) << t.name;
  }
  EXPECT_EQ(f.tensors()[4].ne, (std::vector<int64_t>{3, 2, 2, 2}));
}

TEST(GgufWriter, HonoursGeneralAlignment) {
  for (uint32_t align : {1u, 8u, 64u, 4096u}) {
    GgufWriter w;
    w.set("general.alignment", Value::scalar(align));
    const auto data = test::add_tensors(w);
    const std::string path = slm::test::temp_path("align.gguf");
    w.write(path);
    const GgufFile f(path);
    EXPECT_EQ(f.alignment(), align);
    EXPECT_EQ(f.data_offset() % align, 0u);
    for (size_t i = 0; i < data.size(); ++i) {
      EXPECT_EQ(f.tensors()[i].offset % align, 0u);
      EXPECT_EQ(0, std::memcmp(f.tensor_data(f.tensors()[i]), data[i].data(), data[i].size()));
    }
  }
  GgufWriter w;
  EXPECT_THROW(w.set("general.alignment", Value::scalar(uint32_t{24})), Error);
  EXPECT_THROW(w.set("general.alignment", Value::scalar(uint64_t{32})), Error);
}

// Empty tensors share their offset with the next tensor; the reader must not
// call that an overlap, whatever order it sorts them in.
TEST(GgufWriter, ZeroSizedTensorsRoundTrip) {
  GgufWriter w;
  for (int i = 0; i < 40; ++i) {
    if (i % 3 == 0) {
      w.add_tensor("empty." + std::to_string(i), DType::F32, {0, 4}, std::vector<uint8_t>{});
    } else {
      w.add_tensor("full." + std::to_string(i), DType::F32, {8}, test::random_bytes(32, i));
    }
  }
  const std::string path = slm::test::temp_path("zero_sized.gguf");
  w.write(path);
  const GgufFile f(path);
  ASSERT_EQ(f.tensors().size(), 40u);
  EXPECT_EQ(f.find_tensor("empty.3")->n_bytes, 0u);
  EXPECT_EQ(f.find_tensor("empty.3")->n_rows(), 0);
}

TEST(GgufWriter, RejectsInconsistentTensors) {
  GgufWriter w;
  std::vector<uint8_t> bytes(18);
  EXPECT_THROW(w.add_tensor("a", DType::Q4_0, {31}, bytes), Error);        // not a block multiple
  EXPECT_THROW(w.add_tensor("a", DType::Q4_0, {64}, bytes), Error);        // 36 bytes needed
  EXPECT_THROW(w.add_tensor("a", DType::F32, {1, 1, 1, 1, 1}, bytes), Error);  // 5 dims
  w.add_tensor("a", DType::Q4_0, {32}, bytes);
  EXPECT_THROW(w.add_tensor("a", DType::Q4_0, {32}, bytes), Error);        // duplicate
  EXPECT_THROW(w.set("k", Value::array_of_arrays({Value::scalar(1.0f)})), Error);
  EXPECT_THROW(w.add_tensor("big", DType::F32, {int64_t{1} << 40, int64_t{1} << 40}, nullptr, 0), Error);
}

TEST(GgufWriter, FailedWriteLeavesNoFile) {
  GgufWriter w;
  test::add_tensors(w);
  EXPECT_THROW(w.write("/nonexistent-dir/out.gguf"), Error);
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Tensors produced by a fill callback at write time read back exactly, in
// place among ordinary ones.
TEST(GgufWriter, FilledTensorsRoundTrip) {
  GgufWriter w;
  const auto before = test::random_bytes(4 * 40, 1);
  w.add_tensor("before", DType::F32, {40}, before);
  w.add_tensor("filled", DType::Q8_0, {64, 3}, 3 * 2 * 34, [](uint8_t* dst) {
    for (size_t i = 0; i < 3 * 2 * 34; ++i) dst[i] = static_cast<uint8_t>(i * 7 + 1);
  });
  const auto after = test::random_bytes(2 * 10, 2);
  w.add_tensor("after", DType::F16, {10}, after);
  const std::string path = slm::test::temp_path("filled.gguf");
  w.write(path);
  const GgufFile f(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorInfo* t = f.find_tensor("filled");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, DType::Q8_0);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{64, 3}));
  ASSERT_EQ(t->n_bytes, 3u * 2 * 34);
  for (size_t i = 0; i < t->n_bytes; ++i) ASSERT_EQ(f.tensor_data(*t)[i], static_cast<uint8_t>(i * 7 + 1)) << i;
  EXPECT_EQ(0, std::memcmp(f.tensor_data(*f.find_tensor("before")), before.data(), before.size()));
  EXPECT_EQ(0, std::memcmp(f.tensor_data(*f.find_tensor("after")), after.data(), after.size()));
}

// An error part-way through (a fill callback that throws) leaves neither the
// output nor its temporary file; an older file at the path is untouched.
TEST(GgufWriter, FailurePartWayLeavesNeitherOutputNorTemporary) {
  GgufWriter w;
  w.add_tensor("ok", DType::F32, {1024}, test::random_bytes(4096, 3));
  w.add_tensor("fails", DType::F32, {1024}, 4096, [](uint8_t*) { throw Error("conversion failed"); });
  const std::string path = slm::test::temp_path("partway.gguf");
  try {
    w.write(path);
    FAIL() << "expected the callback's error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "conversion failed");
  }
  EXPECT_FALSE(exists(path));
  EXPECT_FALSE(exists(path + ".tmp"));
  const std::vector<uint8_t> old = {1, 2, 3};
  slm::test::write_file(path, old);
  EXPECT_THROW(w.write(path), Error);
  EXPECT_EQ(slm::test::read_file(path), old);
  EXPECT_FALSE(exists(path + ".tmp"));
}

// A full disk, simulated with RLIMIT_FSIZE in a child process (SIGXFSZ
// ignored, so write() fails with EFBIG): an error naming the file, and no
// file left behind.
TEST(GgufWriter, FullDiskIsAnErrorAndLeavesNoFile) {
  const std::string path = slm::test::temp_path("full_disk.gguf");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const struct rlimit limit = {64 << 10, 64 << 10};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    GgufWriter w;
    for (int i = 0; i < 8; ++i)
      w.add_tensor("t" + std::to_string(i), DType::F32, {8192}, std::vector<uint8_t>(32768, static_cast<uint8_t>(i)));
    try {
      w.write(path);
    } catch (const Error& e) {
      const bool named = std::string(e.what()).find("full_disk.gguf") != std::string::npos;
      ::_exit(named ? 0 : 3);
    }
    ::_exit(2);  // no error: the limit did not bite
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: the write succeeded past the limit; 3: the error did not name the file";
  EXPECT_FALSE(exists(path));
  EXPECT_FALSE(exists(path + ".tmp"));
}

// Rewriting a reference file (all keys, all tensors) reproduces it byte for
// byte: the writer lays files out exactly as the reference writer does.
TEST(GgufWriter, RewritesReferenceFilesByteForByte) {
  SLM_REQUIRE_TESTDATA();
  for (const char* stem : {"phi3-tiny-q4_k_m", "gemma2-tiny", "llama-tiny-q4_0", "gemma-tiny-bf16"}) {
    SCOPED_TRACE(stem);
    const std::string in_path = slm::test::testdata_dir() + "/models/" + stem + ".gguf";
    const GgufFile in(in_path);
    GgufWriter w;
    for (const KeyValue& kv : in.metadata()) w.set(kv.key, kv.value);
    for (const TensorInfo& t : in.tensors()) w.add_tensor(t.name, t.type, t.ne, in.tensor_data(t), t.n_bytes);
    const std::string out_path = slm::test::temp_path(std::string(stem) + ".gguf");
    w.write(out_path);
    EXPECT_TRUE(slm::test::read_file(out_path) == slm::test::read_file(in_path));
  }
}

}  // namespace
}  // namespace slm::gguf
