// The joule:: custom ops (TORCH_LIBRARY(joule, ...)) live in the shared library joule_ops. A saved model
// that uses them runs in any LibTorch program that loads it: C++ links libjoule_ops.so (and calls
// ensure_ops_registered() so the linker keeps it), Python calls torch.ops.load_library(path).
//
// Schemas and argument layouts: compress/ops/schema.h. Formats: kernels/formats/formats.h.
#pragma once
#include <string>

namespace joule::ops {

// Returns true; referencing it from a binary keeps libjoule_ops (and its registrations) linked in.
bool ensure_ops_registered();

// Empty when the LibTorch this library runs in is the version it was built against; else a one-line message
// naming both (also printed to stderr once when the library is loaded).
std::string torch_version_mismatch();

}  // namespace joule::ops
