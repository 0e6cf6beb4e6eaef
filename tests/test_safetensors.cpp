#include <gtest/gtest.h>

#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "temp_files.hpp"
#include "tnn/io/safetensors.hpp"

namespace fs = std::filesystem;
using tnn::Dtype;
using tnn::Index;
using tnn::SafetensorsWriter;
using tnn::Tensor;
using tnn_test::Bytes;
using tnn_test::read_bytes;
using tnn_test::TempDir;
using tnn_test::write_bytes;

namespace {

// 8-byte little-endian length, the header text, then the data.
Bytes make_file(const std::string& header, const Bytes& data = {}) {
  // Built byte by byte: GCC 12 warns (-Warray-bounds, falsely) about vector::insert here.
  Bytes out;
  out.reserve(8 + header.size() + data.size());
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  for (char c : header) out.push_back(static_cast<std::uint8_t>(c));
  for (std::uint8_t b : data) out.push_back(b);
  return out;
}

tnn::SafetensorsFile parse(const Bytes& b) { return tnn::parse_safetensors(b.data(), b.size(), "bad.safetensors"); }

// The FormatError message parse() gives, or a note that there was none.
std::string format_error(const Bytes& b) {
  try {
    parse(b);
  } catch (const tnn::FormatError& e) {
    return e.what();
  }
  return "<no FormatError>";
}

// Every piece must appear in the message; the label always does.
void expect_format_error(const Bytes& b, std::vector<std::string> pieces) {
  const std::string msg = format_error(b);
  pieces.push_back("bad.safetensors");
  for (const auto& p : pieces) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

Bytes zeros(std::size_t n) { return Bytes(n, 0); }

template <class T>
Tensor<T> iota(tnn::Shape shape, T start, T step) {
  Tensor<T> t(shape);
  for (Index i = 0; i < t.size(); ++i) t[i] = start + step * static_cast<T>(i);
  return t;
}

template <class T>
void expect_equal(const Tensor<T>& a, const Tensor<T>& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (Index i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "element " << i;
}

// A small file with every dtype, metadata, a scalar and an empty tensor.
SafetensorsWriter sample_writer() {
  SafetensorsWriter w;
  w.add("f32", iota<float>({2, 3}, -1.5f, 0.25f));
  w.add("f64", iota<double>({3}, 1.0 / 3.0, 1e-300));
  w.add("i32", iota<std::int32_t>({2, 2}, -2, 7));
  w.add("i64", iota<std::int64_t>({2}, std::int64_t(1) << 40, -(std::int64_t(1) << 41)));
  w.add("scalar", Tensor<double>(tnn::Shape{}, 42.0));
  w.add("empty", Tensor<float>({0, 3}));
  w.set_metadata("tnn.config", "{\"dim\":4}");
  w.set_metadata("note", "caf\xc3\xa9 \"quoted\"");
  return w;
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeThroughMemoryAndFile) {
  TempDir dir("tnn_st_");
  const SafetensorsWriter w = sample_writer();
  w.write(dir.file("a.safetensors"));
  const Bytes mem = w.serialize();
  EXPECT_EQ(read_bytes(dir.file("a.safetensors")), mem);

  for (const auto& f : {tnn::read_safetensors(dir.file("a.safetensors")), parse(mem)}) {
    EXPECT_EQ(f.names(), (std::vector<std::string>{"empty", "f32", "f64", "i32", "i64", "scalar"}));
    EXPECT_EQ(f.dtype("f32"), Dtype::F32);
    EXPECT_EQ(f.dtype("f64"), Dtype::F64);
    EXPECT_EQ(f.dtype("i32"), Dtype::I32);
    EXPECT_EQ(f.dtype("i64"), Dtype::I64);
    expect_equal(f.get<float>("f32"), iota<float>({2, 3}, -1.5f, 0.25f));
    expect_equal(f.get<double>("f64"), iota<double>({3}, 1.0 / 3.0, 1e-300));
    expect_equal(f.get<std::int32_t>("i32"), iota<std::int32_t>({2, 2}, -2, 7));
    expect_equal(f.get<std::int64_t>("i64"), iota<std::int64_t>({2}, std::int64_t(1) << 40, -(std::int64_t(1) << 41)));
    const Tensor<double> s = f.get<double>("scalar");
    EXPECT_EQ(s.rank(), 0);
    ASSERT_EQ(s.size(), 1);
    EXPECT_EQ(s[0], 42.0);
    EXPECT_EQ(f.shape("empty"), (tnn::Shape{0, 3}));
    EXPECT_EQ(f.get<float>("empty").size(), 0);
    EXPECT_EQ(f.metadata().size(), 2u);
    EXPECT_EQ(f.metadata_at("note"), "caf\xc3\xa9 \"quoted\"");
    EXPECT_EQ(f.metadata_at("tnn.config"), "{\"dim\":4}");
  }
}

TEST(Safetensors, HeaderHasFixedCompactFormatAndAlignedData) {
  SafetensorsWriter w;
  w.add("b", Tensor<float>({2}, 1.0f));
  w.add("a", Tensor<std::int32_t>({1}, 7));
  w.set_metadata("k", "v\xc3\xa9");
  const Bytes b = w.serialize();
  const std::string expected =
      "{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
      "\"__metadata__\":{\"k\":\"v\\u00e9\"}}";
  const std::uint64_t n = tnn::detail::load_le<std::uint64_t>(b.data());
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(b.size(), 8 + n + 12);
  const std::string header(b.begin() + 8, b.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  EXPECT_EQ(header.substr(0, expected.size()), expected);
  EXPECT_EQ(header.find_first_not_of(' ', expected.size()), std::string::npos);  // padding is spaces
  EXPECT_LT(header.size() - expected.size(), 8u);
  // I32 7 then two F32 1.0, little-endian.
  const Bytes data(b.end() - 12, b.end());
  EXPECT_EQ(data, (Bytes{7, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f}));
}

TEST(Safetensors, SaveLoadSaveIsByteIdenticalWhateverTheInsertionOrder) {
  TempDir dir("tnn_st_");
  sample_writer().write(dir.file("first.safetensors"));
  const auto f = tnn::read_safetensors(dir.file("first.safetensors"));
  SafetensorsWriter again;
  std::vector<std::string> names = f.names();
  for (auto it = names.rbegin(); it != names.rend(); ++it) {  // reverse order on purpose
    switch (f.dtype(*it)) {
      case Dtype::F32: again.add(*it, f.get<float>(*it)); break;
      case Dtype::F64: again.add(*it, f.get<double>(*it)); break;
      case Dtype::I32: again.add(*it, f.get<std::int32_t>(*it)); break;
      case Dtype::I64: again.add(*it, f.get<std::int64_t>(*it)); break;
      case Dtype::U8: again.add(*it, f.get<std::int32_t>(*it), Dtype::U8); break;
    }
  }
  for (const auto& [k, v] : f.metadata()) again.set_metadata(k, v);
  again.write(dir.file("second.safetensors"));
  EXPECT_EQ(read_bytes(dir.file("first.safetensors")), read_bytes(dir.file("second.safetensors")));
}

TEST(Safetensors, FloatDtypesConvertBothWaysIntegersOnlyIntoIntegers) {
  SafetensorsWriter w;
  w.add("f32", Tensor<float>({2}, 0.1f));
  w.add("f64", Tensor<double>({2}, 0.1));
  w.add("big", Tensor<double>({1}, 1e300));
  w.add("i32", Tensor<std::int32_t>({1}, -5));
  w.add("i64", Tensor<std::int64_t>({1}, std::int64_t(1) << 40));
  const Bytes b = w.serialize();
  const auto f = parse(b);
  EXPECT_EQ(f.get<double>("f32")[0], double(0.1f));  // exact widening
  EXPECT_EQ(f.get<float>("f64")[0], 0.1f);           // rounding narrowing
  EXPECT_THROW(f.get<float>("big"), tnn::ValueError);
  EXPECT_EQ(f.get<double>("big")[0], 1e300);
  EXPECT_EQ(f.get<std::int64_t>("i32")[0], -5);
  EXPECT_THROW(f.get<std::int32_t>("i64"), tnn::ValueError);
  EXPECT_THROW(f.get<float>("i32"), tnn::FormatError);
  EXPECT_THROW(f.get<std::int32_t>("f32"), tnn::FormatError);
  try {
    f.get<double>("nope");
    FAIL() << "no error for a missing tensor";
  } catch (const tnn::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("\"nope\""), std::string::npos) << e.what();
  }
}

TEST(Safetensors, GetIntoReusesTheBuffer) {
  SafetensorsWriter w;
  w.add("a", iota<float>({4, 4}, 0.f, 1.f));
  w.add("b", iota<float>({2, 8}, 5.f, 1.f));
  const Bytes b = w.serialize();
  const auto f = parse(b);
  Tensor<float> t;
  f.get_into("a", t);
  const float* p = t.data();
  f.get_into("b", t);
  EXPECT_EQ(t.data(), p);
  EXPECT_EQ(t.shape(), (tnn::Shape{2, 8}));
  EXPECT_EQ(t[15], 20.f);
}

TEST(Safetensors, ReadsUnalignedDataAndPaddedHeaders) {
  // Header of odd length (data not aligned), trailing whitespace in the header.
  Bytes data;
  const double v = -2.5;
  std::uint64_t u;
  std::memcpy(&u, &v, 8);
  for (int i = 0; i < 8; ++i) data.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
  const auto f = parse(make_file("{\"x\":{\"shape\":[1],\"dtype\":\"F64\",\"data_offsets\":[0,8]}}   \n ", data));
  EXPECT_EQ(f.get<double>("x")[0], -2.5);
}

TEST(Safetensors, WriterRejectsBadNamesAndDtypes) {
  SafetensorsWriter w;
  w.add("a", Tensor<float>({1}));
  EXPECT_THROW(w.add("a", Tensor<float>({1})), tnn::ValueError);
  EXPECT_THROW(w.add("", Tensor<float>({1})), tnn::ValueError);
  EXPECT_THROW(w.add("__metadata__", Tensor<float>({1})), tnn::ValueError);
  EXPECT_THROW(w.add("bad\xff", Tensor<float>({1})), tnn::ValueError);
  EXPECT_THROW(w.add("f", Tensor<float>({1}), Dtype::I32), tnn::ValueError);
  EXPECT_THROW(w.add("i", Tensor<std::int32_t>({1}), Dtype::F32), tnn::ValueError);
  EXPECT_THROW(w.set_metadata("k", "bad\xc3"), tnn::ValueError);
  EXPECT_EQ(w.size(), 1u);
}

TEST(Safetensors, WriterRangeChecksNarrowingConversions) {
  SafetensorsWriter a;
  a.add("x", Tensor<double>({3}, 1e39), Dtype::F32);
  EXPECT_THROW(a.serialize(), tnn::ValueError);
  SafetensorsWriter b;
  b.add("x", Tensor<std::int64_t>({1}, std::int64_t(1) << 31), Dtype::I32);
  EXPECT_THROW(b.serialize(), tnn::ValueError);
  SafetensorsWriter c;  // in range: fine, and stored as the narrower type
  c.add("x", Tensor<double>({1}, 0.5), Dtype::F32);
  c.add("y", Tensor<std::int64_t>({1}, -(std::int64_t(1) << 31)), Dtype::I32);
  const Bytes bytes = c.serialize();
  const auto f = parse(bytes);
  EXPECT_EQ(f.dtype("x"), Dtype::F32);
  EXPECT_EQ(f.get<float>("x")[0], 0.5f);
  EXPECT_EQ(f.get<std::int32_t>("y")[0], std::numeric_limits<std::int32_t>::min());
}

TEST(Safetensors, U8ReadsIntoIntegersAndIsRangeCheckedOnWrite) {
  SafetensorsWriter w;
  w.add("px", iota<std::int32_t>({2, 3}, 0, 51), Dtype::U8);  // 0 .. 255
  w.add("one", Tensor<std::int64_t>({1}, 255), Dtype::U8);
  const Bytes b = w.serialize();
  const auto f = parse(b);
  EXPECT_EQ(f.dtype("px"), Dtype::U8);
  EXPECT_EQ(f.info("px").end - f.info("px").begin, 6u);  // one byte per element
  expect_equal(f.get<std::int32_t>("px"), iota<std::int32_t>({2, 3}, 0, 51));
  EXPECT_EQ(f.get<std::int64_t>("one")[0], 255);
  EXPECT_THROW(f.get<float>("px"), tnn::FormatError);
  for (std::int32_t bad : {-1, 256}) {
    SafetensorsWriter o;
    o.add("x", Tensor<std::int32_t>({2}, bad), Dtype::U8);
    EXPECT_THROW(o.serialize(), tnn::ValueError);
  }
  EXPECT_THROW(SafetensorsWriter().add("f", Tensor<float>({1}), Dtype::U8), tnn::ValueError);
  // A U8 tensor's offsets must span exactly one byte per element.
  expect_format_error(make_file("{\"w\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "span 4 bytes, expected 3"});
}

// ---- hostile files: every one is a FormatError naming file, tensor, expected and got ----

TEST(SafetensorsHostile, TooShortForTheHeaderLength) {
  expect_format_error({}, {"at least 8 bytes", "0-byte"});
  expect_format_error({1, 2, 3}, {"at least 8 bytes", "3-byte"});
}

TEST(SafetensorsHostile, HeaderLengthAboveLimitOrBeyondTheFile) {
  Bytes huge = make_file("{}");
  huge[7] = 0x7f;  // ~9e18 bytes claimed; must not be allocated
  expect_format_error(huge, {"header length", "at most 100000000"});
  Bytes limit = make_file("{}");
  const std::uint64_t n = tnn::kSafetensorsMaxHeaderBytes + 1;
  for (int i = 0; i < 8; ++i) limit[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  expect_format_error(limit, {"header length", std::to_string(n)});
  Bytes beyond = make_file("{}");
  beyond[0] = 3;  // claims 3 bytes, 2 present
  expect_format_error(beyond, {"header length", "at most 2", "got 3"});
}

TEST(SafetensorsHostile, MalformedJsonAndNonObjectHeaders) {
  expect_format_error(make_file("{\"a\": {"), {"valid JSON"});
  expect_format_error(make_file(""), {"valid JSON"});
  expect_format_error(make_file("{} {}"), {"valid JSON"});
  expect_format_error(make_file(std::string("{\"a\x00\":1}", 9)), {"valid JSON"});
  expect_format_error(make_file("{\"\xff\":{}}"), {"valid JSON"});  // not UTF-8
  expect_format_error(make_file("{\"x\": 1e99999}"), {"valid JSON"});
  expect_format_error(make_file("[]"), {"expected a JSON object", "array"});
  expect_format_error(make_file("\"str\""), {"expected a JSON object", "string"});
  expect_format_error(make_file("{\"a\":{\"shape\":[[[1]]]}}"), {"\"a\"", "shape[0]", "an array"});
  expect_format_error(make_file("{\"a\":{\"dtype\":{\"x\":1}}}"), {"\"a\"", "dtype", "expected a string", "an object"});
}

TEST(SafetensorsHostile, EntriesMustBeObjectsWithExactlyTheThreeKeys) {
  expect_format_error(make_file("{\"w\": [1,2]}"), {"\"w\"", "expected an object", "array"});
  expect_format_error(make_file("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"non-empty tensor name"});
  expect_format_error(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", zeros(4)),
                      {"\"w\"", "unknown key", "\"extra\""});
  expect_format_error(make_file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "'shape'", "missing"});
  expect_format_error(make_file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "'dtype'", "missing"});
  expect_format_error(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", zeros(4)),
                      {"\"w\"", "'data_offsets'", "missing"});
}

TEST(SafetensorsHostile, UnknownUnsupportedAndNonStringDtypes) {
  expect_format_error(make_file("{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "unknown dtype", "\"Q7\"", "expected F32, F64, I32, I64 or U8"});
  expect_format_error(make_file("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "BF16", "not supported"});
  expect_format_error(make_file("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "dtype", "expected a string", "number"});
}

TEST(SafetensorsHostile, ShapesMustBeNonNegativeIntegersWithoutOverflow) {
  auto with_shape = [](const std::string& shape, std::uint64_t nbytes = 4) {
    return make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0," + std::to_string(nbytes) +
                         "]}}",
                     zeros(nbytes));
  };
  expect_format_error(with_shape("[-1]"), {"\"w\"", "shape[0]", "negative", "-1"});
  expect_format_error(with_shape("[1, 2.5]"), {"\"w\"", "shape[1]", "non-integer", "2.5"});
  expect_format_error(with_shape("[1.0]"), {"\"w\"", "shape[0]", "non-integer"});
  expect_format_error(with_shape("[\"1\"]"), {"\"w\"", "shape[0]", "expected an integer", "string \"1\""});
  expect_format_error(with_shape("[true]"), {"\"w\"", "shape[0]", "expected an integer", "boolean true"});
  auto ones = [](int rank) {
    std::string s = "[1";
    for (int i = 1; i < rank; ++i) s += ",1";
    return s + "]";
  };
  EXPECT_NO_THROW(parse(with_shape(ones(64))));
  expect_format_error(with_shape(ones(65)), {"\"w\"", "at most 64 dims"});
  expect_format_error(with_shape("4"), {"\"w\"", "shape", "expected an array", "number"});
  expect_format_error(with_shape("[18446744073709551615]"), {"\"w\"", "shape[0]", "below 2^63"});
  expect_format_error(with_shape("[4294967296, 4294967296]"), {"\"w\"", "overflows"});
  expect_format_error(with_shape("[3037000500, 3037000500, 0]", 0), {"\"w\"", "overflows"});  // empty, still refused
  expect_format_error(with_shape("[4611686018427387904]"), {"\"w\"", "byte size", "overflows"});
}

TEST(SafetensorsHostile, DataOffsetsMustMatchTheShapeAndStayInside) {
  auto with_offsets = [](const std::string& offsets, std::size_t data = 8) {
    return make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + offsets + "}}", zeros(data));
  };
  expect_format_error(with_offsets("[0]"), {"\"w\"", "data_offsets", "[begin, end]"});
  expect_format_error(with_offsets("[0, 8, 9]"), {"\"w\"", "data_offsets", "[begin, end]"});
  expect_format_error(with_offsets("{\"a\":0}"), {"\"w\"", "data_offsets", "[begin, end]", "object"});
  expect_format_error(with_offsets("[-8, 0]"), {"\"w\"", "data_offsets[0]", "negative"});
  expect_format_error(with_offsets("[0, 8.0]"), {"\"w\"", "data_offsets[1]", "non-integer"});
  expect_format_error(with_offsets("[8, 0]"), {"\"w\"", "begin <= end", "[8, 0]"});
  expect_format_error(with_offsets("[0, 16]"), {"\"w\"", "end <= 8", "[0, 16]"});
  expect_format_error(with_offsets("[0, 4]"), {"\"w\"", "span 4 bytes", "expected 8", "[2]"});
  expect_format_error(with_offsets("[0, 8]", 4), {"\"w\"", "end <= 4", "truncated"});
}

TEST(SafetensorsHostile, TensorsMustTileTheDataAreaExactly) {
  const std::string a = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
  const std::string b = "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
  expect_format_error(make_file("{" + a + "[0,8]}," + b + "[4,12]}}", zeros(12)), {"\"b\"", "overlap", "\"a\""});
  expect_format_error(make_file("{" + a + "[0,8]}," + b + "[0,8]}}", zeros(8)), {"overlap", "\"a\"", "\"b\""});
  expect_format_error(make_file("{" + a + "[0,8]}," + b + "[12,20]}}", zeros(20)), {"[8, 12)", "no tensor", "\"b\""});
  expect_format_error(make_file("{" + a + "[4,12]}}", zeros(12)), {"[0, 4)", "no tensor", "\"a\""});
  expect_format_error(make_file("{" + a + "[0,8]}}", zeros(10)), {"2 trailing bytes", "after offset 8"});
  expect_format_error(make_file("{}", zeros(1)), {"1 trailing bytes"});
  // A zero-size tensor inside another one's range is an overlap too.
  const std::string e = "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":";
  expect_format_error(make_file("{" + a + "[0,8]}," + e + "[4,4]}}", zeros(8)), {"\"e\"", "overlap"});
  // ...but at a boundary it is fine.
  EXPECT_NO_THROW(parse(make_file("{" + a + "[0,8]}," + e + "[8,8]}}", zeros(8))));
}

TEST(SafetensorsHostile, MetadataMustMapStringsToStrings) {
  expect_format_error(make_file("{\"__metadata__\":[\"a\"]}"), {"__metadata__", "expected an object", "array"});
  expect_format_error(make_file("{\"__metadata__\":null}"), {"__metadata__", "expected an object", "null"});
  expect_format_error(make_file("{\"__metadata__\":{\"k\":1}}"), {"__metadata__", "\"k\"", "expected a string", "number"});
  expect_format_error(make_file("{\"__metadata__\":{\"k\":{}}}"), {"\"k\"", "expected a string", "object"});
}

TEST(SafetensorsHostile, DuplicateNamesAndKeys) {
  const std::string t = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
  expect_format_error(make_file("{\"w\":" + t + ",\"w\":" + t + "}", zeros(4)), {"\"w\"", "appears twice"});
  expect_format_error(make_file("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)),
                      {"\"w\"", "\"dtype\"", "appears twice"});
  expect_format_error(make_file("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"), {"\"k\"", "appears twice"});
}

TEST(SafetensorsHostile, EveryTruncationOfAValidFileIsAFormatError) {
  const Bytes good = sample_writer().serialize();
  ASSERT_NO_THROW(parse(good));
  for (std::size_t n = 0; n < good.size(); ++n) {
    const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(parse(cut), tnn::FormatError) << "truncated at " << n << " of " << good.size();
  }
}

TEST(SafetensorsHostile, CorruptedHeaderBytesGiveOnlyLibraryErrors) {
  // Each header byte replaced by a few likely-troublesome values: the outcome must be either a
  // valid file or a tnn::Error, never another exception or a crash.
  const Bytes good = sample_writer().serialize();
  const std::size_t n = tnn::detail::load_le<std::uint64_t>(good.data());
  int errors = 0;
  for (std::size_t i = 0; i < 8 + n; ++i) {
    for (std::uint8_t v : {0x00, 0x22, 0x2c, 0x2d, 0x31, 0x39, 0x5b, 0x7b, 0x7d, 0xff}) {
      Bytes bad = good;
      bad[i] = v;
      try {
        const auto f = parse(bad);
        for (const auto& name : f.names()) {
          if (tnn::dtype_is_float(f.dtype(name))) (void)f.get<double>(name);
          else (void)f.get<std::int64_t>(name);
        }
      } catch (const tnn::Error&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(SafetensorsHostile, FileErrorsNameThePath) {
  TempDir dir("tnn_st_");
  EXPECT_THROW(tnn::read_safetensors(dir.file("missing.safetensors")), tnn::IoError);
  EXPECT_THROW(tnn::read_safetensors(dir.file("")), tnn::IoError);  // a directory
  write_bytes(dir.file("bad.safetensors"), make_file("{\"w\": 3}"));
  try {
    tnn::read_safetensors(dir.file("bad.safetensors"));
    FAIL() << "no error";
  } catch (const tnn::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("bad.safetensors")), std::string::npos) << e.what();
  }
  // Header-only reading still checks the offsets against the real file size.
  Bytes good = sample_writer().serialize();
  good.resize(good.size() - 1);
  write_bytes(dir.file("cut.safetensors"), good);
  EXPECT_THROW(tnn::read_safetensors_header(dir.file("cut.safetensors")), tnn::FormatError);
  EXPECT_THROW(tnn::read_safetensors(dir.file("cut.safetensors")), tnn::FormatError);
}

// ---- atomic writes ----

TEST(SafetensorsAtomic, OverwriteReplacesContentAndLeavesNoTemporary) {
  TempDir dir("tnn_st_");
  const std::string path = dir.file("m.safetensors");
  SafetensorsWriter a;
  a.add("x", Tensor<float>({2}, 1.f));
  a.write(path);
  SafetensorsWriter b;
  b.add("y", Tensor<double>({3}, 2.0));
  b.write(path);
  EXPECT_EQ(read_bytes(path), b.serialize());
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"});
}

TEST(SafetensorsAtomic, WriterThrowingMidwayLeavesTheOldFileByteIdentical) {
  TempDir dir("tnn_st_");
  const std::string path = dir.file("m.safetensors");
  sample_writer().write(path);
  const Bytes before = read_bytes(path);
  SafetensorsWriter w;
  w.add("a_first", Tensor<float>({100000}, 1.f));   // written before the failure
  w.add("b_second", Tensor<double>({10}, 1e300), Dtype::F32);  // cannot be converted
  EXPECT_THROW(w.write(path), tnn::ValueError);
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"});
}

TEST(SafetensorsAtomic, UnwritableTargetIsAnIoErrorAndTouchesNothing) {
  TempDir dir("tnn_st_");
  SafetensorsWriter w;
  w.add("x", Tensor<float>({1}));
  EXPECT_THROW(w.write(dir.file("no/such/dir/m.safetensors")), tnn::IoError);
  fs::create_directories(dir.file("sub"));
  EXPECT_THROW(w.write(dir.file("sub")), tnn::IoError);  // rename over a directory fails
  EXPECT_TRUE(fs::is_directory(dir.file("sub")));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"sub"});
}

TEST(SafetensorsAtomic, ViewsAreReadAtWriteTime) {
  Tensor<float> t({2}, 1.f);
  SafetensorsWriter w;
  w.add_view("t", t);
  t[1] = 5.f;
  const Bytes b = w.serialize();
  EXPECT_EQ(parse(b).get<float>("t")[1], 5.f);
}

// ---- The strict policy in the header, the wrong kind of file, limits kept exactly ----

TEST(SafetensorsHostile, NulByteInsideTheDeclaredHeaderIsRefused) {
  // nlohmann's lexer takes NUL for the end of input: "{}" then NUL then anything would pass.
  expect_format_error(make_file(std::string("{}\0 {\"x\":1}  ", 14)), {"NUL byte at offset 2", "valid JSON"});
  expect_format_error(make_file(std::string("{}\0\0\0\0\0\0", 8)), {"NUL byte at offset 2"});
}

TEST(SafetensorsHostile, ATextOrCsvFileIsCalledNotASafetensorsFile) {
  const std::string csv = "step,loss,lr\n1,5.5,0.001\n2,5.1,0.001\n";
  const Bytes b(csv.begin(), csv.end());
  expect_format_error(b, {"not a safetensors file"});
  const std::string msg = format_error(b);
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // A binary prefix that is simply too long keeps the plain message.
  Bytes huge = make_file("{}");
  huge[7] = 1;
  EXPECT_EQ(format_error(huge).find("not a safetensors file (it starts like text)"), std::string::npos);
}

TEST(SafetensorsHostile, AHeaderOfExactlyTheLimitIsValid) {
  std::string header = "{\"__metadata__\":{\"k\":\"v\"}}";
  header.resize(tnn::kSafetensorsMaxHeaderBytes, ' ');
  const auto f = parse(make_file(header));
  EXPECT_EQ(f.metadata_at("k"), "v");
  header.push_back(' ');
  expect_format_error(make_file(header), {"header length", "at most 100000000"});
}

TEST(SafetensorsHostile, PathsInMessagesAreEscapedToOneLine) {
  TempDir dir("tnn_st_");
  const std::string path = dir.file("bad\nname.safetensors");
  write_bytes(path, make_file("{\"a\":1}"));
  std::string msg;
  try {
    tnn::read_safetensors(path);
  } catch (const tnn::FormatError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("bad\\nname.safetensors"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(SafetensorsAtomic, A250ByteFileNameIsWrittenAndItsTemporaryFitsNameMax) {
  TempDir dir("tnn_st_");
  const std::string name(250, 'n');
  const std::string tmp = tnn::detail::temporary_name(dir.file(name), ".tmp.123456.7");
  EXPECT_LE(tmp.size() - dir.file("").size(), std::size_t(NAME_MAX));
  EXPECT_EQ(tnn::detail::temporary_name(dir.file("m"), ".tmp.1.2"), dir.file("m.tmp.1.2"));
  sample_writer().write(dir.file(name));
  EXPECT_EQ(read_bytes(dir.file(name)), sample_writer().serialize());
  EXPECT_EQ(dir.entries(), std::vector<std::string>{name});
  EXPECT_NO_THROW(tnn::check_output_path(dir.file(name), "--out"));
}

TEST(FileIo, OutputPathsAreCheckedBeforeAnyWork) {
  TempDir dir("tnn_st_");
  auto io_error = [](const std::string& p) {
    try {
      tnn::check_output_path(p, "--out");
    } catch (const tnn::IoError& e) {
      return std::string(e.what());
    }
    return std::string("<no IoError>");
  };
  EXPECT_NE(io_error("").find("--out: expected a file path, got an empty string"), std::string::npos);
  EXPECT_NE(io_error(dir.file("")).find("got a directory"), std::string::npos);
  std::filesystem::create_directory(dir.file("d"));
  EXPECT_NE(io_error(dir.file("d")).find("got an existing directory"), std::string::npos);
  EXPECT_NE(io_error(dir.file("missing/m.safetensors")).find("its directory"), std::string::npos);
  EXPECT_NE(io_error(dir.file(std::string(256, 'x'))).find("at most 255 bytes"), std::string::npos);
  write_bytes(dir.file("f"), Bytes{1});
  EXPECT_NE(io_error(dir.file("f/m")).find("is not a directory"), std::string::npos);
  if (::geteuid() != 0) {  // root may write anywhere
    std::filesystem::create_directory(dir.file("ro"));
    std::filesystem::permissions(dir.file("ro"), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    EXPECT_NE(io_error(dir.file("ro/m")).find("not writable"), std::string::npos);
    std::filesystem::permissions(dir.file("ro"), std::filesystem::perms::owner_all);
  }
  const std::string nl = io_error(dir.file("missing\n/m"));
  EXPECT_EQ(nl.find('\n'), std::string::npos) << nl;
  EXPECT_NO_THROW(tnn::check_output_path(dir.file("new.safetensors"), "--out"));
  EXPECT_EQ(dir.entries().size(), ::geteuid() != 0 ? 3u : 2u);  // d, f (and ro): the checks created nothing
}

TEST(FileIo, BoundedReadsRefuseDevicesAndStopAtTheLimit) {
  TempDir dir("tnn_st_");
  EXPECT_THROW(tnn::read_file_bounded("/dev/zero", 1 << 20, "config"), tnn::IoError);
  EXPECT_THROW(tnn::read_file_bounded(dir.file(""), 1 << 20, "config"), tnn::IoError);
  EXPECT_THROW(tnn::read_file_bounded(dir.file("none"), 1 << 20, "config"), tnn::IoError);
  write_bytes(dir.file("ten"), Bytes(10, 'a'));
  EXPECT_EQ(tnn::read_file_bounded(dir.file("ten"), 10, "config").size(), 10u);
  EXPECT_THROW(tnn::read_file_bounded(dir.file("ten"), 9, "config"), tnn::FormatError);
  EXPECT_EQ(tnn::read_file_bounded(dir.file("ten"), 4, "data", /*prefix_only=*/true), Bytes(4, 'a'));
  // A pipe, as --data <(zcat corpus.gz) gives one, is read to its end like a file.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    const std::string z(100000, 'z');
    for (std::size_t done = 0; done < z.size();) {
      const ssize_t w = ::write(fds[1], z.data() + done, z.size() - done);
      if (w <= 0) ::_exit(1);
      done += static_cast<std::size_t>(w);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  const std::string path = "/proc/self/fd/" + std::to_string(fds[0]);
  Bytes got;
  EXPECT_NO_THROW(got = tnn::read_file_bounded(path, 1 << 20, "data file"));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(got, Bytes(100000, 'z'));
}

TEST(FileIo, DevicesAndPipesAreRefusedAsOutputs) {
  TempDir dir("tnn_st_");
  // /dev/full would be replaced by the rename (as root), or never written: refused before any work.
  EXPECT_THROW(tnn::check_output_path("/dev/full", "--log"), tnn::IoError);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_THROW(tnn::check_output_path(dir.file("fifo"), "--out"), tnn::IoError);
  EXPECT_THROW(tnn::write_file_atomic(dir.file("fifo"), "svg"), tnn::IoError);
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));  // still the FIFO
  tnn::write_file_atomic(dir.file("plot.svg"), "<svg/>");
  EXPECT_EQ(read_bytes(dir.file("plot.svg")), (Bytes{'<', 's', 'v', 'g', '/', '>'}));
  EXPECT_EQ(dir.entries().size(), 2u);  // fifo, plot.svg: no temporary left
}

TEST(FileIo, AnOutputNamingAnInputIsRefusedWhateverItsSpelling) {
  TempDir dir("tnn_st_");
  write_bytes(dir.file("m.safetensors"), Bytes{1, 2, 3});
  std::filesystem::create_hard_link(dir.file("m.safetensors"), dir.file("hard"));
  std::filesystem::create_symlink(dir.file("m.safetensors"), dir.file("soft"));
  const std::vector<std::pair<std::string, std::string>> inputs = {{"--data", dir.file("text")},
                                                                     {"--checkpoint", dir.file("m.safetensors")}};
  for (const std::string& out : {dir.file("m.safetensors"), dir.file("./m.safetensors"), dir.file("hard"), dir.file("soft")}) {
    try {
      tnn::check_output_not_input(out, "--plot", inputs);
      ADD_FAILURE() << out << " accepted";
    } catch (const tnn::IoError& e) {
      EXPECT_NE(std::string(e.what()).find("names the input --checkpoint"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(tnn::check_output_not_input(dir.file("new.svg"), "--plot", inputs));  // not there yet
  write_bytes(dir.file("other"), Bytes{1, 2, 3});
  EXPECT_NO_THROW(tnn::check_output_not_input(dir.file("other"), "--plot", inputs));  // equal bytes, another file
  EXPECT_EQ(read_bytes(dir.file("m.safetensors")), (Bytes{1, 2, 3}));
}
