// Load a checkpoint and sample text from it with exact incremental decoding.
//   sample_lm CHECKPOINT [PROMPT]
#include <cstdio>
#include <string>

#include <tnn/tnn.hpp>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CHECKPOINT.safetensors [PROMPT]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "And it came to pass";

  auto model = tnn::load_lm<float>(argv[1]);  // config (in the file's metadata) and weights in one call

  tnn::IncrementalDecoder<float> decoder(model);  // keeps each layer's history: O(context) per byte
  tnn::SamplingConfig how;
  how.temperature = 0.7;
  how.top_k = 40;
  tnn::Rng rng(/*seed=*/42);

  const tnn::Tensor<float>* logits = nullptr;
  for (unsigned char c : prompt) logits = &decoder.step(c);  // feed the prompt
  std::printf("%s", prompt.c_str());
  for (int i = 0; i < 300; ++i) {
    const std::int32_t next = tnn::sample_token(logits->data(), model.config().vocab_size, how, rng);
    std::putchar(next);
    logits = &decoder.step(next);
  }
  std::putchar('\n');
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "sample_lm: %s\n", e.what());
  return 1;
}
