// Magnitude pruning: exact sparsity, the N:M pattern, global thresholds, structured shrinking that is exact
// where expected (removing all-zero channels changes no output), the cubic schedule, save/reload.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "compress/base/error.h"
#include "compress/passes/prune.h"
#include "kernels/cpu/nm.h"
#include "models/builders.h"
#include "test_util.h"

using namespace joule;

namespace {

PassResult prune(torch::jit::Module& m, const nlohmann::json& opts, int64_t step = 0) {
  Context ctx;
  ctx.step = step;
  PrunePass p(PruneOptions::from_json(opts));
  return p.run(m, ctx);
}

int64_t zeros(const at::Tensor& t) { return t.numel() - t.count_nonzero().item<int64_t>(); }

const std::vector<std::string> kMlpWeights = {"fc_in.weight", "blocks.0.a.weight", "blocks.0.b.weight",
                                              "blocks.1.a.weight", "blocks.1.b.weight", "head.weight"};

bool holds_nm(const at::Tensor& w, int in_dim, int n, int m) {
  at::Tensor t = w.movedim(in_dim, -1).contiguous();
  return kernels::nm_satisfied(t.data_ptr<float>(), t.numel() / t.size(-1), t.size(-1), n, m);
}

}  // namespace

TEST(Prune, UnstructuredLayerScopeIsExactAndRemovesSmallest) {
  auto m = models::build_mlp({24, 40, 72, 5, 2, 1});
  std::map<std::string, at::Tensor> orig;
  for (const auto& w : kMlpWeights) orig[w] = get_tensor(m, w).clone();
  auto r = prune(m, {{"method", "unstructured"}, {"sparsity", 0.37}});
  EXPECT_TRUE(r.changed);
  for (const auto& w : kMlpWeights) {
    at::Tensor t = get_tensor(m, w);
    EXPECT_EQ(zeros(t), static_cast<int64_t>(std::floor(0.37 * t.numel()))) << w;
    at::Tensor pruned = orig[w].abs().masked_select(t.eq(0)), kept = orig[w].abs().masked_select(t.ne(0));
    EXPECT_LE(pruned.max().item<float>(), kept.min().item<float>()) << w;
    EXPECT_TRUE(t.masked_select(t.ne(0)).equal(orig[w].masked_select(t.ne(0))));  // survivors unchanged
  }
  EXPECT_EQ(zeros(get_tensor(m, "head.bias")), 0);  // biases are not pruned
}

TEST(Prune, UnstructuredGlobalUsesOneThreshold) {
  auto m = models::build_mlp({24, 40, 72, 5, 2, 2});
  // Scale one layer down so a global threshold prunes it far more than the others.
  get_tensor(m, "blocks.1.b.weight").mul_(0.1);
  std::vector<at::Tensor> orig;
  int64_t total = 0;
  for (const auto& w : kMlpWeights) orig.push_back(get_tensor(m, w).clone()), total += orig.back().numel();
  prune(m, {{"method", "unstructured"}, {"sparsity", 0.5}, {"scope", "global"}});
  int64_t z = 0;
  float max_pruned = 0, min_kept = INFINITY;
  for (size_t i = 0; i < kMlpWeights.size(); ++i) {
    at::Tensor t = get_tensor(m, kMlpWeights[i]);
    z += zeros(t);
    if (zeros(t)) max_pruned = std::max(max_pruned, orig[i].abs().masked_select(t.eq(0)).max().item<float>());
    if (t.count_nonzero().item<int64_t>() > 0)
      min_kept = std::min(min_kept, orig[i].abs().masked_select(t.ne(0)).min().item<float>());
  }
  EXPECT_EQ(z, total / 2);
  EXPECT_LE(max_pruned, min_kept);
  EXPECT_GT(zeros(get_tensor(m, "blocks.1.b.weight")), 0.9 * get_tensor(m, "blocks.1.b.weight").numel());
}

TEST(Prune, TwoFourOnLinearAndConvAlongInputDim) {
  auto m = models::build_mlp({24, 40, 72, 5, 2, 3});
  prune(m, {{"method", "2:4"}});
  for (const auto& w : kMlpWeights) {
    at::Tensor t = get_tensor(m, w);
    EXPECT_TRUE(holds_nm(t, 1, 2, 4)) << w;
    EXPECT_EQ(zeros(t), t.numel() / 2) << w;
  }
  auto cnn = load_model(test::model_path("cnn")).module;
  // conv1 has 3 input channels: it stays dense, reported as skipped, unless an include names it (an error).
  EXPECT_THROW(prune(cnn, {{"method", "2:4"}, {"include", "conv1"}}), Error);
  auto r = prune(cnn, {{"method", "2:4"}});
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0].weight, "conv1.weight");
  EXPECT_EQ(zeros(get_tensor(cnn, "conv1.weight")), 0);
  for (const char* w : {"conv2.weight", "conv3.weight", "fc.weight"}) EXPECT_TRUE(holds_nm(get_tensor(cnn, w), 1, 2, 4)) << w;
  auto m2 = models::build_mlp({24, 40, 72, 5, 1, 3});
  prune(m2, {{"method", "4:8"}, {"include", "blocks.*"}});
  EXPECT_TRUE(holds_nm(get_tensor(m2, "blocks.0.a.weight"), 1, 4, 8));
  EXPECT_EQ(zeros(get_tensor(m2, "fc_in.weight")), 0);  // not included
}

TEST(Prune, IncludeExcludeGlobs) {
  auto m = models::build_mlp({8, 16, 32, 4, 2, 0});
  prune(m, {{"method", "unstructured"}, {"sparsity", 0.5}, {"include", "blocks.*.a"}, {"exclude", "blocks.1.*"}});
  EXPECT_GT(zeros(get_tensor(m, "blocks.0.a.weight")), 0);
  for (const char* w : {"blocks.1.a.weight", "blocks.0.b.weight", "fc_in.weight"}) EXPECT_EQ(zeros(get_tensor(m, w)), 0) << w;
  EXPECT_THROW(prune(m, {{"method", "2:4"}, {"include", "decoder.*"}}), Error);
}

TEST(Prune, StructuredShrinksMlpHiddenWidth) {
  auto m = models::build_mlp({8, 16, 32, 4, 2, 0});
  auto r = prune(m, {{"method", "structured"}, {"sparsity", 0.5}, {"include", "blocks.*.a"}});
  EXPECT_EQ(r.stats["shrunk_layers"], 2);
  EXPECT_EQ(get_tensor(m, "blocks.0.a.weight").sizes(), (at::IntArrayRef{16, 16}));
  EXPECT_EQ(get_tensor(m, "blocks.0.a.bias").sizes(), (at::IntArrayRef{16}));
  EXPECT_EQ(get_tensor(m, "blocks.0.b.weight").sizes(), (at::IntArrayRef{16, 16}));
  EXPECT_EQ(test::forward(m, at::randn({3, 8})).sizes(), (at::IntArrayRef{3, 4}));
}

TEST(Prune, StructuredKeepsHighestNormChannels) {
  auto m = models::build_mlp({8, 16, 32, 4, 1, 5});
  at::Tensor w = get_tensor(m, "blocks.0.a.weight").clone();
  at::Tensor norms = w.norm(2, {1});
  prune(m, {{"method", "structured"}, {"sparsity", 0.25}, {"include", "blocks.0.a"}});
  at::Tensor kept = std::get<0>(std::get<1>(norms.topk(24)).sort());
  EXPECT_TRUE(get_tensor(m, "blocks.0.a.weight").equal(w.index_select(0, kept)));
}

TEST(Prune, StructuredRemovingZeroChannelsIsExact) {
  // MLP: zero 8 hidden neurons (weights and bias) of each block; removing them must not change outputs.
  torch::NoGradGuard no_grad;
  auto m = models::build_mlp({8, 16, 32, 4, 2, 7});
  for (const char* blk : {"blocks.0.a", "blocks.1.a"}) {
    at::Tensor idx = at::arange(0, 32, 4);
    get_tensor(m, std::string(blk) + ".weight").index_fill_(0, idx, 0);
    get_tensor(m, std::string(blk) + ".bias").index_fill_(0, idx, 0);
  }
  at::Tensor x = at::randn({5, 8});
  at::Tensor before = test::forward(m, x);
  prune(m, {{"method", "structured"}, {"sparsity", 0.25}, {"include", "blocks.*.a"}});
  EXPECT_EQ(get_tensor(m, "blocks.1.b.weight").size(1), 24);
  EXPECT_TRUE(at::allclose(test::forward(m, x), before, 1e-5, 1e-6));

  // CNN: conv1 channels that are zero after bn1 (zero filter, bias, bn shift and mean) shrink conv1, bn1
  // and conv2's input channels exactly.
  auto cnn = load_model(test::model_path("cnn")).module;
  at::Tensor idx = at::tensor({1, 6, 11, 14}, at::kLong);
  for (const char* t : {"conv1.weight", "conv1.bias", "bn1.bias", "bn1.running_mean"}) get_tensor(cnn, t).index_fill_(0, idx, 0);
  auto [cx, cy] = test::reference_io("cnn");
  at::Tensor cbefore = test::forward(cnn, cx);
  auto r = prune(cnn, {{"method", "structured"}, {"sparsity", 0.25}, {"include", "conv1"}});
  EXPECT_EQ(r.stats["layers"][0]["batch_norm"], "bn1");
  EXPECT_EQ(get_tensor(cnn, "bn1.running_var").size(0), 12);
  EXPECT_EQ(get_tensor(cnn, "conv2.weight").size(1), 12);
  EXPECT_TRUE(at::allclose(test::forward(cnn, cx), cbefore, 1e-5, 1e-5));

  // PyTorch's TransformerEncoderLayer: the feed-forward width shrinks (linear1 -> relu -> linear2).
  auto enc = load_model(test::model_path("encoder")).module;
  at::Tensor fi = at::arange(0, 128, 2);
  get_tensor(enc, "linear1.weight").index_fill_(0, fi, 0);
  get_tensor(enc, "linear1.bias").index_fill_(0, fi, 0);
  auto [ex, ey] = test::reference_io("encoder");
  at::Tensor ebefore = test::forward(enc, ex);
  prune(enc, {{"method", "structured"}, {"sparsity", 0.5}, {"include", "linear1"}});
  EXPECT_EQ(get_tensor(enc, "linear2.weight").size(1), 64);
  EXPECT_TRUE(at::allclose(test::forward(enc, ex), ebefore, 1e-5, 1e-5));
}

TEST(Prune, StructuredWithoutConsumerZeroesRows) {
  auto m = models::build_mlp({8, 16, 32, 4, 1, 0});
  prune(m, {{"method", "structured"}, {"sparsity", 0.5}, {"include", "head"}});
  at::Tensor w = get_tensor(m, "head.weight");
  EXPECT_EQ(w.sizes(), (at::IntArrayRef{4, 16}));  // the model output keeps its width
  EXPECT_EQ(w.abs().sum(1).eq(0).sum().item<int64_t>(), 2);
}

TEST(Prune, CubicScheduleMatchesZhuGupta) {
  CubicSchedule s{0.1, 100, 200, 10};
  EXPECT_DOUBLE_EQ(s.at(0, 0.9), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100, 0.9), 0.1);
  EXPECT_DOUBLE_EQ(s.at(150, 0.9), 0.9 + (0.1 - 0.9) * 0.125);
  EXPECT_DOUBLE_EQ(s.at(159, 0.9), s.at(150, 0.9));  // steps of `frequency`
  EXPECT_DOUBLE_EQ(s.at(200, 0.9), 0.9);
  EXPECT_DOUBLE_EQ(s.at(10000, 0.9), 0.9);
  auto m = models::build_mlp({8, 16, 32, 4, 1, 0});
  auto r = prune(m,
                 {{"method", "unstructured"}, {"sparsity", 0.8},
                  {"schedule", {{"initial_sparsity", 0.0}, {"begin_step", 0}, {"end_step", 100}, {"frequency", 1}}}},
                 50);
  double expect = 0.8 - 0.8 * 0.125;
  EXPECT_DOUBLE_EQ(r.stats["target_sparsity"].get<double>(), expect);
  EXPECT_EQ(zeros(get_tensor(m, "blocks.0.a.weight")), static_cast<int64_t>(std::floor(expect * 32 * 16)));
}

TEST(Prune, OptionErrors) {
  for (const char* bad : {
           R"({"method": "unstructured", "sparsity": 1.0})", R"({"method": "unstructured", "sparsity": -0.1})",
           R"({"method": "4:2"})", R"({"method": "2:4", "sparsity": 0.3})", R"({"method": "lottery"})",
           R"({"method": "structured", "scope": "global"})", R"({"method": "2:4", "colour": "red"})",
           R"({"method": "unstructured", "schedule": {"begin_step": 10, "end_step": 5}})"})
    EXPECT_THROW(PruneOptions::from_json(nlohmann::json::parse(bad)), Error) << bad;
}

TEST(Prune, SavedModelReloadsWithIdenticalOutputs) {
  auto lm = load_model(test::model_path("mlp"));
  prune(lm.module, {{"method", "2:4"}});
  auto [x, y] = test::reference_io("mlp");
  at::Tensor out = test::forward(lm.module, x);
  auto path = std::filesystem::temp_directory_path() / "joule_prune_roundtrip.pt";
  save_model(lm.module, path.string(), test::model_path("mlp"), lm.workload, nullptr);
  auto back = load_model(path.string());
  EXPECT_TRUE(test::forward(back.module, x).equal(out));
  EXPECT_TRUE(holds_nm(get_tensor(back.module, "blocks.1.a.weight"), 1, 2, 4));
  EXPECT_EQ(back.workload, lm.workload);
  std::filesystem::remove(path);
}

TEST(Prune, TracedCnnUnstructuredZeroesHalfOfEveryConvAndLinear) {
  // torch.jit.trace gives aten::_convolution: its convs are pruned like the linears, not silently left dense.
  auto m = load_model(test::model_path("cnn_traced")).module;
  auto r = prune(m, {{"method", "unstructured"}, {"sparsity", 0.5}});
  int64_t total = 0, zeroed = 0;
  for (const char* w : {"stem.weight", "conv.weight", "fc1.weight", "head.weight"}) {
    at::Tensor t = get_tensor(m, w);
    EXPECT_EQ(zeros(t), t.numel() / 2) << w;
    total += t.numel(), zeroed += zeros(t);
  }
  EXPECT_EQ(total, 16 * 27 + 32 * 144 + 64 * 32 + 10 * 64);
  EXPECT_EQ(r.stats["zeroed_weights"], zeroed);
  EXPECT_EQ(r.stats["layers"].size(), 4u);
  EXPECT_TRUE(r.skipped.empty());
}

TEST(Prune, TwoFourLeavesLayersWithKNotAMultipleOfFourFloatUnlessAnIncludeNamesThem) {
  // The 3-channel stem cannot be 2:4 along its input channels: it stays dense, listed with the reason.
  auto m = load_model(test::model_path("cnn_traced")).module;
  at::Tensor stem = get_tensor(m, "stem.weight").clone();
  auto r = prune(m, {{"method", "2:4"}});
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0].weight, "stem.weight");
  EXPECT_EQ(r.skipped[0].reason, "K % 4 != 0 (K = 3)");
  EXPECT_TRUE(get_tensor(m, "stem.weight").equal(stem));
  EXPECT_TRUE(holds_nm(get_tensor(m, "conv.weight"), 1, 2, 4));
  EXPECT_TRUE(holds_nm(get_tensor(m, "head.weight"), 1, 2, 4));
  EXPECT_EQ(r.stats["layers"].size(), 3u);
  // A glob that happens to match it is still a skip; naming the layer is an error.
  auto m2 = load_model(test::model_path("cnn_traced")).module;
  auto r2 = prune(m2, {{"method", "2:4"}, {"include", {"s*", "conv"}}});
  ASSERT_EQ(r2.skipped.size(), 3u);  // stem (K % 4), fc1 and head (not selected: by the user, not warned about)
  EXPECT_EQ(r2.skipped[0].reason, "K % 4 != 0 (K = 3)");
  EXPECT_FALSE(r2.skipped[0].by_user);
  EXPECT_TRUE(r2.skipped[1].by_user);
  EXPECT_EQ(skipped_summary(r2.skipped), "skipped 1 weight: stem.weight (K % 4 != 0 (K = 3))");
  auto m3 = load_model(test::model_path("cnn_traced")).module;
  try {
    prune(m3, {{"method", "2:4"}, {"include", {"stem", "conv"}}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("include names 'stem', which 2:4 cannot take: K % 4 != 0 (K = 3)"),
              std::string::npos) << e.what();
  }
  EXPECT_TRUE(get_tensor(m3, "conv.weight").count_nonzero().item<int64_t>() == get_tensor(m3, "conv.weight").numel());
}

TEST(Prune, StructuredCnnKeepsItsLogitsAndShrinksThroughPoolingAndFlatten) {
  for (const char* name : {"cnn_traced", "cnn_pool"}) {
    auto m = load_model(test::model_path(name)).module;
    auto [x, y] = test::reference_io(name);
    auto r = prune(m, {{"method", "structured"}, {"sparsity", 0.25}});
    // The classifier is the output layer: never shrunk or zeroed by default.
    ASSERT_EQ(r.skipped.size(), 1u) << name;
    EXPECT_EQ(r.skipped[0].weight, "head.weight") << name;
    EXPECT_NE(r.skipped[0].reason.find("output layer"), std::string::npos) << name;
    EXPECT_EQ(get_tensor(m, "head.weight").count_nonzero().item<int64_t>(), 10 * 48) << name;  // all 10 logits live
    // stem (through bn and max_pool), conv (through adaptive pooling and flatten) and fc1 all shrink.
    EXPECT_EQ(r.stats["shrunk_layers"], 3) << name;
    EXPECT_EQ(get_tensor(m, "stem.weight").sizes(), (at::IntArrayRef{12, 3, 3, 3})) << name;
    EXPECT_EQ(get_tensor(m, "bn.running_mean").size(0), 12) << name;
    EXPECT_EQ(get_tensor(m, "conv.weight").sizes(), (at::IntArrayRef{24, 12, 3, 3})) << name;
    EXPECT_EQ(get_tensor(m, "fc1.weight").sizes(), (at::IntArrayRef{48, 24})) << name;
    EXPECT_EQ(get_tensor(m, "head.weight").sizes(), (at::IntArrayRef{10, 48})) << name;
    at::Tensor out = test::forward(m, x);
    ASSERT_EQ(out.sizes(), y.sizes()) << name;
    // A quarter of every hidden width gone without fine-tuning: the logits still point the same way.
    double cos = (out.flatten().dot(y.flatten()) / (out.norm() * y.norm())).item<double>();
    EXPECT_GT(cos, 0.8) << name;
    EXPECT_LT(cos, 1.0 - 1e-6) << name;
  }
  // Naming the head prunes it (zeroed rows: nothing after it to shrink).
  auto m = load_model(test::model_path("cnn_traced")).module;
  auto r = prune(m, {{"method", "structured"}, {"sparsity", 0.5}, {"include", "head"}});
  EXPECT_EQ(get_tensor(m, "head.weight").abs().sum(1).eq(0).sum().item<int64_t>(), 5);
}

TEST(Prune, StructuredRemovingZeroChannelsBeforeAFlattenIsExact) {
  // cnn: conv3 (Conv1d, 8 channels of 64 positions) -> flatten(1) -> fc: channel c is fc's columns [64c, 64c + 64).
  auto cnn = load_model(test::model_path("cnn")).module;
  torch::NoGradGuard no_grad;
  at::Tensor idx = at::tensor({2, 5}, at::kLong);
  for (const char* t : {"conv3.weight", "conv3.bias"}) get_tensor(cnn, t).index_fill_(0, idx, 0);
  auto [x, y] = test::reference_io("cnn");
  at::Tensor before = test::forward(cnn, x);
  auto r = prune(cnn, {{"method", "structured"}, {"sparsity", 0.25}, {"include", "conv3"}});
  EXPECT_EQ(r.stats["layers"][0]["consumer"], "fc");
  EXPECT_EQ(get_tensor(cnn, "conv3.weight").size(0), 6);
  EXPECT_EQ(get_tensor(cnn, "fc.weight").size(1), 6 * 64);
  EXPECT_TRUE(at::allclose(test::forward(cnn, x), before, 1e-5, 1e-5));
}

TEST(Prune, EveryWeightOpFormIsPrunedOrSkippedWithItsReason) {
  for (const char* name : {"forms_traced", "forms_scripted"}) {
    auto m = load_model(test::model_path(name)).module;
    auto r = prune(m, {{"method", "unstructured"}, {"sparsity", 0.5}});
    for (const char* w : {"c3.weight", "up.weight", "w"}) EXPECT_EQ(zeros(get_tensor(m, w)), get_tensor(m, w).numel() / 2) << w;
    EXPECT_TRUE(r.skipped.empty()) << name;
    auto m2 = load_model(test::model_path(name)).module;
    auto s = prune(m2, {{"method", "structured"}, {"sparsity", 0.5}});
    ASSERT_EQ(s.skipped.size(), 2u) << name;  // the transposed conv, and addmm (a matmul, also the output layer)
    EXPECT_EQ(s.skipped[0].weight, "up.weight") << name;
    EXPECT_NE(s.skipped[0].reason.find("not matmul, transposed"), std::string::npos) << name;
    EXPECT_EQ(get_tensor(m2, "c3.weight").abs().flatten(1).sum(1).eq(0).sum().item<int64_t>(), 2) << name;  // rows zeroed
  }
}
