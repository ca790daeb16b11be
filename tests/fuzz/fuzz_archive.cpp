// libFuzzer target: the TorchScript archive checks (compress/io/archive_check.h: zip index, zip64, CRCs, caps,
// the pickle walk, the code scan) on arbitrary bytes. A refusal is a joule::Error; anything else is a finding.
// The caps are lowered so a fuzzed header cannot make one input allocate gigabytes.
#include <cstdint>

#include "compress/base/error.h"
#include "compress/io/archive_check.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  joule::io::ArchiveLimits lim;
  lim.max_record_bytes = 64 << 20;
  lim.max_total_bytes = 256 << 20;
  lim.max_code_bytes = 16 << 20;
  try {
    for (const auto& c : joule::io::check_archive(joule::fuzz::as_file(data, size), lim))
      if (c.op.empty() || c.record.empty()) abort();  // a finding always names the op and the record
  } catch (const joule::Error&) {
  }
  // The op mapping on the raw bytes as a dotted name.
  std::string dotted(reinterpret_cast<const char*>(data), size < 256 ? size : 256);
  (void)joule::io::op_allowed(joule::io::op_of_call(dotted));
  return 0;
}
