// 2:4 packing (prune pack: true): the rewrite to joule::linear_sp24 gives the outputs of the dense 2:4-pruned
// model, the graph analysis sees the packed layers, the archive reloads, weights with other readers stay dense,
// pack is refused without 2:4, and the op's errors name it and the sizes.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/passes/prune.h"
#include "compress/ops/ops.h"
#include "models/builders.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;

namespace {

PassResult prune(torch::jit::Module& m, const nlohmann::json& opts) {
  Context ctx;
  return PrunePass(PruneOptions::from_json(opts)).run(m, ctx);
}

int count_nodes(const torch::jit::Module& m, const std::string& kind) {
  int n = 0;
  for (auto* node : m.get_method("forward").graph()->nodes()) n += node->kind().toQualString() == kind;
  return n;
}

// d_in 24 is not a multiple of 16: fc_in stays dense; every other linear (K = 48 or 64) is packed.
const models::MlpConfig kMlp{24, 48, 64, 5, 2, 11};

}  // namespace

TEST(Sp24Pass, PackedModelMatchesDensePrunedModel) {
  auto dense = models::build_mlp(kMlp), packed = models::build_mlp(kMlp);
  prune(dense, {{"method", "2:4"}});
  auto r = prune(packed, {{"method", "2:4"}, {"pack", true}});
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.stats["packed_layers"], 5);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("fc_in.weight"), std::string::npos) << r.warnings[0];
  EXPECT_EQ(count_nodes(packed, "joule::linear_sp24"), 5);
  EXPECT_EQ(count_nodes(packed, "aten::linear"), 1);  // fc_in
  EXPECT_EQ(get_tensor(packed, "blocks.0.a.weight").numel(), 0);
  EXPECT_EQ(get_tensor(packed, "fc_in.weight").numel(), 24 * 48);
  // blocks.0.b: N = 48, K = 64 -> values [48, 32] float, meta [48, 4] int16.
  EXPECT_EQ(get_tensor(packed, "_joule_blocks_0_b_weight_sp24_values").sizes(), at::IntArrayRef({48, 32}));
  EXPECT_EQ(get_tensor(packed, "_joule_blocks_0_b_weight_sp24_meta").scalar_type(), at::kShort);

  at::Tensor x = at::randn({7, 24}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor want = test::forward(dense, x), got = test::forward(packed, x);
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max().item<float>();

  // The analysis sees the packed layers (MACs from the probe, bytes from values + meta).
  std::vector<c10::IValue> inputs{x};
  Analysis a = analyze(packed, &inputs);
  std::set<std::string> weights;
  for (const auto& op : a.ops) {
    if (op.quant != "sp24") continue;
    weights.insert(op.weight);
    const std::string stem = op.weight.substr(0, op.weight.size() - std::string("values").size());
    EXPECT_EQ(op.quant_tensors, std::vector<std::string>{stem + "meta"});
    EXPECT_FALSE(op.bias.empty()) << op.weight;
    EXPECT_EQ(op.macs, 7 * op.weight_shape[0] * op.weight_shape[1] * 2) << op.weight;  // dense MACs: K = 2 x cols
  }
  std::set<std::string> want_weights;
  for (const char* w :
       {"blocks.0.a.weight", "blocks.0.b.weight", "blocks.1.a.weight", "blocks.1.b.weight", "head.weight"})
    want_weights.insert(packed_buffer_name(w, "sp24_values"));
  EXPECT_EQ(weights, want_weights);
}

TEST(Sp24Pass, SavedModelReloadsWithIdenticalOutputs) {
  auto lm = load_model(test::model_path("mlp"));
  auto [x, y] = test::reference_io("mlp");
  auto r = prune(lm.module, {{"method", "2:4"}, {"pack", true}});
  EXPECT_GT(r.stats["packed_layers"].get<int>(), 0);
  EXPECT_GT(count_nodes(lm.module, "joule::linear_sp24"), 0);
  at::Tensor out = test::forward(lm.module, x);
  auto path = fs::temp_directory_path() / "joule_sp24_roundtrip.pt";
  save_model(lm.module, path.string(), test::model_path("mlp"), lm.workload, nullptr);
  auto back = load_model(path.string());
  EXPECT_EQ(count_nodes(back.module, "joule::linear_sp24"), count_nodes(lm.module, "joule::linear_sp24"));
  EXPECT_TRUE(test::forward(back.module, x).equal(out));
  fs::remove(path);
}

// PyTorch's TransformerEncoderLayer: every weight is also read by the fused fast path
// (aten::_transformer_encoder_layer_fwd) and in_proj_weight through slices, so emptying any of them would break
// the model: all stay dense, each with a warning, and the outputs are those of plain 2:4 pruning.
TEST(Sp24Pass, WeightsReadByOtherOpsStayDense) {
  auto dense = load_model(test::model_path("encoder")).module, packed = load_model(test::model_path("encoder")).module;
  auto [x, y] = test::reference_io("encoder");
  prune(dense, {{"method", "2:4"}});
  auto r = prune(packed, {{"method", "2:4"}, {"pack", true}});
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(count_nodes(packed, "joule::linear_sp24"), 0);
  EXPECT_FALSE(r.stats.contains("packed_layers"));
  EXPECT_EQ(r.warnings.size(), 4u);  // in_proj_weight, out_proj, linear1, linear2
  for (const auto& w : r.warnings) EXPECT_NE(w.find("stays dense"), std::string::npos) << w;
  EXPECT_GT(get_tensor(packed, "linear1.weight").numel(), 0);
  EXPECT_TRUE(at::allclose(test::forward(packed, x), test::forward(dense, x), 1e-5, 1e-5));
}

TEST(Sp24Op, ShapeAndDtypeErrorsNameTheOpAndSizes) {
  ops::ensure_ops_registered();
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("joule::linear_sp24", "")
                .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                  const std::optional<at::Tensor>&)>();
  at::Tensor x = at::randn({3, 32}), values = at::randn({5, 16}), meta = at::full({5, 2}, 0x4444, at::kShort);
  EXPECT_EQ(op.call(x, values, meta, 32, std::nullopt).sizes(), at::IntArrayRef({3, 5}));
  auto expect_error = [&](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(needle), std::string::npos) << e.what_without_backtrace();
    }
  };
  expect_error([&] { op.call(x, values, meta, 24, std::nullopt); }, "linear_sp24: in_features=24");
  expect_error([&] { op.call(x, values, meta.to(at::kInt), 32, std::nullopt); },
               "meta must be contiguous int16 [5, 2]");
  expect_error([&] { op.call(x, values.narrow(1, 0, 8), meta, 32, std::nullopt); },
               "values must be contiguous float32");
  expect_error([&] { op.call(x.narrow(1, 0, 16), values, meta, 32, std::nullopt); }, "expects K=32");
}

TEST(Sp24Pass, PackNeedsTwoFour) {
  for (const char* bad : {R"({"method": "unstructured", "pack": true})", R"({"method": "1:4", "pack": true})",
                          R"({"method": "structured", "pack": true})", R"({"method": "2:4", "pack": "yes"})"})
    EXPECT_THROW(PruneOptions::from_json(nlohmann::json::parse(bad)), Error) << bad;
  EXPECT_EQ(PruneOptions::from_json({{"method", "2:4"}, {"pack", true}}).to_json()["pack"], true);
}
