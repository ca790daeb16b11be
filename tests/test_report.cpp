// Report JSON: the version-1 schema keys, with values carried through unchanged.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

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

namespace {

joule::Metrics stage(double file_mib, double latency_ms, double cosine) {
  joule::Metrics m;
  m.params = 1000, m.nonzero_params = 1000, m.weight_bytes = 4000;
  m.file_bytes = static_cast<int64_t>(file_mib * 1048576);
  m.latency_ms = latency_ms, m.latency_p10_ms = 0.95 * latency_ms, m.latency_p90_ms = 1.05 * latency_ms;
  m.cosine = cosine;
  return m;
}

// The x positions and texts of the elements of `cls` inside the first <g> ... </g> of `svg`.
std::vector<std::pair<double, std::string>> texts_of(const std::string& svg, const std::string& cls) {
  std::string g = svg.substr(svg.find("<g>"), svg.find("</g>") - svg.find("<g>"));
  std::vector<std::pair<double, std::string>> out;
  const std::string key = "<text class='" + cls + "' x='";
  for (size_t at = g.find(key); at != std::string::npos; at = g.find(key, at + 1)) {
    double x = std::stod(g.substr(at + key.size()));
    size_t open = g.find('>', at) + 1;
    out.push_back({x, g.substr(open, g.find('<', open) - open)});
  }
  return out;
}

}  // namespace

TEST(Report, SizeChangesAndSlowdownsAreSaidAsTheyAre) {
  EXPECT_EQ(joule::size_change(1000, 1100), "1.10x larger");
  EXPECT_EQ(joule::size_change(2000, 1000), "2.00x smaller");
  EXPECT_EQ(joule::size_change(1000, 1000), "the same size");
  joule::Report r;
  joule::PassRecord p;
  p.name = "quantize";
  p.before = stage(1.0, 2.0, 1.0), p.after = stage(1.1, 5.2, 0.99);
  r.passes.push_back(p);
  std::string table = r.table();
  EXPECT_NE(table.find("file 1.10x larger"), std::string::npos) << table;
  EXPECT_EQ(table.find("smaller"), std::string::npos) << table;
  EXPECT_NE(table.find("latency 2.60x slower"), std::string::npos) << table;
  double ratio = 0;
  std::string w = joule::slowdown_warning(p.before, p.after, &ratio);
  EXPECT_DOUBLE_EQ(ratio, 2.6);
  EXPECT_NE(w.find("2.60x slower"), std::string::npos) << w;
  EXPECT_EQ(w.find("--w4a8"), std::string::npos) << w;
  // A W4 model that ran with float activations is pointed at --w4a8; one that ran with int8 ones is not.
  joule::Metrics w4 = p.after;
  w4.w4_float_activations = 36;
  EXPECT_NE(joule::slowdown_warning(p.before, w4).find("its 36 W4 layers ran with float activations (`joule --w4a8`"),
            std::string::npos);
  w4.w4_int8_activations = 36, w4.w4_float_activations = 0;
  EXPECT_EQ(joule::slowdown_warning(p.before, w4).find("--w4a8"), std::string::npos);
  auto j = r.to_json()["passes"][0];
  EXPECT_EQ(j["slower"], true);
  EXPECT_DOUBLE_EQ(j["latency_ratio"].get<double>(), 2.6);
  // Within the timing noise (after's p10 below before's p90), or faster: no warning.
  EXPECT_EQ(joule::slowdown_warning(stage(1, 2.0, 1), stage(1, 2.08, 1)), "");
  EXPECT_EQ(joule::slowdown_warning(stage(1, 2.0, 1), stage(1, 1.0, 1)), "");
  // Params, bits per weight and bytes side by side.
  EXPECT_DOUBLE_EQ(j["after"]["bits_per_weight"].get<double>(), 32.0);
  EXPECT_NE(table.find("bits/w"), std::string::npos);
}

TEST(Report, UnmeasuredStagesSayWhyAndShowDashes) {
  joule::Report r;
  joule::PassRecord p;
  p.name = "prune";
  p.before = stage(1.0, 0, 1), p.after = stage(0.5, 0, 1);
  for (auto* m : {&p.before, &p.after}) m->measured = false, m->not_measured = "no workload (test)";
  r.passes.push_back(p);
  auto j = r.to_json()["passes"][0];
  EXPECT_EQ(j["after"]["measured"], false);
  EXPECT_EQ(j["after"]["not_measured"], "no workload (test)");
  EXPECT_TRUE(j["after"]["latency_ms"].is_null());
  EXPECT_TRUE(j["after"]["quality"]["cosine"].is_null());
  EXPECT_TRUE(j["latency_ratio"].is_null());
  std::string table = r.table();
  EXPECT_NE(table.find("latency, fidelity and energy not measured: no workload (test)"), std::string::npos) << table;
  EXPECT_NE(table.find("file 2.00x smaller"), std::string::npos) << table;
  std::string row = table.substr(table.find("1. prune"));
  row = row.substr(0, row.find('\n'));
  EXPECT_NE(row.find(" - "), std::string::npos) << row;
  std::string svg = r.svg();
  EXPECT_NE(svg.find("not measured (no workload)"), std::string::npos);
}

TEST(Report, PlotStaysReadableAtSevenPassesWithZeroBasedAxesAndQualityScatter) {
  joule::Report r;
  r.model = {{"path", "m.pt"}};
  const char* labels[] = {"prune structured", "prune unstructured", "prune 2:4", "quantize w4 g128 gptq",
                          "distill", "quantize w8a8 static sq0.5", "prune unstructured"};
  joule::Metrics prev = stage(8.0, 4.0, 1.0);
  prev.task = {{"stsb_spearman", 86.7}};
  for (int i = 0; i < 7; ++i) {
    joule::PassRecord p;
    p.name = "pass", p.label = labels[i];
    p.before = prev;
    p.after = stage(8.0 / (i + 2), 4.0 - 0.3 * i, 1.0 - 0.01 * i);
    p.after.task = {{"stsb_spearman", 86.7 - 0.3 * i}};
    prev = p.after;
    r.passes.push_back(p);
  }
  std::string svg = r.svg();
  // Eight stages in a half-width panel: the names do not fit, so the ticks are numbers, spaced wider than they are.
  auto ticks = texts_of(svg, "stage");
  ASSERT_EQ(ticks.size(), 8u);
  for (size_t i = 0; i < ticks.size(); ++i) EXPECT_EQ(ticks[i].second, std::to_string(i));
  for (size_t i = 1; i < ticks.size(); ++i) EXPECT_GT(ticks[i].first - ticks[i - 1].first, 2 * 0.6 * 10 + 4);
  // ... and the names are in a legend, none overlapping the next on its row.
  std::vector<std::tuple<double, double, std::string>> legend;  // x, y, text
  const std::string key = "<text class='legend' x='";
  for (size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
    double x = std::stod(svg.substr(at + key.size()));
    double y = std::stod(svg.substr(svg.find("y='", at) + 3));
    size_t open = svg.find('>', at) + 1;
    legend.emplace_back(x, y, svg.substr(open, svg.find('<', open) - open));
  }
  ASSERT_EQ(legend.size(), 8u);
  EXPECT_EQ(std::get<2>(legend[3]), "3. prune 2:4");
  for (size_t i = 1; i < legend.size(); ++i)
    if (std::get<1>(legend[i]) == std::get<1>(legend[i - 1])) {  // braces: EXPECT_GT is an if/else macro
      EXPECT_GT(std::get<0>(legend[i]) - std::get<0>(legend[i - 1]), 0.6 * 11 * std::get<2>(legend[i - 1]).size());
    }
  // Every bar axis starts at zero, the STS-B panel included (86.7 -> 84.9 must not look like a third lost).
  size_t q = svg.find("Quality: STS-B dev");
  ASSERT_NE(q, std::string::npos);
  std::string panel = svg.substr(q, svg.find("</g>", q) - q);
  EXPECT_NE(panel.find("text-anchor='end'>0</text>"), std::string::npos);
  EXPECT_NE(panel.find("text-anchor='end'>100</text>"), std::string::npos);
  // The comparison users make: size and latency against quality, one point per stage in each.
  EXPECT_NE(svg.find("Size vs quality"), std::string::npos);
  EXPECT_NE(svg.find("Latency vs quality"), std::string::npos);
  size_t points = 0;
  for (size_t at = svg.find("class='point'"); at != std::string::npos; at = svg.find("class='point'", at + 1)) ++points;
  EXPECT_EQ(points, 16u);
  // Two passes: the full names fit and are the ticks.
  r.passes.resize(2);
  auto two = texts_of(r.svg(), "stage");
  ASSERT_EQ(two.size(), 3u);
  EXPECT_EQ(two[1].second, "1. prune structured");
}
