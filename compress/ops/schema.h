// The joule:: ops' schemas and argument layouts, defined once. The binding registers the schema strings made
// here (TORCH_LIBRARY in compress/ops/joule_ops.cpp), the graph layer reads packed linears by argument name
// (compress/ir/graph.cpp), and the rewriting passes build calls from the same table (compress/ir/rewrite.h),
// so nothing else knows argument positions. Header-only: joule_ops and joule_compress both include it.
//
// Every op is a packed linear: y = x W^T (+ bias) with W held in packed buffers (formats: kernels/formats/formats.h).
// Argument kinds:
//   Input           the activation x float [..., K] (the GPU binding also takes fp16/bf16)
//   Buffer          a packed tensor, stored as a buffer of the model's top module; the first one is the op's
//                   "weight" (qweight, or the 2:4 values) in reports and analyses
//   OptionalBuffer  a buffer that some packings have (None otherwise)
//   Bias            the linear's bias, as the rewritten aten::linear had it (Tensor?)
//   Int             a constant shape argument (in_features, group_size)
#pragma once
#include <string>
#include <vector>

namespace joule::ops {

enum class ArgKind { Input, Buffer, OptionalBuffer, Bias, Int };

struct OpArg {
  const char* name;
  const char* type;  // schema type: "Tensor", "Tensor?", "int"
  ArgKind kind;
  const char* default_value = nullptr;  // schema default ("None"), or none
};

struct PackedLinearOp {
  const char* name;   // "linear_w8a8": the op is joule::<name>
  const char* quant;      // the graph layer's label for such ops ("w8a8", "w4", "sp24")
  const char* mac_dtype;  // what the multiply-accumulates run in, for the energy op model ("i8", "f32")
  std::vector<OpArg> args;

  std::string qualname() const { return std::string("joule::") + name; }
  // "linear_w8a8(Tensor x, Tensor qweight, ...) -> Tensor", as TORCH_LIBRARY's def() takes it.
  std::string schema() const {
    std::string s = std::string(name) + "(";
    for (size_t i = 0; i < args.size(); ++i) {
      s += std::string(i ? ", " : "") + args[i].type + " " + args[i].name;
      if (args[i].default_value) s += std::string("=") + args[i].default_value;
    }
    return s + ") -> Tensor";
  }
  // Position of argument `arg` in the call, -1 when the op has none of that name.
  int index(const std::string& arg) const {
    for (size_t i = 0; i < args.size(); ++i)
      if (arg == args[i].name) return static_cast<int>(i);
    return -1;
  }
  // Position of the first argument of `kind`, -1 when none.
  int first(ArgKind kind) const {
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i].kind == kind) return static_cast<int>(i);
    return -1;
  }
};

// W8A8: x float [..., K]; qweight int8 [N, K]; w_scale float32 [N]; bias float32 [N]; x_scale float32 [1] (static
// activation scale; None: per token at run time); smooth_inv float32 [K] (SmoothQuant's 1/s applied to x).
inline const PackedLinearOp& linear_w8a8() {
  static const PackedLinearOp op{"linear_w8a8", "w8a8", "i8",
                                 {{"x", "Tensor", ArgKind::Input},
                                  {"qweight", "Tensor", ArgKind::Buffer},
                                  {"w_scale", "Tensor", ArgKind::Buffer},
                                  {"bias", "Tensor?", ArgKind::Bias},
                                  {"x_scale", "Tensor?", ArgKind::OptionalBuffer, "None"},
                                  {"smooth_inv", "Tensor?", ArgKind::OptionalBuffer, "None"}}};
  return op;
}

// W4 (weight-only): qweight uint8 [N, ceil(K/2)]; scales float32 [N, ceil(K/G)]; zeros uint8 [N, ceil(K/G)];
// group_size G; in_features K (qweight's width cannot tell an odd K); bias float32 [N].
inline const PackedLinearOp& linear_w4() {
  static const PackedLinearOp op{"linear_w4", "w4", "f32",  // dequantized to float in registers
                                 {{"x", "Tensor", ArgKind::Input},
                                  {"qweight", "Tensor", ArgKind::Buffer},
                                  {"scales", "Tensor", ArgKind::Buffer},
                                  {"zeros", "Tensor", ArgKind::Buffer},
                                  {"group_size", "int", ArgKind::Int},
                                  {"in_features", "int", ArgKind::Int},
                                  {"bias", "Tensor?", ArgKind::Bias}}};
  return op;
}

// 2:4 sparse: values float32 [N, K/2]; meta int16 [N, K/16] (the uint16 words bit for bit); in_features K,
// K % 16 == 0; bias float32 [N].
inline const PackedLinearOp& linear_sp24() {
  static const PackedLinearOp op{"linear_sp24", "sp24", "f32",
                                 {{"x", "Tensor", ArgKind::Input},
                                  {"values", "Tensor", ArgKind::Buffer},
                                  {"meta", "Tensor", ArgKind::Buffer},
                                  {"in_features", "int", ArgKind::Int},
                                  {"bias", "Tensor?", ArgKind::Bias}}};
  return op;
}

inline const std::vector<const PackedLinearOp*>& packed_linear_ops() {
  static const std::vector<const PackedLinearOp*> all = {&linear_w8a8(), &linear_w4(), &linear_sp24()};
  return all;
}

// Not a packed format: the float linear Joule executes in place of aten::linear (and a following aten::gelu) when it
// runs a model on the CPU: y = act(x W^T + b) on oneDNN with W reordered once (compress/ir/lower.h). It exists
// only in the lowered copy a measurement runs, never in a saved model, and no pass reads it. activation: "none",
// "gelu" (erf) or "gelu_tanh"; compute: "fp32", or "bf16" (x, W and b rounded to bfloat16, float32 out).
inline const char* linear_float_schema() {
  return "linear_float(Tensor x, Tensor weight, Tensor? bias, str activation=\"none\", str compute=\"fp32\") -> Tensor";
}

// Not a packed format either: the attention Joule executes in place of aten::scaled_dot_product_attention (no
// dropout, not causal) on the CPU, kernels/cpu/attention.h; lowered copies only (compress/ir/lower.h). q, k, v
// [B, H, S, D]; mask additive float broadcastable to [B, H, Sq, Sk], or None; the output [B, H, Sq, D] is a view of
// [B, Sq, H, D] memory, so the usual transpose(1, 2).reshape(B, Sq, H*D) after it copies nothing.
inline const char* attention_f32_schema() {
  return "attention_f32(Tensor q, Tensor k, Tensor v, Tensor? mask=None, float? scale=None) -> Tensor";
}

// Not a format of its own: linear_w4's weights with int8 activations (kernels/cpu/w4.h, linear_w4a8), what `joule
// --w4a8` executes in place of linear_w4 (compress/ir/lower.h). Lowered copies only; linear_w4's arguments.
inline std::string linear_w4a8_schema() {
  PackedLinearOp op = linear_w4();
  op.name = "linear_w4a8";
  return op.schema();
}

// The op whose qualified name is `qualname` ("joule::linear_w4"), or nullptr.
inline const PackedLinearOp* find_packed_linear_op(const std::string& qualname) {
  for (const auto* op : packed_linear_ops())
    if (op->qualname() == qualname) return op;
  return nullptr;
}

// The op whose graph-layer label is `quant` ("w4"), or nullptr.
inline const PackedLinearOp* find_packed_linear_op_by_quant(const std::string& quant) {
  for (const auto* op : packed_linear_ops())
    if (quant == op->quant) return op;
  return nullptr;
}

}  // namespace joule::ops
