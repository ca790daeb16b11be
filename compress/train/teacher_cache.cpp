#include "compress/train/teacher_cache.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <optional>

#include "compress/base/error.h"
#include "compress/base/progress.h"
#include "compress/io/safetensors.h"

namespace joule::train {

namespace {
// FNV-1a over 64-bit words (bytes for the tail): a content key, not a security hash.
struct Hasher {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, b + i, 8);
      h = (h ^ w) * 1099511628211ull;
    }
    for (; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void str(const std::string& s) { bytes(s.data(), s.size() + 1); }
};
}  // namespace

std::string TeacherOutputs::fingerprint(const torch::jit::Module& m) {
  Hasher h;
  for (const auto& p : m.named_parameters(true)) {
    at::Tensor t = p.value.detach().contiguous();
    h.str(p.name);
    h.str(c10::toString(t.scalar_type()));
    for (int64_t d : t.sizes()) h.bytes(&d, sizeof d);
    h.bytes(t.data_ptr(), t.nbytes());
  }
  return fmt::format("{:016x}", h.h);
}

std::pair<at::Tensor, std::vector<at::Tensor>> forward_hidden(torch::jit::Module& m, const std::vector<c10::IValue>& inputs) {
  auto method = m.find_method("forward_hidden");
  if (!method)
    fail("the model has no forward_hidden() method, so hidden-state losses cannot be used (Joule's BERT encoders "
         "have one; set the hidden loss weight to 0)");
  auto t = (*method)(inputs).toTuple();
  return {t->elements().at(0).toTensor(), t->elements().at(1).toTensorVector()};
}

TeacherOutputs TeacherOutputs::compute(torch::jit::Module& teacher, const Dataset& data, const std::vector<int>& layers,
                                       const std::string& file, int64_t batch) {
  TeacherOutputs t;
  t.key_ = fmt::format("teacher {} data {} layers [{}] v1", fingerprint(teacher), data.fingerprint(), fmt::join(layers, ","));
  const int64_t N = data.size();
  std::error_code ec;
  if (!file.empty() && std::filesystem::is_regular_file(file, ec)) {
    std::optional<st::File> f;
    try {
      f.emplace(st::File::open(file));
    } catch (const Error&) {
      f.reset();  // unreadable cache: recompute and replace it
    }
    auto it = f ? f->metadata().find("key") : std::map<std::string, std::string>::const_iterator{};
    if (f && it != f->metadata().end() && it->second == t.key_) {
      auto load = [&](const std::string& name, at::ScalarType dt) -> at::Tensor {
        const st::TensorView* v = f->find(name);
        if (!v) fail("teacher cache '{}': tensor '{}' missing", file, name);
        return at::from_blob(const_cast<uint8_t*>(v->data), v->shape, at::TensorOptions().dtype(dt)).clone();
      };
      t.outputs_ = load("outputs", at::kFloat);
      t.offsets_ = load("offsets", at::kLong);
      for (int l : layers) t.hidden_[l] = load(fmt::format("hidden.{}", l), at::kHalf);
      if (t.outputs_.size(0) != N || t.offsets_.numel() != N + 1)
        fail("teacher cache '{}': {} rows but the data has {} examples", file, t.outputs_.size(0), N);
      t.from_file_ = true;
      return t;
    }
  }
  // Longest first, so memory peaks at the start and batches pad little.
  std::vector<int64_t> order(N);
  for (int64_t i = 0; i < N; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return data.length(a) > data.length(b); });
  std::vector<int64_t> offsets(N + 1, 0);
  for (int64_t i = 0; i < N; ++i) offsets[i + 1] = offsets[i] + data.length(i);
  Progress bar(fmt::format("teacher outputs ({} examples)", N), (N + batch - 1) / batch);
  torch::NoGradGuard no_grad;
  for (int64_t s = 0; s < N; s += batch) {
    std::vector<int64_t> idx(order.begin() + s, order.begin() + std::min(N, s + batch));
    Batch b = data.batch(idx);
    at::Tensor out;
    std::vector<at::Tensor> hs;
    if (layers.empty()) out = teacher.forward(b.inputs).toTensor();
    else std::tie(out, hs) = forward_hidden(teacher, b.inputs);
    out = out.to(at::kFloat);
    if (!t.outputs_.defined()) {
      auto shape = out.sizes().vec();
      shape[0] = N;
      t.outputs_ = at::zeros(shape, at::kFloat);
    }
    t.outputs_.index_copy_(0, at::tensor(idx, at::kLong), out);
    if (!layers.empty()) {
      for (int l : layers) {
        if (l < 0 || l >= int(hs.size()))
          fail("hidden-state layer map: teacher has hidden states 0..{} (0 = embeddings), not {}", hs.size() - 1, l);
        at::Tensor& dst = t.hidden_[l];
        if (!dst.defined()) dst = at::zeros({offsets[N], hs[l].size(2)}, at::kHalf);
        for (size_t r = 0; r < idx.size(); ++r) {
          int64_t n = data.length(idx[r]);
          dst.narrow(0, offsets[idx[r]], n).copy_(hs[l][int64_t(r)].narrow(0, 0, n));
        }
      }
    }
    bar.tick();
  }
  t.offsets_ = at::tensor(offsets, at::kLong);
  if (!file.empty()) {
    std::vector<st::TensorData> tensors;
    auto add = [&](const std::string& name, const at::Tensor& x, st::DType dt) {
      tensors.push_back({name, dt, x.sizes().vec(), x.data_ptr(), x.nbytes()});
    };
    add("outputs", t.outputs_, st::DType::F32);
    add("offsets", t.offsets_, st::DType::I64);
    for (const auto& [l, h] : t.hidden_) add(fmt::format("hidden.{}", l), h, st::DType::F16);
    std::filesystem::create_directories(std::filesystem::path(file).parent_path().empty()
                                            ? std::filesystem::path(".")
                                            : std::filesystem::path(file).parent_path(), ec);
    st::write(file, tensors, std::map<std::string, std::string>{{"key", t.key_}, {"producer", "joule distill"}});
  }
  return t;
}

at::Tensor TeacherOutputs::outputs(const std::vector<int64_t>& idx) const {
  return outputs_.index_select(0, at::tensor(idx, at::kLong));
}

at::Tensor TeacherOutputs::hidden(int layer, const std::vector<int64_t>& idx, int64_t T) const {
  auto it = hidden_.find(layer);
  if (it == hidden_.end()) fail("teacher cache: hidden states of layer {} were not computed", layer);
  at::Tensor out = at::zeros({int64_t(idx.size()), T, it->second.size(1)}, at::kFloat);
  auto off = offsets_.accessor<int64_t, 1>();
  for (size_t r = 0; r < idx.size(); ++r) {
    int64_t a = off[idx[r]], n = std::min(off[idx[r] + 1] - a, T);
    out[int64_t(r)].narrow(0, 0, n).copy_(it->second.narrow(0, a, n));
  }
  return out;
}

}  // namespace joule::train
