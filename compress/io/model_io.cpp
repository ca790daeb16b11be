#include "compress/io/model_io.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <streambuf>
#include <unistd.h>

#include "compress/base/error.h"
#include "compress/io/archive_check.h"
#include "compress/io/atomic_file.h"
#include "compress/io/json_field.h"

namespace joule {
namespace fs = std::filesystem;

static const char* kWorkloadFile = "joule/workload.json";
static const char* kProvenanceFile = "joule/provenance.json";

const std::vector<std::string>& carried_extra_files() {
  static const std::vector<std::string> files = {"joule/vocab.txt", "joule/text.json"};
  return files;
}

static bool g_trust_models = false;
void set_trust_models(bool trust) { g_trust_models = trust; }
bool trust_models() { return g_trust_models; }

// The archive's zip structure and code, before LibTorch reads any of it (docs/SECURITY.md).
static void check_archive_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("model '{}': no such file", path);
  if (!fs::is_regular_file(path, ec)) fail("model '{}': not a regular file", path);
  auto found = io::check_archive(path);
  if (found.empty() || g_trust_models) return;
  const auto& f = found.front();
  fail("model '{}': its code calls {} in {}() ({}){}; an archive's code runs when it loads, so Joule refuses "
       "ops that can reach files or other libraries: pass --trust-model if you trust where it came from, or "
       "give the weights as safetensors / an HF folder", path, printable(f.op), f.method.empty() ? "<class>" : printable(f.method),
       printable(f.record), found.size() > 1 ? fmt::format(" and {} more such call{}", found.size() - 1, found.size() > 2 ? "s" : "") : "");
}

// A tensor whose sizes and strides reach past its storage (a zip record shorter than the pickle says) would be
// read out of bounds by the first op that touches it.
static void check_tensor_extents(const torch::jit::Module& m, const std::string& path) {
  for (const auto& a : m.named_attributes(true)) {
    if (!a.value.isTensor()) continue;
    const at::Tensor& t = a.value.toTensor();
    if (!t.defined() || !t.has_storage() || t.numel() == 0) continue;
    int64_t extent = t.storage_offset();
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (t.stride(d) < 0) fail("model '{}': tensor '{}' has a negative stride", path, printable(a.name));
      extent += (t.size(d) - 1) * t.stride(d);
    }
    const uint64_t need = uint64_t(extent + 1) * t.element_size();
    if (need > t.storage().nbytes())
      fail("model '{}': tensor '{}' needs {} bytes but its record holds {} (truncated or altered archive)", path,
           printable(a.name), need, t.storage().nbytes());
  }
}

static nlohmann::json parse_extra(const std::string& path, const std::string& name, const std::string& text) {
  if (text.empty()) return nullptr;
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("model '{}': corrupt {} ({})", path, name, first_line(e.what()));
  }
}

LoadedModel load_model(const std::string& path) {
  check_archive_file(path);
  torch::jit::ExtraFilesMap extra{{kWorkloadFile, ""}, {kProvenanceFile, ""}};
  for (const auto& f : carried_extra_files()) extra[f] = "";
  LoadedModel lm;
  try {
    lm.module = torch::jit::load(path, c10::Device(c10::kCPU), extra);
  } catch (const c10::Error& e) {
    fail("model '{}': cannot load TorchScript archive: {}", path, first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail("model '{}': cannot load TorchScript archive: {}", path, first_line(e.what()));
  }
  check_tensor_extents(lm.module, path);
  lm.module.eval();
  lm.workload = parse_extra(path, kWorkloadFile, extra[kWorkloadFile]);
  lm.provenance = parse_extra(path, kProvenanceFile, extra[kProvenanceFile]);
  // Each save appends to its passes: anything but {"passes": [...]} would throw at the end of a run.
  if (!lm.provenance.is_null() && (!lm.provenance.is_object() || !lm.provenance.contains("passes") ||
                                   !lm.provenance["passes"].is_array()))
    fail("'{}:{}': key 'passes': expected a list, found {}", path, kProvenanceFile,
         lm.provenance.is_object() && lm.provenance.contains("passes") ? io::json_kind(lm.provenance["passes"])
                                                                      : std::string("none"));
  for (const auto& f : carried_extra_files())
    if (!extra[f].empty()) lm.extra[f] = extra[f];
  return lm;
}

void check_output_path(const std::string& out, const std::string& input_path) {
  std::error_code ec;
  if (out.empty()) fail("no output path given (-o OUT)");
  if (!input_path.empty() && fs::exists(out, ec) && fs::equivalent(out, input_path, ec))
    fail("output '{}' is the input model; Joule never overwrites its input", out);
  fs::path dir = fs::path(out).parent_path();
  if (!dir.empty() && !fs::is_directory(dir, ec)) fail("output '{}': folder '{}' does not exist", out, dir.string());
  if (fs::is_directory(out, ec)) fail("output '{}' is a folder; give a file name", out);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  check_output_path(path, "");
  io::write_file_atomic(path, content);
}

namespace {

// Writes through to a file descriptor and never reports a failed write to the writer: LibTorch's archive writer
// finishes the zip in its destructor, so an error it saw there (disk full) would throw from a destructor and
// std::terminate. The first error is kept and reported once the writer is done.
class FdStreamBuf : public std::streambuf {
 public:
  explicit FdStreamBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  int error() const { return err_; }

 protected:
  int_type overflow(int_type c) override {
    flush();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override {
    flush();
    return 0;
  }

 private:
  void flush() {
    const char* p = pbase();
    size_t n = size_t(pptr() - pbase());
    while (n > 0 && err_ == 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        err_ = w < 0 ? errno : EIO;
        break;
      }
      p += w, n -= size_t(w);
    }
    setp(buf_, buf_ + sizeof buf_);
  }
  int fd_, err_ = 0;
  char buf_[1 << 16];
};

}  // namespace

void save_model(io::OutputSet& outs, const torch::jit::Module& module, const std::string& out,
                const std::string& input_path, const nlohmann::json& workload, const nlohmann::json& provenance,
                const std::map<std::string, std::string>& carried) {
  check_output_path(out, input_path);
  torch::jit::ExtraFilesMap extra(carried.begin(), carried.end());
  if (!workload.is_null()) extra[kWorkloadFile] = workload.dump();
  if (!provenance.is_null()) extra[kProvenanceFile] = provenance.dump(2);
  io::AtomicFile& tmp = outs.file(out);
  FdStreamBuf buf(tmp.fd());
  std::ostream os(&buf);
  try {
    module.save(os, extra);
  } catch (const c10::Error& e) {
    fail("output '{}': cannot write: {}", out, first_line(e.what_without_backtrace()));
  }
  buf.pubsync();
  if (buf.error() != 0) fail("output '{}': cannot write: {}", out, std::strerror(buf.error()));
}

void save_model(const torch::jit::Module& module, const std::string& out, const std::string& input_path,
                const nlohmann::json& workload, const nlohmann::json& provenance,
                const std::map<std::string, std::string>& carried) {
  io::OutputSet outs;
  save_model(outs, module, out, input_path, workload, provenance, carried);
  outs.commit();
}

int64_t archive_bytes(const torch::jit::Module& module) {
  std::ostringstream os;
  module.save(os);
  return static_cast<int64_t>(os.tellp());
}

}  // namespace joule
