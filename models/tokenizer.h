// BERT WordPiece tokenizer in plain C++17 (no LibTorch), token for token the same as Hugging Face's
// BertTokenizer with the uncased vocab of sentence-transformers/all-MiniLM-L6-v2 (and bert-base-uncased):
// its Python and Rust implementations both, where they agree (tokenizer.cpp says where they do not).
// Unicode data (categories, case, NFC/NFD) comes from utf8proc.
//
// Immutable after construction: tokenize/encode are const and safe to call from several threads.
// Errors (bad vocab, invalid UTF-8 input, max_length < 2) throw joule::Error with one line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace joule::text {

class WordPieceTokenizer {
 public:
  // Vocab: one token per line, id = line index (LF, CRLF or CR line ends; a trailing newline adds no token;
  // a repeated token keeps its last id, as HF's load_vocab does). It must hold [PAD], [UNK], [CLS] and [SEP].
  // Throws joule::Error naming the file when it is missing, unreadable, empty, not UTF-8 or lacks one of them.
  static WordPieceTokenizer from_vocab_file(const std::string& path, bool lower_case = true);
  // The same from the file's text; `origin` names it in error messages.
  static WordPieceTokenizer from_vocab_text(const std::string& vocab_text, bool lower_case = true,
                                            const std::string& origin = "<memory>");

  // Word pieces ("un", "##believ", ...), no [CLS]/[SEP]; special tokens written in the text ("[SEP]")
  // stay whole. `text` must be UTF-8.
  std::vector<std::string> tokenize(const std::string& text) const;
  // [CLS] ids [SEP], the word pieces cut from the end so the total is <= max_length (HF truncation=True,
  // longest_first, one sequence). max_length must be >= 2.
  std::vector<int64_t> encode(const std::string& text, size_t max_length = 512) const;

  // Row-major [rows, cols]: every text encoded as above, padded with pad_id() to the longest row;
  // mask is 1 for real tokens (specials included), 0 for padding. No texts: rows = cols = 0.
  struct Batch {
    std::vector<int64_t> ids, mask;
    int64_t rows = 0, cols = 0;
  };
  Batch encode_batch(const std::vector<std::string>& texts, size_t max_length = 512) const;

  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  size_t vocab_size() const { return vocab_size_; }  // lines in the vocab = the embedding rows it needs
  bool lower_case() const { return lower_case_; }
  const std::string& vocab_text() const { return vocab_text_; }  // the vocab file's text, verbatim

 private:
  WordPieceTokenizer() = default;
  void basic_tokenize(const std::string& segment, std::vector<std::string>& words) const;
  void wordpiece(const std::string& word, std::vector<std::string>& pieces) const;
  int64_t id_of(const std::string& token) const;

  std::string vocab_text_;
  std::unordered_map<std::string, int64_t> vocab_;
  size_t vocab_size_ = 0;
  size_t max_token_chars_ = 0;  // longest vocab entry in code points: bounds the longest-match search
  bool lower_case_ = true;
  int64_t pad_id_ = 0, unk_id_ = 0, cls_id_ = 0, sep_id_ = 0;
};

}  // namespace joule::text
