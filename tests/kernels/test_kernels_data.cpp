// Kernels on the reference data: the dequantizer bit for bit against an
// independent one (dequant.json), and every weight tensor of every testdata
// model — quantized by the reference engine's quantizer, not ours — through
// every ISA's matmul against float64 math on the dequantized weights.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "cpu/matmul.h"
#include "cpu/ref/ref.h"
#include "gguf/gguf_reader.h"
#include "kernel_test_util.h"
#include "support/testdata.h"

namespace slm::kernels {
namespace {

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

TEST(KernelData, DequantizerIsBitExactAgainstIndependentOne) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(test::testdata_dir() + "/dequant.json");
  ASSERT_TRUE(in) << "dequant.json missing";
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j.size(), test::expected::kDequantEntries);
  std::set<std::string> types_seen;
  for (const auto& [key, entry] : j.items()) {
    const auto type = dtype_from_name(entry.at("type").get<std::string>());
    ASSERT_TRUE(type) << key;
    const int64_t ne0 = entry.at("ne0"), rows = entry.at("rows");
    const auto raw = from_hex(entry.at("raw_hex"));
    ASSERT_EQ(raw.size(), row_bytes(*type, ne0) * rows) << key;
    const auto want = entry.at("values").get<std::vector<float>>();
    std::vector<float> got(static_cast<size_t>(ne0 * rows));
    for (int64_t r = 0; r < rows; ++r)
      ref::dequantize_row(*type, raw.data() + r * row_bytes(*type, ne0), got.data() + r * ne0, ne0);
    ASSERT_EQ(got.size(), want.size()) << key;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << key << " element " << i;  // bit for bit
    types_seen.insert(entry.at("type").get<std::string>());
  }
  // Every format the issue names is covered by the file.
  for (const char* t : {"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"})
    EXPECT_TRUE(types_seen.count(t)) << t << " not in dequant.json";
}

// The quantizers against the reference engine's: each dequant.json entry
// whose type slm writes holds the first rows of a tensor the reference
// quantizer wrote from the F32 model of the same name (phi3-tiny-q3_k_s ->
// phi3-tiny.gguf); quantizing those F32 rows must give the same bytes.
TEST(KernelData, QuantizersWriteTheReferenceQuantizersBytes) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(test::testdata_dir() + "/dequant.json");
  ASSERT_TRUE(in) << "dequant.json missing";
  const auto j = nlohmann::json::parse(in);
  std::set<std::string> types_checked;
  for (const auto& [key, entry] : j.items()) {
    const auto type = dtype_from_name(entry.at("type").get<std::string>());
    ASSERT_TRUE(type) << key;
    if (!traits(*type).is_quantized || !can_quantize(*type)) continue;
    // "<model>-<file type>:<tensor>" -> models/<model>.gguf, tensor.
    const std::string stem = key.substr(0, key.find(':')), tensor = key.substr(key.find(':') + 1);
    const std::string source = test::testdata_dir() + "/models/" + stem.substr(0, stem.rfind('-')) + ".gguf";
    gguf::GgufFile f32_model(source);
    const gguf::TensorInfo* t = f32_model.find_tensor(tensor);
    ASSERT_NE(t, nullptr) << source << " has no " << tensor;
    ASSERT_EQ(t->type, DType::F32) << source;
    const int64_t ne0 = entry.at("ne0"), rows = entry.at("rows");
    ASSERT_EQ(t->ne[0], ne0) << key;
    const auto want = from_hex(entry.at("raw_hex"));
    std::vector<uint8_t> got(want.size());
    const size_t row = row_bytes(*type, ne0);
    const auto* x = reinterpret_cast<const float*>(f32_model.tensor_data(*t));
    for (int64_t r = 0; r < rows; ++r) quantize_row(*type, x + r * ne0, got.data() + r * row, ne0);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(static_cast<int>(got[i]), static_cast<int>(want[i])) << key << " byte " << i << " of " << got.size();
    types_checked.insert(entry.at("type").get<std::string>());
  }
  for (const char* t : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"})
    EXPECT_TRUE(types_checked.count(t)) << t << " was not checked";
}

TEST(KernelData, EveryTestdataTensorThroughEveryPath) {
  SLM_REQUIRE_TESTDATA();
  const auto files = test::model_files();
  ASSERT_EQ(files.size(), test::expected::kModelFiles);
  size_t checked = 0;
  for (const std::string& path : files) {
    gguf::GgufFile file(path);
    for (const gguf::TensorInfo& t : file.tensors()) {
      const int64_t cols = t.ne[0], rows = static_cast<int64_t>(t.n_rows());
      ASSERT_TRUE(can_dequantize(t.type)) << path << " " << t.name << " " << dtype_name(t.type);
      const uint8_t* data = file.tensor_data(t);
      const auto wf = testing::dequantize(t.type, data, rows, cols);
      for (float v : wf) ASSERT_TRUE(std::isfinite(v)) << path << " " << t.name;
      if (t.ne.size() < 2) continue;  // norms: read, never multiplied
      // At most 64 rows per tensor keeps the test quick; the embedding
      // tables have 512 and are sampled from the start.
      const int64_t use_rows = std::min<int64_t>(rows, 64);
      const WeightMatrix m = make_weight_matrix(data, t.type, cols, use_rows);
      const int64_t n_tok = 3;
      const auto x = testing::gaussian(static_cast<size_t>(n_tok * cols), 17);
      for (Isa isa : available_isas()) {
        const KernelTable& k = kernel_table(isa);
        const bool f32_acts = k.types[static_cast<int>(t.type)].act == ActFormat::f32;
        const int64_t ab = act_block_size(k.types[static_cast<int>(t.type)].act);
        std::vector<float> y(static_cast<size_t>(n_tok * use_rows));
        std::vector<uint8_t> scratch;
        matmul(k, m, x.data(), n_tok, y.data(), use_rows, 2, scratch);
        for (int64_t tok = 0; tok < n_tok; ++tok) {
          for (int64_t r = 0; r < use_rows; ++r) {
            double exact = 0, abs_sum = 0, quant_err = 0;
            for (int64_t b0 = 0; b0 < cols; b0 += ab) {
              double amax = 0, wsum = 0;
              for (int64_t i = b0; i < b0 + ab; ++i) {
                const double w = wf[static_cast<size_t>(r * cols + i)], xv = x[static_cast<size_t>(tok * cols + i)];
                exact += w * xv;
                abs_sum += std::fabs(w * xv);
                amax = std::max(amax, std::fabs(xv));
                wsum += std::fabs(w);
              }
              if (!f32_acts) quant_err += amax / 254.0 * 1.001 * wsum;
            }
            ASSERT_NEAR(y[static_cast<size_t>(tok * use_rows + r)], exact, quant_err + 1e-5 * abs_sum + 1e-6)
                << path << " " << t.name << " (" << dtype_name(t.type) << ") on " << isa_name(isa) << " row " << r;
          }
        }
      }
      ++checked;
    }
  }
  RecordProperty("matrices_checked", std::to_string(checked));
  EXPECT_GT(checked, 100u);
}

}  // namespace
}  // namespace slm::kernels
