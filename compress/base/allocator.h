// Process-wide malloc settings for inference. glibc hands large freed blocks back to the kernel (munmap above its
// mmap threshold, trimming at the top of the heap), so a model whose activations are megabytes each gets them
// back as fresh zero-filled pages on every forward: MiniLM at batch 32 spent a quarter of its time in page faults
// (docs/PERF.md). keep_freed_memory() raises the mmap threshold to glibc's maximum (32 MiB; blocks above it are
// still mapped and unmapped) and stops trimming, so one forward's freed activations serve the next; resident
// memory then stays at its peak instead of shrinking between calls. Called by the CLI and the benchmarks, never by
// the library itself (a Python process keeps its own malloc settings; GLIBC_TUNABLES=glibc.malloc.mmap_threshold=
// 33554432:glibc.malloc.trim_threshold=2147483647 gives it the same).
#pragma once
#include <malloc.h>

#include <climits>

namespace joule {

inline void keep_freed_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

}  // namespace joule
