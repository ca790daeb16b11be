#include "compress/train/trainer.h"

#include <fmt/format.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <random>
#include <sstream>

#include "compress/base/error.h"
#include "compress/base/progress.h"
#include "compress/io/atomic_file.h"

namespace joule::train {

namespace {

// Training runs the TorchScript interpreter without the profiling executor's specialisations: they are built for
// inference shapes and, with autograd, rebuild per batch shape; the plain interpreter records the same ops.
struct PlainExecutor {
  bool old = torch::jit::getGraphExecutorOptimize();
  PlainExecutor() { torch::jit::setGraphExecutorOptimize(false); }
  ~PlainExecutor() { torch::jit::setGraphExecutorOptimize(old); }
};

struct Param {
  std::string name;
  at::Tensor value;
  at::Tensor keep;  // 1 where the weight may be non-zero; undefined for dense parameters
  bool requires_grad = false;
};

std::vector<Param> collect_params(torch::jit::Module& m) {
  std::vector<Param> ps;
  for (const auto& p : m.named_parameters(true)) {
    Param q{p.name, p.value, {}, p.value.requires_grad()};
    if (!p.value.is_floating_point()) continue;
    // A weight with exact zeros is a pruned one (trained weights are never exactly zero): keep it sparse.
    if (p.value.dim() >= 2 && (p.value == 0).sum().item<int64_t>() * 100 >= p.value.numel()) q.keep = (p.value != 0).to(p.value.dtype());
    ps.push_back(std::move(q));
  }
  return ps;
}

// AdamW (Loshchilov & Hutter) with PyTorch's update rule, one pass over each parameter, its gradient and its two
// moments, no temporaries: torch::optim::AdamW takes six passes and allocates a gradient-sized temporary per
// parameter per step, which for the 47 MB word-embedding table is most of a small batch's step.
class AdamW {
 public:
  AdamW(const std::vector<at::Tensor>& params, double weight_decay) : params_(params), wd_(weight_decay) {
    for (const auto& p : params) m_.push_back(at::zeros_like(p)), v_.push_back(at::zeros_like(p));
  }
  void step(double lr) {
    ++t_;
    const double bc1 = 1 - std::pow(kB1, double(t_)), bc2_sqrt = std::sqrt(1 - std::pow(kB2, double(t_)));
    const float decay = float(1 - lr * wd_), step_size = float(lr / bc1), inv_bc2 = float(1 / bc2_sqrt);
    const float b1 = float(kB1), b2 = float(kB2), eps = float(kEps);
    for (size_t i = 0; i < params_.size(); ++i) {
      float* p = params_[i].data_ptr<float>();
      const float* g = params_[i].grad().data_ptr<float>();
      float *m = m_[i].data_ptr<float>(), *v = v_[i].data_ptr<float>();
      at::parallel_for(0, params_[i].numel(), 1 << 14, [&](int64_t a, int64_t b) {
        for (int64_t j = a; j < b; ++j) {
          const float gj = g[j];
          m[j] = b1 * m[j] + (1 - b1) * gj;
          v[j] = b2 * v[j] + (1 - b2) * gj * gj;
          p[j] = p[j] * decay - step_size * m[j] / (std::sqrt(v[j]) * inv_bc2 + eps);
        }
      });
    }
  }
  void save(torch::serialize::OutputArchive& a) const {
    a.write("t", c10::IValue(t_));
    for (size_t i = 0; i < m_.size(); ++i) a.write("m." + std::to_string(i), m_[i]), a.write("v." + std::to_string(i), v_[i]);
  }
  void load(torch::serialize::InputArchive& a) {
    c10::IValue t;
    a.read("t", t);
    t_ = t.toInt();
    for (size_t i = 0; i < m_.size(); ++i) {
      at::Tensor x;
      a.read("m." + std::to_string(i), x), m_[i].copy_(x);
      a.read("v." + std::to_string(i), x), v_[i].copy_(x);
    }
  }

 private:
  static constexpr double kB1 = 0.9, kB2 = 0.999, kEps = 1e-8;
  std::vector<at::Tensor> params_, m_, v_;
  double wd_;
  int64_t t_ = 0;
};

std::string checkpoint_path(const TrainOptions& o) { return (std::filesystem::path(o.checkpoint_dir) / "checkpoint.pt").string(); }

struct State {
  int64_t step = 0;
  double best_dev = -1e300;
  int64_t best_step = -1;
  std::vector<double> losses;  // per step, global mean
  nlohmann::json curve = nlohmann::json::array();
  std::vector<at::Tensor> best;  // best weights by dev score (clones), empty: none yet
};

void save_checkpoint(const TrainOptions& o, const std::vector<Param>& ps, AdamW& optim, const State& s) {
  torch::serialize::OutputArchive a;
  a.write("run_id", c10::IValue(o.run_id));
  a.write("step", c10::IValue(s.step));
  a.write("best_dev", c10::IValue(s.best_dev));
  a.write("best_step", c10::IValue(s.best_step));
  a.write("curve", c10::IValue(s.curve.dump()));
  a.write("losses", at::tensor(s.losses.empty() ? std::vector<double>{} : s.losses, at::kDouble));
  for (size_t i = 0; i < ps.size(); ++i) {
    a.write("param." + std::to_string(i), ps[i].value.detach());
    if (!s.best.empty()) a.write("best." + std::to_string(i), s.best[i]);
  }
  torch::serialize::OutputArchive oa;
  optim.save(oa);
  a.write("optimizer", oa);
  std::ostringstream buf;
  a.save_to(buf);
  std::filesystem::create_directories(o.checkpoint_dir);
  io::write_file_atomic(checkpoint_path(o), buf.str(), "checkpoint");
}

// False when there is no checkpoint to resume from; fails on another run's or a corrupt one.
bool load_checkpoint(const TrainOptions& o, std::vector<Param>& ps, AdamW& optim, State& s) {
  const std::string path = checkpoint_path(o);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  torch::serialize::InputArchive a;
  c10::IValue v;
  try {
    a.load_from(path);
    a.read("run_id", v);
  } catch (const std::exception& e) {
    fail("checkpoint '{}' is corrupt ({})", path, first_line(e.what()));
  }
  if (!v.isString() || v.toStringRef() != o.run_id)
    fail("checkpoint '{}' belongs to another run (teacher, student, data or options differ); use another "
         "--checkpoint-dir or drop --resume", path);
  try {
    a.read("step", v), s.step = v.toInt();
    a.read("best_dev", v), s.best_dev = v.toDouble();
    a.read("best_step", v), s.best_step = v.toInt();
    a.read("curve", v), s.curve = nlohmann::json::parse(v.toStringRef());
    at::Tensor losses;
    a.read("losses", losses);
    s.losses.assign(losses.data_ptr<double>(), losses.data_ptr<double>() + losses.numel());
    torch::NoGradGuard g;
    s.best.clear();
    for (size_t i = 0; i < ps.size(); ++i) {
      at::Tensor t;
      a.read("param." + std::to_string(i), t);
      if (t.sizes() != ps[i].value.sizes()) fail("checkpoint '{}': parameter '{}' has another shape", path, ps[i].name);
      ps[i].value.copy_(t);
      if (s.best_step >= 0) {
        a.read("best." + std::to_string(i), t);
        s.best.push_back(t);
      }
    }
    torch::serialize::InputArchive oa;
    a.read("optimizer", oa);
    optim.load(oa);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("checkpoint '{}' is corrupt ({})", path, first_line(e.what()));
  }
  return true;
}

at::Tensor masked_mse(const at::Tensor& s, const at::Tensor& t, const at::Tensor& mask) {
  at::Tensor m = mask.unsqueeze(-1).to(s.dtype());
  return ((s - t).pow(2) * m).sum() / (m.sum() * s.size(-1)).clamp_min(1);
}

}  // namespace

double lr_at(const TrainOptions& o, int64_t step, int64_t total) {
  const int64_t warm = int64_t(std::llround(o.warmup * double(total)));
  if (step < warm) return o.lr * double(step + 1) / double(warm);
  if (o.schedule == "constant") return o.lr;
  double frac = total > warm ? double(step - warm) / double(total - warm) : 1.0;
  if (o.schedule == "cosine") return o.lr * 0.5 * (1 + std::cos(M_PI * frac));
  return o.lr * (1 - frac);
}

std::vector<std::vector<int64_t>> epoch_batches(const Dataset& data, int64_t batch, uint64_t seed, int64_t epoch) {
  const int64_t N = data.size();
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  // Ties in length are broken by a seeded shuffle first, so equal-length examples meet different partners.
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);
  std::shuffle(order.begin(), order.end(), rng);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return data.length(a) < data.length(b); });
  std::vector<std::vector<int64_t>> batches;
  for (int64_t s = 0; s < N; s += batch) batches.emplace_back(order.begin() + s, order.begin() + std::min(N, s + batch));
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

nlohmann::json TrainStats::to_json() const {
  return {{"steps", steps},         {"epochs", epochs_done},  {"steps_per_epoch", steps_per_epoch},  {"examples", examples},
          {"first_loss", first_loss}, {"last_loss", last_loss}, {"best_dev", best_step >= 0 ? nlohmann::json(best_dev) : nlohmann::json()},
          {"best_step", best_step}, {"seconds", seconds},     {"examples_per_s", examples_per_s},
          {"curve", curve}};
}

TrainStats train(torch::jit::Module& student, const TeacherOutputs& teacher, const Dataset& data, DistillTask& task,
                 const std::string& dev, const TrainOptions& opt, ProcessGroup& group) {
  if (data.size() == 0) fail("distill: the training data has no examples");
  if (teacher.size() != data.size()) fail("distill: teacher outputs cover {} examples, the data {}", teacher.size(), data.size());
  PlainExecutor plain;
  std::vector<Param> ps = collect_params(student);
  std::vector<at::Tensor> values;
  for (auto& p : ps) values.push_back(p.value);
  {
    torch::NoGradGuard g;
    group.broadcast(values, 0);  // every rank starts from rank 0's weights
  }
  for (auto& p : ps) p.value.requires_grad_(true);
  struct Restore {
    std::vector<Param>& ps;
    ~Restore() {
      for (auto& p : ps) p.value.requires_grad_(p.requires_grad), p.value.mutable_grad() = at::Tensor();
    }
  } restore{ps};

  for (const auto& v : values)
    if (v.scalar_type() != at::kFloat || !v.is_contiguous()) fail("distill: only contiguous float32 parameters can be trained");
  // Large temporaries (the embedding table's gradient) come from the heap instead of fresh zeroed mmap pages each
  // step: glibc maps allocations above 32 MB and unmaps them on free, so every step page-faulted them in again.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  AdamW optim(values, opt.weight_decay);
  const int64_t per_epoch = int64_t(epoch_batches(data, opt.batch, opt.seed, 0).size());
  const int64_t total = opt.steps > 0 ? opt.steps : opt.epochs * per_epoch;
  const int64_t eval_every = opt.eval_every > 0 ? opt.eval_every : per_epoch;
  const int64_t ckpt_every = opt.checkpoint_every > 0 ? opt.checkpoint_every : per_epoch;
  const bool rank0 = group.rank() == 0;
  State s;
  if (opt.resume && load_checkpoint(opt, ps, optim, s)) {
    if (rank0) fmt::print(stderr, "distill: resuming from step {} of {} ({})\n", s.step, total, checkpoint_path(opt));
  } else if (opt.resume && rank0) {
    fmt::print(stderr, "distill: no checkpoint in '{}', starting from step 0\n", opt.checkpoint_dir);
  }
  const char* kill_at = std::getenv("JOULE_DISTILL_KILL_AT_STEP");  // tests: die like kill -9 after that checkpoint

  auto evaluate = [&](int64_t epoch, double loss, double lr) {
    nlohmann::json point = {{"step", s.step}, {"epoch", epoch}, {"loss", loss}, {"lr", lr}};
    if (!dev.empty() && rank0) {
      torch::NoGradGuard g;
      double score = task.dev_score(student, dev);
      point["dev"] = score;
      fmt::print(stderr, "\r  distill: step {} (epoch {}): loss {:.4g}, dev {:.2f}{}\033[K\n", s.step, epoch, loss, score,
                 score > s.best_dev ? " (best)" : "");
      if (score > s.best_dev) {
        s.best_dev = score, s.best_step = s.step;
        s.best.clear();
        for (auto& p : ps) s.best.push_back(p.value.detach().clone());
      }
    }
    s.curve.push_back(point);
  };

  Progress bar(fmt::format("distill ({} steps)", total), total - s.step);
  auto t0 = std::chrono::steady_clock::now();
  int64_t examples = 0;
  double ema = s.losses.empty() ? 0 : s.losses.back();
  std::vector<std::vector<int64_t>> batches;
  int64_t batches_epoch = -1;
  while (s.step < total) {
    const int64_t epoch = s.step / per_epoch;
    if (epoch != batches_epoch) batches = epoch_batches(data, opt.batch, opt.seed, epoch), batches_epoch = epoch;
    const auto& global = batches[size_t(s.step % per_epoch)];
    const int64_t n = int64_t(global.size()), W = group.world(), r = group.rank();
    std::vector<int64_t> mine(global.begin() + r * n / W, global.begin() + (r + 1) * n / W);

    for (auto& p : ps) p.value.mutable_grad() = at::Tensor();  // backward() then hands over its gradients uncopied
    at::Tensor loss_value = at::zeros({1}, at::kDouble);
    if (!mine.empty()) {
      Batch b = data.batch(mine);
      at::Tensor out;
      std::vector<at::Tensor> hs;
      if (opt.loss.hidden > 0) std::tie(out, hs) = forward_hidden(student, b.inputs);
      else out = student.forward(b.inputs).toTensor();
      at::Tensor t = teacher.outputs(mine);
      at::Tensor loss = at::zeros({}, out.options());
      if (opt.loss.mse > 0) loss = loss + opt.loss.mse * at::mse_loss(out, t);
      if (opt.loss.cosine > 0) loss = loss + opt.loss.cosine * (1 - at::cosine_similarity(out.flatten(1), t.flatten(1), 1)).mean();
      if (opt.loss.kd > 0) {
        const double T = opt.loss.temperature;
        at::Tensor ls = at::log_softmax(out / T, -1), lt = at::log_softmax(t / T, -1);
        loss = loss + opt.loss.kd * T * T * (lt.exp() * (lt - ls)).sum(-1).mean();
      }
      if (opt.loss.hidden > 0) {
        if (!b.token_mask.defined()) fail("distill: hidden-state losses need sequence data (a token mask)");
        at::Tensor h = at::zeros({}, out.options());
        for (auto [sl, tl] : opt.layer_map) {
          if (sl < 0 || sl >= int(hs.size()))
            fail("hidden-state layer map: the student has hidden states 0..{} (0 = embeddings), not {}", hs.size() - 1, sl);
          h = h + masked_mse(hs[sl], teacher.hidden(tl, mine, hs[sl].size(1)), b.token_mask);
        }
        loss = loss + opt.loss.hidden * h / double(opt.layer_map.size());
      }
      // Each rank's mean is weighted by its share of the global batch, so the all-reduced mean gradient is the
      // gradient of the global batch's mean loss whatever the split.
      const double share = double(mine.size()) * double(W) / double(n);
      (loss * share).backward();
      loss_value.fill_(loss.item<double>() * share);
    }
    std::vector<at::Tensor> grads;
    for (auto& p : ps) {
      if (!p.value.grad().defined()) p.value.mutable_grad() = at::zeros_like(p.value);
      grads.push_back(p.value.grad());
    }
    grads.push_back(loss_value);
    group.allreduce_mean(grads);
    const double loss = loss_value.item<double>();
    if (!std::isfinite(loss))
      fail("distill: the loss became {} at step {} (lr {:.3g}); stopped{}", loss, s.step + 1, lr_at(opt, s.step, total),
           opt.checkpoint_dir.empty() ? "" : fmt::format(", the last good checkpoint is kept in '{}'", opt.checkpoint_dir));
    if (opt.clip > 0) torch::nn::utils::clip_grad_norm_(values, opt.clip);
    const double lr = lr_at(opt, s.step, total);
    optim.step(lr);
    {
      torch::NoGradGuard g;
      for (auto& p : ps)
        if (p.keep.defined()) p.value.mul_(p.keep);
    }
    s.losses.push_back(loss);
    ++s.step;
    examples += n;
    ema = s.losses.size() == 1 ? loss : 0.98 * ema + 0.02 * loss;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bar.set_status(fmt::format("ep {} loss {:.4g} lr {:.2e} {:.0f} ex/s", epoch + 1, ema, lr, examples / std::max(secs, 1e-9)));
    bar.tick();
    if (s.step % eval_every == 0 || s.step == total) evaluate(epoch + 1, ema, lr);
    if (!opt.checkpoint_dir.empty() && (s.step % ckpt_every == 0 || s.step == total)) {
      if (rank0) save_checkpoint(opt, ps, optim, s);
      group.barrier();
      if (kill_at && std::atoll(kill_at) == s.step) std::raise(SIGKILL);
    }
  }

  TrainStats st;
  st.steps = s.step;
  st.steps_per_epoch = per_epoch;
  st.epochs_done = (s.step + per_epoch - 1) / per_epoch;
  st.examples = examples;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.examples_per_s = examples / std::max(st.seconds, 1e-9);
  const size_t tenth = std::max<size_t>(1, s.losses.size() / 10);
  if (!s.losses.empty()) {
    st.first_loss = std::accumulate(s.losses.begin(), s.losses.begin() + tenth, 0.0) / tenth;
    st.last_loss = std::accumulate(s.losses.end() - tenth, s.losses.end(), 0.0) / tenth;
  }
  st.curve = s.curve;
  st.best_step = s.best_step;
  st.best_dev = s.best_dev;
  if (!s.best.empty()) {  // model selection: the weights of the best dev score
    torch::NoGradGuard g;
    for (size_t i = 0; i < ps.size(); ++i) ps[i].value.copy_(s.best[i]);
  }
  return st;
}

}  // namespace joule::train
