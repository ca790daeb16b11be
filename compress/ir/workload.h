// The fixed workload every measurement runs: typed input specs, generated from a seed so that "before" and
// "after" of every pass see identical inputs.
#pragma once
#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace joule {

// "[dtype:]D0xD1x...[:high | =value]", e.g. "1x784" (f32), "f16:8x3x32x32", "i64:1x128:30522" (ints in
// [0, high)), "i64:1x128=1" (all ones: an attention mask).
struct InputSpec {
  c10::ScalarType dtype = c10::kFloat;
  std::vector<int64_t> shape;
  int64_t high = 0;  // integer inputs only; 0 = choose from the model (smallest embedding table)
  std::optional<double> fill;  // constant input
  std::string str() const;
};
InputSpec parse_input_spec(const std::string& s);

struct Workload {
  std::vector<InputSpec> inputs;
  int warmup = 3;
  int reps = 20;
  uint64_t seed = 0;

  std::vector<c10::IValue> make_inputs() const;
  nlohmann::json to_json() const;
  static Workload from_json(const nlohmann::json& j);  // keys: inputs, warmup, reps, seed
};

}  // namespace joule
