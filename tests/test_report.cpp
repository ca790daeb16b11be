// Report JSON: the version-1 schema keys, with values carried through unchanged.
#include <gtest/gtest.h>

#include "compress/report/report.h"

TEST(Report, JsonHasSchemaKeys) {
  joule::Report r;
  r.model = {{"path", "m.pt"}};
  joule::PassRecord p;
  p.name = "prune";
  p.options = {{"method", "2:4"}};
  p.before.params = 100, p.before.nonzero_params = 100, p.before.file_bytes = 4000, p.before.latency_ms = 2.0;
  p.after.params = 100, p.after.nonzero_params = 50, p.after.file_bytes = 4000, p.after.latency_ms = 1.0;
  p.after.cpu_ms_per_inference = 1.5;
  p.pass_wall_s = 0.25;
  r.passes.push_back(p);
  auto j = r.to_json();
  EXPECT_EQ(j["joule_report_version"], 1);
  EXPECT_EQ(j["model"]["path"], "m.pt");
  const auto& pj = j["passes"][0];
  for (const char* k : {"name", "options", "before", "after", "energy"}) EXPECT_TRUE(pj.contains(k)) << k;
  for (const char* side : {"before", "after"})
    for (const char* k : {"params", "nonzero_params", "weight_bytes", "file_bytes", "latency_ms", "quality"})
      EXPECT_TRUE(pj[side].contains(k)) << side << "." << k;
  EXPECT_EQ(pj["after"]["nonzero_params"], 50);
  EXPECT_DOUBLE_EQ(pj["after"]["sparsity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(pj["energy"]["cpu_ms_per_inference_after"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(pj["energy"]["pass_wall_s"].get<double>(), 0.25);
  std::string table = r.table();
  EXPECT_NE(table.find("1. prune 2:4"), std::string::npos);
  EXPECT_NE(table.find("latency 2.00x"), std::string::npos);
}
