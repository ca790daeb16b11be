// Atomic, durable file replacement, the one way Joule writes outputs (archives, safetensors, JSON, SVG): a new
// temp file beside the target (O_CREAT | O_EXCL, so no two writers share one and a planted file or symlink is
// never written through), the content, fsync, rename over the target, fsync of the folder. A reader sees the
// old file or the new one, never a torn one; on any failure the temp file is removed. LibTorch-free.
#pragma once
#include <cstddef>
#include <string>

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
};

// The whole of `content` into `path`, atomically and durably.
void write_file_atomic(const std::string& path, const std::string& content, const std::string& kind = "output");

}  // namespace joule::io
