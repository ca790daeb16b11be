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
  uint64_t bytes() const;  // of the tensor it makes; UINT64_MAX when that overflows
};
InputSpec parse_input_spec(const std::string& s);

// Bounds on every workload, checked before any input is made (docs/SECURITY.md): an archive carries its own
// workload (joule/workload.json) and every measuring command runs it, inspect included, so a 28 KB file could
// otherwise ask for 2e9 timed runs or gigabytes of inputs.
struct WorkloadLimits {
  static constexpr int kMaxWarmup = 1000;
  static constexpr int kMaxReps = 100000;
  static constexpr size_t kMaxInputs = 16;
  static constexpr size_t kMaxDims = 8;
  static constexpr uint64_t kMaxInputBytes = uint64_t{1} << 30;  // all inputs together
};

struct Workload {
  std::vector<InputSpec> inputs;
  int warmup = 3;
  int reps = 20;
  uint64_t seed = 0;

  std::vector<c10::IValue> make_inputs() const;  // check()s first
  nlohmann::json to_json() const;
  // Keys: inputs, warmup, reps, seed. `where` names the source in errors ("model 'm.pt': joule/workload.json").
  static Workload from_json(const nlohmann::json& j, const std::string& where = "workload");
  // Fails (one line naming `where`) unless the workload is within WorkloadLimits.
  void check(const std::string& where = "workload") const;
};

}  // namespace joule
