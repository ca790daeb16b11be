#include "compress/passes/distill.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "compress/base/error.h"
#include "compress/io/model_io.h"
#include "compress/train/distributed.h"
#include "compress/train/teacher_cache.h"

namespace joule {

const PassSpec& distill_spec() {
  static const PassSpec spec{
      "distill",
      "teacher-student distillation: train a smaller student (or the pruned model) to match the teacher",
      {{.name = "student", .type = OptType::String,
        .help = "current (this model, e.g. after a structured prune) | layers:0,2,4 (those encoder layers of the "
                "teacher) | width:N (feed-forward layers narrowed to N neurons) | a model file or HF folder",
        .default_value = "current", .label = "{}", .label_omit = "current"},
       {.name = "teacher", .type = OptType::String, .path = true, .help = "teacher model (default: the job's input model)"},
       {.name = "data", .type = OptType::String, .path = true, .required = true,
        .help = "training data: STS-B .tsv (both sentences) or one text per line (never the dev set)"},
       {.name = "dev", .type = OptType::String, .path = true, .help = "dev data for model selection (STS-B .tsv): the best checkpoint is kept"},
       {.name = "epochs", .type = OptType::Int, .help = "passes over the data", .default_value = 1, .min = 1.0, .label = "{}ep"},
       {.name = "steps", .type = OptType::Int, .help = "optimizer steps instead of epochs (the data cycles)", .min = 1.0},
       {.name = "batch", .type = OptType::Int, .help = "global batch size (split over ranks)", .default_value = 32, .min = 1.0, .max = 65536.0},
       {.name = "lr", .type = OptType::Float, .help = "peak learning rate (AdamW)", .default_value = 1e-4, .min = 0.0, .max = 1.0, .min_open = true},
       {.name = "weight_decay", .type = OptType::Float, .help = "AdamW decoupled weight decay", .default_value = 0.01, .min = 0.0, .max = 1.0},
       {.name = "warmup_ratio", .type = OptType::Float, .help = "learning-rate warm-up, fraction of the steps", .default_value = 0.1, .min = 0.0, .max = 1.0},
       {.name = "schedule", .type = OptType::String, .help = "learning-rate decay after warm-up", .default_value = "linear",
        .choices = {"linear", "cosine", "constant"}},
       {.name = "clip", .type = OptType::Float, .help = "gradient-norm clipping (0: off)", .default_value = 1.0, .min = 0.0},
       {.name = "seed", .type = OptType::Int, .help = "seed of the batch order", .default_value = 0, .min = 0.0},
       {.name = "eval_every", .type = OptType::Int, .help = "steps between dev evaluations (default: each epoch)", .default_value = 0, .min = 0.0},
       {.name = "checkpoint_dir", .type = OptType::String, .path = true, .help = "folder for checkpoints (and the teacher cache)"},
       {.name = "checkpoint_every", .type = OptType::Int, .help = "steps between checkpoints (default: each epoch)", .default_value = 0, .min = 0.0},
       {.name = "resume", .type = OptType::Bool, .help = "continue from the checkpoint in checkpoint_dir", .default_value = false},
       {.name = "loss_mse", .type = OptType::Float, .help = "weight of the output (sentence embedding) MSE", .default_value = 1.0, .min = 0.0},
       {.name = "loss_cosine", .type = OptType::Float, .help = "weight of 1 - cosine of the outputs", .default_value = 0.0, .min = 0.0},
       {.name = "loss_hidden", .type = OptType::Float, .help = "weight of the hidden-state MSE (over real tokens)", .default_value = 0.0, .min = 0.0},
       {.name = "layer_map", .type = OptType::String,
        .help = "hidden loss pairs student:teacher, 0 = embeddings, l+1 = layer l (default: from the student spec)"},
       {.name = "loss_kd", .type = OptType::Float, .help = "weight of logit KD, KL(softmax(t/T) || softmax(s/T)) T^2", .default_value = 0.0, .min = 0.0},
       {.name = "temperature", .type = OptType::Float, .help = "KD temperature T", .default_value = 2.0, .min = 0.0, .min_open = true},
       {.name = "teacher_cache", .type = OptType::String, .path = true,
        .help = "teacher-output cache file (default: CHECKPOINT_DIR/teacher.safetensors; none without a checkpoint dir)"},
       {.name = "nproc", .type = OptType::Int, .help = "data-parallel processes on this machine (CLI; docs/DISTRIBUTED.md)",
        .default_value = 1, .min = 1.0, .max = 64.0}}};
  return spec;
}

std::vector<std::pair<int, int>> parse_layer_map(const std::string& s) {
  std::vector<std::pair<int, int>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(pos, end - pos);
    int a = -1, b = -1;
    char extra;
    if (std::sscanf(item.c_str(), "%d:%d%c", &a, &b, &extra) != 2 || a < 0 || b < 0)
      fail("distill: layer_map item '{}' is not STUDENT:TEACHER (non-negative hidden-state indices)", item);
    out.emplace_back(a, b);
    pos = end + 1;
  }
  if (out.empty()) fail("distill: layer_map '{}' has no pairs", s);
  return out;
}

std::vector<int> spec_layers(const std::string& spec) {
  std::vector<int> out;
  if (spec.rfind("layers:", 0) != 0) return out;
  std::string rest = spec.substr(7);
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t end = rest.find(',', pos);
    if (end == std::string::npos) end = rest.size();
    std::string item = rest.substr(pos, end - pos);
    char* e = nullptr;
    long v = std::strtol(item.c_str(), &e, 10);
    if (item.empty() || *e || v < 0 || v > 1000) fail("distill: student '{}': '{}' is not a layer index", spec, item);
    out.push_back(int(v));
    pos = end + 1;
  }
  return out;
}

DistillOptions DistillOptions::from_json(const nlohmann::json& j) {
  OptionValues v = parse_options(distill_spec(), j);
  DistillOptions o;
  o.student = v.str("student");
  o.teacher = v.str("teacher");
  o.data = v.str("data");
  o.dev = v.str("dev");
  o.teacher_cache = v.str("teacher_cache");
  o.layer_map = v.str("layer_map");
  o.nproc = v.integer("nproc");
  if (o.data.empty()) fail("distill: data must be a training data file");
  if (o.student.empty()) fail("distill: student must be 'current', 'layers:I,J,...' or a model path");
  if (!o.dev.empty() && std::filesystem::absolute(o.dev) == std::filesystem::absolute(o.data))
    fail("distill: the dev file '{}' is also the training data; dev is for model selection only", o.dev);
  auto& t = o.train;
  if (v.given("epochs") && v.given("steps")) fail("distill: give epochs or steps, not both");
  t.epochs = v.integer("epochs");
  t.steps = v.has("steps") ? v.integer("steps") : 0;
  t.batch = v.integer("batch");
  t.lr = v.number("lr");
  t.weight_decay = v.number("weight_decay");
  t.warmup = v.number("warmup_ratio");
  t.schedule = v.str("schedule");
  t.clip = v.number("clip");
  t.seed = uint64_t(v.integer("seed"));
  t.eval_every = v.integer("eval_every");
  t.checkpoint_dir = v.str("checkpoint_dir");
  t.checkpoint_every = v.integer("checkpoint_every");
  t.resume = v.flag("resume");
  if (t.resume && t.checkpoint_dir.empty()) fail("distill: resume needs checkpoint_dir");
  if (v.given("checkpoint_every") && t.checkpoint_dir.empty()) fail("distill: checkpoint_every needs checkpoint_dir");
  if (v.given("eval_every") && o.dev.empty()) fail("distill: eval_every needs dev data");
  t.loss.mse = v.number("loss_mse");
  t.loss.cosine = v.number("loss_cosine");
  t.loss.hidden = v.number("loss_hidden");
  t.loss.kd = v.number("loss_kd");
  t.loss.temperature = v.number("temperature");
  if (t.loss.mse + t.loss.cosine + t.loss.hidden + t.loss.kd <= 0) fail("distill: every loss weight is 0");
  if (!o.layer_map.empty()) {
    if (t.loss.hidden <= 0) fail("distill: layer_map needs loss_hidden > 0");
    t.layer_map = parse_layer_map(o.layer_map);
  }
  if (o.teacher_cache.empty() && !t.checkpoint_dir.empty())
    o.teacher_cache = (std::filesystem::path(t.checkpoint_dir) / "teacher.safetensors").string();
  spec_layers(o.student);  // validates the indices' syntax
  return o;
}

nlohmann::json DistillOptions::to_json() const {
  const auto& t = train;
  nlohmann::json j = {{"student", student}, {"data", data},   {"batch", t.batch},     {"lr", t.lr},
                      {"weight_decay", t.weight_decay},       {"warmup_ratio", t.warmup},   {"schedule", t.schedule},
                      {"clip", t.clip},   {"seed", t.seed},   {"loss_mse", t.loss.mse}};
  if (t.steps > 0) j["steps"] = t.steps;
  else j["epochs"] = t.epochs;
  if (!teacher.empty()) j["teacher"] = teacher;
  if (!dev.empty()) j["dev"] = dev, j["eval_every"] = t.eval_every;
  if (t.loss.cosine > 0) j["loss_cosine"] = t.loss.cosine;
  if (t.loss.hidden > 0) {
    j["loss_hidden"] = t.loss.hidden;
    std::vector<std::string> pairs;
    for (auto [a, b] : t.layer_map) pairs.push_back(fmt::format("{}:{}", a, b));
    j["layer_map"] = fmt::format("{}", fmt::join(pairs, ","));
  }
  if (t.loss.kd > 0) j["loss_kd"] = t.loss.kd, j["temperature"] = t.loss.temperature;
  if (!t.checkpoint_dir.empty()) j["checkpoint_dir"] = t.checkpoint_dir, j["checkpoint_every"] = t.checkpoint_every;
  if (!teacher_cache.empty()) j["teacher_cache"] = teacher_cache;
  if (nproc > 1) j["nproc"] = nproc;
  return j;
}

void DistillPass::check(const torch::jit::Module& m, Context& ctx) const {
  if (!ctx.distill)
    fail("distill: this model has no distillation task (sentence encoders are supported: a Joule BERT archive or HF folder)");
  ctx.distill->read(opts_.data);  // exists, readable, has examples
  if (!opts_.dev.empty()) ctx.distill->check_dev(opts_.dev);
  if (opts_.student != "current" && !ctx.distill->make_student(m, opts_.student))
    fail("distill: student '{}' is not a spec this model knows (current, layers:I,J,...) nor a model file", opts_.student);
  if (!opts_.teacher.empty() && !std::filesystem::exists(opts_.teacher)) fail("distill: teacher '{}': no such file", opts_.teacher);
}

PassResult DistillPass::run(torch::jit::Module& m, Context& ctx) {
  check(m, ctx);
  train::DistillTask& task = *ctx.distill;
  torch::jit::Module teacher = opts_.teacher.empty() ? (ctx.teacher ? *ctx.teacher : m) : load_model(opts_.teacher).module;
  if (opts_.teacher.empty() && !ctx.teacher) fail("distill: the job kept no teacher (internal: Pass::needs_teacher)");

  torch::jit::Module student = m;
  if (opts_.student != "current") {
    auto made = task.make_student(m, opts_.student);
    if (!made) fail("distill: student '{}' is not a spec this model knows (current, layers:I,J,...) nor a model file", opts_.student);
    student = *made;
  }
  train::TrainOptions t = opts_.train;
  if (t.loss.hidden > 0 && t.layer_map.empty()) {
    // Each student layer matches the teacher layer it was initialised from, the embeddings each other.
    std::vector<int> layers = spec_layers(opts_.student);
    t.layer_map.emplace_back(0, 0);
    for (size_t i = 0; i < layers.size(); ++i) t.layer_map.emplace_back(int(i) + 1, layers[i] + 1);
    if (layers.empty()) fail("distill: loss_hidden with student '{}' needs a layer_map", opts_.student);
  }
  std::vector<int> teacher_layers;
  for (auto [s, tl] : t.layer_map) teacher_layers.push_back(tl);
  std::sort(teacher_layers.begin(), teacher_layers.end());
  teacher_layers.erase(std::unique(teacher_layers.begin(), teacher_layers.end()), teacher_layers.end());

  auto data = task.read(opts_.data);
  train::DistEnv env = train::DistEnv::from_env();
  auto group = train::ProcessGroup::create(env);
  const std::string teacher_fp = train::TeacherOutputs::fingerprint(teacher);
  nlohmann::json id = opts_.to_json();
  for (const char* k : {"checkpoint_dir", "checkpoint_every", "teacher_cache", "nproc"}) id.erase(k);
  id["teacher_fp"] = teacher_fp;
  id["student_fp"] = train::TeacherOutputs::fingerprint(student);
  id["data_fp"] = data->fingerprint();
  t.run_id = id.dump();

  // Rank 0 computes (or reads) the cache first; the others then read the file it wrote.
  std::string cache = opts_.teacher_cache;
  if (env.world > 1 && cache.empty()) fail("distill: several processes need a teacher cache file (checkpoint_dir or teacher_cache)");
  std::optional<train::TeacherOutputs> outputs;
  if (group->rank() == 0) outputs = train::TeacherOutputs::compute(teacher, *data, teacher_layers, cache);
  group->barrier();
  if (group->rank() != 0) outputs = train::TeacherOutputs::compute(teacher, *data, teacher_layers, cache);

  train::TrainStats st = train::train(student, *outputs, *data, task, opts_.dev, t, *group);
  // The trained module goes on through the serializer: as it comes out of training, its forward graph no longer
  // shows the linears to later passes (quantize found none), while the same module saved and loaded does. What
  // users get from a .pt is the loaded form anyway.
  std::stringstream buf;
  student.save(buf);
  m = torch::jit::load(buf);
  PassResult r;
  r.changed = true;
  int64_t tp = 0, sp = 0;
  for (const auto& p : teacher.parameters()) tp += p.numel();
  for (const auto& p : student.parameters()) sp += p.numel();
  r.stats = {{"student", opts_.student},
             {"data", data->describe()},
             {"teacher_params", tp},
             {"student_params", sp},
             {"teacher_cache", cache.empty() ? nlohmann::json() : nlohmann::json(cache)},
             {"teacher_cache_reused", outputs->from_file()},
             {"world_size", group->world()},
             {"dev_metric", opts_.dev.empty() ? nlohmann::json() : nlohmann::json(task.dev_metric())},
             {"training", st.to_json()}};
  if (!st.curve.empty() && st.last_loss >= st.first_loss)
    r.warnings.push_back(fmt::format("distill: the loss did not decrease ({:.4g} -> {:.4g})", st.first_loss, st.last_loss));
  return r;
}

}  // namespace joule
