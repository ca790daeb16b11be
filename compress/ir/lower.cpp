// The execution lowering of compress/ir/lower.h: on an inlined forward of a module clone that shares the
// model's tensors, each qualifying aten::linear is replaced by joule::linear_float with the same operands, and a
// GELU that is its only reader (with a constant `approximate`) is folded into it; attention nodes become
// joule::attention_f32 with the same operands.
#include "compress/ir/lower.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>

#include "compress/ir/graph.h"
#include "compress/ops/ops.h"
#include "compress/ops/schema.h"
#include "kernels/cpu/isa.h"

namespace joule {

using torch::jit::Node;
using torch::jit::Value;

namespace {

std::atomic<FloatCompute> g_compute{FloatCompute::Fp32};
std::atomic<W4Activations> g_w4_act{W4Activations::Float};

bool lowering_enabled() {
  const char* v = std::getenv("JOULE_LOWER");
  return !(v && std::string(v) == "off");
}

// The activation name of linear_float for a GELU node reading `y` alone, "" when there is none to fuse.
std::string fusable_gelu(Value* y, Node*& gelu) {
  if (y->uses().size() != 1) return "";
  Node* n = y->uses()[0].user;
  if (n->kind() != c10::aten::gelu || n->inputs().at(0) != y) return "";
  auto approximate = torch::jit::toIValue(n->namedInput("approximate"));
  if (!approximate || !approximate->isString()) return "";
  const std::string a = approximate->toStringRef();
  if (a != "none" && a != "tanh") return "";
  gelu = n;
  return a == "none" ? "gelu" : "gelu_tanh";
}

// A scaled_dot_product_attention with constant dropout 0, not causal and no GQA: what joule::attention_f32 runs.
bool lowerable_attention(Node* n) {
  if (n->kind() != c10::Symbol::fromQualString("aten::scaled_dot_product_attention")) return false;
  auto constant = [&](const char* name) -> std::optional<c10::IValue> {
    auto i = n->schema().argumentIndexWithName(name);
    if (!i) return c10::IValue();  // absent in this schema: its default
    return torch::jit::toIValue(n->input(*i));
  };
  auto dropout = constant("dropout_p"), causal = constant("is_causal"), gqa = constant("enable_gqa");
  return dropout && (dropout->isNone() || (dropout->isDouble() && dropout->toDouble() == 0.0)) && causal &&
         (causal->isNone() || (causal->isBool() && !causal->toBool())) && gqa &&
         (gqa->isNone() || (gqa->isBool() && !gqa->toBool()));
}

}  // namespace

void set_float_compute(FloatCompute c) { g_compute.store(c); }
FloatCompute float_compute() { return g_compute.load(); }
bool cpu_has_bf16() { return kernels::isa::cpu_features().bf16; }
void set_w4_activations(W4Activations a) { g_w4_act.store(a); }
W4Activations w4_activations() { return g_w4_act.load(); }
bool cpu_has_w4a8() { return kernels::isa::cpu_features().avx2_fma(); }

Lowered lower_for_cpu(const torch::jit::Module& m) {
  Lowered out{m};
  if (!lowering_enabled() || !m.find_method("forward")) return out;
  torch::jit::Module copy = m.clone(/*inplace=*/true);  // new types, same tensors
  auto g = inlined_forward(copy);
  Value* self = g->inputs().at(0);
  ops::ensure_ops_registered();
  const c10::Symbol op = c10::Symbol::fromQualString("joule::linear_float");
  const c10::Symbol w4 = c10::Symbol::fromQualString(ops::linear_w4().qualname());
  const bool w4_int8 = w4_activations() == W4Activations::Int8;
  std::vector<Node*> linears, attentions, w4_nodes;
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* b) {
    for (Node* n : b->nodes()) {
      if (n->kind() == c10::aten::linear)
        if (auto path = attr_path_of(n->namedInput("weight"), self)) {
          at::Tensor w = get_tensor(copy, *path);
          if (w.scalar_type() == at::kFloat && w.dim() == 2 && w.device().is_cpu() && w.layout() == at::kStrided)
            linears.push_back(n);
        }
      if (lowerable_attention(n)) attentions.push_back(n);
      if (n->kind() == w4) {
        auto group = torch::jit::toIValue(n->input(ops::linear_w4().index("group_size")));
        if (w4_int8 && group && group->isInt() &&
            kernels::isa::w4a8_impl(group->toInt()) != kernels::isa::W4A8Impl::kReference)
          w4_nodes.push_back(n);
        else
          ++out.w4_float;
      }
      for (auto* sb : n->blocks()) walk(sb);
    }
  };
  walk(g->block());
  if (linears.empty() && attentions.empty() && w4_nodes.empty()) return out;  // w4_float counted all the same
  Value* compute = g->insertConstant(std::string(float_compute() == FloatCompute::Bf16 ? "bf16" : "fp32"));
  compute->node()->moveBefore(g->block()->nodes().front());
  for (Node* n : linears) {
    Node* gelu = nullptr;
    const std::string act = fusable_gelu(n->output(), gelu);
    torch::jit::WithInsertPoint guard(n);
    Value* y = g->insert(op, {n->namedInput("input"), n->namedInput("weight"), n->namedInput("bias"),
                              g->insertConstant(act.empty() ? std::string("none") : act), compute});
    if (gelu) {
      gelu->output()->replaceAllUsesWith(y);
      gelu->destroy();
      ++out.fused_gelu;
    }
    n->output()->replaceAllUsesWith(y);
    n->destroy();
    ++out.linears;
  }
  const c10::Symbol attention = c10::Symbol::fromQualString("joule::attention_f32");
  for (Node* n : attentions) {
    torch::jit::WithInsertPoint guard(n);
    Value* o = g->insert(attention, {n->namedInput("query"), n->namedInput("key"), n->namedInput("value"),
                                     n->namedInput("attn_mask"), n->namedInput("scale")});
    n->output()->replaceAllUsesWith(o);
    n->destroy();
    ++out.attention;
  }
  const c10::Symbol w4a8 = c10::Symbol::fromQualString("joule::linear_w4a8");
  for (Node* n : w4_nodes) {
    torch::jit::WithInsertPoint guard(n);
    std::vector<torch::jit::NamedValue> args(n->inputs().begin(), n->inputs().end());
    n->output()->replaceAllUsesWith(g->insert(w4a8, args));
    n->destroy();
    ++out.w4a8;
  }
  torch::jit::EliminateDeadCode(g);
  set_forward(copy, g);
  out.module = copy;
  return out;
}

}  // namespace joule
