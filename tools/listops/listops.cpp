// tnn-listops: the Long-Range Arena's ListOps task (Tay et al., 2021; data generator
// lra_benchmarks/data/listops.py), regenerated here, seeded and reproducible, as the TSV that
// `tnn train --task classify` reads: one example per line, `label<TAB>text`.
//
// The rules are LRA's: a node below the maximum depth is an operator with probability 0.25
// (else a digit 0-9); an operator draws 2..max_args arguments (each a node one level deeper),
// then its kind uniformly from MAX, MIN, MED (the median, truncated to an integer when the
// count is even, as int(np.median(..))), SM (sum mod 10). A tree's length counts digits,
// operators and closing brackets (LRA's token count); trees are kept when
// min_length < length < max_length, and duplicates are dropped. The label is the value, 0-9.
// Arguments: LRA's generator defaults to max_args 10 (the original ListOps of Nangia & Bowman
// has 5). With 5, trees of 500+ tokens are practically never drawn (the expected number of
// children of a node is 0.25 * 3.5 < 1: none in 200,000 draws), so 10 is the default here too.
//
// Text formats: `compact` (default) writes one byte per LRA token, so the byte length is the
// token length: digits '0'-'9', operators 'X' (MAX), 'N' (MIN), 'D' (MED), 'S' (SM), and ']'.
// `lra` writes LRA's own text, e.g. "( ( ( [MAX 2 ) 9 ) ] )" (about 5x longer in bytes).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <new>
#include <utility>
#include <iostream>
#include <string>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>

#include <tnn/core/error.hpp>
#include <tnn/core/rng.hpp>
#include <tnn/io/file.hpp>
#include <tnn/io/stream.hpp>

#include "../generator_main.hpp"

namespace {

enum Op { Max = 0, Min = 1, Med = 2, Sm = 3 };
constexpr const char kCompactOp[4] = {'X', 'N', 'D', 'S'};
constexpr const char* kLraOp[4] = {"[MAX", "[MIN", "[MED", "[SM"};

struct Options {
  std::string out_dir;
  std::int64_t train = 96000, valid = 2000, test = 2000;
  std::string seed = "1";  // tnn::parse_seed: CLI11 would clamp a value beyond 64 bits
  int max_depth = 10, max_args = 10;
  std::int64_t min_length = 500, max_length = 2000;
  std::string format = "compact";
};

int apply(Op op, std::vector<int>& args) {
  switch (op) {
    case Max: return *std::max_element(args.begin(), args.end());
    case Min: return *std::min_element(args.begin(), args.end());
    case Sm: {
      int s = 0;
      for (int a : args) s += a;
      return s % 10;
    }
    case Med: {
      std::sort(args.begin(), args.end());
      const std::size_t n = args.size();
      // int(np.median(x)): the mean of the two middle values when n is even, truncated.
      return n % 2 ? args[n / 2] : (args[n / 2 - 1] + args[n / 2]) / 2;
    }
  }
  return 0;
}

// One tree in LRA's draw order (r, argument count, the arguments, then the operator), its
// tokens appended to `compact` (one byte each). Returns the value, or -1 once the tree is
// longer than `limit` tokens (it would be rejected; the draws stop there, deterministically).
struct Generator {
  tnn::Rng rng;
  int max_depth, max_args;
  std::int64_t limit;
  std::string compact;

  int node(int depth) {
    const double r = depth < max_depth ? rng.uniform() : 1.0;
    if (r > 0.25) {
      const int v = static_cast<int>(rng.below(10));
      compact.push_back(static_cast<char>('0' + v));
      return static_cast<std::int64_t>(compact.size()) > limit ? -1 : v;
    }
    const int n = 2 + static_cast<int>(rng.below(static_cast<std::uint64_t>(max_args - 1)));
    const std::size_t op_at = compact.size();
    compact.push_back('?');  // the operator, drawn after its arguments
    std::vector<int> args;
    args.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int v = node(depth + 1);
      if (v < 0) return -1;
      args.push_back(v);
    }
    const Op op = static_cast<Op>(rng.below(4));
    compact[op_at] = kCompactOp[op];
    compact.push_back(']');
    if (static_cast<std::int64_t>(compact.size()) > limit) return -1;
    return apply(op, args);
  }
};

// LRA's to_string of the same tree: every operator application nests one "( .. )" per argument.
std::string to_lra(const std::string& compact) {
  // Recursive over the compact form: an operator, its arguments, ']'.
  std::size_t pos = 0;
  std::function<std::string()> rec = [&]() -> std::string {
    const char c = compact[pos++];
    if (c >= '0' && c <= '9') return std::string(1, c);
    const int op = static_cast<int>(std::find(kCompactOp, kCompactOp + 4, c) - kCompactOp);
    std::string t = kLraOp[op];
    while (compact[pos] != ']') {
      const std::string a = rec();
      t = "( " + t + " " + a + " )";
    }
    ++pos;
    return "( " + t + " ] )";
  };
  return rec();
}

// The most tokens a tree can have: a node above max_depth is an operator with max_args
// arguments (itself, its arguments and ']'), one at max_depth is a digit. Saturates at `cap`.
std::int64_t longest_tree(int max_depth, int max_args, std::int64_t cap) {
  std::int64_t len = 1;  // depth max_depth
  for (int d = max_depth - 1; d >= 1 && len < cap; --d)
    len = len > (cap - 2) / max_args ? cap : 2 + static_cast<std::int64_t>(max_args) * len;
  return std::min(len, cap);
}

// Draws in a row that may find no new tree in the length range before the settings are called
// impossible. LRA's settings keep about one tree in 20 (duplicates practically never), so this
// bound is never near for them; a range that admits too few distinct trees (or trees too rare
// to draw) hits it in seconds instead of drawing forever.
constexpr std::int64_t kMaxDrawsWithoutKeep = 2000000;

void run(const Options& o) {
  if (o.max_args < 2 || o.max_args > 1000) tnn::fail<tnn::ValueError>("--max-args: expected 2 to 1000, got ", o.max_args);
  if (o.max_depth < 1 || o.max_depth > 1000) tnn::fail<tnn::ValueError>("--max-depth: expected 1 to 1000, got ", o.max_depth);
  constexpr std::int64_t kMaxCount = 100000000;
  for (const auto& [flag, n] : {std::pair<const char*, std::int64_t>{"--train", o.train}, {"--valid", o.valid}, {"--test", o.test}})
    if (n < 0 || n > kMaxCount) tnn::fail<tnn::ValueError>(flag, ": expected 0 to ", kMaxCount, " examples, got ", n);
  const std::uint64_t seed = tnn::parse_seed(o.seed);
  if (o.min_length < 0 || o.max_length > (std::int64_t(1) << 40) || o.min_length + 1 >= o.max_length)
    tnn::fail<tnn::ValueError>("--min-length/--max-length: expected 0 <= min, min + 1 < max <= 2^40 (lengths strictly "
                               "between), got ", o.min_length, " and ", o.max_length);
  const std::int64_t longest = longest_tree(o.max_depth, o.max_args, o.max_length);
  if (longest <= o.min_length)
    tnn::fail<tnn::ValueError>("--min-length ", o.min_length, ": trees of --max-depth ", o.max_depth, " and --max-args ",
                               o.max_args, " have at most ", longest, " tokens; expected a range they can reach");
  create_out_dir(o.out_dir);
  const Split splits[3] = {{"train", o.train}, {"valid", o.valid}, {"test", o.test}};
  // Every output is checked and locked before any work: one run per directory at a time.
  std::vector<tnn::OutputLock> locks;
  for (const Split& s : splits) {
    const std::string path = (std::filesystem::path(o.out_dir) / (std::string(s.name) + ".tsv")).string();
    tnn::check_output_path(path, "--out-dir");
    locks.push_back(tnn::OutputLock::acquire(path, "--out-dir"));
  }
  Generator g{tnn::Rng(seed), o.max_depth, o.max_args, o.max_length - 1, {}};
  std::unordered_set<std::string> seen;
  const std::int64_t total = o.train + o.valid + o.test;
  std::int64_t made = 0, tried = 0;
  for (const Split& s : splits) {
    const std::string path = (std::filesystem::path(o.out_dir) / (std::string(s.name) + ".tsv")).string();
    std::int64_t counts[10] = {};
    // Written as drawn, to a temporary renamed into place at the end; a failure (a full disk)
    // removes the temporary and leaves an earlier file whole.
    tnn::write_file_atomic_streamed(path, [&](auto& sink) {
      std::string line;
      std::int64_t misses = 0;
      for (std::int64_t i = 0; i < s.count;) {
        g.compact.clear();
        const int v = g.node(1);
        ++tried;
        const auto len = static_cast<std::int64_t>(g.compact.size());
        if (v < 0 || len <= o.min_length || len >= o.max_length || !seen.insert(g.compact).second) {
          if (++misses == kMaxDrawsWithoutKeep)
            tnn::fail<tnn::ValueError>("--min-length ", o.min_length, " --max-length ", o.max_length, " --max-depth ",
                                       o.max_depth, " --max-args ", o.max_args, ": no new tree in ", kMaxDrawsWithoutKeep,
                                       " draws after ", made, " of ", total,
                                       " examples; expected a range with enough distinct trees (widen it or ask fewer)");
          continue;
        }
        misses = 0;
        line = std::to_string(v) + '\t' + (o.format == "lra" ? to_lra(g.compact) : g.compact) + '\n';
        sink(reinterpret_cast<const std::uint8_t*>(line.data()), line.size());
        ++counts[v];
        ++i;
        if (++made % 10000 == 0) std::fprintf(stderr, "listops: %lld / %lld examples\n", (long long)made, (long long)total);
      }
    });
    std::printf("%s: %lld examples, labels 0-9:", path.c_str(), (long long)s.count);
    for (std::int64_t c : counts) std::printf(" %lld", (long long)c);
    std::printf("\n");
  }
  std::printf("trees drawn: %lld (kept %lld)\n", (long long)tried, (long long)made);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tnn-listops: generate the Long-Range Arena ListOps task (TSV: label<TAB>text)"};
  Options o;
  app.add_option("--out-dir", o.out_dir, "Directory for train.tsv, valid.tsv, test.tsv")->required();
  app.add_option("--train", o.train, "Training examples (LRA: 96000)")->capture_default_str();
  app.add_option("--valid", o.valid, "Validation examples (LRA: 2000)")->capture_default_str();
  app.add_option("--test", o.test, "Test examples (LRA: 2000)")->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed, 0 to 2^64 - 1: the same seed and options give the same files")
      ->capture_default_str();
  app.add_option("--max-depth", o.max_depth, "Maximum tree depth (LRA: 10)")->capture_default_str();
  app.add_option("--max-args", o.max_args, "Maximum arguments per operator (LRA's generator: 10)")->capture_default_str();
  app.add_option("--min-length", o.min_length, "Keep trees longer than this many tokens (LRA: 500)")->capture_default_str();
  app.add_option("--max-length", o.max_length, "Keep trees shorter than this many tokens (LRA: 2000)")->capture_default_str();
  app.add_option("--format", o.format, "compact: one byte per token; lra: LRA's text with brackets")
      ->check(CLI::IsMember({"compact", "lra"}))
      ->capture_default_str();
  return run_generator(app, argc, argv, "tnn-listops", "fewer examples need less", [&] { run(o); });
}
