// A small self-contained SVG line chart: `tnn eval --plot` (log-perplexity against sequence length
// on a log2 axis with ticks at powers of two, one line per checkpoint) and `tnn plot` (training and
// validation loss against the step, a linear axis). A legend, y ticks (and linear x ticks) at round
// values (1, 2 or 5 times a power of ten).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <tnn/core/error.hpp>
#include <tnn/core/tensor.hpp>
#include <tnn/io/file.hpp>
#include <tnn/io/xml.hpp>

namespace tnncli {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // one point each
  bool markers = true;       // a dot on every point (a long noisy curve: none)
};

struct PlotAxes {
  std::string x_label = "sequence length (tokens, log scale)";
  std::string y_label = "log perplexity (nats/byte)";
  bool x_log2 = true;  // log2 x axis with ticks at powers of two; else linear with round ticks
};

// A tick step of 1, 2 or 5 times a power of ten giving about `target` intervals over `range`.
inline double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

// Text for SVG (labels and titles come from the command line): tnn::xml_text, so any bytes give
// well-formed XML.
inline std::string svg_escape(const std::string& s) { return tnn::xml_text(s); }

inline std::string plot_svg(const std::vector<PlotSeries>& series, const std::string& title, const PlotAxes& axes = {}) {
  double lo = 0, hi = 0, xmin = 0, xmax = 0;
  bool any = false;
  for (const PlotSeries& s : series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!any) lo = hi = s.y[i], xmin = xmax = s.x[i];
      any = true;
      lo = std::min(lo, s.y[i]), hi = std::max(hi, s.y[i]);
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
    }
  if (!any) tnn::fail<tnn::ValueError>("plot: expected at least one series with one point, got none");
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
  const double W = 680, H = 420, left = 70, right = 20, top = 48, bottom = 60;
  // y: a little room around the data, then out to round ticks.
  const double pad = std::max(0.02, 0.1 * (hi - lo));
  const double step = nice_step((hi + pad) - (lo - pad), 5);
  const double y0 = std::floor((lo - pad) / step) * step, y1 = std::ceil((hi + pad) / step) * step;
  const int decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
  // x: log2 of the length, from the power of two at or below the shortest to the one at or above
  // the longest; or linear from 0 (or the smallest value) to round ticks past the largest.
  double x0, x1, xstep = 1;
  if (axes.x_log2) {
    x0 = std::floor(std::log2(std::max(xmin, 1.0)));
    x1 = std::max(x0 + 1, std::ceil(std::log2(std::max(xmax, 1.0))));
  } else {
    const double from = xmin >= 0 && xmin <= 0.5 * xmax ? 0.0 : xmin;
    xstep = nice_step(std::max(xmax - from, 1e-9), 6);
    x0 = std::floor(from / xstep) * xstep;
    x1 = std::max(x0 + xstep, std::ceil(xmax / xstep) * xstep);
  }
  auto X = [&](double v) {
    const double u = axes.x_log2 ? std::log2(std::max(v, 1e-300)) : v;
    return left + (u - x0) / (x1 - x0) * (W - left - right);
  };
  auto Y = [&](double v) { return top + (y1 - v) / (y1 - y0) * (H - top - bottom); };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">"
    << svg_escape(title) << "</text>\n";
  for (double v = y0; v <= y1 + step * 1e-6; v += step) {
    char label[32];
    std::snprintf(label, sizeof label, "%.*f", decimals, v);
    s << "<line x1=\"" << left << "\" y1=\"" << Y(v) << "\" x2=\"" << W - right << "\" y2=\"" << Y(v)
      << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">" << label
      << "</text>\n";
  }
  for (double e = x0; e <= x1 + xstep * 1e-6; e += xstep) {
    const double v = axes.x_log2 ? std::exp2(e) : e;
    char label[32];
    std::snprintf(label, sizeof label, "%.10g", v);
    s << "<line x1=\"" << X(v) << "\" y1=\"" << top << "\" x2=\"" << X(v) << "\" y2=\"" << H - bottom
      << "\" stroke=\"#eee\"/>\n<text x=\"" << X(v) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">"
      << label << "</text>\n";
  }
  s << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
    << H - bottom << "\" stroke=\"black\"/>\n";
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 18
    << "\" text-anchor=\"middle\">" << svg_escape(axes.x_label) << "</text>\n";
  s << "<text x=\"18\" y=\"" << (top + H - bottom) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 18 "
    << (top + H - bottom) / 2 << ")\">" << svg_escape(axes.y_label) << "</text>\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& ser = series[k];
    const char* c = colors[k % (sizeof colors / sizeof colors[0])];
    const std::size_t n = std::min(ser.x.size(), ser.y.size());
    s << "<polyline fill=\"none\" stroke=\"" << c << "\" stroke-width=\"" << (ser.markers ? 2 : 1.2)
      << "\" points=\"";
    for (std::size_t i = 0; i < n; ++i) s << X(ser.x[i]) << "," << Y(ser.y[i]) << " ";
    s << "\"/>\n";
    if (ser.markers)
      for (std::size_t i = 0; i < n; ++i)
        s << "<circle cx=\"" << X(ser.x[i]) << "\" cy=\"" << Y(ser.y[i]) << "\" r=\"4\" fill=\"" << c << "\"/>\n";
    // Legend, top right.
    const double ly = top + 14 + 18 * double(k), lx = W - right - 170;
    s << "<line x1=\"" << lx << "\" y1=\"" << ly - 4 << "\" x2=\"" << lx + 22 << "\" y2=\"" << ly - 4 << "\" stroke=\""
      << c << "\" stroke-width=\"2\"/>\n<text x=\"" << lx + 28 << "\" y=\"" << ly << "\">" << svg_escape(ser.label)
      << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Writes the SVG atomically (a temporary beside it, renamed into place: a failed write, a full
// disk included, leaves an earlier plot whole); `flag` names the path in messages (--plot, --out).
inline void write_plot(const std::string& path, const std::vector<PlotSeries>& series, const std::string& title,
                       const PlotAxes& axes = {}, const char* flag = "--plot") {
  const std::string svg = plot_svg(series, title, axes);
  tnn::check_output_path(path, flag);
  try {
    tnn::write_file_atomic(path, svg);
  } catch (const tnn::IoError& e) {
    tnn::fail<tnn::IoError>(flag, ": ", e.what());
  }
}

}  // namespace tnncli
