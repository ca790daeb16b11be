// The joule CLI: the subcommands (tools/cmd_*.cpp, one per file; one per pass from the registry), the global
// --threads flag, and the one place that turns errors into "joule: error: ..." lines with a non-zero exit.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sched.h>
#include <torch/version.h>

#include <csignal>

#include "compress/base/allocator.h"
#include "compress/base/error.h"
#include "compress/io/model_io.h"
#include "compress/ir/lower.h"
#include "kernels/cpu/isa.h"
#include "tools/cli.h"

int main(int argc, char** argv) {
  using namespace joule;
  keep_freed_memory();  // freed activations are reused, not refaulted, by the next forward (compress/base/allocator.h)
  // Over a file-size limit (ulimit -f) a write fails with EFBIG instead of killing the process: the save reports it
  // in one line and removes its temp file, as for a full disk.
  ::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"joule: compress PyTorch models (TorchScript) and report size, speed, fidelity and energy per pass"};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("joule: error: {} (see --help)\n", e.what());
  });
  app.require_subcommand(1);
  const auto& cpu = kernels::isa::cpu_features();
  app.set_version_flag("--version", fmt::format("joule {} (LibTorch {}; CPU kernels: {})", JOULE_VERSION, TORCH_VERSION,
                                                cpu.avx512_vnni() ? "avx512-vnni" : cpu.avx2_fma() ? "avx2" : "scalar"));
  int threads = 0;
  app.add_option("--threads", threads, "intra-op threads for measurement (default: all cores)");
  bool trust = false;
  app.add_flag("--trust-model", trust,
               "load TorchScript archives whose code calls ops that can reach files or other libraries "
               "(refused by default: such code runs at load; docs/SECURITY.md)");
  bool bf16 = false;
  app.add_flag("--bf16", bf16,
               "run float linears in bfloat16 where Joule executes a model (measurement, energy, eval, embed; CPUs with "
               "AVX512_BF16 or AMX): faster, slightly less exact; saved weights stay float32 (compress/ir/lower.h)");
  bool w4a8 = false;
  app.add_flag("--w4a8", w4a8,
               "run W4 layers with int8 activations where Joule executes a model (each row of x rounded to 8 bits at "
               "run time, integer products on AVX2 or AVX-512 VNNI): faster, slightly less exact; the saved model is "
               "unchanged (compress/ir/lower.h)");
  app.fallthrough();  // global flags (--threads) are accepted after the subcommand too: joule quantize --threads 2 ...

  std::vector<cli::Command> commands = {cli::add_inspect(app)};
  for (auto& c : cli::add_pass_commands(app)) commands.push_back(std::move(c));
  for (auto add : {cli::add_run, cli::add_energy, cli::add_embed, cli::add_eval, cli::add_make_model})
    commands.push_back(add(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The executor keeps LibTorch's defaults (profiling executor, TensorExpr fuser on), so what Joule measures is
  // what a user loading the .pt gets; docs/EXECUTOR.md and tests/test_executor.cpp.
  try {
    if (threads < 0) fail("--threads must be positive");
    cpu_set_t cpus;
    const int cores = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1 << 16;
    // More threads than cores only makes OpenMP's barriers spin against each other (docs/EXECUTOR.md).
    if (threads > cores) fail("--threads {}: this process may run on {} core{}", threads, cores, cores == 1 ? "" : "s");
    if (threads > 0) at::set_num_threads(threads);
    set_trust_models(trust);
    if (bf16 && !cpu_has_bf16())
      fail("--bf16: this CPU has neither AVX512_BF16 nor AMX-BF16 (bfloat16 would be emulated, slower than float32)");
    if (bf16) set_float_compute(FloatCompute::Bf16);
    if (w4a8 && !cpu_has_w4a8()) fail("--w4a8: this CPU has no AVX2 (the int8 W4 kernels' instructions)");
    if (w4a8) set_w4_activations(W4Activations::Int8);
    for (const auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const joule::Error& e) {
    // Messages echo names read from files (tensors, keys, records): escaped once more here, whatever built them.
    fmt::print(stderr, "joule: error: {}\n", printable(e.what(), 2000));
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "joule: error: {}\n", printable(first_line(e.what_without_backtrace()), 2000));
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "joule: error: {}\n", printable(first_line(e.what()), 2000));
    return 1;
  }
  return 0;
}
