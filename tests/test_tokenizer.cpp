// WordPiece tokenizer: hand-written vocabs for the algorithm and the errors, and a golden fixture from
// Hugging Face's BertTokenizer (tests/make_tokenizer_golden.py) that ids and tokens must match exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/base/error.h"
#include "models/tokenizer.h"

namespace fs = std::filesystem;
using joule::text::WordPieceTokenizer;
using Strings = std::vector<std::string>;
using Ids = std::vector<int64_t>;

namespace {

// id = line: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then the pieces.
const char* const kVocab =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
    "un\nunaffable\n##aff\n##able\n##ab\n##le\nrun\n##ning\nthe\n,\n.\n!\n'\ns\ncafe\nhello\nworld\n"
    "中\n文\n##s\na\n##a\n";

WordPieceTokenizer tiny(bool lower_case = true) { return WordPieceTokenizer::from_vocab_text(kVocab, lower_case); }

// The what() of the joule::Error that `f` throws; fails the test if it throws nothing or something else.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const joule::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected joule::Error";
  return "";
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("joule_tok_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(Tokenizer, SpecialIdsAndVocabSize) {
  auto t = tiny();
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 1);
  EXPECT_EQ(t.cls_id(), 2);
  EXPECT_EQ(t.sep_id(), 3);
  EXPECT_EQ(t.vocab_size(), 27u);
  EXPECT_TRUE(t.lower_case());
  EXPECT_EQ(t.vocab_text(), kVocab);
}

TEST(Tokenizer, GreedyLongestMatchFirst) {
  auto t = tiny();
  // "unaffable" is whole in the vocab: the longest match wins over un + ##aff + ##able.
  EXPECT_EQ(t.tokenize("unaffable"), (Strings{"unaffable"}));
  // Greedy from the left: "running" -> run ##ning; "unable" -> un ##able (##ab + ##le is never tried).
  EXPECT_EQ(t.tokenize("running unable"), (Strings{"run", "##ning", "un", "##able"}));
  EXPECT_EQ(t.tokenize("unaffables"), (Strings{"unaffable", "##s"}));
  EXPECT_EQ(t.tokenize("aaa"), (Strings{"a", "##a", "##a"}));
}

TEST(Tokenizer, UnsegmentableWordIsOneUnk) {
  auto t = tiny();
  // "unx": un matches, then nothing covers "x": the whole word is one [UNK], not un + [UNK].
  EXPECT_EQ(t.tokenize("unx hello"), (Strings{"[UNK]", "hello"}));
  EXPECT_EQ(t.encode("unx hello"), (Ids{2, 1, 20, 3}));
  // Over 100 code points: [UNK] even though it segments; exactly 100 still segments.
  EXPECT_EQ(t.tokenize(std::string(101, 'a')), (Strings{"[UNK]"}));
  EXPECT_EQ(t.tokenize(std::string(100, 'a')).size(), 100u);
}

TEST(Tokenizer, BasicSplitLowerAccentsPunctuation) {
  auto t = tiny();
  EXPECT_EQ(t.tokenize("Hello, WORLD!"), (Strings{"hello", ",", "world", "!"}));
  EXPECT_EQ(t.tokenize("  Caf\xC3\xA9\t\n"), (Strings{"cafe"}));                 // é -> e, whitespace dropped
  EXPECT_EQ(t.tokenize("Cafe\xCC\x81."), (Strings{"cafe", "."}));                // combining acute stripped
  EXPECT_EQ(t.tokenize("the\xC2\xA0run's"), (Strings{"the", "run", "'", "s"}));  // U+00A0 splits
  EXPECT_EQ(t.tokenize("he\x01llo\xE2\x80\x8B"), (Strings{"hello"}));            // control and U+200B (Cf) dropped
  EXPECT_EQ(t.tokenize("\xE4\xB8\xAD\xE6\x96\x87"), (Strings{"中", "文"}));      // CJK split per ideograph
  EXPECT_EQ(t.tokenize(""), Strings{});
  EXPECT_EQ(t.tokenize("   "), Strings{});
  EXPECT_EQ(t.encode(""), (Ids{2, 3}));
}

TEST(Tokenizer, CasedKeepsCaseAndAccents) {
  auto t = tiny(false);
  EXPECT_FALSE(t.lower_case());
  EXPECT_EQ(t.tokenize("Hello hello caf\xC3\xA9"), (Strings{"[UNK]", "hello", "[UNK]"}));
}

TEST(Tokenizer, SpecialTokensInTextStayWhole) {
  auto t = tiny();
  // Lower-case "[sep]" is no special token: "[", "sep", "]", none of them in the tiny vocab.
  EXPECT_EQ(t.tokenize("hello [SEP] world[MASK]a [sep]"),
            (Strings{"hello", "[SEP]", "world", "[MASK]", "a", "[UNK]", "[UNK]", "[UNK]"}));
  EXPECT_EQ(t.encode("[CLS]"), (Ids{2, 2, 3}));
}

TEST(Tokenizer, TruncationKeepsClsAndSep) {
  auto t = tiny();
  const std::string text = "hello world hello world";
  EXPECT_EQ(t.encode(text), (Ids{2, 20, 21, 20, 21, 3}));
  EXPECT_EQ(t.encode(text, 6), (Ids{2, 20, 21, 20, 21, 3}));
  EXPECT_EQ(t.encode(text, 4), (Ids{2, 20, 21, 3}));
  EXPECT_EQ(t.encode(text, 2), (Ids{2, 3}));
  // Pieces of one word are cut like any other: run ##ning -> run.
  EXPECT_EQ(t.encode("running", 3), (Ids{2, 11, 3}));
  EXPECT_NE(error_of([&] { t.encode(text, 1); }).find("max_length 1"), std::string::npos);
}

TEST(Tokenizer, BatchPadsToLongestWithMask) {
  auto t = tiny();
  auto b = t.encode_batch({"hello world", "", "hello"});
  ASSERT_EQ(b.rows, 3);
  ASSERT_EQ(b.cols, 4);
  EXPECT_EQ(b.ids, (Ids{2, 20, 21, 3, /**/ 2, 3, 0, 0, /**/ 2, 20, 3, 0}));
  EXPECT_EQ(b.mask, (Ids{1, 1, 1, 1, /**/ 1, 1, 0, 0, /**/ 1, 1, 1, 0}));
  auto cut = t.encode_batch({"hello world hello", "hello"}, 3);
  EXPECT_EQ(cut.cols, 3);
  EXPECT_EQ(cut.ids, (Ids{2, 20, 3, /**/ 2, 20, 3}));
  auto none = t.encode_batch({});
  EXPECT_EQ(none.rows, 0);
  EXPECT_EQ(none.cols, 0);
  EXPECT_TRUE(none.ids.empty());
}

TEST(Tokenizer, VocabLineEndings) {
  // CRLF, a lone CR and no trailing newline: ids are still line indices; a repeat keeps its last id.
  auto t = WordPieceTokenizer::from_vocab_text("[PAD]\r\n[UNK]\r[CLS]\n[SEP]\r\nhello\r\nhello");
  EXPECT_EQ(t.vocab_size(), 6u);
  EXPECT_EQ(t.sep_id(), 3);
  EXPECT_EQ(t.encode("hello"), (Ids{2, 5, 3}));
  EXPECT_EQ(WordPieceTokenizer::from_vocab_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n").vocab_size(), 4u);
}

TEST(Tokenizer, InvalidUtf8Throws) {
  auto t = tiny();
  EXPECT_NE(error_of([&] { t.tokenize("ab\xFF"); }).find("invalid UTF-8"), std::string::npos);
  std::string err = error_of([] { WordPieceTokenizer::from_vocab_text("[PAD]\n[UNK]\n\xC3\n", true, "v.txt"); });
  EXPECT_NE(err.find("v.txt: line 3"), std::string::npos) << err;
}

TEST(Tokenizer, VocabFileErrorsNameTheFile) {
  std::string missing = temp_path("missing_vocab.txt");
  std::string err = error_of([&] { WordPieceTokenizer::from_vocab_file(missing); });
  EXPECT_NE(err.find(missing), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;

  std::string empty = temp_path("empty_vocab.txt");
  std::ofstream(empty).close();
  err = error_of([&] { WordPieceTokenizer::from_vocab_file(empty); });
  EXPECT_NE(err.find(empty), std::string::npos) << err;
  EXPECT_NE(err.find("empty"), std::string::npos) << err;

  std::string partial = temp_path("partial_vocab.txt");
  std::ofstream(partial) << "[PAD]\n[UNK]\nhello\n";
  err = error_of([&] { WordPieceTokenizer::from_vocab_file(partial); });
  EXPECT_NE(err.find(partial), std::string::npos) << err;
  EXPECT_NE(err.find("[CLS], [SEP]"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;

  std::string good = temp_path("good_vocab.txt");
  std::ofstream(good, std::ios::binary) << kVocab;
  auto t = WordPieceTokenizer::from_vocab_file(good, false);
  EXPECT_EQ(t.vocab_text(), kVocab);
  EXPECT_FALSE(t.lower_case());
  for (const auto& p : {empty, partial, good}) std::remove(p.c_str());
}

// Golden fixture: every case must give HF's ids (with specials, truncated) and tokens exactly.
TEST(Tokenizer, MatchesHuggingFaceGolden) {
  const fs::path golden = fs::path(JOULE_TEST_MODELS) / "tokenizer_golden.json";
  if (!fs::exists(golden))
    GTEST_SKIP() << golden.string() << " is absent: run .venv/bin/python tests/make_tokenizer_golden.py "
                 << golden.string();
  nlohmann::json j = nlohmann::json::parse(std::ifstream(golden));
  const fs::path vocab = golden.parent_path() / j.at("vocab").get<std::string>();
  if (!fs::exists(vocab)) GTEST_SKIP() << vocab.string() << " (the fixture's vocab) is absent";
  const auto uncased = WordPieceTokenizer::from_vocab_file(vocab.string(), true);
  const auto cased = WordPieceTokenizer::from_vocab_file(vocab.string(), false);
  ASSERT_GE(j.at("cases").size(), 30u);

  std::vector<std::string> batch_texts;
  std::vector<Ids> batch_ids;
  for (const auto& c : j.at("cases")) {
    const std::string name = c.at("name");
    const std::string text = c.at("text");
    const bool lower = c.at("lower_case");
    const size_t max_length = c.at("max_length");
    const auto& t = lower ? uncased : cased;
    EXPECT_EQ(t.tokenize(text), c.at("tokens").get<Strings>()) << "case " << name;
    EXPECT_EQ(t.encode(text, max_length), c.at("ids").get<Ids>()) << "case " << name;
    if (lower && max_length == 512) {
      batch_texts.push_back(text);
      batch_ids.push_back(c.at("ids").get<Ids>());
    }
  }
  // The same cases as one padded batch.
  auto b = uncased.encode_batch(batch_texts);
  ASSERT_EQ(b.rows, static_cast<int64_t>(batch_texts.size()));
  for (size_t r = 0; r < batch_ids.size(); ++r) {
    const auto row = b.ids.begin() + static_cast<std::ptrdiff_t>(r) * b.cols;
    const auto mask = b.mask.begin() + static_cast<std::ptrdiff_t>(r) * b.cols;
    EXPECT_EQ(Ids(row, row + static_cast<std::ptrdiff_t>(batch_ids[r].size())), batch_ids[r]) << "row " << r;
    EXPECT_EQ(std::count(mask, mask + b.cols, 1), static_cast<std::ptrdiff_t>(batch_ids[r].size())) << "row " << r;
  }
}
