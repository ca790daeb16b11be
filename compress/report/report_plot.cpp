// Report::svg(): bar panels of file size, latency, energy per inference and quality, one bar group per stage
// (input model, after each pass), then the pictures users compare by: size and latency against quality, one
// point per stage. Plain SVG text: no plotting library on the run path. Readable at any number of passes: a
// stage's tick label is its full name only when every name fits its group, else its number with the names in a
// legend below; bar values are printed only when they fit their bar. Every axis starts at zero, so a bar's height
// is its value (a quality axis starting at 80 would make 86.7 -> 84.8 look like a third lost).
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
    else if (c == '\'') o += "&apos;";
    else o += c;
  }
  return o;
}

// Width of `s` in px at `font_px`, for sans-serif text (a generous average glyph width).
double text_w(const std::string& s, double font_px) { return 0.6 * font_px * double(s.size()); }

struct Series {
  std::string name, color;
  std::vector<double> value, lo, hi;  // lo/hi: whisker ends (NaN for none); value NaN: not measured
};

// A "nice" upper bound for the axis: 1, 2 or 5 times a power of ten.
double nice_max(double v) {
  if (!(v > 0)) return 1;
  double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

struct Box {
  double x0, y0, w, h;
  static constexpr double left = 56, right = 12, top = 26, bottom = 34;
  double px() const { return x0 + left; }
  double py() const { return y0 + top; }
  double pw() const { return w - left - right; }
  double ph() const { return h - top - bottom; }
};

// Title, y grid and ticks from 0 to ymax, the unit; returns the y mapping.
std::string frame(const Box& b, const std::string& title, const std::string& unit, double ymax) {
  std::string s = fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='14' font-weight='bold'>{}</text>\n", b.x0 + 8,
                              b.y0 + 16, esc(title));
  for (int t = 0; t <= 4; ++t) {
    double v = ymax * t / 4, y = b.py() + b.ph() * (1 - v / ymax);
    s += fmt::format("<line x1='{:.1f}' x2='{:.1f}' y1='{:.1f}' y2='{:.1f}' stroke='#ddd'/>\n", b.px(), b.px() + b.pw(), y, y);
    s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='10' text-anchor='end'>{:.4g}</text>\n", b.px() - 4, y + 3, v);
  }
  s += fmt::format("<text x='{0:.1f}' y='{1:.1f}' font-size='10' transform='rotate(-90 {0:.1f} {1:.1f})' "
                   "text-anchor='middle'>{2}</text>\n", b.x0 + 12, b.py() + b.ph() / 2, esc(unit));
  return s;
}

std::string not_measured(const Box& b, const std::string& title) {
  return fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='14' font-weight='bold'>{}</text>\n"
                     "<text x='{:.1f}' y='{:.1f}' font-size='12' fill='#777' text-anchor='middle'>not measured (no "
                     "workload)</text>\n", b.x0 + 8, b.y0 + 16, esc(title), b.x0 + b.w / 2, b.y0 + b.h / 2);
}

double axis_max(const std::vector<Series>& series, double fixed) {
  if (fixed > 0) return fixed;
  double m = 0;
  for (const auto& se : series)
    for (size_t i = 0; i < se.value.size(); ++i)
      for (double v : {se.value[i], se.hi[i]})
        if (std::isfinite(v)) m = std::max(m, v);
  return nice_max(m * 1.08);
}

std::string bars(const Box& b, const std::string& title, const std::string& unit, const std::vector<std::string>& ticks,
                 const std::vector<Series>& series, double ymax_fixed = 0) {
  bool any = false;
  for (const auto& se : series)
    for (double v : se.value) any = any || std::isfinite(v);
  if (!any) return not_measured(b, title);
  const double ymax = axis_max(series, ymax_fixed);
  auto Y = [&](double v) { return b.py() + b.ph() * (1 - std::clamp(v, 0.0, ymax) / ymax); };
  std::string s = frame(b, title, unit, ymax);
  const double group = b.pw() / double(ticks.size());
  const double bw = std::min(40.0, group * 0.7 / double(series.size()));
  for (size_t g = 0; g < ticks.size(); ++g) {
    double gx = b.px() + group * double(g) + (group - bw * double(series.size())) / 2;
    for (size_t k = 0; k < series.size(); ++k) {
      const auto& se = series[k];
      double v = se.value[g], bx = gx + bw * double(k);
      if (!std::isfinite(v)) continue;
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='{}'/>\n", bx, Y(v),
                       std::max(1.0, bw - 2), std::max(0.0, Y(0) - Y(v)), se.color);
      if (!std::isnan(se.lo[g]))
        s += fmt::format("<line x1='{0:.1f}' x2='{0:.1f}' y1='{1:.1f}' y2='{2:.1f}' stroke='#222'/>\n", bx + bw / 2 - 1,
                         Y(se.lo[g]), Y(se.hi[g]));
      std::string label = fmt::format("{:.3g}", v);
      if (text_w(label, 9) <= bw + 2)  // a value that does not fit its bar would run into the next one
        s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='9' text-anchor='middle'>{}</text>\n", bx + bw / 2 - 1,
                         Y(std::isnan(se.hi[g]) ? v : se.hi[g]) - 3, label);
    }
    s += fmt::format("<text class='stage' x='{:.1f}' y='{:.1f}' font-size='10' text-anchor='middle'>{}</text>\n",
                     b.px() + group * (double(g) + 0.5), b.py() + b.ph() + 14, esc(ticks[g]));
  }
  if (series.size() > 1)
    for (size_t k = 0; k < series.size(); ++k)
      s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='10' height='10' fill='{}'/><text x='{:.1f}' y='{:.1f}' "
                       "font-size='10'>{}</text>\n",
                       b.px() + 200 * double(k), b.y0 + b.h - 14, series[k].color, b.px() + 200 * double(k) + 14,
                       b.y0 + b.h - 5, esc(series[k].name));
  return s;
}

// Quality (y) against a cost (x), one numbered point per stage, joined in stage order.
std::string scatter(const Box& b, const std::string& title, const std::string& xunit, const std::string& yunit,
                    const std::vector<double>& x, const std::vector<double>& y, double ymax, const std::string& color) {
  std::vector<size_t> ok;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) ok.push_back(i);
  if (ok.empty()) return not_measured(b, title);
  double xmax = 0;
  for (size_t i : ok) xmax = std::max(xmax, x[i]);
  xmax = nice_max(xmax * 1.08);
  auto X = [&](double v) { return b.px() + b.pw() * std::clamp(v, 0.0, xmax) / xmax; };
  auto Y = [&](double v) { return b.py() + b.ph() * (1 - std::clamp(v, 0.0, ymax) / ymax); };
  std::string s = frame(b, title, yunit, ymax);
  for (int t = 0; t <= 4; ++t) {
    double v = xmax * t / 4;
    s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='10' text-anchor='middle'>{:.4g}</text>\n", X(v),
                     b.py() + b.ph() + 14, v);
  }
  s += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='10' text-anchor='middle'>{}</text>\n", b.px() + b.pw() / 2,
                   b.py() + b.ph() + 28, esc(xunit));
  std::string path;
  for (size_t i : ok) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", X(x[i]), Y(y[i]));
  s += fmt::format("<polyline points='{}' fill='none' stroke='{}' stroke-opacity='0.4'/>\n", path, color);
  for (size_t i : ok)
    s += fmt::format("<circle class='point' cx='{0:.1f}' cy='{1:.1f}' r='4' fill='{2}'/><text x='{3:.1f}' y='{4:.1f}' "
                     "font-size='9'>{5}</text>\n", X(x[i]), Y(y[i]), color, X(x[i]) + 5, Y(y[i]) - 5, i);
  return s;
}

}  // namespace

std::string Report::svg() const {
  const double W = 960;
  std::vector<std::string> stages{"input"};
  std::vector<const Metrics*> ms;
  if (!passes.empty()) ms.push_back(&passes.front().before);
  for (size_t i = 0; i < passes.size(); ++i) {
    stages.push_back(fmt::format("{}. {}", i + 1, pass_label(passes[i])));
    ms.push_back(&passes[i].after);
  }
  // Tick labels: the names when each fits its group in a half-width panel, else the stage numbers (0 = input).
  const double group = (W / 2 - Box::left - Box::right) / double(stages.size());
  bool names_fit = true;
  for (const auto& st : stages) names_fit = names_fit && text_w(st, 10) <= group - 4;
  std::vector<std::string> ticks;
  for (size_t i = 0; i < stages.size(); ++i) ticks.push_back(names_fit ? stages[i] : std::to_string(i));

  const double nan = std::nan("");
  auto series = [&](const std::string& name, const std::string& color, auto value, auto lo, auto hi) {
    Series s{name, color, {}, {}, {}};
    for (const Metrics* m : ms) {
      const bool timed = m->measured;
      s.value.push_back(value(*m)), s.lo.push_back(timed ? lo(*m) : nan), s.hi.push_back(timed ? hi(*m) : nan);
    }
    return s;
  };
  auto none = [&](const Metrics&) { return nan; };
  auto measured = [&](double v, const Metrics& m) { return m.measured ? v : nan; };
  Series size = series("file", "#4e79a7", [](const Metrics& m) { return m.file_bytes / 1048576.0; }, none, none);
  Series lat = series("latency", "#f28e2b", [&](const Metrics& m) { return measured(m.latency_ms, m); },
                      [](const Metrics& m) { return m.latency_p10_ms; }, [](const Metrics& m) { return m.latency_p90_ms; });
  std::string headline = ms.empty() || ms[0]->energy.empty() ? "energy" : ms[0]->energy.front().source;
  auto fig = [](const Metrics& m, const std::string& src) { return find_figure(m, src); };
  Series e1 = series(headline + " (±95% CI)", "#59a14f",
                     [&](const Metrics& m) { auto f = fig(m, headline); return f ? f->j_per_inference * 1e3 : nan; },
                     [&](const Metrics& m) { auto f = fig(m, headline); return f ? (f->j_per_inference - f->ci95_j) * 1e3 : nan; },
                     [&](const Metrics& m) { auto f = fig(m, headline); return f ? (f->j_per_inference + f->ci95_j) * 1e3 : nan; });
  Series e2 = series("estimate:op-model", "#b07aa1",
                     [&](const Metrics& m) { auto f = fig(m, "estimate:op-model"); return f ? f->j_per_inference * 1e3 : nan; },
                     none, none);
  // Task quality when the run measured one (STS-B Spearman x100), else output cosine vs the input model.
  bool stsb = !ms.empty() && ms[0]->task.contains("stsb_spearman");
  Series q = stsb ? series("STS-B Spearman", "#e15759", [](const Metrics& m) { return m.task.value("stsb_spearman", 0.0); }, none, none)
                  : series("cosine", "#e15759", [&](const Metrics& m) { return measured(m.cosine, m); }, none, none);
  const double qtop = stsb ? 100.0 : 1.0;
  const std::string qname = stsb ? "STS-B Spearman x100" : "cosine vs input";

  // The stage legend (when the ticks are numbers): as many columns as fit the width, then more rows.
  struct Entry {
    double x;
    size_t row;
    std::string text;
  };
  std::vector<Entry> legend;
  if (!names_fit) {
    double col_w = 0;
    for (size_t i = 0; i < stages.size(); ++i) col_w = std::max(col_w, text_w(stages[i], 11) + 16);
    const size_t cols = std::max<size_t>(1, static_cast<size_t>((W - 24) / col_w));
    for (size_t i = 0; i < stages.size(); ++i)
      legend.push_back({12 + col_w * double(i % cols), i / cols,
                        i ? stages[i] : "0. input model"});  // stages[i] is "i. label"
  }
  const double ph = 290, top = 34;
  const double H = top + 3 * ph + (legend.empty() ? 8 : 20 + 16 * double(legend.back().row + 1));

  std::string s = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif'>\n"
                              "<rect width='100%' height='100%' fill='white'/>\n",
                              W, H);
  std::string title = "Joule report";
  if (model.contains("path") && model["path"].is_string()) {
    std::string path = model["path"].get<std::string>();
    title += ": " + (path.size() > 80 ? "..." + path.substr(path.size() - 77) : path);
  }
  s += fmt::format("<text x='12' y='22' font-size='16' font-weight='bold'>{}</text>\n", esc(title));
  const double pw = W / 2;
  s += "<g>" + bars({0, top, pw, ph}, "Saved file size", "MiB", ticks, {size}) + "</g>\n";
  s += "<g>" + bars({pw, top, pw, ph}, "Latency (median, p10-p90)", "ms", ticks, {lat}) + "</g>\n";
  s += "<g>" + bars({0, top + ph, pw, ph}, "Energy per inference", "mJ", ticks, {e1, e2}) + "</g>\n";
  s += "<g>" + bars({pw, top + ph, pw, ph}, stsb ? "Quality: STS-B dev" : "Fidelity vs input model",
                    stsb ? "Spearman x100" : "cosine", ticks, {q}, qtop) + "</g>\n";
  s += "<g>" + scatter({0, top + 2 * ph, pw, ph}, "Size vs quality (points: stages)", "file MiB", qname, size.value,
                       q.value, qtop, "#4e79a7") + "</g>\n";
  s += "<g>" + scatter({pw, top + 2 * ph, pw, ph}, "Latency vs quality (points: stages)", "latency ms p50", qname,
                       lat.value, q.value, qtop, "#f28e2b") + "</g>\n";
  for (const auto& e : legend)
    s += fmt::format("<text class='legend' x='{:.1f}' y='{:.1f}' font-size='11'>{}</text>\n", e.x,
                     top + 3 * ph + 16 + 16 * double(e.row), esc(e.text));
  s += "</svg>\n";
  return s;
}

}  // namespace joule
