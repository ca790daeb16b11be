#include "compress/passes/registry.h"

#include "compress/base/error.h"
#include "compress/passes/distill.h"
#include "compress/passes/prune.h"
#include "compress/passes/quantize.h"

namespace joule {

namespace {
// The factory of a pass whose options parse with Options::from_json.
template <typename P, typename Options>
std::unique_ptr<Pass> make(const nlohmann::json& o) {
  return std::make_unique<P>(Options::from_json(o));
}
}  // namespace

const std::vector<PassInfo>& pass_registry() {
  static const std::vector<PassInfo> table = {
      {prune_spec, make<PrunePass, PruneOptions>},
      {quantize_spec, make<QuantizePass, QuantizeOptions>},
      {distill_spec, make<DistillPass, DistillOptions>},
  };
  return table;
}

const PassInfo* find_pass(const std::string& name) {
  for (const auto& p : pass_registry())
    if (p.spec().name == name) return &p;
  return nullptr;
}

std::unique_ptr<Pass> make_pass(const std::string& name, const nlohmann::json& options) {
  if (const PassInfo* p = find_pass(name)) return p->make(options);
  std::string known;
  for (const auto& p : pass_registry()) known += (known.empty() ? "" : ", ") + p.spec().name;
  fail("unknown pass '{}' (known: {})", name, known);
}

}  // namespace joule
