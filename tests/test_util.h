// Shared helpers for the LibTorch tests: paths of the PyTorch-made models and their reference I/O.
#pragma once
#include <torch/script.h>

#include <filesystem>
#include <string>
#include <vector>

#include "compress/io/model_io.h"

namespace joule::test {

inline std::string model_path(const std::string& name) { return std::string(JOULE_TEST_MODELS) + "/" + name + ".pt"; }

// PyTorch's input `x` and output `y` for model `name`, saved by tests/make_models.py.
inline std::pair<at::Tensor, at::Tensor> reference_io(const std::string& name) {
  auto io = torch::jit::load(std::string(JOULE_TEST_MODELS) + "/" + name + ".io.pt");
  return {io.attr("x").toTensor(), io.attr("y").toTensor()};
}

// std::filesystem::remove_all(path) binds to a broken copy exported by libtorch.so (a null call); delete
// bottom-up with remove(), which is not affected.
inline void remove_tree(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::symlink_status(p, ec))) {
    std::filesystem::remove(p, ec);
    return;
  }
  std::vector<std::filesystem::path> children;
  for (const auto& e : std::filesystem::directory_iterator(p, ec)) children.push_back(e.path());
  for (const auto& c : children) remove_tree(c);
  std::filesystem::remove(p, ec);
}

inline at::Tensor forward(torch::jit::Module& m, const at::Tensor& x) {
  torch::NoGradGuard g;
  return m.forward({x}).toTensor();
}

}  // namespace joule::test
