// `slm synth` writes files with the layout real converted models have: the
// tiny presets must match the reference files' tensor names, shapes and keys.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/fp16.h"
#include "gguf/gguf_reader.h"
#include "model/model.h"
#include "support/testdata.h"

namespace slm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

TEST(CliSynth, TinyPresetsHaveTheReferenceLayout) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(fs::path(test::testdata_dir()) / "manifest.json");
  const json manifest = json::parse(in);
  for (const std::string stem : {"phi3-tiny", "gemma-tiny"}) {
    SCOPED_TRACE(stem);
    const std::string out = test::temp_path(stem + "-synth.gguf");
    const auto r = test::run_command(test::slm_binary() + " synth --preset " + stem + " --type f32 " + out, true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const gguf::GgufFile f(out);
    const json& m = manifest.at(stem + ".gguf");
    ASSERT_EQ(f.tensors().size(), m.at("tensors").size());
    for (const json& t : m.at("tensors")) {
      const gguf::TensorInfo* info = f.find_tensor(t.at("name").get<std::string>());
      ASSERT_NE(info, nullptr) << t.at("name");
      EXPECT_EQ(info->ne, t.at("ne").get<std::vector<int64_t>>()) << info->name;
      EXPECT_EQ(dtype_name(info->type), "F32");
    }
    // Same keys, and the same values for the integer hyperparameters and
    // special-token ids.
    std::set<std::string> keys, expected;
    for (const auto& kv : f.metadata()) keys.insert(kv.key);
    for (const auto& [k, v] : m.at("kv").items()) expected.insert(k);
    EXPECT_EQ(keys, expected);
    for (const auto& [k, v] : m.at("kv").items()) {
      if (v.at("type") == "uint32" && k != "general.file_type" && f.has(k)) {
        EXPECT_EQ(f.get_int(k), v.at("value").get<int64_t>()) << k;
      }
    }
  }
}

// The Gemma 3 270M preset at full size: it loads, its layers follow the
// local/global pattern (globals at 5, 11, 17) with their RoPE tables, and
// it generates.
TEST(CliSynth, Gemma3PresetLoadsAndRuns) {
  const std::string out = test::temp_path("gemma3-270m.gguf");
  const auto r = test::run_command(test::slm_binary() + " synth --preset gemma3-270m --type q4_0 " + out, true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto m = model::Model::load(out);
  const model::HParams& hp = m->hparams();
  EXPECT_EQ(hp.n_layer, 18);
  EXPECT_EQ(hp.head_dim, 256);  // H·D = 1024 > E = 640
  ASSERT_EQ(hp.rope_tables.size(), 2u);
  EXPECT_EQ(hp.rope_tables[0].base, 1e6f);
  EXPECT_EQ(hp.rope_tables[1].base, 1e4f);
  for (int l = 0; l < 18; ++l) {
    const bool global = l % 6 == 5;
    EXPECT_EQ(hp.layers[static_cast<size_t>(l)].window, global ? 0 : 512) << "layer " << l;
    EXPECT_EQ(hp.layers[static_cast<size_t>(l)].rope_table, global ? 0 : 1) << "layer " << l;
  }
  const auto run = test::run_command(test::slm_binary() + " run -m " + out + " -p hello -n 4 --temp 0 --stats", true);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("generation: 4 tokens"), std::string::npos) << run.output;
  std::filesystem::remove(out);
}

// The 27B's rule, on a tiny stand-in: 62 layers scale queries by
// 1/sqrt(E/H) (no key stores it), any other count by 1/sqrt(D); linear RoPE
// scaling applies to the global table only.
TEST(CliSynth, Gemma3QueryScaleAndScalingFollowTheLayerCount) {
  const std::string dir = test::temp_path("g3presets");
  std::filesystem::create_directories(dir);
  for (int layers : {61, 62}) {
    std::ofstream(dir + "/g3-" + std::to_string(layers) + ".json")
        << R"({"name": "g3", "architecture": "gemma3", "context_length": 1024, "embedding_length": 64,
               "feed_forward_length": 64, "block_count": )"
        << layers << R"(, "head_count": 2, "head_count_kv": 1, "head_dim": 16, "layer_norm_rms_epsilon": 1e-06,
               "vocab_size": 300, "sliding_window": 8, "rope_freq_base": 1000000.0, "rope_scaling_factor": 8.0})";
    const std::string out = test::temp_path("g3-" + std::to_string(layers) + ".gguf");
    const auto r = test::run_command(test::slm_binary() + " synth --presets-dir " + dir + " --preset g3-" +
                                         std::to_string(layers) + " --type f32 " + out, true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto m = model::Model::load(out);
    const model::HParams& hp = m->hparams();
    EXPECT_FLOAT_EQ(hp.query_scale, 1.0f / std::sqrt(layers == 62 ? 32.0f : 16.0f)) << layers << " layers";
    ASSERT_EQ(hp.rope_tables.size(), 2u);
    EXPECT_EQ(hp.rope_tables[0].linear_factor, 8.0f);  // global
    EXPECT_EQ(hp.rope_tables[1].linear_factor, 1.0f);  // local: never scaled
  }
}

TEST(CliSynth, F16WeightsAreFiniteAndScaled) {
  const std::string out = test::temp_path("gemma-f16.gguf");
  const auto r = test::run_command(test::slm_binary() + " synth --preset gemma-tiny --type f16 " + out, true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const gguf::GgufFile f(out);
  const gguf::TensorInfo* t = f.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, DType::F16);
  // Uniform weights with std 1/sqrt(fan-in = ne[0]).
  double sum_sq = 0.0;
  const uint8_t* data = f.tensor_data(*t);
  for (uint64_t i = 0; i < t->n_elements; ++i) {
    uint16_t h;
    std::memcpy(&h, data + 2 * i, 2);
    const float x = f16_to_f32(h);
    ASSERT_TRUE(std::isfinite(x));
    sum_sq += double(x) * x;
  }
  const double std_dev = std::sqrt(sum_sq / t->n_elements);
  EXPECT_NEAR(std_dev, 1.0 / std::sqrt(double(t->ne[0])), 0.05 / std::sqrt(double(t->ne[0])));
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->type, DType::F32);
  EXPECT_EQ(f.get_u32("general.file_type"), 1u);
}

TEST(CliSynth, UnknownPresetAndTypeAreErrors) {
  const std::string out = test::temp_path("never.gguf");
  auto r = test::run_command(test::slm_binary() + " synth --preset no-such-model " + out, true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;
  r = test::run_command(test::slm_binary() + " synth --preset phi3-tiny --type q9_9 " + out, true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("q9_9"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(CliSynth, ListsPresets) {
  const auto r = test::run_command(test::slm_binary() + " synth --list");
  ASSERT_EQ(r.exit_code, 0);
  for (const char* name : {"phi3-mini-4k", "phi3-mini-128k", "phi3-medium-4k", "gemma-2b", "gemma-7b", "gemma2-2b",
                           "gemma2-9b", "llama-3.2-1b"}) {
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
  }
  // phi3-tiny's line: its parameter count and F16 / Q8_0 weight sizes, as
  // the files synth writes hold them.
  const size_t at = r.output.find("\nphi3-tiny ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string line = r.output.substr(at + 1, r.output.find('\n', at + 1) - at - 1);
  for (const std::string type : {"f16", "q8_0"}) {
    const std::string out = test::temp_path("list-" + type + ".gguf");
    ASSERT_EQ(test::run_command(test::slm_binary() + " synth --preset phi3-tiny --type " + type + " " + out).exit_code, 0);
    const gguf::GgufFile f(out);
    uint64_t params = 0, bytes = 0;
    for (const auto& t : f.tensors()) {
      uint64_t n = 1;
      for (int64_t d : t.ne) n *= static_cast<uint64_t>(d);
      params += n;
      bytes += t.n_bytes;
    }
    EXPECT_NE(line.find(fmt::format(" {:.2f} M ", static_cast<double>(params) / 1e6)), std::string::npos) << line;
    EXPECT_NE(line.find(fmt::format(" {:.2f} MiB", static_cast<double>(bytes) / (1 << 20))), std::string::npos)
        << type << ": " << line;
  }
}

}  // namespace
}  // namespace slm
