// User-facing errors: one line that names the file, layer or option at fault. The CLI prints what() as
// "joule: error: ..." and exits non-zero; internal invariants use TORCH_INTERNAL_ASSERT instead.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace joule {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The first non-empty line of a (possibly multi-line) library message, for one-line errors.
inline std::string first_line(const std::string& msg) {
  size_t start = msg.find_first_not_of(" \n\t");
  if (start == std::string::npos) return "unknown error";
  std::string line = msg.substr(start, msg.find('\n', start) - start);
  return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace joule
