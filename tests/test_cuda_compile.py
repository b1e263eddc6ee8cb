"""Every CUDA kernel minidl ships compiles for the GPUs it targets (sm_90: H100/H200, sm_80: A100),
without a GPU: NVRTC from NVIDIA's wheels compiles the source CuPy itself would generate at the
first call, for every dtype minidl binds T to.  The kernels come from minidl.kernels.cuda_kernels(),
so a kernel declared later (elementwise_kernel / reduction_kernel / raw_kernel) is compiled here
without editing this file.

Needs the gpu-check extra (pip install -e '.[gpu-check]'); skipped with that advice otherwise, or
failed where MINIDL_REQUIRE_GPU_CHECK=1 (CI sets it, so a broken install cannot pass as skips).
CuPy writes an ElementwiseKernel's or ReductionKernel's source in private functions; the extra
pins CuPy's version, and a CuPy that moved them fails here saying so.
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from minidl import kernels

pytestmark = pytest.mark.gpu_compile
ARCHS = ("90", "80")
REQUIRED = os.environ.get("MINIDL_REQUIRE_GPU_CHECK") == "1"
PINNED = re.search(r'"cupy-cuda12x==([^"]+)"', (Path(__file__).parents[1] / "pyproject.toml").read_text())


def _cupy():
    try:
        import cupy  # noqa: PLC0415 - optional dependency
        from cupy.cuda import nvrtc  # noqa: PLC0415 - optional dependency
        nvrtc.getVersion()    # the NVRTC library itself (CuPy without the gpu-check wheels lacks it)
    except Exception as exc:
        why = f"CuPy or NVRTC is not usable ({type(exc).__name__}: {exc}): pip install -e '.[gpu-check]'"
        pytest.fail(why) if REQUIRED else pytest.skip(why)
    return cupy


def _private(what, fn, *args):
    """Call one of CuPy's private helpers; if this CuPy moved or changed it, say so plainly."""
    import cupy  # noqa: PLC0415 - optional dependency
    try:
        return fn(*args)
    except (AttributeError, TypeError, ValueError) as exc:
        pin = PINNED.group(1) if PINNED else "?"
        pytest.fail(f"CuPy {cupy.__version__}: {what} is not where CuPy {pin} had it "
                    f"({type(exc).__name__}: {exc}). The gpu-check extra pins cupy-cuda12x=={pin}; "
                    "with a newer CuPy, update tests/test_cuda_compile.py to its private code generators.")


def _arginfos(cupy, params, dtypes, scalars):
    """CuPy's _ArgInfo of each parameter as minidl passes it: 1-D contiguous arrays, numpy scalars."""
    from cupy._core import _carray, _kernel  # noqa: PLC0415 - optional dependency
    ndarray, indexer, scalar = 1, 2, 3        # cupy._core._kernel._ArgKind
    infos = []
    for p in params:
        if p.name in ("_ind", "_in_ind", "_out_ind"):
            infos.append(_kernel._ArgInfo(indexer, _carray.Indexer, None, 1, True, True))
        elif p.name in scalars or p.name == "_block_stride":
            dtype = dtypes[p.name]
            infos.append(_kernel._ArgInfo(scalar, dtype.type, dtype, 0, True, True))
        else:
            infos.append(_kernel._ArgInfo(ndarray, cupy.ndarray, dtypes[p.name], 1, True, True))
    return tuple(infos)


def cuda_source(kernel, dtype):
    """(source, options) that CuPy would compile for ``kernel`` with T = ``dtype``."""
    cupy = _cupy()
    from cupy._core import _kernel, _reduction, core  # noqa: PLC0415 - optional dependency
    if kernel.kind == "raw":
        return kernel.args["code"], tuple(kernel.args.get("options", ()))
    make = {"elementwise": cupy.ElementwiseKernel, "reduction": cupy.ReductionKernel}[kernel.kind]
    k = make(**kernel.args)
    params = k.params if kernel.kind == "elementwise" else k._params
    dtypes = {p.name: np.dtype(dtype) if p.ctype == "T" else p.dtype for p in params if p.ctype}
    unknown = [f"{p.ctype} {p.name}" for p in params if p.ctype and dtypes[p.name] is None]
    assert not unknown, f"{kernel.name}: type placeholders other than T are not supported here: {unknown}"
    dtypes["_block_stride"] = np.dtype(np.int32)
    in_dtypes = tuple(dtypes[p.name] for p in k.in_params)
    out_dtypes = tuple(dtypes[p.name] for p in k.out_params)
    _, _, type_map = _private("_kernel._decide_params_type", _kernel._decide_params_type,
                              k.in_params, k.out_params, in_dtypes, out_dtypes)
    infos = _arginfos(cupy, params, dtypes, kernel.scalars)
    if kernel.kind == "elementwise":
        code = _private("_kernel._get_elementwise_kernel_code", _kernel._get_elementwise_kernel_code,
                        infos, type_map, params, k.operation, k.name, k.preamble)
    else:   # a reduction adds its index type to the map (int32 while the input has < 2^31 elements)
        type_map = _private("_kernel._TypeMap", lambda: _kernel._TypeMap(
            type_map._pairs + (("IndexT", np.dtype(np.int32)),)))
        code = _private("_reduction._ReductionKernel_get_cached_function_code",
                        _reduction._ReductionKernel_get_cached_function_code,
                        len(k.in_params), len(k.out_params), params, infos, type_map, k.name, 512,
                        k.reduce_type, k.identity, k.map_expr, k.reduce_expr, k.post_map_expr, k.preamble,
                        k.options)
    headers = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    return headers + code, tuple(k.options) if kernel.kind == "reduction" else ()


def compile_cubin(source, options, arch):
    """NVRTC to a cubin for sm_<arch>, with the options CuPy adds; raises CompileException."""
    _cupy()
    from cupy._core import core  # noqa: PLC0415 - optional dependency
    from cupy.cuda import compiler  # noqa: PLC0415 - optional dependency
    options = _private("core.assemble_cupy_compiler_options", core.assemble_cupy_compiler_options, options)
    program = _private("compiler._NVRTCProgram", compiler._NVRTCProgram, source, "kern.cu", (), (), None, "cubin")
    cubin, _ = program.compile(options + ("-ftz=true", f"-arch=sm_{arch}"))
    return cubin


CASES = [(k, dtype) for k in kernels.cuda_kernels() for dtype in (k.dtypes or (None,))]


def test_minidl_declares_its_cuda_kernels():
    names = {k.name for k, _ in CASES}
    assert "minidl_adam_step" in names and "minidl_sgd_paper" in names, sorted(names)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kernel,dtype", CASES, ids=[f"{k.name}-{d}" for k, d in CASES])
def test_cuda_kernel_compiles(kernel, dtype, arch):
    source, options = cuda_source(kernel, dtype)
    if dtype is not None:
        assert f"typedef {'float' if dtype == 'float32' else 'double'} T;" in source
    assert len(compile_cubin(source, options, arch)) > 0


# --------------------------------------------------- the checks themselves can fail
def test_a_broken_kernel_is_reported_with_its_line():
    _cupy()
    from cupy.cuda.compiler import CompileException  # noqa: PLC0415 - optional dependency
    broken = kernels.CudaKernel("elementwise", ("float32",), dict(
        in_params="T x", out_params="T y", operation="y = x * scale;", name="minidl_broken", preamble=""))
    source, options = cuda_source(broken, "float32")
    with pytest.raises(CompileException, match=r'kern\.cu\(\d+\): error: identifier "scale" is undefined'):
        compile_cubin(source, options, "90")


def test_reduction_and_raw_kernels_compile():
    """The paths no minidl kernel takes yet, with small kernels declared here (not registered)."""
    dot = kernels.CudaKernel("reduction", ("float32", "float64"), dict(
        in_params="T x, T y", out_params="T z", map_expr="x * y", reduce_expr="a + b", post_map_expr="z = a",
        identity="0", name="minidl_test_dot", reduce_type=None, preamble=""))
    for dtype in dot.dtypes:
        assert compile_cubin(*cuda_source(dot, dtype), "80")
    raw = kernels.CudaKernel("raw", (), dict(code='extern "C" __global__ void minidl_test_scale(float* a, int n)'
                                              " { int i = blockIdx.x * blockDim.x + threadIdx.x;"
                                              " if (i < n) a[i] *= 2.0f; }", name="minidl_test_scale", options=()))
    assert compile_cubin(*cuda_source(raw, None), "90")
