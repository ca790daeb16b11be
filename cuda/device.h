// Device discovery for Joule's CUDA code. Launchers elsewhere in cuda/ return the same status codes.
#pragma once

namespace joule::cuda {

enum class Status { kOk = 0, kNoDevice, kUnsupportedArch, kInvalidShape, kCudaError };

const char* status_string(Status s);

// Compute capability of `device` as major*10+minor (90 for H100). kNoDevice when there is no driver or GPU.
Status device_sm(int device, int* sm);

}  // namespace joule::cuda
