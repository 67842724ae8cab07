// Fuzz target: the GGUF reader on arbitrary bytes — header, metadata of every
// type (nested arrays included), tensor table, alignment, offsets — and the
// typed getters a loader calls on what it read. The only acceptable failure
// is slm::Error; a crash, a sanitizer report or any other exception is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "gguf/gguf_reader.h"
#include "slm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader maps a file: each input is written to this process's own one.
  static const std::string path = "/tmp/slm-fuzz-gguf-" + std::to_string(getpid()) + ".gguf";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size > 0) std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    slm::gguf::GgufFile file(path);
    uint64_t sum = file.n_parameters() + file.data_offset() + file.alignment();
    for (const auto& kv : file.metadata()) {
      // Every getter on every key: a type mismatch must be an Error too.
      for (auto get : {+[](const slm::gguf::GgufFile& g, const std::string& k) { return g.get_int(k).has_value(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return g.get_u32(k).has_value(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return g.get_float(k).has_value(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return g.get_bool(k).has_value(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return g.get_string(k).has_value(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return !g.get_strings(k).empty(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return !g.get_floats(k).empty(); },
                       +[](const slm::gguf::GgufFile& g, const std::string& k) { return !g.get_ints(k).empty(); }}) {
        try {
          sum += get(file, kv.key);
        } catch (const slm::Error&) {
        }
      }
    }
    for (const auto& t : file.tensors()) {
      const uint8_t* p = file.tensor_data(t);
      if (t.n_bytes > 0) sum += p[0] + p[t.n_bytes - 1];  // inside the mapping, or the reader refused it
    }
    if (sum == 0x5eed) std::fputc('.', stderr);  // keeps the reads
  } catch (const slm::Error&) {
  }
  return 0;
}
