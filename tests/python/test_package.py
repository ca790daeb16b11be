"""The joule Python package (python/joule) on small models: compress an nn.Module, a ScriptModule and a path;
the joule.nn module against the TorchScript result and the float model; calibration from an iterable against the
same samples in a tensor file; torch.export and torch.compile of the compressed module; measure_energy.

Run by ctest (python_package) with PYTHONPATH=build/python, the package as the build stages it.
"""
import copy
import json
import os

import pytest
import torch
from safetensors.torch import save_file

import joule
import joule.nn

# LibTorch's default executor settings, as users have them (docs/EXECUTOR.md). Few reps: these tests check values,
# not speed.
FAST = dict(warmup=1, reps=3, measure_energy=False)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 128)
        self.b = torch.nn.Linear(128, 96)
        self.c = torch.nn.Linear(96, 32, bias=False)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def net():
    torch.manual_seed(0)
    return Net().eval()


def inputs(n=4, seed=1):
    return torch.randn(n, 64, generator=torch.Generator().manual_seed(seed))


# Every joule:: op in one model: a packed 2:4, b W8A8, c W4.
MIXED = [{"prune": {"method": "2:4", "pack": True, "include": ["a"]}},
         {"quantize": {"scheme": "w8a8", "include": ["b"]}},
         {"quantize": {"scheme": "w4", "group": 32, "include": ["c"]}}]


@pytest.fixture(scope="module")
def mixed():
    model = net()
    scripted, report = joule.compress(model, MIXED, example_inputs=inputs(), output="script", **FAST)
    return model, scripted, report


def rel_err(y, ref):
    return ((y - ref).norm() / ref.norm()).item()


def test_ops_load_and_are_registered():
    path = joule.load_ops()
    assert path == joule.ops_library and os.path.isfile(path)
    assert joule.load_ops() == path  # idempotent
    for op in ("linear_w8a8", "linear_w4", "linear_sp24"):
        assert hasattr(torch.ops.joule, op)
    assert joule._C.ops_torch_version_mismatch() == ""


def test_torch_version_checked_in_one_line(monkeypatch):
    monkeypatch.setattr(joule._build, "TORCH_VERSION", "1.0.0")
    with pytest.raises(ImportError, match=r"^joule was built against torch 1\.0\.0 but this Python has torch .*; reinstall"):
        joule._check_torch()


def test_w8a8_module_matches_torchscript_and_float():
    model, x = net(), inputs(8)
    recipe = {"passes": [{"quantize": {"scheme": "w8a8"}}]}
    compressed, report = joule.compress(model, recipe, example_inputs=x, **FAST)
    scripted, _ = joule.compress(model, recipe, example_inputs=x, output="script", **FAST)
    assert isinstance(compressed, Net)
    assert all(isinstance(getattr(compressed, n), joule.nn.PackedLinear) for n in "abc")
    assert compressed.a.op == "linear_w8a8" and compressed.a.qweight.dtype == torch.int8
    with torch.no_grad():
        y, y_ts, y_float = compressed(x), scripted(x), model(x)
    assert torch.equal(y, y_ts)  # the same op on the same buffers
    assert rel_err(y, y_float) < 0.03, rel_err(y, y_float)
    assert report["passes"][0]["name"] == "quantize"
    assert report["passes"][0]["options"]["scheme"] == "w8a8"
    before, after = report["passes"][0]["before"], report["passes"][0]["after"]
    assert after["file_bytes"] < 0.5 * before["file_bytes"]
    assert after["latency_ms"] > 0 and after["quality"]["cosine"] > 0.99
    assert report["model"]["workload"]["inputs"] == ["f32:8x64"]


def test_compressed_module_saves_and_copies(tmp_path):
    model, x = net(), inputs()
    module, _ = joule.compress(model, [{"quantize": {"scheme": "w4", "group": 32}}], example_inputs=x, **FAST)
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(x), module(x))
        assert torch.equal(copy.deepcopy(module)(x), module(x))
    assert "a.qweight" in module.state_dict() and "a.weight" not in module.state_dict()


def test_user_module_is_not_changed():
    model = net()
    state = copy.deepcopy(model.state_dict())
    joule.compress(model, [{"prune": {"method": "unstructured", "sparsity": 0.5}}], example_inputs=inputs(), **FAST)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(isinstance(getattr(model, n), torch.nn.Linear) for n in "abc")


def test_pruned_weights_and_narrowed_layers_reach_the_module():
    model, x = net(), inputs()
    recipe = [{"prune": {"method": "structured", "sparsity": 0.5, "include": ["a"]}}]
    compressed, _ = joule.compress(model, recipe, example_inputs=x, **FAST)
    scripted, _ = joule.compress(model, recipe, example_inputs=x, output="script", **FAST)
    assert compressed.a.out_features == 64 and compressed.b.in_features == 64
    with torch.no_grad():
        assert torch.allclose(compressed(x), scripted(x), atol=1e-6)


def test_every_op_in_one_module(mixed):
    model, scripted, report = mixed
    module = joule.nn.from_compressed(model, scripted)
    assert [module.a.op, module.b.op, module.c.op] == ["linear_sp24", "linear_w8a8", "linear_w4"]
    x = inputs(5, seed=2)
    with torch.no_grad():
        assert torch.equal(module(x), scripted(x))
    assert [p["name"] for p in report["passes"]] == ["prune", "quantize", "quantize"]


def test_torch_export_and_compile_trace_the_compressed_module(mixed):
    model, scripted, _ = mixed
    module = joule.nn.from_compressed(model, scripted)
    x = inputs(3, seed=3)
    with torch.no_grad():
        eager = module(x)
        batch = torch.export.Dim("batch", min=1, max=64)
        ep = torch.export.export(module, (x,), dynamic_shapes={"x": {0: batch}})
        targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
        assert {"joule.linear_sp24.default", "joule.linear_w8a8.default", "joule.linear_w4.default"} <= targets
        assert torch.equal(ep.module()(x), eager)
        x7 = inputs(7, seed=4)
        assert torch.equal(ep.module()(x7), module(x7))  # the symbolic batch dim through the Meta kernels
        compiled = torch.compile(module, fullgraph=True)
        assert torch.allclose(compiled(x), eager, atol=1e-5)


def test_meta_kernels_give_shapes_and_check_k():
    w = torch.zeros(16, 32, dtype=torch.int8, device="meta")
    s = torch.zeros(16, device="meta")
    y = torch.ops.joule.linear_w8a8(torch.empty(2, 5, 32, device="meta"), w, s, None)
    assert y.shape == (2, 5, 16) and y.device.type == "meta" and y.dtype == torch.float32
    with pytest.raises(RuntimeError, match="linear_w8a8: x has .* expects K=32"):
        torch.ops.joule.linear_w8a8(torch.empty(2, 31, device="meta"), w, s, None)


def test_calibration_from_an_iterable_equals_the_tensor_file(tmp_path):
    model = net()
    samples = torch.randn(24, 64, generator=torch.Generator().manual_seed(5))
    file = tmp_path / "calib.safetensors"
    save_file({"x": samples}, str(file))
    batches = list(samples.split(8))  # the tensor-file reader's batches of 8
    for q in ({"scheme": "w8a8", "act": "static", "smooth": 0.5}, {"scheme": "w4", "group": 32, "method": "gptq"}):
        by_iter, rep_iter = joule.compress(model, [{"quantize": q}], example_inputs=inputs(), calib=batches,
                                           output="script", **FAST)
        by_file, _ = joule.compress(model, [{"quantize": dict(q, calib=str(file))}], example_inputs=inputs(),
                                    output="script", **FAST)
        state_iter, state_file = by_iter.state_dict(), by_file.state_dict()
        assert state_iter.keys() == state_file.keys()
        for k in state_iter:
            assert torch.equal(state_iter[k], state_file[k]), (q, k)
        assert rep_iter["passes"][0]["options"]["calib"] == "<joule.compress calib>"
    # calib= as a file path goes to the passes that calibrate, the same way
    q = {"scheme": "w4", "group": 32, "method": "gptq"}
    by_path, _ = joule.compress(model, [{"quantize": q}], example_inputs=inputs(), calib=file, output="script", **FAST)
    assert all(torch.equal(v, by_file.state_dict()[k]) for k, v in by_path.state_dict().items())


def test_scriptmodule_traced_module_and_path_inputs(tmp_path):
    model, x = net(), inputs()
    recipe = [{"quantize": {"scheme": "w4", "group": 32}}]
    scripted = torch.jit.script(model)
    ts_out, _ = joule.compress(scripted, recipe, example_inputs=x, **FAST)
    assert isinstance(ts_out, torch.jit.ScriptModule)
    assert any(n.kind() == "joule::linear_w4" for n in ts_out.graph.nodes())
    assert all(n.kind() != "joule::linear_w4" for n in scripted.graph.nodes())  # the input stays as it was

    class Untypable(torch.nn.Module):  # **kwargs does not script: traced on the example inputs instead
        def __init__(self):
            super().__init__()
            self.inner = net()

        def forward(self, x, **unused):
            return self.inner(x)

    traced_out, _ = joule.compress(Untypable().eval(), recipe, example_inputs=x, **FAST)
    assert isinstance(traced_out.inner.a, joule.nn.PackedLinear)

    path = tmp_path / "net.pt"
    torch.jit.save(scripted, str(path))
    out = tmp_path / "net.w4.pt"
    from_path, report = joule.compress(str(path), recipe, example_inputs=x, out=out, **FAST)
    assert report["model"]["path"] == str(path) and out.is_file()
    with torch.no_grad():
        assert torch.equal(torch.jit.load(str(out))(x), from_path(x))
        assert torch.equal(from_path(x), ts_out(x))


def test_one_line_errors():
    with pytest.raises(joule.Error, match=r"^recipe '\(dict\)', pass 1: .*quantize.*scheme"):
        joule.compress(net(), [{"quantize": {"scheme": "w3"}}], example_inputs=inputs(), **FAST)
    with pytest.raises(joule.Error, match="carries no workload: pass example_inputs"):
        joule.compress(torch.jit.script(net()), [{"quantize": {}}], **FAST)
    with pytest.raises(joule.Error, match="needs calibration data"):
        joule.compress(net(), [{"quantize": {"method": "gptq", "scheme": "w4"}}], example_inputs=inputs(), **FAST)


def test_report_has_energy_when_measured():
    _, report = joule.compress(net(), [{"quantize": {"scheme": "w8a8"}}], example_inputs=inputs(), warmup=1, reps=3,
                               energy_windows=2, region="FR")
    energy = report["passes"][0]["energy"]
    assert json.dumps(energy)  # plain JSON
    assert report["energy_setup"]["grid"]["region"] == "FR"
    assert report["energy_setup"]["sources"], report["energy_setup"]


def test_measure_energy_around_user_code():
    model, x = net(), inputs(64)
    with torch.no_grad():
        e = joule.measure_energy(model, x, windows=3, min_window_s=0.02)
    assert e.joules > 0 and e.ci95 >= 0 and e.calls >= 3 and e.seconds > 0
    assert e.kind in ("measured", "estimated") and e.measured == (e.kind == "measured")
    assert e.measured == (not e.source.startswith("estimate")), e.source
    assert e.gco2e == pytest.approx(e.joules * e.g_per_kwh / 3.6e6)
    assert "mJ per call" in str(e)
    assert all(o["joules"] > 0 for o in e.others)


@pytest.mark.skipif(not os.environ.get("JOULE_MINILM_DIR"), reason="JOULE_MINILM_DIR (all-MiniLM-L6-v2) not set")
def test_transformers_bert_quantized_in_place_and_exported():
    """A transformers BertModel (all-MiniLM-L6-v2) as a user has it: it does not script, so it is traced; its
    nn.Linears become W8A8 PackedLinears in place, the embeddings stay close and torch.export traces it."""
    from transformers import AutoModel, AutoTokenizer

    d = os.environ["JOULE_MINILM_DIR"]

    class Encoder(torch.nn.Module):  # token embeddings -> mean-pooled sentence embeddings
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(d)

        def forward(self, ids, mask):
            h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    tok = AutoTokenizer.from_pretrained(d)
    enc = tok(["A man is playing a guitar.", "Quantized weights take a quarter of the space."], padding=True,
              return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"])
    model = Encoder().eval()
    q, report = joule.compress(model, [{"quantize": {"scheme": "w8a8"}}], example_inputs=args, **FAST)
    assert isinstance(q.bert.encoder.layer[5].output.dense, joule.nn.PackedLinear)
    assert sum(isinstance(m, joule.nn.PackedLinear) for m in q.modules()) == 36  # 6 layers x 6 linears
    with torch.no_grad():
        ref, y = model(*args), q(*args)
        cos = (ref * y).sum(-1)
        assert cos.min() > 0.99, cos
        ep = torch.export.export(q, args)
        assert torch.equal(ep.module()(*args), y)
    # 10.6 M linear weights at 1 byte instead of 4; the 11.7 M embedding weights stay float
    sizes = report["passes"][0]["before"]["file_bytes"], report["passes"][0]["after"]["file_bytes"]
    assert sizes[1] < 0.7 * sizes[0], sizes
