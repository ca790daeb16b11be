// The teacher's outputs on the training data, computed once and kept in a file (safetensors) keyed by the
// teacher's weights, the data and what is cached, so epochs and later runs reuse them and the teacher need not
// sit in memory beside the student. Outputs are stored in float32; hidden states (for hidden-state losses) in
// float16, token rows of all examples concatenated.
#pragma once
#include <torch/script.h>

#include <map>
#include <string>
#include <vector>

#include "compress/train/task.h"

namespace joule::train {

class TeacherOutputs {
 public:
  // `layers`: teacher hidden-state layers to keep (empty: outputs only). Reads `file` when it holds this key,
  // else runs the teacher (progress bar) and writes it atomically. `file` empty: kept in memory only.
  static TeacherOutputs compute(torch::jit::Module& teacher, const Dataset& data, const std::vector<int>& layers,
                                const std::string& file, int64_t batch = 64);
  // Content key of a teacher: a hash of its parameters' names and bytes.
  static std::string fingerprint(const torch::jit::Module& m);

  int64_t size() const { return outputs_.size(0); }
  bool from_file() const { return from_file_; }
  const std::string& key() const { return key_; }
  // Rows of `idx`: [B, D...] outputs.
  at::Tensor outputs(const std::vector<int64_t>& idx) const;
  // Hidden states of teacher layer `layer` for `idx`, padded to `T` tokens: [B, T, H] float32 (zeros past each
  // example's length).
  at::Tensor hidden(int layer, const std::vector<int64_t>& idx, int64_t T) const;

 private:
  at::Tensor outputs_;
  std::map<int, at::Tensor> hidden_;  // layer -> [sum of lengths, H] f16
  at::Tensor offsets_;                // [N + 1] int64 row offsets into hidden_
  std::string key_;
  bool from_file_ = false;
};

// A module's forward output together with its hidden states, from its `forward_hidden(inputs...)` method: the
// output, and the embedding output followed by each layer's (index l + 1 is layer l). Fails with one line when
// the module has no such method.
std::pair<at::Tensor, std::vector<at::Tensor>> forward_hidden(torch::jit::Module& m, const std::vector<c10::IValue>& inputs);

}  // namespace joule::train
