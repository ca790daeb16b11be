// Reading small input files (recipes, data, text) the one safe way: a regular file only (a FIFO, a device such as
// /dev/zero or a folder is refused before it is opened for reading, so nothing blocks or reads forever), no larger
// than the caller's cap, in one line on failure ("<what> '<path>': ..."). LibTorch-free.
#pragma once
#include <cstdint>
#include <string>

namespace joule::io {

// The caps the loaders use: data (STS-B, sentences, calibration text) and configs (JSON, vocab, tokenizer.json).
inline constexpr uint64_t kMaxDataBytes = uint64_t{1} << 30;
inline constexpr uint64_t kMaxConfigBytes = uint64_t{64} << 20;

std::string read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& what);

}  // namespace joule::io
