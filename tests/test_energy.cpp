// Energy meters and models: RAPL over fake powercap trees, NVML absent, op-model arithmetic against hand
// computation, CO2e and break-even, CPU profiles, confidence intervals, and the report's source labels.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "compress/energy/carbon.h"
#include "compress/energy/meter.h"
#include "compress/energy/op_model.h"
#include "compress/energy/session.h"
#include "compress/report/report.h"

namespace fs = std::filesystem;
using namespace joule;
using namespace joule::energy;

namespace {

struct FakePowercap {
  fs::path root;
  explicit FakePowercap(const std::string& name) {
    root = fs::temp_directory_path() / ("joule_powercap_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~FakePowercap() { fs::remove_all(root); }
  fs::path zone(const std::string& rel, const std::string& name, double uj, double max_uj) {
    fs::path d = root / rel;
    fs::create_directories(d);
    std::ofstream(d / "name") << name << "\n";
    set(rel, uj);
    std::ofstream(d / "max_energy_range_uj") << static_cast<long long>(max_uj) << "\n";
    return d;
  }
  void set(const std::string& rel, double uj) { std::ofstream(root / rel / "energy_uj") << static_cast<long long>(uj) << "\n"; }
};

void burn_cpu(double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  volatile double x = 0;
  while (std::chrono::steady_clock::now() < end)
    for (int i = 0; i < 1000; ++i) x = x + std::sqrt(double(i));
}

}  // namespace

TEST(Rapl, SumsPackageAndDramZonesIgnoringCore) {
  FakePowercap pc("normal");
  pc.zone("intel-rapl:0", "package-0", 1'000'000, 262'143'328'850);
  pc.zone("intel-rapl:0/intel-rapl:0:0", "core", 500, 262'143'328'850);
  pc.zone("intel-rapl:0/intel-rapl:0:1", "dram", 2'000'000, 65'712'999'613);
  Probe p = probe_rapl(pc.root.string());
  ASSERT_TRUE(p.meter) << p.why;
  EXPECT_EQ(p.meter->source(), "rapl");
  EXPECT_TRUE(p.meter->measured());
  p.meter->start();
  pc.set("intel-rapl:0", 1'000'000 + 3'500'000);             // +3.5 J package
  pc.set("intel-rapl:0/intel-rapl:0:0", 99'999'999);         // core is inside the package: not added
  pc.set("intel-rapl:0/intel-rapl:0:1", 2'000'000 + 250'000);  // +0.25 J dram
  EXPECT_NEAR(p.meter->stop({}).joules, 3.75, 1e-9);
}

TEST(Rapl, HandlesCounterWrapAround) {
  FakePowercap pc("wrap");
  pc.zone("intel-rapl:0", "package-0", 999'000'000, 1'000'000'000);
  Probe p = probe_rapl(pc.root.string());
  ASSERT_TRUE(p.meter) << p.why;
  p.meter->start();
  pc.set("intel-rapl:0", 500'000);  // wrapped: 1e9 - 999e6 + 0.5e6 uJ = 1.5 J
  EXPECT_NEAR(p.meter->stop({}).joules, 1.5, 1e-9);
}

TEST(Rapl, MissingOrUnreadableGivesReasonNotCrash) {
  Probe none = probe_rapl("/no/such/powercap");
  EXPECT_FALSE(none.meter);
  EXPECT_NE(none.why.find("no /no/such/powercap"), std::string::npos);

  FakePowercap empty("empty");
  Probe p0 = probe_rapl(empty.root.string());
  EXPECT_FALSE(p0.meter);
  EXPECT_NE(p0.why.find("no package/dram RAPL zones"), std::string::npos);

  // energy_uj that cannot be read (a directory stands in for a root-only file: tests may run as root).
  FakePowercap bad("unreadable");
  bad.zone("intel-rapl:0", "package-0", 1, 100);
  fs::remove(bad.root / "intel-rapl:0" / "energy_uj");
  fs::create_directory(bad.root / "intel-rapl:0" / "energy_uj");
  Probe p1 = probe_rapl(bad.root.string());
  EXPECT_FALSE(p1.meter);
  EXPECT_NE(p1.why.find("cannot read"), std::string::npos) << p1.why;

  FakePowercap amd("amd");  // AMD parts expose the same layout; the zone name decides
  amd.zone("intel-rapl:0", "package-0", 10, 1'000'000);
  EXPECT_TRUE(probe_rapl(amd.root.string()).meter);
}

TEST(Nvml, AbsentLibraryFallsBack) {
  Probe p = probe_nvml(0, "libjoule-no-such-nvml.so.1");
  EXPECT_FALSE(p.meter);
  EXPECT_NE(p.why.find("NVML not found"), std::string::npos);
  Settings s;
  s.gpu = true;
  s.powercap_root = "/no/such/powercap";
  Session session(s);
  ASSERT_EQ(session.meters().size(), 1u);  // without NVML (no driver here) or RAPL: the estimate only
  EXPECT_EQ(session.meters()[0]->source(), "estimate:time-power");
  EXPECT_FALSE(session.meters()[0]->measured());
  EXPECT_EQ(session.unavailable().size(), 2u);
}

TEST(TimePower, CpuTimeTimesWattsPlusDramBytes) {
  auto m = make_time_power_meter(4.0, 100e-12);
  EXPECT_EQ(m->source(), "estimate:time-power");
  EXPECT_FALSE(m->measured());
  // The meter's window lies between our outer clock readings and contains our inner ones, whatever else
  // the machine is doing.
  auto cpu_s = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
  };
  double outer0 = cpu_s();
  m->start();
  double inner0 = cpu_s();
  burn_cpu(0.05);
  double inner1 = cpu_s();
  Reading r = m->stop({1e9});
  double outer1 = cpu_s();
  double dram = 1e9 * 100e-12;  // 0.1 J
  EXPECT_GE(r.joules, (inner1 - inner0) * 4.0 + dram);
  EXPECT_LE(r.joules, (outer1 - outer0) * 4.0 + dram);
  EXPECT_GT(r.joules, dram);
}

TEST(OpModel, LinearLayerByHand) {
  // 4 tokens x K=8 -> N=16, fp32, with bias: 512 MACs; weights 8*16*4 + 16*4 = 576 B; activations
  // (4*8 + 4*16) * 4 = 384 B.
  OpCost lin{"fc", DType::F32, 512, 576, 384, 1.0};
  OpModelConstants c;
  OpEstimate e = estimate_dense({lin}, c);
  EXPECT_DOUBLE_EQ(e.mac_j, 512 * 4.6e-12);
  EXPECT_DOUBLE_EQ(e.dram_j, 576 * 160e-12);
  EXPECT_DOUBLE_EQ(e.sram_j, 384 * 1.25e-12);
  EXPECT_NEAR(e.total(), 2.3552e-9 + 92.16e-9 + 0.48e-9, 1e-15);
}

TEST(OpModel, ConvLayerByHand) {
  // conv2d 3->16 channels, 3x3, 16x16 output, batch 2: MACs = 2*16*16*16 * 27 = 221184;
  // weights 16*3*3*3*4 + 16*4 = 1792 B; activations (2*3*16*16 + 2*16*16*16) * 4 = 38912 B.
  OpCost conv{"conv1", DType::F32, 221184, 1792, 38912, 1.0};
  OpEstimate e = estimate_dense({conv}, OpModelConstants{});
  EXPECT_NEAR(e.total(), 221184 * 4.6e-12 + 1792 * 160e-12 + 38912 * 1.25e-12, 1e-18);
  OpCost int8 = conv;
  int8.dtype = DType::I8;
  EXPECT_NEAR(estimate_dense({int8}, OpModelConstants{}).mac_j, 221184 * 0.3e-12, 1e-18);
}

TEST(OpModel, HalfTheMacsAndAQuarterOfTheBytesCostsExactlyThatLess) {
  OpModelConstants c;
  std::vector<OpCost> big = {{"a", DType::F32, 4e6, 8e6, 1e5, 1}, {"b", DType::F32, 2e6, 4e6, 5e4, 1}};
  std::vector<OpCost> small = big;
  for (auto& op : small) op.macs /= 2, op.weight_bytes /= 4;
  OpEstimate eb = estimate_dense(big, c), es = estimate_dense(small, c);
  EXPECT_NEAR(eb.total() - es.total(), 0.5 * eb.mac_j + 0.75 * eb.dram_j, 1e-15);
  EXPECT_LT(es.total(), eb.total());
  // Sparsity on dense kernels changes nothing; ideal sparse kernels scale with density.
  std::vector<OpCost> pruned = big;
  for (auto& op : pruned) op.density = 0.5;
  EXPECT_DOUBLE_EQ(estimate_dense(pruned, c).total(), eb.total());
  EXPECT_LT(estimate_ideal_sparse(pruned, c).total(), eb.total());
}

TEST(OpModel, ConstantsOverrideAndReject) {
  auto c = OpModelConstants::from_json({{"f32_mac_pj", 1.0}, {"scale", 0.5}});
  EXPECT_DOUBLE_EQ(estimate_dense({{"x", DType::F32, 100, 0, 0, 1}}, c).total(), 100 * 1.0 * 0.5 * 1e-12);
  EXPECT_THROW(OpModelConstants::from_json({{"f33_mac_pj", 1.0}}), std::invalid_argument);
  EXPECT_THROW(OpModelConstants::from_json({{"scale", -1}}), std::invalid_argument);
}

TEST(Carbon, Co2eAndBreakEvenArithmetic) {
  // 3.6 J per inference = 1 kWh per million inferences.
  EXPECT_DOUBLE_EQ(co2e_g_per_million(3.6, 480), 480.0);
  EXPECT_DOUBLE_EQ(co2e_g(7.2e6, 100), 200.0);
  EXPECT_DOUBLE_EQ(*break_even_inferences(10.0, 0.004), 2500.0);
  EXPECT_FALSE(break_even_inferences(10.0, 0.0));
  EXPECT_FALSE(break_even_inferences(10.0, -0.1));
  EXPECT_EQ(world_average().region, "WORLD");
  EXPECT_EQ(grid_for_region("fr").region, "FR");
  EXPECT_LT(grid_for_region("FR").g_per_kwh, grid_for_region("PL").g_per_kwh);
  EXPECT_THROW(grid_for_region("ATLANTIS"), std::invalid_argument);
  // ISO 3166-1 alpha-3, as CodeCarbon's country_iso_code gives them, name the same rows.
  EXPECT_EQ(grid_for_region("FRA").region, "FR");
  EXPECT_EQ(grid_for_region("usa").g_per_kwh, grid_for_region("US").g_per_kwh);
  EXPECT_EQ(grid_for_region("DEU").region, "DE");
  EXPECT_THROW(grid_for_region("DEUX"), std::invalid_argument);
  EXPECT_THROW(grid_custom(-5), std::invalid_argument);
}

TEST(CpuProfile, KnownUnknownAndFamilyOnly) {
  fs::path f = fs::temp_directory_path() / ("joule_cpuinfo_" + std::to_string(getpid()));
  std::ofstream(f) << "processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n\nprocessor\t: 1\n"
                      "model name\t: AMD EPYC 7B13 64-Core Processor\n";
  CpuProfile p = detect_cpu_profile(f.string());
  EXPECT_EQ(p.cores, 2);
  EXPECT_DOUBLE_EQ(p.watts_per_core, 240.0 / 64);
  std::ofstream(f) << "processor\t: 0\nmodel name\t: Frobnicator 9000\n";
  p = detect_cpu_profile(f.string());
  EXPECT_DOUBLE_EQ(p.watts_per_core, 200.0 / 32);
  EXPECT_NE(p.source.find("unknown CPU"), std::string::npos);
  fs::remove(f);
}

TEST(Stats, MeanAndStudentT95) {
  Stats s = mean_ci95({1, 2, 3, 4, 5});
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_NEAR(s.ci95, 2.776 * std::sqrt(2.5) / std::sqrt(5.0), 1e-12);
  EXPECT_DOUBLE_EQ(mean_ci95({2, 2}).ci95, 0);
  EXPECT_DOUBLE_EQ(t975(9), 2.262);
}

TEST(ReportEnergy, KeysSourceLabelsAndSavings) {
  Report r;
  r.grid_g_per_kwh = 480;
  PassRecord p;
  p.name = "prune";
  p.before.energy = {{"estimate:time-power", false, 0.020, 0.001, 0.5, 8, 10, nullptr},
                     {"estimate:op-model", false, 0.004, 0, 1.0, 0, 0, nullptr}};
  p.after.energy = {{"estimate:time-power", false, 0.010, 0.001, 0.5, 8, 10, nullptr},
                    {"estimate:op-model", false, 0.002, 0, 1.0, 0, 0, nullptr}};
  p.pass_cost = {{"estimate:time-power", false, 5.0, 1.0, 0}};
  r.passes.push_back(p);
  auto e = r.to_json()["passes"][0]["energy"];
  for (const char* k : {"source", "j_per_inference_before", "j_per_inference_after", "saved_j_per_inference",
                        "pass_cost_j", "break_even_inferences", "grid_g_per_kwh", "co2e_g_per_million_before",
                        "co2e_g_per_million_after"})
    EXPECT_TRUE(e.contains(k)) << k;
  EXPECT_EQ(e["source"], "estimate:time-power");
  EXPECT_EQ(e["measured"], false);
  EXPECT_DOUBLE_EQ(e["saved_j_per_inference"].get<double>(), 0.010);
  EXPECT_DOUBLE_EQ(e["break_even_inferences"].get<double>(), 500.0);
  EXPECT_DOUBLE_EQ(e["co2e_g_per_million_before"].get<double>(), 0.020 * 1e6 / 3.6e6 * 480);
  EXPECT_EQ(e["sources"]["estimate:op-model"]["source"], "estimate:op-model");
  EXPECT_DOUBLE_EQ(e["sources"]["estimate:op-model"]["saved_percent"].get<double>(), 50.0);
  for (const auto& [src, blk] : e["sources"].items()) EXPECT_EQ(src.rfind("estimate:", 0), 0u) << src;
  EXPECT_EQ(e["saving_significant"], true);
  // A saving inside the 95% CI of the difference claims no break-even.
  r.passes[0].after.energy[0].j_per_inference = 0.0195;
  auto noisy = r.to_json()["passes"][0]["energy"];
  EXPECT_EQ(noisy["saving_significant"], false);
  EXPECT_TRUE(noisy["break_even_inferences"].is_null());
  EXPECT_NE(r.table().find("none (no saving beyond the 95% CI)"), std::string::npos);
  std::string svg = r.svg();
  EXPECT_NE(svg.find("estimate:time-power"), std::string::npos);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
}
