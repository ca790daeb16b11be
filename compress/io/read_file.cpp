#include "compress/io/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "compress/base/error.h"

namespace joule::io {

static const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{} '{}': {}", what, path, errno == ENOENT ? "no such file" : std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{} '{}': {}, not a regular file", what, path, kind_of(st.st_mode));
  if (uint64_t(st.st_size) > max_bytes)
    fail("{} '{}': {} bytes, over the {} a {} may have", what, path, uint64_t(st.st_size), max_bytes, what);
  // O_NONBLOCK: a file swapped for a FIFO between stat and open still cannot block the open.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{} '{}': cannot open ({})", what, path, std::strerror(errno));
  struct stat fst {};
  if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
    ::close(fd);
    fail("{} '{}': not a regular file", what, path);
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      fail("{} '{}': cannot read ({})", what, path, std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > max_bytes) {  // grew while being read
      ::close(fd);
      fail("{} '{}': over the {} bytes a {} may have", what, path, max_bytes, what);
    }
  }
  ::close(fd);
  return out;
}

}  // namespace joule::io
