// Report::svg(): a 2x2 panel figure (file size, latency, energy per inference, fidelity) with one bar
// group per stage (input model, after each pass). Plain SVG text: no plotting library on the run path.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/report/report.h"

namespace joule {
namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

struct Series {
  std::string name, color;
  std::vector<double> value, lo, hi;  // lo/hi: whisker ends (NaN for none)
};

// A "nice" upper bound for the axis: 1, 2 or 5 times a power of ten.
double nice_max(double v) {
  if (!(v > 0)) return 1;
  double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

std::string panel(double x0, double y0, double w, double h, const std::string& title, const std::string& unit,
                  const std::vector<std::string>& stages, const std::vector<Series>& series, double ymin = 0, double ymax_fixed = 0) {
  std::string s;
  double left = 56, right = 10, top = 26, bottom = 46;
  double pw = w - left - right, ph = h - top - bottom;
  double ymax = ymin;
  for (const auto& se : series)
    for (size_t i = 0; i < se.value.size(); ++i)
      ymax = std::max({ymax, se.value[i], std::isnan(se.hi[i]) ? se.value[i] : se.hi[i]});
  ymax = ymax_fixed > ymin ? ymax_fixed : ymin == 0 ? nice_max(ymax * 1.08) : ymax + (ymax - ymin) * 0.08;
  auto Y = [&](double v) { return y0 + top + ph * (1 - (v - ymin) / (ymax - ymin)); };
  s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='14' font-weight='bold'>{}</text>\n", x0 + 8, y0 + 16, esc(title));
  for (int t = 0; t <= 4; ++t) {
    double v = ymin + (ymax - ymin) * t / 4;
    s += fmt::format("<line x1='{:.1f}' x2='{:.1f}' y1='{:.1f}' y2='{:.1f}' stroke='#ddd'/>\n", x0 + left, x0 + left + pw, Y(v), Y(v));
    s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='10' text-anchor='end'>{:.4g}</text>\n", x0 + left - 4, Y(v) + 3, v);
  }
  s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='10' transform='rotate(-90 {:.1f} {:.1f})' text-anchor='middle'>{}</text>\n",
                   x0 + 12, y0 + top + ph / 2, x0 + 12, y0 + top + ph / 2, esc(unit));
  double group = pw / stages.size();
  double bw = std::min(40.0, group * 0.7 / series.size());
  for (size_t g = 0; g < stages.size(); ++g) {
    double gx = x0 + left + group * g + (group - bw * series.size()) / 2;
    for (size_t k = 0; k < series.size(); ++k) {
      const auto& se = series[k];
      double v = se.value[g], bx = gx + bw * k;
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='{}'/>\n", bx, Y(v), bw - 2,
                       std::max(0.0, Y(ymin) - Y(v)), se.color);
      if (!std::isnan(se.lo[g]))
        s += fmt::format("<line x1='{0:.1f}' x2='{0:.1f}' y1='{1:.1f}' y2='{2:.1f}' stroke='#222'/>\n", bx + bw / 2 - 1,
                         Y(se.lo[g]), Y(se.hi[g]));
      s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='9' text-anchor='middle'>{:.3g}</text>\n", bx + bw / 2 - 1,
                       Y(std::isnan(se.hi[g]) ? v : se.hi[g]) - 3, v);
    }
    s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='10' text-anchor='middle'>{}</text>\n",
                     x0 + left + group * (g + 0.5), y0 + top + ph + 14, esc(stages[g]));
  }
  if (series.size() > 1)
    for (size_t k = 0; k < series.size(); ++k)
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='10' height='10' fill='{}'/><text x='{:.1f}' y='{:.1f}' "
                       "font-size='10'>{}</text>\n",
                       x0 + left + 220 * k, y0 + h - 16, series[k].color, x0 + left + 220 * k + 14, y0 + h - 7,
                       esc(series[k].name));
  return s;
}

}  // namespace

std::string Report::svg() const {
  const double W = 960, H = 640;
  std::vector<std::string> stages{"input"};
  std::vector<const Metrics*> ms;
  if (!passes.empty()) ms.push_back(&passes.front().before);
  for (size_t i = 0; i < passes.size(); ++i) {
    stages.push_back(fmt::format("{}. {}", i + 1, pass_label(passes[i])));
    ms.push_back(&passes[i].after);
  }
  const double nan = std::nan("");
  auto series = [&](const std::string& name, const std::string& color, auto value, auto lo, auto hi) {
    Series s{name, color, {}, {}, {}};
    for (const Metrics* m : ms) s.value.push_back(value(*m)), s.lo.push_back(lo(*m)), s.hi.push_back(hi(*m));
    return s;
  };
  auto none = [&](const Metrics&) { return nan; };
  Series size = series("file", "#4e79a7", [](const Metrics& m) { return m.file_bytes / 1048576.0; }, none, none);
  Series lat = series("latency", "#f28e2b", [](const Metrics& m) { return m.latency_ms; },
                      [](const Metrics& m) { return m.latency_p10_ms; }, [](const Metrics& m) { return m.latency_p90_ms; });
  std::string headline = ms.empty() || ms[0]->energy.empty() ? "energy" : ms[0]->energy.front().source;
  auto fig = [](const Metrics& m, const std::string& src) { return find_figure(m, src); };
  Series e1 = series(headline + " (±95% CI)", "#59a14f",
                     [&](const Metrics& m) { auto f = fig(m, headline); return f ? f->j_per_inference * 1e3 : 0.0; },
                     [&](const Metrics& m) { auto f = fig(m, headline); return f ? (f->j_per_inference - f->ci95_j) * 1e3 : nan; },
                     [&](const Metrics& m) { auto f = fig(m, headline); return f ? (f->j_per_inference + f->ci95_j) * 1e3 : nan; });
  Series e2 = series("estimate:op-model", "#b07aa1",
                     [&](const Metrics& m) { auto f = fig(m, "estimate:op-model"); return f ? f->j_per_inference * 1e3 : 0.0; },
                     none, none);
  // Task quality when the run measured one (STS-B Spearman x100), else output cosine vs the input model.
  bool stsb = !ms.empty() && ms[0]->task.contains("stsb_spearman");
  Series q = stsb ? series("STS-B Spearman", "#e15759", [](const Metrics& m) { return m.task.value("stsb_spearman", 0.0); }, none, none)
                  : series("cosine", "#e15759", [](const Metrics& m) { return m.cosine; }, none, none);
  double qtop = stsb ? 100.0 : 1.0, qmin = qtop;
  for (double v : q.value) qmin = std::min(qmin, v);
  qmin = std::max(0.0, std::floor((qmin - 0.02 * qtop) / (0.05 * qtop)) * 0.05 * qtop);

  std::string s = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif'>\n"
                              "<rect width='100%' height='100%' fill='white'/>\n",
                              W, H);
  std::string title = "Joule report";
  if (model.contains("path")) {
    std::string path = model["path"].get<std::string>();
    title += ": " + (path.size() > 80 ? "..." + path.substr(path.size() - 77) : path);
  }
  s += fmt::format("<text x='12' y='22' font-size='16' font-weight='bold'>{}</text>\n", esc(title));
  double pw = W / 2, ph = (H - 40) / 2;
  s += "<g>" + panel(0, 34, pw, ph, "Saved file size", "MiB", stages, {size}) + "</g>\n";
  s += "<g>" + panel(pw, 34, pw, ph, "Latency (median, p10-p90)", "ms", stages, {lat}) + "</g>\n";
  s += "<g>" + panel(0, 34 + ph, pw, ph, "Energy per inference", "mJ", stages, {e1, e2}) + "</g>\n";
  s += "<g>" + panel(pw, 34 + ph, pw, ph, stsb ? "Quality: STS-B dev" : "Fidelity vs input model",
                     stsb ? "Spearman x100" : "cosine", stages, {q}, qmin, qtop) + "</g>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace joule
