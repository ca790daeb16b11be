// Graph analysis over TorchScript IR. Analyse-only: nothing here mutates the caller's module. Ops are kept
// in graph order (a depth-first walk of blocks), never in hash-map order, so reports are deterministic.
#include "compress/ir/graph.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <functional>
#include <map>
#include <numeric>
#include <set>

#include "compress/base/error.h"
#include "compress/ops/schema.h"

namespace joule {
using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;
namespace aten = c10::aten;
namespace prim = c10::prim;

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::Linear: return "linear";
    case OpKind::Conv1d: return "conv1d";
    case OpKind::Conv2d: return "conv2d";
    case OpKind::MatMul: return "matmul";
    case OpKind::Embedding: return "embedding";
  }
  return "?";
}

int64_t Analysis::total_macs() const {
  int64_t t = 0;
  for (const auto& op : ops) t += op.macs;
  return t;
}

std::optional<size_t> Analysis::chain_from(size_t producer) const {
  for (size_t i = 0; i < chains.size(); ++i)
    if (chains[i].producer == producer) return i;
  return std::nullopt;
}

torch::jit::Module submodule(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module m = root;
  size_t start = 0;
  while (start < path.size()) {
    size_t dot = path.find('.', start);
    std::string name = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!m.hasattr(name) || !m.attr(name).isModule()) fail("no submodule '{}' in path '{}'", name, path);
    m = m.attr(name).toModule();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return m;
}

static std::pair<std::string, std::string> split_last(const std::string& path) {
  size_t dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

at::Tensor get_tensor(const torch::jit::Module& root, const std::string& path) {
  auto [mod, name] = split_last(path);
  auto m = submodule(root, mod);
  if (!m.hasattr(name) || !m.attr(name).isTensor()) fail("no tensor '{}' in the model", path);
  return m.attr(name).toTensor();
}

void set_tensor(torch::jit::Module& root, const std::string& path, const at::Tensor& value) {
  auto [mod, name] = split_last(path);
  auto m = submodule(root, mod);
  m.setattr(name, value);
}

namespace {

void collect(Block* b, std::vector<Node*>& out) {
  for (Node* n : b->nodes()) {
    out.push_back(n);
    for (Block* sb : n->blocks()) collect(sb, out);
  }
}

std::optional<std::string> attr_path(Value* v, Value* self) {
  std::vector<std::string> names;
  while (v != self) {
    Node* n = v->node();
    if (n->kind() != prim::GetAttr) return std::nullopt;
    names.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) path += (path.empty() ? "" : ".") + *it;
  return path;
}

std::optional<int64_t> const_int(Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (iv && iv->isInt()) return iv->toInt();
  return std::nullopt;
}

// Follows row slices of a parameter (split/chunk along dim 0, slice on dim 0): packed projections such as
// nn.MultiheadAttention's in_proj_weight reach aten::linear this way.
Value* through_row_slices(Value* v, bool& derived) {
  for (int depth = 0; depth < 4; ++depth) {
    Node* n = v->node();
    if (n->kind() == prim::ListUnpack || n->kind() == aten::__getitem__) {
      Node* src = n->input(0)->node();
      auto k = src->kind();
      bool row_split = (k == aten::split || k == aten::chunk || k == aten::split_with_sizes ||
                        k == aten::unsafe_chunk || k == aten::unsafe_split) &&
                       src->inputs().size() >= 3 && const_int(src->input(2)) == 0;
      if (!row_split) return v;
      v = src->input(0);
      derived = true;
    } else if (n->kind() == aten::slice && const_int(n->input(1)) == 0) {
      v = n->input(0);
      derived = true;
    } else {
      return v;
    }
  }
  return v;
}

bool maps_zero_to_zero(c10::Symbol k) {
  static const std::set<c10::Symbol> ops = {
      aten::relu,  aten::relu_,  aten::gelu,      aten::tanh,     aten::silu,      aten::leaky_relu,
      aten::relu6, aten::hardtanh, aten::hardswish, aten::mish,   aten::elu,       aten::dropout,
      aten::contiguous, aten::clone, aten::feature_dropout, aten::detach};
  return ops.count(k) > 0;
}

// Reads of a tensor's metadata, not its values: they do not consume features. (A size read that matters
// after a shrink shows up as a shape error when the pipeline measures the model.)
bool reads_metadata_only(c10::Symbol k) {
  static const std::set<c10::Symbol> ops = {aten::dim,   aten::size,           prim::device, prim::dtype,
                                            prim::layout, prim::requires_grad, prim::is_cuda};
  return ops.count(k) > 0;
}

struct Found {
  Node* node;
  WeightOp op;
  int act_input;  // index of the activation operand in node->inputs()
};

}  // namespace

std::shared_ptr<Graph> inlined_forward(const torch::jit::Module& module) {
  if (!module.find_method("forward")) fail("the model has no forward method");
  std::shared_ptr<Graph> g = module.get_method("forward").graph()->copy();
  torch::jit::Inline(*g);
  // Fold branches on constants (e.g. dropout's `inplace`) so a value has only the uses that can run.
  torch::jit::ConstantPropagation(g);
  torch::jit::EliminateDeadCode(g);
  return g;
}

void set_forward(torch::jit::Module& m, std::shared_ptr<Graph> graph) {
  auto type = m.type();
  auto cu = m._ivalue()->compilation_unit();
  auto& old = m.get_method("forward").function();
  c10::FunctionSchema schema = old.getSchema();
  c10::QualifiedName name = old.qualname();
  type->unsafeRemoveMethod("forward");
  cu->unsafeRemoveMethod(name);
  torch::jit::Function* fn = cu->create_function(name, std::move(graph));
  fn->setSchema(std::move(schema));  // keeps argument names and defaults
  type->addMethod(fn);
}

std::optional<std::string> attr_path_of(Value* v, Value* self) { return attr_path(v, self); }

std::map<std::string, size_t> attr_readers(const std::shared_ptr<Graph>& g) {
  Value* self = g->inputs().at(0);
  std::vector<Node*> nodes;
  collect(g->block(), nodes);
  std::map<std::string, size_t> readers;
  for (Node* n : nodes) {
    if (n->kind() == prim::GetAttr) continue;
    for (Value* in : n->inputs())
      if (auto p = attr_path(in, self)) ++readers[*p];
  }
  return readers;
}

std::string packed_buffer_name(const std::string& weight_path, const std::string& what) {
  std::string s = "_joule_" + weight_path;
  for (char& c : s)
    if (c == '.') c = '_';
  return s + "_" + what;
}

namespace {

// The weight ops of the inlined forward, in graph order, with the parameter use counts.
struct Scan {
  std::shared_ptr<Graph> g;
  std::vector<Found> found;
  std::map<std::string, int> param_uses;
  int64_t total_params = 0;
};

Scan scan(const torch::jit::Module& module) {
  Scan sc;
  std::shared_ptr<Graph>& g = sc.g;
  g = inlined_forward(module);
  Value* self = g->inputs().at(0);

  std::set<std::string> params;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    params.insert(p.name);
    sc.total_params += p.value.numel();
  }

  std::vector<Node*> nodes;
  collect(g->block(), nodes);

  // How many nodes read each parameter: weights read more than once cannot be shrunk for one consumer.
  // Fused inference kernels that take whole layers' weights and derive every size from them (PyTorch's
  // encoder-layer fast path) stay consistent when producer and consumer shrink together: not counted.
  std::map<std::string, int>& param_uses = sc.param_uses;
  for (Node* n : nodes)
    if (n->kind() == prim::GetAttr)
      if (auto p = attr_path(n->output(), self); p && params.count(*p))
        for (const auto& use : n->output()->uses())
          param_uses[*p] += use.user->kind() != aten::_transformer_encoder_layer_fwd &&
                            !reads_metadata_only(use.user->kind());

  auto param_of = [&](Value* v, bool& derived) -> std::optional<std::string> {
    derived = false;
    auto p = attr_path(through_row_slices(v, derived), self);
    if (p && params.count(*p)) return p;
    return std::nullopt;
  };

  std::vector<Found>& found = sc.found;
  for (Node* n : nodes) {
    auto k = n->kind();
    WeightOp op{};
    int w_idx = -1, b_idx = -1, act = 0;
    if (k == aten::linear) {
      op.kind = OpKind::Linear, w_idx = 1, b_idx = 2, op.in_dim = 1, op.out_dim = 0;
    } else if (k == aten::conv1d || k == aten::conv2d) {
      op.kind = k == aten::conv1d ? OpKind::Conv1d : OpKind::Conv2d;
      w_idx = 1, b_idx = 2, op.in_dim = 1, op.out_dim = 0;
      op.groups = const_int(n->input(6)).value_or(-1);  // -1: groups not a constant
    } else if (k == aten::embedding) {
      op.kind = OpKind::Embedding, w_idx = 0, act = 1;
    } else if (k == aten::matmul || k == aten::mm) {
      op.kind = OpKind::MatMul;
      bool d = false;
      if (param_of(n->input(1), d)) {
        w_idx = 1, act = 0;  // x @ W: W is [K, N]
      } else if (param_of(n->input(0), d)) {
        w_idx = 0, act = 1;  // W @ x: W is [N, K]
      }
    } else if (const ops::PackedLinearOp* pl = ops::find_packed_linear_op(k.toQualString())) {
      // Packed weights are buffers of the top module, not parameters: resolved by path alone. The first
      // buffer argument is the op's weight; the other buffers (present ones) its quant_tensors.
      op.kind = OpKind::Linear, op.in_dim = 1, op.out_dim = 0;
      op.quant = pl->quant;
      auto q = attr_path(n->input(pl->first(ops::ArgKind::Buffer)), self);
      if (!q) continue;
      op.weight = *q;
      op.weight_shape = get_tensor(module, *q).sizes().vec();
      for (size_t i = pl->first(ops::ArgKind::Buffer) + 1; i < pl->args.size() && i < n->inputs().size(); ++i) {
        auto kind = pl->args[i].kind;
        if (kind != ops::ArgKind::Buffer && kind != ops::ArgKind::OptionalBuffer) continue;
        if (auto t = attr_path(n->input(i), self)) op.quant_tensors.push_back(*t);
      }
      bool bd = false;
      if (auto b = param_of(n->input(pl->first(ops::ArgKind::Bias)), bd); b && !bd) op.bias = *b;
      op.uses = 1;
      found.push_back({n, op, 0});
      continue;
    } else {
      continue;
    }
    if (w_idx < 0) continue;
    auto w = param_of(n->input(w_idx), op.derived);
    if (!w) continue;
    op.weight = *w;
    op.module = split_last(*w).first;
    op.weight_shape = get_tensor(module, *w).sizes().vec();
    if (op.kind == OpKind::MatMul) {
      int64_t d = static_cast<int64_t>(op.weight_shape.size());
      op.in_dim = w_idx == 1 ? static_cast<int>(d - 2) : static_cast<int>(d - 1);
      op.out_dim = w_idx == 1 ? static_cast<int>(d - 1) : static_cast<int>(d - 2);
    }
    if (b_idx >= 0) {
      bool bd = false;
      if (auto b = param_of(n->input(b_idx), bd); b && !bd) op.bias = *b;
    }
    op.uses = param_uses[op.weight];
    found.push_back({n, op, act});
  }
  return sc;
}

// Appends every weight op's (activation input, output) to a list of its own and returns the lists with the
// model output, as a function over (self, forward's inputs). Taps work inside if/loop blocks; an op that
// never ran keeps an empty list.
std::unique_ptr<torch::jit::GraphFunction> tap_ops(const std::shared_ptr<Graph>& g, const std::vector<Found>& found) {
  std::vector<Value*> lists;
  {
    torch::jit::WithInsertPoint guard(g->block()->nodes().front());
    for (size_t i = 0; i < found.size(); ++i)
      lists.push_back(g->insertNode(g->createList(c10::TensorType::get(), {}))->output());
  }
  for (size_t i = 0; i < found.size(); ++i) {
    Node* n = found[i].node;
    torch::jit::WithInsertPoint guard(n->next());
    g->insert(aten::append, {lists[i], n->input(found[i].act_input)});
    g->insert(aten::append, {lists[i], n->output()});
  }
  std::vector<Value*> outs{g->outputs()[0]};
  outs.insert(outs.end(), lists.begin(), lists.end());
  Value* tup;
  {
    torch::jit::WithInsertPoint guard(g->return_node());
    tup = g->insertNode(g->createTuple(outs))->output();
  }
  g->eraseOutput(0);
  g->registerOutput(tup);
  return std::make_unique<torch::jit::GraphFunction>("joule_probe", g, nullptr,
                                                      torch::jit::ExecutorExecutionMode::SIMPLE);
}

// Runs a tapped forward; element i + 1 of the result is op i's list of (input, output, input, output, ...).
std::vector<c10::IValue> run_tapped(torch::jit::GraphFunction& fn, const torch::jit::Module& module,
                                    const std::vector<c10::IValue>& inputs) {
  std::vector<c10::IValue> stack{module._ivalue()};
  stack.insert(stack.end(), inputs.begin(), inputs.end());
  // The probe function has no schema of its own: fill trailing defaults from forward's (e.g. masks).
  const auto& args = module.get_method("forward").function().getSchema().arguments();
  if (stack.size() > args.size())
    fail("the workload has {} inputs but forward takes {}", inputs.size(), args.size() - 1);
  for (size_t i = stack.size(); i < args.size(); ++i) {
    if (!args[i].default_value())
      fail("the workload has {} inputs but forward needs '{}' too", inputs.size(), args[i].name());
    stack.push_back(*args[i].default_value());
  }
  return fn(std::move(stack)).toTupleRef().elements().vec();
}

}  // namespace

Analysis analyze(const torch::jit::Module& module, const std::vector<c10::IValue>* inputs) {
  Scan sc = scan(module);
  std::vector<Found>& found = sc.found;
  std::map<std::string, int>& param_uses = sc.param_uses;
  Value* self = sc.g->inputs().at(0);
  Analysis a;
  a.total_params = sc.total_params;

  std::map<Node*, size_t> index_of;
  for (size_t i = 0; i < found.size(); ++i) index_of[found[i].node] = i;

  for (size_t i = 0; i < found.size(); ++i) {
    const WeightOp& p = found[i].op;
    bool shrinkable_kind = (p.kind == OpKind::Linear || p.kind == OpKind::Conv1d || p.kind == OpKind::Conv2d) && p.quant.empty();
    if (!shrinkable_kind || p.derived || p.uses != 1 || p.groups != 1) continue;
    if (!p.bias.empty() && param_uses[p.bias] != 1) continue;
    Value* v = found[i].node->output();
    std::string bn;
    for (int step = 0; step < 16; ++step) {
      std::vector<torch::jit::Use> uses;
      for (const auto& use : v->uses())
        if (!reads_metadata_only(use.user->kind())) uses.push_back(use);
      if (uses.size() != 1) break;
      Node* u = uses[0].user;
      size_t off = uses[0].offset;
      if (off != 0) break;
      if (maps_zero_to_zero(u->kind())) {
        v = u->output();
        continue;
      }
      if (u->kind() == aten::batch_norm && bn.empty() && p.kind != OpKind::Linear) {
        auto mean = attr_path(u->input(3), self);  // running stats are buffers
        if (!mean) break;
        bn = split_last(*mean).first;
        v = u->output();
        continue;
      }
      auto it = index_of.find(u);
      if (it == index_of.end()) break;
      const WeightOp& c = found[it->second].op;
      bool same_family = (c.kind == OpKind::Linear) == (p.kind == OpKind::Linear) && c.kind != OpKind::MatMul &&
                         c.kind != OpKind::Embedding && c.quant.empty();
      if (same_family && !c.derived && c.uses == 1 && c.groups == 1 && found[it->second].act_input == 0)
        a.chains.push_back({i, it->second, bn});
      break;
    }
  }

  if (inputs) {
    // Shape probe. Run with autograd on: fused inference fast paths (e.g. nn.TransformerEncoderLayer's
    // _transformer_encoder_layer_fwd) are skipped when parameters require grad, so the decomposed
    // aten::linear ops run and can be measured. The MACs are the same either way.
    auto fn = tap_ops(sc.g, found);
    std::vector<c10::IValue> elems = run_tapped(*fn, module, *inputs);
    for (size_t i = 0; i < found.size(); ++i) {
      WeightOp& op = found[i].op;
      auto taps = elems[i + 1].toList();
      for (size_t t = 0; t + 1 < taps.size(); t += 2) {
        at::Tensor in = taps.get(t).toTensor(), out = taps.get(t + 1).toTensor();
        if (op.calls++ == 0) op.input_shape = in.sizes().vec(), op.output_shape = out.sizes().vec();
        op.act_bytes += static_cast<int64_t>(in.nbytes() + out.nbytes());
        const auto& ws = op.weight_shape;
        switch (op.kind) {
          case OpKind::Linear: op.macs += out.numel() * in.size(-1); break;
          case OpKind::Conv1d:
          case OpKind::Conv2d:
            op.macs += out.numel() * std::accumulate(ws.begin() + 1, ws.end(), int64_t{1}, std::multiplies<>());
            break;
          case OpKind::MatMul: op.macs += out.numel() * ws[op.in_dim]; break;
          case OpKind::Embedding: break;  // a lookup: bytes, not MACs
        }
      }
    }
    a.probed = true;
  }
  for (auto& f : found) a.ops.push_back(std::move(f.op));
  return a;
}

}  // namespace joule

namespace joule {

void for_each_linear_input(const torch::jit::Module& module, const std::vector<std::vector<c10::IValue>>& batches,
                           const std::function<void(const std::string& weight, const at::Tensor& x)>& sink,
                           const std::function<void(size_t done)>& on_batch) {
  Scan sc = scan(module);
  std::vector<Found> linears;
  for (auto& f : sc.found)
    if (f.op.kind == OpKind::Linear && f.op.quant.empty() && !f.op.derived) linears.push_back(f);
  auto fn = tap_ops(sc.g, linears);
  // Autograd stays on, as in the shape probe, so fused fast paths do not hide the decomposed linears.
  for (size_t b = 0; b < batches.size(); ++b) {
    std::vector<c10::IValue> elems = run_tapped(*fn, module, batches[b]);
    for (size_t i = 0; i < linears.size(); ++i) {
      auto taps = elems[i + 1].toList();
      for (size_t t = 0; t + 1 < taps.size(); t += 2) {
        at::Tensor x = taps.get(t).toTensor().detach();
        sink(linears[i].op.weight, x.reshape({-1, x.size(-1)}));
      }
    }
    if (on_batch) on_batch(b + 1);
  }
}

}  // namespace joule
