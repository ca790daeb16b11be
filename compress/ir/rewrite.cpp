// The linear -> packed-op rewrite. A weight can leave the model only when nothing but its aten::linear nodes
// reads it, so sites are found on the inlined forward (where every read of a parameter is a GetAttr chain from
// `self`) and each is marked exclusive when those nodes are all of the weight's readers (attr_readers). The
// rewrite then works weight by weight: the packed tensors become buffers of the top module, and before each of
// the weight's nodes the op's call is assembled in schema order from the argument kinds of compress/ops/
// schema.h (GetAttrs of the buffers, None for absent optional buffers, constants for the Int arguments, the
// linear's own input and bias); the op's output replaces the linear's and the node is destroyed. Dead code goes,
// the graph becomes forward, and only then are the float weights emptied.
#include "compress/ir/rewrite.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <functional>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/ops/ops.h"

namespace joule {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

const LinearSite* LinearSites::find(const std::string& weight) const {
  for (const auto& s : sites)
    if (s.weight == weight) return &s;
  return nullptr;
}

LinearSites find_linear_sites(const torch::jit::Module& m) {
  LinearSites ls;
  ls.graph = inlined_forward(m);
  Value* self = ls.graph->inputs().at(0);
  std::map<std::string, size_t> index;  // weight path -> position in ls.sites
  std::function<void(Block*)> walk = [&](Block* b) {
    for (Node* n : b->nodes()) {
      if (n->kind() == c10::aten::linear)
        if (auto w = attr_path_of(n->namedInput("weight"), self)) {
          auto [it, fresh] = index.emplace(*w, ls.sites.size());
          if (fresh) ls.sites.push_back({*w, w->substr(0, w->rfind('.')), {}, false});
          ls.sites[it->second].nodes.push_back(n);
        }
      for (Block* sb : n->blocks()) walk(sb);
    }
  };
  walk(ls.graph->block());
  const std::map<std::string, size_t> readers = attr_readers(ls.graph);
  for (auto& s : ls.sites) s.exclusive = readers.at(s.weight) == s.nodes.size();
  return ls;
}

int64_t PackedWeight::bytes() const {
  int64_t n = 0;
  for (const auto& [role, t] : buffers) n += static_cast<int64_t>(t.nbytes());
  return n;
}

void rewrite_linears(torch::jit::Module& m, LinearSites&& sites, const ops::PackedLinearOp& op,
                     const std::vector<PackedWeight>& packed, const std::string& buffer_prefix) {
  if (packed.empty()) return;
  // Everything is checked before the module changes.
  std::set<std::string> seen;
  for (const auto& p : packed) {
    const LinearSite* site = sites.find(p.weight);
    if (!site || !site->exclusive)
      fail("rewrite: '{}' is not read by aten::linear nodes only; it cannot become {}", p.weight, op.qualname());
    if (!seen.insert(p.weight).second) fail("rewrite: '{}' is packed twice", p.weight);
    std::set<std::string> roles;
    for (const auto& [role, t] : p.buffers) {
      const int i = op.index(role);
      if (i < 0 || (op.args[i].kind != ops::ArgKind::Buffer && op.args[i].kind != ops::ArgKind::OptionalBuffer))
        fail("rewrite: {} has no buffer argument '{}' (packing '{}')", op.qualname(), role, p.weight);
      if (!roles.insert(role).second) fail("rewrite: buffer '{}' of '{}' is given twice", role, p.weight);
    }
    for (const auto& a : op.args) {
      if (a.kind == ops::ArgKind::Buffer && !roles.count(a.name))
        fail("rewrite: {} needs buffer '{}' for '{}'", op.qualname(), a.name, p.weight);
      if (a.kind == ops::ArgKind::Int && !p.ints.count(a.name))
        fail("rewrite: {} needs int '{}' for '{}'", op.qualname(), a.name, p.weight);
    }
  }

  ops::ensure_ops_registered();  // the op's schema must be known to insert calls of it
  auto& g = sites.graph;
  Value* self = g->inputs().at(0);
  const c10::Symbol symbol = c10::Symbol::fromQualString(op.qualname());
  for (const auto& p : packed) {
    std::map<std::string, std::string> names;  // argument name -> registered buffer
    for (const auto& [role, t] : p.buffers) {
      names[role] = packed_buffer_name(p.weight, buffer_prefix + role);
      m.register_buffer(names[role], t);
    }
    for (Node* n : sites.find(p.weight)->nodes) {
      torch::jit::WithInsertPoint guard(n);
      std::vector<torch::jit::NamedValue> args;
      for (const auto& a : op.args) {
        switch (a.kind) {
          case ops::ArgKind::Input:
            args.emplace_back(n->namedInput("input"));
            break;
          case ops::ArgKind::Bias:
            args.emplace_back(n->namedInput("bias"));
            break;
          case ops::ArgKind::Buffer:
          case ops::ArgKind::OptionalBuffer: {
            auto it = names.find(a.name);
            args.emplace_back(it != names.end() ? g->insertGetAttr(self, it->second) : g->insertConstant(c10::IValue()));
            break;
          }
          case ops::ArgKind::Int:
            args.emplace_back(g->insertConstant(p.ints.at(a.name)));
            break;
        }
      }
      n->output()->replaceAllUsesWith(g->insert(symbol, args));
      n->destroy();
    }
  }
  torch::jit::EliminateDeadCode(g);
  set_forward(m, g);
  for (const auto& p : packed)
    set_tensor(m, p.weight, at::empty({0}, get_tensor(m, p.weight).options()));  // the slot stays for shared types
  sites.sites.clear();  // their nodes are gone
}

}  // namespace joule
