"""Joule from Python: compress a PyTorch model with a recipe and get back a module you keep using, with the
report in joules; the joule:: ops for quantized and packed models; energy measured around your own code.

    import joule
    model, report = joule.compress(model, {"passes": [{"quantize": {"scheme": "w8a8"}}]},
                                   example_inputs=(x,))
    energy = joule.measure_energy(model, x)

The work is done by Joule's C++ library (joule._C), the same code the `joule` CLI runs.
"""
import os

import torch

try:
    from . import _build
except ImportError:  # python/joule itself, not the package the build stages or pip installs
    raise ImportError(f"joule: {os.path.dirname(__file__)} is the source folder, without the extension; "
                      "pip install the repository, or use the build's PYTHONPATH=build/python") from None

__version__ = "0.1.0"


def _check_torch():
    # A LibTorch extension runs only in the torch it was built against: say so in one line before loading it
    # (a mismatched libtorch fails in the loader with an undefined symbol that names nothing).
    runtime = torch.__version__.split("+")[0]
    if runtime != _build.TORCH_VERSION:
        raise ImportError(f"joule was built against torch {_build.TORCH_VERSION} but this Python has torch "
                          f"{torch.__version__}; reinstall joule with this torch (pip install --no-build-isolation .)")


_check_torch()

from . import _C  # noqa: E402  (loads libjoule_ops.so beside it: the joule:: ops are registered)
from ._compress import compress  # noqa: E402
from ._energy import Energy, measure_energy  # noqa: E402
from . import nn  # noqa: E402

Error = _C.Error
ops_library = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libjoule_ops.so")


def load_ops():
    """Makes the joule:: ops (torch.ops.joule.linear_w8a8, linear_w4, linear_sp24) available to torch, as
    torch.jit.load of a quantized or packed Joule model needs; returns the library's path. Importing joule
    already loads it (joule._C links it); calling this again does nothing."""
    mismatch = _C.ops_torch_version_mismatch()
    if mismatch:
        raise RuntimeError(mismatch)
    if ops_library not in torch.ops.loaded_libraries:
        torch.ops.load_library(ops_library)
    return ops_library


__all__ = ["compress", "measure_energy", "Energy", "load_ops", "nn", "Error", "ops_library"]
