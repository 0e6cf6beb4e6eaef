// What a checkpoint remembers of its training data (metadata "tnn.data"): the training file's
// size and hash and the rule that held part of it out for validation. `tnn eval` on that same
// file then scores only the held-out part by default: numbers on text the model was trained on
// would flatter it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tnn/core/error.hpp>
#include <tnn/dist/communicator.hpp>  // hash_bytes (FNV-1a 64)
#include <tnn/io/json.hpp>
#include <tnn/io/safetensors.hpp>

namespace tnncli {

inline constexpr const char* kDataMetadataKey = "tnn.data";

struct DataRecord {
  // How the validation part was taken from the training file:
  //   none           nothing (a separate --valid file, or --valid-fraction 0): all of it was trained on
  //   tail           the last `fraction` of its bytes
  //   blocks         every round(1 / fraction)-th block of `block` bytes
  //   tail-examples  the last round(fraction * examples) examples (lines, images)
  std::string held_out = "none";
  double fraction = 0;
  std::int64_t block = 0;
  std::string file;          // the path training was given (for messages)
  std::uint64_t bytes = 0;   // its size
  std::uint64_t hash = 0;    // FNV-1a 64 of its bytes

  static std::uint64_t hash_of(const std::vector<std::uint8_t>& b) {
    return tnn::dist::Communicator::hash_bytes(b.data(), b.size());
  }
  static std::string hex(std::uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }

  std::string to_json() const {
    return nlohmann::json{{"file", file},         {"bytes", bytes},     {"fnv1a64", hex(hash)},
                          {"held_out", held_out}, {"fraction", fraction}, {"block", block}}
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  // The record of checkpoint `path`; none for a checkpoint written before records were kept.
  // A malformed one is a FormatError naming the file.
  static std::optional<DataRecord> of_checkpoint(const std::string& path) {
    const tnn::SafetensorsHeader h = tnn::read_safetensors_header(path);
    auto it = h.metadata.find(kDataMetadataKey);
    if (it == h.metadata.end()) return std::nullopt;
    const std::string where = "checkpoint " + tnn::quote_path(path) + ": metadata '" + kDataMetadataKey + "'";
    const nlohmann::json j = tnn::parse_json_strict<tnn::FormatError>(it->second, where);
    auto bad = [&](const char* what) -> DataRecord {
      tnn::fail<tnn::FormatError>(where, ": expected ", what, ", got ", tnn::json_brief(j));
    };
    if (!j.is_object()) return bad("an object");
    DataRecord r;
    try {
      r.file = j.at("file").get<std::string>();
      r.bytes = j.at("bytes").get<std::uint64_t>();
      r.hash = std::stoull(j.at("fnv1a64").get<std::string>(), nullptr, 16);
      r.held_out = j.at("held_out").get<std::string>();
      r.fraction = j.at("fraction").get<double>();
      r.block = j.at("block").get<std::int64_t>();
    } catch (const std::exception&) {
      return bad("{file, bytes, fnv1a64, held_out, fraction, block}");
    }
    const bool known = r.held_out == "none" || r.held_out == "tail" || r.held_out == "blocks" ||
                       r.held_out == "tail-examples";
    if (!known || !(r.fraction >= 0 && r.fraction < 1) || r.block < 0) return bad("a known held-out rule");
    return r;
  }

  bool is_file(const std::vector<std::uint8_t>& b) const { return b.size() == bytes && hash_of(b) == hash; }

  // "its held-out 5% (one block in 20, blocks of 65536 bytes)" and the like.
  std::string describe() const {
    char buf[160];
    if (held_out == "blocks")
      std::snprintf(buf, sizeof buf, "its held-out %g%% (one block in %lld, blocks of %lld bytes)", 100 * fraction,
                    static_cast<long long>(std::llround(1 / fraction)), static_cast<long long>(block));
    else if (held_out == "tail")
      std::snprintf(buf, sizeof buf, "its held-out last %g%% of bytes", 100 * fraction);
    else
      std::snprintf(buf, sizeof buf, "its held-out last %g%% of examples", 100 * fraction);
    return buf;
  }

  // The examples a tail-examples rule holds out of n (at least one stays for training).
  std::int64_t held_examples(std::int64_t n) const {
    const auto held = static_cast<std::int64_t>(std::llround(fraction * double(n)));
    return std::min<std::int64_t>(held, n - 1);
  }
};

}  // namespace tnncli
