#include "cuda/device.h"

#include <cuda_runtime.h>

namespace joule::cuda {

const char* status_string(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNoDevice: return "no CUDA device (or no driver) on this machine";
    case Status::kUnsupportedArch: return "GPU architecture below what this kernel needs";
    case Status::kInvalidShape: return "invalid shape for this kernel";
    case Status::kCudaError: return "CUDA runtime error";
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

}  // namespace joule::cuda
