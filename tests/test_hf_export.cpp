// HF exports of packed models (models/hf_compressed.h): a W8A8 or W4 MiniLM exported in compressed-tensors form
// reads back into the same joule:: ops over the same tensors (embeddings bit-identical to the .pt's); 2:4 exports
// dense with its sparsity recorded; what the format cannot hold is refused before anything is written, and
// checkpoints in schemes Joule cannot run are one-line errors. The libraries' side (transformers, compressed-
// tensors, sentence-transformers) is tests/check_hf_compressed.py.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "compress/base/error.h"
#include "compress/io/safetensors.h"
#include "models/bert.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;
using test::cli;
using test::expect_one_line_error;

namespace {

const std::string kMiniLM = JOULE_MINILM_DIR;
const std::vector<std::string> kTexts = {"A man is playing a guitar.", "Quantized weights take less space.", "Hi."};

#define REQUIRE_MINILM_PACKAGE() \
  if (kMiniLM.empty()) GTEST_SKIP() << "needs the MiniLM package"

fs::path dir(const std::string& name) {
  fs::path d = test::scratch() / ("hfexport_" + name);
  test::remove_tree(d);
  fs::create_directories(d);
  return d;
}

const std::string kRun = " --reps 1 --warmup 0 --energy-windows 2";

nlohmann::json config_of(const fs::path& hf) { return nlohmann::json::parse(test::slurp(hf / "config.json")); }

// A copy of an export folder with config.json's quantization_config changed by `edit`.
fs::path edited_copy(const fs::path& hf, const fs::path& to, const std::function<void(nlohmann::json&)>& edit) {
  test::remove_tree(to);
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(hf))
    if (e.is_regular_file()) fs::create_symlink(e.path(), to / e.path().filename());
  nlohmann::json c = config_of(hf);
  edit(c["quantization_config"]);
  fs::remove(to / "config.json");
  std::ofstream(to / "config.json") << c.dump(2);
  return to;
}

std::string load_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, at::Tensor> buffers(const torch::jit::Module& m) {
  std::map<std::string, at::Tensor> b;
  for (const auto& x : m.named_buffers(true)) b[x.name] = x.value;
  return b;
}

}  // namespace

TEST(HfExport, QuantizedExportsReadBackIntoTheSameOpsBitForBit) {
  REQUIRE_MINILM_PACKAGE();
  fs::path d = dir("quantized");
  std::ofstream(d / "calib.txt") << "A man is playing a guitar.\nTwo dogs run on the beach.\nThe sky is blue today.\n";
  std::ofstream(d / "mixed.yaml") << "passes:\n"
                                    "  - quantize: {scheme: w8a8, include: [\"encoder.layer.*.intermediate.dense\"]}\n"
                                    "  - quantize: {scheme: w4, group: 64}\n";
  struct Case {
    std::string name, command, format;
  };
  for (const Case& c : {Case{"w8a8", "quantize --scheme w8a8", "int-quantized"},
                        Case{"w8a8-static", "quantize --scheme w8a8 --act static --calib " + (d / "calib.txt").string(), "int-quantized"},
                        Case{"w4", "quantize --scheme w4 --group 64", "pack-quantized"},
                        Case{"mixed", "run " + (d / "mixed.yaml").string(), "mixed-precision"}}) {
    SCOPED_TRACE(c.name);
    const fs::path pt = d / (c.name + ".pt"), hf = d / (c.name + "-hf");
    auto r = cli(c.command + " " + kMiniLM + " -o " + pt.string() + " --export-hf " + hf.string() + kRun);
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json q = config_of(hf)["quantization_config"];
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], c.format);
    EXPECT_EQ(q["quantization_status"], "compressed");
    if (c.name == "mixed") {  // one group per scheme: the 6 feed-forward inputs in W8A8, the 30 others in W4
      ASSERT_EQ(q["config_groups"].size(), 2u);
      std::map<std::string, size_t> targets;
      for (const auto& [k, g] : q["config_groups"].items()) targets[g["format"]] = g["targets"].size();
      EXPECT_EQ(targets, (std::map<std::string, size_t>{{"int-quantized", 6}, {"pack-quantized", 30}}));
    } else {
      ASSERT_EQ(q["config_groups"].size(), 1u);
      EXPECT_EQ(q["config_groups"]["group_0"]["targets"].size(), 36u);
    }
    const nlohmann::json& g = q["config_groups"]["group_0"];
    if (c.name == "w4") {
      EXPECT_EQ(g["weights"]["group_size"], 64);
      EXPECT_EQ(g["weights"]["symmetric"], false);
      EXPECT_TRUE(g["input_activations"].is_null());
    } else if (c.name != "mixed") {
      EXPECT_EQ(g["input_activations"]["dynamic"], c.name == "w8a8");
      EXPECT_EQ(g["input_activations"]["strategy"], c.name == "w8a8" ? "token" : "tensor");
    }

    // The tensors on disk: the pooler as the input had it, the packed layouts of the format.
    st::File in = st::File::open((fs::path(kMiniLM) / "model.safetensors").string());
    st::File out = st::File::open((hf / "model.safetensors").string());
    auto find = [](const st::File& f, const std::string& n) { return f.find(n); };
    for (const char* n : {"pooler.dense.weight", "pooler.dense.bias"}) {
      const auto *a = find(in, n), *b = find(out, n);
      ASSERT_TRUE(a && b) << n;
      ASSERT_EQ(a->nbytes, b->nbytes);
      EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << n;
    }
    const std::string m = c.name == "mixed" ? "encoder.layer.0.output.dense" : "encoder.layer.0.intermediate.dense";
    const int64_t N = c.name == "mixed" ? 384 : 1536, K = c.name == "mixed" ? 1536 : 384;
    if (c.name == "w4" || c.name == "mixed") {
      EXPECT_EQ(find(out, m + ".weight_packed")->shape, (std::vector<int64_t>{N, K / 8}));
      EXPECT_EQ(find(out, m + ".weight_zero_point")->shape, (std::vector<int64_t>{N / 8, K / 64}));
      EXPECT_EQ(find(out, m + ".weight_scale")->shape, (std::vector<int64_t>{N, K / 64}));
      EXPECT_EQ(find(out, m + ".weight_shape")->dtype, st::DType::I64);
    } else {
      EXPECT_EQ(find(out, m + ".weight")->dtype, st::DType::I8);
      EXPECT_EQ(find(out, m + ".weight_scale")->shape, (std::vector<int64_t>{1536, 1}));
      EXPECT_EQ(find(out, m + ".input_scale") != nullptr, c.name == "w8a8-static");
    }

    // Read back: the same packed buffers, bit for bit, so the same embeddings.
    models::SentenceEncoder a = models::load_encoder(pt.string()), b = models::load_encoder(hf.string());
    auto ba = buffers(a.module), bb = buffers(b.module);
    size_t packed = 0;
    for (const auto& [name, t] : ba) {
      if (name.rfind("_joule_", 0) != 0) continue;
      ++packed;
      ASSERT_TRUE(bb.count(name)) << name;
      EXPECT_TRUE(t.equal(bb.at(name))) << name;
    }
    EXPECT_GE(packed, 36u * 2);
    EXPECT_EQ(ba.size(), bb.size());
    EXPECT_TRUE(a.embed(kTexts).equal(b.embed(kTexts)));
  }
  test::remove_tree(d);
}

TEST(HfExport, Sp24ExportsDenseWeightsAndItsSparsity) {
  REQUIRE_MINILM_PACKAGE();
  fs::path d = dir("sp24");
  auto r = cli("prune -m 2:4 --pack " + kMiniLM + " -o " + (d / "s.pt").string() + " --export-hf " + (d / "hf").string() + kRun);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json q = config_of(d / "hf")["quantization_config"];
  EXPECT_FALSE(q.contains("config_groups"));
  EXPECT_EQ(q["sparsity_config"]["format"], "dense");
  EXPECT_EQ(q["sparsity_config"]["sparsity_structure"], "2:4");
  EXPECT_EQ(q["sparsity_config"]["targets"].size(), 36u);
  EXPECT_NEAR(q["sparsity_config"]["global_sparsity"].get<double>(), 0.5, 1e-3);
  models::SentenceEncoder a = models::load_encoder((d / "s.pt").string()), b = models::load_encoder((d / "hf").string());
  at::Tensor w = b.module.attr("encoder").toModule().attr("layer").toModule().attr("0").toModule().attr("output").toModule()
                     .attr("dense").toModule().attr("weight").toTensor();
  EXPECT_TRUE(((w.reshape({w.size(0), -1, 4}) != 0).sum(-1) <= 2).all().item<bool>());
  EXPECT_LT((a.embed(kTexts) - b.embed(kTexts)).abs().max().item<float>(), 1e-6);  // sparse vs dense kernels
  test::remove_tree(d);
}

TEST(HfExport, SmoothQuantIsRefusedBeforeAnythingIsWritten) {
  REQUIRE_MINILM_PACKAGE();
  fs::path d = dir("smooth");
  std::ofstream(d / "calib.txt") << "A man is playing a guitar.\nTwo dogs run on the beach.\n";
  expect_one_line_error(cli("quantize --scheme w8a8 --smooth 0.5 --calib " + (d / "calib.txt").string() + " " + kMiniLM +
                            " -o " + (d / "q.pt").string() + " --export-hf " + (d / "hf").string() + kRun),
                        "SmoothQuant");
  EXPECT_FALSE(fs::exists(d / "q.pt"));
  EXPECT_FALSE(fs::exists(d / "hf"));
  for (const auto& e : fs::directory_iterator(d)) EXPECT_EQ(e.path().filename(), "calib.txt") << e.path();  // no temp folder
  test::remove_tree(d);
}

TEST(HfExport, CheckpointsInSchemesJouleCannotRunAreOneLineErrors) {
  REQUIRE_MINILM_PACKAGE();
  fs::path d = dir("foreign");
  auto r = cli("quantize --scheme w8a8 " + kMiniLM + " -o " + (d / "q.pt").string() + " --export-hf " + (d / "hf").string() + kRun);
  ASSERT_EQ(r.code, 0) << r.err;
  struct Case {
    std::string name, needle;
    std::function<void(nlohmann::json&)> edit;
  };
  const std::vector<Case> cases = {
      {"tensor-weights", "which Joule cannot run",
       [](nlohmann::json& q) { q["config_groups"]["group_0"]["weights"]["strategy"] = "tensor"; }},
      {"fp8", "which Joule cannot run", [](nlohmann::json& q) { q["config_groups"]["group_0"]["weights"]["type"] = "float"; }},
      {"outputs", "which Joule cannot run",
       [](nlohmann::json& q) { q["config_groups"]["group_0"]["output_activations"] = q["config_groups"]["group_0"]["weights"]; }},
      {"gptq", "quant_method 'gptq' is not supported", [](nlohmann::json& q) { q["quant_method"] = "gptq"; }},
      {"frozen", "quantization_status 'frozen'", [](nlohmann::json& q) { q["quantization_status"] = "frozen"; }},
  };
  for (const auto& c : cases) {
    fs::path f = edited_copy(d / "hf", d / c.name, c.edit);
    std::string e = load_error([&] { models::load_hf_encoder(f.string()); });
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.name << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;  // names the file
  }
  test::remove_tree(d);
}
