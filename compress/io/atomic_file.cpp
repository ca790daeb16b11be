#include "compress/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "compress/base/error.h"

namespace joule::io {

namespace {

// Temp files alive now, for the SIGINT/SIGTERM handler: fixed storage, as a handler may not allocate.
constexpr int kSlots = 32;
char g_temps[kSlots][4096];
std::atomic<bool> g_used[kSlots];

extern "C" void remove_temps_and_die(int sig) {
  for (int i = 0; i < kSlots; ++i)
    if (g_used[i].load()) ::unlink(g_temps[i]);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

int register_temp(const std::string& path) {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction sa {};
      sa.sa_handler = remove_temps_and_die;
      sigemptyset(&sa.sa_mask);
      struct sigaction old {};
      // Only where nobody else handles the signal (a host process such as Python keeps its own handlers).
      if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::sigaction(sig, &sa, nullptr);
    }
  });
  if (path.size() >= sizeof g_temps[0]) return -1;
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (!g_used[i].load() && g_used[i].compare_exchange_strong(expected, true)) {
      std::memcpy(g_temps[i], path.c_str(), path.size() + 1);
      return i;
    }
  }
  return -1;
}

void unregister_temp(int slot) {
  if (slot >= 0) g_used[slot].store(false);
}

// Temp files of this target left by runs that were killed (-9): ".NAME.tmp.PID.N" whose PID is no longer alive.
void remove_stale_temps(const std::filesystem::path& target) {
  namespace fs = std::filesystem;
  const std::string prefix = "." + target.filename().string() + ".tmp.";
  std::error_code ec;
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || (::kill(pid_t(pid), 0) != 0 && errno == ESRCH)) {
      if (fs::is_regular_file(fs::symlink_status(it->path(), ec))) fs::remove(it->path(), ec);
    }
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string target, std::string kind) : target_(std::move(target)), kind_(std::move(kind)) {
  namespace fs = std::filesystem;
  fs::path t(target_);
  if (t.filename().empty()) bad("not a file name");
  remove_stale_temps(t);
  static std::atomic<unsigned> counter{0};
  // O_EXCL: two writers (threads or processes) never share a temp file; retry past stale ones.
  for (int tries = 0; tries < 100 && fd_ < 0; ++tries) {
    std::string name = fmt::format(".{}.tmp.{}.{}", t.filename().string(), ::getpid(), counter++);
    tmp_ = (t.parent_path() / name).string();
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) bad(fmt::format("cannot create a temp file beside it: {}", std::strerror(errno)));
  }
  if (fd_ < 0) bad("cannot create a temp file beside it: too many stale temp files");
  slot_ = register_temp(tmp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
  unregister_temp(slot_);
}

void AtomicFile::bad(const std::string& what) const { fail("{} '{}': {}", kind_, target_, what); }

void AtomicFile::write(const void* data, size_t n) {
  const auto* c = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) bad(fmt::format("cannot write the temp file: {}", std::strerror(w < 0 ? errno : EIO)));
    c += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::prepare() {
  if (prepared_) return;
  // A replaced file keeps its permissions (a 0600 output stays private).
  struct stat old {};
  if (::stat(target_.c_str(), &old) == 0 && S_ISREG(old.st_mode)) ::fchmod(fd_, old.st_mode & 07777);
  if (::fsync(fd_) != 0) bad(fmt::format("cannot fsync the temp file: {}", std::strerror(errno)));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) bad(fmt::format("cannot close the temp file: {}", std::strerror(errno)));
  prepared_ = true;
}

void AtomicFile::publish() {
  prepare();
  if (::rename(tmp_.c_str(), target_.c_str()) != 0)
    bad(fmt::format("cannot rename the temp file into place: {}", std::strerror(errno)));
  committed_ = true;
  // Make the rename itself durable; best effort, as some file systems refuse fsync on a folder.
  std::string dir = std::filesystem::path(target_).parent_path().string();
  int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

AtomicFile& OutputSet::file(std::string target, std::string kind) {
  auto f = std::make_unique<AtomicFile>(std::move(target), std::move(kind));
  AtomicFile& ref = *f;
  outs_.push_back(std::move(f));
  return ref;
}

void OutputSet::add(std::unique_ptr<StagedOutput> out) { outs_.push_back(std::move(out)); }

void OutputSet::commit() {
  for (auto& o : outs_) o->prepare();  // every output durable in its temp before any target changes
  for (auto& o : outs_) o->publish();
  outs_.clear();
}

namespace {

namespace fs = std::filesystem;

// The path as it will be resolved (symlinks of its existing part followed), for comparisons.
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::absolute(p).lexically_normal() : r;
}

bool inside(const fs::path& a, const fs::path& dir) {  // a is dir or below it
  auto [d, x] = std::mismatch(dir.begin(), dir.end(), a.begin(), a.end());
  return d == dir.end();
}

const char* kind_of(const fs::file_status& st) {
  switch (st.type()) {
    case fs::file_type::directory: return "a folder";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

}  // namespace

void check_outputs(const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs,
                   const std::vector<std::string>& folder_outputs) {
  auto is_folder_output = [&](const NamedPath& o) {
    return std::find(folder_outputs.begin(), folder_outputs.end(), o.what) != folder_outputs.end();
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    const NamedPath& o = outputs[i];
    if (o.path.empty()) continue;
    std::error_code ec;
    fs::file_status st = fs::status(o.path, ec);
    if (fs::exists(st)) {
      const bool ok = is_folder_output(o) ? fs::is_directory(st) : fs::is_regular_file(st);
      if (!ok) fail("{} '{}' is {}; Joule writes {} only", o.what, o.path, kind_of(st), is_folder_output(o) ? "folders" : "regular files");
    }
    const fs::path ro = resolved(o.path);
    for (const NamedPath& in : inputs) {
      if (in.path.empty()) continue;
      const fs::path ri = resolved(in.path);
      const bool same = inside(ro, ri) || inside(ri, ro) || (fs::exists(o.path, ec) && fs::equivalent(o.path, in.path, ec));
      if (same)
        fail("{} '{}' {} the {} '{}'; Joule never overwrites or writes into its inputs", o.what, o.path,
             ro == ri || fs::equivalent(o.path, in.path, ec) ? "is" : inside(ro, ri) ? "lies inside" : "contains",
             in.what, in.path);
    }
    for (size_t j = 0; j < i; ++j) {
      const NamedPath& p = outputs[j];
      if (p.path.empty()) continue;
      const fs::path rp = resolved(p.path);
      if (inside(ro, rp) || inside(rp, ro))
        fail("{} '{}' and {} '{}' are the same path or one holds the other", p.what, p.path, o.what, o.path);
    }
  }
}

void write_file_atomic(const std::string& path, const std::string& content, const std::string& kind) {
  AtomicFile f(path, kind);
  f.write(content.data(), content.size());
  f.commit();
}

}  // namespace joule::io
