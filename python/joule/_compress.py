"""joule.compress: one compression job, run by Joule's C++ pipeline (compress/pipeline/job.h)."""
import json
import os
from collections.abc import Iterable, Mapping

import torch

from . import _C
from . import nn as jnn


def _as_inputs(x, what):
    """One forward call's inputs as a tuple of tensors: a tensor, or a tuple / list of tensors."""
    if isinstance(x, torch.Tensor):
        return (x,)
    if isinstance(x, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in x):
        return tuple(x)
    raise TypeError(f"{what}: expected a tensor or a tuple of tensors (one forward call's inputs), "
                    f"got {type(x).__name__}")


def _script(model, example_inputs):
    """TorchScript for an nn.Module: scripted, or traced on the example inputs where scripting fails."""
    try:
        return torch.jit.script(model)
    except Exception as script_error:
        if example_inputs is None:
            raise TypeError(f"joule.compress: {type(model).__name__} does not script ({str(script_error).splitlines()[0]}) "
                            "and no example_inputs were given to trace it") from None
        with torch.no_grad():
            return torch.jit.trace(model, example_inputs)


def _recipe(recipe):
    """(path, text) for the C++ side: a recipe file (YAML or JSON), or a mapping / list of passes."""
    if isinstance(recipe, (str, os.PathLike)):
        return os.fspath(recipe), ""
    if isinstance(recipe, Mapping):
        return "", json.dumps(dict(recipe))
    if isinstance(recipe, (list, tuple)):
        return "", json.dumps({"passes": list(recipe)})
    raise TypeError(f"joule.compress: recipe must be a file path, a mapping {{'passes': [...]}} or a list of passes, "
                    f"got {type(recipe).__name__}")


def compress(model, recipe, example_inputs=None, calib=None, *, output=None, out=None, measure_energy=True,
             region=None, grid_intensity=None, cpu_watts=None, energy_windows=None, warmup=None, reps=None,
             seed=None, stsb=None):
    """Compresses `model` with `recipe`; returns (compressed model, report).

    model: an nn.Module (scripted for you, or traced on example_inputs where it does not script), a
        torch.jit.ScriptModule, or a path (a Joule .pt archive or a Hugging Face model folder, as the CLI takes).
        The model you pass is never changed.
    recipe: a recipe file (YAML or JSON, as `joule run` takes), a mapping {"passes": [...], "workload": ...}, or
        a list of passes such as [{"quantize": {"scheme": "w8a8"}}].
    example_inputs: one forward call's inputs (a tensor or a tuple of tensors). They set the workload that every
        measurement runs (same dtypes and shapes; integer inputs drawn below their maximum + 1, constant ones kept).
        Needed for modules unless the recipe has a workload section.
    calib: calibration data for the passes that calibrate (quantize with method gptq, act static or smooth) and
        name no file of their own: an iterable of forward calls' inputs (e.g. a DataLoader of batches; tensors or
        tuples of tensors), or a file (.safetensors, or text for sentence encoders).
    output: "module" (default for nn.Module input): a copy of your module whose packed nn.Linears are
        joule.nn.PackedLinear layers and whose other weights are the compressed ones (torch.export and
        torch.compile trace it); "script" (default otherwise): the compressed TorchScript module.
    out: also write the compressed model as a Joule archive there (as `joule run -o` does).
    measure_energy, region, grid_intensity, cpu_watts, energy_windows, warmup, reps, seed, stsb: the CLI's
        measurement options (--region FR, --reps 20, ...; stsb: an STS-B TSV to score sentence encoders on).

    The report is a dict: the JSON the CLI writes with --report (docs/REPORT.md).
    """
    nn_module = isinstance(model, torch.nn.Module) and not isinstance(model, torch.jit.ScriptModule)
    output = output or ("module" if nn_module else "script")
    if output not in ("module", "script"):
        raise ValueError(f"joule.compress: output must be 'module' or 'script', got {output!r}")
    if output == "module" and not nn_module:
        raise ValueError("joule.compress: output='module' needs an nn.Module (the layers to fill in)")
    examples = () if example_inputs is None else _as_inputs(example_inputs, "example_inputs")
    scripted, path = None, ""
    if nn_module:
        was_training = model.training
        model.eval()
        try:
            scripted = _script(model, examples or None)
        finally:
            model.train(was_training)
    elif isinstance(model, torch.jit.ScriptModule):
        scripted = model
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
    else:
        raise TypeError(f"joule.compress: model must be an nn.Module, a ScriptModule or a path, got {type(model).__name__}")

    calib_file, batches = "", None
    if isinstance(calib, (str, os.PathLike)):
        calib_file = os.fspath(calib)
    elif calib is not None:
        if not isinstance(calib, Iterable) or isinstance(calib, torch.Tensor):
            raise TypeError("joule.compress: calib must be a file or an iterable of forward calls' inputs")
        batches = [[t.detach().cpu().contiguous() for t in _as_inputs(b, "calib item")] for b in calib]
        if not batches:
            raise ValueError("joule.compress: calib is empty")

    settings = {"measure_energy": measure_energy, "region": region, "grid_intensity": grid_intensity,
                "cpu_watts": cpu_watts, "energy_windows": energy_windows, "warmup": warmup, "reps": reps,
                "seed": seed, "stsb": os.fspath(stsb) if stsb else ""}
    recipe_path, recipe_text = _recipe(recipe)
    cpp, report = _C.compress(scripted._c if scripted is not None else None, path, recipe_path, recipe_text,
                              [t.detach().cpu() for t in examples], calib_file, batches, json.dumps(settings),
                              os.fspath(out) if out else "")
    compressed = torch.jit._recursive.wrap_cpp_module(cpp)
    report = json.loads(report)
    if output == "script":
        return compressed, report
    return jnn.from_compressed(model, compressed), report
