#include <cstdio>
#include <cstring>

#include <slm/slm.h>

int main() {
  // The headers and the library agree on the version.
  if (std::strcmp(slm::version_string(), SLM_VERSION_STRING) != 0) return 1;
  try {
    throw slm::Error("probe");
  } catch (const slm::Error& e) {
    std::printf("slm %s linked (%s)\n", slm::version_string(), e.what());
  }
  return 0;
}
