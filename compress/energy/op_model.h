// The op-level energy model: MACs by data type x energy per MAC, plus bytes by memory level x energy per
// byte. It explains *why* a pass saves energy (fewer MACs, fewer bytes, cheaper ops); the time x power
// estimate tracks what the machine actually did. Default constants: Horowitz, "Computing's energy
// problem", ISSCC 2014 (45 nm, 0.9 V), as tabulated by Han et al., ICLR 2016, Table 1. Unscaled.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace joule::energy {

enum class DType { F32, F16, BF16, I8, I32, F64 };
DType dtype_from_name(const std::string& name);  // "f32", "float", "half", ...
double elem_bytes(DType d);

// One weight-bearing op on the workload, as the graph layer measured it.
struct OpCost {
  std::string name;
  DType dtype = DType::F32;
  double macs = 0;           // per forward, all calls
  double weight_bytes = 0;   // read from DRAM once per call (weights stream; the model assumes no reuse)
  double act_bytes = 0;      // inputs + outputs of the op, from on-chip cache/SRAM
  double density = 1;        // non-zero fraction of the weight (1 for dense)
};

struct OpModelConstants {
  double f32_mac_pj = 3.7 + 0.9;   // fp32 mult 3.7 pJ + fp32 add 0.9 pJ
  double f16_mac_pj = 1.1 + 0.4;   // fp16 mult 1.1 pJ + fp16 add 0.4 pJ (bf16 taken as fp16)
  double i8_mac_pj = 0.2 + 0.1;    // int8 mult 0.2 pJ + int32 accumulate add 0.1 pJ
  double i32_mac_pj = 3.1 + 0.1;   // int32 mult 3.1 pJ + int32 add 0.1 pJ
  double dram_pj_per_byte = 640.0 / 4;  // 32-bit DRAM read 640 pJ
  double sram_pj_per_byte = 5.0 / 4;    // 32-bit SRAM cache read 5 pJ
  double scale = 1.0;  // multiplies everything: e.g. process-node scaling, none by default

  // Overrides from JSON ({"f32_mac_pj": ..., "scale": ...}); unknown keys are errors (thrown as
  // std::invalid_argument with the key).
  static OpModelConstants from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  double mac_pj(DType d) const;
};

struct OpEstimate {
  double mac_j = 0, dram_j = 0, sram_j = 0;
  double total() const { return mac_j + dram_j + sram_j; }
  nlohmann::json to_json() const;
};

// As executed on dense kernels: every MAC and every weight byte costs, zeros included.
OpEstimate estimate_dense(const std::vector<OpCost>& ops, const OpModelConstants& c);
// With ideal sparse kernels and storage: MACs and weight bytes scale with density, plus a 1-bit-per-weight
// mask. What a sparse kernel could reach, not what runs today.
OpEstimate estimate_ideal_sparse(const std::vector<OpCost>& ops, const OpModelConstants& c);

}  // namespace joule::energy
