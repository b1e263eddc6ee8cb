"""The one-line PyTorch parity helper (in the spirit of tinygrad's test_ops).

``check(md_fn, torch_fn, shapes)`` makes random inputs of the given shapes, runs
minidl and PyTorch on the same values, forward and backward with the same
random upstream gradient, and compares outputs and every input's gradient.
Where both sides are the same expression (Tensor methods and operators, which
mirror torch's), leave torch_fn out: ``check(lambda a: (a * 2).sum(dim=1), shapes=[(3, 4)])``.
Tolerances:
    float32: |ours - torch| <= atol + rtol * |torch|, atol=1e-5 * scale, rtol=1e-4 by default,
             where scale = max(1, max |torch|) (sums of many float32 terms round differently);
    float64: atol=1e-9 * scale, rtol=1e-7 (the same maths, so only rounding order differs).
"""
from __future__ import annotations

import numpy as np
import torch

import minidl as md

TOLERANCES = {np.float32: (1e-5, 1e-4), np.float64: (1e-9, 1e-7)}


def assert_close(ours, theirs, dtype, what, atol=None, rtol=None):
    ours = ours.numpy() if hasattr(ours, "numpy") else np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    default_atol, default_rtol = TOLERANCES[np.dtype(dtype).type]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    np.testing.assert_allclose(ours, theirs, atol=atol * scale, rtol=rtol, err_msg=what)


def check(md_fn, torch_fn=None, shapes=None, *, low=-2.0, high=2.0, dtypes=(np.float32, np.float64),
          grad=True, atol=None, rtol=None, seed=0, inputs=None):
    """Compare md_fn and torch_fn (md_fn itself when None) forward and backward on random inputs of ``shapes``.

    ``inputs`` (optional): a function rng, dtype -> list of arrays, for inputs that
    need special values (positive, no ties ...). Returns nothing; raises on mismatch.
    """
    torch_fn = md_fn if torch_fn is None else torch_fn
    for dtype in dtypes:
        rng = np.random.default_rng(seed)
        arrays = inputs(rng, dtype) if inputs else [rng.uniform(low, high, s).astype(dtype) for s in shapes]
        ours_in = [md.tensor(a, requires_grad=grad) for a in arrays]
        torch_in = [torch.tensor(a, requires_grad=grad) for a in arrays]
        ours, theirs = md_fn(*ours_in), torch_fn(*torch_in)
        assert ours.dtype == dtype, f"output dtype {ours.dtype}, input dtype {np.dtype(dtype)}"
        assert_close(ours, theirs, dtype, f"forward ({np.dtype(dtype)})", atol, rtol)
        if not grad:
            continue
        upstream = rng.standard_normal(theirs.shape).astype(dtype)
        ours.backward(upstream)
        theirs.backward(torch.tensor(upstream))
        for i, (a, b) in enumerate(zip(ours_in, torch_in)):
            if b.grad is None:
                assert a.grad is None or not np.any(a.grad.numpy()), f"input {i}: torch has no gradient"
                continue
            assert a.grad is not None, f"input {i}: minidl computed no gradient"
            assert_close(a.grad, b.grad, dtype, f"grad of input {i} ({np.dtype(dtype)})", atol, rtol)


def gradcheck_random(fn, shapes, *, low=-2.0, high=2.0, seed=0, inputs=None, **tolerances):
    """md.gradcheck of fn on random float64 inputs of ``shapes``."""
    rng = np.random.default_rng(seed)
    arrays = inputs(rng, np.float64) if inputs else [rng.uniform(low, high, s) for s in shapes]
    return md.gradcheck(fn, [md.tensor(a, requires_grad=True) for a in arrays], **tolerances)
