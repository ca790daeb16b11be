// The fuzz input as a file: the readers under test take a path (they mmap and fstat it, as the CLI does), so the
// bytes go into a memfd, reached as /proc/self/fd/N. A regular file, in memory, rewritten per input.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace joule::fuzz {

inline std::string as_file(const uint8_t* data, size_t size) {
  static int fd = memfd_create("joule-fuzz", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 0) != 0) abort();
  for (size_t done = 0; done < size;) {
    ssize_t w = pwrite(fd, data + done, size - done, off_t(done));
    if (w <= 0) abort();
    done += size_t(w);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace joule::fuzz
