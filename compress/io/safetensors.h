// safetensors checkpoints (https://github.com/huggingface/safetensors), read by memory-mapping and written
// atomically, in plain C++17 with no LibTorch, so the tokenizer-side tools and tests link without it.
// Every failure throws joule::Error with one line that names the file and what is wrong.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace joule::st {

// The dtypes Joule reads and writes; files with other safetensors dtypes (F64, BOOL, F8_*, ...) are refused.
enum class DType { F32, F16, BF16, I8, U8, I32, I64 };
size_t dtype_size(DType d);
const char* dtype_name(DType d);  // the header spelling: "F32", "BF16", ...

// One tensor of an open File. `data` points into the mapping (read-only) and is valid while the File, or a
// copy of its mapping(), lives. Files from write() (and from the reference writers) keep every tensor aligned
// to its dtype size; a file from elsewhere may not, so check before reinterpreting `data` as T*.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // [] for a scalar; a 0 anywhere means an empty tensor (nbytes 0)
  const uint8_t* data;
  size_t nbytes;
};

// A safetensors file mapped with mmap(PROT_READ, MAP_PRIVATE), its header fully validated by open(): nothing
// in tensors() can point outside the file. Move-only. The file must not be truncated by someone else while
// mapped (reads of the lost pages would raise SIGBUS); write() replaces files by rename, which is safe.
class File {
 public:
  static File open(const std::string& path);

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::vector<TensorView>& tensors() const { return tensors_; }  // sorted by data offset, then name
  const TensorView* find(const std::string& name) const;               // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Keep-alive handle for zero-copy users (e.g. the deleter of at::from_blob): the pages stay mapped while
  // any copy lives, even after the File is destroyed.
  std::shared_ptr<const void> mapping() const { return mapping_; }
  const std::string& path() const { return path_; }

 private:
  File() = default;
  std::string path_;
  std::shared_ptr<const void> mapping_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: `data` holds nbytes contiguous bytes in the file's byte order (little-endian).
struct TensorData {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes `path` atomically: a temp file in the same folder, fsync, rename (the temp file is removed on any
// failure). Refuses duplicate or reserved names ("__metadata__"), negative dims and nbytes != numel * dtype
// size. Tensors are laid out by decreasing dtype size, in the given order within a size, and the header is
// padded with spaces to a multiple of 8 bytes, so every tensor is aligned to its dtype size in the file.
void write(const std::string& path, const std::vector<TensorData>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace joule::st
