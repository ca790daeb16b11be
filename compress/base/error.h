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

// The length of the well-formed UTF-8 sequence at s[i] (1 for ASCII), 0 when none starts there: a stray
// continuation byte, an overlong or surrogate form, a code point above U+10FFFF or a sequence cut short.
inline size_t utf8_length(const std::string& s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  if (c < 0x80) return 1;
  const size_t n = (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((at(i + k) & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && at(i + 1) < 0xa0) || (c == 0xed && at(i + 1) >= 0xa0) || (c == 0xf0 && at(i + 1) < 0x90) ||
      (c == 0xf4 && at(i + 1) >= 0x90))
    return 0;
  return n;
}

// A string read from a file (a tensor, op or key name, a record name), safe to echo on a terminal: control
// characters (C0, DEL, the C1 range, which holds the 8-bit CSI) and bytes that are not UTF-8 become \xNN, so a
// name cannot carry escape sequences or break the one-line error; valid UTF-8 stays as it is. Longer than `max`
// bytes: cut, with "...".
inline std::string printable(const std::string& s, size_t max = 200) {
  std::string o;
  auto hex = [&o](unsigned char c) { o += fmt::format("\\x{:02x}", c); };
  for (size_t i = 0; i < s.size(); ++i) {
    if (o.size() >= max) return o + "...";
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) hex(c);
      else o += char(c);
      continue;
    }
    const size_t n = utf8_length(s, i);
    if (n == 0 || (c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0)) {  // U+0080..U+009F: C1 controls
      hex(c);
      continue;
    }
    o.append(s, i, n);
    i += n - 1;
  }
  return o;
}

// The first non-empty line of a (possibly multi-line) library message, for one-line errors. The TorchScript
// interpreter's messages open with a banner and a traceback and end with the cause ("RuntimeError: mat1 and mat2
// shapes cannot be multiplied (1x5 and 4x8)"): for those the cause is the line kept.
inline std::string first_line(const std::string& msg) {
  auto trimmed = [](std::string line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    return line.size() > 300 ? line.substr(0, 300) + "..." : line;
  };
  size_t start = msg.find_first_not_of(" \n\t");
  if (start == std::string::npos) return "unknown error";
  std::string line = msg.substr(start, msg.find('\n', start) - start);
  if (line.rfind("The following operation failed in the TorchScript interpreter", 0) == 0) {
    size_t end = msg.find_last_not_of(" \n\t\r");
    size_t from = msg.rfind('\n', end);
    std::string last = msg.substr(from == std::string::npos ? 0 : from + 1, end + 1 - (from == std::string::npos ? 0 : from + 1));
    size_t indent = last.find_first_not_of(' ');
    if (indent != std::string::npos) return trimmed(last.substr(indent));
  }
  return trimmed(line);
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace joule
