// `slm quantize`, `slm perplexity` and `slm bench -o json` as a user runs them.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf_reader.h"
#include "model/forward.h"
#include "slm/slm.h"
#include "support/testdata.h"

namespace slm {
namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

struct Ref {
  std::vector<int32_t> tokens;
  std::vector<std::vector<double>> logits;
};

Ref load_ref(const std::string& stem) {
  std::ifstream in(test::testdata_dir() + "/reference/" + stem + ".public.json");
  const auto j = nlohmann::json::parse(in);
  return {j.at("tokens").get<std::vector<int32_t>>(), j.at("logits_f64").get<std::vector<std::vector<double>>>()};
}

// Relative RMS error of a model's logits against the F32 model's float64 ones.
double error_vs_f32(const std::string& path, const Ref& f32) {
  const auto m = model::Model::load(path);
  model::ContextParams p;
  p.n_ctx = 512;
  model::Context ctx(*m, p);
  std::vector<float> logits;
  ctx.evaluate(f32.tokens.data(), static_cast<int64_t>(f32.tokens.size()), true, logits);
  double err = 0, sum = 0, sum2 = 0, n = 0;
  for (size_t t = 0; t < f32.logits.size(); ++t)
    for (size_t v = 0; v < f32.logits[t].size(); ++v) {
      const double r = f32.logits[t][v], e = logits[t * f32.logits[t].size() + v] - r;
      err += e * e, sum += r, sum2 += r * r, ++n;
    }
  return std::sqrt(err / n) / std::sqrt(sum2 / n - (sum / n) * (sum / n));
}

std::map<std::string, DType> tensor_types(const std::string& path) {
  const gguf::GgufFile f(path);
  std::map<std::string, DType> out;
  for (const auto& t : f.tensors()) out[t.name] = t.type;
  return out;
}

TEST(CliQuantize, EveryF32ModelToEveryTypeAgainstTheReferenceQuantizer) {
  SLM_REQUIRE_TESTDATA();
  const std::string dir = test::testdata_dir() + "/models/";
  for (const std::string stem : {"phi3-tiny", "gemma-tiny", "gemma2-tiny", "llama-tiny"}) {
    const Ref f32 = load_ref(stem);
    std::map<std::string, double> errors;
    for (const std::string type : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k_m", "q5_k_m", "q6_k", "f16", "bf16", "f32"}) {
      SCOPED_TRACE(stem + " -> " + type);
      const std::string out = test::temp_path(stem + "-" + type + ".gguf");
      const auto r = test::run_command(test::slm_binary() + " quantize " + q(dir + stem + ".gguf") + " " + q(out) + " " + type + " 2>&1");
      ASSERT_EQ(r.exit_code, 0) << r.output;
      const double mine = error_vs_f32(out, f32);
      const std::string ref_file = dir + stem + "-" + type + ".gguf";
      if (std::filesystem::exists(ref_file)) {
        // Same tensor types as the reference quantizer chose...
        EXPECT_EQ(tensor_types(out), tensor_types(ref_file));
        // ...and no more than 1.25x its error.
        const double theirs = error_vs_f32(ref_file, f32);
        EXPECT_LE(mine, 1.25 * theirs) << "slm " << mine << " vs reference quantizer " << theirs;
        RecordProperty(stem + "_" + type, std::to_string(mine / theirs));
      }
      if (type == "f32" || type == "f16" || type == "bf16") {
        EXPECT_LE(mine, type == "f32" ? 0.002 : type == "f16" ? 0.003 : 0.01);
      }
      errors[type] = mine;
    }
    // More bits, less error (covers the types with no reference file).
    EXPECT_LT(errors["q8_0"], errors["q6_k"]);
    EXPECT_LT(errors["q6_k"], errors["q5_k_m"]);
    EXPECT_LT(errors["q5_k_m"], errors["q4_k_m"]);
    EXPECT_LT(errors["q8_0"], errors["q5_0"]);
    EXPECT_LT(errors["q5_0"], errors["q4_0"]);
    EXPECT_LT(errors["q5_1"], errors["q4_1"]);
  }
}

TEST(CliQuantize, OutputReadsBackConsistently) {
  SLM_REQUIRE_TESTDATA();
  const std::string in = test::testdata_dir() + "/models/gemma-tiny.gguf";
  const std::string out = test::temp_path("gemma-q4_k_m.gguf");
  ASSERT_EQ(test::run_command(test::slm_binary() + " quantize " + q(in) + " " + q(out) + " q4_k_m 2>&1").exit_code, 0);
  const gguf::GgufFile a(in), b(out);
  // Every key copied (same order and value) except the file type, plus the
  // quantization version.
  for (const auto& kv : a.metadata()) {
    const gguf::Value* v = b.find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    if (kv.key == "general.file_type") {
      EXPECT_EQ(v->to_int(), 15);
    } else {
      EXPECT_TRUE(*v == kv.value) << kv.key;
    }
  }
  EXPECT_EQ(b.get_int("general.quantization_version"), 2);
  EXPECT_EQ(b.metadata().size(), a.metadata().size() + 1);
  // Tensors: same names, order and shapes; data aligned, in order, sized by type.
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  uint64_t end = 0;
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const auto& ta = a.tensors()[i];
    const auto& tb = b.tensors()[i];
    EXPECT_EQ(ta.name, tb.name);
    EXPECT_EQ(ta.ne, tb.ne);
    EXPECT_EQ(tb.n_bytes, row_bytes(tb.type, static_cast<uint64_t>(tb.ne[0])) * tb.n_rows());
    EXPECT_EQ(tb.file_offset % b.alignment(), 0u);
    EXPECT_GE(tb.file_offset, end);
    end = tb.file_offset + tb.n_bytes;
  }
  EXPECT_LE(end, b.file_size());
  EXPECT_GT(end + b.alignment(), b.file_size());
}

TEST(CliQuantize, RefusalsAndErrors) {
  SLM_REQUIRE_TESTDATA();
  const std::string f32 = test::testdata_dir() + "/models/phi3-tiny.gguf";
  const std::string q8 = test::testdata_dir() + "/models/phi3-tiny-q8_0.gguf";
  const std::string bin = test::slm_binary() + " quantize ";
  auto r = test::run_command(bin + q(q8) + " " + q(test::temp_path("x.gguf")) + " q4_0 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--allow-requantize"), std::string::npos) << r.output;
  r = test::run_command(bin + "--allow-requantize " + q(q8) + " " + q(test::temp_path("x.gguf")) + " q4_0 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = test::run_command(bin + q(f32) + " " + q(f32) + " q4_0 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("never overwrites its input"), std::string::npos) << r.output;
  // The same file under another name (a hard link; a symbolic link; a path
  // with "./" in it): refused, and the input is unchanged.
  const std::string copy = test::temp_path("input.gguf"), hard = test::temp_path("hard.gguf"),
                    soft = test::temp_path("soft.gguf");
  const std::vector<uint8_t> original = test::read_file(f32);
  test::write_file(copy, original);
  ASSERT_EQ(::link(copy.c_str(), hard.c_str()), 0);
  ASSERT_EQ(::symlink(copy.c_str(), soft.c_str()), 0);
  const std::filesystem::path p(copy);
  for (const std::string& out : {hard, soft, (p.parent_path() / "." / p.filename()).string()}) {
    r = test::run_command(bin + q(copy) + " " + q(out) + " q4_0 2>&1");
    EXPECT_NE(r.exit_code, 0) << out;
    EXPECT_NE(r.output.find("never overwrites its input"), std::string::npos) << out << ": " << r.output;
    EXPECT_EQ(test::read_file(copy), original) << out;
  }
  r = test::run_command(bin + q(f32) + " " + q(test::temp_path("y.gguf")) + " q3_xs 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unknown quantization type 'q3_xs'"), std::string::npos) << r.output;
}

// Perplexity: the CLI's final estimate equals the formula computed here in
// double precision from the library's logits.
TEST(CliPerplexity, MatchesTheFormula) {
  SLM_REQUIRE_TESTDATA();
  const std::string model_path = test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf";
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The quick brown fox jumps over the lazy dog. Small models run on laptops. ";
  const std::string file = test::temp_path("ppl.txt");
  std::ofstream(file) << text;
  const auto r = test::run_command(test::slm_binary() + " perplexity -m " + q(model_path) + " -f " + q(file) + " -c 64 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto at = r.output.find("Final estimate: PPL = ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const double cli_ppl = std::stod(r.output.substr(at + 22));
  EXPECT_NE(r.output.find("[1] "), std::string::npos);

  const auto model = Model::load(model_path);
  const auto tokens = model->tokenizer().encode(text, true, false);
  const size_t n = 64, V = static_cast<size_t>(model->info().n_vocab);
  double nll = 0;
  size_t count = 0;
  for (size_t c = 0; c + 1 <= tokens.size() / n; ++c) {
    std::vector<TokenId> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(c * n),
                               tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * n));
    chunk[0] = *model->tokenizer().bos();
    Session s(model, SessionParams{64, 512, 0, KvType::f16});
    const auto logits = s.evaluate_all(chunk);
    for (size_t i = n / 2; i < n - 1; ++i) {
      double z = 0;
      for (size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(logits[i * V + v]));
      nll += std::log(z) - logits[i * V + static_cast<size_t>(chunk[i + 1])];
      ++count;
    }
  }
  EXPECT_NEAR(cli_ppl, std::exp(nll / static_cast<double>(count)), 1e-3 * cli_ppl);
  const auto short_run = test::run_command(test::slm_binary() + " perplexity -m " + q(model_path) + " -f " + q(file) + " -c 100000 2>&1");
  EXPECT_NE(short_run.exit_code, 0);
  EXPECT_NE(short_run.output.find("shorter than one chunk"), std::string::npos) << short_run.output;
}

TEST(CliBench, JsonHoldsEveryField) {
  SLM_REQUIRE_TESTDATA();
  const std::string a = test::testdata_dir() + "/models/phi3-tiny-q4_0.gguf";
  const std::string b = test::testdata_dir() + "/models/gemma-tiny-q8_0.gguf";
  const auto r = test::run_command(test::slm_binary() + " bench -m " + q(a) + " -m " + q(b) +
                                   " -p 16 -n 4 -r 2 -t 1,2 -o json 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j.size(), 8u);  // 2 models x 2 thread counts x (pp, tg)
  for (const auto& row : j) {
    for (const char* key : {"model", "size_bytes", "n_params", "file_type", "isa", "threads", "test", "tokens_per_s",
                            "tokens_per_s_stdev", "samples", "bandwidth_gb_s", "cpu", "slm_commit", "slm_version"})
      EXPECT_TRUE(row.contains(key)) << key << " in " << row.dump();
    EXPECT_GT(row.at("tokens_per_s").get<double>(), 0);
    EXPECT_EQ(row.at("samples").size(), 2u);
    const std::string test = row.at("test");
    EXPECT_TRUE(test == "pp16" || test == "tg4") << test;
    if (test == "tg4") {
      EXPECT_GT(row.at("roofline_fraction").get<double>(), 0);
      // Phi-3's output is untied: its embedding table counts as one row per
      // token; Gemma's is the output matrix, read whole.
      if (row.at("model") == "phi3-tiny-q4_0.gguf") {
        EXPECT_LT(row.at("bytes_per_token").get<uint64_t>(), row.at("size_bytes").get<uint64_t>());
      } else {
        EXPECT_EQ(row.at("bytes_per_token").get<uint64_t>(), row.at("size_bytes").get<uint64_t>());
      }
    }
  }
  EXPECT_EQ(j[0].at("model"), "phi3-tiny-q4_0.gguf");
  EXPECT_EQ(j[0].at("file_type"), "MOSTLY_Q4_0");
  EXPECT_EQ(j[4].at("model"), "gemma-tiny-q8_0.gguf");
  const auto md = test::run_command(test::slm_binary() + " bench -m " + q(a) + " -p 8 -n 2 -r 1 -t 1 2>/dev/null");
  EXPECT_NE(md.output.find("| pp8 |"), std::string::npos) << md.output;
  EXPECT_NE(md.output.find("| tg2 |"), std::string::npos) << md.output;
}

}  // namespace
}  // namespace slm
