// Shared helpers for the LibTorch tests: paths of the PyTorch-made models and their reference I/O.
#pragma once
#include <torch/script.h>

#include <string>

#include "compress/model_io.h"

namespace joule::test {

inline std::string model_path(const std::string& name) { return std::string(JOULE_TEST_MODELS) + "/" + name + ".pt"; }

// PyTorch's input `x` and output `y` for model `name`, saved by tests/make_models.py.
inline std::pair<at::Tensor, at::Tensor> reference_io(const std::string& name) {
  auto io = torch::jit::load(std::string(JOULE_TEST_MODELS) + "/" + name + ".io.pt");
  return {io.attr("x").toTensor(), io.attr("y").toTensor()};
}

inline at::Tensor forward(torch::jit::Module& m, const at::Tensor& x) {
  torch::NoGradGuard g;
  return m.forward({x}).toTensor();
}

}  // namespace joule::test
