#include "models/builders.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

namespace joule::models {

torch::jit::Module build_linear(int64_t in, int64_t out, at::Generator& gen, bool bias) {
  torch::jit::Module m("__torch__.joule.Linear" + std::string(bias ? "" : "NoBias"));
  double bound = 1.0 / std::sqrt(double(in));
  m.register_parameter("weight", at::empty({out, in}).uniform_(-bound, bound, gen), false);
  if (bias) {
    m.register_parameter("bias", at::empty({out}).uniform_(-bound, bound, gen), false);
    m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  } else {
    m.define("def forward(self, x):\n    return torch.linear(x, self.weight)\n");
  }
  return m;
}

torch::jit::Module build_mlp(const MlpConfig& cfg) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
  torch::jit::Module blocks("__torch__.joule.MlpBlocks" + std::to_string(cfg.blocks));
  std::string blocks_src = "def forward(self, x):\n";
  for (int64_t i = 0; i < cfg.blocks; ++i) {
    torch::jit::Module b("__torch__.joule.MlpBlock");
    b.register_module("a", build_linear(cfg.d_model, cfg.hidden, gen));
    b.register_module("b", build_linear(cfg.hidden, cfg.d_model, gen));
    b.define("def forward(self, x):\n    return x + self.b.forward(torch.gelu(self.a.forward(x)))\n");
    blocks.register_module(std::to_string(i), b);
    blocks_src += "    x = getattr(self, \"" + std::to_string(i) + "\").forward(x)\n";
  }
  blocks_src += "    return x\n";
  blocks.define(blocks_src);
  torch::jit::Module m("__torch__.joule.Mlp");
  m.register_module("fc_in", build_linear(cfg.d_in, cfg.d_model, gen));
  m.register_module("blocks", blocks);
  m.register_module("head", build_linear(cfg.d_model, cfg.d_out, gen));
  m.define("def forward(self, x):\n    return self.head.forward(self.blocks.forward(torch.relu(self.fc_in.forward(x))))\n");
  m.eval();
  return m;
}

}  // namespace joule::models
