// joule._C, the Python package's bindings: a compression job built from Python objects (a TorchScript module or
// a model path, a recipe, example inputs, calibration batches) and run by the library's run_job, as the CLI runs
// it; the packed layers of a compressed module, for joule.nn; the energy meters, for joule.measure_energy.
// One translation unit: the LibTorch and pybind11 headers are parsed once.
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/script.h>
#include <torch/version.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compress/base/error.h"
#include "compress/energy/carbon.h"
#include "compress/energy/session.h"
#include "compress/io/model_io.h"
#include "compress/ir/graph.h"
#include "compress/ops/ops.h"
#include "compress/ops/schema.h"
#include "compress/passes/registry.h"
#include "compress/pipeline/job.h"
#include "compress/pipeline/recipe.h"
#include "models/bert.h"
#include "models/distill_task.h"
#include "models/job_hooks.h"
#include "models/stsb.h"

namespace py = pybind11;
using nlohmann::json;

namespace joule::python {
namespace {

// The `calib` value that joule.compress(calib=ITERABLE) puts into the passes that calibrate; the source below
// answers it with the Python batches. (Relative: a file recipe's folder may be prepended.)
constexpr const char* kIterableCalib = "<joule.compress calib>";

// Calibration batches handed over from Python (each one forward call's inputs); other files go to `files`
// (text for a model with a tokenizer) or, when that is null or declines, to the tensor-file reader.
class IterableCalibration : public CalibrationSource {
 public:
  IterableCalibration(Batches batches, std::shared_ptr<const CalibrationSource> files)
      : batches_(std::move(batches)), files_(std::move(files)) {}
  std::optional<Batches> read(const std::string& file, int64_t samples) const override {
    if (std::filesystem::path(file).filename() != kIterableCalib) return files_ ? files_->read(file, samples) : std::nullopt;
    if (samples <= 0) return batches_;
    Batches out;  // the first `samples` samples (dim 0 of each batch), as the tensor-file reader takes them
    for (const auto& b : batches_) {
      if (samples <= 0) break;
      const int64_t n = b.front().toTensor().dim() ? b.front().toTensor().size(0) : 1;
      if (n <= samples) {
        out.push_back(b);
      } else {
        std::vector<c10::IValue> part;
        for (const auto& v : b) part.push_back(v.toTensor().narrow(0, 0, samples));
        out.push_back(std::move(part));
      }
      samples -= n;
    }
    return out;
  }

 private:
  Batches batches_;
  std::shared_ptr<const CalibrationSource> files_;
};

// Energy settings from joule.compress / joule.measure_energy keywords (null: the default).
energy::Settings energy_settings(const json& j) {
  energy::Settings s;
  if (j.value("cpu_watts", json()).is_number()) {
    s.cpu_watts = j["cpu_watts"].get<double>();
    if (s.cpu_watts <= 0) fail("cpu_watts must be positive");
  }
  if (j.value("energy_windows", json()).is_number()) {
    s.windows = j["energy_windows"].get<int>();
    if (s.windows < 2) fail("energy_windows must be at least 2 (a confidence interval needs two windows)");
  }
  if (j.value("min_window_s", json()).is_number()) s.min_window_s = j["min_window_s"].get<double>();
  s.gpu = j.value("gpu", false);
  try {
    if (j.value("grid_intensity", json()).is_number()) s.grid = energy::grid_custom(j["grid_intensity"].get<double>());
    if (j.value("region", json()).is_string()) s.grid = energy::grid_for_region(j["region"].get<std::string>());
  } catch (const std::invalid_argument& e) {
    fail("{}", e.what());
  }
  return s;
}

// A workload from the example inputs of one forward call: their dtypes and shapes; integer inputs drawn below the
// example's maximum + 1, a constant integer input (an attention mask of ones) kept constant.
Workload workload_from_examples(const std::vector<at::Tensor>& examples) {
  Workload w;
  for (const auto& t : examples) {
    InputSpec s;
    s.dtype = t.scalar_type();
    s.shape = t.sizes().vec();
    if (at::isIntegralType(s.dtype, /*includeBool=*/false) && t.numel() > 0) {
      const int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
      if (lo == hi) s.fill = static_cast<double>(lo);
      else s.high = hi + 1;
    }
    w.inputs.push_back(std::move(s));
  }
  return w;
}

// A private copy through serialization: a rewriting pass replaces forward on the module's type, which a module
// scripted in this process shares with every other instance of its class.
torch::jit::Module private_copy(const torch::jit::Module& m) {
  std::stringstream ss;
  m.save(ss);
  torch::jit::Module copy = torch::jit::load(ss);
  copy.eval();
  return copy;
}

// Fills `calib: <source>` into every pass that calibrates by its own options (quantize: method gptq, act static,
// smooth) and names no file: the pass is built with it, and left as written when it does not take it then.
void inject_calibration(json& doc, const std::string& calib) {
  if (!doc.is_object() || !doc.contains("passes") || !doc["passes"].is_array()) return;  // parse_recipe says why
  for (auto& p : doc["passes"]) {
    if (!p.is_object() || p.size() != 1) continue;
    auto it = p.begin();
    const PassInfo* info = find_pass(it.key());
    if (!info || !info->spec().find("calib")) continue;
    json opts = it.value().is_null() ? json::object() : it.value();
    if (!opts.is_object() || opts.contains("calib")) continue;
    opts["calib"] = calib;
    try {
      make_pass(it.key(), opts);
    } catch (const Error&) {
      continue;
    }
    it.value() = opts;
  }
}

struct Compressed {
  torch::jit::Module module;
  std::string report;  // the CLI's JSON report
};

// joule.compress: `module` (a TorchScript module, copied) or `path` (a Joule archive or an HF folder, as the CLI
// loads it); the recipe from `recipe_path` or `recipe_text` (YAML or JSON); `calib`: a file, or "" with `batches`.
Compressed compress(const std::optional<torch::jit::Module>& module, const std::string& path,
                    const std::string& recipe_path, const std::string& recipe_text,
                    const std::vector<at::Tensor>& examples, const std::string& calib,
                    const std::optional<std::vector<std::vector<at::Tensor>>>& batches, const std::string& settings_text,
                    const std::string& out) {
  const json settings = json::parse(settings_text);
  const std::string where = recipe_path.empty() ? "(dict)" : recipe_path;
  json doc;
  if (!recipe_path.empty()) {
    std::ifstream f(recipe_path);
    if (!f) fail("recipe '{}': no such file", recipe_path);
    doc = recipe_json(std::string(std::istreambuf_iterator<char>(f), {}), where);
  } else {
    doc = recipe_json(recipe_text, where);
  }
  if (batches) inject_calibration(doc, kIterableCalib);
  else if (!calib.empty()) inject_calibration(doc, std::filesystem::absolute(calib).string());
  std::string base = recipe_path.empty() ? "" : std::filesystem::path(recipe_path).parent_path().string();
  if (!recipe_path.empty() && base.empty()) base = ".";
  Recipe recipe = parse_recipe(doc, where, base);

  LoadedModel lm;
  if (module) lm.module = private_copy(*module);
  else lm = models::is_hf_dir(path) ? models::load_hf_as_model(path) : load_model(path);
  const std::string origin = module ? "(module)" : path;

  CompressionJob job;
  job.measure_energy = settings.value("measure_energy", true);
  job.energy = energy_settings(settings);
  std::optional<models::SentenceEncoder> encoder;
  const std::string stsb = settings.value("stsb", "");
  if (lm.extra.count("joule/vocab.txt") || !stsb.empty()) encoder = models::encoder_from_archive(lm, origin);
  if (encoder) job.distill = std::make_shared<models::SentenceDistillTask>(*encoder);
  if (!stsb.empty()) job.quality = std::make_shared<models::StsbProbe>(*encoder, text::load_stsb(stsb));
  std::shared_ptr<const CalibrationSource> files = std::make_shared<models::TextCalibration>(lm, origin);
  if (batches) {
    Batches b;
    for (const auto& call : *batches) b.emplace_back(call.begin(), call.end());
    job.calibration = std::make_shared<IterableCalibration>(std::move(b), files);
  } else {
    job.calibration = files;
  }
  job.model = lm.module;
  job.model_path = origin;
  if (!examples.empty()) job.workload = workload_from_examples(examples);
  else if (!recipe.workload.is_null()) job.workload = Workload::from_json(recipe.workload);
  else if (!lm.workload.is_null()) job.workload = Workload::from_json(lm.workload);
  else fail("model '{}' carries no workload: pass example_inputs (one forward call's inputs)", origin);
  if (settings.value("warmup", json()).is_number()) job.workload.warmup = settings["warmup"].get<int>();
  if (settings.value("reps", json()).is_number()) job.workload.reps = settings["reps"].get<int>();
  if (job.workload.reps < 1) fail("reps must be at least 1");
  if (settings.value("seed", json()).is_number()) job.workload.seed = settings["seed"].get<uint64_t>();
  for (auto& p : recipe.passes) job.passes.add(std::move(p));
  if (!recipe_path.empty()) job.info["recipe"] = recipe_path;
  if (!out.empty()) check_output_path(out, path);

  Report report;
  {
    py::gil_scoped_release nogil;  // the job calls no Python
    report = run_job(job);
  }
  if (!out.empty()) {  // as the CLI writes it: workload, provenance and the encoder files carried
    if (encoder)
      for (auto& [k, v] : models::archive_files_for(*encoder, job.model)) lm.extra[k] = v;
    json provenance = lm.provenance.is_null() ? json{{"passes", json::array()}} : lm.provenance;
    for (const auto& p : report.passes) provenance["passes"].push_back({{"name", p.name}, {"options", p.options}});
    save_model(job.model, out, path, job.workload.to_json(), provenance, lm.extra);
  }
  return {job.model, report.to_json().dump()};
}

const char* kind_name(ops::ArgKind k) {
  switch (k) {
    case ops::ArgKind::Input: return "input";
    case ops::ArgKind::Buffer: return "buffer";
    case ops::ArgKind::OptionalBuffer: return "optional_buffer";
    case ops::ArgKind::Bias: return "bias";
    case ops::ArgKind::Int: return "int";
  }
  return "";
}

// The joule:: ops' argument lists (compress/ops/schema.h), for joule.nn.
py::list packed_linear_ops() {
  py::list ops;
  for (const auto* op : ops::packed_linear_ops()) {
    py::list args;
    for (const auto& a : op->args) args.append(py::make_tuple(a.name, kind_name(a.kind)));
    ops.append(py::dict(py::arg("name") = op->name, py::arg("quant") = op->quant, py::arg("args") = args));
  }
  return ops;
}

void collect_nodes(torch::jit::Block* b, std::vector<torch::jit::Node*>& out) {
  for (torch::jit::Node* n : b->nodes()) {
    out.push_back(n);
    for (torch::jit::Block* sub : n->blocks()) collect_nodes(sub, out);
  }
}

// The packed linears of a compressed module, each matched to the weight path (one of `weights`) it replaced:
// [{weight, op, buffers: {arg: path | None}, ints: {arg: value}, bias: path | None}]. Buffers are named
// packed_buffer_name(weight, ...) (compress/ir/graph.h); the bias, when there is one, names the layer outright.
py::list packed_linears(const torch::jit::Module& m, const std::vector<std::string>& weights) {
  auto g = inlined_forward(m);
  torch::jit::Value* self = g->inputs().at(0);
  std::vector<torch::jit::Node*> nodes;
  collect_nodes(g->block(), nodes);
  py::list found;
  std::set<std::string> seen;
  for (torch::jit::Node* n : nodes) {
    const ops::PackedLinearOp* op = ops::find_packed_linear_op(n->kind().toQualString());
    if (!op) continue;
    py::dict buffers, ints;
    py::object bias = py::none();
    std::string first;
    for (size_t i = 0; i < op->args.size() && i < n->inputs().size(); ++i) {
      const auto& a = op->args[i];
      auto p = attr_path_of(n->input(i), self);
      if (a.kind == ops::ArgKind::Buffer || a.kind == ops::ArgKind::OptionalBuffer) {
        if (a.kind == ops::ArgKind::Buffer && !p) fail("{}: buffer '{}' is not an attribute of the module", op->qualname(), a.name);
        buffers[a.name] = p ? py::cast(*p) : py::none();
        if (first.empty() && p) first = *p;
      } else if (a.kind == ops::ArgKind::Int) {
        auto v = torch::jit::toIValue(n->input(i));
        if (!v || !v->isInt()) fail("{}: argument '{}' is not a constant", op->qualname(), a.name);
        ints[a.name] = v->toInt();
      } else if (a.kind == ops::ArgKind::Bias && p) {
        bias = py::cast(*p);
      }
    }
    if (!seen.insert(first).second) continue;  // the same layer called again
    std::vector<std::string> match;
    for (const auto& w : weights) {
      const std::string key = packed_buffer_name(w, "");
      if (first.compare(0, key.size(), key) != 0) continue;
      if (!bias.is_none() && bias.cast<std::string>() != w.substr(0, w.rfind('.')) + ".bias") continue;
      match.push_back(w);
    }
    if (match.size() != 1)
      fail("packed buffer '{}' matches {} of the given linear weights{}", first, match.size(),
           match.empty() ? " (its layer is not an nn.Linear of the module)" : "");
    found.append(py::dict(py::arg("weight") = match[0], py::arg("op") = op->name, py::arg("buffers") = buffers,
                          py::arg("ints") = ints, py::arg("bias") = bias));
  }
  return found;
}

}  // namespace
}  // namespace joule::python

PYBIND11_MODULE(_C, m) {
  using namespace joule;
  using namespace joule::python;
  m.doc() = "Joule's C++ library (compress/, models/): the bindings behind the joule package";
  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  m.attr("TORCH_VERSION") = TORCH_VERSION;
  m.def("ops_torch_version_mismatch", &ops::torch_version_mismatch);
  m.def("packed_linear_ops", &packed_linear_ops);
  m.def("packed_linears", &packed_linears, py::arg("module"), py::arg("weights"));
  m.def(
      "compress",
      [](const std::optional<torch::jit::Module>& module, const std::string& path, const std::string& recipe_path,
         const std::string& recipe_text, const std::vector<at::Tensor>& examples, const std::string& calib,
         const std::optional<std::vector<std::vector<at::Tensor>>>& batches, const std::string& settings,
         const std::string& out) {
        Compressed c = compress(module, path, recipe_path, recipe_text, examples, calib, batches, settings, out);
        return py::make_tuple(c.module, c.report);
      },
      py::arg("module"), py::arg("path"), py::arg("recipe_path"), py::arg("recipe_text"), py::arg("examples"),
      py::arg("calib"), py::arg("batches"), py::arg("settings"), py::arg("out"));

  py::class_<energy::Meter>(m, "Meter")
      .def_property_readonly("source", &energy::Meter::source)
      .def_property_readonly("measured", &energy::Meter::measured)
      .def_property_readonly("method", &energy::Meter::method)
      .def("start", &energy::Meter::start)
      .def("stop", [](energy::Meter& me) {
        energy::Reading r = me.stop({});
        return py::make_tuple(r.joules, r.uncertainty_rel, r.seconds);
      });
  py::class_<energy::Session>(m, "EnergySession")
      .def(py::init([](const std::string& settings) {
        return std::make_unique<energy::Session>(energy_settings(json::parse(settings)));
      }))
      .def("window_s", &energy::Session::window_s)
      .def("describe", [](const energy::Session& s) { return s.describe().dump(); })
      .def("grid", [](const energy::Session& s) {
        return py::make_tuple(s.settings().grid.region, s.settings().grid.g_per_kwh);
      })
      .def("meters", [](py::object self) {  // each meter keeps its session alive
        py::list l;
        for (const auto& me : self.cast<const energy::Session&>().meters())
          l.append(py::cast(me.get(), py::return_value_policy::reference_internal, self));
        return l;
      });
  m.def("mean_ci95", [](const std::vector<double>& samples) {
    energy::Stats s = energy::mean_ci95(samples);
    return py::make_tuple(s.mean, s.ci95);
  });
}
