// Weight quantization of aten::linear layers: W8A8 (int8 weights per output channel, int8 activations per
// token at run time, or with one calibrated scale per layer, optionally SmoothQuant-migrated) and W4
// (group-wise asymmetric 4-bit weights, float activations), round-to-nearest or GPTQ.
// The pass rewrites the model: forward is inlined, each quantized aten::linear becomes joule::linear_w8a8 or
// joule::linear_w4 (compress/ops/ops.h) over packed buffers stored on the top module, and the float weight
// is replaced by an empty tensor, so the saved archive is really smaller. Loading the result needs the
// joule_ops library. Embeddings, convs and matmuls are left in float (no packed kernel takes them), and so are
// linears a scheme cannot take (W4: K < group); each is listed in the report's `skipped` with the reason.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/passes/options.h"
#include "compress/passes/pass.h"
#include "compress/algorithms/gptq.h"

namespace joule {

enum class QuantScheme { W8A8, W4 };

enum class QuantMethod { RTN, GPTQ };

// The options of the quantize pass (recipes, CLI flags, --help, report labels).
const PassSpec& quantize_spec();

struct QuantizeOptions {
  QuantScheme scheme = QuantScheme::W8A8;
  int64_t group = 128;  // W4: input features per (scale, zero) group; a power of two >= 2
  QuantMethod method = QuantMethod::RTN;  // GPTQ: W4 only, needs calibration
  GptqOptions gptq;
  bool static_act = false;  // W8A8: one activation scale per layer from calibration (else per token at run time)
  double smooth = 0;        // W8A8: SmoothQuant migration strength alpha in (0, 1]; 0 = off
  std::string calib;        // calibration file: text for sentence encoders (.tsv/.txt), else .safetensors
  int64_t calib_samples = 512;
  std::vector<std::string> include, exclude;  // globs over module paths

  bool needs_calibration() const { return method == QuantMethod::GPTQ || static_act || smooth > 0; }

  static QuantizeOptions from_json(const nlohmann::json& j);  // validates; one-line errors
  nlohmann::json to_json() const;
};

class QuantizePass : public Pass {
 public:
  explicit QuantizePass(QuantizeOptions o) : opts_(std::move(o)) {}
  const PassSpec& spec() const override { return quantize_spec(); }
  nlohmann::json options() const override { return opts_.to_json(); }
  bool needs_workload() const override { return opts_.needs_calibration(); }  // calibration tensors match it
  PassResult run(torch::jit::Module& m, Context& ctx) override;

 private:
  QuantizeOptions opts_;
};

}  // namespace joule
