"""The backend without a usable GPU: gpu_available() is False and a "gpu" request says exactly why
(CuPy missing, or CuPy's version and the CUDA error when it imports but finds no driver/GPU)."""
import sys
import types

import pytest

import minidl as md
from minidl import backend


class CUDARuntimeError(RuntimeError):
    """Stands in for cupy_backends.cuda.api.runtime.CUDARuntimeError."""


def _fake_cupy(count=None, error=None):
    def get_device_count():
        if error is not None:
            raise error
        return count
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(__version__="14.2.0", cuda=types.SimpleNamespace(runtime=runtime))


@pytest.fixture
def fresh_backend(monkeypatch):
    """The backend as if CuPy had not been looked at yet (restored afterwards)."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_problem", None)
    return monkeypatch


def test_cupy_without_a_driver(fresh_backend):
    error = CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")
    fresh_backend.setitem(sys.modules, "cupy", _fake_cupy(error=error))
    assert backend.gpu_available() is False
    expected = ("CuPy 14.2.0 is installed but no CUDA GPU is usable (CUDARuntimeError: "
                "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version)")
    assert backend.gpu_unavailable_reason() == expected
    with pytest.raises(RuntimeError) as info:
        md.tensor([1.0], device="gpu")
    assert str(info.value) == f"device 'gpu' is not available: {expected}"


def test_cupy_with_zero_devices(fresh_backend):
    fresh_backend.setitem(sys.modules, "cupy", _fake_cupy(count=0))
    assert backend.gpu_available() is False
    assert backend.gpu_unavailable_reason() == ("CuPy 14.2.0 is installed but no CUDA GPU is usable "
                                                "(the CUDA runtime reports 0 devices)")


def test_cupy_missing(fresh_backend):
    fresh_backend.setitem(sys.modules, "cupy", None)     # import cupy raises ImportError
    assert backend.gpu_available() is False
    with pytest.raises(RuntimeError, match=r"device 'gpu' is not available: CuPy is not installed.*\.\[gpu\]"):
        backend.check_device("cuda")


def test_this_machine_says_why_when_it_has_no_gpu():
    """The real CuPy, where it is installed (the gpu-check extra) on a machine without a GPU."""
    if backend.gpu_available():
        pytest.skip("this machine has a usable GPU")
    reason = backend.gpu_unavailable_reason()
    try:
        import cupy  # noqa: PLC0415 - optional dependency
    except ImportError:
        assert reason.startswith("CuPy is not installed")
    else:
        assert reason.startswith(f"CuPy {cupy.__version__} is installed but no CUDA GPU is usable (")
