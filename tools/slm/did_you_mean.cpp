// The "did you mean --top-k?" hint for a mistyped flag.
#include <algorithm>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_util.h"

namespace slm::cli {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

void add_names(const CLI::App& app, std::vector<std::string>& out) {
  for (const CLI::Option* o : app.get_options()) {
    for (const std::string& n : o->get_lnames()) out.push_back("--" + n);
    for (const std::string& n : o->get_snames()) out.push_back("-" + n);
  }
}

}  // namespace

std::string did_you_mean(const CLI::App& sub, const CLI::App& root, const CLI::ParseError& error) {
  // CLI11 reports unknown flags as "The following arguments were not expected: --topk 5".
  const std::string what = error.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&error) == nullptr) return "";
  std::string unknown;
  for (size_t at = what.find(':'); at != std::string::npos && at < what.size();) {
    const size_t start = what.find_first_not_of(' ', at + 1);
    if (start == std::string::npos) break;
    const size_t end = what.find(' ', start);
    const std::string word = what.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (word.size() > 1 && word[0] == '-') {
      unknown = word.substr(0, word.find('='));
      break;
    }
    at = end;
  }
  if (unknown.empty()) return "";
  std::vector<std::string> names;
  add_names(sub, names);
  if (&sub != &root) add_names(root, names);
  std::string best;
  size_t best_d = 4;  // at most 3 edits
  for (const std::string& n : names) {
    if (n == "--help" || n == "-h") continue;
    // One flag a prefix of the other (--temp / --temperature) counts as close.
    const auto& shorter = n.size() < unknown.size() ? n : unknown;
    const auto& longer = n.size() < unknown.size() ? unknown : n;
    const bool prefix = shorter.size() >= 5 && longer.compare(0, shorter.size(), shorter) == 0;
    const size_t d = prefix ? 1 : edit_distance(unknown, n);
    if (d < best_d) best_d = d, best = n;
  }
  return best;
}

}  // namespace slm::cli
