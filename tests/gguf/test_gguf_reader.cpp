// The reader against files written by the reference GGUF writer, and against
// the manifest an independent GGUF reader produced from them.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf_reader.h"
#include "slm/error.h"
#include "support/testdata.h"

namespace slm::gguf {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

json load_manifest() {
  std::ifstream in(fs::path(test::testdata_dir()) / "manifest.json");
  return json::parse(in);
}

// Checks one metadata value against its manifest entry.
void expect_matches(const std::string& key, const Value& v, const json& m) {
  SCOPED_TRACE(key);
  ASSERT_EQ(value_type_name(v.type()), m.at("type").get<std::string>());
  if (v.is_array()) {
    EXPECT_EQ(value_type_name(v.elem_type()), m.at("elem").get<std::string>());
    EXPECT_EQ(v.size(), m.at("len").get<uint64_t>());
    return;
  }
  const json& value = m.at("value");
  switch (v.type()) {
    case ValueType::String: EXPECT_EQ(*v.to_string(), value.get<std::string>()); break;
    case ValueType::Bool: EXPECT_EQ(*v.to_bool(), value.get<bool>()); break;
    case ValueType::F32:
    case ValueType::F64: EXPECT_EQ(*v.to_double(), value.get<double>()); break;  // f32 widens exactly
    case ValueType::U64: EXPECT_EQ(*v.to_uint(), value.get<uint64_t>()); break;
    default: EXPECT_EQ(*v.to_int(), value.get<int64_t>()); break;
  }
}

TEST(GgufReader, EveryManifestModelMatchesExactly) {
  SLM_REQUIRE_TESTDATA();
  const json manifest = load_manifest();
  ASSERT_EQ(manifest.size(), test::expected::kManifestModels);
  for (const auto& [file, m] : manifest.items()) {
    SCOPED_TRACE(file);
    const GgufFile f((fs::path(test::testdata_dir()) / "models" / file).string());
    EXPECT_EQ(f.version(), m.at("version").get<uint32_t>());
    EXPECT_EQ(f.alignment(), m.at("alignment").get<uint64_t>());

    const json& kv = m.at("kv");
    ASSERT_EQ(f.metadata().size(), kv.size());
    for (const auto& [key, expected] : kv.items()) {
      const Value* v = f.find(key);
      ASSERT_NE(v, nullptr) << "missing key " << key;
      expect_matches(key, *v, expected);
    }

    const json& tensors = m.at("tensors");
    ASSERT_EQ(f.tensors().size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const json& t = tensors[i];
      const TensorInfo& info = f.tensors()[i];
      SCOPED_TRACE(t.at("name").get<std::string>());
      EXPECT_EQ(info.name, t.at("name").get<std::string>());
      EXPECT_EQ(dtype_name(info.type), t.at("type").get<std::string>());
      EXPECT_EQ(info.ne, t.at("ne").get<std::vector<int64_t>>());
      EXPECT_EQ(info.n_bytes, t.at("n_bytes").get<uint64_t>());
      EXPECT_EQ(info.file_offset, t.at("offset").get<uint64_t>());
      EXPECT_EQ(f.find_tensor(info.name), &info);
      EXPECT_EQ(f.tensor_data(info) - f.tensor_data(f.tensors()[0]),
                static_cast<ptrdiff_t>(info.file_offset - f.tensors()[0].file_offset));
    }
  }
}

TEST(GgufReader, EveryModelFileOpens) {
  SLM_REQUIRE_TESTDATA();
  const auto files = test::model_files();
  ASSERT_EQ(files.size(), test::expected::kModelFiles);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    const GgufFile f(path);
    EXPECT_FALSE(f.architecture().empty());
    EXPECT_GT(f.tensors().size(), 0u);
    EXPECT_GT(f.n_parameters(), 0u);
  }
}

TEST(GgufReader, ArchitecturePrefixedAndTypedGetters) {
  SLM_REQUIRE_TESTDATA();
  const GgufFile f(test::testdata_dir() + "/models/phi3-tiny.gguf");
  EXPECT_EQ(f.architecture(), "phi3");
  EXPECT_EQ(f.arch_key("block_count"), "phi3.block_count");
  EXPECT_EQ(f.get_u32(f.arch_key("block_count")), 2u);
  EXPECT_EQ(f.get_int(f.arch_key("embedding_length"), 0), 256);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.get_float(f.arch_key("attention.layer_norm_rms_epsilon"))), 1e-5f);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  // Absent keys give the default; present keys of the wrong type are an error.
  EXPECT_EQ(f.get_u32("phi3.no_such_key", 7u), 7u);
  EXPECT_FALSE(f.get_string("general.no_such_key").has_value());
  EXPECT_THROW(f.get_string("phi3.block_count"), Error);
  EXPECT_THROW(f.get_int("general.architecture"), Error);
  EXPECT_THROW(f.get_floats("general.architecture"), Error);
  EXPECT_THROW(f.require("phi3.no_such_key"), Error);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(f.get_floats("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type").size(), 512u);
  EXPECT_EQ(f.find_tensor("no.such.tensor"), nullptr);
}

TEST(GgufReader, TensorDataIsTheFileBytes) {
  SLM_REQUIRE_TESTDATA();
  const std::string path = test::testdata_dir() + "/models/gemma-tiny-q4_0.gguf";
  const GgufFile f(path);
  const auto bytes = test::read_file(path);
  for (const TensorInfo& t : f.tensors()) {
    ASSERT_LE(t.file_offset + t.n_bytes, bytes.size());
    ASSERT_EQ(0, std::memcmp(f.tensor_data(t), bytes.data() + t.file_offset, t.n_bytes)) << t.name;
  }
}

TEST(GgufReader, VocabularyOnlyFile) {
  SLM_REQUIRE_TESTDATA();
  const GgufFile f(test::testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf");
  EXPECT_TRUE(f.tensors().empty());
  const auto tokens = f.get_strings("tokenizer.ggml.tokens");
  const auto scores = f.get_floats("tokenizer.ggml.scores");
  const auto types = f.get_ints("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), 32064u);
  ASSERT_EQ(scores.size(), 32064u);
  ASSERT_EQ(types.size(), 32064u);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  // Facts of the published Phi-3 vocabulary.
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[258], "<0xFF>");
  EXPECT_EQ(tokens[32000], "<|endoftext|>");
  EXPECT_EQ(tokens[32007], "<|end|>");
  EXPECT_EQ(tokens[32010], "<|user|>");
  // As the reference converter typed them: <unk> and <s> control, </s>
  // user-defined, then byte tokens (checked with an independent parser).
  EXPECT_EQ(types[0], 3);
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(types[2], 4);
  EXPECT_EQ(types[3], 6);
  EXPECT_EQ(types[1000], 1);  // normal
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_TRUE(f.has("tokenizer.chat_template"));
  // Scores of normal pieces decrease with the id (SentencePiece merge order).
  EXPECT_GT(scores[500], scores[20000]);
}

TEST(GgufReader, MissingFileIsAClearError) {
  try {
    GgufFile f("/nonexistent/dir/model.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.gguf"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GgufFile("/"), Error);  // a directory
}

}  // namespace
}  // namespace slm::gguf
