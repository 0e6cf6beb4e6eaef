// libFuzzer target: the training-state reader. The input is read two ways: as the JSON text of
// a training-state file's "tnn.optim.extra" (tnn::parse_training_state, then json_differences
// against a fixed identity), and as a whole training-state safetensors file whose metadata
// holds that JSON. A tnn::Error is the expected answer to bad input; a crash, a sanitizer
// report, any other exception, or an accepted state that does not survive dump -> parse
// unchanged, is a finding.
#include <cstdint>
#include <string>

#include "tnn/io/safetensors.hpp"
#include "tnn/train/state.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_training_state";
using tnn_fuzz::check;

namespace {

void read_state(const std::string& text) {
  const tnn::TrainingStateJson s = tnn::parse_training_state(text, "fuzz");
  check(s.adamw_step >= 0 && s.bad_steps >= 0, "negative count accepted");
  const nlohmann::json again = {{"identity", s.identity}, {"adamw_step", s.adamw_step}, {"bad_steps", s.bad_steps}};
  const tnn::TrainingStateJson t = tnn::parse_training_state(again.dump(), "fuzz again");
  check(t.identity == s.identity && t.adamw_step == s.adamw_step && t.bad_steps == s.bad_steps,
        "dump -> parse changed the state");
  const nlohmann::json mine = {{"steps", 100}, {"config", {{"dim", 64}}}};
  const std::string diff = tnn::json_differences(s.identity, mine);
  check(diff.size() < 4096 && diff.find('\n') == std::string::npos, "differences not one bounded line");
  check(tnn::json_differences(s.identity, s.identity).empty(), "an identity differs from itself");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tnn_fuzz::errors_one_line([&] { read_state(std::string(reinterpret_cast<const char*>(data), size)); });
  tnn_fuzz::errors_one_line([&] {
    const tnn::SafetensorsFile f = tnn::parse_safetensors(data, size, "fuzz.optim.safetensors");
    read_state(f.metadata_at("tnn.optim.extra"));
  });
  return 0;
}
