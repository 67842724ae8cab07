// The reference logits of testdata/reference (every *.public.json, Gemma 3's
// too) and the error measures the testdata README defines, for the suites
// that check a backend against them.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/testdata.h"

namespace slm::model {

struct Reference {
  std::string name;
  std::string model;
  std::vector<int32_t> tokens;
  std::vector<std::vector<double>> logits;  // logits_f64
  std::vector<std::vector<double>> engine;  // logits_engine: the independent engine's own answer
  double engine_vs_f64;                     // engine_rel_rms_vs_f64
  std::vector<int32_t> greedy;
  double tolerance;
  bool exact_type;  // F32 / F16: greedy must match
  bool quantized;
};

inline std::vector<Reference> references() {
  std::vector<Reference> out;
  std::vector<std::filesystem::directory_entry> entries;
  for (const char* dir : {"/reference/", "/reference/gemma3/"})
    for (const auto& entry : std::filesystem::directory_iterator(test::testdata_dir() + dir)) entries.push_back(entry);
  for (const auto& entry : entries) {
    const std::string file = entry.path().filename().string();
    if (file.size() < 12 || file.substr(file.size() - 12) != ".public.json") continue;
    std::ifstream in(entry.path());
    const auto j = nlohmann::json::parse(in);
    Reference r;
    r.name = file.substr(0, file.size() - 12);
    r.model = test::testdata_dir() + "/" + j.at("model").get<std::string>();
    r.tokens = j.at("tokens").get<std::vector<int32_t>>();
    r.logits = j.at("logits_f64").get<std::vector<std::vector<double>>>();
    r.engine = j.at("logits_engine").get<std::vector<std::vector<double>>>();
    r.engine_vs_f64 = j.at("engine_rel_rms_vs_f64").get<double>();
    r.greedy = j.at("greedy_engine").get<std::vector<int32_t>>();
    r.tolerance = j.at("tolerance_rel_rms").get<double>();
    const bool bf16 = r.name.find("-bf16") != std::string::npos;
    r.quantized = r.name.find("-q") != std::string::npos;
    r.exact_type = !bf16 && !r.quantized;
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

// sqrt(mean(e^2)) / std(scale) with e = got - ref, over every position and
// vocabulary entry (scale defaults to ref).
inline double rel_rms(const std::vector<float>& got, const std::vector<std::vector<double>>& ref,
               const std::vector<std::vector<double>>* scale = nullptr) {
  if (scale == nullptr) scale = &ref;
  double sum = 0, sum2 = 0, err = 0;
  size_t n = 0;
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t v = 0; v < ref[t].size(); ++v) {
      const double r = (*scale)[t][v], e = got[t * ref[t].size() + v] - ref[t][v];
      sum += r, sum2 += r * r, err += e * e, ++n;
    }
  const double mean = sum / static_cast<double>(n);
  return std::sqrt(err / static_cast<double>(n)) / std::sqrt(sum2 / static_cast<double>(n) - mean * mean);
}

inline double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, sum = 0, sum2 = 0;
  for (size_t i = 0; i < a.size(); ++i) err += (a[i] - b[i]) * (a[i] - b[i]), sum += b[i], sum2 += b[i] * b[i];
  const double n = static_cast<double>(a.size()), mean = sum / n;
  return std::sqrt(err / n) / std::sqrt(sum2 / n - mean * mean);
}

template <typename Row>
size_t argmax(const Row& row, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return best;
}

// Where the reference's top-2 margin is clear (README: 0.05 for float files,
// 0.25 for quantized ones), the argmax of `logits` (rows of V) must be the
// reference's.
inline void expect_clear_argmaxes_match(const std::vector<float>& logits, const Reference& r, size_t V) {
  const double margin_needed = r.quantized ? 0.25 : 0.05;
  for (size_t t = 0; t < r.tokens.size(); ++t) {
    std::vector<double> sorted = r.logits[t];
    std::sort(sorted.begin(), sorted.end());
    if (sorted[V - 1] - sorted[V - 2] <= margin_needed) continue;
    EXPECT_EQ(argmax(logits.data() + t * V, V), argmax(r.logits[t], V)) << "position " << t;
  }
}

}  // namespace slm::model
