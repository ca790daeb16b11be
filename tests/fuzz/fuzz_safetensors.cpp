// libFuzzer target: the safetensors reader (compress/io/safetensors.h) on arbitrary bytes. Every input is opened;
// a valid one has every tensor's bytes read (they must lie inside the mapping), an invalid one must throw
// joule::Error; anything else (a crash, a sanitizer report, another exception) is a finding.
#include <cstdint>

#include "compress/base/error.h"
#include "compress/io/safetensors.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = joule::st::File::open(joule::fuzz::as_file(data, size));
    volatile uint8_t sum = 0;
    for (const auto& t : f.tensors())
      for (size_t i = 0; i < t.nbytes; ++i) sum = sum + t.data[i];
    for (const auto& t : f.tensors())
      if (f.find(t.name) == nullptr) abort();
  } catch (const joule::Error&) {
  }
  return 0;
}
