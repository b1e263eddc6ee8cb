"""The autograd engine: graph shapes, accumulation, no_grad, dtypes, devices and its error messages."""
import numpy as np
import pytest

import minidl as md
import minidl.functional as F
from minidl import backend


def t(values, **kw):
    return md.tensor(np.asarray(values, dtype=np.float64), requires_grad=True, **kw)


def test_reuse_accumulates_within_one_backward():
    x = t([3.0])
    (x * x + x).sum().backward()          # d/dx (x^2 + x) = 2x + 1
    assert x.grad.numpy().tolist() == [7.0]


def test_diamond_graph():
    x = t([2.0])
    a, b = x * 3, x * x                   # both branches start at x and meet again
    (a * b).sum().backward()              # d/dx (3x * x^2) = 9x^2
    assert x.grad.numpy().tolist() == [36.0]


def test_gradients_accumulate_across_backward_calls_until_zeroed():
    x = t([1.0, 2.0])
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.numpy().tolist() == [5.0, 5.0]
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.numpy().tolist() == [3.0, 3.0]


def test_retain_graph_allows_second_backward_and_default_frees():
    x = t([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.numpy().tolist() == [4.0, 8.0]
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_no_grad_builds_no_graph_and_detach_cuts():
    x = t([1.0])
    with md.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = x.detach() * 2
    assert not z.requires_grad

    @md.no_grad()
    def double(v):
        return v * 2
    assert not double(x).requires_grad
    assert md.is_grad_enabled()


def test_broadcast_gradients_sum_back_to_input_shape():
    a = t(np.ones((2, 3, 4)))
    b = t(np.ones((3, 1)))
    (a * b).sum().backward()
    assert b.grad.shape == (3, 1)
    assert np.all(b.grad.numpy() == 8.0)


def test_deep_chain_has_no_recursion_limit():
    x = t([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    assert np.isclose(x.grad.item(), 1.0001 ** 5000)


def test_dtypes_float32_default_float64_kept():
    assert md.tensor([1.0, 2.0]).dtype == np.float32
    assert md.tensor(np.zeros(2)).dtype == np.float64
    x64 = t([1.0, 2.0])
    for y in (x64 * 2, x64 + 1, 1 / x64, x64 ** 2, x64.exp(), F.relu(x64), x64.sum(), x64.mean()):
        assert y.dtype == np.float64
    x32 = md.tensor([1.0, 2.0], requires_grad=True)
    for y in (x32 * 2.5, x32 - 1, x32 / 3, x32 ** 0.5, F.softmax(x32, 0)):
        assert y.dtype == np.float32
    (x32 * 2.5).sum().backward()
    assert x32.grad.dtype == np.float32


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        md.tensor([1, 2], requires_grad=True)


def test_custom_function_subclass():
    class Cube(md.Function):
        def forward(self, x):
            self.x = x
            return x ** 3

        def backward(self, grad):
            return 3 * self.x ** 2 * grad

    x = t([2.0, -1.0])
    Cube.apply(x).sum().backward()
    assert x.grad.numpy().tolist() == [12.0, 3.0]
    assert md.gradcheck(Cube.apply, [t([0.3, -1.2])])


def test_function_returning_wrong_gradient_shape_is_reported():
    class Bad(md.Function):
        def forward(self, x):
            return x.sum()

        def backward(self, grad):
            return np.ones(3)

    with pytest.raises(RuntimeError, match=r"Bad.*shape \(3,\).*\(2, 2\)"):
        Bad.apply(t(np.ones((2, 2)))).backward()


# ----------------------------------------------------------------- bad input
def test_backward_on_non_scalar_without_grad_says_so():
    y = t([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"scalar.*\(2,\)"):
        y.backward()
    y.backward(np.ones(2))  # with a gradient it works


def test_backward_on_tensor_without_grad_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        md.tensor([1.0]).backward()


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        md.tensor(np.ones((2, 3))) @ md.tensor(np.ones((4, 5)))


def test_linear_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        F.linear(md.tensor(np.ones((2, 3))), md.tensor(np.ones((4, 5))))
    with pytest.raises(ValueError, match=r"in_features=5"):
        md.nn.Linear(5, 2)(md.tensor(np.ones((2, 3))))


@pytest.mark.parametrize("labels, message", [
    (np.array([0.0, 1.0]), "integer class labels"),
    (np.array([0, 5]), r"\[0, 3\).*\[5\]"),
    (np.array([-1, 0]), r"\[0, 3\).*\[-1\]"),
    (np.array([0, 1, 2]), r"target has shape \(3,\).*batch size 2"),
])
def test_cross_entropy_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        F.cross_entropy(md.tensor(np.zeros((2, 3))), labels)


def test_mixing_devices_names_the_tensors(monkeypatch):
    a, b = md.tensor([1.0]), md.tensor([2.0])
    real = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda arr: "gpu" if arr is b.data else real(arr))
    with pytest.raises(RuntimeError, match=r"different devices.*input 0: cpu.*input 1: gpu"):
        a + b


@pytest.mark.skipif(md.gpu_available(), reason="checks the error raised without a GPU")
def test_asking_for_gpu_without_one_says_why():
    with pytest.raises(RuntimeError, match="device 'gpu' is not available: CuPy"):
        md.tensor([1.0], device="gpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        md.tensor([1.0], device="tpu")


def test_to_cpu_is_identity_on_cpu():
    x = md.tensor([1.0])
    assert x.to("cpu") is x


@pytest.mark.gpu
def test_to_gpu_and_back_is_differentiable():
    x = t([1.0, 2.0])
    y = (x.to("gpu") * 3).to("cpu").sum()
    y.backward()
    assert x.grad.numpy().tolist() == [3.0, 3.0]


def test_tensor_hook_sees_and_can_replace_the_gradient():
    x = t([1.0, 2.0])
    h = x * 3
    seen = []
    handle = h.register_hook(lambda g: seen.append(g.numpy()) or md.tensor(g.numpy() * 2))
    (h * h).sum().backward()                      # dL/dh = 2h = [6, 12], doubled by the hook
    assert seen[0].tolist() == [6.0, 12.0]
    assert x.grad.numpy().tolist() == [36.0, 72.0]
    handle.remove()
    x.grad = None
    (x * 3 * 1).sum().backward()
    assert x.grad.numpy().tolist() == [3.0, 3.0]
