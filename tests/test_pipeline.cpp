// The middle layer without the CLI: option specs (validation, defaults, help, labels), the pass registry, recipe
// parsing and validation, pipeline ordering with analysis-cache invalidation, and a whole compression job.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "compress/base/error.h"
#include "compress/passes/options.h"
#include "compress/passes/quantize.h"
#include "compress/passes/registry.h"
#include "compress/pipeline/job.h"
#include "compress/pipeline/measure.h"
#include "compress/pipeline/recipe.h"
#include "models/builders.h"

using namespace joule;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const PassSpec& toy_spec() {
  static const PassSpec spec{
      "toy",
      "a pass for tests",
      {{.name = "mode", .type = OptType::String, .help = "how", .default_value = "fast", .choices = {"fast", "slow"},
        .aliases = {{"quick", "fast"}}, .label = "{}", .label_omit = "fast"},
       {.name = "ratio", .type = OptType::Float, .help = "how much", .default_value = 0.5, .min = 0.0, .max = 1.0,
        .max_open = true},
       {.name = "rounds", .type = OptType::Int, .help = "how often", .default_value = 3, .min = 1.0, .label = "x{}"},
       {.name = "tag", .type = OptType::String, .help = "free text"},
       {.name = "dry", .type = OptType::Bool, .help = "change nothing", .default_value = false},
       {.name = "only", .type = OptType::Globs, .help = "layers"},
       {.name = "plan", .type = OptType::Object, .help = "nested", .cli = false,
        .fields = {{.name = "steps", .type = OptType::Int, .help = "steps", .default_value = 10, .min = 1.0}}}}};
  return spec;
}

}  // namespace

TEST(OptionSpec, DefaultsGivenAndTypedAccess) {
  OptionValues v = parse_options(toy_spec(), {{"rounds", 7}, {"only", "a.*"}, {"plan", {{"steps", 4}}}});
  EXPECT_EQ(v.str("mode"), "fast");
  EXPECT_FALSE(v.given("mode"));
  EXPECT_TRUE(v.given("rounds"));
  EXPECT_EQ(v.integer("rounds"), 7);
  EXPECT_DOUBLE_EQ(v.number("ratio"), 0.5);
  EXPECT_FALSE(v.has("tag"));
  EXPECT_EQ(v.str("tag"), "");
  EXPECT_FALSE(v.flag("dry"));
  EXPECT_EQ(v.globs("only"), std::vector<std::string>{"a.*"});
  EXPECT_EQ(v.object("plan").integer("steps"), 4);
  EXPECT_EQ(parse_options(toy_spec(), nlohmann::json::object()).object("plan").integer("steps"), 10);
  EXPECT_THROW(v.get("nonexistent"), std::logic_error);  // a pass asking for an undeclared option is a bug
}

TEST(RecipeGuard, HostileYamlIsRefusedInOneLineBeforeANodeIsBuilt) {
  auto err = [](const std::string& text) { return error_of([&] { recipe_json(text, "r"); }); };
  EXPECT_EQ(err("passes: &a [*a]\n"), "recipe 'r', line 1: YAML aliases (*name) are not accepted in recipes; write the value out");
  // The billion-laughs shape: each level nine aliases of the one before.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c)
    bomb += fmt::format("{0}: &{0} [*{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}]\n", c, char(c - 1));
  EXPECT_EQ(err(bomb), "recipe 'r', line 2: YAML aliases (*name) are not accepted in recipes; write the value out");
  EXPECT_EQ(err("passes:\n  - prune: {sparsity: 0.5, sparsity: 0.9}\n"), "recipe 'r', line 2: key 'sparsity' given twice");
  EXPECT_EQ(err(std::string(40, '[') + std::string(40, ']')), "recipe 'r', line 1: nested deeper than 32 levels");
  EXPECT_EQ(err("? [a, b]\n: 1\n"), "recipe 'r', line 1: a mapping key must be a plain value");
  // Files: only regular ones, and small.
  EXPECT_EQ(error_of([] { load_recipe("/dev/zero"); }), "recipe '/dev/zero': a character device, not a regular file");
  std::filesystem::path fifo = std::filesystem::temp_directory_path() / ("joule_recipe_fifo_" + std::to_string(getpid()));
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { load_recipe(fifo.string()); }), "recipe '" + fifo.string() + "': a FIFO, not a regular file");
  std::filesystem::remove(fifo);
  EXPECT_EQ(error_of([] { load_recipe("/nonexistent/r.yaml"); }), "recipe '/nonexistent/r.yaml': no such file");
}

TEST(OptionSpec, ChoicesMatchAnyCaseAndAliasesAndAreNormalised) {
  EXPECT_EQ(parse_options(toy_spec(), {{"mode", "SLOW"}}).str("mode"), "slow");
  EXPECT_EQ(parse_options(toy_spec(), {{"mode", "Quick"}}).str("mode"), "fast");
  // The real scheme names users bring from llm-compressor / compressed-tensors / torchao.
  auto scheme = [](const std::string& s) { return parse_options(quantize_spec(), {{"scheme", s}}).str("scheme"); };
  EXPECT_EQ(scheme("W8A8"), "w8a8");
  EXPECT_EQ(scheme("int8"), "w8a8");
  EXPECT_EQ(scheme("W4A16"), "w4");
  EXPECT_EQ(scheme("w4a16_asym"), "w4");
  EXPECT_EQ(scheme("w4"), "w4");
  EXPECT_THROW(scheme("W4A4"), Error);
}

TEST(OptionSpec, OneLineErrorsNameThePassAndOption) {
  auto err = [](const nlohmann::json& j) { return error_of([&] { parse_options(toy_spec(), j); }); };
  EXPECT_EQ(err({{"colour", 1}}), "toy: unknown option 'colour' (mode, ratio, rounds, tag, dry, only, plan)");
  EXPECT_EQ(err({{"ratio", 1.0}}), "toy: ratio 1 is outside [0, 1)");
  EXPECT_EQ(err({{"ratio", -0.25}}), "toy: ratio -0.25 is outside [0, 1)");
  EXPECT_EQ(err({{"rounds", 0}}), "toy: rounds 0 is outside [1, inf)");
  EXPECT_EQ(err({{"rounds", 2.5}}), "toy: 'rounds' must be an integer, got 2.5");
  EXPECT_EQ(err({{"ratio", "half"}}), "toy: 'ratio' must be a number, got \"half\"");
  EXPECT_EQ(err({{"mode", "warp"}}), "toy: unknown mode \"warp\" (fast, slow; also quick=fast)");
  EXPECT_EQ(err({{"dry", "yes"}}), "toy: 'dry' must be true or false");
  EXPECT_EQ(err({{"only", {"a", 1}}}), "toy: 'only' must be a glob or a list of globs");
  EXPECT_EQ(err({{"plan", {{"stepz", 1}}}}), "toy: unknown plan key 'stepz' (steps)");
  EXPECT_EQ(err({{"plan", {{"steps", 0}}}}), "toy: plan.steps 0 is outside [1, inf)");
  EXPECT_EQ(err(nlohmann::json::array()), "toy: options must be a mapping");
  EXPECT_EQ(err({{"ratio", 0.0}, {"rounds", 1}, {"mode", "slow"}}), "(no error)");  // bounds themselves
}

TEST(OptionSpec, HelpFlagsAndLabels) {
  const PassSpec& s = toy_spec();
  EXPECT_EQ(flag_name(*s.find("rounds")), "--rounds");
  EXPECT_EQ(flag_name(OptionSpec{.name = "calib_samples"}), "--calib-samples");
  EXPECT_EQ(help_line(*s.find("mode")), "how (fast | slow; also quick=fast; default fast)");
  EXPECT_EQ(help_line(*s.find("ratio")), "how much (in [0, 1); default 0.5)");
  EXPECT_EQ(help_line(*s.find("dry")), "change nothing");
  EXPECT_EQ(label_for(s, {{"mode", "fast"}, {"rounds", 3}}), "toy x3");
  EXPECT_EQ(label_for(s, {{"mode", "slow"}, {"rounds", 2}}), "toy slow x2");
  EXPECT_EQ(label_for(s, nullptr), "toy");
}

TEST(Registry, EveryPassIsMadeFromItsSpec) {
  std::set<std::string> names;
  for (const auto& info : pass_registry()) {
    const PassSpec& spec = info.spec();
    EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
    EXPECT_FALSE(spec.summary.empty()) << spec.name;
    nlohmann::json required = nlohmann::json::object();  // every pass has usable defaults but for what it requires
    for (const auto& o : spec.options)
      if (o.required) required[o.name] = "x";
    auto pass = info.make(required);
    EXPECT_EQ(pass->name(), spec.name);
    EXPECT_EQ(&pass->spec(), &spec);
    // The normalised options parse back to the same pass options.
    EXPECT_EQ(make_pass(spec.name, pass->options())->options(), pass->options()) << spec.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"prune", "quantize", "distill"}));
  EXPECT_EQ(find_pass("sparsify"), nullptr);
  EXPECT_EQ(error_of([] { make_pass("sparsify", {}); }), "unknown pass 'sparsify' (known: prune, quantize, distill)");
  EXPECT_NE(error_of([] { make_pass("distill", nlohmann::json::object()); }).find("distill: data is required"), std::string::npos);
}

TEST(Registry, ReportLabelsComeFromTheSpecs) {
  EXPECT_EQ(make_pass("prune", {{"method", "2:4"}})->label(), "prune 2:4");
  EXPECT_EQ(make_pass("prune", nlohmann::json::object())->label(), "prune unstructured");
  EXPECT_EQ(make_pass("quantize", nlohmann::json::object())->label(), "quantize w8a8");
  EXPECT_EQ(make_pass("quantize", {{"scheme", "w4"}})->label(), "quantize w4 g128");
  EXPECT_EQ(make_pass("quantize", {{"scheme", "w4"}, {"group", 32}, {"method", "gptq"}, {"calib", "c.tsv"}})->label(),
            "quantize w4 g32 gptq");
  EXPECT_EQ(make_pass("quantize", {{"act", "static"}, {"smooth", 0.5}, {"calib", "c.tsv"}})->label(),
            "quantize w8a8 static sq0.5");
}

TEST(Recipe, YamlScalarsAreTypedAsYaml12) {
  nlohmann::json j = recipe_json("passes:\n  - prune: {method: 2:4}\n  - prune: {sparsity: 0.5, pack: false, tag: \"7\"}\n",
                                 "r.yaml");
  EXPECT_EQ(j["passes"][0]["prune"]["method"], "2:4");
  EXPECT_TRUE(j["passes"][1]["prune"]["sparsity"].is_number_float());
  EXPECT_TRUE(j["passes"][1]["prune"]["pack"].is_boolean());
  EXPECT_TRUE(j["passes"][1]["prune"]["tag"].is_string());  // quoted: a string even when it reads as a number
  EXPECT_EQ(recipe_json(R"({"passes": [{"quantize": {"group": 64}}]})", "r.json")["passes"][0]["quantize"]["group"], 64);
  EXPECT_NE(error_of([] { recipe_json("passes: [unclosed", "bad.yaml"); }).find("recipe 'bad.yaml': not valid YAML/JSON"),
            std::string::npos);
}

TEST(Recipe, PassesInOrderWithValidation) {
  Recipe r = parse_recipe(recipe_json("passes: [{prune: {method: structured, sparsity: 0.25}}, {prune: {method: 2:4}},"
                                      " {quantize: {scheme: w8a8}}]\nworkload: {inputs: [\"1x64\"]}\n", "r.yaml"),
                          "r.yaml");
  ASSERT_EQ(r.passes.size(), 3u);
  EXPECT_EQ(r.passes[0]->label(), "prune structured");
  EXPECT_DOUBLE_EQ(r.passes[0]->options()["sparsity"].get<double>(), 0.25);
  EXPECT_EQ(r.passes[1]->label(), "prune 2:4");
  EXPECT_EQ(r.passes[2]->name(), "quantize");
  EXPECT_EQ(r.workload["inputs"][0], "1x64");
  EXPECT_TRUE(parse_recipe({{"passes", {{{"prune", nullptr}}}}}, "n").workload.is_null());  // `prune:` alone: defaults

  auto err = [](const std::string& text) { return error_of([&] { parse_recipe(recipe_json(text, "r"), "r"); }); };
  EXPECT_EQ(err("workload: {}\n"), "recipe 'r': expected a mapping with 'passes: [...]'");
  EXPECT_EQ(err("passes: []\n"), "recipe 'r': 'passes' must be a non-empty list");
  EXPECT_EQ(err("passes: [{prune: {}}]\nextra: 1\n"), "recipe 'r': unknown key 'extra' (passes, workload)");
  EXPECT_NE(err("passes: [{prune: {}, quantize: {}}]\n").find("pass 1 must be a single-key mapping"), std::string::npos);
  EXPECT_EQ(err("passes: [{prune: {}}, {sparsify: {}}]\n"), "recipe 'r', pass 2: unknown pass 'sparsify' (known: prune, quantize, distill)");
  EXPECT_EQ(err("passes: [{prune: {}}, {distill: {}}]\n"), "recipe 'r', pass 2: distill: data is required (training data: STS-B .tsv (both sentences) or one text per line (never the dev set))");
  // File options of a recipe file are relative to its folder; absolute ones and non-file options stay as given.
  Recipe rel = parse_recipe(recipe_json("passes: [{distill: {data: d/train.tsv, dev: /abs/dev.tsv, student: 'layers:0'}}]", "r"), "r", "/rec");
  EXPECT_EQ(rel.passes[0]->options()["data"], "/rec/d/train.tsv");
  EXPECT_EQ(rel.passes[0]->options()["dev"], "/abs/dev.tsv");
  EXPECT_EQ(rel.passes[0]->options()["student"], "layers:0");
  EXPECT_EQ(err("passes: [{prune: {sparsity: 2}}]\n"), "recipe 'r', pass 1: prune: sparsity 2 is outside [0, 1)");
  EXPECT_EQ(err("passes: [{quantize: {scheme: w3}}]\n"), "recipe 'r', pass 1: quantize: unknown scheme \"w3\" (w8a8, w4; also int8=w8a8, W8A8_INT8=w8a8, "
            "int8_dynamic=w8a8, W4A16=w4, W4A16_ASYM=w4, int4=w4, int4_weight_only=w4)");
  EXPECT_NE(error_of([] { load_recipe("/no/such/recipe.yaml"); }).find("no such file"), std::string::npos);
}

namespace {

// A pass that records when it ran and how many times the structural analysis had been computed by then.
struct Log {
  std::vector<std::string> order;
  std::vector<int> analysis_runs;
};

const PassSpec& probe_spec() {
  static const PassSpec spec{"probe", "records its runs", {{.name = "id", .type = OptType::String, .help = "name", .label = "{}"}}};
  return spec;
}

class ProbePass : public Pass {
 public:
  ProbePass(std::string id, bool changes, Log* log) : id_(std::move(id)), changes_(changes), log_(log) {}
  const PassSpec& spec() const override { return probe_spec(); }
  nlohmann::json options() const override { return {{"id", id_}}; }
  PassResult run(torch::jit::Module& m, Context& ctx) override {
    ctx.analysis(m);
    log_->order.push_back(id_);
    log_->analysis_runs.push_back(ctx.cache.analysis_runs());
    PassResult r;
    r.changed = changes_;
    if (changes_) {  // a real change: scale the head so the outputs move
      torch::NoGradGuard g;
      get_tensor(m, "head.weight").mul_(0.5);
    }
    return r;
  }

 private:
  std::string id_;
  bool changes_;
  Log* log_;
};

class CountingProbe : public QualityProbe {
 public:
  nlohmann::json score(torch::jit::Module& m) override {
    torch::NoGradGuard g;
    return {{"call", ++calls}, {"head_sum", get_tensor(m, "head.weight").sum().item<double>()}};
  }
  int calls = 0;
};

Workload tiny_workload() {
  Workload w;
  w.inputs.push_back(parse_input_spec("2x16"));
  w.warmup = 0;
  w.reps = 1;
  return w;
}

}  // namespace

TEST(Pipeline, RunsPassesInOrderAndInvalidatesAnalysesAfterChanges) {
  auto m = models::build_mlp({16, 24, 32, 4, 1, 0});
  Log log;
  Pipeline p;
  p.add(std::make_unique<ProbePass>("a", true, &log));
  p.add(std::make_unique<ProbePass>("b", false, &log));
  p.add(std::make_unique<ProbePass>("c", false, &log));
  Context ctx;
  ctx.workload = tiny_workload();
  double head_before = get_tensor(m, "head.weight").abs().sum().item<double>();
  Report r = p.run(m, ctx, {{"path", "mlp"}}, nullptr);
  EXPECT_EQ(log.order, (std::vector<std::string>{"a", "b", "c"}));
  // a computes the analysis (1) and changes the model: b recomputes (2); b changes nothing: c reuses it (2).
  EXPECT_EQ(log.analysis_runs, (std::vector<int>{1, 2, 2}));
  ASSERT_EQ(r.passes.size(), 3u);
  EXPECT_EQ(r.passes[0].label, "probe a");
  EXPECT_EQ(pass_label(r.passes[2]), "probe c");
  EXPECT_DOUBLE_EQ(get_tensor(m, "head.weight").abs().sum().item<double>(), 0.5 * head_before);
  // Fidelity is against the pipeline's input: a's change shows in every later stage, not in the input's.
  EXPECT_EQ(r.passes[0].before.max_abs_err, 0.0);
  EXPECT_GT(r.passes[0].after.max_abs_err, 0.0);
  EXPECT_EQ(r.passes[2].after.max_abs_err, r.passes[0].after.max_abs_err);
  EXPECT_TRUE(r.passes[0].after.energy.empty());  // no session: no energy figures
}

namespace {
class CountingSource : public CalibrationSource {
 public:
  std::optional<Batches> read(const std::string& file, int64_t samples) const override {
    ++reads;
    if (file != "text.txt") return std::nullopt;
    Batches b;
    for (int64_t i = 0; i < samples; ++i) b.push_back({at::full({1, 16}, double(i + 1))});
    return b;
  }
  mutable int reads = 0;
};
}  // namespace

TEST(AnalysisCache, CalibrationStatsAreCachedPerFileAndSamplesUntilInvalidated) {
  auto m = models::build_mlp({16, 24, 32, 4, 1, 0});
  AnalysisCache cache;
  CountingSource src;
  Workload w = tiny_workload();
  const CalibrationStats& s = cache.calibration_stats(m, w, &src, "text.txt", 3);
  ASSERT_TRUE(s.count("fc_in.weight"));
  EXPECT_EQ(s.at("fc_in.weight").rows, 3);
  EXPECT_FLOAT_EQ(s.at("fc_in.weight").absmax.max().item<float>(), 3.0f);  // the largest sample is all 3s
  cache.calibration_stats(m, w, &src, "text.txt", 3);
  EXPECT_EQ(cache.calibration_runs(), 1);
  EXPECT_EQ(src.reads, 1);
  cache.calibration_stats(m, w, &src, "text.txt", 2);  // another sample count: another entry
  EXPECT_EQ(cache.calibration_runs(), 2);
  cache.analysis(m);
  cache.analysis(m);
  EXPECT_EQ(cache.analysis_runs(), 1);
  cache.invalidate();
  cache.analysis(m);
  cache.calibration_stats(m, w, &src, "text.txt", 3);
  EXPECT_EQ(cache.analysis_runs(), 2);
  EXPECT_EQ(cache.calibration_runs(), 3);
  // Files the source does not read go to the tensor reader, which names them in its error.
  EXPECT_NE(error_of([&] { cache.calibration_stats(m, w, &src, "/no/such.safetensors", 3); }).find("no such file"),
            std::string::npos);
}

TEST(Job, RunsPassesWithProbeAndFillsTheWorkload) {
  CompressionJob job;
  job.model = models::build_mlp({16, 24, 32, 4, 2, 0});
  job.model_path = "built-in mlp";
  job.workload = tiny_workload();
  job.measure_energy = false;
  auto probe = std::make_shared<CountingProbe>();
  job.quality = probe;
  job.passes.add(make_pass("prune", {{"method", "2:4"}}));
  job.passes.add(make_pass("prune", {{"method", "structured"}, {"sparsity", 0.25}}));
  job.info["recipe"] = "inline";
  Report r = run_job(job);
  ASSERT_EQ(r.passes.size(), 2u);
  EXPECT_EQ(r.model["path"], "built-in mlp");
  EXPECT_EQ(r.model["recipe"], "inline");
  EXPECT_EQ(probe->calls, 3);  // the input model, then after each pass
  EXPECT_EQ(r.passes[0].before.task["call"], 1);
  EXPECT_EQ(r.passes[1].after.task["call"], 3);
  EXPECT_EQ(r.passes[0].label, "prune 2:4");
  EXPECT_EQ(r.passes[0].after.nonzero_params,
            r.passes[0].before.nonzero_params - r.passes[0].stats["zeroed_weights"].get<int64_t>());
  // The job's model was compressed in place: the structured pass shrank a block's hidden layer.
  EXPECT_EQ(get_tensor(job.model, "blocks.0.a.weight").size(0), 24);
}

TEST(Job, WithoutAWorkloadPassesThatNeedNoneRunAndOnlySizesAreMeasured) {
  CompressionJob job;
  job.model = models::build_mlp({16, 24, 32, 4, 1, 0});
  job.model_path = "no workload";
  job.passes.add(make_pass("prune", {{"method", "2:4"}}));
  job.passes.add(make_pass("quantize", {{"scheme", "w8a8"}}));
  auto probe = std::make_shared<CountingProbe>();
  job.quality = probe;  // a task probe needs no workload: it still scores every stage
  Report r = run_job(job);
  ASSERT_EQ(r.passes.size(), 2u);
  for (const auto& p : r.passes)
    for (const Metrics* m : {&p.before, &p.after}) {
      EXPECT_FALSE(m->measured);
      EXPECT_EQ(m->not_measured, kNoWorkload);
      EXPECT_EQ(m->latency_ms, 0.0);
      EXPECT_TRUE(m->energy.empty());
      EXPECT_GT(m->file_bytes, 0);
    }
  EXPECT_EQ(probe->calls, 3);
  EXPECT_EQ(r.passes[0].stats["zeroed_weights"], (16 * 24 + 24 * 32 + 32 * 24 + 24 * 4) / 2);
  EXPECT_EQ(r.passes[1].after.params, r.passes[0].after.params);  // packed, and still counted
  EXPECT_EQ(r.model["weight_ops"], 4);
  // A pass that reads the workload is refused in one line before anything runs.
  CompressionJob job2;
  job2.model = models::build_mlp({16, 24, 32, 4, 1, 0});
  job2.measure_energy = false;
  Log log;
  job2.passes.add(std::make_unique<ProbePass>("a", true, &log));
  EXPECT_NE(error_of([&] { run_job(job2); }).find("pass 'probe a' needs a workload"), std::string::npos);
  EXPECT_TRUE(log.order.empty());
}
