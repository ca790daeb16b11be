// The shared linear -> packed-op rewrite (compress/ir/rewrite.h) on small modules built with define(): the linear
// sites and their exclusivity, calls built from the schema.h argument table (checked with FileCheck and node by
// node), weights that other ops read staying aten::linear (and reported as shared by the pass), misuse errors,
// and the rewritten module's output against the kernels' scalar references.
#include <gtest/gtest.h>

#include <torch/csrc/jit/testing/file_check.h>

#include "compress/algorithms/pack_sp24.h"
#include "compress/algorithms/quant_w4.h"
#include "compress/algorithms/quant_w8a8.h"
#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/ir/lower.h"
#include "compress/ir/rewrite.h"
#include "compress/ops/schema.h"
#include "compress/passes/quantize.h"
#include "kernels/cpu/sp24.h"
#include "kernels/cpu/w4.h"
#include "kernels/cpu/w8a8.h"
#include "models/builders.h"
#include "test_util.h"

using namespace joule;
using torch::jit::testing::FileCheck;

namespace {

// fc [16, 32] with bias; tied [16, 16]: one weight read by two aten::linear nodes; other [8, 16] without bias:
// also read by aten::t, so it must stay float.
torch::jit::Module shared_model() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  torch::jit::Module m("__torch__.joule.RewriteTest");
  m.register_module("fc", models::build_linear(32, 16, gen));
  m.register_module("tied", models::build_linear(16, 16, gen));
  m.register_module("other", models::build_linear(16, 8, gen, /*bias=*/false));
  m.define(R"(
def forward(self, x):
    h = torch.relu(self.fc.forward(x))
    h = self.tied.forward(h) + torch.linear(h, self.tied.weight, self.tied.bias)
    return self.other.forward(h) + torch.sum(torch.t(self.other.weight))
)");
  m.eval();
  return m;
}

// One linear layer [N, K] under a parent module: forward(x) = fc(x).
torch::jit::Module single_linear(int64_t K, int64_t N, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::jit::Module m("__torch__.joule.RewriteSingle");
  m.register_module("fc", models::build_linear(K, N, gen));
  m.define("def forward(self, x):\n    return self.fc.forward(x)\n");
  m.eval();
  return m;
}

std::vector<torch::jit::Node*> nodes_of(const torch::jit::Module& m, const std::string& kind) {
  std::vector<torch::jit::Node*> out;
  for (auto* n : m.get_method("forward").graph()->nodes())
    if (n->kind().toQualString() == kind) out.push_back(n);
  return out;
}

// Every argument of a rewritten call is what schema.h says it is: Buffer/OptionalBuffer the registered buffer
// of the weight (or None), Int the constant, Bias the linear's bias.
void expect_call(torch::jit::Node* n, const ops::PackedLinearOp& op, const std::string& weight,
                 const std::string& bias, const std::map<std::string, int64_t>& ints, const std::string& prefix = "") {
  torch::jit::Value* self = n->owningGraph()->inputs().at(0);
  ASSERT_EQ(n->inputs().size(), op.args.size());
  for (size_t i = 0; i < op.args.size(); ++i) {
    const ops::OpArg& a = op.args[i];
    torch::jit::Value* v = n->input(i);
    SCOPED_TRACE(a.name);
    switch (a.kind) {
      case ops::ArgKind::Input:
        EXPECT_FALSE(attr_path_of(v, self).has_value());
        break;
      case ops::ArgKind::Bias:
        if (bias.empty()) EXPECT_TRUE(v->type()->kind() == c10::TypeKind::NoneType);
        else EXPECT_EQ(attr_path_of(v, self).value_or("?"), bias);
        break;
      case ops::ArgKind::Buffer:
        EXPECT_EQ(attr_path_of(v, self).value_or("?"), packed_buffer_name(weight, prefix + a.name));
        break;
      case ops::ArgKind::OptionalBuffer:
        EXPECT_TRUE(v->type()->kind() == c10::TypeKind::NoneType);
        break;
      case ops::ArgKind::Int:
        EXPECT_EQ(torch::jit::toIValue(v).value().toInt(), ints.at(a.name));
        break;
    }
  }
}

PackedWeight w8a8_of(const torch::jit::Module& m, const std::string& weight) {
  std::vector<std::string> warnings;
  PackedWeight p = pack_w8a8(get_tensor(m, weight).detach().contiguous(), at::Tensor(), {}, weight, warnings).packed;
  p.weight = weight;
  return p;
}

// w with the two smallest |w| of every 4 consecutive input features zeroed (a 2:4 pattern).
void make_2_4(at::Tensor w) {
  torch::NoGradGuard g;
  auto v = w.view({w.size(0), w.size(1) / 4, 4});
  auto idx = std::get<1>(v.abs().topk(2, -1, /*largest=*/false));
  v.scatter_(-1, idx, 0.0);
}

}  // namespace

TEST(Rewrite, FindsLinearSitesPerWeightWithExclusivity) {
  auto m = shared_model();
  LinearSites ls = find_linear_sites(m);
  ASSERT_EQ(ls.sites.size(), 3u);
  EXPECT_EQ(ls.sites[0].weight, "fc.weight");
  EXPECT_EQ(ls.sites[0].module, "fc");
  EXPECT_EQ(ls.sites[0].nodes.size(), 1u);
  EXPECT_TRUE(ls.sites[0].exclusive);
  EXPECT_EQ(ls.sites[1].weight, "tied.weight");
  EXPECT_EQ(ls.sites[1].nodes.size(), 2u);
  EXPECT_TRUE(ls.sites[1].exclusive);
  EXPECT_EQ(ls.sites[2].weight, "other.weight");
  EXPECT_FALSE(ls.sites[2].exclusive);  // aten::t reads it too
  EXPECT_EQ(ls.find("tied.weight"), &ls.sites[1]);
  EXPECT_EQ(ls.find("tied.bias"), nullptr);
}

TEST(Rewrite, LinearsBecomeW8A8CallsBuiltFromTheSchema) {
  auto m = shared_model();
  at::Tensor x = at::randn({5, 32}, at::make_generator<at::CPUGeneratorImpl>(4));
  at::Tensor ref = test::forward(m, x);
  LinearSites ls = find_linear_sites(m);
  rewrite_linears(m, std::move(ls), ops::linear_w8a8(), {w8a8_of(m, "fc.weight"), w8a8_of(m, "tied.weight")});
  EXPECT_TRUE(ls.sites.empty());

  auto g = m.get_method("forward").graph();
  FileCheck()
      .check("prim::GetAttr[name=\"_joule_fc_weight_qweight\"]")
      ->check("prim::GetAttr[name=\"_joule_fc_weight_w_scale\"]")
      ->check("joule::linear_w8a8")
      ->check("prim::GetAttr[name=\"_joule_tied_weight_qweight\"]")
      ->check("joule::linear_w8a8")
      ->check("joule::linear_w8a8")
      ->check("aten::t")
      ->run(*g);
  FileCheck().check_count("joule::linear_w8a8", 3, /*exactly=*/true)->run(*g);
  FileCheck().check_count("aten::linear", 1, /*exactly=*/true)->run(*g);  // other: shared with aten::t
  FileCheck().check_not("_joule_other")->run(*g);

  auto calls = nodes_of(m, "joule::linear_w8a8");
  ASSERT_EQ(calls.size(), 3u);
  expect_call(calls[0], ops::linear_w8a8(), "fc.weight", "fc.bias", {});
  expect_call(calls[1], ops::linear_w8a8(), "tied.weight", "tied.bias", {});
  expect_call(calls[2], ops::linear_w8a8(), "tied.weight", "tied.bias", {});
  // The float weights are gone; the shared one stays.
  EXPECT_EQ(get_tensor(m, "fc.weight").numel(), 0);
  EXPECT_EQ(get_tensor(m, "tied.weight").numel(), 0);
  EXPECT_EQ(get_tensor(m, "other.weight").numel(), 8 * 16);
  at::Tensor y = test::forward(m, x);
  EXPECT_GT((y.flatten().dot(ref.flatten()) / (y.norm() * ref.norm())).item<double>(), 0.999);
}

TEST(Rewrite, SharedWeightsStayLinearAndThePassReportsThem) {
  auto m = shared_model();
  // The rewrite refuses a weight that another op reads: emptying it would break that reader.
  LinearSites ls = find_linear_sites(m);
  EXPECT_THROW(rewrite_linears(m, std::move(ls), ops::linear_w8a8(), {w8a8_of(m, "other.weight")}), Error);
  EXPECT_EQ(get_tensor(m, "other.weight").numel(), 8 * 16);
  EXPECT_TRUE(nodes_of(m, "joule::linear_w8a8").empty());  // forward untouched
  EXPECT_EQ(m.named_buffers(false).size(), 0u);

  // Through the pass: the shared weight is reported and stays an aten::linear over the float weight.
  Context ctx;
  PassResult r = QuantizePass(QuantizeOptions::from_json({{"scheme", "w8a8"}})).run(m, ctx);
  ASSERT_FALSE(r.skipped.empty());
  EXPECT_EQ(r.skipped[0].weight, "other.weight");
  EXPECT_EQ(r.skipped[0].reason, "read by ops other than aten::linear (a fused kernel or a slice needs it in float)");
  EXPECT_EQ(r.stats["quantized_layers"], 2);
  auto g = m.get_method("forward").graph();
  FileCheck().check("joule::linear_w8a8")->check("aten::linear")->check("aten::t")->run(*g);
  auto lin = nodes_of(m, "aten::linear");
  ASSERT_EQ(lin.size(), 1u);
  EXPECT_EQ(attr_path_of(lin[0]->namedInput("weight"), g->inputs().at(0)).value_or("?"), "other.weight");
}

TEST(Rewrite, SliceReaderKeepsWeightDense) {
  // A slice of the weight is not a linear site of it, and makes the weight's real linear site non-exclusive.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  torch::jit::Module m("__torch__.joule.RewriteSlice");
  m.register_module("fc", models::build_linear(32, 16, gen));
  m.define(R"(
def forward(self, x):
    return self.fc.forward(x) + torch.linear(x, self.fc.weight[0:16])
)");
  LinearSites ls = find_linear_sites(m);
  ASSERT_EQ(ls.sites.size(), 1u);
  EXPECT_EQ(ls.sites[0].weight, "fc.weight");
  EXPECT_EQ(ls.sites[0].nodes.size(), 1u);
  EXPECT_FALSE(ls.sites[0].exclusive);
  Sp24Packing p = pack_sp24(m, {"fc.weight"});
  EXPECT_TRUE(p.packed.empty());
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(p.warnings[0], "'fc.weight' stays dense: it is read by ops other than a plain aten::linear");
  EXPECT_EQ(get_tensor(m, "fc.weight").numel(), 16 * 32);
  EXPECT_TRUE(nodes_of(m, "joule::linear_sp24").empty());
}

TEST(Rewrite, MisuseIsRefused) {
  auto m = single_linear(32, 16, 6);
  PackedWeight p = w8a8_of(m, "fc.weight");
  {
    LinearSites ls = find_linear_sites(m);
    PackedWeight bad = p;
    bad.buffers.push_back({"scales", at::zeros({1})});  // not an argument of linear_w8a8
    EXPECT_THROW(rewrite_linears(m, std::move(ls), ops::linear_w8a8(), {bad}), Error);
  }
  {
    LinearSites ls = find_linear_sites(m);
    EXPECT_THROW(rewrite_linears(m, std::move(ls), ops::linear_w4(), {p}), Error);  // no zeros, no ints
  }
  {
    LinearSites ls = find_linear_sites(m);
    PackedWeight other = p;
    other.weight = "fc.bias";
    EXPECT_THROW(rewrite_linears(m, std::move(ls), ops::linear_w8a8(), {other}), Error);
  }
  EXPECT_EQ(m.named_buffers(false).size(), 0u);  // refused before any change
  {
    LinearSites ls = find_linear_sites(m);
    rewrite_linears(m, std::move(ls), ops::linear_w8a8(), {});  // nothing to do
    EXPECT_EQ(get_tensor(m, "fc.weight").numel(), 16 * 32);
  }
}

TEST(Rewrite, Sp24CallMatchesTheKernelReference) {
  const int64_t K = 64, N = 24, M = 7;
  auto m = single_linear(K, N, 7);
  make_2_4(get_tensor(m, "fc.weight"));
  Sp24Packing p = pack_sp24(m, {"fc.weight"});
  ASSERT_EQ(p.packed, std::vector<std::string>{"fc.weight"});
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_EQ(p.bytes_before, N * K * 4);
  EXPECT_EQ(p.bytes_after, N * K / 2 * 4 + N * kernels::sp24_meta_cols(K) * 2);

  auto g = m.get_method("forward").graph();
  FileCheck()
      .check("prim::GetAttr[name=\"_joule_fc_weight_sp24_values\"]")
      ->check("prim::GetAttr[name=\"_joule_fc_weight_sp24_meta\"]")
      ->check("joule::linear_sp24")
      ->check_not("aten::linear")
      ->run(*g);
  auto calls = nodes_of(m, "joule::linear_sp24");
  ASSERT_EQ(calls.size(), 1u);
  expect_call(calls[0], ops::linear_sp24(), "fc.weight", "fc.bias", {{"in_features", K}}, "sp24_");

  at::Tensor x = at::randn({M, K}, at::make_generator<at::CPUGeneratorImpl>(8));
  at::Tensor values = get_tensor(m, "_joule_fc_weight_sp24_values"), meta = get_tensor(m, "_joule_fc_weight_sp24_meta");
  at::Tensor bias = get_tensor(m, "fc.bias"), want = at::empty({M, N});
  kernels::linear_sp24_ref(x.data_ptr<float>(), M, K, values.data_ptr<float>(),
                           reinterpret_cast<const uint16_t*>(meta.data_ptr<int16_t>()), N, bias.data_ptr<float>(),
                           want.data_ptr<float>());
  at::Tensor got = test::forward(m, x);
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max().item<float>();
}

TEST(Rewrite, W8A8AndW4CallsMatchTheKernelReferences) {
  const int64_t K = 48, N = 20, M = 5;
  at::Tensor x = at::randn({M, K}, at::make_generator<at::CPUGeneratorImpl>(9));
  {
    auto m = single_linear(K, N, 10);
    LinearSites ls = find_linear_sites(m);
    rewrite_linears(m, std::move(ls), ops::linear_w8a8(), {w8a8_of(m, "fc.weight")});
    at::Tensor q = get_tensor(m, "_joule_fc_weight_qweight"), sc = get_tensor(m, "_joule_fc_weight_w_scale");
    at::Tensor bias = get_tensor(m, "fc.bias"), want = at::empty({M, N});
    kernels::linear_w8a8_ref(x.data_ptr<float>(), M, K, q.data_ptr<int8_t>(), sc.data_ptr<float>(), N,
                             bias.data_ptr<float>(), want.data_ptr<float>());
    at::Tensor got = test::forward(m, x);
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max().item<float>();
  }
  {
    const int64_t group = 16;
    auto m = single_linear(K, N, 11);
    W4Config c;
    c.group = group;
    W4Packing w4 = pack_w4(get_tensor(m, "fc.weight").detach().contiguous(), at::Tensor(), 0, c);
    EXPECT_FALSE(w4.output_error_gptq.has_value());
    w4.packed.weight = "fc.weight";
    LinearSites ls = find_linear_sites(m);
    rewrite_linears(m, std::move(ls), ops::linear_w4(), {w4.packed});
    auto calls = nodes_of(m, "joule::linear_w4");
    ASSERT_EQ(calls.size(), 1u);
    expect_call(calls[0], ops::linear_w4(), "fc.weight", "fc.bias", {{"group_size", group}, {"in_features", K}});
    at::Tensor q = get_tensor(m, "_joule_fc_weight_qweight"), sc = get_tensor(m, "_joule_fc_weight_scales");
    at::Tensor z = get_tensor(m, "_joule_fc_weight_zeros"), bias = get_tensor(m, "fc.bias"), want = at::empty({M, N});
    kernels::linear_w4_ref(x.data_ptr<float>(), M, K, q.data_ptr<uint8_t>(), sc.data_ptr<float>(), z.data_ptr<uint8_t>(),
                           N, group, bias.data_ptr<float>(), want.data_ptr<float>());
    at::Tensor got = test::forward(m, x);
    EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max().item<float>();
  }
}

// --- The CPU execution lowering (compress/ir/lower.h) ---

namespace {

at::Tensor call_linear_float(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b,
                           const std::string& act) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("joule::linear_float", "");
  torch::jit::Stack st{x, w, b ? c10::IValue(*b) : c10::IValue(), act, std::string("fp32")};
  op.callBoxed(st);
  return st.at(0).toTensor();
}

at::Tensor aten_reference(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b,
                          const std::string& act) {
  // In double, so that the float kernels are compared with the exact result, not with each other's rounding.
  at::Tensor y = at::linear(x.to(at::kDouble), w.to(at::kDouble), b ? std::optional<at::Tensor>(b->to(at::kDouble)) : b);
  if (act == "gelu") y = at::gelu(y, "none");
  if (act == "gelu_tanh") y = at::gelu(y, "tanh");
  return y;
}

// fc1 -> GELU (erf) -> fc2 -> GELU (tanh); shared: read twice, so its GELU cannot be fused; wide: a float64 weight,
// not lowered.
torch::jit::Module gelu_model() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  torch::jit::Module m("__torch__.joule.LowerTest");
  m.register_module("fc1", models::build_linear(48, 64, gen));
  m.register_module("fc2", models::build_linear(64, 32, gen));
  m.register_module("shared", models::build_linear(32, 32, gen, /*bias=*/false));
  m.register_parameter("wide", at::randn({8, 32}, gen, at::kDouble), false);
  m.define(R"(
def forward(self, x):
    h = torch.gelu(self.fc1.forward(x))
    h = torch.gelu(self.fc2.forward(h), approximate="tanh")
    s = self.shared.forward(h)
    s = torch.gelu(s) + s
    return torch.cat([s, torch.linear(s.double(), self.wide).float()], -1)
)");
  m.eval();
  return m;
}

}  // namespace

TEST(Lower, LinearFloatMatchesTheExactResultOnEveryShapeAndActivation) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  for (int64_t M : {1, 3, 128})
    for (int64_t K : {5, 64, 384})
      for (int64_t N : {7, 384})
        for (bool bias : {true, false})
          for (const char* act : {"none", "gelu", "gelu_tanh"}) {
            SCOPED_TRACE(testing::Message() << M << "x" << K << "x" << N << " bias " << bias << " " << act);
            at::Tensor x = at::randn({M, K}, gen), w = at::randn({N, K}, gen);
            std::optional<at::Tensor> b;
            if (bias) b = at::randn({N}, gen);
            at::Tensor ref = aten_reference(x, w, b, act);
            at::Tensor y = call_linear_float(x, w, b, act);
            ASSERT_EQ(y.sizes(), ref.sizes());
            // float32 accumulation over K terms of unit variance: error grows like sqrt(K) ulps of the magnitude
            const double tol = 1e-5 * std::sqrt(double(K)) * (1 + ref.abs().max().item<double>());
            EXPECT_LT((y.to(at::kDouble) - ref).abs().max().item<double>(), tol);
            // leading dims kept; a second call reuses the reordered weight and gives the same bits
            at::Tensor y3 = call_linear_float(x.view({1, M, K}), w, b, act);
            EXPECT_EQ(y3.sizes(), (std::vector<int64_t>{1, M, N}));
            EXPECT_TRUE(at::equal(y3.view({M, N}), y));
          }
}

TEST(Lower, LinearFloatRepacksAWeightChangedInPlaceAndFallsBackOutsideFloat32) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(6);
  at::Tensor x = at::randn({16, 32}, gen), w = at::randn({24, 32}, gen);
  at::Tensor y0 = call_linear_float(x, w, std::nullopt, "none");
  w.mul_(-2);  // bumps the version counter: the cached oneDNN layout must not be used
  at::Tensor y1 = call_linear_float(x, w, std::nullopt, "none");
  EXPECT_LT((y1 + 2 * y0).abs().max().item<double>(), 1e-4);
  at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble);  // float64: ATen, exactly
  EXPECT_TRUE(at::equal(call_linear_float(xd, wd, std::nullopt, "gelu"), at::gelu(at::linear(xd, wd), "none")));
  at::Tensor empty = call_linear_float(at::randn({0, 32}), w, std::nullopt, "none");
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 24}));
  EXPECT_THROW(call_linear_float(x, w, std::nullopt, "relu"), c10::Error);
  EXPECT_THROW(call_linear_float(at::randn({4, 31}), w, std::nullopt, "none"), c10::Error);
}

TEST(Lower, FloatLinearsBecomeOneDnnCallsWithTheirOnlyGeluFusedAndTheModelIsUntouched) {
  auto m = gelu_model();
  at::Tensor x = at::randn({2, 5, 48}, at::make_generator<at::CPUGeneratorImpl>(7));
  torch::NoGradGuard g;
  at::Tensor ref = m.forward({x}).toTensor();
  Lowered low = lower_for_cpu(m);
  EXPECT_EQ(low.linears, 3);     // fc1, fc2, shared; not the float64 one
  EXPECT_EQ(low.fused_gelu, 2);  // erf and tanh; not shared's, whose output has two readers
  auto lg = low.module.get_method("forward").graph();
  std::vector<std::string> acts;
  for (auto* n : lg->nodes())
    if (n->kind().toQualString() == std::string("joule::linear_float"))
      acts.push_back(torch::jit::toIValue(n->input(3))->toStringRef());
  EXPECT_EQ(acts, (std::vector<std::string>{"gelu", "gelu_tanh", "none"}));
  FileCheck().check("joule::linear_float")->check("aten::gelu")->check("aten::linear")->run(*lg);
  FileCheck().check_count("aten::gelu", 1, /*exactly=*/true)->check_count("aten::linear", 1, true)->run(*lg);
  at::Tensor y = low.module.forward({x}).toTensor();
  EXPECT_LT((y - ref).abs().max().item<double>(), 1e-4 * (1 + ref.abs().max().item<double>()));
  // The model itself still runs aten::linear and shares its tensors with the copy (nothing duplicated).
  EXPECT_EQ(find_linear_sites(m).sites.size(), 4u);
  EXPECT_EQ(get_tensor(m, "fc1.weight").data_ptr(), get_tensor(low.module, "fc1.weight").data_ptr());
  EXPECT_TRUE(at::equal(m.forward({x}).toTensor(), ref));
  // The A/B switch.
  ::setenv("JOULE_LOWER", "off", 1);
  Lowered off = lower_for_cpu(m);
  ::unsetenv("JOULE_LOWER");
  EXPECT_EQ(off.linears, 0);
  EXPECT_EQ(off.module._ivalue(), m._ivalue());
}

TEST(Lower, AttentionF32MatchesAtenOnBertLayoutsMasksAndFallsBackElsewhere) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("joule::attention_f32", "");
  auto call = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& m) {
    torch::jit::Stack st{q, k, v, m ? c10::IValue(*m) : c10::IValue(), c10::IValue()};
    op.callBoxed(st);
    return st.at(0).toTensor();
  };
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  torch::NoGradGuard g;
  for (int64_t S : {1, 13, 128})
    for (int64_t D : {32, 64, 24}) {  // 24: no fast path, ATen's attention
      SCOPED_TRACE(testing::Message() << "S " << S << " D " << D);
      const int64_t B = 3, H = 4;
      // As BERT makes them: [B, S, H*D] projections viewed as [B, H, S, D]; a [B, 1, 1, S] additive padding mask.
      auto proj = [&] { return at::randn({B, S, H * D}, gen).view({B, S, H, D}).transpose(1, 2); };
      at::Tensor q = proj(), k = proj(), v = proj();
      at::Tensor mask = at::zeros({B, 1, 1, S});
      mask.index_put_({1, at::indexing::Slice(), at::indexing::Slice(), at::indexing::Slice(S - S / 2, S)},
                      std::numeric_limits<float>::lowest());
      for (bool with_mask : {false, true}) {
        std::optional<at::Tensor> m;
        if (with_mask) m = mask;
        at::Tensor ref = at::scaled_dot_product_attention(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble),
                                                           m ? std::optional<at::Tensor>(m->to(at::kDouble)) : m);
        at::Tensor y = call(q, k, v, m);
        ASSERT_EQ(y.sizes(), ref.sizes());
        EXPECT_LT((y.to(at::kDouble) - ref).abs().max().item<double>(), 2e-5);
        if (D != 24) {
          EXPECT_TRUE(y.transpose(1, 2).is_contiguous());  // [B, S, H, D] memory: the reshape after it is free
        }
      }
    }
  // A bool mask is ATen's (same result as ATen, bit for bit).
  at::Tensor q = at::randn({1, 2, 9, 32}, gen), k = at::randn({1, 2, 9, 32}, gen), v = at::randn({1, 2, 9, 32}, gen);
  at::Tensor keep = at::rand({1, 1, 9, 9}, gen) > 0.3;
  keep.select(3, 0).fill_(true);
  EXPECT_TRUE(at::equal(call(q, k, v, keep), at::scaled_dot_product_attention(q, k, v, keep)));
}

TEST(Lower, MiniLMShapedAttentionIsLoweredAndItsOutputKept) {
  // A block in BERT's form (compress/ir/lower.h replaces sdpa; dropout 0 and not causal only).
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  torch::jit::Module m("__torch__.joule.LowerAttention");
  m.register_module("qkv", models::build_linear(64, 192, gen));
  m.define(R"(
def forward(self, x, mask):
    B, T = x.size(0), x.size(1)
    q, k, v = self.qkv.forward(x).view(B, T, 3, 2, 32).unbind(2)
    a = torch.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask)
    b = torch.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, 0.1)
    c = torch.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    return a.transpose(1, 2).reshape(B, T, 64), b.size(), c.transpose(1, 2).reshape(B, T, 64)
)");
  m.eval();
  at::Tensor x = at::randn({2, 16, 64}, gen), mask = at::zeros({2, 1, 1, 16});
  mask.index_put_({1, 0, 0, at::indexing::Slice(10, 16)}, -1e30);
  torch::NoGradGuard g;
  Lowered low = lower_for_cpu(m);
  EXPECT_EQ(low.attention, 1);  // dropout 0.1 and is_causal stay ATen's
  EXPECT_EQ(low.linears, 1);
  auto ref = m.forward({x, mask}).toTuple(), got = low.module.forward({x, mask}).toTuple();
  for (int i : {0, 2}) {
    EXPECT_LT((got->elements()[i].toTensor() - ref->elements()[i].toTensor()).abs().max().item<double>(), 1e-5);
  }
}

TEST(Lower, Bf16ComputeRoundsTheOperandsToBfloat16AndIsChosenByTheProcessSetting) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "no AVX512_BF16 / AMX-BF16 on this CPU";
  auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("joule::linear_float", "");
  at::Tensor x = at::randn({64, 384}, gen), w = at::randn({96, 384}, gen), b = at::randn({96}, gen);
  torch::jit::Stack st{x, w, b, std::string("gelu"), std::string("bf16")};
  op.callBoxed(st);
  at::Tensor y = st.at(0).toTensor().to(at::kDouble);
  const auto r = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kDouble); };
  at::Tensor exact = at::gelu(at::linear(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble)), "none");
  at::Tensor rounded = at::gelu(at::linear(r(x), r(w), r(b)), "none");
  EXPECT_EQ(st.at(0).toTensor().scalar_type(), at::kFloat);
  // The products of bf16 operands summed in float32, the result rounded to bf16 once (8 bits: 2^-8 relative).
  EXPECT_LT(((y - rounded).abs() - rounded.abs() * (1.0 / 256)).max().item<double>(), 1e-3);
  // and it really ran in bf16: further from the exact float result than float32 rounding can be
  EXPECT_GT((y - exact).abs().max().item<double>(), 1e-2);
  // The process setting decides what lowering inserts.
  auto m = single_linear(32, 8, 3);
  set_float_compute(FloatCompute::Bf16);
  Lowered low = lower_for_cpu(m);
  set_float_compute(FloatCompute::Fp32);
  FileCheck().check("\"bf16\"")->check("joule::linear_float")->run(*low.module.get_method("forward").graph());
  FileCheck().check("\"fp32\"")->run(*lower_for_cpu(m).module.get_method("forward").graph());
}

// --w4a8: each joule::linear_w4 whose group the int8 kernel takes becomes joule::linear_w4a8 in the lowered copy,
// which computes what linear_w4a8_ref does on the same buffers; groups it cannot take stay on float activations
// and are counted; the model itself keeps linear_w4, and the default setting lowers nothing.
TEST(Lower, W4A8ReplacesW4CallsWhoseGroupItTakesAndMatchesItsReference) {
  if (!cpu_has_w4a8()) GTEST_SKIP() << "no AVX2 on this CPU";
  models::MlpConfig cfg;
  cfg.d_in = 256, cfg.d_model = 256, cfg.hidden = 512, cfg.d_out = 16, cfg.blocks = 1, cfg.seed = 3;
  auto m = models::build_mlp(cfg);
  Context ctx;
  // fc_in (K 256) and blocks.0.a (K 256) in groups of 128, blocks.0.b (K 512) in 4 (below the int8 kernel's 8)
  // by a second pass; head float.
  QuantizePass(QuantizeOptions::from_json({{"scheme", "w4"}, {"group", 128}, {"exclude", {"head", "blocks.0.b"}}}))
      .run(m, ctx);
  QuantizePass(QuantizeOptions::from_json({{"scheme", "w4"}, {"group", 4}, {"include", "blocks.0.b"}})).run(m, ctx);
  ASSERT_EQ(nodes_of(m, "joule::linear_w4").size(), 3u);
  at::Tensor x = at::randn({7, 256}, at::make_generator<at::CPUGeneratorImpl>(13));
  const at::Tensor float_act = test::forward(m, x);

  const Lowered by_default = lower_for_cpu(m);  // the default: float activations, every W4 layer counted
  EXPECT_EQ(by_default.w4a8, 0);
  EXPECT_EQ(by_default.w4_float, 3);
  set_w4_activations(W4Activations::Int8);
  Lowered low = lower_for_cpu(m);
  set_w4_activations(W4Activations::Float);
  EXPECT_EQ(low.w4a8, 2);
  EXPECT_EQ(low.w4_float, 1);
  EXPECT_EQ(nodes_of(low.module, "joule::linear_w4a8").size(), 2u);
  EXPECT_EQ(nodes_of(low.module, "joule::linear_w4").size(), 1u);
  EXPECT_EQ(nodes_of(m, "joule::linear_w4").size(), 3u);  // the model is untouched

  // The first layer alone, by the kernel reference on the model's own buffers.
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("joule::linear_w4a8", "");
  at::Tensor q = get_tensor(m, "_joule_fc_in_weight_qweight"), sc = get_tensor(m, "_joule_fc_in_weight_scales");
  at::Tensor z = get_tensor(m, "_joule_fc_in_weight_zeros"), b = get_tensor(m, "fc_in.bias");
  torch::jit::Stack st{x, q, sc, z, int64_t{128}, int64_t{256}, b};
  op.callBoxed(st);
  at::Tensor want = at::empty({7, 256});
  kernels::linear_w4a8_ref(x.data_ptr<float>(), 7, 256, q.data_ptr<uint8_t>(), sc.data_ptr<float>(),
                           z.data_ptr<uint8_t>(), 256, 128, b.data_ptr<float>(), want.data_ptr<float>());
  EXPECT_TRUE(at::allclose(st.at(0).toTensor(), want, 1e-4, 1e-4));
  // Packed once per weight: a second call gives the same bits; an in-place change to the scales packs again.
  torch::jit::Stack st2{x, q, sc, z, int64_t{128}, int64_t{256}, b};
  op.callBoxed(st2);
  EXPECT_TRUE(st2.at(0).toTensor().equal(st.at(0).toTensor()));
  {
    at::NoGradGuard ng;
    sc.mul_(2.0);
  }
  torch::jit::Stack st3{x, q, sc, z, int64_t{128}, int64_t{256}, b};
  op.callBoxed(st3);
  EXPECT_TRUE(at::allclose(st3.at(0).toTensor() - b, (st.at(0).toTensor() - b) * 2, 1e-4, 1e-4));
  {
    at::NoGradGuard ng;
    sc.div_(2.0);
  }
  // The whole model: close to the float-activation run (8-bit x), not equal to it.
  const at::Tensor int8_act = test::forward(low.module, x);
  const double cos = (int8_act.flatten().dot(float_act.flatten()) / (int8_act.norm() * float_act.norm())).item<double>();
  EXPECT_GT(cos, 0.999);
  EXPECT_FALSE(int8_act.equal(float_act));
}
