#include "cuda/device.h"

#include <cuda_runtime.h>

#include <atomic>

namespace joule::cuda {

const char* status_string(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNoDevice: return "no CUDA device (or no driver) on this machine";
    case Status::kUnsupportedArch: return "GPU architecture below what this kernel needs";
    case Status::kInvalidShape: return "invalid shape for this kernel";
    case Status::kCudaError: return "CUDA runtime error";
    case Status::kInvalidValue: return "input values violate the format (e.g. more than 2 non-zeros in a 2:4 chunk)";
  }
  return "unknown status";
}

Status device_sm(int device, int* sm) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count <= device) {
    cudaGetLastError();  // clear the sticky "no driver" error so later calls are not poisoned
    return Status::kNoDevice;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return Status::kCudaError;
  *sm = prop.major * 10 + prop.minor;
  return Status::kOk;
}

Status require_sm(int min_sm) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};  // 0: unknown, -1: no device, else sm
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return Status::kNoDevice;
  }
  int sm = dev < kMaxDevices ? cached[dev].load(std::memory_order_relaxed) : 0;
  if (sm == 0) {
    Status s = device_sm(dev, &sm);
    if (s != Status::kOk) return s;
    if (dev < kMaxDevices) cached[dev].store(sm, std::memory_order_relaxed);
  }
  return sm >= min_sm ? Status::kOk : Status::kUnsupportedArch;
}

}  // namespace joule::cuda
