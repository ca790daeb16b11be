// The zip structure is read from the central directory (zip64 included, as torch.jit.save writes it for large
// models) and every record is checked against the file and its CRC-32 before LibTorch reads any of it.
#include "compress/io/archive_check.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "compress/base/error.h"

namespace joule::io {
namespace {

struct Mapped {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  Mapped(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("model '{}': cannot open ({})", path, std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("model '{}': not a regular file", path);
    }
    size = uint64_t(st.st_size);
    if (size > 0) {
      void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        fail("model '{}': cannot map ({})", path, std::strerror(errno));
      }
      data = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~Mapped() {
    if (data) munmap(const_cast<uint8_t*>(data), size);
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
};

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Entry {
  std::string name;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t comp = 0, uncomp = 0, local = 0, data = 0;
};

class Zip {
 public:
  Zip(const std::string& path, const ArchiveLimits& lim) : path_(path), map_(path), lim_(lim) { index(); }
  const std::vector<Entry>& entries() const { return entries_; }

  // The record's bytes, inflated when deflated, CRC-checked; `cap` bounds what may be produced.
  std::string read(const Entry& e, uint64_t cap) const {
    if (e.uncomp > cap) bad(e, "decompresses to {} bytes, over the {} allowed", e.uncomp, cap);
    std::string out;
    if (e.method == 0) {
      out.assign(reinterpret_cast<const char*>(map_.data + e.data), e.comp);
    } else {
      out.resize(e.uncomp);
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) bad(e, "cannot start inflating");
      z.next_in = const_cast<Bytef*>(map_.data + e.data);
      z.avail_in = uInt(std::min<uint64_t>(e.comp, UINT32_MAX));
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = uInt(std::min<uint64_t>(e.uncomp, UINT32_MAX));
      int rc = inflate(&z, Z_FINISH);
      uint64_t produced = z.total_out;
      inflateEnd(&z);
      if (rc != Z_STREAM_END || produced != e.uncomp)
        bad(e, "deflate data is corrupt or does not decompress to its recorded {} bytes", e.uncomp);
    }
    check_crc(e, reinterpret_cast<const uint8_t*>(out.data()), out.size());
    return out;
  }

  void check_crc(const Entry& e, const uint8_t* p, uint64_t n) const {
    if (uint32_t(crc32_z(0, p, n)) != e.crc) bad(e, "CRC-32 mismatch (the file is corrupt or was altered)");
  }
  const uint8_t* bytes(const Entry& e) const { return map_.data + e.data; }

  template <typename... A>
  [[noreturn]] void bad(const Entry& e, fmt::format_string<A...> f, A&&... a) const {
    fail("model '{}': zip record '{}' {}", path_, printable(e.name), fmt::format(f, std::forward<A>(a)...));
  }

 private:
  template <typename... A>
  [[noreturn]] void corrupt(fmt::format_string<A...> f, A&&... a) const {
    fail("model '{}': corrupt TorchScript archive: {}", path_, fmt::format(f, std::forward<A>(a)...));
  }

  void index() {
    const uint8_t* d = map_.data;
    const uint64_t n = map_.size;
    if (n < 22 || le(d, 4) != 0x04034b50)
      fail("model '{}': not a TorchScript archive (not a zip file; expected a model saved by torch.jit.save)", path_);
    // End of central directory: the last signature in the final 64 KiB + 22 bytes.
    uint64_t eocd = n;
    for (uint64_t i = n - 22 + 1; i-- > (n > 65557 ? n - 65557 : 0);)
      if (le(d + i, 4) == 0x06054b50) {
        eocd = i;
        break;
      }
    if (eocd == n) fail("model '{}': truncated or corrupt TorchScript archive (no zip end record; {} bytes)", path_, n);
    uint64_t count = le(d + eocd + 10, 2), cd_size = le(d + eocd + 12, 4), cd_off = le(d + eocd + 16, 4);
    if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {  // zip64
      if (eocd < 20 || le(d + eocd - 20, 4) != 0x07064b50) corrupt("zip64 end locator missing");
      uint64_t z64 = le(d + eocd - 20 + 8, 8);
      if (n < 56 || z64 > n - 56 || le(d + z64, 4) != 0x06064b50) corrupt("zip64 end record outside the file");
      count = le(d + z64 + 32, 8), cd_size = le(d + z64 + 40, 8), cd_off = le(d + z64 + 48, 8);
    }
    if (count > lim_.max_entries) corrupt("{} records, over the {} allowed", count, lim_.max_entries);
    if (cd_off > n || cd_size > n - cd_off) corrupt("central directory outside the file");
    uint64_t p = cd_off, total = 0;
    std::set<std::string> names;
    for (uint64_t k = 0; k < count; ++k) {
      if (p + 46 > cd_off + cd_size || le(d + p, 4) != 0x02014b50) corrupt("central directory entry {} is cut short", k);
      Entry e;
      e.method = uint16_t(le(d + p + 10, 2));
      e.crc = uint32_t(le(d + p + 16, 4));
      e.comp = le(d + p + 20, 4), e.uncomp = le(d + p + 24, 4);
      uint64_t nl = le(d + p + 28, 2), xl = le(d + p + 30, 2), cl = le(d + p + 32, 2);
      e.local = le(d + p + 42, 4);
      if (p + 46 + nl + xl + cl > cd_off + cd_size) corrupt("central directory entry {} is cut short", k);
      e.name.assign(reinterpret_cast<const char*>(d + p + 46), nl);
      // zip64 extra field: the 8-byte values of the fields saturated at 0xFFFFFFFF, in this order.
      for (uint64_t x = p + 46 + nl; x + 4 <= p + 46 + nl + xl;) {
        uint64_t id = le(d + x, 2), len = le(d + x + 2, 2), q = x + 4;
        if (x + 4 + len > p + 46 + nl + xl) corrupt("record '{}': extra field cut short", printable(e.name));
        if (id == 1) {
          for (uint64_t* f : {&e.uncomp, &e.comp, &e.local})
            if (*f == 0xFFFFFFFF) {
              if (q + 8 > x + 4 + len) corrupt("record '{}': zip64 field cut short", printable(e.name));
              *f = le(d + q, 8), q += 8;
            }
        }
        x += 4 + len;
      }
      p += 46 + nl + xl + cl;
      if (!names.insert(e.name).second) bad(e, "appears twice");
      if (e.method != 0 && e.method != 8) bad(e, "uses zip method {} (TorchScript writes stored or deflate)", e.method);
      if (e.method == 0 && e.comp != e.uncomp) bad(e, "is stored but its sizes differ ({} vs {})", e.comp, e.uncomp);
      if (e.local > cd_off || cd_off - e.local < 30 || le(d + e.local, 4) != 0x04034b50)
        bad(e, "has no local header where the directory says");
      e.data = e.local + 30 + le(d + e.local + 26, 2) + le(d + e.local + 28, 2);
      if (e.data > cd_off || e.comp > cd_off - e.data) bad(e, "extends past its data ({} bytes at {})", e.comp, e.data);
      if (e.uncomp > lim_.max_record_bytes) bad(e, "decompresses to {} bytes, over the {} allowed", e.uncomp, lim_.max_record_bytes);
      // A deflate stream expands at most ~1032x; a larger claim is a bomb or a lie, caught before inflating.
      if (e.method == 8 && e.uncomp > e.comp * 1032 + 64) bad(e, "claims {} bytes from {} compressed", e.uncomp, e.comp);
      total += e.uncomp;
      if (total > lim_.max_total_bytes) corrupt("records decompress to over {} bytes in all", lim_.max_total_bytes);
      entries_.push_back(std::move(e));
    }
  }

  std::string path_;
  Mapped map_;
  ArchiveLimits lim_;
  std::vector<Entry> entries_;
};

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// The storages a TorchScript pickle (data.pkl, constants.pkl) declares: persistent ids ('storage', <type>, key,
// device, numel). Walks the opcodes LibTorch's pickler writes (its unpickler accepts no others), bounds-checked;
// only strings, ints, globals and tuples are tracked, the rest are placeholders.
struct Storage {
  std::string key, type;
  uint64_t numel = 0;
};

class PickleWalk {
 public:
  PickleWalk(const std::string& where, const std::string& bytes) : where_(where), b_(bytes) {}

  std::vector<Storage> run() {
    for (;;) {
      uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                                      // PROTO
        case '.': return std::move(storages_);                        // STOP
        case '(': push(V{V::Mark}); break;                            // MARK
        case 'J': push_int(int32_t(uint32_t(le_n(4)))); break;        // BININT
        case 'K': push_int(le_n(1)); break;                           // BININT1
        case 'M': push_int(le_n(2)); break;                           // BININT2
        case 0x8a: { uint64_t n = u8(); take(n); push(V{}); break; }  // LONG1
        case 'G': take(8), push(V{}); break;                          // BINFLOAT
        case 'X': push_str(take(le_n(4))); break;                     // BINUNICODE
        case 0x8c: push_str(take(u8())); break;                       // SHORT_BINUNICODE
        case 0x8d: push_str(take(le_n(8))); break;                    // BINUNICODE8
        case 'B': take(le_n(4)), push(V{}); break;                    // BINBYTES
        case 'C': take(u8()), push(V{}); break;                       // SHORT_BINBYTES
        case 0x8e: take(le_n(8)), push(V{}); break;                   // BINBYTES8
        case ')': push(V{V::Tuple}); break;                           // EMPTY_TUPLE
        case 't': push(tuple_from(pop_mark())); break;                // TUPLE
        case 0x85: case 0x86: case 0x87: {                            // TUPLE1..3
          std::vector<V> items(op - 0x84);
          for (size_t i = items.size(); i-- > 0;) items[i] = pop();
          push(tuple_from(std::move(items)));
          break;
        }
        case ']': case '}': push(V{}); break;                         // EMPTY_LIST, EMPTY_DICT
        case 'l': case 'd': push(container(pop_mark())); break;       // LIST, DICT
        case 'e': case 'u': { auto items = pop_mark(); for (const V& v : items) nest(top(), v); break; }  // APPENDS, SETITEMS
        case 'a': { V v = pop(); nest(top(), v); break; }             // APPEND
        case 's': { V v = pop(), k = pop(); nest(top(), v), nest(top(), k); break; }  // SETITEM
        case 'c': {                                                   // GLOBAL module\nname\n
          std::string m = line(), n = line();
          V g{V::Global};
          g.s = std::make_shared<const std::string>(m + " " + n);
          push(std::move(g));
          break;
        }
        case 'R': case 0x81: { V a = pop(), f = pop(); push(container({std::move(f), std::move(a)})); break; }  // REDUCE, NEWOBJ
        case 'b': { V v = pop(); nest(top(), v); break; }             // BUILD
        case 'Q': { V id = pop(); persistent(id); push(container({std::move(id)})); break; }  // BINPERSID
        case 'q': memo(u8()); break;                                  // BINPUT
        case 'r': memo(le_n(4)); break;                               // LONG_BINPUT
        case 'h': recall(u8()); break;                                // BINGET
        case 'j': recall(le_n(4)); break;                             // LONG_BINGET
        case 'N': case 0x88: case 0x89: push(V{}); break;             // NONE, NEWTRUE, NEWFALSE
        default: fail("model: {}: pickle opcode 0x{:02x} at byte {} is not one TorchScript writes", where_, op, pos_ - 1);
      }
    }
  }

 private:
  // Strings are shared: BINGET pushes a memo's value once per opcode, and copies of a 32 MiB string would make a
  // 64 MiB pickle hold terabytes.
  struct V {
    enum Kind { Other, Mark, Str, Int, Global, Tuple } kind = Other;
    std::shared_ptr<const std::string> s;
    int64_t i = 0;
    std::vector<V> items;
    uint32_t depth = 0;  // how many containers deep its innermost value lies
  };
  [[noreturn]] void cut() { fail("model: {}: pickle is cut short", where_); }
  uint8_t u8() {
    if (pos_ >= b_.size()) cut();
    return uint8_t(b_[pos_++]);
  }
  uint64_t le_n(int n) {
    if (b_.size() - pos_ < size_t(n)) cut();
    uint64_t v = le(reinterpret_cast<const uint8_t*>(b_.data()) + pos_, n);
    pos_ += size_t(n);
    return v;
  }
  std::string take(uint64_t n) {
    if (n > b_.size() - pos_) cut();
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string line() {
    size_t e = b_.find('\n', pos_);
    if (e == std::string::npos) cut();
    std::string s = b_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
  }
  void push(V v) {
    if (stack_.size() > (1u << 22)) fail("model: {}: pickle stack over 4M values", where_);
    stack_.push_back(std::move(v));
  }
  void push_int(int64_t i) { V v{V::Int}; v.i = i; push(std::move(v)); }
  void push_str(std::string s) { V v{V::Str}; v.s = std::make_shared<const std::string>(std::move(s)); push(std::move(v)); }
  V pop() {
    if (stack_.empty() || stack_.back().kind == V::Mark) fail("model: {}: malformed pickle (stack underflow)", where_);
    V v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  V& top() {
    if (stack_.empty() || stack_.back().kind == V::Mark) fail("model: {}: malformed pickle (stack underflow)", where_);
    return stack_.back();
  }
  // Nesting depth is tracked and capped: LibTorch's unpickler builds (and frees) the values recursively, so a
  // pickle of TUPLE1 or APPEND a million deep would overflow its stack after these checks passed.
  static constexpr uint32_t kMaxDepth = 1000;
  void nest(V& parent, const V& child) {
    parent.depth = std::max(parent.depth, child.depth + 1);
    if (parent.depth > kMaxDepth) fail("model: {}: pickle nests values over {} levels deep", where_, kMaxDepth);
  }
  V container(std::vector<V> items) {  // a list, dict or object made of `items`; only their depth is kept
    V c;
    for (const V& v : items) nest(c, v);
    return c;
  }
  std::vector<V> pop_mark() {
    std::vector<V> items;
    while (!stack_.empty() && stack_.back().kind != V::Mark) items.push_back(pop());
    if (stack_.empty()) fail("model: {}: malformed pickle (no mark)", where_);
    stack_.pop_back();
    std::reverse(items.begin(), items.end());
    return items;
  }
  V tuple_from(std::vector<V> items) {
    V t{V::Tuple};
    for (const V& v : items) nest(t, v);
    // Only a short tuple of scalars can be a storage id; keep the others' contents out of memory. Never nesting
    // kept tuples also bounds the depth of ~V(): TUPLE1 applied 30M times would overflow the stack freeing it.
    const bool flat = std::none_of(items.begin(), items.end(), [](const V& v) { return v.kind == V::Tuple; });
    if (items.size() <= 5 && flat) t.items = std::move(items);
    return t;
  }
  void memo(uint64_t k) {
    top();
    if (k > (1u << 22)) fail("model: {}: pickle memo index {} too large", where_, k);
    if (memo_.size() <= k) memo_.resize(k + 1);
    const V& v = stack_.back();
    if (v.kind == V::Tuple) {  // tuples are never recalled as ids; their depth is kept
      memo_[k] = V{V::Other};
      memo_[k].depth = v.depth;
    } else {
      memo_[k] = v;
    }
  }
  void recall(uint64_t k) {
    if (k >= memo_.size()) fail("model: {}: pickle recalls memo {} never stored", where_, k);
    push(memo_[k]);
  }
  void persistent(const V& id) {
    const auto& it = id.items;
    if (id.kind != V::Tuple || it.size() != 5 || it[0].kind != V::Str || *it[0].s != "storage" ||
        it[1].kind != V::Global || it[2].kind != V::Str || it[4].kind != V::Int || it[4].i < 0)
      fail("model: {}: a persistent id that is not a tensor storage", where_);
    storages_.push_back({*it[2].s, *it[1].s, uint64_t(it[4].i)});
  }

  std::string where_;
  const std::string& b_;
  size_t pos_ = 0;
  std::vector<V> stack_, memo_;
  std::vector<Storage> storages_;
};

uint64_t storage_element_bytes(const std::string& global) {  // "torch FloatStorage" -> 4
  static const std::pair<const char*, uint64_t> kSizes[] = {
      {"DoubleStorage", 8}, {"FloatStorage", 4}, {"HalfStorage", 2}, {"BFloat16Storage", 2}, {"LongStorage", 8},
      {"IntStorage", 4},    {"ShortStorage", 2}, {"CharStorage", 1}, {"ByteStorage", 1},     {"BoolStorage", 1},
      {"ComplexFloatStorage", 8}, {"ComplexDoubleStorage", 16}, {"QInt32Storage", 4}};
  for (const auto& [name, bytes] : kSizes)
    if (ends_with(global, std::string(" ") + name)) return bytes;
  return 1;  // byte-sized or unknown: at least numel bytes
}

// Scans one code record: every dotted name outside string literals, and `while` in __setstate__.
void scan_code(const std::string& record, const std::string& text, std::vector<ArchiveCode>& out) {
  std::string method;
  size_t i = 0;
  bool line_start = true;
  while (i < text.size()) {
    char c = text[i];
    if (c == '\n') {
      line_start = true, ++i;
      continue;
    }
    if (c == '"' || c == '\'') {  // a string literal: skip to its closing quote (escapes included)
      for (++i; i < text.size() && text[i] != c && text[i] != '\n'; ++i)
        if (text[i] == '\\') ++i;
      ++i;
      continue;
    }
    if (c == '#') {  // a comment
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (!ident_char(c) || (i > 0 && (ident_char(text[i - 1]) || text[i - 1] == '.'))) {
      if (c != ' ') line_start = false;
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && (ident_char(text[j]) || (text[j] == '.' && j + 1 < text.size() && ident_char(text[j + 1]))))
      ++j;
    std::string name = text.substr(i, j - i);
    const bool first = line_start;
    line_start = false;
    i = j;
    if (first && name == "def") {
      size_t k = text.find_first_not_of(' ', i);
      size_t e = k;
      while (e < text.size() && ident_char(text[e])) ++e;
      method = k == std::string::npos ? "" : text.substr(k, e - k);
      continue;
    }
    if (name == "while" && method == "__setstate__") {
      out.push_back({record, method, "while"});
      continue;
    }
    std::string op;
    if (name.rfind("torch.", 0) == 0 || name.rfind("ops.", 0) == 0) op = op_of_call(name);
    else if (name.find(".torch.classes.") != std::string::npos) op = name.substr(name.find("torch.classes."));
    if (!op.empty() && !op_allowed(op)) out.push_back({record, method, op});
  }
}

}  // namespace

std::string op_of_call(const std::string& dotted) {
  std::vector<std::string> parts;
  for (size_t s = 0, e; s <= dotted.size(); s = e + 1) {
    e = dotted.find('.', s);
    if (e == std::string::npos) e = dotted.size();
    parts.push_back(dotted.substr(s, e - s));
  }
  auto ns_op = [&](size_t at) {  // parts[at] is the namespace, parts[at + 1] the op
    return parts.size() > at + 1 ? parts[at] + "::" + parts[at + 1] : dotted;
  };
  if (parts[0] == "ops") return ns_op(1);
  if (parts.size() >= 3 && parts[1] == "ops") return ns_op(2);
  if (parts.size() >= 2 && parts[1] == "classes") return dotted;
  if (parts.size() >= 3 && parts[1] == "_C" && parts[2].rfind("_", 0) == 0 && parts.size() >= 4)
    return "aten::" + parts[3];  // torch._C._nn.gelu and kin: aten ops by another path
  if (parts.size() >= 3 && (parts[1] == "distributed" || parts[1] == "_C")) return dotted;  // not an aten op
  return "aten::" + parts.back();
}

bool op_allowed(const std::string& op) {
  if (op == "aten::save" || op == "aten::from_file") return false;  // the aten ops that take a file name
  for (const char* ns : {"aten::", "prim::", "joule::", "quantized::", "_quantized::"})
    if (op.rfind(ns, 0) == 0) return true;
  return op.rfind("torch.classes.quantized.", 0) == 0;  // torch's own packed-weight classes (quantize_dynamic)
}

std::vector<ArchiveCode> check_archive(const std::string& path, const ArchiveLimits& limits) {
  Zip zip(path, limits);
  // Other zip formats PyTorch writes, told apart so the error says what to do.
  bool code = false, pt2 = false, pickle = false;
  for (const auto& e : zip.entries()) {
    code = code || e.name.find("/code/") != std::string::npos;
    pt2 = pt2 || ends_with(e.name, "/archive_format") || ends_with(e.name, "/models/model.json");
    pickle = pickle || ends_with(e.name, "/data.pkl");
  }
  if (pt2)
    fail("model '{}': a torch.export program (.pt2), which C++ cannot load; Joule's C++ IR is TorchScript: in Python, "
         "trace it (torch.jit.trace(torch.export.load(path).module(), example_inputs).save(...)) or pass the nn.Module "
         "to joule.compress", path);
  if (!code && pickle)
    fail("model '{}': a torch.save file (a state dict or a pickled nn.Module), not TorchScript; script or trace the "
         "model first (torch.jit.script(model).save(path)), or give its weights as safetensors / an HF folder", path);
  std::vector<ArchiveCode> found;
  // Every storage the pickles declare must be a record at least as large as its elements: LibTorch copies the
  // declared size out of the record.
  std::map<std::string, const Entry*> by_name;
  for (const auto& e : zip.entries()) by_name[e.name] = &e;
  for (const auto& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos) continue;
    const std::string dir = e.name.substr(slash + 1);
    if (dir != "data.pkl" && dir != "constants.pkl") continue;
    const std::string records = e.name.substr(0, slash + 1) + (dir == "data.pkl" ? "data/" : "constants/");
    for (const Storage& st : PickleWalk(e.name, zip.read(e, limits.max_code_bytes)).run()) {
      auto r = by_name.find(records + st.key);
      if (r == by_name.end()) zip.bad(e, "declares storage '{}', which the archive lacks", st.key);
      const uint64_t bytes = storage_element_bytes(st.type);
      if (st.numel > r->second->uncomp / bytes)
        zip.bad(*r->second, "holds {} bytes but {} declares {} elements of {} bytes", r->second->uncomp, e.name,
                st.numel, bytes);
    }
  }
  uint64_t code_bytes = 0;
  for (const auto& e : zip.entries()) {
    const bool code = e.name.find("/code/") != std::string::npos && ends_with(e.name, ".py");
    if (code) {
      code_bytes += e.uncomp;
      if (code_bytes > limits.max_code_bytes)
        zip.bad(e, "brings the archive's code over {} bytes", limits.max_code_bytes);
      scan_code(e.name, zip.read(e, limits.max_code_bytes), found);
    } else if (e.method == 0) {
      zip.check_crc(e, zip.bytes(e), e.comp);
    } else {
      zip.read(e, limits.max_record_bytes);  // inflates and checks the CRC
    }
  }
  return found;
}

}  // namespace joule::io
