#include "slm/version.h"

namespace slm {

const char* version_string() { return SLM_VERSION_STRING; }

#ifndef SLM_GIT_COMMIT
#define SLM_GIT_COMMIT "unknown"
#endif
const char* build_commit() { return SLM_GIT_COMMIT; }

}  // namespace slm
