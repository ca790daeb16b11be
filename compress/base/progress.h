// A one-line progress bar on stderr for long work (measurement, calibration, passes). Draws only when
// stderr is a terminal (or JOULE_PROGRESS=1), so logs and CI output stay clean.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace joule {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void tick(int64_t n = 1);
  // Text drawn after the counts ("loss 0.0123 lr 9.1e-05 160 sent/s"); the rate and ETA are added by the bar.
  void set_status(std::string s) { status_ = std::move(s); }

 private:
  void draw(bool final);
  std::string label_, status_;
  int64_t total_, done_ = 0;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace joule
