#include "compress/ir/workload.h"

#include <ATen/CPUGeneratorImpl.h>

#include <map>

#include "compress/base/error.h"
#include "compress/io/json_field.h"

namespace joule {

static const std::map<std::string, c10::ScalarType>& dtype_names() {
  static const std::map<std::string, c10::ScalarType> m = {
      {"f32", c10::kFloat}, {"f16", c10::kHalf}, {"bf16", c10::kBFloat16}, {"f64", c10::kDouble},
      {"i64", c10::kLong},  {"i32", c10::kInt},  {"bool", c10::kBool}};
  return m;
}

std::string InputSpec::str() const {
  std::string name;
  for (const auto& [k, v] : dtype_names())
    if (v == dtype) name = k;
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? "x" : "") + std::to_string(shape[i]);
  std::string s = name + ":" + dims;
  if (fill) s += fmt::format("={}", *fill);
  else if (high > 0) s += ":" + std::to_string(high);
  return s;
}

InputSpec parse_input_spec(const std::string& full) {
  InputSpec spec;
  std::string s = full.substr(0, full.find('='));
  if (s.size() != full.size()) {
    std::string v = full.substr(s.size() + 1);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0') fail("input spec '{}': fill value '{}' is not a number", printable(full), printable(v));
    spec.fill = x;
  }
  std::vector<std::string> fields;
  for (size_t start = 0;;) {
    size_t c = s.find(':', start);
    fields.push_back(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  size_t dims_at = 0;
  if (fields.size() >= 2) {
    auto it = dtype_names().find(fields[0]);
    if (it == dtype_names().end())
      fail("input spec '{}': unknown dtype '{}' (f32, f16, bf16, f64, i64, i32, bool)", printable(s), printable(fields[0]));
    spec.dtype = it->second;
    dims_at = 1;
  }
  if (fields.size() > dims_at + 2 || fields[dims_at].empty())
    fail("input spec '{}': expected [dtype:]D0xD1x...[:high], e.g. 1x128 or i64:1x128:30522", printable(s));
  const std::string& dims = fields[dims_at];
  for (size_t start = 0;;) {
    size_t x = dims.find('x', start);
    std::string d = dims.substr(start, x == std::string::npos ? std::string::npos : x - start);
    char* end = nullptr;
    long long v = std::strtoll(d.c_str(), &end, 10);
    if (d.empty() || *end != '\0' || v <= 0) fail("input spec '{}': dimension '{}' is not a positive integer", printable(s), printable(d));
    spec.shape.push_back(v);
    if (spec.shape.size() > WorkloadLimits::kMaxDims)
      fail("input spec '{}': more than {} dimensions", printable(s), WorkloadLimits::kMaxDims);
    if (x == std::string::npos) break;
    start = x + 1;
  }
  if (fields.size() == dims_at + 2) {
    if (c10::isFloatingType(spec.dtype)) fail("input spec '{}': an upper bound applies to integer inputs only", printable(s));
    if (spec.fill) fail("input spec '{}': give an upper bound or a fill value, not both", printable(full));
    char* end = nullptr;
    spec.high = std::strtoll(fields[dims_at + 1].c_str(), &end, 10);
    if (*end != '\0' || spec.high <= 0) fail("input spec '{}': upper bound must be a positive integer", printable(s));
  }
  return spec;
}

uint64_t InputSpec::bytes() const {
  uint64_t n = c10::elementSize(dtype);
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, uint64_t(d), &n)) return UINT64_MAX;
  return n;
}

void Workload::check(const std::string& where) const {
  using L = WorkloadLimits;
  if (warmup < 0 || warmup > L::kMaxWarmup) fail("{}: warmup {} is outside 0..{}", where, warmup, L::kMaxWarmup);
  if (reps < 1 || reps > L::kMaxReps) fail("{}: reps {} is outside 1..{}", where, reps, L::kMaxReps);
  if (inputs.size() > L::kMaxInputs) fail("{}: {} inputs, over the {} allowed", where, inputs.size(), L::kMaxInputs);
  uint64_t total = 0;
  for (const auto& in : inputs) {
    if (in.shape.size() > L::kMaxDims)
      fail("{}: input {} has {} dimensions, over the {} allowed", where, printable(in.str()), in.shape.size(), L::kMaxDims);
    const uint64_t b = in.bytes();
    total = b > L::kMaxInputBytes ? b : total + b;
    if (total > L::kMaxInputBytes)
      fail("{}: input {} brings the inputs to {} bytes, over the {} allowed", where, printable(in.str()),
           b == UINT64_MAX ? std::string("over 2^64") : std::to_string(total), L::kMaxInputBytes);
  }
}

std::vector<c10::IValue> Workload::make_inputs() const {
  check();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<c10::IValue> out;
  for (const auto& in : inputs) {
    at::Tensor t;
    if (in.fill) {
      t = at::full(in.shape, *in.fill, at::TensorOptions().dtype(in.dtype));
    } else if (in.dtype == c10::kBool) {
      t = at::randint(0, 2, in.shape, gen, at::TensorOptions().dtype(c10::kLong)).to(c10::kBool);
    } else if (c10::isIntegralType(in.dtype, /*includeBool=*/false)) {
      t = at::randint(0, in.high > 0 ? in.high : 100, in.shape, gen, at::TensorOptions().dtype(in.dtype));
    } else {
      t = at::randn(in.shape, gen, at::TensorOptions().dtype(c10::kFloat)).to(in.dtype);
    }
    out.emplace_back(t);
  }
  return out;
}

nlohmann::json Workload::to_json() const {
  std::vector<std::string> specs;
  for (const auto& i : inputs) specs.push_back(i.str());
  return {{"inputs", specs}, {"warmup", warmup}, {"reps", reps}, {"seed", seed}};
}

Workload Workload::from_json(const nlohmann::json& j, const std::string& where) {
  Workload w;
  if (!j.is_object()) fail("'{}': expected an object with 'inputs' (and optionally warmup, reps, seed), found {}", where, io::json_kind(j));
  for (const auto& [k, v] : j.items()) {
    if (k == "inputs") {
      if (!v.is_array()) fail("'{}': key 'inputs': expected a list of input specs such as \"i64:1x128\", found {}", where, io::json_kind(v));
      if (v.size() > WorkloadLimits::kMaxInputs)
        fail("'{}': key 'inputs': {} inputs, over the {} allowed", where, v.size(), WorkloadLimits::kMaxInputs);
      for (const auto& s : v) {
        const std::string spec = io::json_as<std::string>(s, "inputs", where);
        try {
          w.inputs.push_back(parse_input_spec(spec));
        } catch (const Error& e) {
          fail("'{}': {}", where, e.what());
        }
      }
    } else if (k == "warmup") {
      w.warmup = io::json_as<int>(v, k, where);
    } else if (k == "reps") {
      w.reps = io::json_as<int>(v, k, where);
    } else if (k == "seed") {
      w.seed = io::json_as<uint64_t>(v, k, where);
    } else {
      fail("'{}': unknown key '{}' (inputs, warmup, reps, seed)", where, printable(k));
    }
  }
  w.check("'" + where + "'");
  return w;
}

}  // namespace joule
