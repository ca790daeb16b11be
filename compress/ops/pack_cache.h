// Weights repacked for a kernel once, not on every call: the W8A8 VNNI GEMM's tiles (kernels/cpu/w8a8.h,
// W8A8Packed). A saved model keeps the portable layout (int8 [N, K], what the CUDA kernels, the HF export and
// torch read); the packed copy lives beside it in the process, for as long as the weight tensor does, unchanged.
//
// Keyed by the weight's storage and checked on every hit against a weak reference to that storage (a freed
// weight's entry can never match a new tensor that reuses its address), the data pointer (views, offsets),
// the shape, and the version counter (an in-place change to the weight packs it again). Inference tensors have
// no version counter; they can only be changed in place inside inference mode, which Joule's passes never do to
// an op's weights. Expired entries are dropped whenever a new one is made, so the cache holds at most the
// weights alive.
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
  // The packed form of w, made by make() on the first call for this tensor (and again after an in-place change).
  template <class Make>
  std::shared_ptr<const Packed> get(const at::Tensor& w, const Make& make) {
    const c10::StorageImpl* key = w.storage().unsafeGetStorageImpl();
    const int64_t version = w.is_inference() ? -1 : static_cast<int64_t>(w._version());
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && !it->second.storage.expired() && it->second.data == w.data_ptr() &&
        it->second.sizes == w.sizes() && it->second.version == version)
      return it->second.packed;
    for (auto e = entries_.begin(); e != entries_.end();) e = e->second.storage.expired() ? entries_.erase(e) : ++e;
    Entry entry{w.storage().getWeakStorageImpl(), w.data_ptr(), w.sizes().vec(), version,
                std::make_shared<const Packed>(make())};
    auto packed = entry.packed;
    entries_.insert_or_assign(key, std::move(entry));
    return packed;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
    const void* data;
    std::vector<int64_t> sizes;
    int64_t version;
    std::shared_ptr<const Packed> packed;
  };
  mutable std::mutex mu_;
  std::unordered_map<const c10::StorageImpl*, Entry> entries_;
};

}  // namespace joule::ops
