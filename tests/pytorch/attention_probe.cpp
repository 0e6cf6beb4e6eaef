// The attention layer (layers/attention.hpp) and sinusoidal positions (layers/positions.hpp)
// run on tensors from a safetensors file, for check_attention.py to compare with PyTorch:
//
//   attention_probe IN OUT
//
// IN: x, dy [B, N, D] (F64 runs the layer in double, F32 in float), the layer's parameters
// under their names (q_proj.weight, ...), optionally lengths (I32 [B]); metadata heads, causal
// ("true"/"false"), method (auto/direct/tiled), tile_q, tile_k, position_offset.
// OUT (the dtype of x): y, grad.x, grad.<parameter> after one forward and backward; y_step, the
// outputs of KvCache steps of one position each (causal layers without lengths); positions,
// [1, N, D] sinusoidal positions from position_offset on.
#include <cstdio>
#include <exception>
#include <string>

#include "tnn/io/safetensors.hpp"
#include "tnn/layers/attention.hpp"
#include "tnn/layers/positions.hpp"

using namespace tnn;

namespace {

template <class T>
void run(const SafetensorsFile& in, const std::string& out_path) {
  const Tensor<T> x = in.get<T>("x"), dy = in.get<T>("dy");
  if (x.rank() != 3) fail<ShapeError>("attention_probe x: expected shape [B, N, D], got ", shape_str(x.shape()));
  const Index B = x.dim(0), N = x.dim(1), D = x.dim(2);
  const bool causal = in.metadata_at("causal") == "true";
  Attention<T> a(D, std::stol(in.metadata_at("heads")), causal);
  a.set_method(parse_attention_method(in.metadata_at("method")));
  a.set_tiles(std::stol(in.metadata_at("tile_q")), std::stol(in.metadata_at("tile_k")));
  a.visit("", [&](const std::string& name, Param<T>& p) {
    const Shape want = p.shape();
    in.get_into(name, p.value);
    p.value.expect_shape(want, name.c_str());
  });
  Tensor<std::int32_t> lengths;
  const bool ragged = in.has("lengths");
  if (ragged) in.get_into("lengths", lengths);

  typename Attention<T>::Cache c;
  Tensor<T> y, dx;
  a.forward(x, y, c, ragged ? &lengths : nullptr);
  a.backward(x, dy, c, &dx);

  SafetensorsWriter w;
  w.add("y", y);
  w.add("grad.x", dx);
  a.visit("", [&](const std::string& name, const Param<T>& p) { w.add("grad." + name, p.grad); });
  if (causal && !ragged) {
    typename Attention<T>::KvCache kv;
    Tensor<T> xt({B, 1, D}), yt, ys({B, N, D});
    for (Index t = 0; t < N; ++t) {
      for (Index b = 0; b < B; ++b) std::copy(x.data() + (b * N + t) * D, x.data() + (b * N + t + 1) * D, xt.data() + b * D);
      a.step(xt, yt, kv);
      for (Index b = 0; b < B; ++b) std::copy(yt.data() + b * D, yt.data() + (b + 1) * D, ys.data() + (b * N + t) * D);
    }
    w.add("y_step", ys);
  }
  Tensor<T> pos({1, N, D});
  add_sinusoidal_positions(pos, std::stol(in.metadata_at("position_offset")));
  w.add("positions", pos);
  w.write(out_path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: attention_probe IN.safetensors OUT.safetensors\n");
    return 2;
  }
  try {
    const SafetensorsFile in = read_safetensors(argv[1]);
    if (in.dtype("x") == Dtype::F64)
      run<double>(in, argv[2]);
    else
      run<float>(in, argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
