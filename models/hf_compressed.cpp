// compressed-tensors export and import of packed linears (format notes: models/hf_compressed.h). The packed
// tensors are read where the ops read them: each joule:: call site of the inlined forward, its arguments by name
// (compress/ops/schema.h). On import the rewrite is the quantize pass's own (compress/ir/rewrite.h), so a folder
// that Joule exported comes back as the same ops over the same tensors.
#include "models/hf_compressed.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <regex>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "kernels/cpu/sp24.h"
#include "kernels/formats/formats.h"

namespace joule::models {
namespace ct {
namespace {

using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "compressed-tensors words are little-endian bytes");

// One packed linear: its op, the module whose weight it replaced, and its tensors and ints by argument name.
struct Site {
  const ops::PackedLinearOp* op;
  std::string module;
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, int64_t> ints;
  at::Tensor t(const std::string& arg) const {
    auto it = tensors.find(arg);
    return it == tensors.end() ? at::Tensor() : it->second.contiguous();
  }
};

// The module of a packed buffer: the emptied float weight whose packed_buffer_name the buffer carries.
std::string module_of(const std::string& buffer, const std::set<std::string>& emptied, const std::string& role) {
  for (const auto& w : emptied)
    for (const char* prefix : {"", "sp24_"})
      if (packed_buffer_name(w, prefix + role) == buffer) return w.substr(0, w.rfind('.'));
  return "";
}

std::vector<Site> packed_sites(const Module& m, const std::string& dir) {
  std::set<std::string> emptied;
  for (const auto& p : m.named_parameters(true))
    if (p.value.numel() == 0) emptied.insert(p.name);
  auto g = inlined_forward(m);
  Value* self = g->inputs().at(0);
  std::vector<Site> sites;
  std::set<std::string> seen;
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* b) {
    for (Node* n : b->nodes()) {
      for (auto* sb : n->blocks()) walk(sb);
      const ops::PackedLinearOp* op = ops::find_packed_linear_op(n->kind().toQualString());
      if (!op) continue;
      Site s{op, "", {}, {}};
      for (size_t i = 0; i < op->args.size() && i < n->inputs().size(); ++i) {
        const ops::OpArg& a = op->args[i];
        if (a.kind == ops::ArgKind::Buffer || a.kind == ops::ArgKind::OptionalBuffer) {
          auto path = attr_path_of(n->input(i), self);
          if (!path) continue;  // None
          s.tensors[a.name] = get_tensor(m, *path);
          if (s.module.empty()) s.module = module_of(*path, emptied, a.name);
        } else if (a.kind == ops::ArgKind::Bias) {
          if (auto path = attr_path_of(n->input(i), self)) s.tensors["bias"] = get_tensor(m, *path);
        } else if (a.kind == ops::ArgKind::Int) {
          auto v = torch::jit::toIValue(n->input(i));
          if (!v || !v->isInt()) fail("export '{}': {} has a non-constant {}", dir, op->qualname(), a.name);
          s.ints[a.name] = v->toInt();
        }
      }
      if (s.module.empty())
        fail("export '{}': a {} call reads buffers of no emptied weight; cannot name its layer", dir, op->qualname());
      if (seen.insert(s.module).second) sites.push_back(std::move(s));
    }
  };
  walk(g->block());
  return sites;
}

nlohmann::json qargs(int bits, bool symmetric, const char* strategy, bool dynamic, int64_t group = 0) {
  return {{"num_bits", bits},
          {"type", "int"},
          {"symmetric", symmetric},
          {"strategy", strategy},
          {"group_size", group ? nlohmann::json(group) : nlohmann::json(nullptr)},
          {"dynamic", dynamic},
          {"block_structure", nullptr},
          {"actorder", nullptr}};
}

// Joule's zeros [N, G] (0..15) as compressed-tensors packs zero points: 8 per int32 down the rows.
at::Tensor pack_zero_points(const at::Tensor& zeros) {
  const int64_t N = zeros.size(0), G = zeros.size(1);
  at::Tensor out = at::zeros({(N + 7) / 8, G}, at::kInt);
  auto z = zeros.accessor<uint8_t, 2>();
  auto o = out.accessor<int32_t, 2>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) o[n / 8][g] = int32_t(uint32_t(o[n / 8][g]) | uint32_t(z[n][g] & 15) << (4 * (n % 8)));
  return out;
}

// Joule's qweight [N, ceil(K/2)] bytes as weight_packed [N, ceil(K/8)] int32: the same nibbles, rows padded to
// whole words with zero nibbles (as compressed-tensors pads).
at::Tensor pack_weight_words(const at::Tensor& qweight, int64_t K) {
  const int64_t N = qweight.size(0), row = formats::w4_row_bytes(K), words = (K + 7) / 8;
  at::Tensor out = at::zeros({N, words}, at::kInt);
  for (int64_t n = 0; n < N; ++n)
    std::memcpy(reinterpret_cast<uint8_t*>(out.data_ptr<int32_t>() + n * words), qweight.data_ptr<uint8_t>() + n * row,
                size_t(row));
  return out;
}

}  // namespace
}  // namespace ct

HfTensors hf_export_tensors(const torch::jit::Module& module, const std::string& dir) {
  HfTensors r;
  auto add = [&](const std::string& name, const at::Tensor& t) { r.tensors.emplace_back(name, t.detach().contiguous()); };
  for (const auto& p : module.named_parameters(true))
    if (p.value.numel() > 0) {
      add(p.name, p.value);
      if (p.value.dim() == 2 && p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".weight") == 0)
        r.linear_shapes[p.name.substr(0, p.name.size() - 7)] = p.value.sizes().vec();
    }
  for (const auto& b : module.named_buffers(true))  // submodule buffers (BERT's pooler); packed ones are top-level
    if (b.name.find('.') != std::string::npos) add(b.name, b.value);

  struct Group {
    nlohmann::json scheme;
    std::vector<std::string> targets;
  };
  std::map<std::string, Group> groups;  // by the scheme's JSON
  std::vector<std::string> sparse;
  int64_t sparse_zeros = 0, sparse_total = 0;
  for (const ct::Site& s : ct::packed_sites(module, dir)) {
    const std::string& m = s.module;
    nlohmann::json scheme;
    if (s.op == &ops::linear_w8a8()) {
      if (s.tensors.count("smooth_inv"))
        fail("export '{}': '{}' is W8A8 with SmoothQuant (a per-channel 1/s on its input), which compressed-tensors "
             "cannot hold; quantize without smooth to export", dir, m);
      at::Tensor q = s.t("qweight"), sc = s.t("w_scale");
      add(m + ".weight", q);
      add(m + ".weight_scale", sc.view({-1, 1}));
      const bool is_static = s.tensors.count("x_scale") > 0;
      if (is_static) add(m + ".input_scale", s.t("x_scale").view({1}));
      scheme = {{"weights", ct::qargs(8, true, "channel", false)},
                {"input_activations", is_static ? ct::qargs(8, true, "tensor", false) : ct::qargs(8, true, "token", true)},
                {"output_activations", nullptr},
                {"format", "int-quantized"}};
      r.linear_shapes[m] = q.sizes().vec();
    } else if (s.op == &ops::linear_w4()) {
      const int64_t K = s.ints.at("in_features"), G = s.ints.at("group_size");
      at::Tensor q = s.t("qweight"), sc = s.t("scales"), z = s.t("zeros");
      add(m + ".weight_packed", ct::pack_weight_words(q, K));
      add(m + ".weight_scale", sc);
      add(m + ".weight_zero_point", ct::pack_zero_points(z));
      add(m + ".weight_shape", at::tensor(std::vector<int64_t>{q.size(0), K}, at::kLong));
      scheme = {{"weights", ct::qargs(4, false, "group", false, G)},
                {"input_activations", nullptr},
                {"output_activations", nullptr},
                {"format", "pack-quantized"}};
      r.linear_shapes[m] = {q.size(0), K};
    } else if (s.op == &ops::linear_sp24()) {
      at::Tensor v = s.t("values"), meta = s.t("meta");
      const int64_t K = s.ints.at("in_features");
      at::Tensor w = at::empty({v.size(0), K}, at::kFloat);
      kernels::decompress_sp24(v.data_ptr<float>(), reinterpret_cast<const uint16_t*>(meta.data_ptr<int16_t>()), v.size(0),
                               K, w.data_ptr<float>());
      add(m + ".weight", w);
      sparse.push_back(m);
      sparse_zeros += (w == 0).sum().item<int64_t>();
      sparse_total += w.numel();
      r.linear_shapes[m] = w.sizes().vec();
      continue;
    } else {
      fail("export '{}': '{}' runs {}, which has no compressed-tensors form", dir, m, s.op->qualname());
    }
    auto& grp = groups[scheme.dump()];
    grp.scheme = scheme;
    grp.targets.push_back(m);
  }
  if (groups.empty() && sparse.empty()) return r;
  nlohmann::json q = {{"quant_method", "compressed-tensors"}};
  if (!groups.empty()) {
    std::set<std::string> formats;
    nlohmann::json cg = nlohmann::json::object();
    for (auto& [key, g] : groups) {
      formats.insert(g.scheme["format"].get<std::string>());
      nlohmann::json s = g.scheme;
      s["targets"] = g.targets;  // module names: exact matches
      cg[fmt::format("group_{}", cg.size())] = s;
    }
    q["config_groups"] = cg;
    q["format"] = formats.size() == 1 ? *formats.begin() : "mixed-precision";
    q["quantization_status"] = "compressed";
    q["ignore"] = nlohmann::json::array();
    q["kv_cache_scheme"] = nullptr;
  }
  if (!sparse.empty())
    q["sparsity_config"] = {{"format", "dense"},
                            {"sparsity_structure", "2:4"},
                            {"targets", sparse},
                            {"ignore", nlohmann::json::array()},
                            {"global_sparsity", double(sparse_zeros) / double(sparse_total)}};
  r.quantization_config = q;
  return r;
}

namespace ct {
namespace {

// compressed-tensors' target matching: a class name ("Linear": every linear), an exact module name, or
// "re:<regex>" matched at the start of the name (Python's re.match).
bool matches(const std::string& module, const std::string& target) {
  if (target == "Linear") return true;
  if (target.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(module, std::regex(target.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      return false;
    }
  }
  return target == module || target == "bert." + module;
}

bool matches_any(const std::string& module, const nlohmann::json& list) {
  if (!list.is_array()) return false;
  for (const auto& t : list)
    if (t.is_string() && matches(module, t.get<std::string>())) return true;
  return false;
}

struct Args {
  int bits = 0;
  std::string type, strategy;
  bool symmetric = true, dynamic = false;
  int64_t group = 0;
  bool present = false;
};

Args read_args(const nlohmann::json& j) {
  Args a;
  if (!j.is_object()) return a;
  a.present = true;
  a.bits = j.value("num_bits", 8);
  a.type = j.value("type", "int");
  a.strategy = j.contains("strategy") && j["strategy"].is_string() ? j["strategy"].get<std::string>() : "tensor";
  a.symmetric = j.value("symmetric", true);
  a.dynamic = j.contains("dynamic") && (j["dynamic"] == true || j["dynamic"] == "local");
  a.group = j.contains("group_size") && j["group_size"].is_number_integer() ? j["group_size"].get<int64_t>() : 0;
  return a;
}

std::string describe(const Args& a) {
  if (!a.present) return "none";
  return fmt::format("{}{} {} {}{}{}", a.type, a.bits, a.symmetric ? "symmetric" : "asymmetric", a.strategy,
                     a.group ? fmt::format(" group {}", a.group) : "", a.dynamic ? " dynamic" : "");
}

at::Tensor take(std::map<std::string, at::Tensor>& w, const std::string& name, at::ScalarType dtype,
                const std::string& origin) {
  auto it = w.find(name);
  if (it == w.end()) fail("weights '{}': tensor '{}' is missing (compressed-tensors layer)", origin, name);
  at::Tensor t = it->second;
  w.erase(it);
  if (t.scalar_type() != dtype)
    fail("weights '{}': tensor '{}' is {}, expected {}", origin, name, c10::toString(t.scalar_type()), c10::toString(dtype));
  return t.contiguous();
}

}  // namespace
}  // namespace ct

CompressedLinears read_compressed_linears(const nlohmann::json& hf_config, std::map<std::string, at::Tensor>& weights,
                                          const std::string& origin) {
  CompressedLinears r;
  if (!hf_config.is_object() || !hf_config.contains("quantization_config")) return r;
  const nlohmann::json& q = hf_config["quantization_config"];
  const std::string method = q.is_object() ? q.value("quant_method", "") : "";
  if (method != "compressed-tensors")
    fail("model folder of '{}': quantization_config quant_method '{}' is not supported (compressed-tensors)", origin, method);
  if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].empty())
    return r;  // sparsity_config alone: dense weights
  const std::string status = q.value("quantization_status", "");
  if (status != "compressed")
    fail("model folder of '{}': quantization_status '{}' is not supported (compressed)", origin, status);
  if (q.contains("kv_cache_scheme") && !q["kv_cache_scheme"].is_null())
    fail("model folder of '{}': kv_cache_scheme is not supported", origin);
  const std::string top_format = q.value("format", "");

  // Linear modules: the names that have a weight-like tensor.
  std::set<std::string> modules;
  for (const auto& [name, t] : weights)
    for (const char* suffix : {".weight", ".weight_packed"}) {
      const std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          name.rfind("embeddings.", 0) != 0 && name.rfind("pooler.", 0) != 0 && name.find("LayerNorm") == std::string::npos)
        modules.insert(name.substr(0, name.size() - s.size()));
    }
  std::vector<PackedWeight> w8, w4;
  for (const auto& mod : modules) {
    if (ct::matches_any(mod, q.value("ignore", nlohmann::json::array()))) continue;
    const nlohmann::json* scheme = nullptr;
    for (const auto& [name, g] : q["config_groups"].items())
      if (g.is_object() && ct::matches_any(mod, g.value("targets", nlohmann::json::array()))) {
        scheme = &g;
        break;
      }
    if (!scheme) continue;
    const ct::Args w = ct::read_args(scheme->value("weights", nlohmann::json())),
                   in = ct::read_args(scheme->value("input_activations", nlohmann::json())),
                   out = ct::read_args(scheme->value("output_activations", nlohmann::json()));
    const std::string format = scheme->contains("format") && (*scheme)["format"].is_string()
                                   ? (*scheme)["format"].get<std::string>() : top_format;
    auto refuse = [&]() {
      fail("model folder of '{}': layer '{}' is compressed as {} (weights {}, input activations {}, outputs {}), which "
           "Joule cannot run (int-quantized int8 symmetric channel weights with int8 token-dynamic or tensor-static "
           "inputs; pack-quantized int4 group weights)", origin, mod, format, ct::describe(w), ct::describe(in),
           ct::describe(out));
    };
    if (out.present) refuse();
    const std::string wname = mod + ".weight";
    if ((format == "int-quantized" || format == "naive-quantized") && w.bits == 8 && w.type == "int" && w.symmetric &&
        w.strategy == "channel" && in.present && in.bits == 8 && in.type == "int" && in.symmetric &&
        ((in.strategy == "token" && in.dynamic) || (in.strategy == "tensor" && !in.dynamic))) {
      at::Tensor qw = ct::take(weights, wname, at::kChar, origin);
      if (qw.dim() != 2) fail("weights '{}': '{}' is not 2-D", origin, wname);
      const int64_t N = qw.size(0), K = qw.size(1);
      if (K > formats::kW8A8MaxK) fail("weights '{}': '{}' has K = {} > {}, beyond W8A8's int32 sums", origin, wname, K, formats::kW8A8MaxK);
      if ((qw == -128).any().item<bool>())
        fail("weights '{}': '{}' holds the int8 code -128; Joule's W8A8 uses [-127, 127]", origin, wname);
      at::Tensor sc = ct::take(weights, mod + ".weight_scale", at::kFloat, origin);
      if (sc.numel() != N) fail("weights '{}': '{}.weight_scale' has {} values for {} rows", origin, mod, sc.numel(), N);
      weights.erase(mod + ".weight_zero_point");  // symmetric: zero
      PackedWeight p{wname, {{"qweight", qw}, {"w_scale", sc.reshape({N}).contiguous()}}, {}};
      if (in.strategy == "tensor") {
        at::Tensor xs = ct::take(weights, mod + ".input_scale", at::kFloat, origin);
        if (xs.numel() != 1 || !(xs.item<float>() > 0)) fail("weights '{}': '{}.input_scale' is not one positive scale", origin, mod);
        weights.erase(mod + ".input_zero_point");
        p.buffers.push_back({"x_scale", xs.reshape({1}).contiguous()});
      }
      weights[wname] = at::zeros({N, K}, at::kFloat);
      w8.push_back(std::move(p));
    } else if (format == "pack-quantized" && w.bits == 4 && w.type == "int" && w.strategy == "group" &&
               formats::w4_group_valid(w.group) && !in.present) {
      at::Tensor packed = ct::take(weights, mod + ".weight_packed", at::kInt, origin);
      at::Tensor shape = weights.count(mod + ".weight_shape") ? weights.at(mod + ".weight_shape").to(at::kLong) : at::Tensor();
      weights.erase(mod + ".weight_shape");
      if (!shape.defined() || shape.numel() != 2) fail("weights '{}': '{}.weight_shape' is missing or not [2]", origin, mod);
      const int64_t N = shape[0].item<int64_t>(), K = shape[1].item<int64_t>(), G = formats::w4_groups(K, w.group);
      if (packed.dim() != 2 || packed.size(0) != N || packed.size(1) != (K + 7) / 8)
        fail("weights '{}': '{}.weight_packed' has shape {}, expected [{}, {}]", origin, mod, c10::str(packed.sizes()), N, (K + 7) / 8);
      at::Tensor sc = ct::take(weights, mod + ".weight_scale", at::kFloat, origin);
      if (sc.sizes().vec() != std::vector<int64_t>{N, G})
        fail("weights '{}': '{}.weight_scale' has shape {}, expected [{}, {}]", origin, mod, c10::str(sc.sizes()), N, G);
      at::Tensor zeros = at::full({N, G}, 8, at::kByte);  // symmetric: the signed codes' zero
      if (!w.symmetric) {
        at::Tensor zp = ct::take(weights, mod + ".weight_zero_point", at::kInt, origin);
        if (zp.sizes().vec() != std::vector<int64_t>{(N + 7) / 8, G})
          fail("weights '{}': '{}.weight_zero_point' has shape {}, expected [{}, {}]", origin, mod, c10::str(zp.sizes()), (N + 7) / 8, G);
        auto za = zp.accessor<int32_t, 2>();
        auto zo = zeros.accessor<uint8_t, 2>();
        for (int64_t n = 0; n < N; ++n)
          for (int64_t g = 0; g < G; ++g) zo[n][g] = uint8_t(uint32_t(za[n / 8][g]) >> (4 * (n % 8)) & 15);
      } else {
        weights.erase(mod + ".weight_zero_point");
      }
      const int64_t row = formats::w4_row_bytes(K);
      at::Tensor qw = at::empty({N, row}, at::kByte);
      for (int64_t n = 0; n < N; ++n) {
        std::memcpy(qw.data_ptr<uint8_t>() + n * row, reinterpret_cast<const uint8_t*>(packed.data_ptr<int32_t>() + n * packed.size(1)),
                    size_t(row));
        if (K % 2) qw.data_ptr<uint8_t>()[n * row + row - 1] &= 0x0F;  // the format's pad nibble is 0
      }
      weights[wname] = at::zeros({N, K}, at::kFloat);
      w4.push_back({wname, {{"qweight", qw}, {"scales", sc}, {"zeros", zeros}}, {{"group_size", w.group}, {"in_features", K}}});
    } else {
      refuse();
    }
  }
  if (!w8.empty()) r.by_op.emplace_back(&ops::linear_w8a8(), std::move(w8));
  if (!w4.empty()) r.by_op.emplace_back(&ops::linear_w4(), std::move(w4));
  return r;
}

void apply_compressed_linears(torch::jit::Module& m, const CompressedLinears& c) {
  for (const auto& [op, packed] : c.by_op) {
    LinearSites sites = find_linear_sites(m);
    std::vector<PackedWeight> ordered = packed;  // in graph order, as the quantize pass packs them
    auto index = [&](const PackedWeight& p) {
      for (size_t i = 0; i < sites.sites.size(); ++i)
        if (sites.sites[i].weight == p.weight) return i;
      return sites.sites.size();
    };
    std::stable_sort(ordered.begin(), ordered.end(), [&](const auto& a, const auto& b) { return index(a) < index(b); });
    rewrite_linears(m, std::move(sites), *op, ordered);
  }
}

}  // namespace joule::models
