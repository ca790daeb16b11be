// BERT encoder as TorchScript, built in C++ from HF weights, and its HF export (docs/EXPORT.md). Module and
// parameter names follow HF's BertModel so paths, globs and safetensors exports line up:
// embeddings.{word,position,token_type}_embeddings, embeddings.LayerNorm, encoder.layer.N.{attention.self.{query,
// key,value}, attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}}. Attention runs
// through aten::scaled_dot_product_attention with an additive mask; GELU is the exact (erf) form HF's "gelu"
// means. Each layer's widths are taken from its weights, so structurally pruned models rebuild without a
// per-layer config.
#include "models/bert.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "compress/base/error.h"
#include "compress/io/json_field.h"
#include "compress/io/model_io.h"
#include "compress/ir/lower.h"
#include "compress/io/read_file.h"
#include "compress/base/progress.h"
#include "compress/io/safetensors.h"
#include "models/hf_compressed.h"

namespace joule::models {
namespace fs = std::filesystem;
using torch::jit::Module;

static int64_t get_int(const nlohmann::json& j, const char* key, const std::string& origin) {
  const int64_t v = io::json_get<int64_t>(j, key, origin);
  if (v <= 0) fail("config '{}': '{}' is {}, not a positive integer", origin, key, v);
  return v;
}

BertConfig BertConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) fail("config '{}': not a JSON object", origin);
  const std::string type = io::json_value<std::string>(j, "model_type", "bert", origin);
  if (type != "bert") fail("config '{}': model_type '{}' is not supported (bert)", origin, printable(type));
  const std::string act = io::json_value<std::string>(j, "hidden_act", "gelu", origin);
  if (act != "gelu") fail("config '{}': hidden_act '{}' is not supported (gelu)", origin, printable(act));
  BertConfig c;
  c.vocab_size = get_int(j, "vocab_size", origin);
  c.hidden = get_int(j, "hidden_size", origin);
  c.layers = get_int(j, "num_hidden_layers", origin);
  c.heads = get_int(j, "num_attention_heads", origin);
  c.intermediate = get_int(j, "intermediate_size", origin);
  c.max_position = get_int(j, "max_position_embeddings", origin);
  c.type_vocab = j.contains("type_vocab_size") ? get_int(j, "type_vocab_size", origin) : 2;
  c.layer_norm_eps = io::json_value<double>(j, "layer_norm_eps", 1e-12, origin);
  // LayerNorm divides by sqrt(var + eps): zero, negative or non-finite eps gives NaN or Inf embeddings silently.
  if (!std::isfinite(c.layer_norm_eps) || c.layer_norm_eps <= 0 || c.layer_norm_eps > 1)
    fail("config '{}': layer_norm_eps {} is not in (0, 1]", origin, c.layer_norm_eps);
  if (c.hidden % c.heads != 0) fail("config '{}': hidden_size {} is not divisible by num_attention_heads {}", origin, c.hidden, c.heads);
  return c;
}

nlohmann::json BertConfig::to_json() const {
  return {{"architectures", {"BertModel"}},   {"model_type", "bert"},
          {"vocab_size", vocab_size},         {"hidden_size", hidden},
          {"num_hidden_layers", layers},      {"num_attention_heads", heads},
          {"intermediate_size", intermediate}, {"max_position_embeddings", max_position},
          {"type_vocab_size", type_vocab},    {"layer_norm_eps", layer_norm_eps},
          {"hidden_act", "gelu"},             {"pad_token_id", 0},
          {"position_embedding_type", "absolute"}};
}

namespace {

struct Weights {
  const std::map<std::string, at::Tensor>& w;
  const std::string& origin;
  at::Tensor get(const std::string& name, std::vector<int64_t> shape) const {
    auto it = w.find(name);
    if (it == w.end()) fail("weights '{}': tensor '{}' is missing", origin, name);
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] < 0) shape[i] = it->second.dim() == int64_t(shape.size()) ? it->second.size(i) : -1;
    if (it->second.sizes().vec() != shape)
      fail("weights '{}': tensor '{}' has shape {} but the config implies {}", origin, name,
           fmt::format("[{}]", fmt::join(it->second.sizes(), ", ")), fmt::format("[{}]", fmt::join(shape, ", ")));
    return it->second;
  }
};

Module param_module(const std::string& type, std::vector<std::pair<std::string, at::Tensor>> params) {
  Module m("__torch__.joule.bert." + type);
  for (auto& [n, t] : params) m.register_parameter(n, t, false);
  return m;
}

Module linear(const Weights& W, const std::string& path, int64_t out, int64_t in) {
  Module m = param_module("Linear", {{"weight", W.get(path + ".weight", {out, in})}, {"bias", W.get(path + ".bias", {out})}});
  m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  return m;
}

Module layer_norm(const Weights& W, const std::string& path, int64_t n, double eps) {
  Module m = param_module("LayerNorm", {{"weight", W.get(path + ".weight", {n})}, {"bias", W.get(path + ".bias", {n})}});
  m.define(fmt::format("def forward(self, x):\n    return torch.layer_norm(x, [{}], self.weight, self.bias, {:.17g})\n", n, eps));
  return m;
}

// LayerNorm(dense(h) + x): the output block after attention and after the feed-forward layer.
Module add_norm(const Weights& W, const std::string& path, int64_t out, int64_t in, double eps) {
  Module m("__torch__.joule.bert.AddNorm");
  m.register_module("dense", linear(W, path + ".dense", out, in));
  m.register_module("LayerNorm", layer_norm(W, path + ".LayerNorm", out, eps));
  m.define("def forward(self, h, x):\n    return self.LayerNorm.forward(self.dense.forward(h) + x)\n");
  return m;
}

}  // namespace

Module build_bert(const BertConfig& c, const std::map<std::string, at::Tensor>& weights, const std::string& origin) {
  Weights W{weights, origin};
  const int64_t H = c.hidden, D = c.hidden / c.heads;
  // The checkpoint's layers must be the config's: a num_hidden_layers below them would drop layers silently.
  int64_t stored_layers = 0;
  const std::string layer_prefix = "encoder.layer.";
  for (const auto& kv : weights) {
    const std::string& name = kv.first;
    if (name.rfind(layer_prefix, 0) != 0) continue;
    int64_t idx = 0;
    size_t k = layer_prefix.size();
    for (; k < name.size() && k < layer_prefix.size() + 9 && std::isdigit(static_cast<unsigned char>(name[k])); ++k)
      idx = idx * 10 + (name[k] - '0');
    if (k > layer_prefix.size() && k < name.size() && name[k] == '.') stored_layers = std::max(stored_layers, idx + 1);
  }
  if (stored_layers != c.layers)
    fail("weights '{}': the config says num_hidden_layers {} but the checkpoint has {} layer{} (encoder.layer.N.*)",
         origin, c.layers, stored_layers, stored_layers == 1 ? "" : "s");
  Module emb("__torch__.joule.bert.Embeddings");
  emb.register_module("word_embeddings", param_module("Embedding", {{"weight", W.get("embeddings.word_embeddings.weight", {c.vocab_size, H})}}));
  emb.register_module("position_embeddings", param_module("Embedding", {{"weight", W.get("embeddings.position_embeddings.weight", {c.max_position, H})}}));
  emb.register_module("token_type_embeddings", param_module("Embedding", {{"weight", W.get("embeddings.token_type_embeddings.weight", {c.type_vocab, H})}}));
  emb.register_module("LayerNorm", layer_norm(W, "embeddings.LayerNorm", H, c.layer_norm_eps));
  emb.define(R"(
def forward(self, input_ids):
    pos = torch.arange(input_ids.size(1), dtype=4, device=input_ids.device).unsqueeze(0)
    x = torch.embedding(self.word_embeddings.weight, input_ids)
    x = x + torch.embedding(self.position_embeddings.weight, pos)
    x = x + torch.embedding(self.token_type_embeddings.weight, torch.zeros_like(input_ids))
    return self.LayerNorm.forward(x)
)");

  Module layers("__torch__.joule.bert.Layers");
  std::string layers_src = "def forward(self, x, mask):\n";
  // hidden(): the same layers, returning the input and every layer's output (for hidden-state distillation).
  std::string hidden_src = "def hidden(self, x, mask):\n    hs = [x]\n";
  for (int64_t i = 0; i < c.layers; ++i) {
    std::string p = fmt::format("encoder.layer.{}", i);
    Module self_att("__torch__.joule.bert.SelfAttention");
    for (const char* n : {"query", "key", "value"}) self_att.register_module(n, linear(W, p + ".attention.self." + n, H, H));
    self_att.define(fmt::format(R"(
def forward(self, x, mask):
    B = x.size(0)
    T = x.size(1)
    q = self.query.forward(x).view(B, T, {0}, {1}).transpose(1, 2)
    k = self.key.forward(x).view(B, T, {0}, {1}).transpose(1, 2)
    v = self.value.forward(x).view(B, T, {0}, {1}).transpose(1, 2)
    ctx = torch.scaled_dot_product_attention(q, k, v, mask)
    return ctx.transpose(1, 2).reshape(B, T, {2})
)", c.heads, D, H));
    Module att("__torch__.joule.bert.Attention");
    att.register_module("self", self_att);
    att.register_module("output", add_norm(W, p + ".attention.output", H, H, c.layer_norm_eps));
    att.define("def forward(self, x, mask):\n    return self.output.forward(self.self.forward(x, mask), x)\n");

    int64_t inter = W.get(p + ".intermediate.dense.weight", {-1, H}).size(0);  // per layer: may be pruned
    if (inter > c.intermediate)
      fail("weights '{}': layer {} has {} feed-forward neurons but the config says intermediate_size {}", origin, i,
           inter, c.intermediate);
    Module intermediate("__torch__.joule.bert.Intermediate");
    intermediate.register_module("dense", linear(W, p + ".intermediate.dense", inter, H));
    intermediate.define("def forward(self, x):\n    return torch.gelu(self.dense.forward(x))\n");
    Module layer("__torch__.joule.bert.Layer");
    layer.register_module("attention", att);
    layer.register_module("intermediate", intermediate);
    layer.register_module("output", add_norm(W, p + ".output", H, inter, c.layer_norm_eps));
    layer.define(R"(
def forward(self, x, mask):
    a = self.attention.forward(x, mask)
    return self.output.forward(self.intermediate.forward(a), a)
)");
    layers.register_module(std::to_string(i), layer);
    layers_src += fmt::format("    x = getattr(self, \"{}\").forward(x, mask)\n", i);
    hidden_src += fmt::format("    x = getattr(self, \"{}\").forward(x, mask)\n    hs.append(x)\n", i);
  }
  layers_src += "    return x\n";
  hidden_src += "    return hs\n";
  layers.define(layers_src);
  layers.define(hidden_src);
  Module encoder("__torch__.joule.bert.Encoder");
  encoder.register_module("layer", layers);
  encoder.define("def forward(self, x, mask):\n    return self.layer.forward(x, mask)\n");

  Module m("__torch__.joule.bert.SentenceEncoder");
  m.register_module("embeddings", emb);
  m.register_module("encoder", encoder);
  // HF's pooler (dense + tanh on the [CLS] state) is not on the sentence-embedding path, but checkpoints carry it
  // and an export without it gets random weights in transformers. Kept as buffers: carried bit for bit through
  // .pt and export, and invisible to the passes and the trainer, which only see parameters on forward.
  if (weights.count("pooler.dense.weight") || weights.count("pooler.dense.bias")) {
    Module dense("__torch__.joule.bert.PoolerDense");
    dense.register_buffer("weight", W.get("pooler.dense.weight", {H, H}));
    dense.register_buffer("bias", W.get("pooler.dense.bias", {H}));
    Module pooler("__torch__.joule.bert.Pooler");
    pooler.register_module("dense", dense);
    m.register_module("pooler", pooler);
  }
  // Additive mask: 0 where attended, the most negative float where padded (as HF's extended mask). Dtypes are
  // spelled as ScalarType codes (4 = int64, 6 = float32): C++-defined TorchScript has no `torch.long`.
  const char* additive_mask =
      "    keep = attention_mask.unsqueeze(1).unsqueeze(2).to(6)\n"
      "    add = (1.0 - keep) * -3.4028234663852886e+38\n";
  // sentence-transformers' Pooling over real tokens (its _forward_padded, mode by mode), then Normalize.
  std::string pool = "    m = attention_mask.unsqueeze(-1).to(x.dtype)\n";
  if (c.pooling == "mean" || c.pooling == "mean_sqrt_len_tokens")
    pool += fmt::format("    s = (x * m).sum(1) / {}\n", c.pooling == "mean" ? "torch.clamp(m.sum(1), min=1e-9)"
                                                                             : "torch.sqrt(torch.clamp(m.sum(1), min=1e-9))");
  else if (c.pooling == "cls")  // the first real token
    pool += "    i = attention_mask.argmax(1).view(-1, 1, 1).expand(-1, 1, x.size(2))\n"
            "    s = x.gather(1, i).squeeze(1)\n";
  else if (c.pooling == "max")
    pool += "    s = torch.max(x.masked_fill(m == 0, float(\"-inf\")), 1)[0]\n";
  else
    fail("weights '{}': pooling '{}' is not implemented (mean, cls, max, mean_sqrt_len_tokens)", origin, printable(c.pooling));
  pool += c.normalize ? "    e = s / torch.clamp(s.norm(2, 1, True), min=1e-12)\n" : "    e = s\n";
  m.define(fmt::format("def forward(self, input_ids, attention_mask):\n{}"
                       "    x = self.encoder.forward(self.embeddings.forward(input_ids), add)\n{}    return e\n",
                       additive_mask, pool));
  // forward_hidden(): the embedding and the hidden states [embeddings, layer 0, ...], for distillation losses.
  m.define(fmt::format("def forward_hidden(self, input_ids, attention_mask):\n{}"
                       "    hs = self.encoder.layer.hidden(self.embeddings.forward(input_ids), add)\n"
                       "    x = hs[-1]\n{}    return (e, hs)\n",
                       additive_mask, pool));
  m.eval();
  // Round-trip through the serializer, so the module is exactly what a user gets from the saved .pt (its own
  // compilation unit, the serialized code). The "~30x slower" once measured for the C++-defined module was CPU
  // contention (docs/EXECUTOR.md): with the cores free both run at the same speed.
  std::stringstream buf;
  m.save(buf);
  return torch::jit::load(buf);
}

bool is_hf_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "config.json", ec);
}

static nlohmann::json read_json(const fs::path& p, bool required) {
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    if (required) fail("'{}': no such file", p.string());
    return nullptr;
  }
  const std::string text = io::read_regular_file(p.string(), io::kMaxConfigBytes, "JSON file");
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("'{}': not valid JSON ({})", p.string(), first_line(e.what()));
  }
}

static at::ScalarType torch_dtype(st::DType d) {
  switch (d) {
    case st::DType::F32: return at::kFloat;
    case st::DType::F16: return at::kHalf;
    case st::DType::BF16: return at::kBFloat16;
    case st::DType::I8: return at::kChar;
    case st::DType::U8: return at::kByte;
    case st::DType::I32: return at::kInt;
    case st::DType::I64: return at::kLong;
  }
  return at::kFloat;
}

// The sentence-transformers pipeline of a folder (modules.json, the Pooling module's config.json): the pooling
// mode and whether a Normalize module follows, into `c`. No modules.json: mean pooling and normalisation (a plain
// transformers folder; Joule's default). Modes Joule does not implement, or several concatenated, are refused.
static void read_sentence_pipeline(const fs::path& d, const std::string& dir, BertConfig& c) {
  fs::path pooling_dir = d / "1_Pooling";
  auto modules = read_json(d / "modules.json", false);
  c.pooling = "mean";
  c.normalize = true;
  if (!modules.is_null()) {
    if (!modules.is_array()) fail("model folder '{}': modules.json is not a list of modules", dir);
    auto ends_with = [](const std::string& s, const std::string& tail) {
      return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
    };
    c.normalize = false;
    for (const auto& m : modules) {
      const std::string type = io::json_value<std::string>(m, "type", "", (d / "modules.json").string());
      if (ends_with(type, "Normalize")) c.normalize = true;
      if (ends_with(type, "Pooling") && m.contains("path"))
        pooling_dir = d / io::json_get<std::string>(m, "path", (d / "modules.json").string());
      if (ends_with(type, "Dense") || ends_with(type, "LayerNorm") || ends_with(type, "WeightedLayerPooling"))
        fail("model folder '{}': modules.json has a {} module after pooling, which Joule does not implement", dir, printable(type));
    }
  }
  auto pooling = read_json(pooling_dir / "config.json", false);
  if (!pooling.is_object()) return;
  std::vector<std::string> modes;
  if (pooling.contains("pooling_mode") && pooling["pooling_mode"].is_string()) {
    modes.push_back(pooling["pooling_mode"].get<std::string>());
  } else if (pooling.contains("pooling_mode") && pooling["pooling_mode"].is_array()) {
    for (const auto& m : pooling["pooling_mode"]) modes.push_back(m.is_string() ? m.get<std::string>() : m.dump());
  } else {  // the legacy booleans, as sentence-transformers converts them (none set: mean)
    static const std::pair<const char*, const char*> legacy[] = {
        {"pooling_mode_cls_token", "cls"}, {"pooling_mode_max_tokens", "max"}, {"pooling_mode_mean_tokens", "mean"},
        {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"}, {"pooling_mode_weightedmean_tokens", "weightedmean"},
        {"pooling_mode_lasttoken", "lasttoken"}};
    for (auto [key, mode] : legacy)
      if (io::json_value<bool>(pooling, key, false, (pooling_dir / "config.json").string())) modes.push_back(mode);
    if (modes.empty()) modes.push_back("mean");
  }
  const std::set<std::string> implemented = {"mean", "cls", "max", "mean_sqrt_len_tokens"};
  if (modes.size() != 1 || !implemented.count(modes[0]))
    fail("model folder '{}': its sentence-transformers pooling is '{}' ({}); Joule implements mean, cls, max and "
         "mean_sqrt_len_tokens, one at a time", dir, printable(fmt::format("{}", fmt::join(modes, "+"))), (pooling_dir / "config.json").string());
  c.pooling = modes[0];
}

// The WordPiece vocabulary of a folder that has only tokenizer.json (what sentence-transformers 6 saves): its
// model.vocab, token -> id, as vocab.txt's lines in id order.
static std::string vocab_from_tokenizer_json(const fs::path& d, const std::string& dir) {
  auto tj = read_json(d / "tokenizer.json", false);
  if (!tj.is_object()) fail("model folder '{}': vocab.txt is missing (the WordPiece vocabulary), and no tokenizer.json", dir);
  const std::string where = (d / "tokenizer.json").string();
  const nlohmann::json model = tj.contains("model") ? tj["model"] : nlohmann::json::object();
  if (io::json_value<std::string>(model, "type", "", where) != "WordPiece" || !model.contains("vocab") || !model["vocab"].is_object())
    fail("model folder '{}': no vocab.txt, and tokenizer.json's model is not WordPiece", dir);
  std::vector<std::string> lines(model["vocab"].size());
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<size_t>() >= lines.size() || !lines[id.get<size_t>()].empty())
      fail("model folder '{}': tokenizer.json's vocab ids are not 0..{} once each", dir, lines.size() - 1);
    lines[id.get<size_t>()] = token;
  }
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

SentenceEncoder load_hf_encoder(const std::string& dir) {
  fs::path d(dir);
  if (!fs::is_directory(d)) fail("model folder '{}': no such folder", dir);
  const nlohmann::json hf_config = read_json(d / "config.json", true);
  BertConfig config = BertConfig::from_json(hf_config, (d / "config.json").string());
  read_sentence_pipeline(d, dir, config);
  auto tok_cfg = read_json(d / "tokenizer_config.json", false);
  const bool lower_case = io::json_value<bool>(tok_cfg, "do_lower_case", true, (d / "tokenizer_config.json").string());
  auto tokenizer = fs::exists(d / "vocab.txt")
                       ? text::WordPieceTokenizer::from_vocab_file((d / "vocab.txt").string(), lower_case)
                       : text::WordPieceTokenizer::from_vocab_text(vocab_from_tokenizer_json(d, dir), lower_case,
                                                                   (d / "tokenizer.json").string());
  if (int64_t(tokenizer.vocab_size()) != config.vocab_size)
    fail("model folder '{}': vocab.txt has {} tokens but config.json says vocab_size {}", dir, tokenizer.vocab_size(),
         config.vocab_size);
  fs::path st_path = d / "model.safetensors";
  st::File file = st::File::open(st_path.string());
  std::map<std::string, at::Tensor> weights;
  for (const auto& t : file.tensors()) {
    // Copy out of the mapping; fp16/bf16 checkpoints run in fp32 on the CPU.
    at::Tensor x = at::from_blob(const_cast<uint8_t*>(t.data), t.shape, at::TensorOptions().dtype(torch_dtype(t.dtype))).clone();
    if (at::isReducedFloatingType(x.scalar_type())) x = x.to(at::kFloat);
    weights[t.name.rfind("bert.", 0) == 0 ? t.name.substr(5) : t.name] = x;
  }
  auto st_cfg = read_json(d / "sentence_bert_config.json", false);
  int64_t max_length = io::json_value<int64_t>(st_cfg, "max_seq_length", 256, (d / "sentence_bert_config.json").string());
  if (max_length < 1) fail("'{}': max_seq_length {} is not positive", (d / "sentence_bert_config.json").string(), max_length);
  // A compressed-tensors checkpoint: its packed linears leave `weights` (float placeholders stand in for
  // build_bert) and are rewritten into joule:: ops afterwards, as the quantize pass rewrites them.
  const CompressedLinears compressed = read_compressed_linears(hf_config, weights, st_path.string());
  Module module = build_bert(config, weights, st_path.string());
  apply_compressed_linears(module, compressed);
  SentenceEncoder enc{module, std::move(tokenizer), config, std::min(max_length, config.max_position), dir};
  if (fs::exists(d / "tokenizer.json"))
    enc.tokenizer_json = io::read_regular_file((d / "tokenizer.json").string(), io::kMaxConfigBytes, "tokenizer file");
  return enc;
}

std::map<std::string, std::string> SentenceEncoder::archive_files() const {
  nlohmann::json text = {{"kind", "bert-sentence-encoder"},
                         {"max_length", max_length},
                         {"lower_case", tokenizer.lower_case()},
                         {"config", config.to_json()},
                         {"pooling", config.pooling},
                         {"normalize", config.normalize}};
  std::map<std::string, std::string> files = {{"joule/vocab.txt", tokenizer.vocab_text()}, {"joule/text.json", text.dump(2)}};
  if (!tokenizer_json.empty()) files["joule/tokenizer.json"] = tokenizer_json;
  return files;
}

SentenceEncoder load_encoder(const std::string& path) {
  if (is_hf_dir(path)) return load_hf_encoder(path);
  return encoder_from_archive(load_model(path), path);
}

LoadedModel load_hf_as_model(const std::string& dir) {
  SentenceEncoder enc = load_hf_encoder(dir);
  LoadedModel lm;
  lm.module = enc.module;
  lm.workload = {{"inputs", {fmt::format("i64:1x128:{}", enc.config.vocab_size), "i64:1x128=1"}}};
  lm.extra = enc.archive_files();
  return lm;
}

StsbScore evaluate_stsb(const SentenceEncoder& enc, Module& m, const std::vector<text::StsbPair>& pairs, bool progress,
                        int64_t batch_size) {
  // Each distinct sentence is embedded once.
  std::map<std::string, size_t> index;
  std::vector<std::string> sentences;
  for (const auto& p : pairs)
    for (const std::string* s : {&p.a, &p.b})
      if (index.emplace(*s, sentences.size()).second) sentences.push_back(*s);
  at::Tensor e = enc.embed_with(m, sentences, batch_size, progress);
  std::vector<double> predicted, gold;
  for (const auto& p : pairs) {
    at::Tensor a = e[int64_t(index[p.a])], b = e[int64_t(index[p.b])];
    predicted.push_back((a.dot(b) / (a.norm() * b.norm()).clamp_min(1e-12)).item<double>());
    gold.push_back(p.score);
  }
  return {100 * text::spearman(predicted, gold), 100 * text::pearson(predicted, gold), pairs.size(), e};
}

std::vector<std::vector<c10::IValue>> text_calibration(const SentenceEncoder& enc, const std::string& path,
                                                       int64_t samples) {
  std::vector<std::string> texts;
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".tsv") == 0) {
    for (const auto& p : text::load_stsb(path)) texts.insert(texts.end(), {p.a, p.b});
  } else {
    std::istringstream f(io::read_regular_file(path, io::kMaxDataBytes, "calibration file"));
    for (std::string line; std::getline(f, line);)
      if (line.find_first_not_of(" \t\r") != std::string::npos) texts.push_back(line);
  }
  if (texts.empty()) fail("calibration file '{}': no text in it", path);
  const size_t n = std::min<size_t>(texts.size(), static_cast<size_t>(samples));
  std::vector<std::vector<c10::IValue>> batches;
  for (size_t i = 0; i < n; ++i) {
    const auto ids = enc.tokenizer.encode(texts[i * texts.size() / n], static_cast<size_t>(enc.max_length));
    at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0);
    batches.push_back({input, at::ones_like(input)});
  }
  return batches;
}

SentenceEncoder encoder_from_archive(const LoadedModel& lm, const std::string& path) {
  auto vocab = lm.extra.find("joule/vocab.txt"), text = lm.extra.find("joule/text.json"),
       tokenizer_json = lm.extra.find("joule/tokenizer.json");
  if (vocab == lm.extra.end() || text == lm.extra.end())
    fail("model '{}': not a sentence encoder (no joule/vocab.txt and joule/text.json in the archive)", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text->second);
    const std::string where = path + ":joule/text.json";
    SentenceEncoder enc{lm.module,
                        text::WordPieceTokenizer::from_vocab_text(vocab->second, io::json_get<bool>(j, "lower_case", where), path + ":joule/vocab.txt"),
                        BertConfig::from_json(j.contains("config") ? j["config"] : nlohmann::json(), where),
                        io::json_get<int64_t>(j, "max_length", where), path};
    if (enc.max_length < 1) fail("'{}': max_length {} is not positive", where, enc.max_length);
    // Archives from before pooling modes: mean + normalise.
    enc.config.pooling = io::json_value<std::string>(j, "pooling", "mean", where);
    enc.config.normalize = io::json_value<bool>(j, "normalize", true, where);
    if (tokenizer_json != lm.extra.end()) enc.tokenizer_json = tokenizer_json->second;
    return enc;
  } catch (const nlohmann::json::exception& e) {
    fail("model '{}': corrupt joule/text.json ({})", path, first_line(e.what()));
  }
}

at::Tensor SentenceEncoder::embed(const std::vector<std::string>& texts, int64_t batch_size, bool progress) const {
  Module m = module;
  return embed_with(m, texts, batch_size, progress);
}

at::Tensor SentenceEncoder::embed_with(Module& model, const std::vector<std::string>& texts, int64_t batch_size,
                                       bool progress) const {
  Module m = lower_for_cpu(model).module;  // as measurement runs it (compress/ir/lower.h)
  std::vector<std::vector<int64_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) ids[i] = tokenizer.encode(texts[i], static_cast<size_t>(max_length));
  // Longest first, so batches pad little and the progress bar slows down rather than stalls at the end.
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  std::optional<Progress> bar;
  int64_t batches = (int64_t(texts.size()) + batch_size - 1) / batch_size;
  if (progress) bar.emplace("embedding " + std::to_string(texts.size()) + " texts", batches);
  at::Tensor out;
  torch::NoGradGuard no_grad;
  for (size_t start = 0; start < order.size(); start += batch_size) {
    size_t n = std::min<size_t>(batch_size, order.size() - start);
    int64_t T = int64_t(ids[order[start]].size());
    at::Tensor input = at::full({int64_t(n), T}, tokenizer.pad_id(), at::kLong);
    at::Tensor mask = at::zeros({int64_t(n), T}, at::kLong);
    auto ia = input.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (size_t r = 0; r < n; ++r) {
      const auto& row = ids[order[start + r]];
      for (size_t t = 0; t < row.size(); ++t) ia[r][t] = row[t], ma[r][t] = 1;
    }
    at::Tensor e = m.forward({input, mask}).toTensor();
    if (!out.defined()) out = at::empty({int64_t(texts.size()), e.size(1)}, e.options());
    for (size_t r = 0; r < n; ++r) out[int64_t(order[start + r])].copy_(e[int64_t(r)]);
    if (bar) bar->tick();
  }
  return out;
}

// Feed-forward width -> layers of that width, from the weights.
static std::map<int64_t, std::vector<std::string>> ffn_widths(const Module& module) {
  std::map<int64_t, std::vector<std::string>> widths;
  for (const auto& p : module.named_parameters(true)) {
    const std::string suffix = ".intermediate.dense.weight";
    if (p.name.size() > suffix.size() && p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      widths[p.value.size(0)].push_back(p.name.substr(0, p.name.size() - suffix.size()));
  }
  return widths;
}

BertConfig config_of(const SentenceEncoder& enc, const Module& module) {
  BertConfig cfg = enc.config;
  std::set<std::string> layers;  // "encoder.layer.N", from the parameter names (quantized weights are empty)
  for (const auto& p : module.named_parameters(true)) {
    const std::string prefix = "encoder.layer.";
    if (p.name.rfind(prefix, 0) == 0) layers.insert(p.name.substr(0, p.name.find('.', prefix.size())));
  }
  if (!layers.empty()) cfg.layers = int64_t(layers.size());
  auto widths = ffn_widths(module);
  widths.erase(0);  // packed into joule:: ops: the width is not in the float weight any more
  if (!widths.empty()) cfg.intermediate = widths.rbegin()->first;
  return cfg;
}

std::map<std::string, std::string> archive_files_for(const SentenceEncoder& enc, const Module& module) {
  SentenceEncoder e = enc;
  e.config = config_of(enc, module);
  return e.archive_files();
}

namespace {

// What an export writes: the config and the tensors, all checked before anything is written.
struct HfExport {
  BertConfig config;
  HfTensors tensors;
};

st::DType st_dtype(at::ScalarType t, const std::string& dir, const std::string& name) {
  switch (t) {
    case at::kFloat: return st::DType::F32;
    case at::kChar: return st::DType::I8;
    case at::kInt: return st::DType::I32;
    case at::kLong: return st::DType::I64;
    default: fail("export '{}': tensor '{}' is {}, which the export does not write", dir, name, c10::toString(t));
  }
}

// The config of the module as it is now: structured pruning narrows the feed-forward layers, distillation drops
// layers, and BertConfig has one intermediate_size for all of them, so layers of different widths cannot be
// described and are refused. Packed layers count with their logical [N, K].
HfExport plan_hf_export(const SentenceEncoder& enc, const Module& module, const std::string& dir) {
  std::error_code ec;
  if (!enc.origin.empty() && fs::exists(dir, ec) && fs::equivalent(dir, enc.origin, ec))
    fail("export '{}': that is the input model; choose another folder", dir);
  HfExport e{config_of(enc, module), hf_export_tensors(module, dir)};
  std::map<int64_t, std::vector<std::string>> widths;
  const std::string suffix = ".intermediate.dense";
  for (const auto& [m, shape] : e.tensors.linear_shapes)
    if (m.size() > suffix.size() && m.compare(m.size() - suffix.size(), suffix.size(), suffix) == 0)
      widths[shape.at(0)].push_back(m.substr(0, m.size() - suffix.size()));
  if (widths.size() > 1) {
    std::string list;
    for (const auto& [w, layers] : widths)
      list += fmt::format("{}{}: {}", list.empty() ? "" : "; ", w, fmt::join(layers, ", "));
    fail("export '{}': the feed-forward layers have different widths ({}), which an HF BertConfig cannot describe "
         "(one intermediate_size); prune every layer alike to export", dir, list);
  }
  if (!widths.empty()) e.config.intermediate = widths.begin()->first;
  for (const auto& [name, t] : e.tensors.tensors) st_dtype(t.scalar_type(), dir, name);
  return e;
}

// `files` (relative path -> content) and model.safetensors written into a fresh temp folder beside `dir`; publish()
// moves them into place: a new `dir` appears whole (one rename), into an existing folder each file is renamed over
// its old version. Destroyed unpublished (a failure here or in another output of its set), nothing is left behind.
class StagedFolder : public io::StagedOutput {
 public:
  StagedFolder(const std::string& dir, const std::map<std::string, std::string>& files,
               const std::vector<st::TensorData>& tensors)
      : dir_(dir), target_(fs::absolute(dir)) {
    std::error_code ec;
    if (fs::exists(target_, ec) && !fs::is_directory(target_, ec))
      fail("output folder '{}': exists and is not a folder", dir);
    fs::create_directories(target_.parent_path(), ec);
    tmp_ = target_.parent_path() / fmt::format(".{}.joule-tmp-{}", target_.filename().string(), ::getpid());
    names_ = {"model.safetensors"};
    for (const auto& [rel, content] : files) names_.push_back(rel);
    if (::mkdir(tmp_.c_str(), 0755) != 0)
      fail("output folder '{}': cannot create the temp folder '{}' beside it ({})", dir, tmp_.string(), std::strerror(errno));
    made_ = true;
    try {
      st::write((tmp_ / "model.safetensors").string(), tensors, {{"format", "pt"}, {"producer", "joule"}});
      for (const auto& [rel, content] : files) {
        fs::create_directories((tmp_ / rel).parent_path(), ec);
        write_file_atomic((tmp_ / rel).string(), content);
      }
    } catch (...) {
      remove_temp();  // a constructor that throws runs no destructor
      throw;
    }
  }
  ~StagedFolder() override { remove_temp(); }
  void prepare() override {}  // every file was fsynced as it was written
  void publish() override {
    std::error_code ec;
    if (!fs::exists(target_, ec)) {
      if (::rename(tmp_.c_str(), target_.c_str()) != 0)
        fail("output folder '{}': cannot move the export into place ({})", dir_, std::strerror(errno));
      made_ = false;
      return;
    }
    for (const auto& rel : names_) {
      const fs::path to = target_ / rel;
      fs::create_directories(to.parent_path(), ec);
      if (::rename((tmp_ / rel).c_str(), to.c_str()) != 0)
        fail("output folder '{}': cannot move '{}' into place ({})", dir_, to.string(), std::strerror(errno));
    }
  }

 private:
  std::string dir_;
  fs::path target_, tmp_;
  std::vector<std::string> names_;
  bool made_ = false;
  // By name with POSIX calls: LibTorch exports its own std::filesystem::remove_all, which crashes here.
  void remove_temp() {
    if (!made_) return;
    made_ = false;
    for (const auto& n : names_) ::unlink((tmp_ / n).c_str());
    for (const auto& n : names_)
      if (fs::path(n).has_parent_path()) ::rmdir((tmp_ / fs::path(n).parent_path()).c_str());
    ::rmdir(tmp_.c_str());
  }
};

}  // namespace

BertConfig hf_export_config(const SentenceEncoder& enc, const Module& module, const std::string& dir) {
  return plan_hf_export(enc, module, dir).config;
}

void save_hf_encoder(const SentenceEncoder& enc, const Module& module, const std::string& dir) {
  io::OutputSet outs;
  save_hf_encoder(enc, module, dir, outs);
  outs.commit();
}

void save_hf_encoder(const SentenceEncoder& enc, const Module& module, const std::string& dir, io::OutputSet& outs) {
  const HfExport e = plan_hf_export(enc, module, dir);  // every refusal before anything is written
  const BertConfig& cfg = e.config;
  std::vector<st::TensorData> tensors;
  for (const auto& [name, t] : e.tensors.tensors)
    tensors.push_back({name, st_dtype(t.scalar_type(), dir, name), t.sizes().vec(), t.data_ptr(), t.nbytes()});
  nlohmann::json config = cfg.to_json();
  if (!e.tensors.quantization_config.is_null()) config["quantization_config"] = e.tensors.quantization_config;
  const nlohmann::json specials = {{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
                                   {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}};
  nlohmann::json tok_cfg = {{"do_lower_case", enc.tokenizer.lower_case()}, {"tokenizer_class", "BertTokenizer"},
                            {"model_max_length", enc.config.max_position}};
  tok_cfg.update(specials);
  std::map<std::string, std::string> files = {
      {"config.json", config.dump(2) + "\n"},
      {"vocab.txt", enc.tokenizer.vocab_text()},
      {"tokenizer_config.json", tok_cfg.dump(2) + "\n"},
      {"special_tokens_map.json", specials.dump(2) + "\n"},
      {"sentence_bert_config.json", nlohmann::json{{"max_seq_length", enc.max_length}, {"do_lower_case", false}}.dump(2) + "\n"}};
  if (!enc.tokenizer_json.empty()) files["tokenizer.json"] = enc.tokenizer_json;
  // sentence-transformers' pipeline: the transformer, the encoder's pooling over real tokens, and normalisation
  // when it normalises (what Joule's forward computes), so SentenceTransformer(dir) returns joule embed's vectors.
  nlohmann::json pooling = {{"word_embedding_dimension", cfg.hidden}};
  static const std::pair<const char*, const char*> modes[] = {
      {"pooling_mode_cls_token", "cls"}, {"pooling_mode_mean_tokens", "mean"}, {"pooling_mode_max_tokens", "max"},
      {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"}};
  for (auto [key, mode] : modes) pooling[key] = cfg.pooling == mode;
  files["1_Pooling/config.json"] = pooling.dump(2) + "\n";
  auto module_entry = [](int idx, const char* path, const char* type) {
    return nlohmann::json{{"idx", idx}, {"name", std::to_string(idx)}, {"path", path},
                          {"type", std::string("sentence_transformers.models.") + type}};
  };
  nlohmann::json modules = nlohmann::json::array({module_entry(0, "", "Transformer"), module_entry(1, "1_Pooling", "Pooling")});
  if (cfg.normalize) modules.push_back(module_entry(2, "2_Normalize", "Normalize"));
  files["modules.json"] = modules.dump(2) + "\n";
  outs.add(std::make_unique<StagedFolder>(dir, files, tensors));
}

}  // namespace joule::models
