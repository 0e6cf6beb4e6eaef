// The program every consumer project builds (find_package of the installed tnn,
// add_subdirectory of the source tree, and a plain compiler command from pkg-config),
// with -Wall -Wextra -Wpedantic -Wshadow -Werror: includes the umbrella header, runs the
// Toeplitz kernel and checks it against a product written out by hand, then one training
// step of a small language model (so the layers' and the model's templates are
// instantiated under the consumer's warnings) and a JSON round trip of its config.
// Returns non-zero on any mismatch.
#include <tnn/tnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace {

// A small causal model: forward, backward, and the loss must be finite and near ln V
// at initialization; some gradient must be non-zero; the config must survive JSON.
int check_model() {
  const tnn::TnnConfig cfg =
      tnn::TnnConfig::parse(R"({"vocab_size": 32, "dim": 16, "layers": 2, "expand_ratio": 2, "rpe_dim": 8})");
  tnn::TnnLM<float> model(cfg);
  model.init_weights(/*seed=*/1);
  const tnn::Index B = 2, N = 24;
  tnn::Tensor<std::int32_t> tokens({B, N}), targets({B, N});
  for (tnn::Index i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<std::int32_t>((7 * i + 3) % cfg.vocab_size);
    targets[i] = static_cast<std::int32_t>((5 * i + 1) % cfg.vocab_size);
  }
  model.zero_grad();
  const float loss = model.forward(tokens, targets);
  model.backward();
  double grad_sq = 0;
  for (auto& np : model.named_parameters())
    for (tnn::Index i = 0; i < np.second->grad.size(); ++i) grad_sq += double(np.second->grad[i]) * np.second->grad[i];
  const bool json_ok = tnn::TnnConfig::from_json(cfg.to_json()).to_json() == cfg.to_json();
  std::printf("model: loss %.4f (ln V = %.4f), |grad| %.3e, config JSON round trip %s\n", double(loss),
              std::log(double(cfg.vocab_size)), std::sqrt(grad_sq), json_ok ? "ok" : "FAILED");
  const bool ok = std::isfinite(loss) && std::abs(double(loss) - std::log(double(cfg.vocab_size))) < 1.0 &&
                  grad_sq > 0 && std::isfinite(grad_sq) && json_ok;
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  using tnn::Index;
  const Index N = 300, C = 3;  // long enough for the FFT path
  int failures = check_model();
  for (bool causal : {false, true}) {
    tnn::Tensor<double> t({tnn::toeplitz_num_coeffs(N, causal), C}), x({1, N, C}), y;
    for (Index i = 0; i < t.size(); ++i) t[i] = std::sin(0.37 * double(i));
    for (Index i = 0; i < x.size(); ++i) x[i] = std::cos(0.11 * double(i));
    tnn::ToeplitzOp<double> op;
    op.prepare(t, N, causal);
    op.forward(x, y);
    const Index off = causal ? 0 : N - 1;
    double err = 0;
    for (Index c = 0; c < C; ++c)
      for (Index i = 0; i < N; ++i) {
        double acc = 0;
        for (Index j = 0; j <= (causal ? i : N - 1); ++j) acc += t[(i - j + off) * C + c] * x[j * C + c];
        err = std::max(err, std::abs(acc - y[i * C + c]));
      }
    std::printf("causal=%d fft=%d max error %.3e\n", int(causal), int(op.uses_fft()), err);
    if (!op.uses_fft() || !(err < 1e-9)) ++failures;
  }
  return failures == 0 ? 0 : 1;
}
