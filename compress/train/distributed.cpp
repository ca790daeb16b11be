#include "compress/train/distributed.h"

#include <cstdlib>
#include <map>

#include "compress/base/error.h"

#ifdef JOULE_HAVE_GLOO
// Only this file sees JOULE_HAVE_GLOO (train/gloo.cmake), with USE_C10D_GLOO: ProcessGroupGloo.hpp is empty without it. The classes come
// from the wheel's libtorch_cpu.so (which links its own newer gloo statically); Debian's gloo headers serve only to
// declare the types that ProcessGroupGloo.hpp names. Nothing here constructs a gloo object or calls an inline gloo
// function, so their layouts, which may differ between the two gloo versions, never matter: see the note in
// docs/DISTRIBUTED.md.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cmath>
#endif

namespace joule::train {

namespace {
int env_int(const char* name, int dflt, int lo) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end || x < lo || x > 1 << 20) fail("{}='{}' is not an integer >= {}", name, v, lo);
  return int(x);
}

class SoloGroup : public ProcessGroup {
 public:
  explicit SoloGroup(DistEnv env) : ProcessGroup(std::move(env)) {}
  void allreduce_mean(std::vector<at::Tensor>&) override {}
  void broadcast(std::vector<at::Tensor>&, int) override {}
  void barrier() override {}
};

#ifdef JOULE_HAVE_GLOO
bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// Tensors of one dtype, moved by one collective: a lone contiguous tensor in place, several through one
// contiguous buffer.
struct Bucket {
  at::ScalarType type = at::kFloat;
  std::vector<size_t> members;  // indices into the caller's vector
  int64_t numel = 0;
  at::Tensor flat;
  bool packed = false;  // flat is a buffer to copy back from (else a view of the one tensor)
};

std::vector<Bucket> buckets_of(const std::vector<at::Tensor>& tensors, const char* what) {
  std::map<at::ScalarType, Bucket> by_type;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    if (!t.defined()) fail("{}: tensor {} is undefined", what, i);
    if (!t.device().is_cpu()) fail("{}: tensor {} is on {}; the Gloo group moves CPU tensors only", what, i, t.device().str());
    if (t.layout() != at::kStrided) fail("{}: tensor {} is not dense", what, i);
    Bucket& b = by_type[t.scalar_type()];
    b.type = t.scalar_type();
    b.members.push_back(i);
    b.numel += t.numel();
  }
  std::vector<Bucket> out;
  for (auto& [type, b] : by_type)
    if (b.numel > 0) out.push_back(std::move(b));
  return out;
}

class GlooGroup : public ProcessGroup {
 public:
  GlooGroup(DistEnv env, double timeout_s) : ProcessGroup(std::move(env)), timeout_s_(timeout_s) {
    auto timeout = std::chrono::milliseconds(int64_t(std::llround(timeout_s * 1000)));
    const std::string where = fmt::format("{}:{}", env_.master_addr, env_.master_port);
    try {
      c10d::TCPStoreOptions so;
      so.port = uint16_t(env_.master_port);
      so.isServer = env_.rank == 0;
      so.numWorkers = size_t(env_.world);
      so.waitWorkers = true;
      so.timeout = timeout;
      store_ = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
    } catch (const std::exception& e) {
      rendezvous_failed(where, e);
    }
    std::shared_ptr<gloo::transport::Device> device;
    try {
      // Bind to the interface that reaches MASTER_ADDR: loopback stays on loopback (a host name that resolves to
      // a LAN address would not be reachable inside some sandboxes); GLOO_SOCKET_IFNAME wins, as in PyTorch.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname)
        device = c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
      else if (is_loopback(env_.master_addr))
        device = c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
      else
        device = c10d::ProcessGroupGloo::createDefaultDevice();
    } catch (const std::exception& e) {
      fail("Gloo: no network device for rank {} (GLOO_SOCKET_IFNAME='{}'): {}", env_.rank,
           std::getenv("GLOO_SOCKET_IFNAME") ? std::getenv("GLOO_SOCKET_IFNAME") : "", first_line(e.what()));
    }
    try {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(std::move(device));
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env_.rank, env_.world, opts);
    } catch (const std::exception& e) {
      rendezvous_failed(where, e);
    }
  }

  ~GlooGroup() override {
    // The group first (its worker threads and sockets), then the store; never throw from here.
    try {
      pg_.reset();
      store_.reset();
    } catch (...) {
    }
  }

  void allreduce_mean(std::vector<at::Tensor>& tensors) override {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].defined() && !at::isFloatingType(tensors[i].scalar_type()))
        fail("all-reduce (mean): tensor {} is {}, not floating point", i, c10::toString(tensors[i].scalar_type()));
    at::NoGradGuard no_grad;
    for (auto& b : buckets_of(tensors, "all-reduce (mean)")) {
      pack(b, tensors);
      std::vector<at::Tensor> one{b.flat};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = collective_ms();
      run("all-reduce", [&] { return pg_->allreduce(one, o); });
      b.flat.div_(double(env_.world));
      unpack(b, tensors);
    }
  }

  void broadcast(std::vector<at::Tensor>& tensors, int root) override {
    if (root < 0 || root >= env_.world) fail("broadcast: root rank {} is not in a world of {}", root, env_.world);
    at::NoGradGuard no_grad;
    for (auto& b : buckets_of(tensors, "broadcast")) {
      pack(b, tensors, /*copy_in=*/env_.rank == root);
      std::vector<at::Tensor> one{b.flat};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.timeout = collective_ms();
      run("broadcast", [&] { return pg_->broadcast(one, o); });
      if (env_.rank != root) unpack(b, tensors);
    }
  }

  void barrier() override {
    c10d::BarrierOptions o;
    o.timeout = collective_ms();
    run("barrier", [&] { return pg_->barrier(o); });
  }

 private:
  [[noreturn]] void rendezvous_failed(const std::string& where, const std::exception& e) const {
    std::string msg = first_line(e.what());
    bool timed_out = msg.find("timed out") != std::string::npos || msg.find("Timeout") != std::string::npos ||
                     msg.find("timeout") != std::string::npos;
    if (timed_out)
      fail("rendezvous with {} timed out after {:g} s (rank {} of {}): {}", where, timeout_s_, env_.rank, env_.world, msg);
    fail("rendezvous with {} failed (rank {} of {}): {}", where, env_.rank, env_.world, msg);
  }

  std::chrono::milliseconds collective_ms() const {
    if (!(collective_timeout_s_ > 0)) fail("collective timeout {} s is not positive", collective_timeout_s_);
    return std::chrono::milliseconds(int64_t(std::llround(collective_timeout_s_ * 1000)));
  }

  template <typename F>
  void run(const char* what, F&& start) {
    try {
      auto work = start();
      work->wait();
    } catch (const std::exception& e) {
      fail("Gloo {} failed on rank {} of {} (collective timeout {:g} s): {}", what, env_.rank, env_.world,
           collective_timeout_s_, first_line(e.what()));
    }
  }

  // b.flat: the one tensor itself when it is alone and contiguous, else a slice of this group's buffer for the
  // dtype (kept between calls: gradients come back every step, and a fresh buffer of that size costs page faults
  // on every call) holding the members back to back (copied in when `copy_in`).
  void pack(Bucket& b, const std::vector<at::Tensor>& tensors, bool copy_in = true) {
    if (b.members.size() == 1 && tensors[b.members[0]].is_contiguous()) {
      b.flat = tensors[b.members[0]].view({-1});
      b.packed = false;
      return;
    }
    at::Tensor& buf = buffers_[b.type];
    if (!buf.defined() || buf.numel() < b.numel) buf = at::empty({b.numel}, at::TensorOptions().dtype(b.type));
    b.flat = buf.narrow(0, 0, b.numel);
    b.packed = true;
    if (!copy_in) return;
    int64_t off = 0;
    for (size_t i : b.members) {
      const at::Tensor& t = tensors[i];
      b.flat.narrow(0, off, t.numel()).view(t.sizes()).copy_(t);
      off += t.numel();
    }
  }

  static void unpack(const Bucket& b, std::vector<at::Tensor>& tensors) {
    if (!b.packed) return;
    int64_t off = 0;
    for (size_t i : b.members) {
      at::Tensor& t = tensors[i];
      t.copy_(b.flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }

  double timeout_s_;
  std::map<at::ScalarType, at::Tensor> buffers_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};
#endif
}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.world = env_int("WORLD_SIZE", 1, 1);
  e.rank = env_int("RANK", 0, 0);
  if (e.rank >= e.world) fail("RANK={} is not below WORLD_SIZE={}", e.rank, e.world);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500, 1);
  if (e.master_port > 65535) fail("MASTER_PORT={} is not a TCP port", e.master_port);
  return e;
}

#ifdef JOULE_HAVE_GLOO
bool distributed_available() { return true; }
#else
bool distributed_available() { return false; }
#endif

std::unique_ptr<ProcessGroup> ProcessGroup::create(const DistEnv& env, double timeout_s) {
  if (env.world < 1 || env.rank < 0 || env.rank >= env.world)
    fail("rank {} is not in a world of {}", env.rank, env.world);
  if (env.world == 1) return std::make_unique<SoloGroup>(env);
  if (env.master_port < 1 || env.master_port > 65535) fail("master port {} is not a TCP port", env.master_port);
  if (!(timeout_s > 0)) fail("distributed timeout {} s is not positive", timeout_s);
#ifdef JOULE_HAVE_GLOO
  return std::make_unique<GlooGroup>(env, timeout_s);
#else
  fail("WORLD_SIZE={}: this build of Joule has no Gloo (install libgloo-dev and rebuild)", env.world);
#endif
}

}  // namespace joule::train
