// STS Benchmark: the TSV reader and the correlation metrics (x100) used to score sentence embeddings.
#pragma once
#include <string>
#include <vector>

namespace joule::text {

struct StsbPair {
  std::string a, b;
  double score;  // gold similarity, 0..5
};

// Raw TSV (no CSV quoting): genre, file, year, id, score, sentence1, sentence2 [, extra source columns].
// A malformed line is a one-line joule::Error naming file:line and what is wrong.
std::vector<StsbPair> load_stsb(const std::string& path);

double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman's rho: Pearson on ranks, ties given their average rank (as scipy.stats.spearmanr).
double spearman(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace joule::text
