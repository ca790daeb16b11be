// What Joule executes when it runs a model on the CPU (measurement, energy, benchmarks): a lowered copy in which
// each float32 aten::linear whose weight is a CPU parameter of the model becomes joule::linear_f32 (oneDNN, the
// weight reordered once per process: compress/ops/joule_ops.cpp), with an aten::gelu that alone reads its output
// fused in as the GEMM's post-op, and each scaled_dot_product_attention (no dropout, not causal) becomes
// joule::attention_f32 (kernels/cpu/attention.h; ATen's own where that has no fast path). LibTorch's aten::linear
// and its CPU attention's small GEMMs are MKL's sgemm, which on AMD CPUs runs well below the FMA peak
// (docs/PERF.md); oneDNN does not depend on the vendor.
//
// The copy shares the model's tensors (no weight is duplicated) and its own module types, so the model itself,
// what passes read and what is saved, is untouched: saved models keep aten::linear and load without Joule.
// JOULE_LOWER=off turns the lowering off (the A/B switch for benchmarks).
#pragma once
#include <torch/script.h>

namespace joule {

struct Lowered {
  torch::jit::Module module;  // the model itself when nothing was lowered
  int linears = 0;            // aten::linear nodes now joule::linear_f32
  int fused_gelu = 0;         // of those, the ones with their GELU fused
  int attention = 0;          // aten::scaled_dot_product_attention nodes now joule::attention_f32
};

Lowered lower_for_cpu(const torch::jit::Module& m);

}  // namespace joule
