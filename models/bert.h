// BERT sentence encoders (all-MiniLM-L6-v2 and kin) as TorchScript modules built in C++, so the passes see
// an ordinary graph with HF parameter paths (encoder.layer.3.attention.self.query.weight) and custom ops
// can be swapped in. forward(input_ids [B,T] int64, attention_mask [B,T] int64) -> [B, hidden] sentence
// embeddings: the folder's sentence-transformers pooling (mean by default, CLS, max) over real tokens, then L2
// normalisation when its pipeline has a Normalize module.
#pragma once
#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/io/model_io.h"
#include "models/stsb.h"
#include "models/tokenizer.h"

namespace joule::models {

struct BertConfig {
  int64_t vocab_size = 30522, hidden = 384, layers = 6, heads = 12, intermediate = 1536;
  int64_t max_position = 512, type_vocab = 2;
  double layer_norm_eps = 1e-12;
  // The sentence-transformers pipeline after the transformer (1_Pooling, 2_Normalize), not in HF's config.json:
  // "mean", "cls", "max" or "mean_sqrt_len_tokens" pooling over real tokens, then L2 normalisation or not.
  std::string pooling = "mean";
  bool normalize = true;
  static BertConfig from_json(const nlohmann::json& j, const std::string& origin);  // HF config.json
  nlohmann::json to_json() const;                                                   // HF config.json
};

// A sentence encoder: the module plus what turns text into its inputs.
struct SentenceEncoder {
  torch::jit::Module module;
  text::WordPieceTokenizer tokenizer;
  BertConfig config;
  int64_t max_length = 256;  // sentence-transformers' max_seq_length
  std::string origin;
  std::string tokenizer_json;  // the input folder's tokenizer.json, verbatim ("" when it had none), for exports

  // Embeds texts in batches (sorted by length to pad little; results in input order). [N, hidden].
  at::Tensor embed(const std::vector<std::string>& texts, int64_t batch_size = 32, bool progress = false) const;
  at::Tensor embed_with(torch::jit::Module& m, const std::vector<std::string>& texts, int64_t batch_size = 32,
                        bool progress = false) const;
  // Extra files that let a saved TorchScript archive be re-opened as an encoder (vocab, lengths, config).
  std::map<std::string, std::string> archive_files() const;
};

// True when `path` is a Hugging Face model folder (config.json + model.safetensors).
bool is_hf_dir(const std::string& path);

// HF folder: config.json, model.safetensors, vocab.txt (+ tokenizer_config.json, sentence_bert_config.json,
// modules.json and 1_Pooling/config.json: the pooling mode and normalisation; tokenizer.json, kept for exports).
// Layer widths come from the weights, so structurally pruned exports load too; a compressed-tensors checkpoint
// in a scheme Joule runs (models/hf_compressed.h) loads into joule:: ops. One-line errors name the file.
SentenceEncoder load_hf_encoder(const std::string& dir);
// A Joule-saved TorchScript archive carrying joule/vocab.txt and joule/text.json, or an HF folder.
SentenceEncoder load_encoder(const std::string& path);
// The encoder view of an already loaded archive (fails when it carries no tokenizer).
SentenceEncoder encoder_from_archive(const LoadedModel& lm, const std::string& origin);
// An HF folder loaded as a pipeline input: the module, a default workload (batch 1, 128 tokens, full
// mask), and the files that make the saved archive an encoder again.
LoadedModel load_hf_as_model(const std::string& dir);

// Calibration batches for an encoder from text: an STS-B TSV (both sentences of each pair) or a file of one
// text per line. `samples` texts evenly spaced over the file (all when there are fewer), each its own batch
// of one (input_ids [1, T], attention_mask [1, T]) so that no padding enters the statistics.
std::vector<std::vector<c10::IValue>> text_calibration(const SentenceEncoder& enc, const std::string& path,
                                                       int64_t samples);

struct StsbScore {
  double spearman = 0, pearson = 0;  // x100
  size_t pairs = 0;
  at::Tensor embeddings;  // [distinct sentences, hidden], in order of first appearance in the pairs
};
// Cosine similarity of the two sentences' embeddings against the gold scores.
StsbScore evaluate_stsb(const SentenceEncoder& enc, torch::jit::Module& m, const std::vector<text::StsbPair>& pairs,
                        bool progress = true, int64_t batch_size = 32);
// Writes an HF folder (model.safetensors, config.json, vocab.txt, tokenizer files, sentence-transformers
// modules) from the encoder's module as it is now; packed joule:: linears in compressed-tensors form
// (models/hf_compressed.h). Everything is checked first (hf_export_config) and written into a temp folder beside
// `dir`, then moved into place, so a refusal or a failure leaves no partial folder.
void save_hf_encoder(const SentenceEncoder& enc, const torch::jit::Module& module, const std::string& dir);
// The same into a temp folder of `outs`, moved into place with the set's other outputs by outs.commit().
void save_hf_encoder(const SentenceEncoder& enc, const torch::jit::Module& module, const std::string& dir,
                     io::OutputSet& outs);
// The config.json save_hf_encoder writes for `module`: the encoder's, with the feed-forward width read from the
// weights (structured pruning narrows it). Fails (one line naming the layers) when layers have different widths,
// which BertConfig cannot describe, or when a packed linear has no compressed-tensors form; callers check this
// before writing any output.
BertConfig hf_export_config(const SentenceEncoder& enc, const torch::jit::Module& module, const std::string& dir);

// The encoder's config with the layer count and feed-forward width read from `module`'s weights (distillation
// drops layers, structured pruning narrows them; with several widths, the widest).
BertConfig config_of(const SentenceEncoder& enc, const torch::jit::Module& module);
// archive_files() for `module`: what a saved archive of it needs to reopen as an encoder with the right config.
std::map<std::string, std::string> archive_files_for(const SentenceEncoder& enc, const torch::jit::Module& module);

// The module alone, from weights by HF name (missing or mis-shaped tensors: one-line errors naming `origin`).
torch::jit::Module build_bert(const BertConfig& cfg, const std::map<std::string, at::Tensor>& weights,
                              const std::string& origin);

}  // namespace joule::models
