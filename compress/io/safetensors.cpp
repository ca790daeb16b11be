// safetensors reader and writer. A file is an 8-byte little-endian u64 N, N bytes of UTF-8 JSON (the header), then the
// data area. The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, offsets relative to
// the data area, plus an optional "__metadata__" object of strings. The reader maps the whole file and trusts nothing
// before checking it: the file is regular and holds the 8 length bytes; N fits in the file and under a 100 MiB cap; the
// header is one JSON object with no NUL byte (nlohmann would stop there) and no duplicate key (nlohmann would keep the
// last, so two readers could disagree on a tensor); each entry has exactly the three keys, a known dtype, non-negative
// integer dims and offsets with begin <= end <= data size and end - begin equal to numel * dtype size, computed with
// overflow checks; no two non-empty tensors share a byte. Only then are pointers into the mapping formed, so no input
// can make a read leave the file. Gaps between tensors are allowed (they cost nothing to skip). The writer lays tensors
// out by decreasing dtype size and pads the header with spaces to a multiple of 8, which keeps every tensor aligned to
// its dtype size in the mapping (pages are aligned), as the reference writer does; it writes a temp file beside the
// target, fsyncs and renames it.
#include "compress/io/safetensors.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <unordered_set>

#include "compress/base/error.h"
#include "compress/io/atomic_file.h"

namespace joule::st {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {{DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
                                 {DType::I8, "I8", 1},   {DType::U8, "U8", 1},   {DType::I32, "I32", 4},
                                 {DType::I64, "I64", 8}};

const DTypeInfo& info(DType d) {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i;
  fail("safetensors: invalid DType value {}", static_cast<int>(d));
}

template <typename... Args>
[[noreturn]] void bad(const std::string& path, fmt::format_string<Args...> f, Args&&... args) {
  // Tensor names and keys come from the untrusted header: escaped, so they cannot carry terminal escapes.
  fail("safetensors '{}': {}", path, printable(fmt::format(f, std::forward<Args>(args)...), 1000));
}

// A JSON value for an error message, cut short: it comes from an untrusted header that may be huge or nested
// thousands deep, so containers are described, never dumped (dump() recurses).
std::string brief(const json& j) {
  if (j.is_object()) return fmt::format("an object of {} key{}", j.size(), j.size() == 1 ? "" : "s");
  if (j.is_array()) return fmt::format("an array of {} item{}", j.size(), j.size() == 1 ? "" : "s");
  std::string s = j.dump();
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

// numel(shape) * dtype size for non-negative dims; false when it overflows 64 bits. A 0 anywhere gives 0
// bytes even when the other dims alone would overflow.
bool byte_count(const std::vector<int64_t>& shape, DType d, uint64_t* out) {
  uint64_t n = info(d).size;
  bool overflow = false;
  for (int64_t dim : shape) {
    if (dim == 0) {
      *out = 0;
      return true;
    }
    overflow = overflow || __builtin_mul_overflow(n, static_cast<uint64_t>(dim), &n);
  }
  *out = n;
  return !overflow;
}

json parse_header(const std::string& path, const uint8_t* p, size_t n) {
  // nlohmann stops at a NUL as at the end of input, which would silently ignore the rest of the header.
  if (const void* nul = std::memchr(p, 0, n))
    bad(path, "header has a NUL byte at offset {}", static_cast<const uint8_t*>(nul) - p);
  std::vector<std::set<std::string>> keys;  // keys seen in each open object, innermost last
  auto check_duplicates = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    if (ev == json::parse_event_t::object_end) keys.pop_back();
    if (ev == json::parse_event_t::key && !keys.back().insert(parsed.get<std::string>()).second)
      bad(path, "duplicate key {} in the header", parsed.dump());
    return true;
  };
  try {
    return json::parse(p, p + n, check_duplicates);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    std::string msg = e.what();         // "[json.exception.parse_error.101] parse error at line 1, ..."
    bad(path, "header is not valid JSON: {}", msg.substr(msg.find("] ") + 2));
  }
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& m) {
  if (m.is_null()) return {};  // the reference reader takes a null "__metadata__" as absent
  if (!m.is_object()) bad(path, "__metadata__ is not a JSON object of strings (found {})", m.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : m.items()) {
    if (!v.is_string()) bad(path, "__metadata__ value of '{}' is not a string: {}", k, brief(v));
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

struct Entry {
  TensorView view;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& path, const std::string& name, const json& e, uint64_t data_size) {
  if (!e.is_object()) bad(path, "tensor '{}': entry is not a JSON object: {}", name, brief(e));
  for (const auto& [k, v] : e.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets") bad(path, "tensor '{}': unknown key '{}'", name, k);
  auto field = [&](const char* key) -> const json& {
    auto it = e.find(key);
    if (it == e.end()) bad(path, "tensor '{}': missing key '{}'", name, key);
    return *it;
  };

  Entry out{{name, DType::F32, {}, nullptr, 0}, 0, 0};
  const json& dt = field("dtype");
  const DTypeInfo* di = nullptr;
  for (const auto& i : kDTypes)
    if (dt.is_string() && dt.get_ref<const std::string&>() == i.name) di = &i;
  if (!di) bad(path, "tensor '{}': unknown dtype {} (Joule reads F32, F16, BF16, I8, U8, I32, I64)", name, brief(dt));
  out.view.dtype = di->dtype;

  const json& shape = field("shape");
  if (!shape.is_array()) bad(path, "tensor '{}': shape is not an array: {}", name, brief(shape));
  for (const json& d : shape) {
    if (!d.is_number_integer()) bad(path, "tensor '{}': shape has a non-integer dimension {}", name, brief(d));
    if (!d.is_number_unsigned()) bad(path, "tensor '{}': shape has a negative dimension {}", name, brief(d));
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(path, "tensor '{}': shape dimension {} is too large", name, v);
    out.view.shape.push_back(static_cast<int64_t>(v));
  }
  uint64_t nbytes = 0;
  if (!byte_count(out.view.shape, di->dtype, &nbytes))
    bad(path, "tensor '{}': shape {} of {} overflows 64 bits", name, out.view.shape, di->name);

  const json& off = field("data_offsets");
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_integer() || !off[1].is_number_integer())
    bad(path, "tensor '{}': data_offsets is not an array of two integers: {}", name, brief(off));
  if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    bad(path, "tensor '{}': data_offsets {} has a negative offset", name, brief(off));
  out.begin = off[0].get<uint64_t>();
  out.end = off[1].get<uint64_t>();
  if (out.begin > out.end) bad(path, "tensor '{}': data_offsets [{}, {}] has begin > end", name, out.begin, out.end);
  if (out.end > data_size)
    bad(path, "tensor '{}': data_offsets [{}, {}] run past the end of the data area ({} bytes)", name, out.begin,
        out.end, data_size);
  if (out.end - out.begin != nbytes)
    bad(path, "tensor '{}': data_offsets [{}, {}] span {} bytes but {} {} needs {}", name, out.begin, out.end,
        out.end - out.begin, di->name, out.view.shape, nbytes);
  out.view.nbytes = nbytes;
  return out;
}

// Closes a file descriptor on scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

size_t dtype_size(DType d) { return info(d).size; }
const char* dtype_name(DType d) { return info(d).name; }

File File::open(const std::string& path) {
  // O_NONBLOCK so that a FIFO at `path` is refused below instead of blocking open().
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) {
    if (errno == ENOENT) bad(path, "file does not exist");
    bad(path, "cannot open: {}", std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) bad(path, "cannot stat: {}", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) bad(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) bad(path, "file is {} bytes, too short for the 8-byte header length", size);

  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (addr == MAP_FAILED) bad(path, "cannot mmap {} bytes: {}", size, std::strerror(errno));
  std::shared_ptr<const void> mapping(addr, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  const auto* base = static_cast<const uint8_t*>(addr);

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
  if (n > size - 8) bad(path, "header length {} exceeds the file ({} bytes)", n, size);
  if (n > kMaxHeaderBytes) bad(path, "header length {} exceeds the {} MiB cap", n, kMaxHeaderBytes >> 20);
  json header = parse_header(path, base + 8, n);
  if (!header.is_object()) bad(path, "header is not a JSON object (found {})", header.type_name());

  File f;
  f.path_ = path;
  const uint64_t data_size = size - 8 - n;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__")
      f.metadata_ = parse_metadata(path, value);
    else
      entries.push_back(parse_entry(path, name, value, data_size));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.view.name) < std::tie(b.begin, b.end, b.view.name);
  });
  // Sorted by begin, a non-empty tensor overlaps an earlier one iff it starts before the furthest end so far.
  const Entry* furthest = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    if (furthest && e.begin < furthest->end)
      bad(path, "tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", furthest->view.name, furthest->begin, furthest->end,
          e.view.name, e.begin, e.end);
    if (!furthest || e.end > furthest->end) furthest = &e;
  }

  const uint8_t* data = base + 8 + n;
  for (Entry& e : entries) {
    e.view.data = data + e.begin;
    f.index_.emplace(e.view.name, f.tensors_.size());
    f.tensors_.push_back(std::move(e.view));
  }
  f.mapping_ = std::move(mapping);
  return f;
}

const TensorView* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void write(const std::string& path, const std::vector<TensorData>& tensors,
           const std::map<std::string, std::string>& metadata) {
  std::unordered_set<std::string> names;
  for (const TensorData& t : tensors) {
    if (t.name == "__metadata__") bad(path, "tensor name '__metadata__' is reserved for the metadata");
    if (!names.insert(t.name).second) bad(path, "duplicate tensor name '{}'", t.name);
    for (int64_t d : t.shape)
      if (d < 0) bad(path, "tensor '{}': shape {} has a negative dimension", t.name, t.shape);
    uint64_t nbytes = 0;
    if (!byte_count(t.shape, t.dtype, &nbytes)) bad(path, "tensor '{}': shape {} overflows 64 bits", t.name, t.shape);
    if (t.nbytes != nbytes)
      bad(path, "tensor '{}': nbytes is {} but {} {} needs {}", t.name, t.nbytes, dtype_name(t.dtype), t.shape, nbytes);
    if (nbytes > 0 && !t.data) bad(path, "tensor '{}': data is null", t.name);
  }

  std::vector<const TensorData*> order;
  for (const TensorData& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorData* a, const TensorData* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorData* t : order) {
    header[t->name] = {
        {"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::type_error&) {
    bad(path, "a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  io::AtomicFile tmp(path, "safetensors");
  tmp.write(len, sizeof len);
  tmp.write(text.data(), text.size());
  for (const TensorData* t : order) tmp.write(t->data, t->nbytes);
  tmp.commit();
}

}  // namespace joule::st
