// The joule:: custom ops (TORCH_LIBRARY(joule, ...)) live in the shared library joule_ops. A saved model
// that uses them runs in any LibTorch program that loads it: C++ links libjoule_ops.so (and calls
// ensure_ops_registered() so the linker keeps it), Python calls torch.ops.load_library(path).
//
//   joule::linear_w8a8(Tensor x, Tensor qweight, Tensor w_scale, Tensor? bias, Tensor? x_scale=None,
//                      Tensor? smooth_inv=None) -> Tensor
//       x float32 [..., K]; qweight int8 [N, K]; w_scale float32 [N]; bias float32 [N]; x_scale float32 [1]
//       (static activation scale; None: per token at run time); smooth_inv float32 [K] (SmoothQuant)  (W8A8)
//   joule::linear_w4(Tensor x, Tensor qweight, Tensor scales, Tensor zeros, int group_size, int in_features,
//                    Tensor? bias) -> Tensor
//       x float32 [..., K]; qweight uint8 [N, ceil(K/2)]; scales float32 [N, ceil(K/G)];
//       zeros uint8 [N, ceil(K/G)]; bias float32 [N]                                        (W4, weight-only)
//   joule::linear_sp24(Tensor x, Tensor values, Tensor meta, int in_features, Tensor? bias) -> Tensor
//       x float32 [..., K]; values float32 [N, K/2]; meta int16 [N, K/16] (the uint16 words bit for bit);
//       bias float32 [N]; K % 16 == 0                                                     (2:4 sparse)
// Formats: kernels/quant_formats.h.
#pragma once

namespace joule::ops {

// Returns true; referencing it from a binary keeps libjoule_ops (and its registrations) linked in.
bool ensure_ops_registered();

}  // namespace joule::ops
