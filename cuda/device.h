// Device discovery for Joule's CUDA code. Launchers elsewhere in cuda/ return the same status codes.
#pragma once

namespace joule::cuda {

// kInvalidValue: the data break the format (e.g. a 2:4 chunk with more than 2 non-zeros).
enum class Status { kOk = 0, kNoDevice, kUnsupportedArch, kInvalidShape, kCudaError, kInvalidValue };

const char* status_string(Status s);

// Compute capability of `device` as major*10+minor (90 for H100). kNoDevice when there is no driver or GPU.
Status device_sm(int device, int* sm);

// The current device (cudaGetDevice) has compute capability >= min_sm: kOk, kNoDevice or kUnsupportedArch.
// Cached per device after the first call, so launchers can call it every time.
Status require_sm(int min_sm);

}  // namespace joule::cuda
