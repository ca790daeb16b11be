// Reading small input files (recipes, data, text) the one safe way: a regular file only (a FIFO, a device such as
// /dev/zero or a folder is refused before it is opened for reading, so nothing blocks or reads forever), no larger
// than the caller's cap, in one line on failure ("<what> '<path>': ..."). LibTorch-free.
#pragma once
#include <cstdint>
#include <string>

namespace joule::io {

std::string read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& what);

}  // namespace joule::io
