// Data-parallel process groups (compress/train/distributed.h): the torchrun environment, the world of one, and a
// real world of two on loopback. The two ranks are this test binary started again (posix_spawn + exec, never a
// bare fork of a process whose LibTorch thread pools may already run) with --gtest_filter naming the disabled
// worker test and JOULE_DIST_WORKER_* telling it its rank, port and result file. Each worker writes what its
// collectives returned; the parent checks every value against sums worked out by hand.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <utility>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "compress/base/error.h"
#include "compress/train/distributed.h"

extern char** environ;

namespace joule_dist_test {

namespace fs = std::filesystem;
using joule::train::DistEnv;
using joule::train::ProcessGroup;

// Sets (value, or unsets: nullptr) the torchrun variables for one scope and restores them after.
class TorchrunEnv {
 public:
  TorchrunEnv(const char* rank, const char* world, const char* addr, const char* port) {
    set("RANK", rank);
    set("WORLD_SIZE", world);
    set("MASTER_ADDR", addr);
    set("MASTER_PORT", port);
  }
  TorchrunEnv(const TorchrunEnv&) = delete;
  TorchrunEnv& operator=(const TorchrunEnv&) = delete;
  ~TorchrunEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        unsetenv(it->first.c_str());
    }
  }

 private:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const joule::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A TCP port that was free a moment ago: bind port 0 on loopback and read back what the kernel chose.
int free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (s >= 0) close(s);
    return -1;
  }
  int port = ntohs(a.sin_port);
  close(s);
  return port;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_values(std::ostream& o, const std::string& name, const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous().reshape({-1});
  o << name;
  for (int64_t i = 0; i < c.numel(); ++i) o << ' ' << c[i].item<double>();
  o << '\n';
}

struct Spawned {
  pid_t pid = -1;
  fs::path log;
};

// This binary again, running only the worker test, as rank `rank` of 2.
Spawned spawn_worker(int rank, int port, const fs::path& dir, const std::string& mode) {
  Spawned s;
  s.log = dir / ("rank" + std::to_string(rank) + ".log");
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("JOULE_DIST_WORKER_", 0) == 0 || kv.rfind("GTEST_", 0) == 0) continue;
    env_s.push_back(kv);
  }
  env_s.push_back("JOULE_DIST_WORKER_RANK=" + std::to_string(rank));
  env_s.push_back("JOULE_DIST_WORKER_PORT=" + std::to_string(port));
  env_s.push_back("JOULE_DIST_WORKER_OUT=" + (dir / ("rank" + std::to_string(rank) + ".txt")).string());
  env_s.push_back("JOULE_DIST_WORKER_MODE=" + mode);
  std::vector<char*> envp;
  for (auto& kv : env_s) envp.push_back(kv.data());
  envp.push_back(nullptr);

  std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args_s{exe, "--gtest_filter=DistributedWorker.DISABLED_Rank", "--gtest_also_run_disabled_tests"};
  std::vector<char*> argv;
  for (auto& a : args_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, s.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  if (posix_spawn(&s.pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data()) != 0) s.pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return s;
}

// Waits up to `limit` for the worker, then kills it: a hung rendezvous must not hang the test run.
int wait_worker(pid_t pid, std::chrono::seconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return 124;
    }
    usleep(20 * 1000);
  }
}

fs::path scratch_dir() {
  auto d = fs::temp_directory_path() / ("joule_dist_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

void remove_scratch(const fs::path& d) {
  std::error_code ec;  // remove(), not remove_all() (see tests/test_util.h)
  for (const auto& e : fs::directory_iterator(d, ec)) fs::remove(e.path(), ec);
  fs::remove(d, ec);
}

// Runs the world of two and returns each rank's result file.
// `mode`: what the workers do (see DistributedWorker.DISABLED_Rank); `codes`: the exit status each rank should have.
std::vector<std::string> run_world_of_two(const std::string& mode, std::array<int, 2> codes = {0, 0}) {
  int port = free_port();
  EXPECT_GT(port, 0);
  auto dir = scratch_dir();
  std::vector<Spawned> ws{spawn_worker(0, port, dir, mode), spawn_worker(1, port, dir, mode)};
  std::vector<std::string> out;
  for (int r = 0; r < 2; ++r) {
    EXPECT_GT(ws[r].pid, 0) << "posix_spawn failed for rank " << r;
    int code = ws[r].pid > 0 ? wait_worker(ws[r].pid, std::chrono::seconds(120)) : -1;
    EXPECT_EQ(code, codes[r]) << "rank " << r << " exited with " << code << "; its output:\n" << slurp(ws[r].log);
    out.push_back(slurp(dir / ("rank" + std::to_string(r) + ".txt")));
  }
  remove_scratch(dir);
  return out;
}


TEST(DistributedEnv, AbsentVariablesMeanAWorldOfOne) {
  TorchrunEnv g(nullptr, nullptr, nullptr, nullptr);
  DistEnv e = DistEnv::from_env();
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistributedEnv, ReadsTorchrunVariables) {
  TorchrunEnv g("3", "4", "10.1.2.3", "29999");
  DistEnv e = DistEnv::from_env();
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world, 4);
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 29999);
}

TEST(DistributedEnv, BadValuesAreOneLineErrors) {
  {
    TorchrunEnv g("2", "2", nullptr, nullptr);
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "RANK=2 is not below WORLD_SIZE=2");
  }
  {
    TorchrunEnv g("5", nullptr, nullptr, nullptr);  // WORLD_SIZE absent: a world of one
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "RANK=5 is not below WORLD_SIZE=1");
  }
  {
    TorchrunEnv g("0", "2", nullptr, "70000");
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "MASTER_PORT=70000 is not a TCP port");
  }
  {
    TorchrunEnv g("0", "2", nullptr, "http");
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "MASTER_PORT='http' is not an integer >= 1");
  }
  {
    TorchrunEnv g("0", "2", nullptr, "0");
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "MASTER_PORT='0' is not an integer >= 1");
  }
  {
    TorchrunEnv g("-1", "2", nullptr, nullptr);
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "RANK='-1' is not an integer >= 0");
  }
  {
    TorchrunEnv g("0", "0", nullptr, nullptr);
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "WORLD_SIZE='0' is not an integer >= 1");
  }
  {
    TorchrunEnv g("0", "2x", nullptr, nullptr);
    EXPECT_EQ(error_of([] { DistEnv::from_env(); }), "WORLD_SIZE='2x' is not an integer >= 1");
  }
}

TEST(Distributed, WorldOfOneIsTheIdentity) {
  auto pg = ProcessGroup::create(DistEnv{});
  EXPECT_EQ(pg->rank(), 0);
  EXPECT_EQ(pg->world(), 1);
  std::vector<at::Tensor> ts{at::arange(6, at::kFloat).reshape({2, 3})};
  pg->allreduce_mean(ts);
  pg->broadcast(ts, 0);
  pg->barrier();
  EXPECT_TRUE(at::equal(ts[0], at::arange(6, at::kFloat).reshape({2, 3})));
}

TEST(Distributed, WithoutGlooAWorldOfTwoIsRefused) {
  if (joule::train::distributed_available()) GTEST_SKIP() << "this build has Gloo";
  DistEnv e;
  e.world = 2;
  EXPECT_EQ(error_of([&] { ProcessGroup::create(e); }),
            "WORLD_SIZE=2: this build of Joule has no Gloo (install libgloo-dev and rebuild)");
}

TEST(Distributed, RendezvousTimeoutIsOneLine) {
  if (!joule::train::distributed_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
  int port = free_port();
  ASSERT_GT(port, 0);
  DistEnv e;
  e.rank = 1;  // a client: nobody serves the store on this port
  e.world = 2;
  e.master_port = port;
  auto t0 = std::chrono::steady_clock::now();
  std::string err = error_of([&] { ProcessGroup::create(e, 1.5); });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  std::string head = "rendezvous with 127.0.0.1:" + std::to_string(port) + " timed out after 1.5 s (rank 1 of 2)";
  EXPECT_EQ(err.rfind(head, 0), 0u) << err;
  EXPECT_LT(s, 30.0);
}

TEST(Distributed, TwoRanksAllReduceAndBroadcastOnLoopback) {
  if (!joule::train::distributed_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
  auto out = run_world_of_two("collectives");
  ASSERT_EQ(out.size(), 2u);
  // Rank r holds a = [1,2,3,4] * (r+1) as 2x2, b = [10+r, -r] (float), c = (r ? 7 : 3) (double, 0-d),
  // d = the transpose of a 2x3 arange * (1 + 2r) (a non-contiguous view).
  // h = the transpose of a 2x2 arange + 2r (bfloat16).
  // Means over the two ranks: a = [1.5,3,4.5,6]; b = [10.5,-0.5]; c = 5; d = transpose(arange(6)) * 2;
  // h = transpose(arange(4)) + 1.
  // Broadcast from 0: e = rank 0's [100, 200, 300]; broadcast from 1: f = rank 1's [-1, -2] (int64).
  const std::string expect =
      "a 1.5 3 4.5 6\n"
      "b 10.5 -0.5\n"
      "c 5\n"
      "d 0 6 2 8 4 10\n"
      "h 1 3 2 4\n"
      "e 100 200 300\n"
      "f -1 -2\n"
      "big_ok 1\n"
      "ints all-reduce (mean): tensor 0 is Int, not floating point\n";
  for (int r = 0; r < 2; ++r) EXPECT_EQ(out[r], "rank " + std::to_string(r) + "\n" + expect) << "rank " << r;
}

// Not a test of its own: one rank of the worlds above (run only by the spawned copies of this binary).
// JOULE_DIST_WORKER_MODE: "collectives" (known all-reduces and broadcasts), "die" (rank 1 exits right after the
// rendezvous), "timeouts" (a late rank within and beyond the collective timeout), or a number N (time the
// all-reduce of N floats).
TEST(DistributedWorker, DISABLED_Rank) {
  const char* rank_s = std::getenv("JOULE_DIST_WORKER_RANK");
  if (!rank_s) GTEST_SKIP() << "only run by the Distributed tests";
  const std::string mode = std::getenv("JOULE_DIST_WORKER_MODE");
  DistEnv e;
  e.rank = std::atoi(rank_s);
  e.world = 2;
  e.master_port = std::atoi(std::getenv("JOULE_DIST_WORKER_PORT"));
  const int r = e.rank;
  at::set_num_threads(1);  // the cores shared among the ranks, as `joule ... --nproc 2` does on two cores
  std::ofstream o(std::getenv("JOULE_DIST_WORKER_OUT"));
  o << "rank " << r << "\n";
  auto pg = ProcessGroup::create(e, mode == "timeouts" ? 5.0 : 60.0);
  ASSERT_EQ(pg->rank(), r);
  ASSERT_EQ(pg->world(), 2);

  if (mode == "die") {
    if (r == 1) std::_Exit(3);
    std::vector<at::Tensor> g{at::ones({1000})};
    o << "error " << error_of([&] { pg->allreduce_mean(g); }) << "\n";
    return;
  }
  if (mode == "timeouts") {
    // The rendezvous timeout (5 s) does not bound a collective: rank 1 comes 6 s late, within the 30 min default.
    if (r == 1) sleep(6);
    pg->barrier();
    o << "late by 6 s: ok\n";
    // Beyond a collective timeout of 1 s.
    pg->set_collective_timeout(1.0);
    if (r == 1) sleep(2);
    std::string err = error_of([&] { pg->barrier(); });
    if (r == 0) o << "late by 2 s: " << err << "\n";
    return;
  }
  if (mode != "collectives") {
    // Timing only: all-reduces of `mode` floats, after a warm-up of the same size.
    int64_t n = std::atoll(mode.c_str());
    std::vector<at::Tensor> g{at::full({n}, float(r + 1))};
    pg->allreduce_mean(g);
    pg->barrier();
    const int reps = 5;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) pg->allreduce_mean(g);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    // The same floats as 200 parameter-like tensors (packed into one buffer), and the local packing alone.
    std::vector<at::Tensor> parts = at::full({n}, float(r + 1)).chunk(200);
    pg->allreduce_mean(parts);
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) pg->allreduce_mean(parts);
    double s200 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / reps;
    auto flat = at::zeros({n});  // what allreduce_mean does around the collective (pages touched once already)
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      int64_t off = 0;
      for (auto& p : parts) flat.narrow(0, off, p.numel()).copy_(p), off += p.numel();
      flat.div_(2.0);
      off = 0;
      for (auto& p : parts) p.copy_(flat.narrow(0, off, p.numel())), off += p.numel();
    }
    double spack = std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count() / reps;
    o << "allreduce_mean " << n << " floats: one tensor " << s * 1000 << " ms, 200 tensors " << s200 * 1000
      << " ms (of which packing " << spack * 1000 << " ms)\n";
    return;
  }

  auto da = at::arange(1, 5, at::kFloat).reshape({2, 2}) * float(r + 1);
  auto db = at::tensor({10.0f + r, -float(r)});
  auto dc = at::scalar_tensor(r ? 7.0 : 3.0, at::kDouble);
  auto d_base = at::arange(6, at::kFloat).reshape({2, 3}) * float(1 + 2 * r);
  auto dd = d_base.t();
  auto dh = (at::arange(4, at::kBFloat16).reshape({2, 2}) + 2 * r).t();  // alone in its dtype, not contiguous
  std::vector<at::Tensor> grads{da, db, dc, dd, dh};
  pg->allreduce_mean(grads);
  ASSERT_FALSE(dd.is_contiguous());
  ASSERT_TRUE(dd.is_same(grads[3]));  // in place, views included
  write_values(o, "a", da);
  write_values(o, "b", db);
  write_values(o, "c", dc);
  write_values(o, "d", dd);
  write_values(o, "h", dh);

  std::vector<at::Tensor> w{at::tensor({100.0f, 200.0f, 300.0f}) * float(r + 1)};
  pg->broadcast(w, 0);
  write_values(o, "e", w[0]);
  std::vector<at::Tensor> f{at::tensor({-1 - 5 * (1 - r), -2 - 5 * (1 - r)}, at::kLong)};
  pg->broadcast(f, 1);
  write_values(o, "f", f[0]);
  pg->barrier();

  // A buffer larger than Gloo's chunks: 3 M floats, rank r holds r * 2 + i % 7, mean r-free: 1 + i % 7.
  int64_t n = 3 << 20;
  auto big = at::remainder(at::arange(n, at::kFloat), 7.0) + float(2 * r);
  std::vector<at::Tensor> bg{big};
  pg->allreduce_mean(bg);
  auto want = at::remainder(at::arange(n, at::kFloat), 7.0) + 1.0f;
  o << "big_ok " << int(at::equal(big, want)) << "\n";
  std::vector<at::Tensor> none;
  pg->allreduce_mean(none);  // nothing to do, on every rank alike
  std::vector<at::Tensor> ints{at::ones({2}, at::kInt)};
  o << "ints " << error_of([&] { pg->allreduce_mean(ints); }) << "\n";
  pg->barrier();
}

TEST(Distributed, APeerThatDiesFailsTheOthersWithOneLineNotAHang) {
  if (!joule::train::distributed_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_world_of_two("die", {0, 3});
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(out.size(), 2u);
  const std::string head = "rank 0\nerror Gloo all-reduce failed on rank 0 of 2 (collective timeout 1800 s): ";
  EXPECT_EQ(out[0].rfind(head, 0), 0u) << out[0];
  EXPECT_EQ(std::count(out[0].begin(), out[0].end(), '\n'), 2) << out[0];
  EXPECT_LT(s, 60.0);  // not the collective timeout
  std::printf("%s", out[0].c_str());
}

TEST(Distributed, CollectivesWaitTheirOwnTimeoutNotTheRendezvous) {
  if (!joule::train::distributed_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
  auto out = run_world_of_two("timeouts");
  ASSERT_EQ(out.size(), 2u);
  const std::string head = "rank 0\nlate by 6 s: ok\nlate by 2 s: Gloo barrier failed on rank 0 of 2 (collective timeout 1 s): ";
  EXPECT_EQ(out[0].rfind(head, 0), 0u) << out[0];
  EXPECT_EQ(out[1], "rank 1\nlate by 6 s: ok\n");
  std::printf("%s", out[0].c_str());
}

TEST(Distributed, AllReduceTimingOnLoopback) {
  const char* n = std::getenv("JOULE_DIST_BENCH_FLOATS");
  if (!n) GTEST_SKIP() << "set JOULE_DIST_BENCH_FLOATS=23000000 to time one all-reduce of that many floats";
  if (!joule::train::distributed_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
  auto out = run_world_of_two(n);  // a number: the workers time all-reduces of that many floats
  for (auto& s : out) std::printf("%s", s.c_str());
}

}  // namespace joule_dist_test
