// Packed joule:: linears in the compressed-tensors checkpoint format (the `quantization_config` that vLLM and
// transformers read, quant_method "compressed-tensors", as of compressed-tensors 0.20.1), both ways:
//   W8A8  -> "int-quantized":  <module>.weight int8 [N, K] (Joule's codes), weight_scale float32 [N, 1]; input
//            activations 8-bit symmetric, per token and dynamic, or per tensor with a static input_scale [1].
//   W4    -> "pack-quantized": weight_packed int32 [N, ceil(K/8)] (8 codes per word, code i at bits 4i..4i+3:
//            the bytes of Joule's qweight, whose codes are the signed codes + 8), weight_scale float32 [N, G],
//            weight_zero_point int32 [ceil(N/8), G] (Joule's zeros packed 8 per word down the rows), weight_shape
//            int64 [2]; 4-bit asymmetric groups of group_size. Decompressed, both equal Joule's dequantized weights.
//   SP24  -> dense float weights with their zeros, and the sparsity recorded as sparsity_config {format "dense",
//            sparsity_structure "2:4"}: 0.20.1 has no sparse compressor any more (sparse-24-bitmask is legacy).
// SmoothQuant'd W8A8 (the op's smooth_inv has no place in the format) is refused. Reading supports what Joule
// runs: int-quantized 8-bit symmetric channel weights (codes in [-127, 127]) with token/dynamic or tensor/static
// activations, and pack-quantized 4-bit group weights (asymmetric, or symmetric: zero 8) with a power-of-two
// group size; any other scheme is a one-line error naming the file.
#pragma once
#include <torch/script.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "compress/ir/rewrite.h"
#include "compress/ops/schema.h"

namespace joule::models {

// The tensors of an HF export of `module` by HF name, contiguous, in write order: its non-empty parameters, the
// buffers of its submodules (BERT's pooler), and every packed linear in compressed-tensors form.
struct HfTensors {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::map<std::string, std::vector<int64_t>> linear_shapes;  // module path -> logical weight [N, K], packed or not
  nlohmann::json quantization_config;                          // null for a plain float model
};
// Fails with one line naming `dir` and the layer, before anything is written, for what the format cannot hold.
HfTensors hf_export_tensors(const torch::jit::Module& module, const std::string& dir);

// The packed linears of a compressed-tensors checkpoint, ready to be rewritten into a module built from its
// float weights.
struct CompressedLinears {
  std::vector<std::pair<const ops::PackedLinearOp*, std::vector<PackedWeight>>> by_op;
};
// `hf_config` is the folder's config.json, `weights` its tensors by name ("bert." stripped). Without a
// quantization_config nothing happens. Otherwise each compressed linear's tensors leave `weights` and a zero float
// placeholder of its shape takes their place (build_bert's linears need a weight), and its packed form is
// returned. `origin` (the safetensors path) names the file in errors.
CompressedLinears read_compressed_linears(const nlohmann::json& hf_config, std::map<std::string, at::Tensor>& weights,
                                          const std::string& origin);
// Rewrites the linears of `m` (built from the placeholders) into the joule:: ops with the checkpoint's tensors.
void apply_compressed_linears(torch::jit::Module& m, const CompressedLinears& c);

}  // namespace joule::models
