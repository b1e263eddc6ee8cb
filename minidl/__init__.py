"""minidl: a small deep-learning framework written from scratch on NumPy, Numba and CuPy.

    import minidl as md
    x = md.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad          # tensor([[2., 4.]])
"""
from . import ops as _ops  # noqa: F401  (binds Tensor's operators)
from .function import Function
from .grad_mode import is_grad_enabled, no_grad, set_grad_enabled
from .random import get_rng_state, initial_seed, manual_seed, set_rng_state
from .tensor import Tensor, as_tensor, float32, float64, ones, randn, tensor, zeros
from .backend import gpu_available
from . import functional, nn, optim  # noqa: E402
from .gradcheck import GradcheckError, gradcheck

__version__ = "0.1.0"

__all__ = [
    "Function", "GradcheckError", "Tensor", "as_tensor", "float32", "float64", "functional", "get_rng_state",
    "gpu_available", "gradcheck", "initial_seed", "is_grad_enabled", "manual_seed", "nn", "no_grad", "ones",
    "optim", "randn", "set_grad_enabled", "set_rng_state", "tensor", "zeros",
]
