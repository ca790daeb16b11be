"""Modules over Joule's packed formats, for a compressed model that stays a Python nn.Module.

PackedLinear is one packed linear layer (W8A8, W4 or 2:4) holding the packed buffers and calling its
torch.ops.joule op, built from the op's argument list in compress/ops/schema.h (joule._C.packed_linear_ops()),
so it runs wherever the op does (CPU, CUDA) and torch.export / torch.compile trace it through the ops' Meta kernels.
from_compressed() fills a copy of a module from the TorchScript module joule.compress produced.
"""
import copy

import torch

from . import _C

_OPS = {op["name"]: op for op in _C.packed_linear_ops()}


class PackedLinear(torch.nn.Module):
    """y = x W^T + b with W packed in a Joule format; calls torch.ops.joule.<op>.

    op: "linear_w8a8", "linear_w4" or "linear_sp24"; buffers: the op's packed tensors by argument name (None for
    an absent optional one); ints: its integer arguments (in_features, group_size); bias: a float32 [N] or None.
    """

    def __init__(self, op, buffers, ints, bias, in_features, out_features):
        super().__init__()
        if op not in _OPS:
            raise ValueError(f"joule.nn.PackedLinear: unknown op {op!r} (one of {', '.join(_OPS)})")
        self.op = op
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._args = [tuple(a) for a in _OPS[op]["args"]]  # (name, kind) in call order
        self._fn = getattr(torch.ops.joule, op).default
        for name, kind in self._args:
            if kind in ("buffer", "optional_buffer"):
                if kind == "buffer" and buffers.get(name) is None:
                    raise ValueError(f"joule.nn.PackedLinear: {op} needs buffer {name!r}")
                self.register_buffer(name, buffers.get(name))
            elif kind == "int":
                setattr(self, name, int(ints[name]))
        self.register_buffer("bias", bias)

    # The op handle is looked up again after unpickling (torch.save of the module, copy.deepcopy), not pickled.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fn", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._fn = getattr(torch.ops.joule, self.op).default

    def forward(self, x):
        args = []
        for name, kind in self._args:
            args.append(x if kind == "input" else getattr(self, name))
        return self._fn(*args)

    def extra_repr(self):
        return f"{self.op}, in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _owner(root, path):
    *parents, leaf = path.split(".")
    m = root
    for p in parents:
        m = getattr(m, p)
    return m, leaf


def _get(module, path):
    """The tensor at dotted `path` of a TorchScript module (packed buffers are attributes of the top module), or
    None when there is none."""
    m = module
    for p in path.split("."):
        if not hasattr(m, p):
            return None
        m = getattr(m, p)
    return m if isinstance(m, torch.Tensor) else None


def from_compressed(model, compressed):
    """A copy of nn.Module `model` carrying the compressed TorchScript module's weights: every nn.Linear that
    Joule packed becomes a PackedLinear with its packed buffers (matched by parameter path), and every other
    parameter and buffer takes the compressed value (pruned weights; layers a structured prune made narrower are
    resized). `model` itself is not changed. Raises ValueError when the compressed model's structure no longer
    matches (a distilled student with fewer layers): use joule.compress(..., output="script") for those."""
    out = copy.deepcopy(model).eval()
    linears = {name: m for name, m in out.named_modules() if isinstance(m, torch.nn.Linear)}
    packed_layers = set()
    for p in _C.packed_linears(compressed._c, [name + ".weight" for name in linears]):
        layer = p["weight"].rsplit(".", 1)[0]
        buffers = {arg: (None if path is None else _get(compressed, path)) for arg, path in p["buffers"].items()}
        bias = _get(compressed, p["bias"]) if p["bias"] is not None else None
        first = next(name for name, kind in _OPS[p["op"]]["args"] if kind == "buffer")
        in_features = p["ints"].get("in_features", buffers[first].shape[-1])
        packed = PackedLinear(p["op"], buffers, p["ints"], bias, in_features, buffers[first].shape[0])
        parent, leaf = _owner(out, layer)
        setattr(parent, leaf, packed)
        packed_layers.add(layer)
    for kind, named in (("parameter", out.named_parameters), ("buffer", out.named_buffers)):
        for name, t in list(named()):
            if name.rsplit(".", 1)[0] in packed_layers or t is None:
                continue
            new = _get(compressed, name)
            if new is None:
                raise ValueError(f"joule.nn.from_compressed: the compressed model has no {kind} {name!r} (a pass changed "
                                 "the model's structure): use joule.compress(..., output='script')")
            owner, leaf = _owner(out, name)
            if new.shape == t.shape:
                with torch.no_grad():
                    t.copy_(new)
            elif kind == "parameter":
                setattr(owner, leaf, torch.nn.Parameter(new.clone(), requires_grad=t.requires_grad))
            else:
                owner.register_buffer(leaf, new.clone())
            if isinstance(owner, torch.nn.Linear) and leaf == "weight":
                owner.out_features, owner.in_features = new.shape
    return out
