// Schema registration (from compress/ops/schema.h), CPU implementations of the joule:: ops (a thin LibTorch
// binding over the plain kernels in kernels/cpu) and their Meta (shape-only) implementation, which torch.export,
// torch.compile and FakeTensor trace through. Shape and dtype errors name the op and the offending sizes.
#include <ATen/ATen.h>
#include <ATen/core/stack.h>
#include <caffe2/core/common.h>
#include <torch/library.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>

#include "compress/ops/binding.h"
#include "compress/ops/ops.h"
#include "compress/ops/pack_cache.h"
#include "compress/ops/schema.h"
#include "kernels/formats/formats.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/sp24.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/w4.h"
#include "kernels/cpu/w8a8.h"

namespace joule::ops {

bool ensure_ops_registered() { return true; }

std::string torch_version_mismatch() {
  // TORCH_VERSION is what the headers said at build time; the build options are libtorch's own, at run time.
  const auto& options = caffe2::GetBuildOptions();
  auto it = options.find("TORCH_VERSION");
  const std::string runtime = it == options.end() ? "unknown" : it->second;
  if (runtime == TORCH_VERSION) return "";
  return "libjoule_ops: built against torch " TORCH_VERSION " but loaded into torch " + runtime +
         "; rebuild Joule against this torch (or install torch==" TORCH_VERSION ")";
}

namespace {

// Said once when the library is loaded (torch.ops.load_library, or a C++ program that links it): a mismatched
// LibTorch fails later in ways that do not name the cause.
const bool kVersionChecked = [] {
  std::string msg = torch_version_mismatch();
  if (!msg.empty()) std::fprintf(stderr, "%s\n", msg.c_str());
  return true;
}();

// x [..., K] float32 -> contiguous [M, K].
at::Tensor float_rows(const at::Tensor& x, int64_t K, const char* op) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": x must be float32, got ", x.scalar_type());
  return rows_of(x, K, op);
}

const float* bias_ptr(const std::optional<at::Tensor>& bias, int64_t N, const char* op) {
  if (!bias || !bias->defined()) return nullptr;
  TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->dim() == 1 && bias->size(0) == N && bias->is_contiguous(), op,
              ": bias must be contiguous float32 [", N, "], got ", bias->scalar_type(), " ", bias->sizes());
  return bias->data_ptr<float>();
}

at::Tensor linear_w8a8_cpu(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& w_scale,
                           const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& x_scale,
                           const std::optional<at::Tensor>& smooth_inv) {
  TORCH_CHECK(qweight.scalar_type() == at::kChar && qweight.dim() == 2 && qweight.is_contiguous(),
              "linear_w8a8: qweight must be contiguous int8 [N, K], got ", qweight.scalar_type(), " ", qweight.sizes());
  int64_t N = qweight.size(0), K = qweight.size(1);
  TORCH_CHECK(K <= kernels::kW8A8MaxK, "linear_w8a8: K=", K, " exceeds ", kernels::kW8A8MaxK,
              " (int32 accumulation could overflow)");
  TORCH_CHECK(w_scale.scalar_type() == at::kFloat && w_scale.numel() == N && w_scale.is_contiguous(),
              "linear_w8a8: w_scale must be contiguous float32 [", N, "], got ", w_scale.scalar_type(), " ", w_scale.sizes());
  kernels::ActQuant aq;
  if (x_scale && x_scale->defined()) {
    TORCH_CHECK(x_scale->scalar_type() == at::kFloat && x_scale->numel() == 1, "linear_w8a8: x_scale must be one float32, got ",
                x_scale->scalar_type(), " ", x_scale->sizes());
    aq.static_scale = x_scale->item<float>();
    TORCH_CHECK(aq.static_scale > 0 && std::isfinite(aq.static_scale), "linear_w8a8: x_scale must be positive and finite, got ",
                aq.static_scale);
  }
  if (smooth_inv && smooth_inv->defined()) {
    TORCH_CHECK(smooth_inv->scalar_type() == at::kFloat && smooth_inv->numel() == K && smooth_inv->is_contiguous(),
                "linear_w8a8: smooth_inv must be contiguous float32 [", K, "], got ", smooth_inv->scalar_type(), " ",
                smooth_inv->sizes());
    aq.smooth_inv = smooth_inv->data_ptr<float>();
  }
  at::Tensor x2 = float_rows(x, K, "linear_w8a8");
  at::Tensor y = at::empty({x2.size(0), N}, x.options());
  // The VNNI tiles of qweight, packed on its first call (empty where the CPU has no VNNI: the kernel then ignores it).
  static PackCache<kernels::W8A8Packed> packs;
  const auto packed = packs.get(qweight, [&] { return kernels::pack_w8a8(qweight.data_ptr<int8_t>(), N, K); });
  kernels::linear_w8a8(x2.data_ptr<float>(), x2.size(0), K, qweight.data_ptr<int8_t>(), w_scale.data_ptr<float>(), N,
                       bias_ptr(bias, N, "linear_w8a8"), y.data_ptr<float>(), aq, packed.get());
  return y.view(out_shape(x, N));
}

// linear_w4 and its int8-activation form linear_w4a8 (execution only: compress/ops/schema.h) share arguments and checks.
template <bool kInt8Activations>
at::Tensor linear_w4_cpu(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales, const at::Tensor& zeros,
                         int64_t group_size, int64_t in_features, const std::optional<at::Tensor>& bias) {
  const int64_t K = in_features;
  TORCH_CHECK(kernels::w4_group_valid(group_size), "linear_w4: group_size ", group_size,
              " is not a power of two >= 2");
  TORCH_CHECK(qweight.scalar_type() == at::kByte && qweight.dim() == 2 && qweight.is_contiguous() &&
                  qweight.size(1) == kernels::w4_row_bytes(K),
              "linear_w4: qweight must be contiguous uint8 [N, ", kernels::w4_row_bytes(K), "] for K=", K, ", got ",
              qweight.scalar_type(), " ", qweight.sizes());
  int64_t N = qweight.size(0), G = kernels::w4_groups(K, group_size);
  TORCH_CHECK(scales.scalar_type() == at::kFloat && scales.is_contiguous() && scales.sizes() == at::IntArrayRef({N, G}),
              "linear_w4: scales must be contiguous float32 [", N, ", ", G, "], got ", scales.scalar_type(), " ", scales.sizes());
  TORCH_CHECK(zeros.scalar_type() == at::kByte && zeros.is_contiguous() && zeros.sizes() == at::IntArrayRef({N, G}),
              "linear_w4: zeros must be contiguous uint8 [", N, ", ", G, "], got ", zeros.scalar_type(), " ", zeros.sizes());
  at::Tensor x2 = float_rows(x, K, "linear_w4");
  at::Tensor y = at::empty({x2.size(0), N}, x.options());
  const float* b = bias_ptr(bias, N, "linear_w4");
  if constexpr (kInt8Activations) {
    // The panels of qweight with its scales and zeros (pack_w4a8), made on the first call and kept while they live.
    static PackCache<kernels::W4A8Packed> packs;
    std::shared_ptr<const kernels::W4A8Packed> packed;
    if (kernels::isa::w4a8_impl(group_size) != kernels::isa::W4A8Impl::kReference)
      packed = packs.get(
          qweight,
          [&] {
            return kernels::pack_w4a8(qweight.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                                      zeros.data_ptr<uint8_t>(), N, K, group_size);
          },
          {scales, zeros});
    kernels::linear_w4a8(x2.data_ptr<float>(), x2.size(0), K, qweight.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                         zeros.data_ptr<uint8_t>(), N, group_size, b, y.data_ptr<float>(), packed.get());
  } else {
    kernels::linear_w4(x2.data_ptr<float>(), x2.size(0), K, qweight.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                       zeros.data_ptr<uint8_t>(), N, group_size, b, y.data_ptr<float>());
  }
  return y.view(out_shape(x, N));
}

// meta is stored as int16 (TorchScript archives serialize it everywhere; uint16 tensors are newer) and read as
// the uint16 words of the format.
at::Tensor linear_sp24_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t in_features,
                           const std::optional<at::Tensor>& bias) {
  const int64_t K = in_features;
  TORCH_CHECK(K > 0 && K % kernels::kSp24KAlign == 0, "linear_sp24: in_features=", K, " is not a positive multiple of ",
              kernels::kSp24KAlign);
  TORCH_CHECK(values.scalar_type() == at::kFloat && values.dim() == 2 && values.is_contiguous() &&
                  values.size(1) == kernels::sp24_values_cols(K),
              "linear_sp24: values must be contiguous float32 [N, ", kernels::sp24_values_cols(K), "] for K=", K, ", got ",
              values.scalar_type(), " ", values.sizes());
  const int64_t N = values.size(0);
  TORCH_CHECK(meta.scalar_type() == at::kShort && meta.is_contiguous() &&
                  meta.sizes() == at::IntArrayRef({N, kernels::sp24_meta_cols(K)}),
              "linear_sp24: meta must be contiguous int16 [", N, ", ", kernels::sp24_meta_cols(K), "], got ",
              meta.scalar_type(), " ", meta.sizes());
  at::Tensor x2 = float_rows(x, K, "linear_sp24");
  at::Tensor y = at::empty({x2.size(0), N}, x.options());
  kernels::linear_sp24(x2.data_ptr<float>(), x2.size(0), K, values.data_ptr<float>(),
                       reinterpret_cast<const uint16_t*>(meta.data_ptr<int16_t>()), N,
                       bias_ptr(bias, N, "linear_sp24"), y.data_ptr<float>());
  return y.view(out_shape(x, N));
}

// LibTorch's own oneDNN (3.x, inside libtorch_cpu) through its mkldnn:: ops, called boxed so that no C++
// signature of theirs is compiled in: _reorder_linear_weight gives the blocked layout oneDNN's matmul wants (it
// serves any number of rows; the hint is the first call's), _linear_pointwise runs it with the activation as a
// post-op. nullptr when this LibTorch was built without them.
const c10::OperatorHandle* mkldnn_op(const char* name) {
  auto op = c10::Dispatcher::singleton().findOp({name, ""});
  return op ? new c10::OperatorHandle(*op) : nullptr;  // lives as long as the process, as the registry does
}

at::Tensor linear_float_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            c10::string_view activation, c10::string_view compute) {
  const bool gelu = activation == "gelu", gelu_tanh = activation == "gelu_tanh";
  TORCH_CHECK(gelu || gelu_tanh || activation == "none", "linear_float: activation must be none, gelu or gelu_tanh, got '",
              activation, "'");
  TORCH_CHECK(compute == "fp32" || compute == "bf16", "linear_float: compute must be fp32 or bf16, got '", compute, "'");
  const bool bf16 = compute == "bf16";
  static const c10::OperatorHandle* reorder = mkldnn_op("mkldnn::_reorder_linear_weight");
  static const c10::OperatorHandle* pointwise = mkldnn_op("mkldnn::_linear_pointwise");
  const bool onednn = reorder && pointwise && at::globalContext().userEnabledMkldnn() && x.numel() > 0 &&
                      x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && weight.dim() == 2 &&
                      weight.layout() == at::kStrided && (!bias || !bias->defined() || bias->scalar_type() == at::kFloat) &&
                      !(at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad()));
  if (!onednn) {  // the same maths on ATen: other dtypes, autograd, an empty batch
    const auto rounded = [&](const at::Tensor& t) { return bf16 ? t.to(at::kBFloat16).to(t.scalar_type()) : t; };
    at::Tensor y = at::linear(rounded(x), rounded(weight), bias ? std::optional<at::Tensor>(rounded(*bias)) : bias);
    return gelu || gelu_tanh ? at::gelu(y, gelu ? "none" : "tanh") : y;
  }
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear_float: x has ", x.sizes(), " but the weight expects K=",
              weight.size(1), " input features");
  // bf16: oneDNN's matmul takes one source dtype, so x is rounded per call (a pass over M x K) and the result
  // converted back; the weight is rounded once, into its cached layout.
  const at::ScalarType dt = bf16 ? at::kBFloat16 : at::kFloat;
  at::Tensor xc = x.to(dt).contiguous();
  static PackCache<at::Tensor> packs[2];
  const auto packed = packs[bf16].get(weight, [&] {
    torch::jit::Stack st{weight.to(dt).contiguous(), xc.numel() / xc.size(-1)};
    reorder->callBoxed(st);
    return st.at(0).toTensor();
  });
  torch::jit::Stack st{xc, *packed, bias && bias->defined() ? c10::IValue(bias->to(dt)) : c10::IValue(),
                       std::string(gelu || gelu_tanh ? "gelu" : "none"), c10::List<std::optional<at::Scalar>>(),
                       std::string(gelu_tanh ? "tanh" : "none")};
  pointwise->callBoxed(st);
  at::Tensor y = st.at(0).toTensor();
  return bf16 ? y.to(at::kFloat) : y;
}

at::Tensor linear_float_meta(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>&,
                             c10::string_view, c10::string_view) {
  TORCH_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.sym_size(-1) == weight.sym_size(1), "linear_float: x has ",
              x.sym_sizes(), " but the weight is ", weight.sym_sizes());
  std::vector<c10::SymInt> shape = x.sym_sizes().vec();
  shape.back() = weight.sym_size(0);
  return at::empty_symint(shape, x.options());
}

kernels::Strides4 strides4(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

at::Tensor attention_f32_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const std::optional<at::Tensor>& mask, std::optional<double> scale) {
  const bool has_mask = mask && mask->defined();
  const auto is_f32 = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.layout() == at::kStrided; };
  bool fast = q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && is_f32(q) && is_f32(k) && is_f32(v) &&
              (!has_mask || (is_f32(*mask) && mask->dim() <= 4)) &&
              !(at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad()));
  const int64_t B = fast ? q.size(0) : 0, H = fast ? q.size(1) : 0, Sq = fast ? q.size(2) : 0,
                Sk = fast ? k.size(2) : 0, D = fast ? q.size(3) : 0;
  fast = fast && k.size(0) == B && v.size(0) == B && k.size(1) == H && v.size(1) == H && v.size(2) == Sk &&
         k.size(3) == D && v.size(3) == D && Sq > 0 && Sk > 0;
  at::Tensor m4;
  if (fast && has_mask) {
    const auto sizes = mask->sizes();
    const int64_t want[4] = {B, H, Sq, Sk};
    for (size_t i = 0; i < sizes.size(); ++i) {  // broadcastable from the right, as sdpa takes it
      const int64_t s = sizes[i], w = want[4 - sizes.size() + i];
      fast = fast && (s == w || s == 1);
    }
    if (fast) m4 = mask->expand({B, H, Sq, Sk});
  }
  at::Tensor o;
  if (fast) o = at::empty({B, Sq, H, D}, q.options()).transpose(1, 2);
  if (!fast || !kernels::attention_f32_fast_supported(D, strides4(q), strides4(k), strides4(v), strides4(o)))
    return at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, scale);
  const float sc = static_cast<float>(scale ? *scale : 1.0 / std::sqrt(double(D)));
  kernels::attention_f32(q.data_ptr<float>(), strides4(q), k.data_ptr<float>(), strides4(k), v.data_ptr<float>(),
                         strides4(v), has_mask ? m4.data_ptr<float>() : nullptr,
                         has_mask ? strides4(m4) : kernels::Strides4{0, 0, 0, 0}, o.data_ptr<float>(), strides4(o),
                         {B, H, Sq, Sk, D}, sc);
  return o;
}

at::Tensor attention_f32_meta(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const std::optional<at::Tensor>&, std::optional<double>) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention_f32: q, k, v must be [B, H, S, D]");
  std::vector<c10::SymInt> shape = q.sym_sizes().vec();
  shape.back() = v.sym_size(3);
  return at::empty_symint(shape, q.options());
}

// Every op's Meta kernel, from its schema entry: y has x's leading dims and dtype and N = the first packed buffer's
// rows; x's last dim must be K (the in_features argument, else the buffer's columns). Symbolic sizes pass through,
// so traces with dynamic batch or sequence dims work.
void packed_linear_meta(const c10::OperatorHandle& handle, torch::jit::Stack* stack) {
  const std::string qualname = handle.schema().name();
  const PackedLinearOp* op = qualname == "joule::linear_w4a8" ? &linear_w4() : find_packed_linear_op(qualname);
  TORCH_CHECK(op, qualname, ": no schema entry in compress/ops/schema.h");
  const size_t n = op->args.size();
  auto args = torch::jit::last(*stack, n);
  const at::Tensor x = args[op->first(ArgKind::Input)].toTensor();
  const at::Tensor w = args[op->first(ArgKind::Buffer)].toTensor();
  const int k_arg = op->index("in_features");
  const int64_t K = k_arg >= 0 ? args[k_arg].toInt() : w.size(1);
  TORCH_CHECK(x.dim() >= 1 && x.sym_size(-1) == K, op->name, ": x has ", x.sym_sizes(), " but the weight expects K=",
              K, " input features");
  std::vector<c10::SymInt> shape = x.sym_sizes().vec();
  shape.back() = w.sym_size(0);
  at::Tensor y = at::empty_symint(shape, x.options());
  torch::jit::drop(*stack, n);
  torch::jit::push(*stack, std::move(y));
}

}  // namespace

TORCH_LIBRARY(joule, m) {
  for (const auto* op : packed_linear_ops()) m.def(op->schema().c_str());  // compress/ops/schema.h
  m.def(linear_float_schema());
  m.def(attention_f32_schema());
  m.def(linear_w4a8_schema().c_str());
}

TORCH_LIBRARY_IMPL(joule, CPU, m) {
  m.impl("linear_w8a8", linear_w8a8_cpu);
  m.impl("linear_w4", linear_w4_cpu<false>);
  m.impl("linear_w4a8", linear_w4_cpu<true>);
  m.impl("linear_sp24", linear_sp24_cpu);
  m.impl("linear_float", linear_float_cpu);
  m.impl("attention_f32", attention_f32_cpu);
}

TORCH_LIBRARY_IMPL(joule, Meta, m) {
  for (const auto* op : packed_linear_ops())
    m.impl(op->name, torch::CppFunction::makeFromBoxedFunction<&packed_linear_meta>());
  m.impl("linear_float", linear_float_meta);
  m.impl("attention_f32", attention_f32_meta);
  m.impl("linear_w4a8", torch::CppFunction::makeFromBoxedFunction<&packed_linear_meta>());
}

}  // namespace joule::ops
