// Scaled dot-product attention in float32, per (batch, head): O = softmax(Q K^T * scale + mask) V. What Joule runs
// for aten::scaled_dot_product_attention when it executes a model on the CPU (compress/ir/lower.h): ATen's CPU
// flash attention does its small per-head GEMMs through MKL, which takes the slow generic path on AMD CPUs
// (docs/PERF.md). Tensors are addressed by element strides, so the [B, S, H, D] memory of a projection viewed as
// [B, H, S, D] is read in place and the output is written straight into [B, S, H*D].
#pragma once
#include <cstdint>

namespace joule::kernels {

struct AttentionShape {
  int64_t batch, heads, q_len, k_len, head_dim;
};

// Element strides of a 4-d operand, in the order (batch, head, row, column). For Q, K, V and O the row is the
// sequence position and the column the head dimension; for the additive mask the row is the query and the
// column the key. A stride of 0 broadcasts (a [B, 1, 1, S] padding mask has head and row strides 0).
struct Strides4 {
  int64_t b, h, r, c;
};

// mask may be null (no mask). A query row whose every score is -inf (all keys masked with -inf) gives zeros.
// Scalar reference: scores, max, exp and sums in float, in index order.
void attention_f32_ref(const float* q, Strides4 qs, const float* k, Strides4 ks, const float* v, Strides4 vs,
                       const float* mask, Strides4 ms, float* o, Strides4 os, AttentionShape shape, float scale);

// The fast kernel, same signature and results within float rounding (the exp is a polynomial within 2 ulp).
// Runs where attention_f32_fast_supported(); elsewhere it is the reference.
void attention_f32(const float* q, Strides4 qs, const float* k, Strides4 ks, const float* v, Strides4 vs,
                   const float* mask, Strides4 ms, float* o, Strides4 os, AttentionShape shape, float scale);

// Whether attention_f32 has a fast path for this head dim and these strides on this CPU (isa.h decides): the
// binding falls back to ATen's attention otherwise instead of running the scalar reference.
bool attention_f32_fast_supported(int64_t head_dim, Strides4 qs, Strides4 ks, Strides4 vs, Strides4 os);

}  // namespace joule::kernels
