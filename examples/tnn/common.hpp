// Helpers shared by the `tnn` subcommands.
#pragma once

#include <cstdint>
#include <string>

#include <tnn/core/error.hpp>
#include <tnn/core/tensor.hpp>
#include <tnn/train/safetensors.hpp>

namespace tnncli {

struct Batch {
  tnn::Tensor<std::int32_t> tokens, targets;  // [B, N]
};

// Reads a `tnn grad` batch file, checking everything a hostile file could get
// wrong: both tensors present, I32, the same [B >= 1, N >= 1] shape, token ids in
// [0, V), targets in [-1, V).
inline Batch read_batch_file(const std::string& path, tnn::Index vocab) {
  const tnn::SafetensorsFile f = tnn::read_safetensors(path);
  const std::string where = "batch '" + path + "'";
  Batch b;
  for (const char* name : {"tokens", "targets"}) {
    if (!f.has(name)) tnn::fail<tnn::FormatError>(where, ": expected a tensor named '", name, "', it is missing");
    if (f.dtype(name) != tnn::Dtype::I32)
      tnn::fail<tnn::FormatError>(where, ": tensor '", name, "': expected dtype I32, got ", tnn::dtype_name(f.dtype(name)));
    const tnn::Shape& s = f.shape(name);
    if (s.size() != 2 || s[0] < 1 || s[1] < 1)
      tnn::fail<tnn::FormatError>(where, ": tensor '", name, "': expected shape [B >= 1, N >= 1], got ",
                                  tnn::shape_str(s));
  }
  f.get_into("tokens", b.tokens);
  f.get_into("targets", b.targets);
  if (b.tokens.shape() != b.targets.shape())
    tnn::fail<tnn::FormatError>(where, ": expected 'targets' shaped like 'tokens' ", tnn::shape_str(b.tokens.shape()),
                                ", got ", tnn::shape_str(b.targets.shape()));
  const tnn::Index N = b.tokens.dim(1);
  for (tnn::Index i = 0; i < b.tokens.size(); ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= vocab)
      tnn::fail<tnn::ValueError>(where, ": tokens[", i / N, ", ", i % N, "] = ", b.tokens[i],
                                 ": expected a token id in [0, ", vocab, ")");
    if (b.targets[i] < -1 || b.targets[i] >= vocab)
      tnn::fail<tnn::ValueError>(where, ": targets[", i / N, ", ", i % N, "] = ", b.targets[i],
                                 ": expected -1 (ignored) or a token id in [0, ", vocab, ")");
  }
  return b;
}

}  // namespace tnncli
