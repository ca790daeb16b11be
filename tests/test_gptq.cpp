// Calibration and the calibrated quantizers: GPTQ against RTN (identical codes for a diagonal Hessian, lower
// output error on correlated inputs), the calibration statistics against X^T X computed by hand, tensor
// calibration files and their errors, and W8A8 with static scales / SmoothQuant through the pass.
#include <gtest/gtest.h>

#include <filesystem>

#include "compress/analysis/calibration.h"
#include "compress/base/error.h"
#include "compress/algorithms/gptq.h"
#include "compress/passes/quantize.h"
#include "kernels/cpu/w4.h"
#include "models/builders.h"
#include "compress/io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;

namespace {

W4Packed rtn(const at::Tensor& w, int64_t group) {
  const int64_t N = w.size(0), K = w.size(1), G = kernels::w4_groups(K, group);
  W4Packed p{at::empty({N, kernels::w4_row_bytes(K)}, at::kByte), at::empty({N, G}, at::kFloat),
             at::empty({N, G}, at::kByte)};
  kernels::quantize_w4_rtn(w.data_ptr<float>(), N, K, group, p.qweight.data_ptr<uint8_t>(), p.scales.data_ptr<float>(),
                           p.zeros.data_ptr<uint8_t>());
  return p;
}

at::Tensor dequant(const W4Packed& p, int64_t K, int64_t group) {
  at::Tensor d = at::empty({p.qweight.size(0), K}, at::kFloat);
  kernels::dequantize_w4(p.qweight.data_ptr<uint8_t>(), p.scales.data_ptr<float>(), p.zeros.data_ptr<uint8_t>(),
                         p.qweight.size(0), K, group, d.data_ptr<float>());
  return d;
}

// Calibration-like activations: a few strong directions mixed into every channel plus outlier channels, so the
// Hessian is far from diagonal (what GPTQ exploits).
// The mixing matrix is fixed, so every seed draws from the same distribution.
at::Tensor correlated_x(int64_t rows, int64_t K, uint64_t seed) {
  at::Tensor mix = at::randn({8, K}, at::make_generator<at::CPUGeneratorImpl>(1000 + K));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor z = at::randn({rows, 8}, gen);
  at::Tensor x = z.mm(mix) + 0.3 * at::randn({rows, K}, gen);
  x.select(1, 3).mul_(20.0f);
  return x;
}

PassResult quantize(torch::jit::Module& m, Context& ctx, const nlohmann::json& opts) {
  return QuantizePass(QuantizeOptions::from_json(opts)).run(m, ctx);
}

}  // namespace

TEST(Gptq, DiagonalHessianGivesRtnCodesExactly) {
  // No off-diagonal H: no error propagates, so GPTQ rounds every weight exactly as RTN does. Odd N, K not a
  // multiple of the group, a block boundary inside K, with and without act order (static groups).
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (int64_t group : {2, 32, 128})
    for (bool act_order : {false, true}) {
      const int64_t N = 7, K = 300;
      at::Tensor w = at::randn({N, K}, gen);
      at::Tensor h = at::diag(at::rand({K}, gen).to(at::kDouble) + 0.1);
      W4Packed g = gptq_w4(w, h, group, {0.01, 128, act_order}), r = rtn(w, group);
      EXPECT_TRUE(g.qweight.equal(r.qweight)) << "group " << group << " act_order " << act_order;
      EXPECT_TRUE(g.scales.equal(r.scales));
      EXPECT_TRUE(g.zeros.equal(r.zeros));
    }
}

TEST(Gptq, LowersOutputErrorBelowRtnOnCorrelatedInputs) {
  for (bool act_order : {false, true}) {
    const int64_t N = 48, K = 256, group = 64;
    at::Tensor x = correlated_x(2048, K, 5);
    at::Tensor w = at::randn({N, K}, at::make_generator<at::CPUGeneratorImpl>(6)) * 0.05;
    at::Tensor xd = x.to(at::kDouble), h = xd.t().mm(xd);
    at::Tensor wr = dequant(rtn(w, group), K, group), wg = dequant(gptq_w4(w, h, group, {0.01, 128, act_order}), K, group);
    // output_error is the mean squared output error, computed from X^T X: check it against X directly.
    double direct = (x.to(at::kDouble).mm((w - wr).to(at::kDouble).t())).pow(2).sum().item<double>() / 2048;
    EXPECT_NEAR(output_error(w, wr, h, 2048), direct, 1e-9 * direct);
    double e_rtn = output_error(w, wr, h, 2048), e_gptq = output_error(w, wg, h, 2048);
    EXPECT_LT(e_gptq, 0.7 * e_rtn) << "act_order " << act_order;
    // And it generalises: fresh inputs from the same distribution.
    at::Tensor x2 = correlated_x(512, K, 7);
    auto err = [&](const at::Tensor& wh) { return x2.mm((w - wh).t()).pow(2).sum().item<double>(); };
    EXPECT_LT(err(wg), 0.8 * err(wr)) << "act_order " << act_order;
  }
}

TEST(Gptq, DeadInputChannelsQuantizeToZero) {
  // A channel that never saw a non-zero input has H[k,k] = 0: its weights are zeroed before quantization.
  const int64_t N = 4, K = 64;
  at::Tensor x = correlated_x(256, K, 8);
  x.select(1, 10).zero_();
  at::Tensor w = at::randn({N, K}), xd = x.to(at::kDouble);
  at::Tensor wg = dequant(gptq_w4(w, xd.t().mm(xd), 32, {}), K, 32);
  EXPECT_TRUE(wg.select(1, 10).eq(0).all().item<bool>());
}

TEST(Calibration, StatsAreXtXAndAbsMaxOfEachLinearInput) {
  auto m = models::build_mlp({16, 24, 32, 5, 1, 0});
  at::Tensor x1 = at::randn({3, 16}), x2 = at::randn({2, 16});
  CalibrationStats s = collect_linear_stats(m, {{x1}, {x2}});
  ASSERT_TRUE(s.count("fc_in.weight"));
  EXPECT_EQ(s.size(), 4u);  // fc_in, blocks.0.a, blocks.0.b, head
  const LinearStats& st = s.at("fc_in.weight");
  at::Tensor x = at::cat({x1, x2}).to(at::kDouble);
  EXPECT_EQ(st.rows, 5);
  EXPECT_TRUE(at::allclose(st.xtx, x.t().mm(x), 1e-12, 1e-12));
  EXPECT_TRUE(st.absmax.equal(at::cat({x1, x2}).abs().amax(0)));
}

TEST(Calibration, TensorFileBatchesAndErrors) {
  auto m = models::build_mlp({16, 24, 32, 5, 1, 0});
  Workload w;
  w.inputs.push_back(parse_input_spec("4x16"));
  fs::path d = fs::temp_directory_path() / "joule_calib_test";
  fs::create_directories(d);
  auto write = [&](const std::string& name, const std::string& tensor, st::DType dt, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto v : shape) n *= v;
    std::vector<char> bytes(size_t(n) * st::dtype_size(dt), 0);
    st::write((d / name).string(), {{tensor, dt, shape, bytes.data(), bytes.size()}});
    return (d / name).string();
  };
  std::string good = write("good.safetensors", "x", st::DType::F32, {19, 16});
  Batches b = tensor_calibration(good, m, w, 0, 8);
  ASSERT_EQ(b.size(), 3u);  // 8 + 8 + 3 samples
  EXPECT_EQ(b[2][0].toTensor().size(0), 3);
  EXPECT_EQ(tensor_calibration(good, m, w, 10, 8).size(), 2u);  // samples cap: 8 + 2
  auto expect_error = [&](const std::string& path, const std::string& what) {
    try {
      tensor_calibration(path, m, w, 0);
      ADD_FAILURE() << path << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error((d / "missing.safetensors").string(), "no such file");
  expect_error(write("shape.safetensors", "x", st::DType::F32, {19, 15}), "takes Float [N, 16]");
  expect_error(write("dtype.safetensors", "x", st::DType::I64, {19, 16}), "takes Float");
  expect_error(write("name.safetensors", "input", st::DType::F32, {19, 16}), "no tensor 'x'");
  test::remove_tree(d);
}

TEST(Calibration, W8A8StaticScalesAndSmoothingStayClose) {
  auto base = models::build_mlp({64, 96, 256, 10, 1, 0});
  at::Tensor x = correlated_x(64, 64, 9).to(at::kFloat);
  at::Tensor ref = test::forward(base, x);
  fs::path d = fs::temp_directory_path() / "joule_calib_w8a8";
  fs::create_directories(d);
  std::string file = (d / "calib.safetensors").string();
  at::Tensor xc = x.contiguous();
  st::write(file, {{"x", st::DType::F32, {64, 64}, xc.data_ptr<float>(), size_t(xc.nbytes())}});
  for (const nlohmann::json& opts :
       {nlohmann::json{{"scheme", "w8a8"}, {"act", "static"}, {"calib", file}},
        nlohmann::json{{"scheme", "w8a8"}, {"smooth", 0.5}, {"calib", file}},
        nlohmann::json{{"scheme", "w8a8"}, {"act", "static"}, {"smooth", 0.5}, {"calib", file}}}) {
    auto m = base.clone();
    Context ctx;
    ctx.workload.inputs.push_back(parse_input_spec("1x64"));
    auto r = quantize(m, ctx, opts);
    EXPECT_EQ(r.stats["quantized_layers"], 4) << opts.dump();
    if (opts.value("act", "") == "static") {
      // fc_in's input is x itself: the static scale is max|x| (smoothed when asked) / 127.
      double xs = r.stats["layers"][0]["x_scale"];
      if (!opts.contains("smooth")) {
        EXPECT_FLOAT_EQ(xs, x.abs().max().item<float>() / 127.0f);
      }
    }
    at::Tensor y = test::forward(m, x);
    EXPECT_GT((y.flatten().dot(ref.flatten()) / (y.norm() * ref.norm())).item<double>(), 0.999) << opts.dump();
  }
  test::remove_tree(d);
}
