// libFuzzer target: TnnConfig::parse on arbitrary text. A tnn::Error (ConfigError) is the
// expected answer to bad input; a crash, a sanitizer report, any other exception, or a config
// that does not survive to_json -> from_json unchanged, is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tnn/model/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const tnn::TnnConfig c = tnn::TnnConfig::parse(std::string(reinterpret_cast<const char*>(data), size));
    const nlohmann::json j = c.to_json();
    const tnn::TnnConfig d = tnn::TnnConfig::from_json(j);
    if (d.to_json() != j) {
      std::fprintf(stderr, "fuzz_config: to_json -> from_json changed the config\n");
      std::abort();
    }
  } catch (const tnn::Error&) {
  }
  return 0;
}
