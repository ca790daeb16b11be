#include "models/distill_task.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <sstream>
#include <fstream>
#include <set>
#include <unordered_set>

#include "compress/base/error.h"
#include "compress/io/read_file.h"
#include "compress/passes/distill.h"

namespace joule::models {
namespace fs = std::filesystem;

std::vector<std::string> read_sentences(const std::string& path) {
  std::vector<std::string> all;
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".tsv") == 0) {
    for (const auto& p : text::load_stsb(path)) all.insert(all.end(), {p.a, p.b});
  } else {
    std::istringstream f(io::read_regular_file(path, io::kMaxDataBytes, "training data"));
    for (std::string line; std::getline(f, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) all.push_back(line);
    }
  }
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (auto& s : all)
    if (seen.insert(s).second) out.push_back(std::move(s));
  if (out.empty()) fail("training data '{}': no sentences in it", path);
  return out;
}

SentenceDataset::SentenceDataset(const SentenceEncoder& enc, std::vector<std::string> sentences, std::string origin)
    : pad_id_(enc.tokenizer.pad_id()), origin_(std::move(origin)) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& s : sentences) {
    ids_.push_back(enc.tokenizer.encode(s, size_t(enc.max_length)));
    for (int64_t id : ids_.back()) h = (h ^ uint64_t(id)) * 1099511628211ull;
    h = (h ^ 0xFFFFFFFFull) * 1099511628211ull;  // sentence boundary
  }
  fingerprint_ = fmt::format("{:016x}-{}", h, ids_.size());
}

std::string SentenceDataset::describe() const { return fmt::format("{} sentences from {}", ids_.size(), origin_); }

train::Batch SentenceDataset::batch(const std::vector<int64_t>& idx) const {
  int64_t T = 1;
  for (int64_t i : idx) T = std::max<int64_t>(T, length(i));
  const int64_t B = int64_t(idx.size());
  at::Tensor input = at::full({B, T}, pad_id_, at::kLong), mask = at::zeros({B, T}, at::kLong);
  auto ia = input.accessor<int64_t, 2>();
  auto ma = mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    const auto& row = ids_.at(size_t(idx[size_t(r)]));
    for (size_t t = 0; t < row.size(); ++t) ia[r][int64_t(t)] = row[t], ma[r][int64_t(t)] = 1;
  }
  return {{input, mask}, mask};
}

// Teacher weights by name, cloned (the student must never share storage with the teacher); submodule buffers too
// (BERT's pooler), so the student keeps them.
static std::map<std::string, at::Tensor> weights_of(const torch::jit::Module& m) {
  std::map<std::string, at::Tensor> w;
  for (const auto& p : m.named_parameters(true)) w[p.name] = p.value.detach().clone();
  for (const auto& b : m.named_buffers(true))
    if (b.name.find('.') != std::string::npos) w[b.name] = b.value.detach().clone();
  return w;
}

torch::jit::Module keep_layers(const SentenceEncoder& enc, const torch::jit::Module& teacher, const std::vector<int>& layers) {
  BertConfig cfg = config_of(enc, teacher);
  if (layers.empty()) fail("student layers: no layers given");
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] < 0 || layers[i] >= cfg.layers)
      fail("student layers:{}: layer {} is out of range (the teacher has layers 0..{})", fmt::join(layers, ","), layers[i], cfg.layers - 1);
    if (i > 0 && layers[i] <= layers[i - 1])
      fail("student layers:{}: layers must be increasing and distinct", fmt::join(layers, ","));
  }
  std::map<std::string, at::Tensor> w;
  const std::string prefix = "encoder.layer.";
  for (auto& [name, t] : weights_of(teacher)) {
    if (name.rfind(prefix, 0) != 0) {
      w[name] = t;
      continue;
    }
    size_t dot = name.find('.', prefix.size());
    int layer = std::stoi(name.substr(prefix.size(), dot - prefix.size()));
    auto it = std::find(layers.begin(), layers.end(), layer);
    if (it != layers.end()) w[prefix + std::to_string(it - layers.begin()) + name.substr(dot)] = t;
  }
  cfg.layers = int64_t(layers.size());
  return build_bert(cfg, w, "student");
}

torch::jit::Module narrow_ffn(const SentenceEncoder& enc, const torch::jit::Module& teacher, int64_t width) {
  BertConfig cfg = config_of(enc, teacher);
  std::map<std::string, at::Tensor> w = weights_of(teacher);
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = fmt::format("encoder.layer.{}.", l);
    at::Tensor& wi = w.at(p + "intermediate.dense.weight");
    at::Tensor& bi = w.at(p + "intermediate.dense.bias");
    at::Tensor& wo = w.at(p + "output.dense.weight");
    if (width < 1 || width > wi.size(0))
      fail("student width:{}: layer {} has {} feed-forward neurons; the width must be 1..{}", width, l, wi.size(0), wi.size(0));
    // A neuron's importance: the product of its input row's and output column's norms (what it can pass on).
    at::Tensor score = wi.norm(2, 1) * wo.norm(2, 0);
    at::Tensor keep = std::get<0>(std::get<1>(score.topk(width)).sort());
    wi = wi.index_select(0, keep).contiguous();
    bi = bi.index_select(0, keep).contiguous();
    wo = wo.index_select(1, keep).contiguous();
  }
  cfg.intermediate = width;
  return build_bert(cfg, w, "student");
}

std::unique_ptr<train::Dataset> SentenceDistillTask::read(const std::string& file) const {
  return std::make_unique<SentenceDataset>(enc_, read_sentences(file), fs::path(file).filename().string());
}

std::optional<torch::jit::Module> SentenceDistillTask::make_student(const torch::jit::Module& teacher, const std::string& spec) const {
  if (spec.rfind("layers:", 0) == 0) return keep_layers(enc_, teacher, spec_layers(spec));
  if (spec.rfind("width:", 0) == 0) {
    char* e = nullptr;
    long v = std::strtol(spec.c_str() + 6, &e, 10);
    if (*e || v < 1) fail("student '{}': the width must be a positive integer", spec);
    return narrow_ffn(enc_, teacher, v);
  }
  std::error_code ec;
  if (fs::exists(spec, ec)) {
    SentenceEncoder s = load_encoder(spec);
    if (s.config.hidden != enc_.config.hidden)
      fail("student '{}': hidden size {} differs from the teacher's {} and Joule adds no projection", spec, s.config.hidden, enc_.config.hidden);
    if (s.tokenizer.vocab_text() != enc_.tokenizer.vocab_text())
      fail("student '{}': its vocabulary differs from the teacher's (the cached teacher outputs use the teacher's token ids)", spec);
    torch::jit::Module m = s.module.deepcopy();
    return m;
  }
  return std::nullopt;
}

const std::vector<text::StsbPair>& SentenceDistillTask::dev_pairs(const std::string& file) {
  auto it = dev_.find(file);
  if (it == dev_.end()) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) fail("dev data '{}': no such file (or not a regular file)", file);
    it = dev_.emplace(file, text::load_stsb(file)).first;
  }
  return it->second;
}

double SentenceDistillTask::dev_score(torch::jit::Module& m, const std::string& file) {
  return evaluate_stsb(enc_, m, dev_pairs(file), false).spearman;
}

}  // namespace joule::models
