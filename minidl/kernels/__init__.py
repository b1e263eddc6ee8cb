"""Hand-written kernels on raw arrays, one file per family (docs/kernels/README.md: the recipe).

Each operation comes in up to four versions with ONE signature:

    <op>_reference   plain NumPy that reads like the formula: the ground truth of the tests
    <op>_numba       the CPU default
    <op>_xp          array-generic (the array module from the arguments): CuPy on the GPU,
                     run with NumPy by the tests
    <op>_cupy        only where a real CUDA kernel exists (cupy.ElementwiseKernel, RawKernel ...)

and a dispatcher ``<op>`` that is one ``pick(...)`` line.  Kernels know nothing of Tensors or
autograd.  ``implementation(name)`` overrides the choice within a block (the benchmarks time
every version through the same functional API; the tests hold each to the reference)::

    with minidl.kernels.implementation("reference"):
        y = F.local_response_norm(x, 5)

CUDA sources are declared at import with ``elementwise_kernel``, ``reduction_kernel`` or
``raw_kernel`` (never by calling CuPy's constructors directly): ``cuda_kernels()`` lists every
one, and tests/test_cuda_compile.py compiles each for the GPUs minidl targets without a GPU.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil

from .. import backend

IMPLEMENTATIONS = ("fast", "reference", "xp")
_forced = "fast"


@contextlib.contextmanager
def implementation(name: str):
    """Within the block, dispatchers run ``name``: "fast" (Numba on CPU, CUDA/CuPy on GPU, the
    default), "reference" (the NumPy references for CPU arrays) or "xp" (the array-generic
    versions on either device)."""
    global _forced
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"implementation: expected one of {IMPLEMENTATIONS}, got {name!r}")
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def pick(reference, numba, xp, array, *, cupy=None):
    """The version of an operation to run on ``array``: on the GPU ``cupy`` when the family has a
    CUDA kernel, else ``xp``; on the CPU ``numba`` (or what ``implementation`` forces)."""
    if _forced == "xp":
        return xp
    if backend.is_gpu_array(array):
        return cupy or xp
    return reference if _forced == "reference" else numba


# ==================================================================== CUDA kernels
FLOAT_TYPES = ("float32", "float64")
_cuda_kernels: dict = {}   # the constructor's arguments -> CudaKernel (one object per distinct source)


class CudaKernel:
    """A CUDA kernel minidl ships: the arguments of a CuPy kernel constructor, recorded at import.

    ``kind`` is "elementwise", "reduction" or "raw"; ``args`` the constructor's keyword arguments;
    ``dtypes`` the types minidl binds the type placeholder T to; ``scalars`` the inputs minidl passes
    as scalars rather than arrays (the generated source declares them as values).  The compile test
    builds every (kernel, dtype).  ``get()`` builds the CuPy object on first use (CuPy compiles it at
    the first call per dtype).
    """

    def __init__(self, kind, dtypes, args, scalars=()):
        self.kind, self.dtypes, self.args, self.scalars = kind, tuple(dtypes), dict(args), tuple(scalars)
        self.name = self.args["name"]
        self._built = None

    def get(self):
        if self._built is None:
            cp = backend.cupy_module()
            make = {"elementwise": cp.ElementwiseKernel, "reduction": cp.ReductionKernel,
                    "raw": cp.RawKernel}[self.kind]
            self._built = make(**self.args)
        return self._built

    def __repr__(self):
        return f"<CudaKernel {self.kind} {self.name} {'/'.join(self.dtypes)}>"


def _register(kind, dtypes, scalars=(), **args):
    key = (kind, tuple(dtypes), tuple(scalars), tuple(sorted(args.items())))
    if key not in _cuda_kernels:
        _cuda_kernels[key] = CudaKernel(kind, dtypes, args, scalars)
    return _cuda_kernels[key]


def elementwise_kernel(in_params, out_params, operation, name, *, scalars=(), preamble="", dtypes=FLOAT_TYPES):
    """Declare a cupy.ElementwiseKernel (same arguments); T takes each of ``dtypes``; ``scalars``
    names the inputs passed as scalars."""
    return _register("elementwise", dtypes, scalars, in_params=in_params, out_params=out_params,
                     operation=operation, name=name, preamble=preamble)


def reduction_kernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name, *,
                     reduce_type=None, preamble="", dtypes=FLOAT_TYPES):
    """Declare a cupy.ReductionKernel (same arguments); T takes each of ``dtypes``."""
    return _register("reduction", dtypes, in_params=in_params, out_params=out_params, map_expr=map_expr,
                     reduce_expr=reduce_expr, post_map_expr=post_map_expr, identity=identity, name=name,
                     reduce_type=reduce_type, preamble=preamble)


def raw_kernel(code, name, *, options=()):
    """Declare a cupy.RawKernel: complete CUDA C++ source with ``extern "C" __global__ void name``."""
    return _register("raw", (), code=code, name=name, options=tuple(options))


def cuda_kernels():
    """Every CUDA kernel declared by any module of this package (all of them are imported first)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return tuple(_cuda_kernels.values())
