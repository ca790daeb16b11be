// What Joule executes when it runs a model on the CPU (measurement, energy, benchmarks): a lowered copy in which
// each float32 aten::linear whose weight is a CPU parameter of the model becomes joule::linear_float (oneDNN, the
// weight reordered once per process: compress/ops/joule_ops.cpp), with an aten::gelu that alone reads its output
// fused in as the GEMM's post-op, each scaled_dot_product_attention (no dropout, not causal) becomes
// joule::attention_f32, and under `--w4a8` each joule::linear_w4 becomes joule::linear_w4a8 (kernels/cpu/attention.h; ATen's own where that has no fast path). LibTorch's aten::linear
// and its CPU attention's small GEMMs are MKL's sgemm, which on AMD CPUs runs well below the FMA peak
// (docs/PERF.md); oneDNN does not depend on the vendor.
//
// The copy shares the model's tensors (no weight is duplicated) and its own module types, so the model itself,
// what passes read and what is saved, is untouched: saved models keep aten::linear and load without Joule.
// JOULE_LOWER=off turns the lowering off (the A/B switch for benchmarks).
#pragma once
#include <torch/script.h>

namespace joule {

// What the lowered float linears compute in: float32 (the default), or bfloat16 (`joule --bf16`: x, W and b
// rounded to bf16, products summed in float32 by the CPU's bf16 dot-product instructions; the saved weights stay
// float32). Process-wide, as --threads is.
enum class FloatCompute { Fp32, Bf16 };
void set_float_compute(FloatCompute c);
FloatCompute float_compute();
// Whether this CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX-BF16); where it does not, oneDNN would
// emulate bf16 more slowly than float32, so `--bf16` is refused there.
bool cpu_has_bf16();

// What W4 layers (joule::linear_w4) compute in: float activations (the default: the saved model's own op), or
// int8 (`joule --w4a8`: each row of x quantized to int8 at run time, one scale per row, the products exact
// integers on AVX2 or VNNI: kernels/cpu/w4.h, linear_w4a8). Int8 changes the numbers (x is rounded to 8 bits), so
// it is an option, reported, never a silent default. Process-wide. Layers whose group the int8 kernel cannot take (below 8)
// keep float activations, and the count says so.
enum class W4Activations { Float, Int8 };
void set_w4_activations(W4Activations a);
W4Activations w4_activations();
// Whether this CPU has the int8 dot products a W4A8 kernel runs on (AVX2 or AVX-512 VNNI); `--w4a8` is refused
// without.
bool cpu_has_w4a8();

struct Lowered {
  torch::jit::Module module;  // the model itself when nothing was lowered
  int linears = 0;            // aten::linear nodes now joule::linear_float
  int fused_gelu = 0;         // of those, the ones with their GELU fused
  int attention = 0;          // aten::scaled_dot_product_attention nodes now joule::attention_f32
  int w4a8 = 0;               // joule::linear_w4 nodes now joule::linear_w4a8 (W4Activations::Int8)
  int w4_float = 0;           // linear_w4 nodes left on float activations (the setting, or under Int8 their group)
};

Lowered lower_for_cpu(const torch::jit::Module& m);

}  // namespace joule
