// Atomic, durable file replacement, the one way Joule writes outputs (archives, safetensors, JSON, SVG): a new
// temp file beside the target (O_CREAT | O_EXCL, so no two writers share one and a planted file or symlink is
// never written through), the content, fsync, rename over the target (keeping its mode), fsync of the folder. A
// reader sees the old file or the new one, never a torn one; on any failure, SIGINT or SIGTERM the temp file is
// removed, and temp files of killed (-9) runs are removed by the next write of the same target. LibTorch-free.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace joule::io {

class AtomicFile {
 public:
  // `kind` names the target in one-line errors: "<kind> '<target>': cannot create a temp file beside it: ...".
  explicit AtomicFile(std::string target, std::string kind = "output");
  ~AtomicFile();  // removes the temp file unless commit() renamed it into place
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_; }
  // The temp file's path, for writers that open files by name (they must write to it in place, as
  // torch::jit::Module::save does); commit() then makes those bytes durable through fd().
  const std::string& temp_path() const { return tmp_; }
  void write(const void* data, size_t n);
  void commit();

 private:
  [[noreturn]] void bad(const std::string& what) const;
  std::string target_, kind_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  int slot_ = -1;  // in the SIGINT/SIGTERM handler's list of temp files to remove
};

// A path a command reads or writes, with what it is for the error message ("model", "--report").
struct NamedPath {
  std::string what, path;
};

// Fails (one line) before anything is written when an output could touch an input or another output: an output
// that is, contains or lies inside an input (through symlinks and hard links), two outputs that are one path or
// one inside the other, or an existing output that is not a regular file (`folder_outputs`: not a folder), such as
// a FIFO or a device that a rename would replace or a write would go through.
void check_outputs(const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs,
                   const std::vector<std::string>& folder_outputs = {});

// The whole of `content` into `path`, atomically and durably.
void write_file_atomic(const std::string& path, const std::string& content, const std::string& kind = "output");

}  // namespace joule::io
