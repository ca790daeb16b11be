// CUDA implementations of the joule:: ops (schemas in compress/ops/joule_ops.cpp): a thin binding over the
// launchers in cuda/kernels.h, compiled into libjoule_ops only when the CUDA kernels are built. A quantized
// model moved to the GPU (.to("cuda")) runs unchanged: x may be float32 (the usual case), float16 or bfloat16,
// and y has x's dtype. Weight buffers are the CPU-format tensors moved to CUDA and are read as they are (no
// repack, no cache); float buffers that a .half() model turned into 16-bit are converted back to float per call.
//
//   linear_w8a8: x -> int8 per token on the GPU (dynamic, or the static x_scale; smooth_inv applied first), then
//                the s8 tensor-core GEMM with the f32 epilogue rounded once to x's dtype.
//   linear_w4:   x in fp16 or bf16 feeds the W4A16 kernel directly; float32 x is rounded to fp16 first (10-bit
//                mantissa; activations above 65504 would overflow) and y is returned as float32.
//   linear_sp24: the same dtype rule as linear_w4; the float32 values buffer (the CPU format) is rounded per call
//                to the compute dtype (fp16, or bf16 for bf16 x) and the int16 meta is read as the uint16 words
//                of kernels/formats/formats.h, so a packed model runs on CPU and GPU from one archive.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/kernels.h"
#include "compress/ops/binding.h"

namespace joule::ops {
namespace {

cuda::DType dtype_of(const at::Tensor& x, const char* op) {
  switch (x.scalar_type()) {
    case at::kFloat: return cuda::DType::kF32;
    case at::kHalf: return cuda::DType::kF16;
    case at::kBFloat16: return cuda::DType::kBF16;
    default: TORCH_CHECK(false, op, ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
  }
}

// x [..., K] on the GPU -> contiguous [M, K].
at::Tensor cuda_rows(const at::Tensor& x, int64_t K, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor");
  return rows_of(x, K, op);
}

// A float32 contiguous copy (or the tensor itself) on x's device, checked for `numel` elements.
at::Tensor as_float(const at::Tensor& t, const at::Tensor& x, int64_t numel, const char* op, const char* what) {
  TORCH_CHECK(t.device() == x.device(), op, ": ", what, " is on ", t.device(), " but x is on ", x.device());
  TORCH_CHECK(t.numel() == numel, op, ": ", what, " must have ", numel, " elements, got ", t.sizes());
  return t.to(at::kFloat).contiguous();
}

void check_status(cuda::Status s, const char* op, int64_t M, int64_t N, int64_t K) {
  TORCH_CHECK(s == cuda::Status::kOk, op, ": CUDA kernel failed: ", cuda::status_string(s), " (M=", M, " N=", N,
              " K=", K, ")");
}

at::Tensor linear_w8a8_cuda(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& w_scale,
                            const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& x_scale,
                            const std::optional<at::Tensor>& smooth_inv) {
  const char* op = "linear_w8a8";
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(qweight.scalar_type() == at::kChar && qweight.dim() == 2 && qweight.is_contiguous() &&
                  qweight.device() == x.device(),
              op, ": qweight must be contiguous int8 [N, K] on ", x.device(), ", got ", qweight.scalar_type(), " ",
              qweight.sizes(), " on ", qweight.device());
  const int64_t N = qweight.size(0), K = qweight.size(1);
  const cuda::DType dt = dtype_of(x, op);
  at::Tensor x2 = cuda_rows(x, K, op);
  const int64_t M = x2.size(0);
  at::Tensor ws = as_float(w_scale, x, N, op, "w_scale");
  at::Tensor b = bias && bias->defined() ? as_float(*bias, x, N, op, "bias") : at::Tensor();
  at::Tensor xs_static = x_scale && x_scale->defined() ? as_float(*x_scale, x, 1, op, "x_scale") : at::Tensor();
  at::Tensor sm = smooth_inv && smooth_inv->defined() ? as_float(*smooth_inv, x, K, op, "smooth_inv") : at::Tensor();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();

  at::Tensor q = at::empty({M, K}, x.options().dtype(at::kChar));
  at::Tensor xs = at::empty({M}, x.options().dtype(at::kFloat));
  check_status(cuda::launch_quantize_rows_s8(dt, x2.data_ptr(), sm.defined() ? sm.data_ptr<float>() : nullptr,
                                             xs_static.defined() ? xs_static.data_ptr<float>() : nullptr,
                                             q.data_ptr<int8_t>(), xs.data_ptr<float>(), M, K, stream),
               op, M, N, K);
  at::Tensor y = at::empty({M, N}, x.options());
  check_status(cuda::launch_gemm_s8s8(q.data_ptr<int8_t>(), xs.data_ptr<float>(), qweight.data_ptr<int8_t>(),
                                      ws.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, dt,
                                      y.data_ptr(), M, N, K, stream),
               op, M, N, K);
  return y.view(out_shape(x, N));
}

at::Tensor linear_w4_cuda(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                          const at::Tensor& zeros, int64_t group_size, int64_t in_features,
                          const std::optional<at::Tensor>& bias) {
  const char* op = "linear_w4";
  const int64_t K = in_features;
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(cuda::w4_group_valid(group_size), op, ": group_size ", group_size, " is not a power of two >= 2");
  TORCH_CHECK(qweight.scalar_type() == at::kByte && qweight.dim() == 2 && qweight.is_contiguous() &&
                  qweight.size(1) == cuda::w4_row_bytes(K) && qweight.device() == x.device(),
              op, ": qweight must be contiguous uint8 [N, ", cuda::w4_row_bytes(K), "] for K=", K, " on ", x.device(),
              ", got ", qweight.scalar_type(), " ", qweight.sizes(), " on ", qweight.device());
  const int64_t N = qweight.size(0), G = cuda::w4_groups(K, group_size);
  TORCH_CHECK(zeros.scalar_type() == at::kByte && zeros.is_contiguous() && zeros.device() == x.device() &&
                  zeros.sizes() == at::IntArrayRef({N, G}),
              op, ": zeros must be contiguous uint8 [", N, ", ", G, "], got ", zeros.scalar_type(), " ", zeros.sizes());
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == N && scales.size(1) == G, op, ": scales must be [", N, ", ", G,
              "], got ", scales.sizes());
  at::Tensor s = as_float(scales, x, N * G, op, "scales");
  at::Tensor b = bias && bias->defined() ? as_float(*bias, x, N, op, "bias") : at::Tensor();
  const cuda::DType in_dt = dtype_of(x, op);
  at::Tensor x2 = cuda_rows(x, K, op);
  if (in_dt == cuda::DType::kF32) x2 = x2.to(at::kHalf);
  const cuda::DType dt = in_dt == cuda::DType::kBF16 ? cuda::DType::kBF16 : cuda::DType::kF16;
  const int64_t M = x2.size(0);
  at::Tensor y = at::empty({M, N}, x2.options());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  check_status(cuda::launch_gemm_w4(dt, x2.data_ptr(), qweight.data_ptr<uint8_t>(), s.data_ptr<float>(),
                                    zeros.data_ptr<uint8_t>(), b.defined() ? b.data_ptr<float>() : nullptr,
                                    y.data_ptr(), M, N, K, group_size, stream),
               op, M, N, K);
  if (in_dt == cuda::DType::kF32) y = y.to(at::kFloat);
  return y.view(out_shape(x, N));
}

at::Tensor linear_sp24_cuda(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                            int64_t in_features, const std::optional<at::Tensor>& bias) {
  const char* op = "linear_sp24";
  const int64_t K = in_features;
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(K > 0 && K % cuda::kSp24KAlign == 0, op, ": in_features=", K, " is not a positive multiple of ",
              cuda::kSp24KAlign);
  TORCH_CHECK(values.dim() == 2 && values.size(1) == cuda::sp24_values_cols(K) && values.device() == x.device() &&
                  at::isFloatingType(values.scalar_type()),
              op, ": values must be floating [N, ", cuda::sp24_values_cols(K), "] for K=", K, " on ", x.device(),
              ", got ", values.scalar_type(), " ", values.sizes(), " on ", values.device());
  const int64_t N = values.size(0);
  TORCH_CHECK(meta.scalar_type() == at::kShort && meta.is_contiguous() && meta.device() == x.device() &&
                  meta.sizes() == at::IntArrayRef({N, cuda::sp24_meta_cols(K)}),
              op, ": meta must be contiguous int16 [", N, ", ", cuda::sp24_meta_cols(K), "] on ", x.device(), ", got ",
              meta.scalar_type(), " ", meta.sizes(), " on ", meta.device());
  at::Tensor b = bias && bias->defined() ? as_float(*bias, x, N, op, "bias") : at::Tensor();
  const cuda::DType in_dt = dtype_of(x, op);
  at::Tensor x2 = cuda_rows(x, K, op);
  if (in_dt == cuda::DType::kF32) x2 = x2.to(at::kHalf);
  const cuda::DType dt = in_dt == cuda::DType::kBF16 ? cuda::DType::kBF16 : cuda::DType::kF16;
  at::Tensor v = values.to(x2.scalar_type()).contiguous();
  const int64_t M = x2.size(0);
  at::Tensor y = at::empty({M, N}, x2.options());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  check_status(cuda::launch_gemm_sp24(dt, x2.data_ptr(), v.data_ptr(),
                                      reinterpret_cast<const uint16_t*>(meta.data_ptr<int16_t>()),
                                      b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr(), M, N, K, stream),
               op, M, N, K);
  if (in_dt == cuda::DType::kF32) y = y.to(at::kFloat);
  return y.view(out_shape(x, N));
}

}  // namespace

TORCH_LIBRARY_IMPL(joule, CUDA, m) {
  m.impl("linear_w8a8", linear_w8a8_cuda);
  m.impl("linear_w4", linear_w4_cuda);
  m.impl("linear_sp24", linear_sp24_cuda);
}

}  // namespace joule::ops
