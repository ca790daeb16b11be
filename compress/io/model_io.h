// Loading and saving TorchScript archives with one-line errors. A Joule-saved archive carries its workload
// and the passes applied as extra files (joule/workload.json, joule/provenance.json), so a later command
// can measure it without being told the input shapes again.
#pragma once
#include <torch/script.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/io/atomic_file.h"

namespace joule {

struct LoadedModel {
  torch::jit::Module module;
  nlohmann::json workload;    // null when the archive carries none
  nlohmann::json provenance;  // null when the archive carries none
  std::map<std::string, std::string> extra;  // other joule/ files carried (e.g. a tokenizer's vocab), kept on save
};

// Extra files Joule reads from and writes to archives besides workload and provenance.
const std::vector<std::string>& carried_extra_files();

// Checks the file before LibTorch sees it (compress/io/archive_check.h: the zip's structure, CRCs and size caps,
// and its code against the side-effect-free op allowlist unless models are trusted), then that every tensor lies
// inside its storage; the module is put in eval mode.
LoadedModel load_model(const std::string& path);

// Whether archives whose code calls ops outside the allowlist may load (the CLI's --trust-model). Process-wide:
// it is the user's statement about where their model files come from. Off by default.
void set_trust_models(bool trust);
bool trust_models();

// Writes OUT atomically and durably (compress/io/atomic_file.h). Refuses to overwrite `input_path`.
void save_model(const torch::jit::Module& module, const std::string& out, const std::string& input_path,
                const nlohmann::json& workload, const nlohmann::json& provenance,
                const std::map<std::string, std::string>& extra = {});
// The same into a temp file of `outs`, put in place with the set's other outputs by outs.commit().
void save_model(io::OutputSet& outs, const torch::jit::Module& module, const std::string& out,
                const std::string& input_path, const nlohmann::json& workload, const nlohmann::json& provenance,
                const std::map<std::string, std::string>& extra = {});

// Fails (one line) unless OUT can be written: its folder exists and it is not the input file.
void check_output_path(const std::string& out, const std::string& input_path);

// Writes `content` to `path` atomically and durably, after check_output_path(path).
void write_file_atomic(const std::string& path, const std::string& content);

// Bytes of the archive `save_model` would write, without touching the disk.
int64_t archive_bytes(const torch::jit::Module& module);

}  // namespace joule
