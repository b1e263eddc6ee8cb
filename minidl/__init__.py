"""minidl: a small deep-learning framework written from scratch on NumPy, Numba and CuPy.

    import minidl as md
    x = md.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad          # tensor([[2., 4.]])
"""
import os as _os

# Thread pools on a small CPU: NumPy's BLAS (OpenBLAS) and Numba's parallel loops (OpenMP) each keep
# worker threads that spin after their work is done. Interleaved, as in a training step, each pool
# spins on the cores the other needs: a tiny Numba kernel right after a GEMM then took 3-9 ms instead
# of 0.02 ms. PASSIVE makes OpenMP's workers sleep at once; OpenBLAS reads its setting when NumPy is
# first imported, so it helps only when minidl is imported before NumPy (scripts/*.sh export it).
# Both are defaults: a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")

from . import ops as _ops  # noqa: F401  (binds Tensor's operators)
from .function import Function
from .grad_mode import is_grad_enabled, no_grad, set_grad_enabled
from .random import get_rng_state, initial_seed, manual_seed, set_rng_state
from .tensor import Tensor, as_tensor, float32, float64, ones, randn, tensor, zeros
from .backend import gpu_available
from . import functional, nn, optim  # noqa: E402
from . import backends  # noqa: E402,F401  (minidl.backends.conv: the convolution algorithm setting)
from .gradcheck import GradcheckError, gradcheck

__version__ = "0.1.0"

__all__ = [
    "Function", "GradcheckError", "Tensor", "as_tensor", "float32", "float64", "functional", "get_rng_state",
    "gpu_available", "gradcheck", "initial_seed", "is_grad_enabled", "manual_seed", "nn", "no_grad", "ones",
    "optim", "randn", "set_grad_enabled", "set_rng_state", "tensor", "zeros",
]
