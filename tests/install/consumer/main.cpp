// A program outside the slm tree: load a model, open a session, stream a
// greedy answer. The same program as docs/library.md.
#include <cstdio>
#include <cstring>
#include <string>

#include <slm/slm.h>

int main(int argc, char** argv) {
  // The headers and the library agree on the version.
  if (std::strcmp(slm::version_string(), SLM_VERSION_STRING) != 0) return 1;
  if (argc < 2) {
    std::printf("slm %s linked (no model given)\n", slm::version_string());
    return 0;
  }
  try {
    auto model = slm::Model::load(argv[1]);
    slm::Session session(model, {});
    slm::GenerateParams params;
    params.sampling.temperature = 0;  // greedy: reproducible
    params.max_tokens = 16;
    std::string streamed;
    const slm::GenerateResult result =
        slm::generate(session, std::string("Hello world, this is a test"), params, [&](std::string_view piece) {
          streamed += piece;
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          return true;
        });
    std::printf("\n%lld tokens\n", static_cast<long long>(result.n_generated));
    return streamed == result.text && result.n_generated == 16 ? 0 : 3;
  } catch (const slm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
