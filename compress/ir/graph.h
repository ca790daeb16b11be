// Joule's view of a model graph. Everything Joule needs from TorchScript IR goes through this header, so a
// second front end (torch.export / .pt2) only has to produce the same WeightOp/Analysis records.
//
// analyze() inlines `forward`, finds the weight-bearing ops (aten::linear, conv1d/2d/3d, conv_transpose1d/2d/3d,
// aten::_convolution and aten::convolution (what torch.jit.trace emits for every conv), matmul/mm/addmm with a
// parameter operand, embedding, the joule:: packed linears), resolves each weight to its parameter path through
// the prim::GetAttr chain, marks the output layers, and finds producer -> consumer chains that structured pruning
// can shrink. Given example inputs it
// also runs a probed copy of the graph to record each op's input/output shapes and MACs.
#pragma once
#include <torch/script.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace joule {

enum class OpKind { Linear, Conv1d, Conv2d, Conv3d, ConvTranspose, MatMul, Embedding };
const char* op_kind_name(OpKind k);

struct WeightOp {
  OpKind kind;
  std::string module;  // path of the module owning the weight, e.g. "encoder.layer.3.attention.self.query"
  std::string weight;  // parameter path, e.g. "encoder.layer.3.attention.self.query.weight"
  std::string bias;    // parameter path of the bias, or "" when there is none
  std::vector<int64_t> weight_shape;
  int in_dim = -1;   // weight dimension summed over by the op (-1 for embedding lookups)
  int out_dim = -1;  // weight dimension that indexes output features
  int64_t groups = 1;
  bool derived = false;  // the op sees a slice/chunk of the parameter (e.g. packed attention in_proj)
  std::string quant;     // "" for float ops; "w8a8" / "w4" / "sp24" for joule:: packed linears (weight = packed
                         // buffer: qweight, or the 2:4 values)
  std::vector<std::string> quant_tensors;  // the other packed buffers of a packed op (scales, zeros, 2:4 meta)
  int uses = 1;          // number of graph nodes reading this parameter
  // The weights the op multiplies by, whatever their storage: the float weight's element count, or for a packed
  // op its logical [N, K] (the float weight is emptied after packing).
  int64_t logical_weights = 0;
  // An output layer: its result reaches the model's output without passing through another weight op (a
  // classifier head). Structured pruning leaves it alone: its output features are the model's.
  bool output = false;
  // Filled by the shape probe (analyze with inputs); calls == 0 when the op did not run on the workload.
  std::vector<int64_t> input_shape, output_shape;
  int64_t calls = 0;
  int64_t macs = 0;         // over all calls in one forward
  int64_t act_bytes = 0;    // activation input + output bytes over all calls
};

// A producer whose output features flow, through per-feature ops that map 0 to 0 (relu, gelu, dropout, max/avg
// and adaptive pooling, a flatten that keeps the channel dimension, ...), optionally a batch norm, and at most one
// flatten of a conv's channels and spatial dims, into exactly one consumer's input features, and nowhere else.
// Removing producer output feature i and consumer input features [i * block, (i + 1) * block) is then a physical
// shrink of both layers.
struct ShrinkChain {
  size_t producer;                  // index into Analysis::ops
  size_t consumer;                  // index into Analysis::ops
  std::string batch_norm;           // module path of a batch norm in between, or ""
  int64_t block = 1;                // consumer input features per producer output feature (a flatten: H x W)
};

struct Analysis {
  std::vector<WeightOp> ops;  // in graph order, one per node
  std::vector<ShrinkChain> chains;
  bool probed = false;
  int64_t total_params = 0;
  int64_t total_macs() const;
  std::optional<size_t> chain_from(size_t producer) const;
};

Analysis analyze(const torch::jit::Module& module, const std::vector<c10::IValue>* inputs = nullptr);

// Calibration taps: runs forward on each batch and calls sink(weight path, x [rows, K]) for every call of every
// float aten::linear that reads a weight parameter directly, with the activation it received (rows = all
// leading dims). The tapped graph is built once; on_batch(batches done) reports progress.
void for_each_linear_input(const torch::jit::Module& module, const std::vector<std::vector<c10::IValue>>& batches,
                           const std::function<void(const std::string& weight, const at::Tensor& x)>& sink,
                           const std::function<void(size_t done)>& on_batch = nullptr);

// The top-level forward with every submodule call inlined (constants folded), for rewriting passes.
std::shared_ptr<torch::jit::Graph> inlined_forward(const torch::jit::Module& m);
// Replaces the module's forward with `graph` (same inputs and schema). Submodule methods are left as they
// were, so after a rewrite the model runs through the top-level forward only (what a saved .pt runs).
void set_forward(torch::jit::Module& m, std::shared_ptr<torch::jit::Graph> graph);
// The parameter path of a weight operand reached through prim::GetAttr from `self` (nullopt otherwise).
std::optional<std::string> attr_path_of(torch::jit::Value* v, torch::jit::Value* self);
// How many graph inputs (node operands, in every block) read each attribute path of `self` directly, GetAttr
// chains excluded. A rewriting pass that empties a weight checks that its own sites are all the readers.
std::map<std::string, size_t> attr_readers(const std::shared_ptr<torch::jit::Graph>& g);

// Name of a packed buffer that a rewriting pass registers on the top module for a weight:
// "_joule_" + weight path with '.' -> '_' + "_" + what (e.g. "_joule_blocks_0_a_weight_qweight").
std::string packed_buffer_name(const std::string& weight_path, const std::string& what);

// Submodule and tensor access by dotted path ("blocks.0.a", "blocks.0.a.weight").
torch::jit::Module submodule(const torch::jit::Module& root, const std::string& path);
at::Tensor get_tensor(const torch::jit::Module& root, const std::string& path);
void set_tensor(torch::jit::Module& root, const std::string& path, const at::Tensor& value);

}  // namespace joule
