// slm::Error — the one exception type the library throws.
//
// Every failure a caller can cause (a bad file, a bad parameter, a prompt that
// does not fit) is reported as an slm::Error whose message names what was
// wrong: the file, the field or offset, and the limit or expectation. The
// library never calls exit() or abort() on bad input.
#pragma once

#include <stdexcept>
#include <string>

namespace slm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace slm
