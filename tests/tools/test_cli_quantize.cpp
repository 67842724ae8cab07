// `slm quantize`, `slm perplexity` and `slm bench -o json` as a user runs them.
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/fp16.h"
#include "cpu/kernels.h"
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

// A llama-shaped F32 model with `layers` layers written by slm synth from a
// preset in a temporary folder: enough layers for every mix rule to show.
std::string synth_llama(const std::string& name, int layers, int head_count_kv, int embd = 256, int ff = 256,
                        int vocab = 512, const std::string& type = "f32") {
  const std::string dir = test::temp_path("presets-" + name);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/" + name + ".json")
      << R"({"name": ")" << name << R"(", "architecture": "llama", "context_length": 512, "embedding_length": )" << embd
      << R"(, "feed_forward_length": )" << ff << R"(, "block_count": )" << layers
      << R"(, "head_count": 8, "head_count_kv": )" << head_count_kv
      << R"(, "rope_dimension_count": 32, "rope_freq_base": 10000.0, "layer_norm_rms_epsilon": 1e-05, "vocab_size": )"
      << vocab << "}";
  const std::string out = test::temp_path(name + ".gguf");
  const auto r = test::run_command(test::slm_binary() + " synth --presets-dir " + q(dir) + " --preset " + name +
                                       " --type " + type + " " + q(out), true);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

// The reference quantizer's mixes, written out per layer for a 32-layer
// model: which type each weight gets (llama-quantize's rules for llama-family
// models; docs/quantize.md).
TEST(CliQuantize, EveryMixGivesEachTensorItsType) {
  const int n = 32;
  const std::string gqa4 = synth_llama("mix-gqa4", n, 2), gqa1 = synth_llama("mix-gqa1", n, 8);
  using D = DType;
  // The layers the _m mixes give more bits: the first and last eighth, and
  // every third layer between (layer 6, 9, ..., 27 for 32 layers).
  auto more_bits = [](int l) { return l < 4 || l >= 28 || (l - 4) % 3 == 2; };
  struct Expect {
    std::string type, file;
    int file_type;
    D base, output;
    std::function<D(int)> attn_v, attn_output, ffn_down;
  };
  const std::vector<Expect> cases = {
      {"q2_k", gqa4, 10, D::Q2_K, D::Q6_K, [](int) { return D::Q4_K; }, [](int) { return D::Q3_K; },
       [](int) { return D::Q3_K; }},
      {"q2_k", gqa1, 10, D::Q2_K, D::Q6_K, [](int) { return D::Q3_K; }, [](int) { return D::Q3_K; },
       [](int) { return D::Q3_K; }},
      {"q3_k_s", gqa4, 11, D::Q3_K, D::Q6_K, [](int) { return D::Q3_K; }, [](int) { return D::Q3_K; },
       [](int) { return D::Q3_K; }},
      {"q3_k_m", gqa4, 12, D::Q3_K, D::Q6_K, [](int l) { return l < 2 ? D::Q5_K : D::Q4_K; },
       [](int) { return D::Q4_K; }, [](int l) { return l < 2 ? D::Q5_K : D::Q4_K; }},
      {"q3_k", gqa4, 12, D::Q3_K, D::Q6_K, [](int l) { return l < 2 ? D::Q5_K : D::Q4_K; },
       [](int) { return D::Q4_K; }, [](int l) { return l < 2 ? D::Q5_K : D::Q4_K; }},
      {"q3_k_l", gqa4, 13, D::Q3_K, D::Q6_K, [](int) { return D::Q5_K; }, [](int) { return D::Q5_K; },
       [](int) { return D::Q5_K; }},
      {"q4_k_s", gqa4, 14, D::Q4_K, D::Q6_K, [](int l) { return l < 4 ? D::Q5_K : D::Q4_K; },
       [](int) { return D::Q4_K; }, [](int l) { return l < 4 ? D::Q5_K : D::Q4_K; }},
      {"q4_k", gqa4, 15, D::Q4_K, D::Q6_K, [&](int l) { return more_bits(l) ? D::Q6_K : D::Q4_K; },
       [](int) { return D::Q4_K; }, [&](int l) { return more_bits(l) ? D::Q6_K : D::Q4_K; }},
      {"q5_k_s", gqa4, 16, D::Q5_K, D::Q6_K, [](int) { return D::Q5_K; }, [](int) { return D::Q5_K; },
       [](int) { return D::Q5_K; }},
      {"q5_k", gqa4, 17, D::Q5_K, D::Q6_K, [&](int l) { return more_bits(l) ? D::Q6_K : D::Q5_K; },
       [](int) { return D::Q5_K; }, [&](int l) { return more_bits(l) ? D::Q6_K : D::Q5_K; }},
  };
  for (const Expect& e : cases) {
    SCOPED_TRACE(e.type + " from " + e.file);
    const std::string out = test::temp_path("mix-" + e.type + ".gguf");
    const auto r = test::run_command(test::slm_binary() + " quantize " + q(e.file) + " " + q(out) + " " + e.type, true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const gguf::GgufFile f(out);
    EXPECT_EQ(f.get_int("general.file_type"), e.file_type);
    for (const auto& t : f.tensors()) {
      const std::string& name = t.name;
      auto has = [&](const char* suffix) { return name.find(suffix) != std::string::npos; };
      const int layer = name.rfind("blk.", 0) == 0 ? std::atoi(name.c_str() + 4) : -1;
      D want = e.base;
      if (t.ne.size() < 2) want = D::F32;
      else if (name == "output.weight") want = e.output;
      else if (has(".attn_v.")) want = e.attn_v(layer);
      else if (has(".attn_output.")) want = e.attn_output(layer);
      else if (has(".ffn_down.")) want = e.ffn_down(layer);
      EXPECT_EQ(dtype_name(t.type), dtype_name(want)) << name;
    }
  }
  // --pure: every 2-D tensor in the base type, the output too.
  const std::string out = test::temp_path("mix-pure.gguf");
  const auto r = test::run_command(test::slm_binary() + " quantize --pure " + q(gqa4) + " " + q(out) + " q4_k_m", true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const gguf::GgufFile pure(out);
  for (const auto& t : pure.tensors())
    EXPECT_EQ(dtype_name(t.type), dtype_name(t.ne.size() < 2 ? D::F32 : D::Q4_K)) << t.name;
}

// A row length a K type's 256-element block does not divide falls back to a
// 32-element type of about its size (the reference quantizer's choice; Q4_0
// where it writes IQ4_NL), said on stderr.
TEST(CliQuantize, RowsTheBlockDoesNotDivideFallBack) {
  const std::string in = synth_llama("odd-rows", 2, 8, 288, 768);
  for (const auto& [type, want_embd] : std::vector<std::pair<std::string, DType>>{
           {"q2_k", DType::Q4_0}, {"q3_k_s", DType::Q4_0}, {"q4_k_s", DType::Q5_0}, {"q5_k_s", DType::Q5_1}, {"q6_k", DType::Q8_0}}) {
    const std::string out = test::temp_path("odd-" + type + ".gguf");
    const auto r = test::run_command(test::slm_binary() + " quantize " + q(in) + " " + q(out) + " " + type, true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("row length 288 does not fit"), std::string::npos) << r.output;
    const auto types = tensor_types(out);
    EXPECT_EQ(dtype_name(types.at("token_embd.weight")), dtype_name(want_embd)) << type;
    // ffn_down rows are 768 long: a multiple of 256, so the mix's own type.
    EXPECT_EQ(traits(types.at("blk.0.ffn_down.weight")).block_size, 256u) << type;
  }
}

// Fewer bits, more error: each new mix against the F32 model's logits.
TEST(CliQuantize, LowBitMixesOrderByError) {
  SLM_REQUIRE_TESTDATA();
  const std::string dir = test::testdata_dir() + "/models/";
  for (const std::string stem : {"phi3-tiny", "llama-tiny"}) {
    const Ref f32 = load_ref(stem);
    std::map<std::string, double> errors;
    for (const std::string type : {"q2_k", "q3_k_s", "q3_k_l", "q4_k_s", "q5_k_s", "q6_k"}) {
      const std::string out = test::temp_path(stem + "-" + type + ".gguf");
      const auto r = test::run_command(test::slm_binary() + " quantize " + q(dir + stem + ".gguf") + " " + q(out) + " " + type, true);
      ASSERT_EQ(r.exit_code, 0) << r.output;
      errors[type] = error_vs_f32(out, f32);
      RecordProperty(stem + "_" + type, std::to_string(errors[type]));
    }
    EXPECT_GT(errors["q2_k"], errors["q3_k_s"]) << stem;
    EXPECT_GT(errors["q3_k_s"], errors["q4_k_s"]) << stem;
    EXPECT_GT(errors["q3_k_l"], errors["q5_k_s"]) << stem;
    EXPECT_GT(errors["q4_k_s"], errors["q5_k_s"]) << stem;
    EXPECT_GT(errors["q5_k_s"], errors["q6_k"]) << stem;
  }
}

TEST(CliQuantize, FloatOutputFromAQuantizedInputWarns) {
  SLM_REQUIRE_TESTDATA();
  const std::string q4 = test::testdata_dir() + "/models/llama-tiny-q4_0.gguf";
  for (const std::string type : {"f16", "bf16", "f32"}) {
    const std::string out = test::temp_path("widened-" + type + ".gguf");
    const auto r = test::run_command(test::slm_binary() + " quantize " + q(q4) + " " + q(out) + " " + type, true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("warning: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("is quantized"), std::string::npos) << r.output;
    const gguf::GgufFile a(q4), b(out);
    const auto* ta = a.find_tensor("blk.0.attn_q.weight");
    const auto* tb = b.find_tensor("blk.0.attn_q.weight");
    ASSERT_TRUE(ta && tb);
    std::vector<float> wa(static_cast<size_t>(ta->ne[0])), wb(wa.size());
    kernels::dequantize_row(ta->type, a.tensor_data(*ta), wa.data(), ta->ne[0]);
    kernels::dequantize_row(tb->type, b.tensor_data(*tb), wb.data(), tb->ne[0]);
    // The widened weights are the quantized ones, rounded to the output type.
    for (size_t i = 0; i < wa.size(); ++i) {
      const float want = type == "f32" ? wa[i] : type == "f16" ? f16_to_f32(f32_to_f16(wa[i])) : bf16_to_f32(f32_to_bf16(wa[i]));
      ASSERT_EQ(wb[i], want) << type << " " << i;
    }
  }
}

// Ctrl-C, SIGTERM or SIGHUP part-way: exit 128 + signal, saying so, with no
// output and no temporary file left.
TEST(CliQuantize, SignalsLeaveNoPartialFile) {
  // Big enough that quantizing to q2_k takes seconds on any machine.
  const std::string in = synth_llama("signal-in", 4, 8, 512, 2048, 32000, "f16");
  for (const auto& [sig, name] : std::vector<std::pair<int, std::string>>{{SIGINT, "INT"}, {SIGTERM, "TERM"}, {SIGHUP, "HUP"}}) {
    const std::string out = test::temp_path("signalled-" + name + ".gguf"), log = test::temp_path("signalled.log");
    // Wait for the temporary file (the header is written, tensors are being
    // converted), then send the signal; "no tmp" if it never appeared. (sh
    // starts a background command with SIGINT ignored, which slm respects:
    // env gives it the default action back.)
    const std::string cmd = "env --default-signal=INT " + test::slm_binary() + " quantize -t 1 " + q(in) + " " + q(out) + " q2_k 2>" + q(log) +
                            " & pid=$!; for i in $(seq 1 1000); do [ -e " + q(out + ".tmp") + " ] && break; sleep 0.01; done; " +
                            "[ -e " + q(out + ".tmp") + " ] || echo 'no tmp'; sleep 0.2; kill -" + name +
                            " $pid; wait $pid; echo $?";
    const auto r = test::run_command(cmd);
    ASSERT_EQ(r.output.find("no tmp"), std::string::npos) << name << ": the temporary file never appeared";
    EXPECT_EQ(std::atoi(r.output.c_str()), 128 + sig) << name << ": " << r.output;
    const std::vector<uint8_t> log_bytes = test::read_file(log);
    const std::string said(log_bytes.begin(), log_bytes.end());
    EXPECT_NE(said.find("stopped by"), std::string::npos) << name << ": " << said;
    EXPECT_FALSE(std::filesystem::exists(out)) << name;
    EXPECT_FALSE(std::filesystem::exists(out + ".tmp")) << name;
  }
  // A signal ignored by the caller (nohup) stays ignored: the file is written.
  const std::string out = test::temp_path("nohup.gguf");
  const auto r = test::run_command("trap '' HUP; " + test::slm_binary() + " quantize -t 1 " + q(in) + " " + q(out) +
                                   " q4_0 2>/dev/null & pid=$!; sleep 0.3; kill -HUP $pid; wait $pid; echo $?");
  EXPECT_EQ(std::atoi(r.output.c_str()), 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(out));
}

// On a terminal the progress line shows tensors/s and the time left.
TEST(CliQuantize, ProgressShowsRateAndTimeLeft) {
  SLM_REQUIRE_TESTDATA();
  const std::string in = test::testdata_dir() + "/models/gemma-tiny.gguf", out = test::temp_path("progress.gguf");
  // script(1) gives the command a pseudo-terminal.
  const auto r = test::run_command("script -qec " + q(test::slm_binary() + " quantize \"" + in + "\" \"" + out + "\" q4_k_m") +
                                   " /dev/null", true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tensors/s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ETA "), std::string::npos) << r.output;
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
    Session s(model, SessionParams{64, 512, 0, KvType::f16, KvType::f16});
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
    // llama-bench's names, then slm's.
    for (const char* key : {"build_commit", "cpu_info", "backends", "model_filename", "model_type", "model_size",
                            "model_n_params", "n_batch", "n_threads", "type_k", "type_v", "n_prompt", "n_gen",
                            "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns",
                            "samples_ts", "test", "file_type", "isa", "slm_version", "bandwidth_gb_s",
                            "bytes_per_token", "roofline_ts", "roofline_fraction"})
      EXPECT_TRUE(row.contains(key)) << key << " in " << row.dump();
    EXPECT_GT(row.at("avg_ts").get<double>(), 0);
    EXPECT_EQ(row.at("samples_ts").size(), 2u);
    EXPECT_EQ(row.at("samples_ns").size(), 2u);
    EXPECT_EQ(row.at("n_depth"), 0);
    // avg_ts is the mean of the samples, and each sample is tokens / time.
    const auto ts = row.at("samples_ts").get<std::vector<double>>();
    const auto ns = row.at("samples_ns").get<std::vector<double>>();
    const int64_t tokens = row.at("n_prompt").get<int64_t>() + row.at("n_gen").get<int64_t>();
    EXPECT_NEAR(row.at("avg_ts").get<double>(), (ts[0] + ts[1]) / 2, 1e-6 * ts[0]);
    EXPECT_NEAR(ts[0], static_cast<double>(tokens) / (ns[0] * 1e-9), 1e-6 * ts[0]);
    const std::string test = row.at("test");
    EXPECT_TRUE(test == "pp16" || test == "tg4") << test;
    if (test == "tg4") {
      EXPECT_GT(row.at("roofline_fraction").get<double>(), 0);
      // Phi-3's output is untied: its embedding table counts as one row per
      // token; Gemma's is the output matrix, read whole. Plus the f16 K/V of
      // the positions a token in the middle of tg4 attends to (3): gemma-tiny
      // has 2 layers of 1 KV head of 32 dims (128 bytes of K and V each).
      if (row.at("model_filename") == "phi3-tiny-q4_0.gguf") {
        EXPECT_LT(row.at("bytes_per_token").get<uint64_t>(), row.at("model_size").get<uint64_t>());
      } else {
        EXPECT_EQ(row.at("bytes_per_token").get<uint64_t>(), row.at("model_size").get<uint64_t>() + 3 * 2 * 128);
      }
    } else {
      EXPECT_TRUE(row.at("roofline_ts").is_null());
    }
  }
  EXPECT_EQ(j[0].at("model_filename"), "phi3-tiny-q4_0.gguf");
  EXPECT_EQ(j[0].at("file_type"), "Q4_0");
  EXPECT_EQ(j[0].at("n_threads"), 1);
  EXPECT_EQ(j[2].at("n_threads"), 2);
  EXPECT_EQ(j[0].at("model_type").get<std::string>().rfind("phi3 ", 0), 0u) << j[0].dump();
  EXPECT_EQ(j[4].at("model_filename"), "gemma-tiny-q8_0.gguf");
}

TEST(CliBench, CommaListsDepthAndPromptPlusGeneration) {
  SLM_REQUIRE_TESTDATA();
  const std::string a = test::testdata_dir() + "/models/phi3-tiny-q4_0.gguf";
  const auto r = test::run_command(test::slm_binary() + " bench " + q(a) +
                                   " -p 8,16 -n 2,3 -pg 8,2 -d 0,20 -r 1 -t 1 -o jsonl 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> names;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    const auto row = nlohmann::json::parse(line);  // one object per line
    names.push_back(row.at("test"));
    const std::string name = names.back();
    EXPECT_EQ(row.at("n_depth").get<int64_t>(), name.find("@ d20") != std::string::npos ? 20 : 0) << name;
    if (name.rfind("pp8+tg2", 0) == 0) {
      EXPECT_EQ(row.at("n_prompt"), 8);
      EXPECT_EQ(row.at("n_gen"), 2);
    }
  }
  const std::vector<std::string> expected = {"pp8", "pp16", "tg2", "tg3", "pp8+tg2",
                                             "pp8 @ d20", "pp16 @ d20", "tg2 @ d20", "tg3 @ d20", "pp8+tg2 @ d20"};
  EXPECT_EQ(names, expected);

  // csv: a header and one line per test, every line with the header's column count.
  const auto csv = test::run_command(test::slm_binary() + " bench " + q(a) + " -p 8 -n 2 -r 1 -t 1 -o csv 2>/dev/null");
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  std::istringstream csv_lines(csv.output);
  std::vector<size_t> commas;
  for (std::string line; std::getline(csv_lines, line);) {
    size_t n = 0;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) ++n;
    }
    commas.push_back(n);
  }
  ASSERT_EQ(commas.size(), 3u) << csv.output;
  EXPECT_EQ(commas[1], commas[0]);
  EXPECT_EQ(commas[2], commas[0]);
  EXPECT_EQ(csv.output.rfind("build_commit,", 0), 0u) << csv.output;

  // md: llama-bench's padded table.
  const auto md = test::run_command(test::slm_binary() + " bench " + q(a) + " -p 8 -n 2 -d 4 -r 1 -t 1 2>/dev/null");
  ASSERT_EQ(md.exit_code, 0) << md.output;
  EXPECT_NE(md.output.find("| model                          |"), std::string::npos) << md.output;
  EXPECT_NE(md.output.find("       pp8 @ d4 |"), std::string::npos) << md.output;
  EXPECT_NE(md.output.find("       tg2 @ d4 |"), std::string::npos) << md.output;
}

TEST(CliBench, BadListsAndADepthBeyondTheContextAreUsageErrors) {
  SLM_REQUIRE_TESTDATA();
  const std::string a = test::testdata_dir() + "/models/phi3-tiny-q4_0.gguf";
  for (const std::string& args : {std::string("-d 100 -c 50"), std::string("-p 8,x"), std::string("-pg 8"),
                                  std::string("-p 0 -n 0"), std::string("-o yaml"), std::string("-d -1"),
                                  std::string("--kv q4_0"), std::string("-ctk q5_1"), std::string("-ctv bf16")}) {
    const auto r = test::run_command(test::slm_binary() + " bench " + q(a) + " -r 1 -t 1 " + args + " 2>&1");
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_NE(r.output.find("slm: error:"), std::string::npos) << args << ": " << r.output;
  }
  const auto beyond = test::run_command(test::slm_binary() + " bench " + q(a) + " -p 8 -n 0 -d 100 -c 50 -r 1 2>&1");
  EXPECT_NE(beyond.output.find("pp8 @ d100 needs a context of 108 positions"), std::string::npos) << beyond.output;
  const auto kv = test::run_command(test::slm_binary() + " bench " + q(a) + " -p 8 -n 0 -r 1 --kv q4_0 2>&1");
  EXPECT_NE(kv.output.find("q4_0 not in {f16,f32,q8_0}"), std::string::npos) << kv.output;
}

// -ctk / -ctv (llama-bench's spelling) and --kv reach the cache: the JSON
// names the types, and a q8_0 cache runs.
TEST(CliBench, CacheTypesAsLlamaBenchSpellsThem) {
  SLM_REQUIRE_TESTDATA();
  const std::string a = test::testdata_dir() + "/models/phi3-tiny-q4_0.gguf";
  for (const auto& [args, k, v] : {std::tuple<std::string, std::string, std::string>{"", "f16", "f16"},
                                   {"-ctk q8_0", "q8_0", "f16"},
                                   {"-ctk q8_0 -ctv q8_0", "q8_0", "q8_0"},
                                   {"--kv q8_0 -ctv f32", "q8_0", "f32"}}) {
    const auto r = test::run_command(test::slm_binary() + " bench " + q(a) + " -p 8 -n 2 -d 70 -r 1 -t 1 -o json " +
                                     args + " 2>/dev/null");
    ASSERT_EQ(r.exit_code, 0) << args << ": " << r.output;
    const auto j = nlohmann::json::parse(r.output);
    ASSERT_EQ(j.size(), 2u) << r.output;
    for (const auto& row : j) {
      EXPECT_EQ(row.at("type_k"), k) << args;
      EXPECT_EQ(row.at("type_v"), v) << args;
      EXPECT_GT(row.at("avg_ts").get<double>(), 0) << args;
    }
  }
}

}  // namespace
}  // namespace slm
