// libFuzzer target: TnnConfig::parse on arbitrary text. A tnn::Error (ConfigError) is the
// expected answer to bad input; a crash, a sanitizer report, any other exception, or a config
// that does not survive to_json -> from_json unchanged, is a finding.
#include <cstdint>
#include <string>

#include "tnn/model/config.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_config";

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const tnn::TnnConfig c = tnn::TnnConfig::parse(std::string(reinterpret_cast<const char*>(data), size));
    const nlohmann::json j = c.to_json();
    const tnn::TnnConfig d = tnn::TnnConfig::from_json(j);
    tnn_fuzz::check(d.to_json() == j, "to_json -> from_json changed the config");
  } catch (const tnn::Error&) {
  }
  return 0;
}
