// The joule CLI end to end: the done-when command on a PyTorch model, recipes, and every bad-input case
// (one-line error, non-zero exit, input untouched, no stray outputs).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "compress/io/model_io.h"
#include "compress/ir/graph.h"
#include "kernels/cpu/nm.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;

namespace {

using test::cli;
using test::CliRun;
using test::scratch;
using test::slurp;

// Every 15th pair of the STS-B dev split: 100 pairs, enough to see a score move, quick to embed.
std::string stsb_subset(const fs::path& dev, const fs::path& dir) {
  std::ifstream in(dev);
  std::ofstream out(dir / "dev100.tsv");
  std::string line;
  for (int i = 0; std::getline(in, line); ++i)
    if (i % 15 == 0) out << line << "\n";
  return (dir / "dev100.tsv").string();
}

using test::expect_one_line_error;

}  // namespace

TEST(Cli, PruneTwoFourOnPyTorchModelDoneWhen) {
  fs::path d = scratch();
  std::string in = test::model_path("mlp");
  std::string before = slurp(in);
  CliRun r = cli("prune --method 2:4 " + in + " -o " + (d / "out.pt").string() + " --report " + (d / "r.json").string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(in), before);  // input untouched
  auto lm = load_model((d / "out.pt").string());
  Analysis a = analyze(lm.module);
  for (const auto& op : a.ops) {
    at::Tensor w = get_tensor(lm.module, op.weight).contiguous();
    EXPECT_TRUE(kernels::nm_satisfied(w.data_ptr<float>(), w.size(0), w.size(1), 2, 4)) << op.weight;
  }
  auto j = nlohmann::json::parse(slurp(d / "r.json"));
  EXPECT_EQ(j["joule_report_version"], 1);
  const auto& p = j["passes"][0];
  EXPECT_EQ(p["name"], "prune");
  EXPECT_EQ(p["options"]["method"], "2:4");
  for (const char* side : {"before", "after"})
    for (const char* k : {"params", "nonzero_params", "weight_bytes", "file_bytes", "latency_ms"})
      EXPECT_GT(p[side][k].get<double>(), 0) << side << "." << k;
  EXPECT_LT(p["after"]["nonzero_params"], p["before"]["nonzero_params"]);
  EXPECT_EQ(p["before"]["quality"]["max_abs_err"], 0.0);
  EXPECT_LT(p["after"]["quality"]["cosine"].get<double>(), 1.0);
  EXPECT_TRUE(p["energy"].contains("cpu_ms_per_inference_after"));
  for (const auto& e : fs::directory_iterator(d)) EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos);
}

TEST(Cli, PruneTwoFourPackWritesSparseOps) {
  fs::path d = scratch();
  CliRun r = cli("prune --method 2:4 --pack " + test::model_path("mlp") + " -o " + (d / "out.pt").string() +
                 " --report " + (d / "r.json").string());
  ASSERT_EQ(r.code, 0) << r.err;
  auto lm = load_model((d / "out.pt").string());
  int packed = 0;
  for (const auto& op : analyze(lm.module).ops) packed += op.quant == "sp24";
  EXPECT_GT(packed, 0);
  auto j = nlohmann::json::parse(slurp(d / "r.json"));
  const auto& p = j["passes"][0];
  EXPECT_EQ(p["options"]["pack"], true);
  EXPECT_LT(p["after"]["file_bytes"], p["before"]["file_bytes"]);  // 17 bits per dense weight instead of 32
}

TEST(Cli, RunRecipeFromTheIssue) {
  fs::path d = scratch();
  std::ofstream(d / "recipe.yaml") << "passes: [{prune: {method: \"2:4\"}}, "
                                      "{prune: {method: structured, sparsity: 0.5, include: [\"blocks.*.a\"]}}]\n";
  CliRun r = cli("run " + (d / "recipe.yaml").string() + " " + test::model_path("mlp") + " -o " + (d / "o.pt").string() +
                " --report " + (d / "r.json").string());
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(slurp(d / "r.json"));
  ASSERT_EQ(j["passes"].size(), 2u);
  EXPECT_EQ(j["passes"][1]["stats"]["shrunk_layers"], 2);
  EXPECT_LT(j["passes"][1]["after"]["file_bytes"], j["passes"][1]["before"]["file_bytes"]);
  EXPECT_NE(j["passes"][1]["warnings"].dump().find("broke the pattern"), std::string::npos);
  EXPECT_NE(r.out.find("2. prune structured"), std::string::npos);
  auto lm = load_model((d / "o.pt").string());
  EXPECT_EQ(get_tensor(lm.module, "blocks.0.a.weight").size(0), 128);
  EXPECT_EQ(lm.provenance["passes"].size(), 2u);

  std::ofstream(d / "recipe.json") << R"({"passes": [{"prune": {"method": "unstructured", "sparsity": 0.25, "scope": "global"}}],
                                         "workload": {"inputs": ["f32:3x64"], "reps": 3}})";
  r = cli("run " + (d / "recipe.json").string() + " " + test::model_path("mlp_noworkload") + " -o " + (d / "o2.pt").string());
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST(Cli, RecipeReportsEnergyPerPassAndPlotsDoneWhen) {
  fs::path d = scratch();
  std::ofstream(d / "r.yaml") << "passes: [{prune: {method: structured, sparsity: 0.5, include: [\"blocks.*.a\"]}}, "
                                 "{prune: {method: \"2:4\"}}]\n";
  CliRun r = cli("run " + (d / "r.yaml").string() + " " + test::model_path("mlp") + " -o " + (d / "o.pt").string() +
                 " --report " + (d / "r.json").string() + " --plot " + (d / "r.svg").string() + " --region FR");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(slurp(d / "r.json"));
  EXPECT_EQ(j["energy_setup"]["grid"]["region"], "FR");
  for (const auto& p : j["passes"]) {
    const auto& e = p["energy"];
    for (const char* k : {"source", "j_per_inference_before", "j_per_inference_after", "saved_j_per_inference",
                          "pass_cost_j", "break_even_inferences", "grid_g_per_kwh", "co2e_g_per_million_before",
                          "co2e_g_per_million_after"})
      EXPECT_TRUE(e.contains(k)) << k;
    EXPECT_EQ(e["source"].get<std::string>().rfind("estimate:", 0), 0u);  // no RAPL/NVML here: never "measured"
    EXPECT_EQ(e["measured"], false);
    EXPECT_EQ(e["grid_g_per_kwh"], 56);
    EXPECT_GT(e["pass_cost_j"].get<double>(), 0);
    EXPECT_GT(e["j_per_inference_before"].get<double>(), 0);
    const auto& op = e["sources"]["estimate:op-model"];
    EXPECT_LE(op["j_per_inference_after"].get<double>(), op["j_per_inference_before"].get<double>());
  }
  // Structured pruning halves the hidden MACs and bytes: the op model must see it; 2:4 on dense kernels
  // costs the same, never more, and its ideal-sparse figure is lower.
  const auto& op1 = j["passes"][0]["energy"]["sources"]["estimate:op-model"];
  EXPECT_LT(op1["j_per_inference_after"].get<double>(), 0.7 * op1["j_per_inference_before"].get<double>());
  const auto& after2 = j["passes"][1]["after"]["energy"];
  EXPECT_LT(after2[1]["detail"]["ideal_sparse"]["j_per_inference"].get<double>(),
            after2[1]["detail"]["as_executed"]["j_per_inference"].get<double>());
  std::string svg = slurp(d / "r.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("Energy per inference"), std::string::npos);
}

TEST(Cli, EnergyCommandListsEverySource) {
  CliRun r = cli("energy " + test::model_path("mlp") + " --energy-windows 3 --cpu-watts 5");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"estimate:time-power", "estimate:op-model", "rapl", "nvml", "5.00 W per busy core"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  r = cli("energy " + test::model_path("mlp") + " --energy-windows 3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["energy"][0]["source"], "estimate:time-power");
  EXPECT_EQ(j["energy"][0]["measured"], false);
  EXPECT_GT(j["energy"][0]["j_per_inference"].get<double>(), 0);
}

TEST(Cli, ConventionsUsersBring) {
  CliRun v = cli("--version");
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_EQ(v.out.rfind("joule 0.", 0), 0u) << v.out;
  EXPECT_NE(v.out.find("LibTorch 2.11"), std::string::npos) << v.out;
  // --threads after the subcommand, a scheme alias in capitals, an alpha-3 region: all as if spelt Joule's way.
  fs::path d = scratch();
  CliRun r = cli("quantize " + test::model_path("mlp") + " --threads 1 --scheme W8A8 --region FRA -o " +
                 (d / "conv.pt").string() + " --reps 2 --warmup 0 --energy-windows 2 --report " + (d / "conv.json").string());
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(slurp(d / "conv.json"));
  EXPECT_EQ(j["model"]["threads"], 1);
  EXPECT_EQ(j["passes"][0]["options"]["scheme"], "w8a8");
  EXPECT_EQ(j["energy_setup"]["grid"]["region"], "FR");
  expect_one_line_error(cli("quantize " + test::model_path("mlp") + " --scheme W4A4 -o " + (d / "x.pt").string()),
                        "unknown scheme \"W4A4\"");
}

TEST(Cli, OutputsNeverTouchInputsOrEachOther) {
  fs::path d = scratch() / "outputs";
  fs::create_directories(d);
  const std::string mlp = test::model_path("mlp");
  const std::string before = slurp(mlp);
  const std::string common = " --reps 1 --warmup 0 --energy-windows 2";
  // An export folder holding the input, two outputs on one path, the report over the input.
  expect_one_line_error(cli("quantize " + mlp + " -o " + (d / "a.pt").string() + " --export-hf " + fs::path(mlp).parent_path().string() + common),
                        "--export-hf '" + fs::path(mlp).parent_path().string() + "' contains the input model");
  expect_one_line_error(cli("quantize " + mlp + " -o " + (d / "r.json").string() + " --report " + (d / "r.json").string() + common),
                        "are the same path or one holds the other");
  expect_one_line_error(cli("quantize " + mlp + " -o " + mlp + ".x --report " + mlp + common), "'" + mlp + "' is the input model");
  // A FIFO as the output is refused, not replaced.
  fs::path fifo = d / "fifo.pt";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_one_line_error(cli("quantize " + mlp + " -o " + fifo.string() + common), "is a FIFO; Joule writes regular files only");
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_EQ(slurp(mlp), before);
  // A rewritten output keeps its mode; a killed run's temp file (its PID gone) is removed by the next write.
  fs::path out = d / "kept.pt";
  ASSERT_EQ(cli("quantize " + mlp + " -o " + out.string() + common).code, 0);
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_write);
  fs::path stale = d / ".kept.pt.tmp.2147483646.0";
  std::ofstream(stale) << "left by kill -9";
  ASSERT_EQ(cli("quantize " + mlp + " -o " + out.string() + common).code, 0);
  EXPECT_EQ(fs::status(out).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_FALSE(fs::exists(stale));
}

TEST(Cli, NonFiniteWeightsAreRefusedNotHidden) {
  fs::path d = scratch();
  LoadedModel lm = load_model(test::model_path("mlp"));
  std::string name;
  {
    torch::NoGradGuard g;
    for (const auto& p : lm.module.named_parameters(true))
      if (p.value.dim() == 2) {
        p.value.view(-1)[3] = std::numeric_limits<float>::infinity();
        name = p.name;
        break;
      }
  }
  ASSERT_FALSE(name.empty());
  save_model(lm.module, (d / "inf.pt").string(), "", lm.workload, nullptr);
  const std::string common = " -o " + (d / "x.pt").string() + " --reps 1 --warmup 0 --energy-windows 2";
  expect_one_line_error(cli("prune " + (d / "inf.pt").string() + common), "prune: weight '" + name + "' has NaN or Inf");
  expect_one_line_error(cli("quantize " + (d / "inf.pt").string() + common), "quantize: weight '" + name + "' has NaN or Inf");
  EXPECT_FALSE(fs::exists(d / "x.pt"));
}

TEST(Cli, MiniLMRecipeReportsStsbPerPassAndBothExportsScoreTheSame) {
  fs::path dev = fs::path(JOULE_SOURCE_DIR) / ".." / "shared" / "data" / "stsb" / "dev.tsv";
  std::string minilm = JOULE_MINILM_DIR;
  if (minilm.empty() || !fs::exists(dev)) GTEST_SKIP() << "needs the MiniLM package and ../shared/data/stsb/dev.tsv";
  fs::path d = scratch();
  std::string data = stsb_subset(dev, d);
  CliRun r = cli("run " + std::string(JOULE_SOURCE_DIR) + "/recipes/minilm-2of4.yaml " + minilm + " -o " +
                 (d / "m.pt").string() + " --export-hf " + (d / "hf").string() + " --stsb " + data + " --report " +
                 (d / "r.json").string() + " --energy-windows 2 --reps 3");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(slurp(d / "r.json"));
  const auto& p = j["passes"][0];
  double before = p["before"]["quality"]["stsb_spearman"], after = p["after"]["quality"]["stsb_spearman"];
  EXPECT_GT(before, 80.0);
  EXPECT_LT(after, before);  // 2:4 without fine-tuning costs some quality
  EXPECT_EQ(p["after"]["quality"]["stsb_pairs"], 100);
  EXPECT_NE(r.out.find("STS-B"), std::string::npos);
  for (const std::string& model : {(d / "m.pt").string(), (d / "hf").string()}) {
    CliRun e = cli("eval stsb --json --model " + model + " --data " + data);
    ASSERT_EQ(e.code, 0) << e.err;
    EXPECT_NEAR(nlohmann::json::parse(e.out)["spearman"].get<double>(), after, 1e-9) << model;
  }
  CliRun emb = cli("embed --model " + (d / "m.pt").string() + " 'A man is playing a guitar.' 'Hi'");
  ASSERT_EQ(emb.code, 0) << emb.err;
  auto first = nlohmann::json::parse(emb.out.substr(0, emb.out.find('\n')));
  EXPECT_EQ(first["embedding"].size(), 384u);
  expect_one_line_error(cli("eval stsb --model " + (d / "m.pt").string() + " --data /no/such.tsv"), "no such file");
  expect_one_line_error(cli("eval stsb --model " + test::model_path("mlp") + " --data " + data), "not a sentence encoder");
  expect_one_line_error(cli("embed --model /no/such/dir hello"), "no such file");
}

TEST(Cli, HfExportRefusesLayersOfDifferentWidthsBeforeWritingAnything) {
  std::string minilm = JOULE_MINILM_DIR;
  if (minilm.empty()) GTEST_SKIP() << "needs the MiniLM package";
  fs::path d = scratch();
  // Only layer 0's feed-forward block is narrowed: one intermediate_size cannot describe the result.
  expect_one_line_error(cli("prune --method structured --sparsity 0.25 --include 'encoder.layer.0.intermediate.dense' " +
                            minilm + " -o " + (d / "x.pt").string() + " --export-hf " + (d / "hf").string() +
                            " --reps 1 --warmup 0 --energy-windows 2"),
                        "different widths (1152: encoder.layer.0; 1536: encoder.layer.1,");
  EXPECT_FALSE(fs::exists(d / "x.pt"));
  EXPECT_FALSE(fs::exists(d / "hf" / "config.json"));
}

TEST(Cli, QuantizedMiniLMReloadsInAFreshProcessWithTheSameScore) {
  fs::path dev = fs::path(JOULE_SOURCE_DIR) / ".." / "shared" / "data" / "stsb" / "dev.tsv";
  std::string minilm = JOULE_MINILM_DIR;
  if (minilm.empty() || !fs::exists(dev)) GTEST_SKIP() << "needs the MiniLM package and ../shared/data/stsb/dev.tsv";
  fs::path d = scratch();
  std::string data = stsb_subset(dev, d);
  CliRun r = cli("quantize --scheme w4 --group 128 " + minilm + " -o " + (d / "q.pt").string() + " --stsb " + data +
                 " --report " + (d / "q.json").string() + " --energy-windows 2 --reps 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("quantize w4 g128"), std::string::npos);
  auto j = nlohmann::json::parse(slurp(d / "q.json"));
  double after = j["passes"][0]["after"]["quality"]["stsb_spearman"];
  EXPECT_LE(j["passes"][0]["stats"]["weight_bytes_ratio"].get<double>(), 0.16);
  CliRun e = cli("eval stsb --json --model " + (d / "q.pt").string() + " --data " + data);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NEAR(nlohmann::json::parse(e.out)["spearman"].get<double>(), after, 1e-9);
  expect_one_line_error(cli("quantize --scheme w4 --group 96 " + minilm + " -o " + (d / "x.pt").string()),
                        "not a power of two");
  expect_one_line_error(cli("quantize --scheme w4 --group 2048 " + test::model_path("mlp") + " -o " +
                            (d / "x.pt").string()), "no linear layer to quantize (skipped 6 weights: fc_in.weight (K < group (K = 64, group 2048))");
  expect_one_line_error(cli("quantize --scheme w2 " + test::model_path("mlp") + " -o " + (d / "x.pt").string()),
                        "unknown scheme");
  EXPECT_FALSE(fs::exists(d / "x.pt"));
}

TEST(Cli, GptqKeepsMiniLMEmbeddingsCloserThanRtn) {
  // Same group size, same STS-B sentences: GPTQ calibrated on STS-B train text must leave the embeddings closer
  // to fp32 than RTN does, and lower its own objective (the layers' output error) well below RTN's.
  fs::path data_dir = fs::path(JOULE_SOURCE_DIR) / ".." / "shared" / "data" / "stsb";
  std::string minilm = JOULE_MINILM_DIR;
  if (minilm.empty() || !fs::exists(data_dir / "train.tsv")) GTEST_SKIP() << "needs the MiniLM package and STS-B";
  fs::path d = scratch();
  std::string data = stsb_subset(data_dir / "dev.tsv", d);
  auto run = [&](const std::string& extra, const std::string& name) {
    CliRun r = cli("quantize --scheme w4 --group 128 " + extra + " " + minilm + " -o " + (d / (name + ".pt")).string() +
                   " --stsb " + data + " --report " + (d / (name + ".json")).string() + " --energy-windows 2 --reps 2");
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(slurp(d / (name + ".json")))["passes"][0];
  };
  auto rtn = run("", "rtn");
  auto gptq = run("--method gptq --calib " + (data_dir / "train.tsv").string() + " --calib-samples 256", "gptq");
  EXPECT_LT(gptq["stats"]["gptq_error_ratio"].get<double>(), 0.6);
  double cos_rtn = rtn["after"]["quality"]["stsb_embedding_cosine"], cos_gptq = gptq["after"]["quality"]["stsb_embedding_cosine"];
  EXPECT_LT(1 - cos_gptq, 0.6 * (1 - cos_rtn)) << "rtn " << cos_rtn << " gptq " << cos_gptq;
  EXPECT_EQ(gptq["options"]["method"], "gptq");
  expect_one_line_error(cli("quantize --scheme w4 --method gptq --calib /no/such.tsv " + minilm + " -o " +
                            (d / "x.pt").string()), "no such file");
  EXPECT_FALSE(fs::exists(d / "x.pt"));
}

TEST(Cli, CalibrationErrorsAreOneLine) {
  fs::path d = scratch();
  std::string mlp = test::model_path("mlp"), out = " -o " + (d / "x.pt").string();
  expect_one_line_error(cli("quantize --scheme w4 --method gptq " + mlp + out), "needs calibration data");
  expect_one_line_error(cli("quantize --scheme w8a8 --act static " + mlp + out), "needs calibration data");
  expect_one_line_error(cli("quantize --scheme w8a8 --method gptq --calib x.tsv " + mlp + out), "applies to scheme w4");
  expect_one_line_error(cli("quantize --scheme w4 --act static --calib x.tsv " + mlp + out), "apply to scheme w8a8");
  expect_one_line_error(cli("quantize --scheme w8a8 --smooth 1.5 --calib x.tsv " + mlp + out), "outside [0, 1]");
  expect_one_line_error(cli("quantize --scheme w8a8 --calib x.tsv " + mlp + out), "only used by");
  expect_one_line_error(cli("quantize --scheme w4 --calib-samples 8 " + mlp + out), "calib_samples needs calib");
  std::ofstream(d / "lines.txt") << "a sentence\n";
  expect_one_line_error(cli("quantize --scheme w4 --group 32 --method gptq --calib " + (d / "lines.txt").string() + " " +
                            mlp + out), "needs a sentence encoder");
  expect_one_line_error(cli("quantize --scheme w4 --group 32 --method gptq --calib " + (d / "none.safetensors").string() +
                            " " + mlp + out), "no such file");
  std::ofstream(d / "corrupt.safetensors") << "not a safetensors file";
  expect_one_line_error(cli("quantize --scheme w4 --group 32 --method gptq --calib " + (d / "corrupt.safetensors").string() +
                            " " + mlp + out), "corrupt.safetensors");
  EXPECT_FALSE(fs::exists(d / "x.pt"));
}

TEST(Cli, InspectPrintsLayerTableAndTotals) {
  CliRun r = cli("inspect " + test::model_path("cnn"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("conv2.weight"), std::string::npos);
  EXPECT_NE(r.out.find("2359296"), std::string::npos);  // conv2 MACs
  r = cli("inspect " + test::model_path("mlp_noworkload") + " --input-shape 2x64 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["macs"], 2 * (64 * 96 + 2 * (96 * 256 * 2) + 96 * 10));
  for (const char* sub : {"inspect", "prune", "run", "energy", "make-model"}) {
    CliRun h = cli(std::string(sub) + " --help");
    EXPECT_EQ(h.code, 0) << sub;
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << sub;
  }
}

TEST(Cli, BadInputGetsOneLineErrors) {
  fs::path d = scratch();
  std::string out = " -o " + (d / "x.pt").string();
  std::string mlp = test::model_path("mlp");
  expect_one_line_error(cli("prune /no/such/model.pt" + out), "no such file");
  std::ofstream(d / "text.pt") << "this is not a model\n";
  expect_one_line_error(cli("prune " + (d / "text.pt").string() + out), "not a TorchScript archive");
  std::string bytes = slurp(mlp);
  std::ofstream(d / "trunc.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_one_line_error(cli("prune " + (d / "trunc.pt").string() + out), "truncated");
  expect_one_line_error(cli("prune --bogus " + mlp + out), "--bogus");
  expect_one_line_error(cli("prune --sparsity 1.5 " + mlp + out), "outside [0, 1)");
  expect_one_line_error(cli("prune --pack " + mlp + out), "pack needs method 2:4");
  // A layer that 2:4 cannot take (3 input channels) is skipped with a warning; naming it is an error.
  expect_one_line_error(cli("prune --method 2:4 --include conv1 " + test::model_path("cnn") + out),
                        "include names 'conv1', which 2:4 cannot take: K % 4 != 0 (K = 3)");
  expect_one_line_error(cli("prune --include 'decoder.*' " + mlp + out), "matches no prunable layer");
  // Pruning needs no workload (PassesThatNeedNoWorkloadRun...); measuring energy does.
  expect_one_line_error(cli("energy " + test::model_path("mlp_noworkload")), "--input-shape");
  expect_one_line_error(cli("prune --input-shape 3x5 " + mlp + out), "");
  expect_one_line_error(cli("prune " + mlp + " -o /no/such/dir/x.pt"), "does not exist");
  expect_one_line_error(cli("run /no/recipe.yaml " + mlp + out), "no such file");
  std::ofstream(d / "bad.yaml") << "passes: [{prune: {method: structured, scope: global}}]\n";
  expect_one_line_error(cli("run " + (d / "bad.yaml").string() + " " + mlp + out), "global");
  std::ofstream(d / "unknown.yaml") << "passes: [{sparsify: {}}]\n";
  expect_one_line_error(cli("run " + (d / "unknown.yaml").string() + " " + mlp + out), "unknown pass");
  expect_one_line_error(cli("prune --region ATLANTIS " + mlp + out), "unknown region");
  expect_one_line_error(cli("prune --grid-intensity 100 --region FR " + mlp + out), "excludes");
  expect_one_line_error(cli("energy --energy-windows 1 " + mlp), "at least 2");
  expect_one_line_error(cli("energy --op-constants /no/such.json " + mlp), "no such file");
  EXPECT_FALSE(fs::exists(d / "x.pt"));

  // The input is never overwritten, even when asked to.
  fs::copy_file(mlp, d / "in.pt", fs::copy_options::overwrite_existing);
  std::string before = slurp(d / "in.pt");
  expect_one_line_error(cli("prune " + (d / "in.pt").string() + " -o " + (d / "in.pt").string()), "never overwrites");
  EXPECT_EQ(slurp(d / "in.pt"), before);
}

TEST(Cli, PassesThatNeedNoWorkloadRunOnAUserModelWithoutInputShape) {
  // A traced CNN as users bring it: no workload in the archive, no --input-shape.
  fs::path d = scratch();
  std::string in = test::model_path("cnn_traced_noworkload");
  std::string before = slurp(in);
  for (const std::string& pass : {std::string("prune --sparsity 0.5"), std::string("quantize --scheme w8a8")}) {
    CliRun r = cli(pass + " " + in + " -o " + (d / "u.pt").string() + " --report " + (d / "u.json").string() +
                   " --plot " + (d / "u.svg").string());
    ASSERT_EQ(r.code, 0) << pass << ": " << r.err;
    EXPECT_EQ(slurp(in), before);
    auto p = nlohmann::json::parse(slurp(d / "u.json"))["passes"][0];
    for (const char* side : {"before", "after"}) {
      EXPECT_EQ(p[side]["measured"], false) << pass;
      EXPECT_NE(p[side]["not_measured"].get<std::string>().find("no workload"), std::string::npos) << pass;
      EXPECT_TRUE(p[side]["latency_ms"].is_null()) << pass;
      EXPECT_TRUE(p[side]["quality"]["cosine"].is_null()) << pass;
      EXPECT_GT(p[side]["file_bytes"].get<int64_t>(), 0) << pass;
    }
    EXPECT_EQ(p["energy"]["source"], "none") << pass;
    EXPECT_NE(r.out.find("latency, fidelity and energy not measured: no workload"), std::string::npos) << r.out;
    EXPECT_NE(slurp(d / "u.svg").find("not measured (no workload)"), std::string::npos);
    auto lm = load_model((d / "u.pt").string());
    EXPECT_TRUE(lm.workload.is_null());  // no made-up workload is saved with it
    if (pass.rfind("prune", 0) == 0) {
      EXPECT_EQ(p["stats"]["zeroed_weights"], (16 * 27 + 32 * 144 + 64 * 32 + 10 * 64) / 2);
    } else {
      // W8A8 on a CNN: the linears are packed; the convs are named on stderr and in the report, with the reason.
      EXPECT_EQ(p["stats"]["quantized_layers"], 2);
      ASSERT_EQ(p["skipped"].size(), 2u);
      EXPECT_EQ(p["skipped"][0]["weight"], "stem.weight");
      EXPECT_EQ(p["skipped"][0]["reason"], "conv2d: no int8 conv kernel");
      EXPECT_NE(r.err.find("joule: warning: quantize w8a8: skipped 2 weights: stem.weight, conv.weight (conv2d: no int8 "
                           "conv kernel)\n"), std::string::npos) << r.err;
      EXPECT_EQ(p["after"]["params"], p["before"]["params"]);  // packed weights still count
      EXPECT_GT(p["after"]["packed_params"].get<int64_t>(), 0);
    }
  }
  // A pass that does need a workload says so in one line.
  expect_one_line_error(cli("quantize --scheme w8a8 --act static --calib " + test::model_path("mlp") + " " + in + " -o " +
                            (d / "u2.pt").string()),
                        "carries no workload");
  EXPECT_FALSE(fs::exists(d / "u2.pt"));
}

TEST(Cli, StructuredPruningOfATracedCnnKeepsItsLogits) {
  fs::path d = scratch();
  CliRun r = cli("prune --method structured --sparsity 0.25 " + test::model_path("cnn_traced") + " -o " +
                 (d / "s.pt").string() + " --report " + (d / "s.json").string() + " --energy-windows 2");
  ASSERT_EQ(r.code, 0) << r.err;
  auto p = nlohmann::json::parse(slurp(d / "s.json"))["passes"][0];
  EXPECT_EQ(p["stats"]["shrunk_layers"], 3);
  EXPECT_EQ(p["skipped"][0]["weight"], "head.weight");
  EXPECT_GT(p["after"]["quality"]["cosine"].get<double>(), 0.8);
  EXPECT_LT(p["after"]["file_bytes"], p["before"]["file_bytes"]);
  auto lm = load_model((d / "s.pt").string());
  auto [x, y] = test::reference_io("cnn_traced");
  EXPECT_EQ(test::forward(lm.module, x).sizes(), y.sizes());  // all 10 logits
  EXPECT_EQ(get_tensor(lm.module, "head.weight").size(0), 10);
}
