// The CPU kernels' scratch memory: a grow-only buffer aligned to 64 bytes (a cache line, and enough for any
// SIMD load the kernels make, aligned or not), kept thread_local by its users so that calls reuse it: one per
// calling thread for buffers a call's OpenMP workers share (each fills and reads disjoint rows, and calls made
// from different threads never share one), one per worker thread for a worker's own buffers (the W8A8 VNNI
// packed tile, the W4 GEMM's panel). Not thread-safe itself.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace joule::kernels {

class Scratch {
 public:
  static constexpr size_t kAlign = 64;

  // At least `bytes` bytes, kAlign-aligned, valid until the next call that needs more. Growing (capacity at least
  // doubles) drops the old contents; the memory is not initialised.
  void* get_bytes(size_t bytes) {
    if (bytes + kAlign > cap_) {
      cap_ = std::max(bytes + kAlign, cap_ * 2);
      mem_.reset(new char[cap_]);
    }
    const auto p = reinterpret_cast<uintptr_t>(mem_.get());
    return reinterpret_cast<void*>((p + kAlign - 1) & ~uintptr_t(kAlign - 1));
  }
  // `count` elements of T.
  template <class T>
  T* get(size_t count) {
    return static_cast<T*>(get_bytes(count * sizeof(T)));
  }

 private:
  std::unique_ptr<char[]> mem_;
  size_t cap_ = 0;
};

}  // namespace joule::kernels
