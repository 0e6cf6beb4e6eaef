// libFuzzer target: the `tnn grad` batch reader (tnn::batch_from_safetensors over
// parse_safetensors) on arbitrary bytes. A tnn::Error is the expected answer to a bad file; a
// crash, a sanitizer report, any other exception, or an accepted batch breaking its contract
// (same [B, N] shapes, ids in range), is a finding.
#include <cstdint>
#include <string>

#include "tnn/train/data.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_batch";
using tnn_fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr tnn::Index kVocab = 257;
  tnn_fuzz::errors_one_line([&] {
    const tnn::SafetensorsFile f = tnn::parse_safetensors(data, size, "fuzz-batch.safetensors");
    const tnn::Batch b = tnn::batch_from_safetensors(f, kVocab, "batch 'fuzz'");
    check(b.tokens.rank() == 2 && b.tokens.shape() == b.targets.shape(), "shapes differ");
    check(b.tokens.dim(0) >= 1 && b.tokens.dim(1) >= 1, "empty batch accepted");
    for (tnn::Index i = 0; i < b.tokens.size(); ++i) {
      check(b.tokens[i] >= 0 && b.tokens[i] < kVocab, "token id out of range accepted");
      check(b.targets[i] >= -1 && b.targets[i] < kVocab, "target out of range accepted");
    }
  });
  return 0;
}
