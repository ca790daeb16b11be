// Graph layer: weight ops, parameter paths, shrink chains and MACs (hand-computed), on a model built in C++
// and on TorchScript files made by PyTorch.
#include <gtest/gtest.h>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/ir/workload.h"
#include "models/builders.h"
#include "test_util.h"

using namespace joule;

static std::vector<std::string> weights(const Analysis& a) {
  std::vector<std::string> w;
  for (const auto& op : a.ops) w.push_back(op.weight);
  return w;
}

TEST(Graph, CppMlpOpsPathsChainsAndMacs) {
  models::MlpConfig cfg{8, 16, 32, 3, 2, 0};
  auto m = models::build_mlp(cfg);
  std::vector<c10::IValue> inputs{at::randn({4, 8})};
  Analysis a = analyze(m, &inputs);
  EXPECT_EQ(weights(a), (std::vector<std::string>{"fc_in.weight", "blocks.0.a.weight", "blocks.0.b.weight",
                                                   "blocks.1.a.weight", "blocks.1.b.weight", "head.weight"}));
  EXPECT_EQ(a.ops[1].module, "blocks.0.a");
  EXPECT_EQ(a.ops[1].bias, "blocks.0.a.bias");
  EXPECT_EQ(a.ops[1].weight_shape, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(a.ops[1].output_shape, (std::vector<int64_t>{4, 32}));
  // fc_in feeds a residual stream and head is the output: only a -> b can shrink.
  ASSERT_EQ(a.chains.size(), 2u);
  EXPECT_EQ(a.chains[0].producer, 1u);
  EXPECT_EQ(a.chains[0].consumer, 2u);
  EXPECT_EQ(a.chains[1].producer, 3u);
  EXPECT_EQ(a.chains[1].consumer, 4u);
  // MACs = batch x out x in per linear: 4*16*8 + 2*(4*32*16 + 4*16*32) + 4*3*16
  EXPECT_EQ(a.ops[0].macs, 512);
  EXPECT_EQ(a.total_macs(), 512 + 2 * (2048 + 2048) + 192);
  EXPECT_EQ(a.total_params, 8 * 16 + 16 + 2 * (16 * 32 + 32 + 32 * 16 + 16) + 16 * 3 + 3);
}

TEST(Graph, PyTorchMlpRunsIdenticallyInLibTorch) {
  auto lm = load_model(test::model_path("mlp"));
  auto [x, y] = test::reference_io("mlp");
  EXPECT_TRUE(at::allclose(test::forward(lm.module, x), y, 1e-5, 1e-6));
  ASSERT_FALSE(lm.workload.is_null());
  EXPECT_EQ(lm.workload["inputs"][0], "f32:8x64");
}

TEST(Graph, PyTorchCnnConvMacsAndBatchNormChain) {
  auto lm = load_model(test::model_path("cnn"));
  auto [x, y] = test::reference_io("cnn");
  std::vector<c10::IValue> inputs{x};
  Analysis a = analyze(lm.module, &inputs);
  EXPECT_EQ(weights(a), (std::vector<std::string>{"conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"}));
  EXPECT_EQ(a.ops[0].kind, OpKind::Conv2d);
  EXPECT_EQ(a.ops[2].kind, OpKind::Conv1d);
  // MACs = output elements x (C_in/groups x kernel area)
  EXPECT_EQ(a.ops[0].macs, 2 * 16 * 16 * 16 * (3 * 9));
  EXPECT_EQ(a.ops[1].macs, 2 * 32 * 16 * 16 * (16 * 9));
  EXPECT_EQ(a.ops[2].macs, 2 * 8 * 64 * 32);
  EXPECT_EQ(a.ops[3].macs, 2 * 10 * 512);
  // conv1 -> bn1 -> relu -> conv2; conv2 -> relu -> max_pool -> flatten(2) (channels stay dim 1) -> conv3; conv3 ->
  // flatten(1) -> fc, where each of conv3's 8 channels is a block of 64 of fc's 512 input features.
  ASSERT_EQ(a.chains.size(), 3u);
  EXPECT_EQ(a.chains[0].producer, 0u);
  EXPECT_EQ(a.chains[0].consumer, 1u);
  EXPECT_EQ(a.chains[0].batch_norm, "bn1");
  EXPECT_EQ(a.chains[0].block, 1);
  EXPECT_EQ(a.chains[1].producer, 1u);
  EXPECT_EQ(a.chains[1].consumer, 2u);
  EXPECT_EQ(a.chains[1].block, 1);
  EXPECT_EQ(a.chains[2].producer, 2u);
  EXPECT_EQ(a.chains[2].consumer, 3u);
  EXPECT_EQ(a.chains[2].block, 64);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(a.ops[i].output, i == 3) << i;  // fc is the output layer
}

TEST(Graph, TracedConvolutionsAreConvsWithTheirChainsAndOutputLayer) {
  // torch.jit.trace records nn.Conv2d as aten::_convolution: the same ops, MACs and chains as the scripted model.
  for (const char* name : {"cnn_traced", "cnn_pool"}) {
    auto lm = load_model(test::model_path(name));
    auto [x, y] = test::reference_io(name);
    EXPECT_TRUE(at::allclose(test::forward(lm.module, x), y, 1e-5, 1e-6)) << name;
    std::vector<c10::IValue> inputs{x};
    Analysis a = analyze(lm.module, &inputs);
    ASSERT_EQ(weights(a), (std::vector<std::string>{"stem.weight", "conv.weight", "fc1.weight", "head.weight"})) << name;
    EXPECT_EQ(a.ops[0].kind, OpKind::Conv2d) << name;
    EXPECT_EQ(a.ops[1].kind, OpKind::Conv2d) << name;
    EXPECT_EQ(a.ops[0].bias, "stem.bias") << name;
    EXPECT_EQ(a.ops[0].groups, 1) << name;
    EXPECT_EQ(a.ops[0].macs, 4 * 16 * 16 * 16 * (3 * 9)) << name;
    EXPECT_EQ(a.ops[1].macs, 4 * 32 * 8 * 8 * (16 * 9)) << name;
    EXPECT_EQ(a.ops[2].macs, 4 * 64 * 32) << name;
    EXPECT_EQ(a.ops[0].logical_weights, 16 * 3 * 9) << name;
    // stem -> bn -> relu -> max_pool -> conv; conv -> relu -> adaptive_avg_pool -> flatten -> fc1 (a 1x1 block);
    // fc1 -> relu -> head. head is the output layer.
    ASSERT_EQ(a.chains.size(), 3u) << name;
    EXPECT_EQ(a.chains[0].batch_norm, "bn") << name;
    EXPECT_EQ(a.chains[1].producer, 1u) << name;
    EXPECT_EQ(a.chains[1].consumer, 2u) << name;
    EXPECT_EQ(a.chains[1].block, 1) << name;
    EXPECT_EQ(a.chains[2].consumer, 3u) << name;
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(a.ops[i].output, i == 3) << name << " " << i;
  }
}

TEST(Graph, PyTorchEncoderPackedProjectionsAndFeedForwardChain) {
  auto lm = load_model(test::model_path("encoder"));
  auto [x, y] = test::reference_io("encoder");
  EXPECT_TRUE(at::allclose(test::forward(lm.module, x), y, 1e-5, 1e-5));
  std::vector<c10::IValue> inputs{x};
  Analysis a = analyze(lm.module, &inputs);
  int64_t in_proj_macs = 0, calls = 0;
  bool saw_slice = false;
  for (const auto& op : a.ops) {
    if (op.weight == "self_attn.in_proj_weight") in_proj_macs += op.macs, calls += op.calls, saw_slice |= op.derived;
  }
  EXPECT_TRUE(saw_slice);  // the q/k/v split path reaches aten::linear through aten::split
  EXPECT_EQ(calls, 1);     // self-attention takes the packed path: one linear over 3*d outputs
  EXPECT_EQ(in_proj_macs, 2 * 10 * 192 * 64);
  bool ff_chain = false;
  for (const auto& c : a.chains) ff_chain |= a.ops[c.producer].module == "linear1" && a.ops[c.consumer].module == "linear2";
  EXPECT_TRUE(ff_chain);
}

TEST(Graph, TensorAccessByPath) {
  auto m = models::build_mlp({8, 16, 32, 3, 1, 0});
  EXPECT_EQ(get_tensor(m, "blocks.0.b.weight").sizes(), (at::IntArrayRef{16, 32}));
  set_tensor(m, "head.bias", at::zeros({3}));
  EXPECT_EQ(get_tensor(m, "head.bias").count_nonzero().item<int64_t>(), 0);
  EXPECT_THROW(get_tensor(m, "blocks.7.a.weight"), Error);
}

TEST(Workload, ParsesSpecsAndRejectsBadOnes) {
  auto s = parse_input_spec("i64:2x128:30522");
  EXPECT_EQ(s.dtype, c10::kLong);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 128}));
  EXPECT_EQ(s.high, 30522);
  EXPECT_EQ(parse_input_spec("1x784").dtype, c10::kFloat);
  EXPECT_EQ(parse_input_spec("f16:3x4").str(), "f16:3x4");
  for (const char* bad : {"", "1x", "0x3", "q8:1x2", "f32:1x2:10", "1x-2", "i64:1x2:0"})
    EXPECT_THROW(parse_input_spec(bad), Error) << bad;
  Workload w;
  w.inputs = {parse_input_spec("i64:2x3:5"), parse_input_spec("2x2")};
  auto a = w.make_inputs(), b = w.make_inputs();
  EXPECT_TRUE(a[0].toTensor().equal(b[0].toTensor()));  // same seed, same inputs
  EXPECT_LT(a[0].toTensor().max().item<int64_t>(), 5);
}

TEST(Graph, EveryOtherWeightOpFormIsRecognised) {
  // conv3d, a transposed conv and addmm, scripted (aten::conv3d, aten::conv_transpose2d) and traced (both
  // aten::_convolution, the second with transposed = true).
  for (const char* name : {"forms_traced", "forms_scripted"}) {
    auto lm = load_model(test::model_path(name));
    auto [x, y] = test::reference_io(name);
    std::vector<c10::IValue> inputs{x};
    Analysis a = analyze(lm.module, &inputs);
    ASSERT_EQ(weights(a), (std::vector<std::string>{"c3.weight", "up.weight", "w"})) << name;
    EXPECT_EQ(a.ops[0].kind, OpKind::Conv3d) << name;
    EXPECT_EQ(a.ops[1].kind, OpKind::ConvTranspose) << name;
    EXPECT_EQ(a.ops[2].kind, OpKind::MatMul) << name;
    EXPECT_EQ(a.ops[1].in_dim, 0) << name;  // [C_in, C_out, kh, kw]
    EXPECT_EQ(a.ops[1].out_dim, 1) << name;
    EXPECT_EQ(a.ops[2].in_dim, 0) << name;  // x @ W, W [K, N]
    EXPECT_EQ(a.ops[2].bias, "b") << name;
    EXPECT_EQ(a.ops[0].macs, 2 * 4 * 4 * 8 * 8 * (2 * 27)) << name;  // output elements x C_in x kernel volume
    EXPECT_EQ(a.ops[1].macs, 2 * 16 * 8 * 8 * (8 * 4)) << name;      // input elements x C_out x kernel area
    EXPECT_EQ(a.ops[2].macs, 2 * 5 * 8) << name;
    EXPECT_TRUE(a.chains.empty()) << name;  // a transposed conv is never shrunk; flatten(1, 2) is not followed
    EXPECT_TRUE(a.ops[2].output) << name;
  }
}
