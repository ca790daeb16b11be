// Atomic, durable file replacement, the one way Joule writes outputs (archives, safetensors, JSON, SVG): a new
// temp file beside the target (O_CREAT | O_EXCL, so no two writers share one and a planted file or symlink is
// never written through), the content, fsync, rename over the target (keeping its mode), fsync of the folder. A
// reader sees the old file or the new one, never a torn one; on any failure, SIGINT or SIGTERM the temp file is
// removed, and temp files of killed (-9) runs are removed by the next write of the same target. LibTorch-free.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace joule::io {

// An output made ready beside its target and put in place by publish(); destroyed unpublished, it is removed.
// prepare() does everything that can fail for lack of space (fsync, close); publish() only renames.
class StagedOutput {
 public:
  virtual ~StagedOutput() = default;
  virtual void prepare() = 0;
  virtual void publish() = 0;
};

class AtomicFile : public StagedOutput {
 public:
  // `kind` names the target in one-line errors: "<kind> '<target>': cannot create a temp file beside it: ...".
  explicit AtomicFile(std::string target, std::string kind = "output");
  ~AtomicFile();  // removes the temp file unless publish() renamed it into place
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_; }
  // The temp file's path, for writers that open files by name (they must write to it in place, as
  // torch::jit::Module::save does); prepare() then makes those bytes durable through fd().
  const std::string& temp_path() const { return tmp_; }
  void write(const void* data, size_t n);
  void prepare() override;  // the target's mode, fsync, close: the bytes are durable in the temp file
  void publish() override;  // rename over the target, fsync of the folder (prepare() first if not yet done)
  void commit() { prepare(), publish(); }

 private:
  [[noreturn]] void bad(const std::string& what) const;
  std::string target_, kind_, tmp_;
  int fd_ = -1;
  bool prepared_ = false, committed_ = false;
  int slot_ = -1;  // in the SIGINT/SIGTERM handler's list of temp files to remove
};

// Outputs that appear together or not at all (a model with its --export-hf, --report, --plot): each is written
// to its temp file, and commit() renames them into place only once every one is written and fsynced. Destroyed
// before commit() (an error in any of them), it removes every temp file, so a failure leaves no output and no temp.
// Only a rename failing part way (same folder, temp already made: in practice never) leaves the earlier ones.
class OutputSet {
 public:
  AtomicFile& file(std::string target, std::string kind = "output");  // a new temp file beside `target`
  void add(std::unique_ptr<StagedOutput> out);
  void commit();

 private:
  std::vector<std::unique_ptr<StagedOutput>> outs_;
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
