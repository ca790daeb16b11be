// BERT WordPiece tokenization, following Hugging Face's Python BertTokenizer (BertTokenizerLegacy in
// transformers 5, tokenization_bert_legacy.py) step by step, so that ids match it and the Rust one exactly:
//  1. Special tokens written in the text ([UNK] [SEP] [PAD] [CLS] [MASK], case-sensitive, even inside a
//     word) are split out first, leftmost match first, and stay whole.
//  2. Clean: drop U+0000, U+FFFD and every C* code point except \t \n \r; \t \n \r and Zs become ' '.
//  3. Spaces around CJK ideographs (HF's _is_chinese_char ranges), NFC, split on Python's whitespace.
//  4. Per word: with lower_case, lower-case each code point as Python's str.lower() does (U+0130 becomes
//     "i" + U+0307), NFD and drop Mn (strips accents); then every punctuation code point (Unicode P*, or
//     ASCII 33-47, 58-64, 91-96, 123-126) becomes a word of its own.
//  5. WordPiece: greedy longest match first from the word's start, later pieces looked up as "##" + rest;
//     a word over 100 code points, or one with no full segmentation, becomes a single [UNK].
// Where HF's Python and Rust tokenizers disagree (tests/make_tokenizer_golden.py leaves such cases out):
// lower-casing has no final-sigma rule (word-final "Σ" gives "σ", as in Rust; Python's str.lower() gives
// "ς"); code points new in Unicode 15 are kept, as in Rust (utf8proc 2.8 knows them; Python 3.11's Unicode 14
// drops them as unassigned); unassigned code points and noncharacters are dropped, as in Python (Rust keeps
// them: [UNK]); a special token put together by the clean step ("[CL\x01S]", cased) stays whole, as in Python.
#include "models/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string_view>

#include "compress/base/error.h"
#include "compress/io/read_file.h"

namespace joule::text {
namespace {

constexpr size_t kMaxWordChars = 100;  // HF WordpieceTokenizer.max_input_chars_per_word
constexpr const char* kUnk = "[UNK]";
// HF's all_special_tokens for BERT, in its order; [MASK] is the one a vocab may lack.
constexpr const char* kSpecials[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};

using Chars = std::u32string;

Chars decode(std::string_view s, const std::string& what) {
  Chars out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  const auto n = static_cast<utf8proc_ssize_t>(s.size());
  for (utf8proc_ssize_t i = 0; i < n;) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(p + i, n - i, &cp);
    if (len < 0) fail("{}: invalid UTF-8 at byte {}", what, i);
    out.push_back(static_cast<char32_t>(cp));
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string encode_utf8(const Chars& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

bool all_ascii(const Chars& s) {
  return std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; });
}

// NFC or NFD (`form` = UTF8PROC_COMPOSE or UTF8PROC_DECOMPOSE). ASCII is already in both forms.
Chars normalize(const Chars& s, utf8proc_option_t form) {
  if (all_ascii(s)) return s;
  std::string in = encode_utf8(s);
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()), static_cast<utf8proc_ssize_t>(in.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | form));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  if (n < 0) fail("tokenizer: Unicode normalization failed: {}", utf8proc_errmsg(n));
  return decode(std::string_view(reinterpret_cast<const char*>(out), static_cast<size_t>(n)), "tokenizer");
}

utf8proc_category_t category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }

// HF _is_control: any C* category (Cc, Cf, Cs, Co, Cn) except \t \n \r.
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

// HF _is_whitespace (used by the clean step): space, \t \n \r, or Zs.
bool is_clean_space(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || category(c) == UTF8PROC_CATEGORY_ZS;
}

// Python's str.isspace(), which str.split() uses (HF whitespace_tokenize).
bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// HF _is_punctuation.
bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// HF _is_chinese_char: the CJK Unified Ideographs blocks (not Hangul, kana or CJK punctuation).
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Python's str.lower() of one character: the simple mapping, except U+0130, the one code point whose full
// (SpecialCasing) lower-case mapping is unconditional and differs.
void append_lower(Chars& out, char32_t c) {
  if (c == 0x130) {
    out += U'i';
    out += char32_t(0x307);
    return;
  }
  out += static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

Chars lower(const Chars& s) {
  Chars out;
  out.reserve(s.size());
  for (char32_t c : s) append_lower(out, c);
  return out;
}

bool is_special(const Chars& word) {
  if (word.empty() || word.front() != '[') return false;
  std::string w = encode_utf8(word);
  return std::any_of(std::begin(kSpecials), std::end(kSpecials), [&](const char* s) { return w == s; });
}

// Python's str.split(): runs of whitespace separate words, no empty words.
void split_py_space(const Chars& s, std::vector<Chars>& out) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_py_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_py_space(s[j])) ++j;
    if (j > i) out.emplace_back(s, i, j - i);
    i = j;
  }
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path, bool lower_case) {
  return from_vocab_text(io::read_regular_file(path, io::kMaxConfigBytes, "vocab file"), lower_case,
                         "vocab file '" + path + "'");
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_text(const std::string& vocab_text, bool lower_case,
                                                       const std::string& origin) {
  WordPieceTokenizer t;
  t.vocab_text_ = vocab_text;
  t.lower_case_ = lower_case;
  // Python's readlines() with universal newlines: \n, \r\n and \r end a line; no token after a final one.
  int64_t id = 0;
  for (size_t i = 0; i < vocab_text.size(); ++id) {
    size_t end = vocab_text.find_first_of("\r\n", i);
    std::string token = vocab_text.substr(i, end == std::string::npos ? std::string::npos : end - i);
    size_t chars = decode(token, fmt::format("{}: line {}", origin, id + 1)).size();
    t.max_token_chars_ = std::max(t.max_token_chars_, chars);
    t.vocab_[token] = id;  // a repeated token keeps its last id
    if (end == std::string::npos) {
      i = vocab_text.size();
    } else {
      i = end + (vocab_text[end] == '\r' && end + 1 < vocab_text.size() && vocab_text[end + 1] == '\n' ? 2 : 1);
    }
  }
  t.vocab_size_ = static_cast<size_t>(id);
  if (t.vocab_size_ == 0) fail("{}: empty vocab (expected one WordPiece token per line)", origin);
  std::string missing;
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]"})
    if (!t.vocab_.count(s)) missing += (missing.empty() ? "" : ", ") + std::string(s);
  if (!missing.empty())
    fail("{}: not a BERT WordPiece vocab: no {} among its {} lines", origin, missing, t.vocab_size_);
  t.pad_id_ = t.vocab_.at("[PAD]");
  t.unk_id_ = t.vocab_.at(kUnk);
  t.cls_id_ = t.vocab_.at("[CLS]");
  t.sep_id_ = t.vocab_.at("[SEP]");
  return t;
}

int64_t WordPieceTokenizer::id_of(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? unk_id_ : it->second;
}

// Steps 2-4 on text that holds no special token; appends the words as UTF-8.
void WordPieceTokenizer::basic_tokenize(const std::string& segment, std::vector<std::string>& words) const {
  const Chars text = decode(segment, "tokenizer: input text");
  Chars clean;
  clean.reserve(text.size());
  for (char32_t c : text) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_clean_space(c)) {
      clean += U' ';
    } else if (is_cjk(c)) {
      clean += U' ';
      clean += c;
      clean += U' ';
    } else {
      clean += c;
    }
  }
  std::vector<Chars> tokens;
  split_py_space(normalize(clean, UTF8PROC_COMPOSE), tokens);

  std::vector<Chars> split;
  for (Chars& token : tokens) {
    if (is_special(token)) {  // HF's never_split: e.g. "[CLS]" put together by the clean step
      split.push_back(token);
      continue;
    }
    if (lower_case_) {
      Chars stripped;
      for (char32_t c : normalize(lower(token), UTF8PROC_DECOMPOSE))
        if (category(c) != UTF8PROC_CATEGORY_MN) stripped += c;
      token = std::move(stripped);
    }
    bool new_word = true;
    for (char32_t c : token) {
      if (is_punctuation(c)) {
        split.emplace_back(1, c);
        new_word = true;
      } else {
        if (new_word) split.emplace_back();
        split.back() += c;
        new_word = false;
      }
    }
  }
  // HF joins the pieces with spaces and splits them again.
  std::vector<Chars> out;
  for (const Chars& piece : split) split_py_space(piece, out);
  for (const Chars& w : out) words.push_back(encode_utf8(w));
}

// Step 5 for one word.
void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<std::string>& pieces) const {
  // Byte offset of each code point, and the end.
  std::vector<size_t> at;
  for (size_t i = 0; i < word.size(); ++i)
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) at.push_back(i);
  const size_t n = at.size();
  at.push_back(word.size());
  if (n > kMaxWordChars) {
    pieces.push_back(kUnk);
    return;
  }
  size_t first = pieces.size();
  std::string candidate;
  for (size_t start = 0; start < n;) {
    bool found = false;
    size_t end = std::min(n, start + max_token_chars_);  // no longer entry exists
    for (; end > start; --end) {
      candidate.assign(start > 0 ? "##" : "");
      candidate.append(word, at[start], at[end] - at[start]);
      if (vocab_.count(candidate)) {
        found = true;
        break;
      }
    }
    if (!found) {
      pieces.resize(first);
      pieces.push_back(kUnk);
      return;
    }
    pieces.push_back(candidate);
    start = end;
  }
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> pieces, words;
  auto run = [&](std::string_view segment) {
    if (segment.empty()) return;
    words.clear();
    basic_tokenize(std::string(segment), words);
    for (const std::string& w : words) wordpiece(w, pieces);
  };
  // Step 1: the specials are ASCII, so a byte search finds them only at code point boundaries.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string::npos;
    std::string_view special;
    for (const char* s : kSpecials) {
      size_t at = text.find(s, pos);
      if (at < best) best = at, special = s;
    }
    if (best == std::string::npos) break;
    run(std::string_view(text).substr(pos, best - pos));
    pieces.emplace_back(special);
    pos = best + special.size();
  }
  run(std::string_view(text).substr(std::min(pos, text.size())));
  return pieces;
}

std::vector<int64_t> WordPieceTokenizer::encode(const std::string& text, size_t max_length) const {
  if (max_length < 2) fail("tokenizer: max_length {} leaves no room for [CLS] and [SEP] (need >= 2)", max_length);
  std::vector<std::string> pieces = tokenize(text);
  pieces.resize(std::min(pieces.size(), max_length - 2));
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 2);
  ids.push_back(cls_id_);
  for (const std::string& p : pieces) ids.push_back(id_of(p));
  ids.push_back(sep_id_);
  return ids;
}

WordPieceTokenizer::Batch WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts,
                                                           size_t max_length) const {
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  size_t cols = 0;
  for (const std::string& t : texts) {
    rows.push_back(encode(t, max_length));
    cols = std::max(cols, rows.back().size());
  }
  Batch b;
  b.rows = static_cast<int64_t>(rows.size());
  b.cols = static_cast<int64_t>(cols);
  b.ids.assign(rows.size() * cols, pad_id_);
  b.mask.assign(rows.size() * cols, 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy(rows[r].begin(), rows[r].end(), b.ids.begin() + static_cast<std::ptrdiff_t>(r * cols));
    std::fill_n(b.mask.begin() + static_cast<std::ptrdiff_t>(r * cols), rows[r].size(), 1);
  }
  return b;
}

}  // namespace joule::text
