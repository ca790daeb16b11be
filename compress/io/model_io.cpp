#include "compress/io/model_io.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compress/base/error.h"
#include "compress/io/atomic_file.h"

namespace joule {
namespace fs = std::filesystem;

static const char* kWorkloadFile = "joule/workload.json";
static const char* kProvenanceFile = "joule/provenance.json";

const std::vector<std::string>& carried_extra_files() {
  static const std::vector<std::string> files = {"joule/vocab.txt", "joule/text.json"};
  return files;
}

// A zip archive starts with a local header and ends with an end-of-central-directory record within the
// last 64 KiB + 22 bytes; a truncated download loses the latter first.
static void check_zip(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("model '{}': no such file", path);
  if (!fs::is_regular_file(path, ec)) fail("model '{}': not a regular file", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("model '{}': cannot open ({})", path, std::strerror(errno));
  auto size = static_cast<int64_t>(fs::file_size(path, ec));
  char magic[4] = {};
  f.read(magic, 4);
  if (size < 22 || std::memcmp(magic, "PK\x03\x04", 4) != 0)
    fail("model '{}': not a TorchScript archive (not a zip file; expected a model saved by torch.jit.save)", path);
  int64_t tail = std::min<int64_t>(size, 65557);
  std::string buf(tail, '\0');
  f.seekg(size - tail);
  f.read(buf.data(), tail);
  if (buf.rfind(std::string("PK\x05\x06", 4)) == std::string::npos)
    fail("model '{}': truncated or corrupt TorchScript archive (no zip end record; {} bytes)", path, size);
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
  check_zip(path);
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
  lm.module.eval();
  lm.workload = parse_extra(path, kWorkloadFile, extra[kWorkloadFile]);
  lm.provenance = parse_extra(path, kProvenanceFile, extra[kProvenanceFile]);
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

void save_model(const torch::jit::Module& module, const std::string& out, const std::string& input_path,
                const nlohmann::json& workload, const nlohmann::json& provenance,
                const std::map<std::string, std::string>& carried) {
  check_output_path(out, input_path);
  torch::jit::ExtraFilesMap extra(carried.begin(), carried.end());
  if (!workload.is_null()) extra[kWorkloadFile] = workload.dump();
  if (!provenance.is_null()) extra[kProvenanceFile] = provenance.dump(2);
  io::AtomicFile tmp(out);
  try {
    module.save(tmp.temp_path(), extra);  // rewrites the temp file in place; commit() fsyncs it through its fd
  } catch (const c10::Error& e) {
    fail("output '{}': cannot write: {}", out, first_line(e.what_without_backtrace()));
  }
  tmp.commit();
}

int64_t archive_bytes(const torch::jit::Module& module) {
  std::ostringstream os;
  module.save(os);
  return static_cast<int64_t>(os.tellp());
}

}  // namespace joule
