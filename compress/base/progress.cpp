#include "compress/base/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace joule {

static bool progress_enabled() {
  if (const char* e = std::getenv("JOULE_PROGRESS")) return e[0] == '1';
  return isatty(STDERR_FILENO);
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), enabled_(progress_enabled() && total > 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  if (enabled_) draw(false);
}

Progress::~Progress() {
  if (enabled_) draw(true);
}

void Progress::tick(int64_t n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  // Redraw at most ~20 times a second: terminals are slow and the work may be a tight loop.
  if (enabled_ && (done_ >= total_ || now - last_draw_ > std::chrono::milliseconds(50))) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::draw(bool final) {
  constexpr int kWidth = 28;
  int64_t done = done_ < total_ ? done_ : total_;
  int filled = static_cast<int>(kWidth * done / total_);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  // Rate and time left from the average so far; the status (set by the caller) after them.
  double rate = secs > 0 ? done / secs : 0;
  char eta[32] = "";
  if (!final && done > 0 && done < total_) std::snprintf(eta, sizeof eta, " ETA %.0fs", (total_ - done) / rate);
  std::fprintf(stderr, "\r  %-28s [%s] %lld/%lld %.1fs %.1f/s%s %s\033[K%s", label_.c_str(), bar.c_str(),
               (long long)done, (long long)total_, secs, rate, eta, status_.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace joule
