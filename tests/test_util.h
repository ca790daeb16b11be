// Shared helpers for the LibTorch tests: paths of the PyTorch-made models and their reference I/O.
#pragma once
#include <torch/script.h>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
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

// The joule CLI as a user runs it: exit code, stdout, stderr.
struct CliRun {
  int code;
  std::string out, err;
};

inline std::filesystem::path scratch() {
  auto d = std::filesystem::temp_directory_path() / ("joule_cli_" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline CliRun cli(const std::string& args) {
  std::filesystem::path err = scratch() / "stderr.txt";
  std::string cmd = std::string(JOULE_BIN) + " " + args + " 2>" + err.string();
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, slurp(err)};
}

// A failed command: non-zero exit and one line on stderr, "joule: error: ..." containing `needle`.
// Warnings may come before it (a busy machine under ctest -j; the weights a pass skipped, when the error comes
// after the passes ran): they are their own "joule: warning: " lines.
inline void expect_one_line_error(const CliRun& r, const std::string& needle) {
  std::string err;
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("joule: warning: ", 0) != 0) err += line + "\n";
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(err.rfind("joule: error: ", 0), 0u) << r.err;
  EXPECT_NE(err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

inline at::Tensor forward(torch::jit::Module& m, const at::Tensor& x) {
  torch::NoGradGuard g;
  return m.forward({x}).toTensor();
}

}  // namespace joule::test
