// Tiling constants of Joule's CUDA kernels (the units inside which k is permuted; a short last block is
// zero-padded). The weight formats themselves are kernels/formats/formats.h: the GPU reads the CPU formats byte
// for byte. Plain constants, usable from host and device code.
#pragma once
#include <cstdint>

#include "kernels/formats/formats.h"

namespace joule::cuda {

constexpr int kBlockKF16 = 64;   // W4A16 and 2:4: four m16n8k16 steps
constexpr int kBlockKS8 = 128;   // W8A8: four m16n8k32 steps

// Largest K of the s8 GEMM (int32 accumulators cannot overflow): the format's bound, as on the CPU.
constexpr int64_t kS8MaxK = formats::kW8A8MaxK;

static_assert(kBlockKF16 % formats::kSp24KPerMetaWord == 0, "a 2:4 K block holds whole metadata words");

}  // namespace joule::cuda
