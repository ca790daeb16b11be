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
    case OpKind::Conv3d: return "conv3d";
    case OpKind::ConvTranspose: return "conv_t";  // transposed conv (fits the inspect table)
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

// Ops whose output feature i depends on input feature i alone and is 0 where it is 0: elementwise activations,
// and for conv channels the poolings (a removed channel is an all-zero plane, which pools to zeros).
bool maps_zero_to_zero(c10::Symbol k) {
  static const std::set<c10::Symbol> ops = {
      aten::relu,  aten::relu_,  aten::gelu,      aten::tanh,     aten::silu,      aten::leaky_relu,
      aten::relu6, aten::hardtanh, aten::hardswish, aten::mish,   aten::elu,       aten::dropout,
      aten::contiguous, aten::clone, aten::feature_dropout, aten::detach, aten::dropout_, aten::hardtanh_,
      aten::silu_, aten::gelu_, aten::alpha_dropout, aten::feature_alpha_dropout};
  return ops.count(k) > 0;
}
bool pools_per_channel(c10::Symbol k) {
  static const std::set<c10::Symbol> ops = {
      aten::max_pool1d, aten::max_pool2d, aten::max_pool3d, aten::avg_pool1d, aten::avg_pool2d, aten::avg_pool3d,
      aten::adaptive_avg_pool1d, aten::adaptive_avg_pool2d, aten::adaptive_avg_pool3d, aten::adaptive_max_pool1d,
      aten::adaptive_max_pool2d, aten::adaptive_max_pool3d, aten::upsample_nearest1d, aten::upsample_nearest2d};
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
    } else if (k == aten::conv1d || k == aten::conv2d || k == aten::conv3d) {
      op.kind = OpKind::Conv2d;  // by the weight's rank, below
      w_idx = 1, b_idx = 2, op.in_dim = 1, op.out_dim = 0;
      op.groups = const_int(n->input(6)).value_or(-1);  // -1: groups not a constant
    } else if (k == aten::conv_transpose1d || k == aten::conv_transpose2d || k == aten::conv_transpose3d) {
      op.kind = OpKind::ConvTranspose;  // weight [C_in, C_out / groups, k...]
      w_idx = 1, b_idx = 2, op.in_dim = 0, op.out_dim = 1;
      op.groups = const_int(n->input(6)).value_or(-1);
    } else if (k == aten::_convolution || k == aten::convolution) {
      // (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...): torch.jit.trace
      // records every nn.ConvNd this way.
      auto iv = torch::jit::toIValue(n->input(6));
      bool transposed = !iv || !iv->isBool() || iv->toBool();  // unknown: the safe reading (never shrunk)
      op.kind = transposed ? OpKind::ConvTranspose : OpKind::Conv2d;
      w_idx = 1, b_idx = 2;
      op.in_dim = transposed ? 0 : 1, op.out_dim = transposed ? 1 : 0;
      op.groups = iv && iv->isBool() ? const_int(n->input(8)).value_or(-1) : -1;
    } else if (k == aten::addmm) {
      // addmm(bias, x, W) = bias + x @ W: what old traces of nn.Linear over a pre-transposed weight give.
      op.kind = OpKind::MatMul;
      bool d = false;
      if (param_of(n->input(2), d)) w_idx = 2, act = 1;
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
      const int kin = pl->index("in_features");
      const int64_t K = kin >= 0 ? const_int(n->input(kin)).value_or(0) : op.weight_shape.at(1);
      op.logical_weights = op.weight_shape.at(0) * K;
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
    op.logical_weights = std::accumulate(op.weight_shape.begin(), op.weight_shape.end(), int64_t{1}, std::multiplies<>());
    if (op.kind == OpKind::Conv2d) {
      const size_t rank = op.weight_shape.size();
      if (rank < 3 || rank > 5) continue;  // not a conv weight LibTorch would accept
      op.kind = rank == 3 ? OpKind::Conv1d : rank == 4 ? OpKind::Conv2d : OpKind::Conv3d;
    }
    if (op.kind == OpKind::MatMul) {
      int64_t d = static_cast<int64_t>(op.weight_shape.size());
      if (d < 2) continue;  // a vector operand: no input/output feature dimensions
      op.in_dim = w_idx != 0 ? static_cast<int>(d - 2) : static_cast<int>(d - 1);
      op.out_dim = w_idx != 0 ? static_cast<int>(d - 1) : static_cast<int>(d - 2);
    }
    if (b_idx < 0 && k == aten::addmm) b_idx = 0;
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
    const bool conv = p.kind == OpKind::Conv1d || p.kind == OpKind::Conv2d || p.kind == OpKind::Conv3d;
    if (!(conv || p.kind == OpKind::Linear) || !p.quant.empty()) continue;
    if (p.derived || p.uses != 1 || p.groups != 1) continue;
    if (!p.bias.empty() && param_uses[p.bias] != 1) continue;
    Value* v = found[i].node->output();
    std::string bn;
    // Conv activations are read as batched, (N, C, ...): channels are dim 1. After a flatten of the channel and
    // spatial dims the features are the last dim, in blocks of H x W per channel, for a linear consumer.
    bool flattened = false;
    for (int step = 0; step < 16; ++step) {
      std::vector<torch::jit::Use> uses;
      for (const auto& use : v->uses())
        if (!reads_metadata_only(use.user->kind())) uses.push_back(use);
      if (uses.size() != 1) break;
      Node* u = uses[0].user;
      size_t off = uses[0].offset;
      if (off != 0) break;
      const auto uk = u->kind();
      if (maps_zero_to_zero(uk) || (conv && !flattened && pools_per_channel(uk) && u->outputs().size() == 1)) {
        v = u->output();
        continue;
      }
      if (uk == aten::batch_norm && bn.empty() && conv && !flattened) {
        auto mean = attr_path(u->input(3), self);  // running stats are buffers
        if (!mean) break;
        bn = split_last(*mean).first;
        v = u->output();
        continue;
      }
      if (uk == aten::flatten && conv && !flattened) {
        auto start = const_int(u->input(1)), end = const_int(u->input(2));
        if (start && *start >= 2) {  // the channel dim stays dim 1
          v = u->output();
          continue;
        }
        if (start != 1 || end != -1) break;
        flattened = true;
        v = u->output();
        continue;
      }
      auto it = index_of.find(u);
      if (it == index_of.end()) break;
      const WeightOp& c = found[it->second].op;
      const bool c_conv = c.kind == OpKind::Conv1d || c.kind == OpKind::Conv2d || c.kind == OpKind::Conv3d;
      const bool fits = flattened ? c.kind == OpKind::Linear : (c.kind == OpKind::Linear) == (p.kind == OpKind::Linear) &&
                                                                 (c_conv || c.kind == OpKind::Linear);
      if (!fits || !c.quant.empty() || c.derived || c.uses != 1 || c.groups != 1 || found[it->second].act_input != 0)
        break;
      const int64_t produced = p.weight_shape[p.out_dim], consumed = c.weight_shape[c.in_dim];
      if (produced <= 0 || consumed % produced != 0 || (!flattened && consumed != produced)) break;
      a.chains.push_back({i, it->second, bn, consumed / produced});
      break;
    }
  }

  // Output layers: a weight op whose result reaches the graph's return without passing through another weight op.
  {
    Node* ret = sc.g->return_node();
    for (size_t i = 0; i < found.size(); ++i) {
      std::vector<Value*> todo(found[i].node->outputs().begin(), found[i].node->outputs().end());
      std::set<Node*> seen;
      bool reaches = false;
      while (!todo.empty() && !reaches && seen.size() < 100000) {
        Value* v = todo.back();
        todo.pop_back();
        for (const auto& use : v->uses()) {
          Node* u = use.user;
          if (u == ret) reaches = true;
          if (reaches || index_of.count(u) || !seen.insert(u).second) continue;
          // A sub-block's return hands its values to the outputs of the node that owns the block (if / loop).
          if (u->kind() == prim::Return && u->owningBlock()->owningNode())
            for (Value* o : u->owningBlock()->owningNode()->outputs()) todo.push_back(o);
          for (Value* o : u->outputs()) todo.push_back(o);
        }
      }
      found[i].op.output = reaches;
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
          case OpKind::Conv3d:
            op.macs += out.numel() * std::accumulate(ws.begin() + 1, ws.end(), int64_t{1}, std::multiplies<>());
            break;
          case OpKind::ConvTranspose:  // every input element meets C_out / groups x kernel area weights
            op.macs += in.numel() * std::accumulate(ws.begin() + 1, ws.end(), int64_t{1}, std::multiplies<>());
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
