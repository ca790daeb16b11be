#include "compress/analysis/cache.h"

namespace joule {

const Analysis& AnalysisCache::analysis(const torch::jit::Module& m) {
  if (!analysis_) {
    analysis_ = analyze(m);
    ++analysis_runs_;
  }
  return *analysis_;
}

const CalibrationStats& AnalysisCache::calibration_stats(const torch::jit::Module& m, const Workload& workload,
                                                         const CalibrationSource* source, const std::string& file,
                                                         int64_t samples) {
  auto key = std::make_pair(file, samples);
  auto it = calibration_.find(key);
  if (it != calibration_.end()) return it->second;
  std::optional<Batches> batches;
  if (source) batches = source->read(file, samples);
  if (!batches) batches = tensor_calibration(file, m, workload, samples);
  ++calibration_runs_;
  return calibration_[key] = collect_linear_stats(m, *batches);
}

void AnalysisCache::invalidate() {
  analysis_.reset();
  calibration_.clear();
}

}  // namespace joule
