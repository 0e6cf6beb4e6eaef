// A small self-contained SVG line chart for `tnn eval --plot`: log-perplexity against sequence
// length (log2 axis, ticks at powers of two), one line per checkpoint with a legend, y ticks at
// round values (1, 2 or 5 times a power of ten).
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
  std::vector<tnn::Index> lengths;
  std::vector<double> loss;  // nats per byte, one per length
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

inline std::string plot_svg(const std::vector<PlotSeries>& series, const std::string& title) {
  if (series.empty() || series.front().lengths.empty())
    tnn::fail<tnn::ValueError>("plot: expected at least one series with one point, got none");
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
  const double W = 680, H = 420, left = 70, right = 20, top = 48, bottom = 60;
  double lo = series[0].loss[0], hi = lo;
  tnn::Index lmin = series[0].lengths[0], lmax = lmin;
  for (const PlotSeries& s : series)
    for (std::size_t i = 0; i < s.lengths.size(); ++i) {
      lo = std::min(lo, s.loss[i]), hi = std::max(hi, s.loss[i]);
      lmin = std::min(lmin, s.lengths[i]), lmax = std::max(lmax, s.lengths[i]);
    }
  // y: a little room around the data, then out to round ticks.
  const double pad = std::max(0.02, 0.1 * (hi - lo));
  const double step = nice_step((hi + pad) - (lo - pad), 5);
  const double y0 = std::floor((lo - pad) / step) * step, y1 = std::ceil((hi + pad) / step) * step;
  const int decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
  // x: log2 of the length, from the power of two at or below the shortest to the one at or above the longest.
  const double x0 = std::floor(std::log2(double(lmin))), x1 = std::max(x0 + 1, std::ceil(std::log2(double(lmax))));
  auto X = [&](double len) { return left + (std::log2(len) - x0) / (x1 - x0) * (W - left - right); };
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
  for (double e = x0; e <= x1; e += 1) {
    const double len = std::exp2(e);
    s << "<line x1=\"" << X(len) << "\" y1=\"" << top << "\" x2=\"" << X(len) << "\" y2=\"" << H - bottom
      << "\" stroke=\"#eee\"/>\n<text x=\"" << X(len) << "\" y=\"" << H - bottom + 18
      << "\" text-anchor=\"middle\">" << static_cast<long long>(len) << "</text>\n";
  }
  s << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
    << H - bottom << "\" stroke=\"black\"/>\n";
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 18
    << "\" text-anchor=\"middle\">sequence length (tokens, log scale)</text>\n";
  s << "<text x=\"18\" y=\"" << (top + H - bottom) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 18 "
    << (top + H - bottom) / 2 << ")\">log perplexity (nats/byte)</text>\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& ser = series[k];
    const char* c = colors[k % (sizeof colors / sizeof colors[0])];
    s << "<polyline fill=\"none\" stroke=\"" << c << "\" stroke-width=\"2\" points=\"";
    for (std::size_t i = 0; i < ser.lengths.size(); ++i) s << X(double(ser.lengths[i])) << "," << Y(ser.loss[i]) << " ";
    s << "\"/>\n";
    for (std::size_t i = 0; i < ser.lengths.size(); ++i)
      s << "<circle cx=\"" << X(double(ser.lengths[i])) << "\" cy=\"" << Y(ser.loss[i]) << "\" r=\"4\" fill=\"" << c
        << "\"/>\n";
    // Legend, top right.
    const double ly = top + 14 + 18 * double(k), lx = W - right - 170;
    s << "<line x1=\"" << lx << "\" y1=\"" << ly - 4 << "\" x2=\"" << lx + 22 << "\" y2=\"" << ly - 4 << "\" stroke=\""
      << c << "\" stroke-width=\"2\"/>\n<text x=\"" << lx + 28 << "\" y=\"" << ly << "\">" << svg_escape(ser.label)
      << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

inline void write_plot(const std::string& path, const std::vector<PlotSeries>& series, const std::string& title) {
  tnn::write_file_atomic(path, plot_svg(series, title));  // a failed write leaves an earlier plot whole
}

}  // namespace tnncli
