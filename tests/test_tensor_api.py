"""The PyTorch-style Tensor API and top-level functions: comparisons, in-place operations and
their gradient rules, size()/numel(), conversions, new differentiable ops (parity with torch and
a float64 gradient check each), creation functions, devices."""
import operator

import numpy as np
import pytest
import torch

import minidl as md
import minidl.functional as F
from parity import check, gradcheck_random
from minidl.random import manual_seed


def positive(*shapes):
    return lambda rng, dtype: [rng.uniform(0.5, 2.0, s).astype(dtype) for s in shapes]


def away_from(points, *shapes):
    """Inputs at least 0.1 from each kink point (so finite differences do not straddle it)."""
    def make(rng, dtype):
        out = []
        for s in shapes:
            a = rng.uniform(-2, 2, s)
            for p in points:
                a = np.where(np.abs(a - p) < 0.1, p + 0.3, a)
            out.append(a.astype(dtype))
        return out
    return make


def distinct(*shapes):
    return lambda rng, dtype: [rng.permutation(int(np.prod(s))).reshape(s).astype(dtype) / 7 for s in shapes]


MASK = np.array([[True, False, True], [False, False, True]])
COND = np.array([[True, False, True, False]])

# name: (minidl fn, torch fn, input shapes, options); float32 tolerances as tests/parity.py states
CASES = {
    "abs": (lambda a: a.abs(), lambda a: a.abs(), [(3, 4)], {"inputs": away_from([0], (3, 4))}),
    "sqrt": (lambda a: a.sqrt(), lambda a: a.sqrt(), [(3, 4)], {"inputs": positive((3, 4))}),
    "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), [(3, 4)], {}),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: a.sigmoid(), [(3, 4)], {"low": -30, "high": 30}),
    "F.sigmoid": (F.sigmoid, torch.sigmoid, [(5,)], {}),
    "F.tanh": (F.tanh, torch.tanh, [(5,)], {}),
    "clamp": (lambda a: a.clamp(-0.5, 1.0), lambda a: a.clamp(-0.5, 1.0), [(4, 5)],
              {"inputs": away_from([-0.5, 1.0], (4, 5))}),
    "clamp_min": (lambda a: md.clamp(a, min=0.2), lambda a: torch.clamp(a, min=0.2), [(4, 5)],
                  {"inputs": away_from([0.2], (4, 5))}),
    "maximum": (md.maximum, torch.maximum, [(3, 4), (4,)], {}),
    "minimum": (md.minimum, torch.minimum, [(3, 4), (3, 1)], {}),
    "max_binary": (md.max, torch.max, [(2, 3), (2, 3)], {}),
    "min": (lambda a: a.min(), lambda a: a.min(), [(3, 4)], {"inputs": distinct((3, 4))}),
    "min_dim": (lambda a: a.min(dim=0).values, lambda a: a.min(dim=0).values, [(3, 4)], {"inputs": distinct((3, 4))}),
    "where": (lambda a, b: md.where(md.tensor(COND), a, b), lambda a, b: torch.where(torch.tensor(COND), a, b),
              [(3, 4), (3, 1)], {}),
    "unsqueeze": (lambda a: a.unsqueeze(1), lambda a: a.unsqueeze(1), [(3, 4)], {}),
    "unsqueeze_end": (lambda a: md.unsqueeze(a, -1), lambda a: torch.unsqueeze(a, -1), [(3, 4)], {}),
    "squeeze": (lambda a: a.squeeze(), lambda a: a.squeeze(), [(3, 1, 4, 1)], {}),
    "squeeze_dim": (lambda a: md.squeeze(a, 1), lambda a: torch.squeeze(a, 1), [(3, 1, 4, 1)], {}),
    "expand": (lambda a: a.expand(2, 3, -1), lambda a: a.expand(2, 3, -1), [(3, 1)], {}),
    "repeat": (lambda a: a.repeat(2, 1, 3), lambda a: a.repeat(2, 1, 3), [(3, 2)], {}),
    "clone": (lambda a: a.clone() * 2, lambda a: a.clone() * 2, [(3, 4)], {}),
    "cat": (lambda a, b: md.cat([a, b], dim=1), lambda a, b: torch.cat([a, b], dim=1), [(2, 3), (2, 5)], {}),
    "cat_self": (lambda a: md.cat((a, a), 0), lambda a: torch.cat((a, a), 0), [(2, 3)], {}),
    "stack": (lambda a, b: md.stack([a, b], dim=-1), lambda a, b: torch.stack([a, b], dim=-1), [(2, 3), (2, 3)], {}),
    "mask_index": (lambda a: a[md.tensor(MASK)], lambda a: a[torch.tensor(MASK)], [(2, 3)], {}),
    "int_index_repeated": (lambda a: a[md.tensor([1, 1, 0])], lambda a: a[torch.tensor([1, 1, 0])], [(2, 3)], {}),
    "int_index_2d": (lambda a: a[[0, 1, 1], [2, 2, 0]], lambda a: a[[0, 1, 1], [2, 2, 0]], [(2, 3)], {}),
    "view": (lambda a: a.view(-1, 2), lambda a: a.view(-1, 2), [(2, 3)], {}),
    "T": (lambda a: a.T, lambda a: a.T, [(2, 3)], {}),
    "mm": (md.mm, torch.mm, [(2, 3), (3, 4)], {}),
    "to_other_float": (lambda a: a.to(md.float64 if a.dtype == np.float32 else md.float32).sum(dim=0) * 1,
                       lambda a: a.to(torch.float64 if a.dtype == torch.float32 else torch.float32).sum(dim=0) * 1,
                       [(3, 4)], {"check_dtype": False, "gradcheck": False}),  # float32 values: too coarse
}


def _run(name):
    ours, theirs, shapes, options = CASES[name]
    options = dict(options)
    options.pop("gradcheck", None)
    if options.pop("check_dtype", True):
        check(ours, theirs, shapes, **options)
    else:  # the output is in the other dtype: compare values and the gradient's dtype by hand
        for dtype in (np.float32, np.float64):
            x = np.random.default_rng(0).uniform(-2, 2, shapes[0]).astype(dtype)
            a, b = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            ya, yb = ours(a), theirs(b)
            np.testing.assert_allclose(ya.numpy(), yb.detach().numpy(), rtol=1e-6)
            ya.sum().backward()
            yb.sum().backward()
            assert a.grad.dtype == dtype
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy())


@pytest.mark.parametrize("name", list(CASES))
def test_parity_with_torch(name):
    _run(name)


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case[3].get("gradcheck", True)])
def test_gradcheck(name):
    ours, _, shapes, options = CASES[name]
    options = {k: v for k, v in options.items() if k != "check_dtype"}
    assert gradcheck_random(ours, shapes, **options)


# ------------------------------------------------------- comparisons (were silently wrong)
def test_equality_counts_matches():
    pred, target = np.array([0, 3, 2, 2, 1]), np.array([0, 3, 1, 2, 2])
    correct = (md.tensor(pred) == md.tensor(target)).sum()
    assert correct.item() == int(np.count_nonzero(pred == target)) == 3
    assert (md.tensor(pred) == md.tensor(target)).float().mean().item() == pytest.approx(0.6)


@pytest.mark.parametrize("op", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
                                "eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_match_torch_with_broadcasting(op):
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, (3, 4)).astype(np.float32), rng.integers(0, 3, (4,)).astype(np.float32)
    for other_ours, other_torch in ((md.tensor(b), torch.tensor(b)), (1.0, 1.0), (b, torch.tensor(b))):
        ours = getattr(md.tensor(a, requires_grad=True), op)(other_ours)
        theirs = getattr(torch.tensor(a), op)(other_torch)
        assert ours.dtype == np.bool_ and not ours.requires_grad
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_reflected_comparison_with_a_scalar():
    x = md.tensor([1.0, 5.0])
    assert (2.0 < x).tolist() == [False, True]
    assert (x == None) is False and (x != None) is True  # noqa: E711 - as torch


def test_numpy_array_on_the_left_gives_a_tensor():
    a, t = np.array([1.0, 3.0], dtype=np.float32), md.tensor([1.0, 2.0], requires_grad=True)
    eq, prod = a == t, a * t
    assert isinstance(eq, md.Tensor) and eq.tolist() == [True, False]
    assert isinstance(prod, md.Tensor) and prod.tolist() == [1.0, 6.0] and prod.requires_grad


def test_bool_of_one_element_and_of_many():
    assert bool(md.tensor([3.0]) > 2) and not bool(md.tensor(0.0))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(md.tensor([1.0, 2.0]) > 0)


def test_tensors_stay_hashable_by_identity():
    a, b = md.tensor([1.0]), md.tensor([1.0])
    assert len({a, b}) == 2 and {a: 1, b: 2}[b] == 2
    model = md.nn.Linear(3, 2)
    opt = md.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(md.randn(4, 3)).sum().backward()
    opt.step()  # optimizers key their state by parameter


# ------------------------------------------------------- in place (were silently wrong)
def test_inplace_update_under_no_grad_changes_the_parameter():
    w = md.tensor([1.0, 2.0], requires_grad=True)
    alias = w
    (w * w).sum().backward()  # grad 2w = [2, 4]
    with md.no_grad():
        w -= 0.5 * w.grad
    assert w is alias and w.tolist() == [0.0, 0.0] and w.requires_grad


@pytest.mark.parametrize("op", ["iadd", "isub", "imul", "itruediv"])
def test_augmented_assignment_is_in_place_and_matches_torch(op):
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    ours, theirs = md.tensor(a), torch.tensor(a)
    ours_view, theirs_view = ours[0], theirs[0]
    before = ours
    ours = getattr(operator, op)(ours, md.tensor([2.0, 4.0]))      # what `ours += ...` runs
    theirs = getattr(operator, op)(theirs, torch.tensor([2.0, 4.0]))
    assert ours is before and ours.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours_view.numpy(), theirs_view.numpy())  # a view sees the write


def test_inplace_keeps_dtype():
    counts = md.zeros(3, dtype=md.int64)
    counts += md.tensor([1, 2, 3])
    assert counts.dtype == np.int64 and counts.tolist() == [1, 2, 3]
    x = md.ones(2)
    x += md.tensor([0.5, 0.25], dtype=md.float64)
    assert x.dtype == np.float32 and x.tolist() == [1.5, 1.25]
    with pytest.raises(TypeError, match="keep the dtype"):
        counts /= 2
    total = 0
    for _ in range(2):
        total += (md.tensor([1, 2]) == md.tensor([1, 0])).sum()
    assert total.item() == 2


def test_inplace_on_leaf_requiring_grad_raises_as_torch():
    w = md.tensor([1.0], requires_grad=True)
    for write in (lambda: w.__iadd__(1), lambda: w.add_(1), lambda: w.zero_(), lambda: w.__setitem__(0, 2.0)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
            write()
    assert w.tolist() == [1.0]


def test_inplace_inside_the_graph_raises():
    w = md.tensor([1.0, 2.0], requires_grad=True)
    y = w * 2
    with pytest.raises(RuntimeError, match="part of the autograd graph"):
        y += 1
    buf = md.zeros(2)
    with pytest.raises(RuntimeError, match="requires grad into one that does not"):
        buf += w


def test_backward_refuses_values_changed_after_use():
    w = md.tensor([1.0, 2.0], requires_grad=True)
    x = md.tensor([3.0, 4.0])
    y = (w * x).sum()          # Mul saved x for dy/dw
    x += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    y = (w * w).sum()
    with md.no_grad():
        w[0] = 5.0             # through __setitem__, under no_grad
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    y = (w.reshape(2, 1) * 2).sum()
    with md.no_grad():
        w.detach().view(2, 1).mul_(3)   # a view of a detached alias shares the count
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    e = w.exp()                # exp keeps its output for backward
    with md.no_grad():
        e += 1
    with pytest.raises(RuntimeError, match="the output of <Exp>"):
        e.sum().backward()


def test_grad_zero_in_place_touches_only_that_gradient():
    a, b = md.tensor([1.0, 2.0], requires_grad=True), md.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.zero_()
    assert a.grad.tolist() == [0.0, 0.0] and b.grad.tolist() == [1.0, 1.0]
    (a + b).sum().backward()
    assert a.grad.tolist() == [1.0, 1.0] and b.grad.tolist() == [2.0, 2.0]


def test_a_gradient_shared_through_a_view_or_with_the_caller_is_copied():
    a, b = md.tensor([[1.0, 2.0]], requires_grad=True), md.tensor([3.0, 4.0], requires_grad=True)
    (a.reshape(2) + b).sum().backward()     # a gets a reshaped view of the array b gets
    b.grad.zero_()
    assert a.grad.tolist() == [[1.0, 1.0]]
    x = md.tensor([1.0, 2.0], requires_grad=True)
    upstream = np.array([5.0, 6.0], np.float32)
    x.backward(upstream)                    # a leaf's own backward: .grad must not be the caller's array
    x.grad.zero_()
    assert upstream.tolist() == [5.0, 6.0]


def test_inplace_methods_match_torch():
    a = np.array([[-1.5, 0.5, 2.0], [3.0, -4.0, 0.25]], dtype=np.float32)
    b = np.array([2.0, -1.0, 0.5], dtype=np.float32)
    steps = [("add_", (b,), {"alpha": 0.5}), ("sub_", (b,), {"alpha": 2}), ("mul_", (b,), {}), ("div_", (b,), {}),
             ("clamp_", (), {"min": -1.0, "max": 1.5}), ("fill_", (7.0,), {}), ("copy_", (b,), {}), ("zero_", (), {})]
    ours, theirs = md.tensor(a), torch.tensor(a)
    for name, args, kwargs in steps:
        out = getattr(ours, name)(*[md.tensor(x) for x in args], **kwargs)
        getattr(theirs, name)(*[torch.tensor(x) for x in args], **kwargs)
        assert out is ours
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, err_msg=name)


def test_random_inplace_fills_are_seeded():
    md.manual_seed(5)
    first = md.empty(1000).normal_(2.0, 0.5).numpy()
    md.manual_seed(5)
    again = md.empty(1000).normal_(2.0, 0.5).numpy()
    np.testing.assert_array_equal(first, again)
    assert abs(first.mean() - 2.0) < 5 * 0.5 / np.sqrt(1000) and abs(first.std() - 0.5) < 0.05
    u = md.zeros(1000, dtype=md.float64).uniform_(-1, 3).numpy()
    assert u.dtype == np.float64 and u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.2


def test_setitem_in_place():
    x = md.zeros(2, 3)
    x[0, 1:] = 5.0
    x[md.tensor([[False, False, False], [True, False, True]])] = md.tensor([1.0, 2.0])
    assert x.tolist() == [[0.0, 5.0, 5.0], [1.0, 0.0, 2.0]]


def test_expanded_view_refuses_writes():
    x = md.tensor([1.0, 2.0]).expand(3, 2)
    with pytest.raises(RuntimeError, match="read-only view"):
        x += 1


def test_relu_of_minus_infinity_is_zero():
    x = md.tensor([-np.inf, -1.0, 0.0, 2.0, np.inf])
    np.testing.assert_array_equal(F.relu(x).numpy(), torch.relu(torch.tensor(x.numpy())).numpy())
    assert x.relu().tolist() == [0.0, 0.0, 0.0, 2.0, np.inf]


# ----------------------------------------------------------- facts and conversions
def test_size_numel_dim():
    x = md.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and isinstance(x.size(), md.Size) and x.size(-1) == 4 and x.size(1) == 3
    assert x.numel() == 24 == x.size().numel() and x.dim() == 3 and md.numel(x) == 24
    assert repr(x.size()) == "minidl.Size([2, 3, 4])"
    with pytest.raises(IndexError):
        x.size(3)


def test_dtype_conversions_match_torch():
    a = np.array([-1.7, 0.0, 2.5], dtype=np.float32)
    ours, theirs = md.tensor(a), torch.tensor(a)
    for name, dtype in (("float", np.float32), ("double", np.float64), ("half", np.float16),
                        ("long", np.int64), ("int", np.int32), ("bool", np.bool_)):
        converted = getattr(ours, name)()
        assert converted.dtype == dtype
        np.testing.assert_array_equal(converted.numpy(), getattr(theirs, name)().numpy())
    assert ours.to(md.float64).dtype == np.float64 and ours.to("cpu", md.int64).dtype == np.int64
    assert ours.to(dtype=md.long, device=md.device("cpu")).dtype == np.int64
    assert ours.type(md.float64).dtype == np.float64 and ours.type() == "minidl.float32"
    assert ours.to(md.tensor([1], dtype=md.int32)).dtype == np.int32
    assert ours.to("cpu") is ours and ours.float() is ours and ours.contiguous() is ours and ours.cpu() is ours


def test_int_tensor_times_a_float_is_float():
    np.testing.assert_allclose((md.tensor([1, 2]) * 2.5).numpy(), [2.5, 5.0])


def test_plain_accessors():
    x = md.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and x[1, 0].item() == 3.0
    d = x.detach()
    assert not d.requires_grad and d.data is x.data
    assert md.tensor([1.0]).requires_grad_().requires_grad
    x.data = np.zeros((2, 2), dtype=np.float32)     # .data assignment still swaps the array
    assert x.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert md.tensor([1.0, 5.0, 2.0]).argmax().item() == 1


def test_min_of_integer_tensors():
    a = np.array([[0, 5, 3], [7, 1, 0]], dtype=np.uint8)
    x, t = md.tensor(a), torch.tensor(a)
    assert x.min().item() == 0 and x.min(dim=1).values.tolist() == t.min(dim=1).values.tolist()
    assert x.min(dim=0).indices.tolist() == t.min(dim=0).indices.tolist()
    assert md.minimum(x, md.tensor(np.full((2, 3), 2, np.uint8))).tolist() == [[0, 2, 2], [2, 1, 0]]


def test_argmax_argmin_match_torch():
    a = np.random.default_rng(0).permutation(24).reshape(2, 3, 4).astype(np.float32)
    for fn in ("argmax", "argmin"):
        for kwargs in ({}, {"dim": 1}, {"dim": -1, "keepdim": True}):
            ours, theirs = getattr(md.tensor(a), fn)(**kwargs), getattr(torch.tensor(a), fn)(**kwargs)
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
            assert ours.shape == tuple(theirs.shape)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="cat: tensor 1 has shape"):
        md.cat([md.zeros(2, 3), md.zeros(3, 3)], dim=1)
    with pytest.raises(ValueError, match="stack: tensor 1"):
        md.stack([md.zeros(2), md.zeros(3)])
    with pytest.raises(TypeError, match="list or tuple"):
        md.cat(md.zeros(2))
    with pytest.raises(ValueError, match="expand"):
        md.zeros(2, 3).expand(4, 3)
    with pytest.raises(ValueError, match="clamp"):
        md.zeros(2).clamp()


# ------------------------------------------------------------- top-level functions
def test_top_level_functions_match_torch():
    rng = np.random.default_rng(0)
    a = rng.permutation(12).reshape(3, 4).astype(np.float32) / 4 + 0.1
    x, t = md.tensor(a), torch.tensor(a)
    pairs = [
        (md.exp(x), torch.exp(t)), (md.log(x), torch.log(t)), (md.sqrt(x), torch.sqrt(t)),
        (md.abs(-x), torch.abs(-t)), (md.sum(x, 1), torch.sum(t, 1)), (md.mean(x, 0, True), torch.mean(t, 0, True)),
        (md.max(x), torch.max(t)), (md.max(x, 1).values, torch.max(t, 1).values),
        (md.max(x, 1).indices, torch.max(t, 1).indices), (md.min(x), torch.min(t)),
        (md.min(x, dim=0)[1], torch.min(t, dim=0)[1]), (md.argmax(x, 1), torch.argmax(t, 1)),
        (md.argmin(x), torch.argmin(t)), (md.matmul(x, x.T), torch.matmul(t, t.T)),
        (md.where(x > 1, x, md.zeros_like(x)), torch.where(t > 1, t, torch.zeros_like(t))),
        (md.flatten(x), torch.flatten(t)), (md.sigmoid(x), torch.sigmoid(t)), (md.tanh(x), torch.tanh(t)),
        (md.relu(x - 1), torch.relu(t - 1)), (md.clamp(x, 0.5, 2), torch.clamp(t, 0.5, 2)),
        (md.softmax(x, 1), torch.softmax(t, 1)), (md.log_softmax(x, dim=0), torch.log_softmax(t, dim=0)),
        (md.unsqueeze(x, 0), torch.unsqueeze(t, 0)), (md.squeeze(x[None]), torch.squeeze(t[None])),
        (md.reshape(x, (2, 6)), torch.reshape(t, (2, 6))), (md.transpose(x, 0, 1), torch.transpose(t, 0, 1)),
        (md.permute(x[None], (2, 0, 1)), torch.permute(t[None], (2, 0, 1))),
    ]
    for i, (ours, theirs) in enumerate(pairs):
        assert ours.shape == tuple(theirs.shape), i
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7, err_msg=str(i))
    assert md.allclose(x, x + 1e-9) and not md.allclose(x, x + 1e-3)
    assert md.equal(x, md.tensor(a)) and not md.equal(x, x.T.T + 1) and not md.equal(x, x.reshape(4, 3))
    assert md.is_tensor(x) and not md.is_tensor(a)


def test_creation_functions_match_torch():
    pairs = [
        (md.arange(5), torch.arange(5)), (md.arange(1, 7, 2), torch.arange(1, 7, 2)),
        (md.arange(0, 1, 0.25), torch.arange(0, 1, 0.25)), (md.arange(3, dtype=md.float64), torch.arange(3, dtype=torch.float64)),
        (md.full((2, 2), 7), torch.full((2, 2), 7)), (md.full((2,), 1.5), torch.full((2,), 1.5)),
        (md.full((2,), True), torch.full((2,), True)), (md.eye(3), torch.eye(3)), (md.eye(2, 3), torch.eye(2, 3)),
        (md.linspace(0, 1, 5), torch.linspace(0, 1, 5)), (md.zeros(2, 3), torch.zeros(2, 3)),
        (md.ones_like(md.zeros(2, dtype=md.int64)), torch.ones_like(torch.zeros(2, dtype=torch.int64))),
        (md.zeros_like(md.ones(3)), torch.zeros_like(torch.ones(3))),
        (md.full_like(md.ones(2), 4.0, dtype=md.float64), torch.full_like(torch.ones(2), 4.0, dtype=torch.float64)),
        (md.empty(2, 3), torch.zeros(2, 3)),
    ]
    for i, (ours, theirs) in enumerate(pairs):
        assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.numpy().dtype, (i, ours.dtype)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), err_msg=str(i))


def test_random_creation_is_seeded_and_in_range():
    md.manual_seed(3)
    r, n, i = md.rand(2, 3), md.randn((4,)), md.randint(2, 5, (1000,))
    md.manual_seed(3)
    assert md.equal(r, md.rand(2, 3)) and md.equal(n, md.randn(4))
    assert r.dtype == np.float32 and ((r.numpy() >= 0) & (r.numpy() < 1)).all()
    assert i.dtype == np.int64 and set(i.tolist()) == {2, 3, 4}
    assert md.randint(3, (2, 2)).shape == (2, 2)


def test_from_numpy_shares_memory():
    a = np.zeros(3, dtype=np.float32)
    t = md.from_numpy(a)
    a[1] = 4.0
    assert t.tolist() == [0.0, 4.0, 0.0]


def test_dtype_names():
    assert md.float32 is np.float32 and md.float64 is np.float64 and md.float16 is np.float16
    assert md.long is md.int64 is np.int64 and md.int32 is np.int32 and md.bool is np.bool_ and md.uint8 is np.uint8
    assert md.tensor([1, 2], dtype=md.long).dtype == md.int64
    assert md.manual_seed is manual_seed


# ------------------------------------------------------------------------ devices
def test_device_objects_work_where_strings_do():
    cpu = md.device("cpu")
    assert cpu.type == "cpu" and cpu.index is None and cpu == "cpu" and repr(cpu) == "device(type='cpu')"
    x = md.tensor([1.0], device=cpu)
    assert x.to(cpu) is x and x.device == "cpu" and x.device == cpu and x.device.type == "cpu"
    model = md.nn.Linear(2, 2).to(cpu)
    assert model.weight.device == "cpu"
    gpu = md.device("cuda:0")
    assert gpu.type == "cuda" and gpu.index == 0 and gpu == "gpu" and gpu == "cuda"
    with pytest.raises(ValueError, match="unknown device"):
        md.device("tpu")


@pytest.mark.skipif(md.cuda.is_available(), reason="checks the errors on a machine without a GPU")
def test_cuda_without_gpu_errors_clearly():
    assert md.cuda.is_available() is False and md.cuda.device_count() == 0
    for spec in ("cuda", "cuda:0", md.device("cuda"), "gpu"):
        with pytest.raises(RuntimeError, match="not available"):
            md.tensor([1.0], device=spec)
    with pytest.raises(RuntimeError, match="not available"):
        md.tensor([1.0]).cuda()
    with pytest.raises(RuntimeError, match="not available"):
        md.tensor([1.0]).to("cuda:1")


@pytest.mark.gpu
def test_cuda_devices_on_a_gpu_machine():
    assert md.cuda.is_available() and md.cuda.device_count() >= 1
    x = md.tensor([1.0, -2.0], device="cuda:0", requires_grad=True)
    assert x.device == "gpu" and x.device.type == "cuda"
    y = x.cpu().abs().sum()
    y.backward()
    assert x.grad.device == "gpu" and x.grad.tolist() == [1.0, -1.0]
    assert (x.cuda() == md.tensor([1.0, -2.0]).to(md.device("cuda"))).all()
    with pytest.raises(ValueError, match="cuda:7"):
        md.tensor([1.0], device="cuda:7")


# ------------------------------------------------------------------ dtype promotion, as torch
@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "pow"])
@pytest.mark.parametrize("left, right", [
    (np.array([1, 2, 3]), 2.5), (np.array([1, 2, 3]), 2), (np.array([1, 2, 3]), np.array([1.0, 2.0, 4.0], np.float32)),
    (np.array([1, 2, 3]), np.array([1.0, 2.0, 4.0])), (np.array([True, False, True]), np.array([1.5, 2.0, 4.0], np.float32)),
    (np.array([1.0, 2.0, 3.0], np.float32), 2), (np.array([1, 2, 3], np.int32), np.array([2, 1, 3])),
])
def test_binary_result_dtype_follows_torch(op, left, right):
    fn = getattr(operator, op)
    if op == "sub" and left.dtype.kind == "b":
        pytest.skip("torch refuses subtraction with a bool tensor")
    as_md = lambda v: md.tensor(v) if isinstance(v, np.ndarray) else v
    as_torch = lambda v: torch.tensor(v) if isinstance(v, np.ndarray) else v
    ours, theirs = fn(as_md(left), as_md(right)), fn(as_torch(left), as_torch(right))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_view_as_reshape_as_type_as_and_normal():
    a, b = md.arange(6), md.zeros(2, 3)
    assert a.view_as(b).shape == (2, 3) and a.reshape_as(b).shape == (2, 3)
    assert a.type_as(b).dtype == np.float32
    x = md.tensor(np.arange(6.0), requires_grad=True)
    x.view_as(b).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(6))
    md.manual_seed(3)
    w = md.normal(0, 0.01, size=(400, 50), requires_grad=True)
    assert w.shape == (400, 50) and w.dtype == np.float32 and w.requires_grad
    assert abs(w.numpy().std() - 0.01) < 0.001 and abs(w.numpy().mean()) < 0.001
    md.manual_seed(3)
    np.testing.assert_array_equal(md.normal(0, 0.01, size=(400, 50)).numpy(), w.numpy())   # seeded
    with pytest.raises(TypeError, match="tensor-valued"):
        md.normal(md.zeros(3), 1.0, size=(3,))


# ------------------------------------------------------------------ compositions (ops/composite.py)
COMPOSITE_CASES = {
    "var": (lambda a: a.var(), [(4, 5)]),
    "var dim biased": (lambda a: a.var(1, unbiased=False, keepdim=True), [(4, 5)]),
    "std dims": (lambda a: a.std(dim=(0, 2)), [(3, 4, 5)]),
    "std correction": (lambda a: a.std(0, correction=0), [(6, 3)]),
    "pow": (lambda a: a.pow(3), [(3, 4)]),
    "t": (lambda a: a.t() * 2, [(3, 4)]),
    "mm": (lambda a, b: a.mm(b), [(3, 4), (4, 2)]),
    "bmm": (lambda a, b: a.bmm(b), [(2, 3, 4), (2, 4, 5)]),
    "chunk": (lambda a: a.chunk(3, dim=1)[1] * a.chunk(3, dim=1)[2][:, :1], [(2, 8)]),
    "split sections": (lambda a: a.split([1, 3], dim=0)[1].sum(0), [(4, 3)]),
    "split size": (lambda a: a.split(2, dim=1)[-1], [(2, 5)]),
    "masked_fill": (lambda a: a.masked_fill(a > 0.5, -1.0), [(3, 4)]),
}


@pytest.mark.parametrize("name", COMPOSITE_CASES)
def test_composite_parity(name):
    fn, shapes = COMPOSITE_CASES[name]
    check(fn, shapes=shapes)


@pytest.mark.parametrize("name", COMPOSITE_CASES)
def test_composite_gradcheck(name):
    fn, shapes = COMPOSITE_CASES[name]
    assert gradcheck_random(fn, shapes)


def test_composite_module_level_and_tests():
    x = md.tensor(np.array([1.0, np.nan, np.inf, -2.0], np.float32))
    assert md.isnan(x).tolist() == [False, True, False, False]
    assert md.isinf(x).tolist() == [False, False, True, False]
    assert md.isfinite(x).tolist() == [True, False, False, True]
    y = md.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert md.std(y).item() == pytest.approx(torch.tensor(y.numpy()).std().item())
    assert [c.shape for c in md.chunk(y, 2, 1)] == [(2, 2), (2, 1)]
    assert y.new_zeros(4).dtype == np.float32 and y.new_ones((2, 2)).tolist() == [[1, 1], [1, 1]]
    assert y.new_tensor([1, 2]).dtype == np.float32 and y.nelement() == 6
    with pytest.raises(RuntimeError, match="t\\(\\) expects"):
        md.zeros(2, 2, 2).t()
    with pytest.raises(RuntimeError, match="mm: both operands must be 2-D"):
        y.mm(md.zeros(3))
    with pytest.raises(ValueError, match="sum to dim 0's size 2"):
        y.split([1, 2])
    with pytest.raises(TypeError, match="mask must be a boolean"):
        y.masked_fill(y, 0.0)


def test_an_idiom_minidl_lacks_fails_naming_it_and_the_minidl_way():
    x = md.zeros(3, requires_grad=True)
    with pytest.raises(AttributeError, match="torch.Tensor.retain_grad; .*register_hook"):
        (x * 2).retain_grad()
    with pytest.raises(AttributeError, match="torch.Tensor.frobnicate; see docs/from-pytorch.md"):
        x.frobnicate()
    assert not hasattr(x, "__deepcopy_probe__") and x.is_cuda is False
