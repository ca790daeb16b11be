// Models built directly as TorchScript modules in C++ (no Python): the bundled default model for the
// README's main command, benchmarks and tests. Real checkpoints (HF safetensors) load elsewhere in models/.
#pragma once
#include <torch/script.h>

#include <cstdint>

namespace joule::models {

// x:[B, d_in] -> fc_in -> N residual blocks x + b(gelu(a(x))) (a: d -> hidden, b: hidden -> d) -> head.
// Parameter paths follow PyTorch's ModuleList naming: "blocks.0.a.weight", ...
struct MlpConfig {
  int64_t d_in = 256, d_model = 512, hidden = 2048, d_out = 64, blocks = 2;
  uint64_t seed = 0;
};
torch::jit::Module build_mlp(const MlpConfig& cfg);

// A linear layer (nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias) as a script module.
torch::jit::Module build_linear(int64_t in, int64_t out, at::Generator& gen, bool bias = true);

}  // namespace joule::models
