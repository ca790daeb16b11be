// Data-parallel training across processes: torch.distributed's c10d (TCPStore rendezvous + ProcessGroupGloo on
// CPU), launched the torchrun way (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or by `joule distill --nproc N`.
// A world of one needs no store and no group: every collective is then the identity.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

namespace joule::train {

struct DistEnv {
  int rank = 0, world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // From RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (all absent: a world of one); bad values: one-line error.
  static DistEnv from_env();
};

class ProcessGroup {
 public:
  // world == 1: a group of one (no sockets). Otherwise the TCPStore (rank 0 serves it) and a Gloo group;
  // fails with one line when Joule was built without Gloo or the rendezvous times out (`timeout_s`).
  static std::unique_ptr<ProcessGroup> create(const DistEnv& env, double timeout_s = 120);
  virtual ~ProcessGroup() = default;
  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  // Sum over ranks, divided by the world size, in place (gradients after backward()).
  virtual void allreduce_mean(std::vector<at::Tensor>& tensors) = 0;
  // Rank `root`'s values everywhere, in place (initial weights).
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root = 0) = 0;
  virtual void barrier() = 0;
  // How long one collective may wait for the other ranks (default 30 min, as in PyTorch): `timeout_s` of create()
  // bounds the rendezvous only, since a barrier may legitimately wait while rank 0 works alone (the teacher pass).
  // A rank that dies fails the others at once (its sockets close); this bounds a rank that hangs.
  void set_collective_timeout(double seconds) { collective_timeout_s_ = seconds; }
  double collective_timeout() const { return collective_timeout_s_; }

 protected:
  explicit ProcessGroup(DistEnv env) : env_(std::move(env)) {}
  DistEnv env_;
  double collective_timeout_s_ = 1800;
};

// True when this build can run worlds larger than one.
bool distributed_available();

}  // namespace joule::train
