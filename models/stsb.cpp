#include "models/stsb.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <numeric>

#include "compress/base/error.h"
#include "compress/io/read_file.h"

namespace joule::text {

std::vector<StsbPair> load_stsb(const std::string& path) {
  std::istringstream f(io::read_regular_file(path, io::kMaxDataBytes, "STS-B file"));
  std::vector<StsbPair> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> cols;
    for (size_t start = 0;;) {
      size_t tab = line.find('\t', start);
      cols.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (cols.size() < 7) fail("STS-B file '{}', line {}: {} tab-separated columns, expected at least 7", path, n, cols.size());
    char* end = nullptr;
    double score = std::strtod(cols[4].c_str(), &end);
    if (cols[4].empty() || *end != '\0' || !(score >= 0 && score <= 5))
      fail("STS-B file '{}', line {}: score '{}' is not a number in [0, 5]", path, n, printable(cols[4], 40));
    out.push_back({cols[5], cols[6], score});
  }
  if (out.empty()) fail("STS-B file '{}': no sentence pairs", path);
  return out;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  size_t n = x.size();
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
}

static std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    double avg = (double(i) + double(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

}  // namespace joule::text
