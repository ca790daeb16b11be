// Weights repacked for a kernel once, not on every call: the W8A8 VNNI GEMM's tiles (kernels/cpu/w8a8.h,
// W8A8Packed), the W4A8 panels with their scales (kernels/cpu/w4.h, W4A8Packed). A saved model keeps the portable layout (int8 [N, K], what the CUDA kernels, the HF export and
// torch read); the packed copy lives beside it in the process, for as long as the weight tensor does, unchanged.
//
// Keyed by the weight's storage and checked on every hit against a weak reference to that storage (a freed
// weight's entry can never match a new tensor that reuses its address), the data pointer (views, offsets),
// the shape, and the version counter (an in-place change to the weight packs it again). Inference tensors have
// no version counter; they can only be changed in place inside inference mode, which Joule's passes never do to
// an op's weights. A packing made from several tensors (W4A8: qweight, scales, zeros) names the others as `deps`:
// each is checked the same way, so a change to any of them packs again. Expired entries are dropped whenever a new
// one is made, so the cache holds at most the weights alive.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace joule::ops {

template <class Packed>
class PackCache {
 public:
  // The packed form of w (and deps), made by make() on the first call for them (and again after an in-place
  // change to any).
  template <class Make>
  std::shared_ptr<const Packed> get(const at::Tensor& w, const Make& make, const std::vector<at::Tensor>& deps = {}) {
    const c10::StorageImpl* key = w.storage().unsafeGetStorageImpl();
    std::vector<Seen> seen{seen_of(w)};
    for (const auto& d : deps) seen.push_back(seen_of(d));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.seen == seen) return it->second.packed;
    for (auto e = entries_.begin(); e != entries_.end();) e = e->second.expired() ? entries_.erase(e) : ++e;
    Entry entry{std::move(seen), std::make_shared<const Packed>(make())};
    auto packed = entry.packed;
    entries_.insert_or_assign(key, std::move(entry));
    return packed;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  // What a tensor was when it was packed: its storage (weakly), data pointer, shape and version.
  struct Seen {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
    const void* data;
    std::vector<int64_t> sizes;
    int64_t version;
    bool operator==(const Seen& o) const {
      return !storage.expired() && storage._unsafe_get_target() == o.storage._unsafe_get_target() &&
             data == o.data && sizes == o.sizes && version == o.version;
    }
  };
  static Seen seen_of(const at::Tensor& t) {
    return {t.storage().getWeakStorageImpl(), t.data_ptr(), t.sizes().vec(),
            t.is_inference() ? -1 : static_cast<int64_t>(t._version())};
  }
  struct Entry {
    std::vector<Seen> seen;  // the weight first, then its deps
    std::shared_ptr<const Packed> packed;
    bool expired() const {
      for (const auto& s : seen)
        if (s.storage.expired()) return true;
      return false;
    }
  };
  mutable std::mutex mu_;
  std::unordered_map<const c10::StorageImpl*, Entry> entries_;
};

}  // namespace joule::ops
