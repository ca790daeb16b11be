// oneDNN (Debian's libdnnl) matmuls as benchmark baselines, behind a LibTorch-free interface: LibTorch's include
// path carries its own, newer oneDNN headers (whose symbols libtorch_cpu keeps hidden), so this file's .cpp is
// compiled without it, against the library it links.
#pragma once
#include <cstdint>
#include <memory>

namespace joule::bench {

// y[M,N] = x[M,K] w[N,K]^T, weights reordered once (at construction) into the layout the primitive chose
// (format any). kF32: f32 x, f32 w, f32 bias, f32 y. kU8S8S32: u8 x, s8 w, int32 y (no bias, no scales: the
// raw integer GEMM).
class OneDnnMatmul {
 public:
  enum Kind { kF32, kU8S8S32 };
  OneDnnMatmul(Kind kind, int64_t M, int64_t K, int64_t N, const void* w);
  ~OneDnnMatmul();
  void run(const void* x, const float* bias, void* y);
  const char* impl() const;  // oneDNN's implementation name (e.g. brg:avx512_core_vnni)

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace joule::bench
