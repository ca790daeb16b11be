// The trust boundary for TorchScript archives (docs/SECURITY.md). A TorchScript archive is a zip whose code/*.py
// records are compiled and partly run (__setstate__) while LibTorch loads it, so a model file can read or write
// files (torch.from_file, torch.save) or call ops of any library loaded in the process. check_archive() reads the
// archive itself, before LibTorch sees it, and refuses:
//   - a zip whose records do not fit the file, overlap the central directory, use a method other than stored or
//     deflate, fail their CRC-32, or decompress beyond the caps (zip bombs);
//   - code that calls an op outside the side-effect-free allowlist: the aten and prim namespaces (less aten::save
//     and aten::from_file, the two that take a file name), joule:: ops and torch's own quantized classes; any other
//     namespace or custom class; a `while` loop in __setstate__ (it runs at load, so it could hang every command).
// Every failure is one line naming the file, the record and, for code, the op and the method. LibTorch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace joule::io {

struct ArchiveLimits {
  uint64_t max_record_bytes = uint64_t{4} << 30;    // one decompressed record
  uint64_t max_total_bytes = uint64_t{16} << 30;    // all records together, decompressed
  uint64_t max_code_bytes = uint64_t{64} << 20;     // all code/*.py records together
  uint64_t max_entries = 1 << 20;
};

struct ArchiveCode {
  std::string record;  // "m/code/__torch__.py"
  std::string method;  // the def the call is in ("" at class level)
  std::string op;      // "aten::from_file", "torch.classes.foo.Bar", "while"
};

// Validates the zip and scans its code. Returns the calls outside the allowlist (empty: safe to load); structural
// problems (not a zip, bad sizes, CRC, caps) throw a one-line joule::Error.
std::vector<ArchiveCode> check_archive(const std::string& path, const ArchiveLimits& limits = {});

// The op a dotted name in TorchScript's serialized code calls ("torch.relu" -> "aten::relu",
// "ops.joule.linear_w8a8" -> "joule::linear_w8a8", "torch._C._nn.gelu" -> "aten::gelu"), and whether it is allowed.
std::string op_of_call(const std::string& dotted);
bool op_allowed(const std::string& op);

}  // namespace joule::io
