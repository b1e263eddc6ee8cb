"""minidl: a small deep-learning framework written from scratch on NumPy, Numba and CuPy.

    import minidl as md
    x = md.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad          # tensor([[2., 4.]])
"""
import os as _os

# Thread pools on a small CPU: NumPy's BLAS (OpenBLAS) and Numba's parallel loops (OpenMP) each keep
# worker threads that spin after their work is done. Interleaved, as in a training step, each pool
# spins on the cores the other needs: a tiny Numba kernel right after a GEMM then ran over a hundred times slower
# than alone (docs/benchmarks.md). PASSIVE makes OpenMP's workers sleep at once; OpenBLAS reads its setting when NumPy is
# first imported, so it helps only when minidl is imported before NumPy (scripts/*.sh export it).
# Both are defaults: a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")

import numpy as _np  # noqa: E402  (after the settings above)

from . import ops as _ops  # noqa: F401  (binds Tensor's operators)
from .function import Function
from .grad_mode import is_grad_enabled, no_grad, set_grad_enabled
from .random import get_rng_state, initial_seed, manual_seed, set_rng_state
from .tensor import Tensor, as_tensor, float32, float64, ones, randn, tensor, zeros
from .backend import gpu_available
from . import functional, nn, optim  # noqa: E402
from . import backends  # noqa: E402,F401  (minidl.backends.conv: the convolution algorithm setting)
from .gradcheck import GradcheckError, gradcheck
from .tensor import Size
from .backend import device
from . import cuda  # noqa: E402
from .creation import (arange, empty, eye, from_numpy, full, full_like, linspace, normal, ones_like, rand, randint,
                       zeros_like)
from .serialization import load, save
from .toplevel import *  # noqa: F401,F403  md.exp, md.max, md.cat ... (torch's top-level functions)
from .toplevel import __all__ as _toplevel_all

__version__ = "0.1.0"

__all__ = [
    "Function", "GradcheckError", "Tensor", "as_tensor", "float32", "float64", "functional", "get_rng_state",
    "gpu_available", "gradcheck", "initial_seed", "is_grad_enabled", "manual_seed", "nn", "no_grad", "ones",
    "optim", "randn", "set_grad_enabled", "set_rng_state", "tensor", "zeros",
    "Size", "arange", "cuda", "device", "empty", "eye", "from_numpy", "full", "full_like", "linspace", "load", "normal",
    "ones_like", "rand", "randint", "save", "zeros_like", "double", "float16", "half", "int32", "int64", "long",
    "uint8", *(name for name in _toplevel_all if name not in ("abs", "max", "min", "sum", "pow")),
]  # md.abs, md.max, md.min, md.sum, md.pow, md.bool, md.float, md.int exist but stay out of `import *` (builtins)

# dtypes, as torch's names (NumPy's types: x.dtype == md.float32 holds); last, since
# `bool` here shadows the builtin for the rest of this file
float16, int32, int64, long, uint8, bool = _np.float16, _np.int32, _np.int64, _np.int64, _np.uint8, _np.bool_  # noqa: A001
float, double, half, int = _np.float32, _np.float64, _np.float16, _np.int32  # noqa: A001

from . import utils  # noqa: E402,F401  (minidl.utils.data, as torch.utils.data)
