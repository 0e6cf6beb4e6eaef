// tnn-pathfinder: the Long-Range Arena's Pathfinder task (Tay et al., 2021), after the
// Pathfinder challenge of Linsley et al. (2018, "Learning long-range spatial dependencies with
// horizontal gated recurrent units") and its generator's settings for LRA's 32 x 32 images and
// its 128 x 128 Path-X. Generated here, seeded and reproducible, as the image files that
// `tnn train --task image` reads: images U8 [M, H, W, 1] (or, with --flat, [M, 1, H * W, 1]),
// labels I32 [M], metadata tnn.labels ["disconnected", "connected"].
//
// The rules implemented (Linsley et al.'s, with LRA's parameters):
//  - A path is a chain of dashes ("paddles") of dash_length pixels separated by gaps of `gap`
//    pixels; each dash turns from the previous one by an angle d drawn with density
//    proportional to cos^2(min(|d| * continuity, pi / 2)) (continuity 1: turns below 90
//    degrees, the sharper the rarer).
//  - Two target paths of contour_length dashes grow one dash at a time, alternately; the first
//    starts in the middle of the image (2 * seed_distance from every border), the second
//    seed_distance away from it, both in uniform directions. The difficulty is the contour
//    length: easy 6, intermediate 9, hard 14 dashes (LRA's curv_baseline,
//    curv_contour_length_9, curv_contour_length_14; LRA, S4 and the TNN paper report "hard").
//  - Distractors: distractor_budget / distractor_length paths of distractor_length =
//    contour_length / 3 dashes (LRA: 20 / (14 / 3) = 5 paths of 4 dashes at 32 x 32), each
//    started at a uniform free point; one that finds no room in 5 tries is left out.
//  - Paths never cross or touch: the pixels a dash covers (with its trailing gap) keep at
//    least `gap` empty pixels from every other path and from the earlier dashes of their own.
//  - Label 1: the two markers (discs of marker_radius) sit on the two ends of one target path;
//    label 0: on the start of one and the end of the other. The geometry is drawn before the
//    label is known, so nothing but the connection tells the classes apart.
//  - Classes are balanced: each split holds floor(M / 2) connected images, in a seeded order.
//
// Where this differs from the published generator:
//  - Dashes, gaps and turns are drawn in continuous coordinates and rendered by 4 x 4
//    supersampling (coverage -> grey level), not by drawing at 2x or 4x and resizing; strokes
//    are one pixel wide at 32 x 32 (LRA: paddle thickness 0.5 drawn at 2x, then resized) and
//    1.5 at 128 x 128, and paths and markers are drawn at full intensity (LRA scales the paths
//    by per-path and per-dash contrasts).
//  - Turn angles are continuous with rejection sampling (the original picks among the pixels
//    on a circle); a dash that finds no room in 20 draws ends the attempt, and the image's
//    targets are drawn again (at most 1,000 times, then an error names the setting).
//  - Separation is exact at the pixel level (see above) and extends to the markers: the four
//    path ends keep clear of the other target path and of each other, and distractors keep
//    clear of all four, so a disconnected image never shows touching strokes. (The original
//    separates strokes by dilated masks and places markers without a check.)
//  - No single-dash distractors (the published wrapper script turns them off too).
//  - Splits: LRA's 200,000 images per difficulty, split 160,000 / 20,000 / 20,000 as S4 does.
//
// Reproducible: image i of a split is drawn from its own stream (seed, split, i), so the files
// do not depend on --threads. The geometry is floating point: the same build gives the same
// bytes for a seed; another compiler or libm may round an angle differently.
//
// --solid (for checking labels, not for training): the same images with the gaps between
// dashes filled, plus markers I32 [M, 2, 2] (row, column of each marker's centre), so that a
// flood fill from one marker over the non-zero pixels reaches the other exactly when the label
// is 1 (tests/cli/pathfinder.sh checks this).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tnn/core/error.hpp>
#include <tnn/core/rng.hpp>
#include <tnn/core/tensor.hpp>
#include <tnn/io/file.hpp>
#include <tnn/io/safetensors_writer.hpp>
#include <tnn/io/stream.hpp>
#include <tnn/model/checkpoint.hpp>  // kLabelsMetadataKey
#include <tnn/train/data.hpp>        // detail::stream_seed

#include "../generator_main.hpp"

namespace {

constexpr double kPi = 3.14159265358979323846;

// One row per difficulty: the contour length (dashes per target path), LRA's three splits.
struct Difficulty {
  const char* name;
  int contour_length;
};
constexpr Difficulty kDifficulties[] = {{"easy", 6}, {"intermediate", 9}, {"hard", 14}};

// One row per image size: LRA's Pathfinder-32 and Path-X (128 x 128) settings. `width` is the
// stroke width in pixels; `gap_max` > `gap` draws each image's gap uniformly from gap..gap_max.
// (LRA's 64 x 64 settings, with 5-pixel dashes and continuity 1.8, rarely fit two 14-dash
// paths in the image with the separation rules here, so 64 is not offered.)
struct SizeRow {
  int size;
  double dash_length;
  int gap, gap_max;
  double width;
  double continuity;
  double seed_distance;
  double marker_radius;
  int distractor_budget;  // distractor paths = budget / distractor length
};
constexpr SizeRow kSizes[] = {
    {32, 2.0, 1, 1, 1.0, 1.0, 7.0, 1.5, 20},
    {128, 5.0, 2, 3, 1.5, 1.8, 20.0, 3.0, 35},
};
constexpr int kPadding = 1;              // border pixels no path enters
constexpr int kTurnDraws = 20;           // angle draws per dash before the path is stuck
constexpr int kDistractorTries = 5;      // starts per distractor before it is left out
constexpr int kMaxTargetAttempts = 1000; // target pairs per image before giving up (hard: 21 on average)
constexpr int kSub = 4;                  // supersampling: kSub x kSub points per pixel

// Streams of detail::stream_seed: the label order of a split, and each split's images.
constexpr std::uint64_t kLabelStream = 101;
constexpr std::uint64_t kImageStream = 102;

struct Options {
  std::string out_dir;
  std::int64_t train = 160000, valid = 20000, test = 20000;
  std::string seed = "1";  // parsed by parse_seed: CLI11 wraps "-1" around to 2^64 - 1
  std::string difficulty = "hard";
  int contour_length = 0;  // 0: the difficulty's
  int size = 32;
  bool flat = false, solid = false;
  int threads = 0;
};

struct Vec {
  double y, x;
};
double cos2(double v) {
  const double c = std::cos(v);
  return c * c;
}
Vec along(Vec p, double theta, double len) { return {p.y + len * std::sin(theta), p.x + len * std::cos(theta)}; }

// A pixel a stroke touches: row, column, and how many of its kSub^2 sample points it covers.
struct Px {
  int y, x, count;
};

enum class Cap { Round, Flat };

// The x-range [lo, hi] (empty when lo > hi) of the row y = yc within `r` of segment a-b: with
// Cap::Round the points within r of the segment (a disc when a == b); with Cap::Flat those whose
// foot on the line a-b falls between a and b (a dash with square-cut ends, so that the gap
// between two dashes stays as long as it is meant to be). Both shapes are convex, so the row
// meets them in one interval.
struct Span {
  double lo = 1.0, hi = 0.0;
  bool empty() const { return lo > hi; }
  void hull(Span o) {
    if (o.empty()) return;
    if (empty()) *this = o;
    else lo = std::min(lo, o.lo), hi = std::max(hi, o.hi);
  }
};
Span disc_span(double yc, Vec c, double r) {
  const double dy = yc - c.y;
  if (dy * dy > r * r) return {};
  const double h = std::sqrt(r * r - dy * dy);
  return {c.x - h, c.x + h};
}
// {x : lo <= alpha + beta * (x - x0) <= hi}
Span linear_span(double alpha, double beta, double x0, double lo, double hi) {
  if (std::abs(beta) < 1e-12) return alpha >= lo && alpha <= hi ? Span{-1e300, 1e300} : Span{};
  const double u = x0 + (lo - alpha) / beta, v = x0 + (hi - alpha) / beta;
  return {std::min(u, v), std::max(u, v)};
}
struct Stroke {
  Vec a, b;
  double r, len, uy, ux;  // radius, length, unit direction
  Cap cap;
  Stroke(Vec a_, Vec b_, double r_, Cap cap_) : a(a_), b(b_), r(r_), cap(cap_) {
    len = std::hypot(b.y - a.y, b.x - a.x);
    uy = len > 0 ? (b.y - a.y) / len : 0.0;
    ux = len > 0 ? (b.x - a.x) / len : 0.0;
  }
  Span span(double yc) const {
    Span s;
    if (len > 0) {
      const double dy = yc - a.y;
      const Span along_seg = linear_span(dy * uy, ux, a.x, 0.0, len);  // foot between a and b
      const Span across = linear_span(dy * ux, -uy, a.x, -r, r);       // within r of the line
      s = {std::max(along_seg.lo, across.lo), std::min(along_seg.hi, across.hi)};
    }
    if (cap == Cap::Round) {
      s.hull(disc_span(yc, a, r));
      s.hull(disc_span(yc, b, r));
    }
    return s;
  }
};

// The pixels the stroke of radius r along a-b covers, with how many of their kSub x kSub sample
// points (i + (s + 0.5) / kSub, j + (t + 0.5) / kSub) it covers, row by row; pixels outside
// the image are reported too (callers reject or clip them). One interval per sample row, so
// the cost is the stroke's height, not its area times kSub^2.
void raster(Vec a, Vec b, double r, std::vector<Px>& out, Cap cap = Cap::Round) {
  out.clear();
  const int y0 = static_cast<int>(std::floor(std::min(a.y, b.y) - r));
  const int y1 = static_cast<int>(std::floor(std::max(a.y, b.y) + r));
  const int x0 = static_cast<int>(std::floor(std::min(a.x, b.x) - r));
  const int x1 = static_cast<int>(std::floor(std::max(a.x, b.x) + r));
  const int w = x1 - x0 + 1;
  thread_local std::vector<int> counts;  // [(y1 - y0 + 1) * w] covered samples per pixel
  counts.assign(static_cast<std::size_t>((y1 - y0 + 1) * w), 0);
  const Stroke stroke(a, b, r, cap);
  for (int m = y0 * kSub; m < (y1 + 1) * kSub; ++m) {
    const Span sp = stroke.span((m + 0.5) / kSub);
    if (sp.empty()) continue;
    // Sample columns k (at x = (k + 0.5) / kSub) inside [lo, hi], clipped to the box.
    const long k0 = std::max<long>(static_cast<long>(std::ceil(kSub * sp.lo - 0.5)), long(x0) * kSub);
    const long k1 = std::min<long>(static_cast<long>(std::floor(kSub * sp.hi - 0.5)), long(x1 + 1) * kSub - 1);
    int* row = counts.data() + static_cast<std::size_t>((m - y0 * kSub) / kSub * w);  // m, k >= the box's corner
    for (long k = k0; k <= k1; ++k) ++row[(k - long(x0) * kSub) / kSub];
  }
  for (int i = y0; i <= y1; ++i)
    for (int j = x0; j <= x1; ++j) {
      const int c = counts[static_cast<std::size_t>((i - y0) * w + (j - x0))];
      if (c > 0) out.push_back({i, j, c});
    }
}

// A drawn path: dash k starts at start(k) with direction dir[k]; the next dash starts one dash
// and one gap further along dir[k].
struct Path {
  Vec origin;
  std::vector<double> dir;
  std::vector<Vec> starts;
};

class Image {
 public:
  Image(const SizeRow& row, int gap) : S_(row.size), row_(row), gap_(gap) {
    owner_.assign(static_cast<std::size_t>(S_ * S_), 0);
    dash_.assign(static_cast<std::size_t>(S_ * S_), 0);
  }
  void clear() {
    std::fill(owner_.begin(), owner_.end(), 0);
    std::fill(dash_.begin(), dash_.end(), 0);
    paths_.clear();
  }
  int size() const { return S_; }
  int gap() const { return gap_; }
  double dash_length() const { return row_.dash_length; }
  double step() const { return row_.dash_length + gap_; }
  double stroke_radius() const { return 0.5 * row_.width; }

  // True when `px` lies inside the drawable area and at least gap() empty pixels away from
  // every path but `id`, and from dashes of `id` before dash k - 1 (its neighbour touches it).
  bool free_for(const std::vector<Px>& px, int id, int k) const {
    for (const Px& p : px)
      if (!free_for_pixel(p, id, k)) return false;
    return true;
  }
  bool free_for_pixel(const Px& p, int id, int k) const {
    if (p.y < kPadding || p.x < kPadding || p.y >= S_ - kPadding || p.x >= S_ - kPadding) return false;
    for (int dy = -gap_; dy <= gap_; ++dy)
      for (int dx = -gap_; dx <= gap_; ++dx) {
        const int y = p.y + dy, x = p.x + dx;
        if (y < 0 || x < 0 || y >= S_ || x >= S_) continue;
        const std::size_t at = static_cast<std::size_t>(y * S_ + x);
        const int o = owner_[at];
        if (o != 0 && (o != id || dash_[at] < k - 1)) return false;
      }
    return true;
  }
  // What claim() overwrote at one pixel, for rollback().
  struct Undo {
    std::size_t at;
    std::int16_t owner, dash;
  };
  // Marks `px` (clipped to the image) as path `id`'s, dash k; with `undo`, logs what it overwrote.
  void claim(const std::vector<Px>& px, int id, int k, std::vector<Undo>* undo = nullptr) {
    for (const Px& p : px) {
      if (p.y < 0 || p.x < 0 || p.y >= S_ || p.x >= S_) continue;
      const std::size_t at = static_cast<std::size_t>(p.y * S_ + p.x);
      if (undo) undo->push_back({at, owner_[at], dash_[at]});
      owner_[at] = static_cast<std::int16_t>(id);
      dash_[at] = static_cast<std::int16_t>(k);
    }
  }
  // Undoes the claims logged in `undo`, newest first.
  void rollback(std::vector<Undo>& undo) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      owner_[it->at] = it->owner;
      dash_[it->at] = it->dash;
    }
    undo.clear();
  }
  // Chebyshev distance between two pixel sets is more than gap().
  bool apart(const std::vector<Px>& a, const std::vector<Px>& b) const {
    for (const Px& p : a)
      for (const Px& q : b)
        if (std::abs(p.y - q.y) <= gap_ && std::abs(p.x - q.x) <= gap_) return false;
    return true;
  }
  // No pixel of `px` within gap() of path `id`'s pixels.
  bool clear_of_path(const std::vector<Px>& px, int id) const {
    for (const Px& p : px)
      for (int dy = -gap_; dy <= gap_; ++dy)
        for (int dx = -gap_; dx <= gap_; ++dx) {
          const int y = p.y + dy, x = p.x + dx;
          if (y < 0 || x < 0 || y >= S_ || x >= S_) continue;
          if (owner_[static_cast<std::size_t>(y * S_ + x)] == id) return false;
        }
    return true;
  }

  // The pixels dash k of a path starting at `p` with direction `theta` covers, with the gap
  // after it (kept free whether or not another dash follows).
  void dash_pixels(Vec p, double theta, std::vector<Px>& out) const {
    raster(p, along(p, theta, step()), stroke_radius(), out);
  }
  // A quick look at three points of that stretch (each inside a pixel dash_pixels reports):
  // false when one of them is already taken, so most refused turns cost no raster.
  bool may_fit(Vec p, double theta, int id, int k) const {
    for (double f : {1.0, 2.0 / 3.0, 1.0 / 3.0}) {
      const Vec q = along(p, theta, f * step());
      const Px px{static_cast<int>(std::floor(q.y)), static_cast<int>(std::floor(q.x)), 1};
      if (!free_for_pixel(px, id, k)) return false;
    }
    return true;
  }

  // Tries to add dash k to `path` (id `id`): a turn from the previous direction (k > 0) drawn
  // kTurnDraws times at most; false when none fits.
  bool grow(Path& path, int id, tnn::Rng& rng, std::vector<Px>& scratch, std::vector<Undo>* undo) {
    const int k = static_cast<int>(path.starts.size());
    const Vec p = k == 0 ? path.origin : along(path.starts.back(), path.dir.back(), step());
    const double max_turn = std::min(kPi, kPi / (2.0 * row_.continuity));
    for (int draw = 0; draw < kTurnDraws; ++draw) {
      double theta;
      if (k == 0) {
        theta = rng.uniform(-kPi, kPi);
      } else {
        double d;
        do {  // density ~ cos^2(|d| * continuity) on |d| < max_turn: rejection from the uniform
          d = rng.uniform(-max_turn, max_turn);
        } while (rng.uniform() > cos2(std::min(std::abs(d) * row_.continuity, kPi / 2)));
        theta = path.dir.back() + d;
      }
      if (!may_fit(p, theta, id, k)) continue;
      dash_pixels(p, theta, scratch);
      if (!free_for(scratch, id, k)) continue;
      claim(scratch, id, k, undo);
      path.starts.push_back(p);
      path.dir.push_back(theta);
      return true;
    }
    return false;
  }

  std::vector<Path>& paths() { return paths_; }

 private:
  int S_;
  SizeRow row_;
  int gap_;
  std::vector<std::int16_t> owner_;  // [S * S] 0 free, else the id of the path or marker zone
  std::vector<std::int16_t> dash_;   // [S * S] the dash of the owner that covers it
  std::vector<Path> paths_;
};

struct Setting {
  SizeRow row;
  int contour_length, distractor_length, distractors;
  std::string name;  // for messages: "--difficulty hard" or "--contour-length 20"
};

// What one image needs written: its pixels, and for --solid the marker centres.
struct Drawn {
  int label;
  int marker[2][2];
  int distractors;
  int attempts;
};

// End of a path: the end of its last dash.
Vec path_end(const Image& img, const Path& p) { return along(p.starts.back(), p.dir.back(), img.dash_length()); }

// Draws the image of stream `stream` with label `label` into out [S * S] (0..255). Returns
// early (d.attempts = 0) once `stop` is set: another image has failed, and so has the run.
Drawn draw_image(const Setting& st, std::uint64_t stream, int label, bool solid, std::uint8_t* out,
                 const std::atomic<bool>& stop) {
  tnn::Rng rng(stream);
  const SizeRow& row = st.row;
  const int gap = row.gap + static_cast<int>(rng.below(static_cast<std::uint64_t>(row.gap_max - row.gap + 1)));
  Image img(row, gap);
  const int S = row.size;
  std::vector<Px> scratch, disc[4];
  Vec tips[4];  // origin 0, origin 1, end 0, end 1
  Drawn d{};
  d.label = label;
  bool placed = false;
  for (int attempt = 1; attempt <= kMaxTargetAttempts && !placed; ++attempt) {
    if (stop.load(std::memory_order_relaxed)) return Drawn{};
    d.attempts = attempt;
    img.clear();
    auto& paths = img.paths();
    paths.resize(2);
    const double lo = 2 * row.seed_distance, hi = S - 2 * row.seed_distance;
    paths[0].origin = {rng.uniform(lo, hi), rng.uniform(lo, hi)};
    paths[1].origin = along(paths[0].origin, rng.uniform(-kPi, kPi), row.seed_distance);
    bool ok = true;
    for (int k = 0; k < st.contour_length && ok; ++k)
      for (int i = 0; i < 2 && ok; ++i) ok = img.grow(paths[static_cast<std::size_t>(i)], i + 1, rng, scratch, nullptr);
    if (!ok) continue;
    // The four ends, each as a marker disc: clear of the other target path and of each other.
    for (int i = 0; i < 2; ++i) {
      tips[i] = paths[static_cast<std::size_t>(i)].origin;
      tips[2 + i] = path_end(img, paths[static_cast<std::size_t>(i)]);
    }
    for (int t = 0; t < 4; ++t) raster(tips[t], tips[t], row.marker_radius, disc[t]);
    for (int t = 0; t < 4 && ok; ++t) ok = img.clear_of_path(disc[t], t % 2 == 0 ? 2 : 1);
    for (int t = 0; t < 4 && ok; ++t)
      for (int u = t + 1; u < 4 && ok; ++u) ok = img.apart(disc[t], disc[u]);
    placed = ok;
  }
  if (!placed)
    tnn::fail<tnn::ValueError>(st.name, " at --size ", S, ": could not draw two separate paths of ", st.contour_length,
                               " dashes in ", kMaxTargetAttempts, " attempts; expected a setting that fits the image",
                               " (a shorter --contour-length or a larger --size)");
  auto& paths = img.paths();
  // Reserve the four ends for the markers: distractors keep clear of them.
  for (int t = 0; t < 4; ++t) img.claim(disc[t], t % 2 + 1, 1 << 14);

  // Which ends get the markers: one path's origin, and its own end (1) or the other's (0).
  const int first = static_cast<int>(rng.below(2));
  const int marked[2] = {first, 2 + (label == 1 ? first : 1 - first)};

  std::vector<Image::Undo> undo;
  for (int n = 0; n < st.distractors; ++n) {
    const int id = 3 + n;
    for (int attempt = 0; attempt < kDistractorTries; ++attempt) {
      Path p;
      const double r = img.stroke_radius();
      p.origin = {rng.uniform(kPadding + r, S - kPadding - r), rng.uniform(kPadding + r, S - kPadding - r)};
      bool ok = true;
      for (int k = 0; k < st.distractor_length && ok; ++k) ok = img.grow(p, id, rng, scratch, &undo);
      if (ok) {
        paths.push_back(std::move(p));
        ++d.distractors;
        undo.clear();
        break;
      }
      img.rollback(undo);
    }
  }

  // Render: coverage of the dashes (with --solid, the dashes and their gaps) and the markers.
  std::vector<float> v(static_cast<std::size_t>(S * S), 0.0f);
  auto paint = [&](const std::vector<Px>& px) {
    for (const Px& p : px) {
      if (p.y < 0 || p.x < 0 || p.y >= S || p.x >= S) continue;
      float& c = v[static_cast<std::size_t>(p.y * S + p.x)];
      c = std::max(c, static_cast<float>(p.count) / (kSub * kSub));
    }
  };
  for (const Path& p : paths)
    for (std::size_t k = 0; k < p.starts.size(); ++k) {
      const bool last = k + 1 == p.starts.size();
      // Dashes square-cut; --solid: round joints, so consecutive stretches share pixels.
      const double len = solid && !last ? img.step() : img.dash_length();
      raster(p.starts[k], along(p.starts[k], p.dir[k], len), img.stroke_radius(), scratch, solid ? Cap::Round : Cap::Flat);
      paint(scratch);
    }
  for (int m = 0; m < 2; ++m) {
    paint(disc[marked[m]]);
    d.marker[m][0] = static_cast<int>(std::floor(tips[marked[m]].y));
    d.marker[m][1] = static_cast<int>(std::floor(tips[marked[m]].x));
  }
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<std::uint8_t>(std::lround(255.0f * v[i]));
  return d;
}

template <class Table, class Get>
std::string names_of(const Table& table, Get get) {
  std::string s;
  for (const auto& r : table) s += (s.empty() ? "" : ", ") + get(r);
  return s;
}

Setting make_setting(const Options& o) {
  Setting st{};
  const SizeRow* row = nullptr;
  for (const SizeRow& r : kSizes)
    if (r.size == o.size) row = &r;
  if (!row)
    tnn::fail<tnn::ValueError>("--size: expected one of ",
                               names_of(kSizes, [](const SizeRow& r) { return std::to_string(r.size); }), ", got ", o.size);
  st.row = *row;
  const Difficulty* diff = nullptr;
  for (const Difficulty& d : kDifficulties)
    if (o.difficulty == d.name) diff = &d;
  if (!diff)
    tnn::fail<tnn::ValueError>("--difficulty: expected one of ",
                               names_of(kDifficulties, [](const Difficulty& d) { return std::string(d.name); }),
                               ", got '", tnn::detail::one_line(o.difficulty, 40), "'");
  st.contour_length = diff->contour_length;
  st.name = "--difficulty " + o.difficulty;
  if (o.contour_length != 0) {
    if (o.contour_length < 1 || o.contour_length > o.size)
      tnn::fail<tnn::ValueError>("--contour-length: expected 1 to ", o.size, " dashes (at most --size), got ",
                                 o.contour_length);
    st.contour_length = o.contour_length;
    st.name = "--contour-length " + std::to_string(o.contour_length);
  }
  st.distractor_length = std::max(1, st.contour_length / 3);
  st.distractors = row->distractor_budget / st.distractor_length;
  return st;
}

void run(const Options& o) {
  constexpr std::int64_t kMaxImages = 100000000;
  for (const auto& [flag, n] : {std::pair<const char*, std::int64_t>{"--train", o.train}, {"--valid", o.valid}, {"--test", o.test}})
    if (n < 0 || n > kMaxImages) tnn::fail<tnn::ValueError>(flag, ": expected 0 to ", kMaxImages, " images, got ", n);
  if (o.threads < 0 || o.threads > 1024)
    tnn::fail<tnn::ValueError>("--threads: expected 1 to 1024 (or 0 for all cores), got ", o.threads);
  const std::uint64_t seed = tnn::parse_seed(o.seed);
  const Setting st = make_setting(o);
  create_out_dir(o.out_dir);
  const Split splits[3] = {{"train", o.train}, {"valid", o.valid}, {"test", o.test}};
  std::vector<tnn::OutputLock> locks;  // one run per output at a time, for the whole run
  for (const Split& s : splits)  // refuse before any work, not after the training split
    if (s.count > 0) {
      const std::string path = (std::filesystem::path(o.out_dir) / (std::string(s.name) + ".safetensors")).string();
      tnn::check_output_path(path, "--out-dir");
      locks.push_back(tnn::OutputLock::acquire(path, "--out-dir"));
    }
#ifdef _OPENMP
  if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
  const int S = o.size;
  const tnn::Index pixels = static_cast<tnn::Index>(S) * S;
  std::printf("pathfinder %dx%d, %s: target paths of %d dashes, %d distractors of %d dashes%s%s\n", S, S,
              st.name.c_str(), st.contour_length, st.distractors, st.distractor_length, o.flat ? ", flat [M, 1, H*W, 1]" : "",
              o.solid ? ", solid (gaps filled, for checking)" : "");
  for (int si = 0; si < 3; ++si) {
    const Split& s = splits[si];
    const std::string path = (std::filesystem::path(o.out_dir) / (std::string(s.name) + ".safetensors")).string();
    if (s.count == 0) {
      std::printf("%s: 0 images, not written\n", s.name);
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const tnn::Index M = s.count;
    // Labels: floor(M / 2) ones, the rest zeros, in a seeded order (Fisher-Yates).
    tnn::Tensor<std::int32_t> labels({M});
    for (tnn::Index i = 0; i < M; ++i) labels[i] = i < M / 2 ? 1 : 0;
    tnn::Rng lrng(tnn::detail::stream_seed(seed, kLabelStream, static_cast<std::uint64_t>(si)));
    for (tnn::Index i = M - 1; i > 0; --i) std::swap(labels[i], labels[static_cast<tnn::Index>(lrng.below(std::uint64_t(i + 1)))]);

    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(M * pixels));
    tnn::Tensor<std::int32_t> markers;
    if (o.solid) markers.resize({M, 2, 2});
    std::atomic<bool> failed{false};
    std::string error;
    std::mutex error_mutex;
    std::atomic<std::int64_t> distractors{0}, attempts{0};
    const std::uint64_t split_seed = tnn::detail::stream_seed(seed, kImageStream, static_cast<std::uint64_t>(si));
#pragma omp parallel for schedule(dynamic, 64)
    for (tnn::Index i = 0; i < M; ++i) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        const Drawn d = draw_image(st, tnn::detail::stream_seed(split_seed, kImageStream, static_cast<std::uint64_t>(i)),
                                   labels[i], o.solid, bytes.data() + i * pixels, failed);
        distractors += d.distractors;
        attempts += d.attempts;
        if (o.solid)
          for (int m = 0; m < 2; ++m)
            for (int c = 0; c < 2; ++c) markers[(i * 2 + m) * 2 + c] = d.marker[m][c];
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) error = e.what();
      }
    }
    if (failed) throw tnn::ValueError(error);

    tnn::Tensor<std::int32_t> images(o.flat ? tnn::Shape{M, 1, pixels, 1} : tnn::Shape{M, S, S, 1});
    std::copy(bytes.begin(), bytes.end(), images.data());
    std::vector<std::uint8_t>().swap(bytes);
    tnn::SafetensorsWriter w;
    w.add("images", std::move(images), tnn::Dtype::U8);
    w.add("labels", labels, tnn::Dtype::I32);
    if (o.solid) w.add("markers", std::move(markers), tnn::Dtype::I32);
    w.set_metadata(tnn::kLabelsMetadataKey, nlohmann::json({"disconnected", "connected"}).dump());
    w.set_metadata("tnn.pathfinder", nlohmann::json{{"size", S},
                                                    {"difficulty", o.difficulty},
                                                    {"contour_length", st.contour_length},
                                                    {"distractor_length", st.distractor_length},
                                                    {"distractors", st.distractors},
                                                    {"seed", seed},
                                                    {"split", s.name},
                                                    {"flat", o.flat},
                                                    {"solid", o.solid}}
                                         .dump());
    w.write(path);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %lld images (%lld connected, %lld disconnected), %.2f distractors and %.2f target attempts per image, "
                "%.1f s\n",
                path.c_str(), (long long)M, (long long)(M / 2), (long long)(M - M / 2), double(distractors) / double(M),
                double(attempts) / double(M), secs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tnn-pathfinder: generate the Long-Range Arena Pathfinder task (image files for tnn train --task image)"};
  Options o;
  app.add_option("--out-dir,--out", o.out_dir, "Directory for train.safetensors, valid.safetensors, test.safetensors")
      ->required();
  app.add_option("--train", o.train, "Training images (LRA: 160000)")->capture_default_str();
  app.add_option("--valid", o.valid, "Validation images (LRA: 20000)")->capture_default_str();
  app.add_option("--test", o.test, "Test images (LRA: 20000)")->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed, 0 to 2^64 - 1: the same seed and options give the same files")
      ->capture_default_str();
  app.add_option("--difficulty", o.difficulty,
                 "Contour length of the target paths: easy (6 dashes), intermediate (9), hard (14; LRA's reported task)")
      ->capture_default_str();
  app.add_option("--contour-length", o.contour_length, "Dashes per target path, instead of --difficulty's");
  app.add_option("--size", o.size, "Image side in pixels: 32 (LRA Pathfinder) or 128 (Path-X)")->capture_default_str();
  app.add_flag("--flat", o.flat, "Store images as [M, 1, H*W, 1] (one row of pixels: a 1-D TNN with --patch-size 1)");
  app.add_flag("--solid", o.solid, "Fill the gaps between dashes and add marker positions (for checking labels)");
  app.add_option("--threads", o.threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  return run_generator(app, argc, argv, "tnn-pathfinder", "fewer images per split need less", [&] { run(o); });
}
