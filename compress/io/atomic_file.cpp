#include "compress/io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "compress/base/error.h"

namespace joule::io {

AtomicFile::AtomicFile(std::string target, std::string kind) : target_(std::move(target)), kind_(std::move(kind)) {
  namespace fs = std::filesystem;
  fs::path t(target_);
  if (t.filename().empty()) bad("not a file name");
  static std::atomic<unsigned> counter{0};
  // O_EXCL: two writers (threads or processes) never share a temp file; retry past stale ones.
  for (int tries = 0; tries < 100 && fd_ < 0; ++tries) {
    std::string name = fmt::format(".{}.tmp.{}.{}", t.filename().string(), ::getpid(), counter++);
    tmp_ = (t.parent_path() / name).string();
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) bad(fmt::format("cannot create a temp file beside it: {}", std::strerror(errno)));
  }
  if (fd_ < 0) bad("cannot create a temp file beside it: too many stale temp files");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
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

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) bad(fmt::format("cannot fsync the temp file: {}", std::strerror(errno)));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) bad(fmt::format("cannot close the temp file: {}", std::strerror(errno)));
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

void write_file_atomic(const std::string& path, const std::string& content, const std::string& kind) {
  AtomicFile f(path, kind);
  f.write(content.data(), content.size());
  f.commit();
}

}  // namespace joule::io
