// libFuzzer target: parse_safetensors on arbitrary bytes. A tnn::Error is the expected answer
// to a bad file; a crash, a sanitizer report, any other exception, or an accepted file that
// does not survive decode -> write -> parse -> write unchanged, is a finding.
#include <cstdint>
#include <optional>
#include <vector>

#include "tnn/io/safetensors.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_safetensors";
using tnn_fuzz::check;

namespace {

// Decodes every tensor in its own type and writes it all again.
std::vector<std::uint8_t> rewrite(const tnn::SafetensorsFile& f) {
  tnn::SafetensorsWriter w;
  for (const std::string& n : f.names()) {
    switch (f.dtype(n)) {
      case tnn::Dtype::F32: w.add(n, f.get<float>(n)); break;
      case tnn::Dtype::F64: w.add(n, f.get<double>(n)); break;
      case tnn::Dtype::I32: w.add(n, f.get<std::int32_t>(n)); break;
      case tnn::Dtype::I64: w.add(n, f.get<std::int64_t>(n)); break;
      case tnn::Dtype::U8: w.add(n, f.get<std::int32_t>(n), tnn::Dtype::U8); break;
    }
  }
  for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
  return w.serialize();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::optional<tnn::SafetensorsFile> f;
  try {
    f.emplace(tnn::parse_safetensors(data, size, "fuzz-input"));
  } catch (const tnn::Error&) {
    return 0;  // what a bad file should get
  }
  // A file the reader accepted must decode, and rewrite without any error (no try here).
  const std::vector<std::uint8_t> once = rewrite(*f);
  const tnn::SafetensorsFile g = tnn::parse_safetensors(once.data(), once.size(), "rewritten");
  check(g.names() == f->names(), "names changed by a rewrite");
  check(g.metadata() == f->metadata(), "metadata changed by a rewrite");
  for (const std::string& n : f->names())
    check(g.dtype(n) == f->dtype(n) && g.shape(n) == f->shape(n), "dtype or shape changed by a rewrite");
  check(rewrite(g) == once, "writing twice gave different bytes");
  return 0;
}
