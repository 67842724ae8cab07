#include "slm/version.h"

namespace slm {

const char* version_string() { return SLM_VERSION_STRING; }

}  // namespace slm
