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

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace joule
