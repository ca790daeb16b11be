#include "compress/energy/op_model.h"

#include <stdexcept>

namespace joule::energy {

DType dtype_from_name(const std::string& n) {
  if (n == "f32" || n == "float" || n == "Float") return DType::F32;
  if (n == "f16" || n == "half" || n == "Half") return DType::F16;
  if (n == "bf16" || n == "BFloat16") return DType::BF16;
  if (n == "i8" || n == "qint8" || n == "Char" || n == "QInt8") return DType::I8;
  if (n == "i32" || n == "Int") return DType::I32;
  if (n == "f64" || n == "double" || n == "Double") return DType::F64;
  throw std::invalid_argument("op model: unknown dtype '" + n + "'");
}

double elem_bytes(DType d) {
  switch (d) {
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::I8: return 1;
    case DType::F64: return 8;
  }
  return 4;
}

double OpModelConstants::mac_pj(DType d) const {
  switch (d) {
    case DType::F32: return f32_mac_pj;
    case DType::F16:
    case DType::BF16: return f16_mac_pj;
    case DType::I8: return i8_mac_pj;
    case DType::I32: return i32_mac_pj;
    case DType::F64: return 4 * f32_mac_pj;  // no Horowitz figure: multiplier area/energy grows ~quadratically
  }
  return f32_mac_pj;
}

OpModelConstants OpModelConstants::from_json(const nlohmann::json& j) {
  OpModelConstants c;
  if (!j.is_object()) throw std::invalid_argument("op model constants must be a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (!v.is_number()) throw std::invalid_argument("op model constant '" + k + "' must be a number");
    double x = v.get<double>();
    if (k == "f32_mac_pj") c.f32_mac_pj = x;
    else if (k == "f16_mac_pj") c.f16_mac_pj = x;
    else if (k == "i8_mac_pj") c.i8_mac_pj = x;
    else if (k == "i32_mac_pj") c.i32_mac_pj = x;
    else if (k == "dram_pj_per_byte") c.dram_pj_per_byte = x;
    else if (k == "sram_pj_per_byte") c.sram_pj_per_byte = x;
    else if (k == "scale") c.scale = x;
    else throw std::invalid_argument("op model: unknown constant '" + k + "'");
    if (x < 0) throw std::invalid_argument("op model constant '" + k + "' must be >= 0");
  }
  return c;
}

nlohmann::json OpModelConstants::to_json() const {
  return {{"f32_mac_pj", f32_mac_pj},
          {"f16_mac_pj", f16_mac_pj},
          {"i8_mac_pj", i8_mac_pj},
          {"i32_mac_pj", i32_mac_pj},
          {"dram_pj_per_byte", dram_pj_per_byte},
          {"sram_pj_per_byte", sram_pj_per_byte},
          {"scale", scale},
          {"source", "Horowitz, ISSCC 2014 (45 nm, 0.9 V), via Han et al. ICLR 2016 Table 1; unscaled unless scale != 1"}};
}

nlohmann::json OpEstimate::to_json() const {
  return {{"j_per_inference", total()}, {"mac_j", mac_j}, {"dram_j", dram_j}, {"sram_j", sram_j}};
}

static OpEstimate estimate(const std::vector<OpCost>& ops, const OpModelConstants& c, bool sparse) {
  OpEstimate e;
  for (const auto& op : ops) {
    double d = sparse ? op.density : 1.0;
    double mask_bytes = sparse && op.density < 1 ? op.weight_bytes / elem_bytes(op.dtype) / 8.0 : 0;  // 1 bit/weight
    e.mac_j += op.macs * d * c.mac_pj(op.dtype) * 1e-12 * c.scale;
    e.dram_j += (op.weight_bytes * d + mask_bytes) * c.dram_pj_per_byte * 1e-12 * c.scale;
    e.sram_j += op.act_bytes * c.sram_pj_per_byte * 1e-12 * c.scale;
  }
  return e;
}

OpEstimate estimate_dense(const std::vector<OpCost>& ops, const OpModelConstants& c) { return estimate(ops, c, false); }
OpEstimate estimate_ideal_sparse(const std::vector<OpCost>& ops, const OpModelConstants& c) {
  return estimate(ops, c, true);
}

}  // namespace joule::energy
